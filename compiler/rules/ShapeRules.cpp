// Rules of the ops that move or sum whole dims: ap.reshape (an alias at run time:
// free), ap.transpose (a copy), ap.reduce_sum and its adjoint ap.broadcast. A split
// follows its dim to where the op puts it.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

// The result dim that holds the blocks of input dim `d` split in `parts`: the dims
// from it on must cover the same trailing elements, so blocks of one are blocks of
// the other.
std::optional<int64_t> reshapedDim(RankedTensorType in, RankedTensorType out, int64_t d,
                                   int64_t parts) {
  int64_t tailIn = 1;
  for (int64_t i = d; i < in.getRank(); ++i)
    tailIn *= in.getDimSize(i);
  int64_t tailOut = 1;
  for (int64_t j = out.getRank() - 1; j >= 0; --j) {
    tailOut *= out.getDimSize(j);
    if (tailOut == tailIn)
      return out.getDimSize(j) % parts == 0 ? std::optional<int64_t>(j) : std::nullopt;
    if (tailOut > tailIn)
      break;
  }
  return std::nullopt;
}

// On the context axis a split holds a device's chunks of the sequence in every batch
// row: (batch, seq) rows merged into one dim keep that split (the linear's gradient
// flattens [batch, seq, features] into rows), and rows unmerged give it back to the seq
// dim, the innermost of the dims they come apart into. The local rows are the same in
// either shape. Only the sequence as the innermost dim of a merge keeps the split
// ([batch, seq, heads] into [batch, seq x heads] does not); such merged rows hold the
// chunks row by row, which no collective on the cp axis may gather or slice
// (ShardedValues::convert refuses dim 0 there).
std::optional<int64_t> contextReshapedDim(RankedTensorType in, RankedTensorType out, int64_t d,
                                          int64_t parts) {
  int64_t i = 0, j = 0;
  while (i < in.getRank() && j < out.getRank()) {
    int64_t i0 = i, j0 = j, a = in.getDimSize(i++), b = out.getDimSize(j++);
    while (a != b && i <= in.getRank() && j <= out.getRank()) {
      if (a < b && i < in.getRank())
        a *= in.getDimSize(i++);
      else if (b < a && j < out.getRank())
        b *= out.getDimSize(j++);
      else
        return std::nullopt;
    }
    if (d < i0 || d >= i)
      continue;
    // The group of dims that holds d: d innermost among its inputs (a merge of the rows
    // into one dim, or one dim coming apart), the split on its innermost result dim.
    if (d != i - 1 || (i - i0 > 1 && j - j0 > 1))
      return std::nullopt;
    int64_t target = j - 1;
    return out.getDimSize(target) % (2 * parts) == 0 ? std::optional<int64_t>(target)
                                                     : std::nullopt;
  }
  return std::nullopt;
}

LogicalResult shardReshape(ap::ReshapeOp o, RuleContext &c) {
  if (!c.state(0).isSplit())
    return c.results(c.state(0));
  if (c.isContextAxis()) {
    if (auto j = contextReshapedDim(c.globalOf(o.getInput()), c.globalOf(o.getResult()),
                                    c.state(0).dim, c.axisSize()))
      return c.results(AxisState::s(*j));
    c.want(0, AxisState::r());
    return c.results(AxisState::r());
  }
  if (auto j = reshapedDim(c.globalOf(o.getInput()), c.globalOf(o.getResult()), c.state(0).dim,
                           c.axisSize()))
    return c.results(AxisState::s(*j));
  c.want(0, AxisState::r());
  return c.results(AxisState::r());
}

ap::OpCost costReshape(ap::ReshapeOp) { return {}; } // an alias of its input's bytes

LogicalResult shardTranspose(ap::TransposeOp o, RuleContext &c) {
  if (!c.state(0).isSplit())
    return c.results(c.state(0));
  ArrayRef<int64_t> perm = o.getPermutation();
  for (int64_t j = 0; j < int64_t(perm.size()); ++j)
    if (perm[j] == c.state(0).dim)
      return c.results(AxisState::s(j));
  return c.noRule();
}

ap::OpCost costTranspose(ap::TransposeOp o) { return onePass(o, 0); }

LogicalResult shardReduceSum(ap::ReduceSumOp o, RuleContext &c) {
  AxisState x = c.state(0);
  if (!x.isSplit())
    return c.results(x);
  if (llvm::is_contained(o.getDims(), x.dim))
    return c.results(AxisState::p()); // summing a split dim leaves partial sums
  int64_t d = x.dim;
  if (!o.getKeepDims())
    for (int64_t r : o.getDims())
      d -= r < x.dim ? 1 : 0;
  return c.results(AxisState::s(d));
}

ap::OpCost costReduceSum(ap::ReduceSumOp o) {
  ap::OpCost cost = onePass(o, 0);
  cost.flops = elements(o.getInput());
  return cost;
}

LogicalResult shardBroadcast(ap::BroadcastOp o, RuleContext &c) {
  c.whole(0);
  if (!c.state(0).isSplit())
    return c.results(c.state(0));
  int64_t seen = -1;
  for (int64_t j = 0; j < c.globalOf(o.getResult()).getRank(); ++j)
    if (!llvm::is_contained(o.getDims(), j) && ++seen == c.state(0).dim)
      return c.results(AxisState::s(j));
  return c.noRule();
}

ap::OpCost costBroadcast(ap::BroadcastOp o) { return onePass(o, 0); }

} // namespace

void attachShapeRules(MLIRContext *context) {
  attach<ap::ReshapeOp, shardReshape, costReshape>(context);
  attach<ap::TransposeOp, shardTranspose, costTranspose>(context);
  attach<ap::ReduceSumOp, shardReduceSum, costReduceSum>(context);
  attach<ap::BroadcastOp, shardBroadcast, costBroadcast>(context);
}

} // namespace apc::rules
