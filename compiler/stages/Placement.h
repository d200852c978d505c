// Placing the ops of the step of one micro-batch on pipeline stages, apart from building
// the stage functions: what ap-assign-stages writes and ap-pipeline reads.
#pragma once

#include "mlir/IR/BuiltinOps.h"

namespace apc::stages {

// Marks every per-micro-batch op of the module's step with its stage (`ap.stage = s`)
// and, in the backward phase, `ap.backward`: decoder layers by the plan's stages (or
// balanced by cost), the embedding on the first stage, the final norm, LM head and loss
// on the last; ops of the batch alone stay unmarked (cloned wherever used). Nothing to do
// without pp or mb. Emits a located error and fails on a step it cannot place.
mlir::LogicalResult placeOnStages(mlir::ModuleOp module);

} // namespace apc::stages
