// ap-print-cost: the cost rules made visible, one remark per op (see Passes.td).
#include "compiler/Passes.h"

#include "dialects/ap/IR/ApInterfaces.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

namespace apc {

#define GEN_PASS_DEF_APPRINTCOSTPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

struct ApPrintCostPass : impl::ApPrintCostPassBase<ApPrintCostPass> {
  void runOnOperation() override {
    bool ok = true;
    getOperation().walk([&](Operation *op) {
      if (isa<ModuleOp, func::FuncOp, func::ReturnOp, shard::GridOp>(op)) // structure, not work
        return;
      auto rule = dyn_cast<ap::CostOpInterface>(op);
      if (!rule) {
        op->emitOpError() << "has no cost rule (an op's rules live in compiler/rules/)";
        ok = false;
        return;
      }
      ap::OpCost c = rule.cost();
      op->emitRemark() << "cost: flops " << int64_t(c.flops) << ", read "
                       << int64_t(c.bytesRead) << " B, written " << int64_t(c.bytesWritten)
                       << " B, sent " << int64_t(c.bytesSent) << " B, group " << c.groupSize;
    });
    if (!ok)
      signalPassFailure();
  }
};

} // namespace
} // namespace apc
