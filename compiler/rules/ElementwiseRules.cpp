// Rules of the elementwise ops: ap.add, ap.mul, ap.cast, ap.silu, ap.silu_grad,
// ap.sqrt, ap.fill. One pass over memory each; FLOPs per element as the kernel does
// them (silu: exp, add, divide, multiply).
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {

LogicalResult shardLikeSum(RuleContext &c) {
  Operation *op = c.op();
  for (unsigned i = 0; i < op->getNumOperands(); ++i)
    if (c.state(i).isSplit()) {
      AxisState to = c.state(i);
      c.wantAll(to);
      return c.results(to);
    }
  bool allPartial = op->getNumOperands() > 0;
  for (unsigned i = 0; i < op->getNumOperands(); ++i)
    allPartial = allPartial && c.state(i).kind == AxisState::P;
  if (allPartial)
    return c.results(AxisState::p());
  c.wholeAll();
  return c.results(AxisState::r());
}

LogicalResult shardPointwise(RuleContext &c, bool lastDimWhole) {
  c.wholeAll();
  Operation *op = c.op();
  for (unsigned i = 0; i < op->getNumOperands(); ++i)
    if (c.state(i).isSplit()) {
      AxisState to = c.state(i);
      if (lastDimWhole && to.dim == c.lastDim(i))
        to = AxisState::r();
      c.wantAll(to);
      return c.results(to);
    }
  return c.results(AxisState::r());
}

namespace {

template <typename Op> LogicalResult sumLike(Op, RuleContext &c) { return shardLikeSum(c); }
template <typename Op> LogicalResult pointwise(Op, RuleContext &c) { return shardPointwise(c); }
template <typename Op, int Flops> ap::OpCost perElement(Op o) {
  return onePass(o.getOperation(), Flops);
}

} // namespace

void attachElementwiseRules(MLIRContext *context) {
  attach<ap::AddOp, sumLike<ap::AddOp>, perElement<ap::AddOp, 1>>(context);
  attach<ap::CastOp, sumLike<ap::CastOp>, perElement<ap::CastOp, 0>>(context);
  attach<ap::MulOp, pointwise<ap::MulOp>, perElement<ap::MulOp, 1>>(context);
  attach<ap::SiluOp, pointwise<ap::SiluOp>, perElement<ap::SiluOp, 4>>(context);
  attach<ap::SiluGradOp, pointwise<ap::SiluGradOp>, perElement<ap::SiluGradOp, 7>>(context);
  attach<ap::SqrtOp, pointwise<ap::SqrtOp>, perElement<ap::SqrtOp, 1>>(context);
  attach<ap::FillOp, pointwise<ap::FillOp>, perElement<ap::FillOp, 0>>(context);
}

} // namespace apc::rules
