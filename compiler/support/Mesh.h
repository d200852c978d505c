// The parallel plan of a module and its device mesh, as every pass reads them.
//
// The driver (or the search, or `ap-mesh{plan=...}`) sets `#ap.parallel` once on the
// module; `ap-mesh` declares the mesh it implies as `shard.grid @mesh` with the axis
// names beside it (`ap.axes = ["dp", "pp", "tp"]`). Passes look axes up by name, so a
// new axis (cp) moves no index anywhere.
#pragma once

#include "dialects/ap/IR/ApAttrs.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"

#include <string>

namespace apc {

constexpr llvm::StringLiteral kParallelAttr = "ap.parallel"; // #ap.parallel on the module
constexpr llvm::StringLiteral kGrid = "mesh";                // the shard.grid symbol
constexpr llvm::StringLiteral kMeshAxesAttr = "ap.axes";     // its axis names

// The module's plan; one device (all fields at their defaults) when it has none.
ap::ParallelAttr parallelPlanOf(mlir::ModuleOp module);

// The device mesh: axis names and sizes in order (empty: one device, no grid).
struct Mesh {
  llvm::SmallVector<std::string> names;
  llvm::SmallVector<int64_t> shape;
  // The index of axis `name`, -1 when the mesh has none.
  int axis(llvm::StringRef name) const;
  int64_t devices() const;
};

// The mesh `ap-mesh` declared; a located error if the grid and the plan disagree or
// the plan needs more than one device and no grid was declared.
mlir::FailureOr<Mesh> meshOf(mlir::ModuleOp module);

// Declares the mesh of the module's plan (nothing for one device). Fails if a
// different grid is there already.
mlir::LogicalResult declareMesh(mlir::ModuleOp module);

} // namespace apc
