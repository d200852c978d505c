// Rules of the loss: ap.shift_labels, ap.cross_entropy (and gradient), ap.count_kept
// and the vocabulary-parallel loss ops. Rows of the loss (batch, sequence) may be
// split; a mean over split rows divides by the kept tokens of the whole global batch.
// Logits split on the vocabulary rewrite the loss into the vocabulary-parallel ops,
// which never gather the logits. Those ops are made by ap-partition and refuse to be
// split again.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

LogicalResult shardShiftLabels(ap::ShiftLabelsOp, RuleContext &c) {
  return shardPointwise(c, /*lastDimWhole=*/true); // shifts along the sequence
}

ap::OpCost costShiftLabels(ap::ShiftLabelsOp o) { return onePass(o, 0); }

LogicalResult shardCountKept(ap::CountKeptOp, RuleContext &c) {
  return c.results(c.state(0).isSplit() ? AxisState::p() : AxisState::r());
}

ap::OpCost costCountKept(ap::CountKeptOp o) { return onePass(o, 0); }

// Rows split: labels follow the logits' rows, the loss is a partial sum (the gradient
// keeps the rows' split); anything else computes whole.
template <typename Op> LogicalResult shardCrossEntropy(Op o, RuleContext &c) {
  c.wholeAll();
  AxisState out = AxisState::r();
  if (c.splitRows(0)) {
    c.want(1, c.state(0));
    for (unsigned i = 2; i < o->getNumOperands(); ++i)
      c.want(i, AxisState::r());
    out = std::is_same_v<Op, ap::CrossEntropyOp> ? AxisState::p() : c.state(0);
  } else {
    c.wantAll(AxisState::r());
  }
  if (out != AxisState::r() && o.getReduction() == "mean" && !o.getKeptCount())
    c.divideByGlobalKeptCount();
  return c.results(out);
}

template <typename Op> FailureOr<bool> rewriteCrossEntropy(Op o, RuleContext &c) {
  std::optional<int> axis = c.vocabularyAxis(o.getLogits());
  if (!axis)
    return false;
  if (failed(c.rewriteVocabParallelLoss(*axis)))
    return failure();
  return true;
}

// Row max, subtract, exponentiate, sum (and the target's logit), per logit.
ap::OpCost costCrossEntropy(ap::CrossEntropyOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 5.0 * elements(o.getLogits());
  return cost;
}

ap::OpCost costCrossEntropyGrad(ap::CrossEntropyGradOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 6.0 * elements(o.getLogits());
  return cost;
}

template <typename Op> LogicalResult madeByPartition(Op, RuleContext &c) {
  return c.refuse("is made by ap-partition from a loss over split logits and cannot be split "
                  "again");
}

template <typename Op, int FlopsPerLogit> ap::OpCost costPerLogit(Op o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = FlopsPerLogit * elements(o->getOperand(0));
  return cost;
}

ap::OpCost costVocabParallelLoss(ap::VocabParallelLossOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 3.0 * elements(o.getRowMax()); // log, subtract, sum per row
  return cost;
}

} // namespace

void attachLossRules(MLIRContext *context) {
  attach<ap::ShiftLabelsOp, shardShiftLabels, costShiftLabels>(context);
  attach<ap::CountKeptOp, shardCountKept, costCountKept>(context);
  attach<ap::CrossEntropyOp, shardCrossEntropy<ap::CrossEntropyOp>, costCrossEntropy,
         rewriteCrossEntropy<ap::CrossEntropyOp>>(context);
  attach<ap::CrossEntropyGradOp, shardCrossEntropy<ap::CrossEntropyGradOp>,
         costCrossEntropyGrad, rewriteCrossEntropy<ap::CrossEntropyGradOp>>(context);
  attach<ap::VocabParallelMaxOp, madeByPartition<ap::VocabParallelMaxOp>,
         costPerLogit<ap::VocabParallelMaxOp, 1>>(context);
  attach<ap::VocabParallelStatsOp, madeByPartition<ap::VocabParallelStatsOp>,
         costPerLogit<ap::VocabParallelStatsOp, 3>>(context);
  attach<ap::VocabParallelLossOp, madeByPartition<ap::VocabParallelLossOp>,
         costVocabParallelLoss>(context);
  attach<ap::VocabParallelLossGradOp, madeByPartition<ap::VocabParallelLossGradOp>,
         costPerLogit<ap::VocabParallelLossGradOp, 5>>(context);
}

} // namespace apc::rules
