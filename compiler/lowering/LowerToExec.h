// ap training step (after ap-optimizer) -> ExecProgram: buffers and kernel calls.
#pragma once

#include "compiler/lowering/ExecProgram.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace apc::lowering {

// Lowers `step` (the function ap-optimizer produced) to one device's program and plans
// its memory. Emits a located error and fails on IR it cannot lower.
mlir::FailureOr<ExecProgram> lowerToExec(mlir::func::FuncOp step);

} // namespace apc::lowering
