// ap-micro-batch: the imported forward function, cut down to one micro-batch.
//
// Every value computed from the batch leads with it (input_ids [B, S], hidden states
// [B, S, H], flattened rows [B*S, ...]): dividing that dim by `mb` gives the function of
// one micro-batch of B/mb sequences. The mean loss gets the kept tokens of the whole step
// as an explicit divisor (argument `kept_tokens`), so that micro-batch losses and
// gradients add up to the step's (see Passes.td).
#include "compiler/Passes.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Mesh.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseSet.h"

namespace apc {

#define GEN_PASS_DEF_APMICROBATCHPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

struct ApMicroBatchPass : impl::ApMicroBatchPassBase<ApMicroBatchPass> {
  using ApMicroBatchPassBase::ApMicroBatchPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    ap::ParallelAttr plan = parallelPlanOf(module);
    if (plan.getMb() == 1 && plan.getPp() == 1)
      return;
    FailureOr<func::FuncOp> entry = findEntryFunction(module);
    if (failed(entry) || failed(cut(*entry, plan.getMb())) || failed(verify(module)))
      return signalPassFailure();
  }

  LogicalResult cut(func::FuncOp fn, int64_t mb) {
    if (fn->hasAttr("ap.micro_batches"))
      return fn.emitError() << "ap-micro-batch: @" << fn.getSymName()
                            << " is already the function of one micro-batch";
    Block &body = fn.getBody().front();
    llvm::DenseSet<Value> batched;
    int64_t batch = 0;
    for (BlockArgument arg : fn.getArguments()) {
      if (!batchInput(fn, arg.getArgNumber()))
        continue;
      std::string name = argName(fn, arg.getArgNumber());
      auto type = cast<RankedTensorType>(arg.getType());
      if (type.getRank() != 2 || (batch && type.getDimSize(0) != batch))
        return fn.emitError() << "ap-micro-batch: '" << name << "' must be [batch, seq], got "
                              << type;
      batch = type.getDimSize(0);
      batched.insert(arg);
    }
    if (batched.size() != 2)
      return fn.emitError() << "ap-micro-batch: @" << fn.getSymName()
                            << " needs the batch's token ids and labels (arguments marked "
                               "ap.batch = #ap.batch<tokens> and #ap.batch<labels>)";
    if (batch % mb != 0)
      return fn.emitError() << "ap-micro-batch: " << mb
                            << " micro-batches do not divide the batch of " << batch;

    auto cutType = [&](Value v) -> LogicalResult {
      auto type = dyn_cast<RankedTensorType>(v.getType());
      if (!type || type.getRank() == 0 || type.getDimSize(0) % batch != 0)
        return emitError(v.getLoc())
               << "ap-micro-batch: cannot cut " << v.getType()
               << " into micro-batches: its leading dim is not a multiple of the batch ("
               << batch << ")";
      SmallVector<int64_t> shape(type.getShape());
      shape[0] /= mb;
      v.setType(RankedTensorType::get(shape, type.getElementType()));
      return success();
    };
    for (Value arg : llvm::to_vector(batched))
      if (failed(cutType(arg)))
        return failure();

    Value keptTokens;
    for (Operation &op : body.without_terminator()) {
      if (llvm::none_of(op.getOperands(), [&](Value v) { return batched.contains(v); }))
        continue;
      if (auto ce = dyn_cast<ap::CrossEntropyOp>(op)) {
        // The loss is a sum over the micro-batch's tokens divided by the step's count.
        if (ce.getReduction() == "mean" && !ce.getKeptCount()) {
          if (!keptTokens) {
            unsigned index = fn.getNumArguments();
            auto scalar = RankedTensorType::get({}, Float32Type::get(fn.getContext()));
            if (failed(fn.insertArgument(index, scalar,
                                         nameAttrs(fn.getContext(), "kept_tokens", "input"),
                                         fn.getLoc())))
              return failure();
            keptTokens = fn.getArgument(index);
          }
          ce.getKeptCountMutable().assign(keptTokens);
        }
        continue;
      }
      // Row-major values whose outermost dim is the batch (times whatever follows) hold
      // each micro-batch as one contiguous block; an op that moves the batch inward
      // would break that.
      auto transpose = dyn_cast<ap::TransposeOp>(op);
      auto reduce = dyn_cast<ap::ReduceSumOp>(op);
      if ((transpose && transpose.getPermutation()[0] != 0) ||
          (reduce && llvm::is_contained(reduce.getDims(), 0)))
        return op.emitOpError() << "ap-micro-batch: cannot cut into micro-batches an op that "
                                   "moves or reduces the batch dim";
      for (Value r : op.getResults()) {
        if (failed(cutType(r)))
          return failure();
        batched.insert(r);
      }
    }
    fn.setType(FunctionType::get(fn.getContext(), body.getArgumentTypes(),
                                 body.getTerminator()->getOperandTypes()));
    fn->setAttr("ap.micro_batches", IntegerAttr::get(IntegerType::get(fn.getContext(), 64), mb));
    return success();
  }
};

} // namespace
} // namespace apc
