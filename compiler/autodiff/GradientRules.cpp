// Gradient rules, one per op, as a TypeSwitch so that the dialect itself stays free of
// compiler logic. Dense layers are differentiated into 2-D ap.matmul ops (the GEMMs a
// runtime has kernels for); the ops whose backward is one fused kernel get a gradient
// op (ApOps.td, "Gradients").
#include "compiler/autodiff/GradientRules.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;

namespace apc::autodiff {
namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

// [..., n] -> [rows, n] (no-op for rank 2).
Value flattenTo2d(OpBuilder &b, Location loc, Value v) {
  auto type = typeOf(v);
  if (type.getRank() == 2)
    return v;
  // The rows are the leading dims' product: elements / n loses them when n is 0.
  int64_t rows = 1;
  for (int64_t d : type.getShape().drop_back())
    rows *= d;
  auto flat = RankedTensorType::get({rows, type.getShape().back()}, type.getElementType());
  return ap::ReshapeOp::create(b, loc, flat, v);
}

Value reshapeTo(OpBuilder &b, Location loc, Value v, Type type) {
  if (v.getType() == type)
    return v;
  return ap::ReshapeOp::create(b, loc, type, v);
}

Value matmul2d(OpBuilder &b, Location loc, Value lhs, Value rhs, bool tl, bool tr) {
  auto l = typeOf(lhs), r = typeOf(rhs);
  int64_t m = tl ? l.getDimSize(1) : l.getDimSize(0);
  int64_t n = tr ? r.getDimSize(0) : r.getDimSize(1);
  auto type = RankedTensorType::get({m, n}, l.getElementType());
  return ap::MatmulOp::create(b, loc, type, lhs, rhs, tl, tr);
}

using Grads = SmallVector<Value>;

Grads linearGrad(OpBuilder &b, ap::LinearOp op, Value dy) {
  Location loc = op.getLoc();
  Value dy2 = flattenTo2d(b, loc, dy);
  Value x2 = flattenTo2d(b, loc, op.getInput());
  // y = x w^T: dx = dy w, dw = dy^T x.
  Value dx = reshapeTo(b, loc, matmul2d(b, loc, dy2, op.getWeight(), false, false),
                       op.getInput().getType());
  Value dw = matmul2d(b, loc, dy2, x2, true, false);
  return {dx, dw};
}

Grads matmulGrad(OpBuilder &b, ap::MatmulOp op, Value dc) {
  Location loc = op.getLoc();
  bool ta = op.getTransposeLhs(), tb = op.getTransposeRhs();
  Value a = op.getLhs(), bv = op.getRhs();
  // C = op(A) op(B). For A (not transposed): dA = dC op(B)^T; transposed: op(B) dC^T.
  Value da = !ta ? ap::MatmulOp::create(b, loc, a.getType(), dc, bv, false, !tb)
                 : ap::MatmulOp::create(b, loc, a.getType(), bv, dc, tb, true);
  Value db = !tb ? ap::MatmulOp::create(b, loc, bv.getType(), a, dc, !ta, false)
                 : ap::MatmulOp::create(b, loc, bv.getType(), dc, a, true, ta);
  return {da, db};
}

Grads reduceSumGrad(OpBuilder &b, ap::ReduceSumOp op, Value dy) {
  Location loc = op.getLoc();
  auto input = typeOf(op.getInput());
  if (op.getKeepDims()) { // drop the kept 1s, then broadcast back
    SmallVector<int64_t> shape;
    for (int64_t d = 0; d < input.getRank(); ++d)
      if (!llvm::is_contained(op.getDims(), d))
        shape.push_back(input.getDimSize(d));
    dy = reshapeTo(b, loc, dy, RankedTensorType::get(shape, input.getElementType()));
  }
  SmallVector<int64_t> dims(op.getDims());
  llvm::sort(dims);
  return {ap::BroadcastOp::create(b, loc, input, dy, b.getDenseI64ArrayAttr(dims))};
}

Grads transposeGrad(OpBuilder &b, ap::TransposeOp op, Value dy) {
  ArrayRef<int64_t> perm = op.getPermutation();
  SmallVector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    inverse[perm[i]] = int64_t(i);
  return {ap::TransposeOp::create(b, op.getLoc(), op.getInput().getType(), dy,
                                  b.getDenseI64ArrayAttr(inverse))};
}

} // namespace

FailureOr<SmallVector<Value>> buildOperandGradients(OpBuilder &b, Operation *op,
                                                    ArrayRef<Value> resultGrads) {
  Value dy = resultGrads.empty() ? Value() : resultGrads.front();
  Location loc = op->getLoc();
  std::optional<Grads> grads =
      llvm::TypeSwitch<Operation *, std::optional<Grads>>(op)
          .Case([&](ap::EmbeddingOp o) -> Grads {
            return {ap::EmbeddingGradOp::create(b, loc, o.getWeight().getType(), o.getIds(), dy),
                    Value()};
          })
          .Case([&](ap::LinearOp o) { return linearGrad(b, o, dy); })
          .Case([&](ap::MatmulOp o) { return matmulGrad(b, o, dy); })
          .Case([&](ap::RmsNormOp o) -> Grads {
            auto g = ap::RmsNormGradOp::create(b, loc, o.getInput().getType(),
                                               o.getWeight().getType(), o.getInput(),
                                               o.getWeight(), dy, o.getEpsilonAttr());
            return {g.getGradInput(), g.getGradWeight()};
          })
          .Case([&](ap::RopeOp o) -> Grads {
            auto g = ap::RopeGradOp::create(
                b, loc, o.getInput().getType(), dy, o.getThetaAttr(), o.getRopeTypeAttr(),
                o.getFactorAttr(), o.getLowFreqFactorAttr(), o.getHighFreqFactorAttr(),
                o.getOriginalMaxPositionEmbeddingsAttr(), o.getPositionOffsetAttr(),
                o.getSeqShardAxisAttr(), o.getSeqShardPartsAttr());
            return {g.getGradInput()};
          })
          .Case([&](ap::AttentionOp o) -> Grads {
            auto g = ap::AttentionGradOp::create(
                b, loc, o.getQuery().getType(), o.getKey().getType(), o.getValue().getType(),
                o.getQuery(), o.getKey(), o.getValue(), dy, o.getScaleAttr(), o.getCausalAttr(),
                o.getSeqShardAxisAttr(), o.getSeqShardPartsAttr());
            return {g.getGradQuery(), g.getGradKey(), g.getGradValue()};
          })
          .Case([&](ap::SiluOp o) -> Grads {
            return {ap::SiluGradOp::create(b, loc, dy.getType(), o.getInput(), dy)};
          })
          .Case([&](ap::AddOp) -> Grads { return {dy, dy}; })
          .Case([&](ap::MulOp o) -> Grads {
            return {ap::MulOp::create(b, loc, dy.getType(), dy, o.getRhs()),
                    ap::MulOp::create(b, loc, dy.getType(), dy, o.getLhs())};
          })
          .Case([&](ap::CastOp o) -> Grads {
            Type inElement = typeOf(o.getInput()).getElementType();
            if (!isa<FloatType>(inElement))
              return {Value()};
            return {ap::CastOp::create(b, loc, o.getInput().getType(), dy)};
          })
          .Case([&](ap::ReshapeOp o) -> Grads {
            return {ap::ReshapeOp::create(b, loc, o.getInput().getType(), dy)};
          })
          .Case([&](ap::TransposeOp o) { return transposeGrad(b, o, dy); })
          .Case([&](ap::ReduceSumOp o) { return reduceSumGrad(b, o, dy); })
          .Case([&](ap::BroadcastOp o) -> Grads {
            return {ap::ReduceSumOp::create(b, loc, o.getInput().getType(), dy,
                                            o.getDimsAttr(), b.getBoolAttr(false))};
          })
          .Case<ap::ShiftLabelsOp, ap::CountKeptOp>([&](Operation *) -> Grads { return {Value()}; })
          .Case([&](ap::CrossEntropyOp o) -> Grads {
            Grads g = {ap::CrossEntropyGradOp::create(b, loc, o.getLogits().getType(),
                                                      o.getLogits(), o.getLabels(), dy,
                                                      o.getKeptCount(), o.getIgnoreIndexAttr(),
                                                      o.getReductionAttr()),
                       Value()};
            if (o.getKeptCount())
              g.push_back(Value()); // the count is data, not a function of the parameters
            return g;
          })
          .Case([&](ap::FillOp) -> Grads { return {}; })
          .Default([&](Operation *) { return std::nullopt; });
  if (!grads) {
    op->emitOpError() << "has no gradient rule (ap-autodiff differentiates forward ops "
                         "only; second-order gradients are not supported)";
    return failure();
  }
  return *grads;
}

} // namespace apc::autodiff
