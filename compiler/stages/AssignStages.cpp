// ap-assign-stages: which pipeline stage each op runs on, written on the ops (see
// Passes.td); the placement itself is shared with ap-pipeline (compiler/stages/Placement.h).
#include "compiler/Passes.h"
#include "compiler/stages/Placement.h"

#include "mlir/IR/Verifier.h"

namespace apc {

#define GEN_PASS_DEF_APASSIGNSTAGESPASS
#include "compiler/Passes.h.inc"

namespace {

struct ApAssignStagesPass : impl::ApAssignStagesPassBase<ApAssignStagesPass> {
  void runOnOperation() override {
    if (mlir::failed(stages::placeOnStages(getOperation())))
      return signalPassFailure();
  }
};

} // namespace
} // namespace apc
