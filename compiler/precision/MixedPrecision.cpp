// ap-mixed-precision: f32 master parameters, compute in `compute-type`, loss in f32.
//
// Every floating value of the forward function is retyped to the compute type, with
// three exceptions: parameter arguments (f32 masters, each cast once, right before its
// first user, so that its gradient's cast back to f32 comes as soon as the gradient is
// complete and the working copy is made no earlier than needed), the
// cross_entropy result (always f32) and its logits (cast to f32 right before it).
// Casts that become identities are folded away; the op verifiers check the result.
#include "compiler/Passes.h"
#include "compiler/support/EntryFunction.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

namespace apc {

#define GEN_PASS_DEF_APMIXEDPRECISIONPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

RankedTensorType withElement(Type type, Type element) {
  auto t = cast<RankedTensorType>(type);
  return RankedTensorType::get(t.getShape(), element);
}

bool isFloatTensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && isa<FloatType>(t.getElementType());
}

// The earliest op of the block that reads `v`.
Operation *firstUser(Value v) {
  Operation *first = nullptr;
  for (Operation *user : v.getUsers())
    if (!first || user->isBeforeInBlock(first))
      first = user;
  return first;
}

struct ApMixedPrecisionPass : impl::ApMixedPrecisionPassBase<ApMixedPrecisionPass> {
  using ApMixedPrecisionPassBase::ApMixedPrecisionPassBase;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    Type compute;
    if (computeType == "bf16")
      compute = BFloat16Type::get(ctx);
    else if (computeType == "f16")
      compute = Float16Type::get(ctx);
    else if (computeType == "f32")
      compute = Float32Type::get(ctx);
    else {
      getOperation().emitError() << "ap-mixed-precision: compute-type must be bf16, f16 or "
                                    "f32, got '" << computeType << "'";
      return signalPassFailure();
    }
    FailureOr<func::FuncOp> entry = findEntryFunction(getOperation());
    if (failed(entry) || failed(convert(*entry, compute)))
      return signalPassFailure();
  }

  LogicalResult convert(func::FuncOp fn, Type compute) {
    MLIRContext *ctx = &getContext();
    Type f32 = Float32Type::get(ctx);
    Block &body = fn.getBody().front();
    for (Operation &op : body.without_terminator())
      if (!isa<ap::ApDialect>(op.getDialect()) || isa<ap::AdamWOp, ap::GradNormOp>(op))
        return op.emitOpError() << "is not a forward ap op: ap-mixed-precision runs on the "
                                   "imported forward function, before ap-autodiff";

    // 1. Floating arguments: parameters become f32 masters cast once to the compute
    //    type; other floating inputs are cast as they are.
    OpBuilder b(&body, body.begin());
    for (BlockArgument arg : fn.getArguments()) {
      if (!isFloatTensor(arg.getType()))
        continue;
      bool isParameter = argRole(fn, arg.getArgNumber()) == "parameter";
      // The loss's divisor (a micro-batch's kept_tokens) stays f32, like the loss.
      if (!arg.use_empty() && llvm::all_of(arg.getUses(), [](OpOperand &use) {
            auto ce = dyn_cast<ap::CrossEntropyOp>(use.getOwner());
            return ce && use.get() == ce.getKeptCount();
          }))
        continue;
      if (isParameter)
        arg.setType(withElement(arg.getType(), f32));
      if (arg.getType() == withElement(arg.getType(), compute))
        continue;
      OpBuilder::InsertionGuard guard(b);
      if (isParameter && !arg.use_empty())
        b.setInsertionPoint(firstUser(arg));
      auto cast = ap::CastOp::create(b, arg.getLoc(), withElement(arg.getType(), compute), arg);
      arg.replaceAllUsesExcept(cast.getResult(), cast);
    }

    // 2. Every floating result computes in the compute type, but the loss's logits
    //    and the loss itself stay f32.
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : ops) {
      if (auto ce = dyn_cast<ap::CrossEntropyOp>(op)) {
        Value logits = ce.getLogits();
        if (cast<RankedTensorType>(logits.getType()).getElementType() != f32) {
          b.setInsertionPoint(ce);
          auto up = ap::CastOp::create(b, ce.getLoc(), withElement(logits.getType(), f32), logits);
          ce.getLogitsMutable().assign(up);
        }
        continue;
      }
      if (auto c = dyn_cast<ap::CastOp>(op)) {
        bool feedsLossOnly = !c->use_empty() && llvm::all_of(c->getUsers(), [](Operation *u) {
          return isa<ap::CrossEntropyOp>(u);
        });
        if (isFloatTensor(c.getType()) && !feedsLossOnly)
          c.getResult().setType(withElement(c.getType(), compute));
        continue;
      }
      for (OpResult r : op->getResults())
        if (isFloatTensor(r.getType()))
          r.setType(withElement(r.getType(), compute));
    }

    // 3. Fold casts that no longer change the type.
    for (Operation *op : ops)
      if (auto c = dyn_cast<ap::CastOp>(op); c && c.getInput().getType() == c.getType()) {
        c.getResult().replaceAllUsesWith(c.getInput());
        c.erase();
      }

    // The function's signature follows its arguments; results keep their types
    // except floating ones, which take what the return now yields.
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    fn.setType(FunctionType::get(ctx, body.getArgumentTypes(), ret.getOperandTypes()));
    fn->setAttr("ap.precision", StringAttr::get(ctx, computeType));
    if (failed(verify(fn)))
      return fn.emitError() << "ap-mixed-precision produced invalid IR (see above)";
    return success();
  }
};

} // namespace
} // namespace apc
