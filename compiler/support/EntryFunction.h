// Finding the training step in a module and reading the names APC attaches to it.
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include "dialects/ap/IR/ApAttrs.h"

#include <optional>
#include <string>

namespace apc {

// The function passes work on: @train_step, else the only function. Emits an error
// on `module` and fails otherwise.
mlir::FailureOr<mlir::func::FuncOp> findEntryFunction(mlir::ModuleOp module);

// `ap.name` / `ap.role` of argument or result `index` ("" when absent).
std::string argName(mlir::func::FuncOp fn, unsigned index);
std::string argRole(mlir::func::FuncOp fn, unsigned index);
std::string resultName(mlir::func::FuncOp fn, unsigned index);

// The frontend's marks: what batch input argument `index` holds (`ap.batch`), and the
// tensor-parallel layout of a parameter (`ap.layout`); nullopt when unmarked.
std::optional<ap::BatchInput> batchInput(mlir::func::FuncOp fn, unsigned index);
std::optional<ap::TensorLayout> tensorLayout(mlir::func::FuncOp fn, unsigned index);
// The argument marked `ap.batch = #ap.batch<which>`, or null.
mlir::BlockArgument batchArgument(mlir::func::FuncOp fn, ap::BatchInput which);

// The attribute dictionary {ap.name = name, ap.role = role} (role omitted if empty).
mlir::DictionaryAttr nameAttrs(mlir::MLIRContext *context, const std::string &name,
                               const std::string &role = "");

} // namespace apc
