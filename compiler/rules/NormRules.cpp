// Rules of RMS normalisation and its gradient. The norm runs along the last (hidden)
// dim, so rows may be split (the batch, or the sequence under sequence parallelism)
// and the hidden dim must be whole; the weight is replicated. The weight's gradient
// sums over rows: partial where rows are split.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

// The input with whole rows: partial sums made whole (sequence-split under sequence
// parallelism on the tensor axis), a split hidden dim gathered.
void wholeRows(RuleContext &c, Value input) {
  c.want(1, AxisState::r());
  if (c.state(0).kind == AxisState::P)
    c.want(0, c.wholeTarget(input));
  if (c.state(0).isSplit() && !c.splitRows(0))
    c.want(0, AxisState::r());
}

LogicalResult shardRmsNorm(ap::RmsNormOp o, RuleContext &c) {
  wholeRows(c, o.getInput());
  return c.results(c.state(0));
}

// Square, sum, scale by the reciprocal root, scale by the weight.
ap::OpCost costRmsNorm(ap::RmsNormOp o) { return onePass(o, 4); }

LogicalResult shardRmsNormGrad(ap::RmsNormGradOp o, RuleContext &c) {
  wholeRows(c, o.getInput());
  AxisState x = c.state(0);
  c.want(2, x);
  return c.results({x, x.isSplit() ? AxisState::p() : AxisState::r()});
}

// Recomputes the statistics, then two row reductions and the update, per element.
ap::OpCost costRmsNormGrad(ap::RmsNormGradOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 10.0 * elements(o.getInput());
  return cost;
}

} // namespace

void attachNormRules(MLIRContext *context) {
  attach<ap::RmsNormOp, shardRmsNorm, costRmsNorm>(context);
  attach<ap::RmsNormGradOp, shardRmsNormGrad, costRmsNormGrad>(context);
}

} // namespace apc::rules
