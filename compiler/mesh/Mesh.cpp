// ap-mesh: the first phase. The plan travels as `#ap.parallel` on the module; this pass
// declares the device mesh it implies (axes named, see compiler/support/Mesh.h), and
// with its `plan` option sets the plan first, so apc-opt and lit tests reach every
// phase through the same attribute the driver sets.
#include "compiler/Passes.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Mesh.h"

#include "dialects/ap/IR/ApAttrs.h"

namespace apc {

#define GEN_PASS_DEF_APMESHPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

struct ApMeshPass : impl::ApMeshPassBase<ApMeshPass> {
  using ApMeshPassBase::ApMeshPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!plan.empty() && failed(setPlan(module)))
      return signalPassFailure();
    if (failed(declareMesh(module)))
      return signalPassFailure();
  }

  LogicalResult setPlan(ModuleOp module) {
    auto parsed = partition::parseParallelPlan(plan);
    if (!parsed)
      return module.emitError() << "ap-mesh: " << parsed.message();
    FailureOr<func::FuncOp> entry = findEntryFunction(module);
    if (failed(entry))
      return failure();
    auto context = partition::planContextOf(*entry, parsed->devices(),
                                            "of " + std::to_string(parsed->devices()));
    if (!context)
      return entry->emitError() << "ap-mesh: " << context.message();
    if (Status s = partition::validate(*parsed, *context); !s)
      return module.emitError() << "ap-mesh: " << s.message();
    module->setAttr(kParallelAttr, partition::toAttr(&getContext(), *parsed));
    return success();
  }
};

} // namespace
} // namespace apc
