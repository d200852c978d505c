// ap-partition: the training step of one device under a parallel plan.
//
// The mesh is the module's (ap-mesh: dp, and pp, cp, tp when used; this pass splits over
// dp, cp and tp, the pp axis is ap-pipeline's). A single forward sweep gives every value a state per
// mesh axis: Replicated (every device of the axis holds all of it), Split(d) (each
// holds one block of dim d) or Partial (each holds a summand). Each op has a rule from
// its operands' states to its results' (its ShardingRuleOpInterface, written in
// compiler/rules/; this pass is the rules' RuleContext); where an operand is not
// in the state the rule needs, a collective converts it (`convert`): all_reduce,
// reduce_scatter, all_gather or all_slice of the upstream shard dialect. Types become
// the local (per-device) types. Parameters start in their Megatron layout on the tp
// axis (as the model marked them, ap.layout) and, under ZeRO, sharded on the dp axis
// (see docs/partitioning.md); the batch (ap.batch) is split over dp, and under context
// parallelism each sequence over cp where the token ids are read.
#include "compiler/Passes.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/partition/RuleContext.h"
#include "compiler/partition/ShardedValues.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Mesh.h"

#include "dialects/ap/IR/ApInterfaces.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <map>

namespace apc {

#define GEN_PASS_DEF_APPARTITIONPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;
using partition::AxisState;
using partition::Sharding;

// Marks the step ap-partition has made the program of one device.
constexpr llvm::StringLiteral kPartitioned = "ap.partitioned";

// A parameter's split on the tensor-parallel axis, as the model marked it (ap.layout).
AxisState tensorParallelLayout(std::optional<ap::TensorLayout> layout) {
  if (!layout)
    return AxisState::r(); // norms
  switch (*layout) {
  case ap::TensorLayout::Column: return AxisState::s(0); // output features of [out, in]
  case ap::TensorLayout::Row: return AxisState::s(1);    // input features
  case ap::TensorLayout::Vocab: return AxisState::s(0);  // vocabulary rows
  }
  return AxisState::r();
}

class Partitioner : partition::ShardedValues, public partition::RuleContext {
public:
  Partitioner(ModuleOp module, func::FuncOp fn, const Mesh &mesh,
              const partition::ParallelPlan &plan)
      : ShardedValues(module.getContext(), mesh.shape, mesh.axis("tp"), mesh.names),
        module_(module), fn_(fn), plan_(plan), dpAxis_(mesh.axis("dp")) {
    tokens_ = batchArgument(fn, ap::BatchInput::Tokens);
  }

  LogicalResult run() {
    collectOptimizerLayouts();
    if (failed(shardArguments()))
      return failure();
    SmallVector<Operation *> ops;
    for (Operation &op : fn_.getBody().front())
      ops.push_back(&op);
    for (Operation *op : ops)
      if (failed(partition(op)) || failed_)
        return failure();
    eraseReplacedCasts();
    mergeStackedReductions();
    fn_.setType(FunctionType::get(fn_.getContext(), fn_.getBody().front().getArgumentTypes(),
                                  fn_.getBody().front().getTerminator()->getOperandTypes()));
    return success();
  }

private:
  // ---- Parameters and their optimizer layout ----

  // The layout AdamW updates a parameter in: Megatron's split on tp, and under ZeRO a
  // split of the first dim not already split (and divisible) on dp.
  Sharding optimizerLayout(Value param) {
    Sharding s = replicated();
    RankedTensorType type = globalOf(param);
    if (tpAxis_ >= 0)
      s[tpAxis_] = tensorParallelLayout(tensorLayout(fn_, cast<BlockArgument>(param).getArgNumber()));
    if (plan_.zero > 0)
      for (int64_t d = 0; d < type.getRank(); ++d) {
        bool takenByTp = tpAxis_ >= 0 && s[tpAxis_].isSplit() && s[tpAxis_].dim == d;
        if (!takenByTp && type.getDimSize(d) % plan_.dp == 0) {
          s[dpAxis_] = AxisState::s(d);
          break;
        }
      }
    return s;
  }

  // Which gradient belongs to which parameter, and the vocabulary-parallel preference
  // that embedding_grad follows (see `rule`).
  void collectOptimizerLayouts() {
    fn_.walk([&](ap::AdamWOp op) {
      auto param = dyn_cast<BlockArgument>(op.getParam());
      if (!param)
        return;
      layouts_[param] = optimizerLayout(param);
      gradParam_[op.getGrad()] = param;
      adamParam_[op] = param;
    });
    // Propagate the parameter's layout backwards through the ops that only sum or cast
    // a gradient (tied embeddings: embedding_grad + the LM head's gradient).
    for (auto &[grad, param] : gradParam_)
      gradPreference_[grad] = param;
    SmallVector<Operation *> ops;
    for (Operation &op : fn_.getBody().front())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops))
      if (isa<ap::AddOp, ap::CastOp>(op))
        if (Value param = gradPreference_.lookup(op->getResult(0)))
          for (Value v : op->getOperands())
            gradPreference_.try_emplace(v, param);
  }

  LogicalResult shardArguments() {
    llvm::StringMap<Value> params;
    for (BlockArgument arg : fn_.getArguments()) {
      std::string name = argName(fn_, arg.getArgNumber()), role = argRole(fn_, arg.getArgNumber());
      if (role == "parameter")
        params[name] = arg;
    }
    for (BlockArgument arg : fn_.getArguments()) {
      unsigned i = arg.getArgNumber();
      std::string name = argName(fn_, i), role = argRole(fn_, i);
      RankedTensorType type = cast<RankedTensorType>(arg.getType());
      Sharding s = replicated();
      if (batchInput(fn_, i) && mesh_[dpAxis_] > 1) { // the batch: split over dp
        s[dpAxis_] = AxisState::s(0);
      } else if (role == "parameter") {
        Sharding layout = layouts_.count(arg) ? layouts_[arg] : optimizerLayout(arg);
        if (tpAxis_ >= 0)
          s[tpAxis_] = layout[tpAxis_];
        if (plan_.zero > 0) // the master is stored split like its moments
          s[dpAxis_] = layout[dpAxis_];
      } else if (role == "optimizer_state") {
        StringRef param(name);
        if (!param.consume_front("exp_avg_sq.") && !param.consume_front("exp_avg."))
          return fn_.emitError() << "ap-partition: optimizer state '" << name
                                 << "' names no parameter";
        auto it = params.find(param);
        if (it == params.end())
          return fn_.emitError() << "ap-partition: optimizer state '" << name
                                 << "' names no parameter";
        s = layouts_.count(it->second) ? layouts_[it->second] : optimizerLayout(it->second);
      }
      if (failed(assign(arg, type, s)))
        return failure();
      if (role == "parameter" || role == "optimizer_state") {
        SmallVector<int64_t> dimAxes(type.getRank(), -1);
        for (int a = 0; a < numAxes(); ++a)
          if (s[a].isSplit())
            dimAxes[s[a].dim] = a;
        if (llvm::any_of(dimAxes, [](int64_t a) { return a >= 0; }))
          fn_.setArgAttr(i, "ap.dim_axes", DenseI64ArrayAttr::get(fn_.getContext(), dimAxes));
      }
      if (!name.empty()) // results name the state they update; unnamed ones are whole
        argByName_[name] = arg;
    }
    return success();
  }

  // Operand `i` of `op` in state `to` on `axis`.
  void wantOn(Operation *op, unsigned i, int axis, AxisState to) {
    op->setOperand(i, convert(op->getOperand(i), axis, to));
  }
  void wholeOn(Operation *op, unsigned i, int axis) {
    if (st(op->getOperand(i), axis).kind == AxisState::P)
      wantOn(op, i, axis, AxisState::r());
  }
  void wholeAllOn(Operation *op, int axis) {
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      wholeOn(op, i, axis);
  }

  // Where a partial activation on the tp axis goes: the sequence dim of [batch, seq,
  // hidden] under sequence parallelism, else replicated.
  AxisState tpWhole(Value v) {
    int64_t r = rankOf(v);
    if (plan_.sp && r >= 3 && globalOf(v).getDimSize(r - 2) % plan_.tp == 0)
      return AxisState::s(r - 2);
    return AxisState::r();
  }

  // Where a partial activation on the context axis goes: its sequence dim (dim 1 of
  // [batch, seq, ...]), the device's two chunks.
  AxisState cpWhole(Value v) {
    if (rankOf(v) >= 2 && globalOf(v).getDimSize(1) % (2 * mesh_[cpAxis_]) == 0)
      return AxisState::s(1);
    return AxisState::r();
  }

  // A result partial on `axis` reduced right after its op (Megatron's reduction after a
  // row-parallel linear or the vocabulary-parallel embedding; the keys' and values'
  // gradients under context parallelism): every later user sees the whole (or
  // sequence-split) value.
  void reduceEagerly(Value result, int axis) {
    if (st(result, axis).kind != AxisState::P)
      return;
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : result.getUses())
      uses.push_back(&use);
    Value reduced = convert(result, axis, wholeOn(result, axis));
    for (OpOperand *use : uses)
      use->set(reduced);
  }
  AxisState wholeOn(Value v, int axis) {
    return axis == tpAxis_ ? tpWhole(v) : axis == cpAxis_ ? cpWhole(v) : AxisState::r();
  }

  // Under context parallelism the token ids arrive whole on the cp axis (every device of
  // it reads the same rows) and are cut into each device's two chunks where they are
  // read: everything computed from them is then split along the sequence.
  void splitTokensOverContext(Operation *op) {
    if (cpAxis_ < 0 || !tokens_)
      return;
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      if (op->getOperand(i) == tokens_)
        wantOn(op, i, cpAxis_, AxisState::s(1));
  }

  // A gradient (or the kept count) partial on dp and cp is reduced over both by one
  // all-reduce, which runs behind compute as dp's does (Streams.cpp). Reductions over
  // other axes stay apart: a tp reduction blocks, a dp one need not.
  void mergeStackedReductions() {
    SmallVector<shard::AllReduceOp> outers;
    fn_.walk([&](shard::AllReduceOp op) { outers.push_back(op); });
    auto dataOrContext = [&](ArrayRef<shard::GridAxis> axes) {
      return llvm::all_of(axes, [&](shard::GridAxis a) { return a == dpAxis_ || a == cpAxis_; });
    };
    for (shard::AllReduceOp outer : outers) {
      auto inner = outer.getInput().getDefiningOp<shard::AllReduceOp>();
      if (!inner || !inner->hasOneUse() || inner.getReduction() != outer.getReduction() ||
          !dataOrContext(inner.getGridAxes()) || !dataOrContext(outer.getGridAxes()))
        continue;
      SmallVector<shard::GridAxis> axes(inner.getGridAxes());
      for (shard::GridAxis a : outer.getGridAxes())
        if (!llvm::is_contained(axes, a))
          axes.push_back(a);
      llvm::sort(axes);
      OpBuilder b(outer);
      Value merged = shard::AllReduceOp::create(b, outer.getLoc(), outer.getType(), kGrid, axes,
                                                inner.getInput(), outer.getReduction())
                         .getResult();
      global_[merged] = globalOf(outer.getResult());
      sharding_[merged] = shardingOf(outer.getResult());
      outer.getResult().replaceAllUsesWith(merged);
      outer->erase();
      inner->erase();
    }
  }

  // ---- RuleContext: what the ops' sharding rules (compiler/rules/) see ----

  int64_t axisSize() const override { return mesh_[axis()]; }
  bool isTensorAxis() const override { return axis() == tpAxis_; }
  bool isContextAxis() const override { return axis() == cpAxis_; }
  AxisState stateOf(Value v) override { return st(v, axis()); }
  RankedTensorType globalOf(Value v) override { return ShardedValues::globalOf(v); }
  void want(unsigned i, AxisState to) override { wantOn(op(), i, axis(), to); }
  void wantHere(unsigned i, AxisState to) override {
    op()->setOperand(i, convert(op()->getOperand(i), axis(), to, op()));
  }
  LogicalResult noRule() override {
    op()->emitOpError() << "ap-partition: no rule for these operand shardings on mesh axis "
                        << axisName(axis());
    failed_ = true;
    return failure();
  }
  LogicalResult refuse(const llvm::Twine &why) override {
    op()->emitOpError() << "ap-partition: " << why;
    failed_ = true;
    return failure();
  }
  AxisState wholeTarget(Value v) override { return wholeOn(v, axis()); }
  void reduceResultEagerly() override { reduceEagerlyAxes_.push_back(axis()); }
  std::optional<AxisState> gradientLayout(Value grad) override {
    auto pref = gradPreference_.find(grad);
    if (pref == gradPreference_.end())
      return std::nullopt;
    return layouts_[pref->second][axis()];
  }
  AxisState parameterLayout(Operation *adamw) override {
    Value param = adamParam_.lookup(adamw); // operand 0 may be converted already
    return param ? layouts_[param][axis()] : AxisState::r();
  }
  bool reducesGradientsWhole() const override {
    return plan_.zero == 1 && axis() == dpAxis_;
  }
  void divideByGlobalKeptCount() override { keptCountWanted_ = true; }
  std::optional<int> vocabularyAxis(Value logits) override {
    for (int a = 0; a < numAxes(); ++a)
      if (AxisState l = st(logits, a); l.isSplit() && l.dim == rankOf(logits) - 1)
        return a;
    return std::nullopt;
  }
  LogicalResult rewriteVocabParallelLoss(int axis) override {
    return vocabParallelLoss(op(), axis);
  }
  LogicalResult rewriteGradNorm() override { return gradNorm(cast<ap::GradNormOp>(op())); }

  // ---- Ops rewritten as a whole ----

  // The vocabulary-parallel loss: the logits hold a block of the vocabulary on `axis`;
  // row max (all-reduce max), sum of exponentials and target logit (all-reduce sum)
  // combine into the loss and its gradient without gathering the logits.
  struct VocabStats {
    Value max, sumExp;
  };

  VocabStats vocabStats(OpBuilder &b, Value logits, Value labels, int64_t ignoreIndex,
                        int axis) {
    auto key = std::make_pair(logits, labels);
    if (auto it = vocabStats_.find(key); it != vocabStats_.end())
      return it->second;
    Location loc = logits.getLoc();
    auto rowsType = RankedTensorType::get(globalOf(labels).getShape(), b.getF32Type());
    Sharding rowSharding = shardingOf(labels);
    OperationState maxState(loc, "ap.vocab_parallel_max");
    maxState.addOperands(logits);
    maxState.addTypes(localType(rowsType, rowSharding));
    Value localMax = record(b.create(maxState)->getResult(0), rowsType, rowSharding);
    Value max = allReduceMax(b, localMax, axis);
    OperationState statsState(loc, "ap.vocab_parallel_stats");
    statsState.addOperands({logits, labels, max});
    Type rowsLocal = localType(rowsType, rowSharding);
    statsState.addTypes({rowsLocal, rowsLocal});
    statsState.addAttribute("vocab_shard_axis", b.getI64IntegerAttr(axis));
    statsState.addAttribute("ignore_index", b.getI64IntegerAttr(ignoreIndex));
    Operation *stats = b.create(statsState);
    Sharding partial = rowSharding;
    partial[axis] = AxisState::p();
    Value sumExp = record(stats->getResult(0), rowsType, partial);
    Value target = record(stats->getResult(1), rowsType, partial);
    // Both sums right after the stats, adjacent: the lowering fuses them into one.
    Value wholeSumExp = convert(sumExp, axis, AxisState::r());
    Value wholeTarget = convert(target, axis, AxisState::r());
    VocabStats result{max, wholeSumExp};
    vocabStats_[key] = result;
    targets_[key] = wholeTarget;
    return result;
  }

  LogicalResult vocabParallelLoss(Operation *op, int axis) {
    bool forward = isa<ap::CrossEntropyOp>(op);
    // Rows: labels follow the logits' rows on every other axis, whole on the vocab axis.
    for (int a = 0; a < numAxes(); ++a) {
      wholeAllOn(op, a);
      AxisState l = st(op->getOperand(0), a);
      wantOn(op, 1, a, a == axis ? AxisState::r() : l);
      for (unsigned i = 2; i < op->getNumOperands(); ++i)
        wantOn(op, i, a, AxisState::r());
    }
    Value logits = op->getOperand(0), labels = op->getOperand(1);
    auto ignore = op->getAttrOfType<IntegerAttr>("ignore_index");
    auto reduction = op->getAttrOfType<StringAttr>("reduction");
    OpBuilder b(op);
    Value kept = forward ? cast<ap::CrossEntropyOp>(op).getKeptCount()
                         : cast<ap::CrossEntropyGradOp>(op).getKeptCount();
    if (!kept && reduction.getValue() == "mean")
      kept = globalCount(labels, ignore, op->getLoc(), b);
    VocabStats stats = vocabStats(b, logits, labels, ignore.getInt(), axis);
    Value result;
    if (forward) {
      OperationState state(op->getLoc(), "ap.vocab_parallel_loss");
      state.addOperands({stats.max, stats.sumExp, targets_[{logits, labels}], labels});
      if (kept)
        state.addOperands(kept);
      state.addTypes(op->getResult(0).getType());
      state.addAttribute("ignore_index", ignore);
      state.addAttribute("reduction", reduction);
      Sharding s = replicated();
      for (int a = 0; a < numAxes(); ++a)
        if (st(labels, a).isSplit())
          s[a] = AxisState::p();
      result = record(b.create(state)->getResult(0), globalOf(op->getResult(0)), s);
    } else {
      OperationState state(op->getLoc(), "ap.vocab_parallel_loss_grad");
      state.addOperands({logits, labels, stats.max, stats.sumExp, op->getOperand(2)});
      if (kept)
        state.addOperands(kept);
      state.addTypes(logits.getType());
      state.addAttribute("vocab_shard_axis", b.getI64IntegerAttr(axis));
      state.addAttribute("ignore_index", ignore);
      state.addAttribute("reduction", reduction);
      result = record(b.create(state)->getResult(0), globalOf(logits), shardingOf(logits));
    }
    op->getResult(0).replaceAllUsesWith(result);
    op->erase();
    return success();
  }

  // The kept tokens of the global batch for `labels` (local count, all-reduced).
  Value globalCount(Value labels, IntegerAttr ignoreIndex, Location loc, OpBuilder &b) {
    auto key = std::make_pair(labels, ignoreIndex.getInt());
    if (Value c = counts_.lookup(key))
      return c;
    OpBuilder::InsertionGuard guard(b);
    if (Operation *def = labels.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(&fn_.getBody().front());
    auto local = ap::CountKeptOp::create(b, loc, RankedTensorType::get({}, b.getF32Type()),
                                         labels, ignoreIndex);
    Sharding s = replicated();
    for (int a = 0; a < numAxes(); ++a)
      if (st(labels, a).isSplit())
        s[a] = AxisState::p();
    Value count = record(local.getResult(), cast<RankedTensorType>(local.getType()), s);
    for (int a = 0; a < numAxes(); ++a)
      count = convert(count, a, AxisState::r());
    counts_[key] = count;
    return count;
  }

  // The global gradient norm over gradients in their optimizer layouts: the sum of
  // squares of each group of equally split gradients is all-reduced over its split
  // axes, the groups are added, and the square root taken.
  LogicalResult gradNorm(ap::GradNormOp op) {
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      Value g = op->getOperand(i);
      auto param = gradParam_.find(g);
      Sharding to = param != gradParam_.end() ? layouts_[param->second] : replicated();
      // Partial: all-reduced, or reduce-scattered (ZeRO-2/3); under ZeRO-1 all-reduced
      // and sliced, so that the whole gradient dies right after its bucket's reduction.
      for (int a = 0; a < numAxes(); ++a) {
        if (plan_.zero == 1 && a == dpAxis_) // the same reduction and slice as AdamW's
          wantOn(op, i, a, AxisState::r());
        wantOn(op, i, a, to[a]);
      }
    }
    std::map<unsigned, SmallVector<Value>> groups; // by the mask of split axes
    for (Value g : op->getOperands()) {
      unsigned mask = 0;
      for (int a = 0; a < numAxes(); ++a)
        if (st(g, a).isSplit())
          mask |= 1u << a;
      groups[mask].push_back(g);
    }
    auto scalar = RankedTensorType::get({}, Float32Type::get(op.getContext()));
    if (groups.size() == 1 && groups.begin()->first == 0) {
      record(op.getResult(), scalar, replicated());
      return success();
    }
    OpBuilder b(op);
    Value total;
    for (auto &[mask, grads] : groups) {
      auto squares = ap::GradNormOp::create(b, op.getLoc(), scalar, grads);
      squares.setSquared(true);
      Value sq = squares.getResult();
      global_[sq] = scalar;
      sharding_[sq] = replicated();
      if (mask) {
        SmallVector<shard::GridAxis> axes;
        for (int a = 0; a < numAxes(); ++a)
          if (mask & (1u << a))
            axes.push_back(shard::GridAxis(a));
        sq = shard::AllReduceOp::create(b, op.getLoc(), scalar, kGrid, axes, sq, sum())
                 .getResult();
        global_[sq] = scalar;
        sharding_[sq] = replicated();
      }
      total = total ? ap::AddOp::create(b, op.getLoc(), scalar, total, sq).getResult() : sq;
      sharding_[total] = replicated();
      global_[total] = scalar;
    }
    Value norm = ap::SqrtOp::create(b, op.getLoc(), scalar, total).getResult();
    record(norm, scalar, replicated());
    op.getResult().replaceAllUsesWith(norm);
    op->erase();
    return success();
  }

  bool isShardedParameter(Value v) {
    auto arg = dyn_cast<BlockArgument>(v);
    return arg && argRole(fn_, arg.getArgNumber()) == "parameter" && st(arg, dpAxis_).isSplit();
  }

  // A parameter's working copy in the compute type (ap-mixed-precision's cast).
  bool isWorkingCopy(Operation *op) {
    auto c = dyn_cast<ap::CastOp>(op);
    return c && isShardedParameter(c.getInput());
  }

  // A sharded parameter is gathered before its users (the ops' rules would otherwise
  // take the dp split for a model-parallel one). ZeRO-3: right before each use, and
  // freed after; a working copy is cast from the shard there too and gathered in the
  // compute type (half the bytes of an f32 gather). ZeRO-1/2 (the distributed
  // optimizer's layout): the working copy (in f32, the parameter) is gathered once, at
  // its first use, and kept for the step.
  void gatherShardedParameters(Operation *op) {
    if (plan_.zero == 0 || isa<ap::AdamWOp, func::ReturnOp>(op) || isWorkingCopy(op))
      return;
    bool perUse = plan_.zero == 3;
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      Value v = op->getOperand(i);
      Operation *def = v.getDefiningOp();
      if (isShardedParameter(v)) {
        op->setOperand(i, convert(v, dpAxis_, AxisState::r(), perUse ? op : nullptr));
      } else if (def && isWorkingCopy(def) && !perUse) {
        op->setOperand(i, convert(v, dpAxis_, AxisState::r()));
      } else if (def && isWorkingCopy(def)) {
        OpBuilder b(op);
        Value shard = b.clone(*def)->getResult(0);
        global_[shard] = globalOf(v);
        sharding_[shard] = shardingOf(v);
        op->setOperand(i, convert(shard, dpAxis_, AxisState::r(), op));
        castsReplaced_.insert(def);
      }
    }
  }

  // The working copies every user of which now casts its own.
  void eraseReplacedCasts() {
    for (Operation *op : castsReplaced_)
      if (op->use_empty())
        op->erase();
  }

  LogicalResult partition(Operation *op) {
    current_ = op;
    if (isa<shard::AllReduceOp, shard::AllGatherOp, shard::ReduceScatterOp, shard::AllSliceOp>(
            op))
      return success(); // made by this pass
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      // Each state goes back in the layout its argument came in; loss and norm whole.
      for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
        auto arg = argByName_.find(resultName(fn_, i));
        Sharding to = arg != argByName_.end() ? shardingOf(arg->second) : replicated();
        for (int a = 0; a < numAxes(); ++a) {
          wholeOn(ret, i, a);
          wantOn(ret, i, a, to[a]);
        }
      }
      return success();
    }
    gatherShardedParameters(op);
    splitTokensOverContext(op);
    auto rules = dyn_cast<ap::ShardingRuleOpInterface>(op);
    if (!rules) {
      op->emitOpError() << "ap-partition: has no sharding rule (an op's rules live in "
                           "compiler/rules/, see docs/adding-an-op.md)";
      return failure();
    }
    begin(op, 0);
    FailureOr<bool> rewritten = rules.rewriteSharded(*this);
    if (failed(rewritten) || failed_)
      return failure();
    if (*rewritten)
      return success();
    reduceEagerlyAxes_.clear();
    keptCountWanted_ = false;
    SmallVector<Sharding> results(op->getNumResults(), replicated());
    SmallVector<RankedTensorType> globals;
    for (Value r : op->getResults())
      globals.push_back(cast<RankedTensorType>(r.getType()));
    for (int a = 0; a < numAxes(); ++a) {
      begin(op, a);
      if (failed(rules.shardAxis(*this)) || failed_)
        return failure();
      if (resultStates().size() != op->getNumResults())
        return op->emitOpError() << "ap-partition: its sharding rule gave "
                                 << resultStates().size() << " result states for "
                                 << op->getNumResults() << " results";
      for (unsigned i = 0; i < op->getNumResults(); ++i)
        results[i][a] = resultStates()[i];
    }
    // A mean loss over split rows divides by the kept tokens of the whole global batch.
    if (keptCountWanted_) {
      OpBuilder b(op);
      Value count = globalCount(op->getOperand(1), op->getAttrOfType<IntegerAttr>("ignore_index"),
                                op->getLoc(), b);
      if (auto ce = dyn_cast<ap::CrossEntropyOp>(op))
        ce.getKeptCountMutable().assign(count);
      else if (auto grad = dyn_cast<ap::CrossEntropyGradOp>(op))
        grad.getKeptCountMutable().assign(count);
    }
    for (unsigned i = 0; i < op->getNumResults(); ++i)
      if (failed(assign(op->getResult(i), globals[i], results[i])))
        return failure();
    for (int axis : reduceEagerlyAxes_)
      for (Value result : op->getResults())
        reduceEagerly(result, axis);
    return success();
  }

  ModuleOp module_;
  func::FuncOp fn_;
  partition::ParallelPlan plan_;
  int dpAxis_;
  llvm::DenseMap<Value, Sharding> layouts_;        // parameter -> optimizer layout
  llvm::DenseMap<Value, Value> gradParam_;         // AdamW's gradient -> its parameter
  llvm::DenseMap<Operation *, Value> adamParam_;   // AdamW -> its parameter argument
  llvm::DenseMap<Value, Value> gradPreference_;    // gradient summands -> parameter
  llvm::StringMap<Value> argByName_;
  llvm::DenseMap<std::pair<Value, Value>, VocabStats> vocabStats_;
  llvm::DenseMap<std::pair<Value, Value>, Value> targets_;
  llvm::DenseMap<std::pair<Value, int64_t>, Value> counts_;
  llvm::SmallPtrSet<Operation *, 32> castsReplaced_;
  Value tokens_;                                  // the token ids argument
  SmallVector<int, 2> reduceEagerlyAxes_;         // set by the op's rule
  bool keptCountWanted_ = false;                  // set by the op's rule
};

struct ApPartitionPass : impl::ApPartitionPassBase<ApPartitionPass> {
  using ApPartitionPassBase::ApPartitionPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    partition::ParallelPlan plan = partition::fromAttr(parallelPlanOf(module));
    FailureOr<func::FuncOp> entry = findEntryFunction(module);
    if (failed(entry))
      return signalPassFailure();
    if (plan.dp == 1 && plan.tp == 1 && plan.cp == 1)
      return;
    if ((*entry)->hasAttr(kPartitioned)) {
      entry->emitError() << "ap-partition: @" << entry->getSymName() << " is already partitioned";
      return signalPassFailure();
    }
    if ((plan.dp > 1 || plan.cp > 1) && !batchArgument(*entry, ap::BatchInput::Tokens)) {
      entry->emitError() << "ap-partition: " << (plan.dp > 1 ? "dp" : "cp") << "="
                         << (plan.dp > 1 ? plan.dp : plan.cp)
                         << (plan.dp > 1 ? " splits the batch" : " splits the sequences")
                         << ", but @"
                         << entry->getSymName()
                         << " marks no argument as its token ids (ap.batch = #ap.batch<tokens>)";
      return signalPassFailure();
    }
    FailureOr<Mesh> mesh = meshOf(module);
    if (failed(mesh))
      return signalPassFailure();
    Partitioner partitioner(module, *entry, *mesh, plan);
    if (failed(partitioner.run()) || failed(verify(module)))
      return signalPassFailure();
    (*entry)->setAttr(kPartitioned, UnitAttr::get(&getContext()));
  }
};

} // namespace
} // namespace apc
