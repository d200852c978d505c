// ap-autodiff: reverse-mode differentiation of the entry function.
//
// One sweep over the forward ops in reverse order. Each value's gradient is kept in a
// map; a value used several times gets the sum of its users' contributions (ap.add),
// which is how tied embeddings receive both the embedding's and the LM head's
// gradient. Only floating values carry gradients.
#include "compiler/Passes.h"
#include "compiler/autodiff/GradientRules.h"
#include "compiler/support/EntryFunction.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

namespace apc {

#define GEN_PASS_DEF_APAUTODIFFPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

bool isFloatTensor(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && isa<FloatType>(type.getElementType());
}

struct ApAutodiffPass : impl::ApAutodiffPassBase<ApAutodiffPass> {
  void runOnOperation() override {
    FailureOr<func::FuncOp> entry = findEntryFunction(getOperation());
    if (failed(entry))
      return signalPassFailure();
    if (failed(differentiate(*entry)))
      return signalPassFailure();
  }

  LogicalResult differentiate(func::FuncOp fn) {
    Block &body = fn.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    if (ret.getNumOperands() < 1 || ret.getOperand(0).getType() !=
                                         RankedTensorType::get({}, Float32Type::get(&getContext())))
      return fn.emitError() << "ap-autodiff: @" << fn.getSymName()
                            << " must return the loss (tensor<f32>) as its first result";
    // A parameter gets a gradient of its own type (zeros when the loss does not use it).
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      auto type = dyn_cast<RankedTensorType>(fn.getArgument(i).getType());
      if (argRole(fn, i) == "parameter" &&
          !(type && (type.getElementType().isF32() || type.getElementType().isBF16() ||
                     type.getElementType().isF16())))
        return fn.emitError() << "ap-autodiff: parameter '" << argName(fn, i) << "' (argument "
                              << i << ") is " << fn.getArgument(i).getType()
                              << "; parameters must be f32, bf16 or f16 tensors";
    }
    for (Operation &op : body.without_terminator())
      if (isa<ap::EmbeddingGradOp, ap::RmsNormGradOp, ap::RopeGradOp, ap::AttentionGradOp,
              ap::SiluGradOp, ap::CrossEntropyGradOp, ap::AdamWOp, ap::GradNormOp>(op))
        return op.emitOpError() << "found in the input of ap-autodiff: the function is "
                                   "already differentiated";

    SmallVector<Operation *> forward;
    for (Operation &op : body.without_terminator())
      forward.push_back(&op);

    OpBuilder b(ret);
    Value loss = ret.getOperand(0);
    llvm::DenseMap<Value, Value> grads;
    grads[loss] = ap::FillOp::create(b, loss.getLoc(), loss.getType(), b.getF64FloatAttr(1.0));
    ++numGradientOps;

    auto accumulate = [&](Value value, Value grad) {
      auto [it, inserted] = grads.try_emplace(value, grad);
      if (!inserted) {
        it->second = ap::AddOp::create(b, grad.getLoc(), grad.getType(), it->second, grad);
        ++numGradientOps;
      }
    };

    for (Operation *op : llvm::reverse(forward)) {
      SmallVector<Value> resultGrads;
      bool any = false;
      for (Value r : op->getResults()) {
        Value g = grads.lookup(r);
        any |= static_cast<bool>(g);
        resultGrads.push_back(g);
      }
      if (!any)
        continue; // does not influence the loss
      size_t opsBefore = body.getOperations().size();
      FailureOr<SmallVector<Value>> operandGrads =
          autodiff::buildOperandGradients(b, op, resultGrads);
      if (failed(operandGrads))
        return failure();
      numGradientOps += body.getOperations().size() - opsBefore;
      for (auto [operand, grad] : llvm::zip(op->getOperands(), *operandGrads))
        if (grad && isFloatTensor(operand))
          accumulate(operand, grad);
    }

    // Return (loss, grad.<param>...), zeros for parameters the loss does not use.
    SmallVector<Value> results = {loss};
    SmallVector<Attribute> resultAttrs = {fn.getResultAttrDict(0)
                                              ? Attribute(fn.getResultAttrDict(0))
                                              : Attribute(nameAttrs(&getContext(), "loss"))};
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      if (argRole(fn, i) != "parameter")
        continue;
      Value arg = fn.getArgument(i);
      Value grad = grads.lookup(arg);
      if (!grad)
        grad = ap::FillOp::create(b, arg.getLoc(), arg.getType(), b.getF64FloatAttr(0.0));
      results.push_back(grad);
      resultAttrs.push_back(nameAttrs(&getContext(), "grad." + argName(fn, i), "gradient"));
    }
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    fn.setType(FunctionType::get(&getContext(), fn.getArgumentTypes(), resultTypes));
    fn.setAllResultAttrs(resultAttrs);
    return success();
  }
};

} // namespace
} // namespace apc
