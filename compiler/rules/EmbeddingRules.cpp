// Rules of the token embedding and its gradient. Split on the vocabulary (the
// Megatron vocabulary-parallel embedding), each device looks up the ids of its block
// and the partial rows are summed right after; `vocab_shard_axis` tells lowering which
// block the device holds. A lookup moves bytes and computes nothing.
#include "compiler/rules/RuleModels.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

namespace apc::rules {
namespace {

IntegerAttr axisAttr(Operation *op, int axis) {
  return IntegerAttr::get(IntegerType::get(op->getContext(), 64), axis);
}

LogicalResult shardEmbedding(ap::EmbeddingOp o, RuleContext &c) {
  AxisState w = c.state(0);
  if (w.kind == AxisState::R)
    return c.results(c.state(1)); // split ids give split rows
  if (w.isSplit() && w.dim == 0) { // vocabulary-parallel: ids whole, partial rows
    c.want(1, AxisState::r());
    o.setVocabShardAxisAttr(axisAttr(o, c.axis()));
    c.reduceResultEagerly();
    return c.results(AxisState::p());
  }
  return c.noRule();
}

ap::OpCost costEmbedding(ap::EmbeddingOp o) {
  ap::OpCost cost;
  cost.bytesRead = bytes(o.getIds()) + bytes(o.getResult()); // the rows it gathers
  cost.bytesWritten = bytes(o.getResult());
  return cost;
}

LogicalResult shardEmbeddingGrad(ap::EmbeddingGradOp o, RuleContext &c) {
  c.whole(1);
  // The table's gradient in the vocabulary-parallel layout its parameter has.
  std::optional<AxisState> layout = c.gradientLayout(o.getGradWeight());
  if (c.isTensorAxis() && layout && *layout == AxisState::s(0)) {
    c.want(0, AxisState::r());
    c.want(1, AxisState::r());
    o.setVocabShardAxisAttr(axisAttr(o, c.axis()));
    return c.results(AxisState::s(0));
  }
  if (c.state(1).isSplit() && c.state(1).dim <= c.lastDim(0)) { // rows of the batch
    c.want(0, c.state(1));
    return c.results(AxisState::p());
  }
  c.want(1, AxisState::r());
  c.want(0, AxisState::r());
  return c.results(AxisState::r());
}

ap::OpCost costEmbeddingGrad(ap::EmbeddingGradOp o) {
  ap::OpCost cost = onePass(o, 0); // reads ids and rows, writes the whole table
  cost.flops = elements(o.getGradOutput()); // one add per gradient element
  return cost;
}

} // namespace

void attachEmbeddingRules(MLIRContext *context) {
  attach<ap::EmbeddingOp, shardEmbedding, costEmbedding>(context);
  attach<ap::EmbeddingGradOp, shardEmbeddingGrad, costEmbeddingGrad>(context);
}

} // namespace apc::rules
