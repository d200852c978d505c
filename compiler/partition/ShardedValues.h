// The values of a step being partitioned: each one's global type and its state per
// mesh axis, and the collectives that convert a value from one state to another.
// The ops' sharding rules (compiler/rules/) say which states each op needs; this class
// makes the values so and gives them their local (per-device) types.
#pragma once

#include "compiler/support/Mesh.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

#include <string>
#include <tuple>

namespace apc::partition {

// A value's state on one mesh axis.
struct AxisState {
  enum Kind : uint8_t {
    R, // replicated: every device of the axis holds all of it
    S, // split: each holds one contiguous block of `dim`
    P  // partial: each holds a summand, the value is their sum
  } kind = R;
  int64_t dim = 0;
  static AxisState r() { return {}; }
  static AxisState s(int64_t d) { return {S, d}; }
  static AxisState p() { return {P, 0}; }
  bool isSplit() const { return kind == S; }
  bool operator==(const AxisState &o) const {
    return kind == o.kind && (kind != S || dim == o.dim);
  }
  bool operator!=(const AxisState &o) const { return !(*this == o); }
};
using Sharding = llvm::SmallVector<AxisState, 2>; // one state per mesh axis

using apc::kGrid; // the shard.grid symbol (compiler/support/Mesh.h)

class ShardedValues {
public:
  ShardedValues(mlir::MLIRContext *context, llvm::SmallVector<int64_t> mesh, int tpAxis,
                llvm::SmallVector<std::string> axisNames)
      : context_(context), mesh_(std::move(mesh)), tpAxis_(tpAxis),
        axisNames_(std::move(axisNames)) {
    for (size_t a = 0; a < axisNames_.size(); ++a)
      if (axisNames_[a] == "cp")
        cpAxis_ = int(a);
  }

  int numAxes() const;
  Sharding replicated() const;
  mlir::RankedTensorType globalOf(mlir::Value v);
  Sharding shardingOf(mlir::Value v);
  AxisState st(mlir::Value v, int axis);
  int64_t rankOf(mlir::Value v);
  std::string axisName(int axis) const;
  mlir::RankedTensorType localType(mlir::RankedTensorType global, const Sharding &s);

  // Records `v`'s global type and sharding and gives it its local type; a split that
  // does not divide (or two axes on one dim) is a located error.
  mlir::LogicalResult assign(mlir::Value v, mlir::RankedTensorType global, const Sharding &s);
  // The same for a value made with its local type already.
  mlir::Value record(mlir::Value v, mlir::RankedTensorType global, const Sharding &s);

  // `v` in state `to` on `axis`. Cached per (value, axis, state) and placed right after
  // `v` is complete; arguments and slices go right before `current_` (the op being
  // partitioned); with `before`, uncached and right before it (ZeRO-3 gathers).
  mlir::Value convert(mlir::Value v, int axis, AxisState to, mlir::Operation *before = nullptr);
  // An all-reduce max over `axis` (the vocabulary-parallel row max).
  mlir::Value allReduceMax(mlir::OpBuilder &b, mlir::Value v, int axis);

protected:
  mlir::shard::ReductionKind sum();
  mlir::Value collective(mlir::OpBuilder &b, mlir::Value v, int axis, AxisState from,
                         AxisState to);

  mlir::MLIRContext *context_;
  llvm::SmallVector<int64_t> mesh_;
  int tpAxis_ = -1;
  int cpAxis_ = -1; // context parallelism: splits the sequence into balanced chunks
  llvm::SmallVector<std::string> axisNames_;
  bool failed_ = false;
  mlir::Operation *current_ = nullptr; // the op being partitioned
  llvm::DenseMap<mlir::Value, mlir::RankedTensorType> global_;
  llvm::DenseMap<mlir::Value, Sharding> sharding_;
  llvm::DenseMap<std::tuple<mlir::Value, int, int, int64_t>, mlir::Value> conversions_;
};

} // namespace apc::partition
