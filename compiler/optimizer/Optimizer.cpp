// ap-optimizer: from (params, inputs) -> (loss, grads) to the whole training step.
#include "compiler/Passes.h"
#include "compiler/support/EntryFunction.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Builders.h"

namespace apc {

#define GEN_PASS_DEF_APOPTIMIZERPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

struct ApOptimizerPass : impl::ApOptimizerPassBase<ApOptimizerPass> {
  using ApOptimizerPassBase::ApOptimizerPassBase;

  void runOnOperation() override {
    FailureOr<func::FuncOp> entry = findEntryFunction(getOperation());
    if (failed(entry) || failed(addOptimizer(*entry)))
      return signalPassFailure();
  }

  LogicalResult addOptimizer(func::FuncOp fn) {
    MLIRContext *ctx = &getContext();
    if (maxGradNorm < 0.0)
      return fn.emitError() << "ap-optimizer: max-grad-norm must be >= 0, got " << maxGradNorm;
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());

    // Parameters, and the gradient result of each (named grad.<name>).
    SmallVector<unsigned> params;
    llvm::StringMap<Value> gradByName;
    for (unsigned i = 0; i < fn.getNumResults(); ++i) {
      std::string name = resultName(fn, i);
      if (llvm::StringRef(name).starts_with("grad."))
        gradByName[name.substr(5)] = ret.getOperand(i);
    }
    llvm::StringMap<unsigned> paramByName; // gradients pair with parameters by name
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      if (argRole(fn, i) != "parameter")
        continue;
      auto [seen, fresh] = paramByName.try_emplace(argName(fn, i), i);
      if (!fresh)
        return fn.emitError() << "ap-optimizer: arguments " << seen->second << " and " << i
                              << " are both parameter '" << argName(fn, i) << "'";
      params.push_back(i);
    }
    if (params.empty())
      return fn.emitError() << "ap-optimizer: @" << fn.getSymName() << " has no parameters";
    SmallVector<Value> grads;
    for (unsigned i : params) {
      auto type = dyn_cast<RankedTensorType>(fn.getArgument(i).getType());
      if (!type || !type.getElementType().isF32())
        return fn.emitError() << "ap-optimizer: parameter '" << argName(fn, i) << "' is "
                              << fn.getArgument(i).getType()
                              << "; AdamW keeps f32 master weights (run ap-mixed-precision "
                                 "first, or import with --dtype f32)";
      auto it = gradByName.find(argName(fn, i));
      if (it == gradByName.end())
        return fn.emitError() << "ap-optimizer: no result 'grad." << argName(fn, i)
                              << "' (run ap-autodiff first)";
      if (it->second.getType() != type)
        return fn.emitError() << "ap-optimizer: result 'grad." << argName(fn, i) << "' is "
                              << it->second.getType() << " but parameter '" << argName(fn, i)
                              << "' is " << type;
      grads.push_back(it->second);
    }

    // New arguments, inserted after the parameters: exp_avg.*, exp_avg_sq.*, step, lr.
    unsigned insertAt = params.back() + 1;
    SmallVector<Value> expAvg, expAvgSq;
    auto insertArg = [&](Type type, const std::string &name, const std::string &role) {
      Location loc = NameLoc::get(StringAttr::get(ctx, name));
      (void)fn.insertArgument(insertAt, type, nameAttrs(ctx, name, role), loc);
      return fn.getArgument(insertAt++);
    };
    for (unsigned i : params)
      expAvg.push_back(insertArg(fn.getArgument(i).getType(), "exp_avg." + argName(fn, i),
                                 "optimizer_state"));
    for (unsigned i : params)
      expAvgSq.push_back(insertArg(fn.getArgument(i).getType(),
                                   "exp_avg_sq." + argName(fn, i), "optimizer_state"));
    Value step = insertArg(RankedTensorType::get({}, IntegerType::get(ctx, 64)), "step", "step");
    Value lr = insertArg(RankedTensorType::get({}, Float32Type::get(ctx)), "lr", "learning_rate");

    OpBuilder b(ret);
    Location loc = ret.getLoc();
    Value gradNorm =
        ap::GradNormOp::create(b, loc, RankedTensorType::get({}, Float32Type::get(ctx)), grads);
    FloatAttr maxNorm = maxGradNorm > 0.0 ? b.getF64FloatAttr(maxGradNorm) : FloatAttr();
    SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
    for (auto [k, i] : llvm::enumerate(params)) {
      Value p = fn.getArgument(i);
      auto update = ap::AdamWOp::create(
          b, loc, TypeRange{p.getType(), p.getType(), p.getType()}, p, grads[k], expAvg[k],
          expAvgSq[k], step, lr, gradNorm, b.getF64FloatAttr(beta1),
          b.getF64FloatAttr(beta2), b.getF64FloatAttr(epsilon),
          b.getF64FloatAttr(weightDecay), maxNorm);
      newParams.push_back(update.getNewParam());
      newExpAvg.push_back(update.getNewExpAvg());
      newExpAvgSq.push_back(update.getNewExpAvgSq());
    }

    SmallVector<Value> results = {ret.getOperand(0), gradNorm};
    SmallVector<Attribute> attrs = {nameAttrs(ctx, "loss"), nameAttrs(ctx, "grad_norm")};
    auto add = [&](ArrayRef<Value> values, const std::string &prefix, const std::string &role) {
      for (auto [k, i] : llvm::enumerate(params)) {
        results.push_back(values[k]);
        attrs.push_back(nameAttrs(ctx, prefix + argName(fn, i), role));
      }
    };
    add(newParams, "", "parameter");
    add(newExpAvg, "exp_avg.", "optimizer_state");
    add(newExpAvgSq, "exp_avg_sq.", "optimizer_state");
    func::ReturnOp::create(b, loc, results);
    ret.erase();
    SmallVector<Type> types;
    for (Value v : results)
      types.push_back(v.getType());
    fn.setType(FunctionType::get(ctx, fn.getArgumentTypes(), types));
    fn.setAllResultAttrs(attrs);
    return success();
  }
};

} // namespace
} // namespace apc
