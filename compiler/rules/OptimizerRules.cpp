// Rules of the optimizer's ops: ap.grad_norm (the global L2 norm: rewritten by the
// partitioner into per-layout sums of squares all-reduced over their split axes) and
// ap.adamw (each parameter updated in its optimizer layout: Megatron's split on tp and,
// under ZeRO, a split on dp; partial gradients are reduce-scattered into it, or under
// ZeRO-1 all-reduced whole first). AdamW is memory-bound: it reads parameter,
// gradient and both moments and writes three of them.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

LogicalResult shardGradNorm(ap::GradNormOp, RuleContext &c) { return c.noRule(); }

FailureOr<bool> rewriteGradNorm(ap::GradNormOp, RuleContext &c) {
  if (failed(c.rewriteGradNorm()))
    return failure();
  return true;
}

ap::OpCost costGradNorm(ap::GradNormOp o) {
  ap::OpCost cost = onePass(o, 0);
  for (Value g : o.getGrads())
    cost.flops += 2.0 * elements(g); // square and add
  return cost;
}

LogicalResult shardAdamW(ap::AdamWOp o, RuleContext &c) {
  AxisState to = c.parameterLayout(o);
  if (c.reducesGradientsWhole()) // ZeRO-1: all-reduce, then slice
    c.want(1, AxisState::r());
  c.want(1, to); // a partial gradient: reduce-scattered (ZeRO-2/3)
  for (unsigned i : {0u, 2u, 3u})
    c.want(i, to);
  for (unsigned i = 4; i < o->getNumOperands(); ++i)
    c.want(i, AxisState::r());
  return c.results(to);
}

// Both moments, the bias corrections, the update and weight decay: about 14
// operations per element.
ap::OpCost costAdamW(ap::AdamWOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 14.0 * elements(o.getParam());
  return cost;
}

} // namespace

void attachOptimizerRules(MLIRContext *context) {
  attach<ap::GradNormOp, shardGradNorm, costGradNorm, rewriteGradNorm>(context);
  attach<ap::AdamWOp, shardAdamW, costAdamW>(context);
}

} // namespace apc::rules
