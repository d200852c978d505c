// Rules of the dense layers: ap.linear (Megatron's column- and row-parallel splits of
// the [out, in] weight) and ap.matmul (batched, with transposes: the backward's
// products). Both run as GEMMs: 2 FLOPs per multiply-add.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

LogicalResult shardLinear(ap::LinearOp, RuleContext &c) {
  c.whole(0);
  AxisState w = c.state(1);
  if (w.kind == AxisState::R) { // the weight whole: rows follow the input
    if (c.state(0).isSplit() && !c.splitRows(0))
      c.want(0, AxisState::r());
    return c.results(c.state(0));
  }
  if (w.isSplit() && w.dim == 0) { // column-parallel: output features split
    c.want(0, AxisState::r());
    return c.results(AxisState::s(c.lastDim(0)));
  }
  if (w.isSplit() && w.dim == 1) { // row-parallel: partial sums, reduced right away
    c.want(0, AxisState::s(c.lastDim(0)));
    c.reduceResultEagerly();
    return c.results(AxisState::p());
  }
  return c.noRule();
}

ap::OpCost costLinear(ap::LinearOp o) {
  ap::OpCost cost = onePass(o, 0);
  auto w = cast<RankedTensorType>(o.getWeight().getType());
  cost.flops = 2.0 * elements(o.getResult()) * double(w.getDimSize(1));
  return cost;
}

// Tries the splits a product computes from directly; otherwise converts an operand
// (a split contraction dim meets its partner, else gathers) and tries again.
LogicalResult shardMatmul(ap::MatmulOp o, RuleContext &c) {
  c.whole(0);
  c.whole(1);
  int64_t r = c.rank(0);
  bool ta = o.getTransposeLhs(), tb = o.getTransposeRhs();
  int64_t mDim = ta ? r - 1 : r - 2, kA = ta ? r - 2 : r - 1;
  int64_t kB = tb ? r - 1 : r - 2, nDim = tb ? r - 2 : r - 1;
  for (int attempt = 0; attempt < 3; ++attempt) {
    AxisState a = c.state(0), b = c.state(1);
    if (a.kind == AxisState::R && b.kind == AxisState::R)
      return c.results(AxisState::r());
    if (a.isSplit() && b.isSplit() && a.dim == b.dim && a.dim < r - 2)
      return c.results(a); // batch dims
    if (a.isSplit() && a.dim == mDim && b.kind == AxisState::R)
      return c.results(AxisState::s(r - 2));
    if (a.kind == AxisState::R && b.isSplit() && b.dim == nDim)
      return c.results(AxisState::s(r - 1));
    if (a.isSplit() && a.dim == kA && b.isSplit() && b.dim == kB)
      return c.results(AxisState::p());
    if (a.isSplit() && a.dim == kA && b.kind == AxisState::R) {
      c.want(1, AxisState::s(kB));
      continue;
    }
    if (a.kind == AxisState::R && b.isSplit() && b.dim == kB) {
      c.want(0, AxisState::s(kA));
      continue;
    }
    c.want(b.isSplit() ? 1 : 0, AxisState::r()); // gather the right operand, then the left
  }
  return c.noRule();
}

ap::OpCost costMatmul(ap::MatmulOp o) {
  ap::OpCost cost = onePass(o, 0);
  auto a = cast<RankedTensorType>(o.getLhs().getType());
  int64_t k = o.getTransposeLhs() ? a.getDimSize(a.getRank() - 2) : a.getShape().back();
  cost.flops = 2.0 * elements(o.getResult()) * double(k);
  return cost;
}

} // namespace

void attachDenseRules(MLIRContext *context) {
  attach<ap::LinearOp, shardLinear, costLinear>(context);
  attach<ap::MatmulOp, shardMatmul, costMatmul>(context);
}

} // namespace apc::rules
