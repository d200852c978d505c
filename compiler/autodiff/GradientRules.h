// The gradient rule of every differentiable `ap` op.
#pragma once

#include "mlir/IR/Builders.h"
#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"

namespace apc::autodiff {

// Builds, at the builder's insertion point, the gradients of `op`'s operands given the
// gradients of its results (`resultGrads[i]` may be null: no gradient flows there).
// Returns one value per operand, null for operands without a gradient (integer ids
// and labels). Emits an error on `op` and fails if the op has no gradient rule.
mlir::FailureOr<llvm::SmallVector<mlir::Value>>
buildOperandGradients(mlir::OpBuilder &builder, mlir::Operation *op,
                      llvm::ArrayRef<mlir::Value> resultGrads);

} // namespace apc::autodiff
