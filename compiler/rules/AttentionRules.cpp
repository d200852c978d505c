// Rules of rotary embeddings and causal attention, on [batch, seq, heads, head_dim]
// values. RoPE rotates pairs along head_dim at each position: batch and heads may be
// split, not positions or pairs. Attention is independent per batch row and per head
// (grouped-query heads split with their kv heads): only those dims split. Attention's
// FLOPs are the causal halves of q.k^T and p.v; its backward recomputes the
// probabilities and does 2.5 times the forward's work, as flash attention does.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

template <typename Op> LogicalResult shardRope(Op, RuleContext &c) {
  c.whole(0);
  AxisState x = c.state(0);
  if (x.isSplit() && (x.dim == 1 || x.dim == c.lastDim(0))) // positions, pairs
    c.want(0, AxisState::r());
  return c.results(c.state(0));
}

// Two multiplies and an add per element (the angles are a table).
template <typename Op> ap::OpCost costRope(Op o) { return onePass(o, 3); }

template <typename Op> LogicalResult shardAttention(Op, RuleContext &c) {
  c.wholeAll();
  AxisState to = c.state(0);
  if (to.isSplit() && to.dim != 0 && to.dim != 2) // batch or heads only
    to = AxisState::r();
  c.wantAll(to);
  return c.results(to);
}

double causalAttentionFlops(Value query) {
  auto q = cast<RankedTensorType>(query.getType());
  double s = double(q.getDimSize(1));
  return 2.0 * double(q.getDimSize(0) * q.getDimSize(2)) * s * s * double(q.getDimSize(3));
}

ap::OpCost costAttention(ap::AttentionOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = causalAttentionFlops(o.getQuery());
  return cost;
}

ap::OpCost costAttentionGrad(ap::AttentionGradOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 2.5 * causalAttentionFlops(o.getQuery());
  return cost;
}

} // namespace

void attachAttentionRules(MLIRContext *context) {
  attach<ap::RopeOp, shardRope<ap::RopeOp>, costRope<ap::RopeOp>>(context);
  attach<ap::RopeGradOp, shardRope<ap::RopeGradOp>, costRope<ap::RopeGradOp>>(context);
  attach<ap::AttentionOp, shardAttention<ap::AttentionOp>, costAttention>(context);
  attach<ap::AttentionGradOp, shardAttention<ap::AttentionGradOp>, costAttentionGrad>(context);
}

} // namespace apc::rules
