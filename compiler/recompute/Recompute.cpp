// ap-recompute: activation recomputation (activation checkpointing) on the training step.
//
// The step after ap-autodiff / ap-optimizer holds the forward ops (the backward slice of the
// returned loss), then the backward ops, grad_norm and AdamW. Arena planning keeps a buffer
// from its writer to its last reader, so a forward activation read by the backward lives
// until that read. This pass clones groups of forward ops right before the first backward
// op that needs them and makes the backward read the clones, so the originals die as soon
// as the forward is done with them. The clones compute the same ops on the same inputs:
// the results are bit-identical.
//
// Groups:
//   full       one group per decoder layer: the ops of layer N. Values of the layer read by
//              a forward op of another layer (the residual stream leaving it) are kept, as
//              are values from outside the layer (its input, the parameters): the layer's
//              saved activation is its input.
//   selective  one group per `ap.attention`: the attention op and the reshapes of its
//              result (the attention core; q, k and v stay, attention_grad reads them).
//   none       nothing.
// With the plan's `recomputeStages` K > 0, only the groups of the layers on the first K
// pipeline stages (the plan's stage boundaries) are recomputed.
// Layers come from the dataflow, starting at the model's marks: parameters marked
// `ap.layer = N` are in layer N, those marked `ap.head` in the head, everything else
// (the embedding, the batch) in none; an op is in the
// largest layer of its operands, the head above every layer.
#include "compiler/Passes.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/stages/Stages.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Layers.h"
#include "compiler/support/Mesh.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <climits>
#include <map>

namespace apc {

#define GEN_PASS_DEF_APRECOMPUTEPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

constexpr int kNone = kNoLayer;
constexpr int kHead = kHeadLayer;

struct ApRecomputePass : impl::ApRecomputePassBase<ApRecomputePass> {
  using ApRecomputePassBase::ApRecomputePassBase;

  std::string mode_; // this run's: the option, else the plan's
  int lastLayer_ = INT_MAX; // layers above it are not recomputed (recomputeStages)

  void runOnOperation() override {
    // The option overrides the module's plan (lit tests); the option itself stays as set.
    mode_ = mode.empty()
                ? ap::stringifyRecompute(parallelPlanOf(getOperation()).getRecompute()).str()
                : std::string(mode);
    if (mode_ != "none" && mode_ != "selective" && mode_ != "full") {
      getOperation().emitError() << "ap-recompute: mode must be none, selective or full, got '"
                                 << mode_ << "'";
      return signalPassFailure();
    }
    FailureOr<func::FuncOp> entry = findEntryFunction(getOperation());
    if (failed(entry))
      return signalPassFailure();
    if (mode_ == "none")
      return;
    if (failed(limitToStages(*entry)))
      return signalPassFailure();
    if (failed(recompute(*entry)))
      return signalPassFailure();
  }

  // The last layer of the first `recomputeStages` stages, when the plan limits them.
  LogicalResult limitToStages(func::FuncOp fn) {
    ap::ParallelAttr attr = parallelPlanOf(getOperation());
    if (attr.getRecomputeStages() <= 0)
      return success();
    partition::ParallelPlan plan = partition::fromAttr(attr);
    auto context = partition::planContextOf(fn, plan.devices(), "");
    if (!context)
      return fn.emitError() << "ap-recompute: " << context.message();
    auto layers = stages::stageLayers(
        plan, stages::modelSizesOf(fn->getAttrOfType<DictionaryAttr>("ap.model"),
                                   context->seqLen));
    if (!layers)
      return fn.emitError() << "ap-recompute: " << layers.message();
    const stages::StageLayers &last = (*layers)[size_t(attr.getRecomputeStages() - 1)];
    lastLayer_ = int(last.first + last.count - 1);
    return success();
  }

  // Under ZeRO-1/2 the f32 master is split over dp and its working copy in the compute
  // type is gathered once per step and kept (the distributed optimizer's layout):
  // casting it again would mean gathering it again.
  bool keepsWorkingCopy(func::FuncOp fn, Operation *op) {
    auto c = dyn_cast<ap::CastOp>(op);
    if (!c)
      return false;
    auto arg = dyn_cast<BlockArgument>(c.getInput());
    ap::ParallelAttr plan = parallelPlanOf(getOperation());
    return arg && argRole(fn, arg.getArgNumber()) == "parameter" && plan.getDp() > 1 &&
           (plan.getZero() == 1 || plan.getZero() == 2);
  }

  LogicalResult recompute(func::FuncOp fn) {
    Block &body = fn.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss;
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      if (resultName(fn, i) == "loss")
        loss = ret.getOperand(i);
    if (!loss)
      return fn.emitError() << "ap-recompute: @" << fn.getSymName()
                            << " returns no 'loss' (run ap-autodiff first)";

    // The forward: every op the loss depends on.
    llvm::DenseSet<Operation *> forward;
    SmallVector<Operation *> work;
    if (Operation *def = loss.getDefiningOp())
      work.push_back(def);
    while (!work.empty()) {
      Operation *op = work.pop_back_val();
      if (!forward.insert(op).second)
        continue;
      for (Value operand : op->getOperands())
        if (Operation *def = operand.getDefiningOp())
          work.push_back(def);
    }
    SmallVector<Operation *> order; // the forward ops in block order
    for (Operation &op : body)
      if (forward.contains(&op))
        order.push_back(&op);

    // Layers, in one sweep in forward order.
    llvm::DenseMap<Value, int> layerOf;
    for (BlockArgument arg : fn.getArguments())
      layerOf[arg] = argRole(fn, arg.getArgNumber()) == "parameter"
                         ? parameterLayer(fn, arg.getArgNumber())
                         : kNone;
    llvm::DenseMap<Operation *, int> opLayer;
    for (Operation *op : order) {
      int layer = kNone;
      for (Value operand : op->getOperands())
        layer = std::max(layer, layerOf.lookup(operand));
      opLayer[op] = layer;
      for (Value result : op->getResults())
        layerOf[result] = layer;
    }

    // The groups, each in forward order.
    std::vector<SmallVector<Operation *>> groups;
    llvm::DenseMap<Operation *, unsigned> groupOf;
    if (mode_ == "full") {
      std::map<int, unsigned> byLayer;
      for (Operation *op : order) {
        int layer = opLayer[op];
        if (layer == kNone || layer == kHead || layer > lastLayer_)
          continue;
        auto [it, added] = byLayer.try_emplace(layer, groups.size());
        if (added)
          groups.emplace_back();
        groups[it->second].push_back(op);
        groupOf[op] = it->second;
      }
    } else { // selective: the attention core
      for (Operation *op : order) {
        if (!isa<ap::AttentionOp>(op) || opLayer[op] > lastLayer_)
          continue;
        unsigned g = groups.size();
        llvm::SetVector<Operation *> members;
        members.insert(op);
        for (size_t i = 0; i < members.size(); ++i)
          for (Operation *user : members[i]->getUsers())
            if (forward.contains(user) && isa<ap::ReshapeOp>(user) && !groupOf.count(user))
              members.insert(user);
        groups.emplace_back();
        for (Operation *o : order)
          if (members.contains(o)) {
            groups[g].push_back(o);
            groupOf[o] = g;
          }
      }
    }

    llvm::DenseSet<Operation *> clones;
    for (unsigned g = 0; g < groups.size(); ++g) {
      auto inGroup = [&](Operation *op) {
        auto it = groupOf.find(op);
        return it != groupOf.end() && it->second == g;
      };
      // Under `full`, values leaving the layer (read by a forward op of another group) are
      // the saved activations: kept, never recomputed.
      auto recomputable = [&](Operation *op) {
        if (!inGroup(op) || keepsWorkingCopy(fn, op))
          return false;
        if (mode_ != "full")
          return true;
        for (Operation *user : op->getUsers())
          if (forward.contains(user) && !inGroup(user))
            return false;
        return true;
      };
      // The backward follows the loss; an op before it that the loss does not need (dead
      // forward code) reads the forward's values, not clones.
      auto isBackward = [&](Operation *user) {
        return !forward.contains(user) && !clones.contains(user) &&
               loss.getDefiningOp()->isBeforeInBlock(user);
      };
      // The values the backward reads, and the first backward op that reads one.
      SmallVector<Value> needed;
      Operation *first = nullptr;
      for (Operation *op : groups[g]) {
        if (!recomputable(op))
          continue;
        for (Value result : op->getResults()) {
          bool used = false;
          for (Operation *user : result.getUsers())
            if (isBackward(user)) {
              used = true;
              if (!first || user->isBeforeInBlock(first))
                first = user;
            }
          if (used)
            needed.push_back(result);
        }
      }
      if (needed.empty())
        continue;
      // What they depend on inside the group.
      llvm::DenseSet<Operation *> slice;
      for (Value v : needed)
        work.push_back(v.getDefiningOp());
      while (!work.empty()) {
        Operation *op = work.pop_back_val();
        if (!slice.insert(op).second)
          continue;
        for (Value operand : op->getOperands())
          if (Operation *def = operand.getDefiningOp(); def && recomputable(def))
            work.push_back(def);
      }
      OpBuilder builder(first);
      IRMapping mapping;
      for (Operation *op : groups[g])
        if (slice.contains(op)) {
          Operation *clone = builder.clone(*op, mapping);
          // The cost model counts these as recomputation (lowering copies the mark).
          clone->setAttr("ap.recomputed", builder.getUnitAttr());
          clones.insert(clone);
          ++numRecomputedOps;
        }
      for (Value v : needed)
        v.replaceUsesWithIf(mapping.lookup(v),
                            [&](OpOperand &use) { return isBackward(use.getOwner()); });
    }
    return success();
  }
};

} // namespace
} // namespace apc
