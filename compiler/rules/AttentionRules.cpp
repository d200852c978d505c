// Rules of rotary embeddings and causal attention, on [batch, seq, heads, head_dim]
// values. RoPE rotates pairs along head_dim at each position: batch and heads may be
// split, and positions on the context-parallel axis only, where each device knows which
// two chunks of the sequence it holds (seq_shard_axis). Attention is independent per
// batch row and per head (grouped-query heads split with their kv heads); on the
// context axis the queries stay split and the keys and values are all-gathered (the
// Llama 3 paper's choice: with grouped-query attention K and V are a fraction of the
// activations, and one gather needs no ring schedule); the backward gathers them again
// and reduce-scatters their gradients. Attention's FLOPs are the causal halves of q.k^T
// and p.v over the keys; its backward recomputes the probabilities and does 2.5 times
// the forward's work, as flash attention does.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

IntegerAttr i64(Operation *op, int64_t v) {
  return IntegerAttr::get(IntegerType::get(op->getContext(), 64), v);
}

// The device holds its two chunks of the sequence on the context axis.
template <typename Op> void markSequenceShard(Op o, RuleContext &c) {
  o.setSeqShardAxisAttr(i64(o, c.axis()));
  o.setSeqShardPartsAttr(i64(o, c.axisSize()));
}

template <typename Op> LogicalResult shardRope(Op o, RuleContext &c) {
  c.whole(0);
  AxisState x = c.state(0);
  if (c.isContextAxis() && x == AxisState::s(1)) {
    markSequenceShard(o, c);
    return c.results(x);
  }
  if (x.isSplit() && (x.dim == 1 || x.dim == c.lastDim(0))) // positions, pairs
    c.want(0, AxisState::r());
  return c.results(c.state(0));
}

// Two multiplies and an add per element (the angles are a table).
template <typename Op> ap::OpCost costRope(Op o) { return onePass(o, 3); }

// Context axis, queries split on the sequence: keys and values gathered whole (in the
// backward again, right before it), the query rows' results split; the keys' and values'
// gradients, partial sums over the devices' queries, reduce-scattered right after.
template <typename Op> LogicalResult shardContextAttention(Op o, RuleContext &c) {
  constexpr bool backward = std::is_same_v<Op, ap::AttentionGradOp>;
  for (unsigned i : {1u, 2u})
    backward ? c.wantHere(i, AxisState::r()) : c.want(i, AxisState::r());
  if (backward)
    c.want(3, AxisState::s(1));
  markSequenceShard(o, c);
  if (!backward)
    return c.results(AxisState::s(1));
  c.reduceResultEagerly();
  return c.results({AxisState::s(1), AxisState::p(), AxisState::p()});
}

template <typename Op> LogicalResult shardAttention(Op o, RuleContext &c) {
  c.wholeAll();
  if (c.isContextAxis() && c.state(0) == AxisState::s(1))
    return shardContextAttention(o, c);
  AxisState to = c.state(0);
  if (to.isSplit() && to.dim != 0 && to.dim != 2) // batch or heads only
    to = AxisState::r();
  c.wantAll(to);
  return c.results(to);
}

// Per (batch, head): the causal half of 4 sq sk d. With the queries split over the context
// axis (sq = sk / cp) the load-balanced chunks see half the keys on average too.
double causalAttentionFlops(Value query, Value key) {
  auto q = cast<RankedTensorType>(query.getType());
  double sq = double(q.getDimSize(1));
  double sk = double(cast<RankedTensorType>(key.getType()).getDimSize(1));
  return 2.0 * double(q.getDimSize(0) * q.getDimSize(2)) * sq * sk * double(q.getDimSize(3));
}

ap::OpCost costAttention(ap::AttentionOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = causalAttentionFlops(o.getQuery(), o.getKey());
  return cost;
}

ap::OpCost costAttentionGrad(ap::AttentionGradOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = 2.5 * causalAttentionFlops(o.getQuery(), o.getKey());
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
