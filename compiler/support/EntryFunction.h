// Finding the training step in a module and reading the names APC attaches to it.
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace apc {

// The function passes work on: @train_step, else the only function. Emits an error
// on `module` and fails otherwise.
mlir::FailureOr<mlir::func::FuncOp> findEntryFunction(mlir::ModuleOp module);

// `ap.name` / `ap.role` of argument or result `index` ("" when absent).
std::string argName(mlir::func::FuncOp fn, unsigned index);
std::string argRole(mlir::func::FuncOp fn, unsigned index);
std::string resultName(mlir::func::FuncOp fn, unsigned index);

// The attribute dictionary {ap.name = name, ap.role = role} (role omitted if empty).
mlir::DictionaryAttr nameAttrs(mlir::MLIRContext *context, const std::string &name,
                               const std::string &role = "");

} // namespace apc
