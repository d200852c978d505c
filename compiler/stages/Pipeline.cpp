// ap-pipeline: one function per pipeline stage running the step's micro-batches in
// 1F1B order, with gradient accumulation and the update once per step (Passes.td).
//
// The input is the step of ONE micro-batch (ap-micro-batch, then autodiff, optimizer,
// recompute and partition). Its ops fall in four kinds:
//   micro     computed per micro-batch (they depend on the batch), each on one stage;
//   floating  per micro-batch but of the batch alone (shift_labels): cloned wherever used;
//   feeder    of the parameters alone (mixed-precision casts, ZeRO-3 gathers, fills):
//             cloned right before each block that uses them, so they live briefly; but
//             under ZeRO-1/2 the working copy (the cast and gather of a sharded master)
//             is made once per step, at its first use, and kept (the distributed
//             optimizer's layout: one gather per step, not one per block);
//   step      after the gradients stop depending on the micro-batch (the data-parallel
//             reductions, the norm, AdamW): once per step, on the accumulated values.
// Where a chain of reductions and casts ends at an AdamW, the norm or the loss, the
// value it starts from is accumulated over micro-batches (in f32).
//
// The order of the passes is compiler/stages/Schedule.h's. Every op of a stage is
// marked with where it sits in the step, for the plan's instructions (plan.fbs
// Instruction) and `apc explain`: `ap.pass` ("forward", "backward", "step", "other"),
// `ap.micro_batch` (i64, forward and backward only) and `ap.layer` (i64: a decoder layer,
// -2 the embedding, num_hidden_layers the head; absent: none). Without a pipeline or
// micro-batches the step is left as it is and only marked (micro-batch 0).
//
// Which stage each op runs on is decided first (`place`, the ap-assign-stages pass, which
// writes it as `ap.stage` / `ap.backward`); this pass builds the stages from those marks
// when the step carries them, and places the ops itself when it does not.
#include "compiler/Passes.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/stages/Placement.h"
#include "compiler/stages/Schedule.h"
#include "compiler/stages/Stages.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Layers.h"
#include "compiler/support/Mesh.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringMap.h"

#include <optional>
#include <set>

namespace apc {

#define GEN_PASS_DEF_APPIPELINEPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

constexpr int kFloat = -2;   // a value of the batch alone: no layer of its own

enum class Kind { Micro, Floating, Feeder, Step };

class Pipeliner {
public:
  Pipeliner(ModuleOp module, func::FuncOp fn, const partition::ParallelPlan &plan,
            const Mesh &mesh)
      : module_(module), fn_(fn), plan_(plan), pp_(plan.pp), mb_(plan.mb),
        vp_(int(std::max<int64_t>(plan.vp, 1))), vs_(pp_ * vp_),
        ppAxis_(mesh.axis("pp")), dpAxis_(mesh.axis("dp")), cpAxis_(mesh.axis("cp")) {
    // Names read once: every stage asks, for every result, for the argument of its name.
    for (unsigned i = 0; i < fn_.getNumResults(); ++i)
      resultNames_.push_back(resultName(fn_, i));
    for (unsigned a = 0; a < fn_.getNumArguments(); ++a)
      if (std::string name = argName(fn_, a); !name.empty())
        argIndex_.try_emplace(name, a); // the first of a name, as a scan finds
  }

  LogicalResult run() {
    if (failed(findArguments()))
      return failure();
    classify();
    if (failed(findAccumulated()) || failed(assignStages()) || failed(readPlacement()) ||
        failed(splitCrossStageSums()) || failed(checkDataflow()))
      return failure();
    findOwnership();
    markLayers();
    for (int s = 0; s < pp_; ++s)
      if (failed(collectStepOps(s)))
        return failure();
    collectBlocks();
    SmallVector<func::FuncOp> stages;
    for (int s = 0; s < pp_; ++s) {
      FailureOr<func::FuncOp> f = buildStage(s);
      if (failed(f))
        return failure();
      stages.push_back(*f);
    }
    recordPipeline();
    fn_.erase();
    return success();
  }

  // ap-assign-stages: the placement alone, written on the ops (`ap.stage`, and
  // `ap.backward` on the ops of the backward phase) for ap-pipeline to build from.
  LogicalResult place() {
    if (failed(findArguments()))
      return failure();
    classify();
    if (failed(findAccumulated()) || failed(assignStages()))
      return failure();
    Builder b(fn_.getContext());
    for (Operation *op : ops_) {
      op->removeAttr(kStageMark);
      op->removeAttr(kBackwardMark);
      if (kind_[op] != Kind::Micro)
        continue;
      op->setAttr(kStageMark, b.getI64IntegerAttr(stage_[op]));
      if (backwardPhase_[op])
        op->setAttr(kBackwardMark, b.getUnitAttr());
    }
    return success();
  }

  // Without pipeline or micro-batches: the step stays as it is; its ops are marked.
  LogicalResult markOnly() {
    if (failed(findArguments(/*microBatched=*/false)))
      return failure();
    classify();
    if (failed(findAccumulated()) || failed(assignStages()))
      return failure();
    markLayers();
    Builder b(fn_.getContext());
    for (Operation *op : ops_) {
      bool step = kind_[op] == Kind::Step;
      op->setAttr(kPassMark, b.getStringAttr(step               ? "step"
                                             : backwardPhase_[op] ? "backward"
                                                                  : "forward"));
      if (!step)
        op->setAttr(kMicroBatchMark, b.getI64IntegerAttr(0));
    }
    return success();
  }

private:
  static constexpr llvm::StringLiteral kPassMark = "ap.pass";
  static constexpr llvm::StringLiteral kMicroBatchMark = "ap.micro_batch";
  static constexpr llvm::StringLiteral kLayerMark = "ap.layer";
  static constexpr llvm::StringLiteral kStageMark = "ap.stage";
  static constexpr llvm::StringLiteral kBackwardMark = "ap.backward";

  // The placement ap-assign-stages wrote (or anyone: the search), when the step carries
  // one: per-micro-batch ops go to the stage of their `ap.stage` mark, in the phase of
  // their `ap.backward` mark; unmarked ones are cloned wherever used (floating).
  // checkDataflow then refuses a placement 1F1B cannot run.
  LogicalResult readPlacement() {
    if (llvm::none_of(ops_, [](Operation *op) { return op->hasAttr(kStageMark); }))
      return success();
    for (Operation *op : ops_) {
      if (kind_[op] != Kind::Micro && kind_[op] != Kind::Floating) {
        if (op->hasAttr(kStageMark))
          return op->emitOpError() << "ap-pipeline: has an ap.stage but runs once per step "
                                      "or feeds parameters; only per-micro-batch ops are placed";
        continue;
      }
      auto stage = op->getAttrOfType<IntegerAttr>(kStageMark);
      if (!stage) {
        kind_[op] = Kind::Floating;
        continue;
      }
      if (stage.getInt() < 0 || stage.getInt() >= vs_)
        return op->emitOpError() << "ap-pipeline: ap.stage " << stage.getInt()
                                 << " is not one of the " << vs_
                                 << (vp_ > 1 ? " virtual stages" : " stages");
      kind_[op] = Kind::Micro;
      stage_[op] = int(stage.getInt());
      backwardPhase_[op] = op->hasAttr(kBackwardMark);
    }
    return success();
  }

  // The plan's numbering of a layer (plan.fbs Instruction.layer), -1 for none.
  int planLayer(int layer) const {
    if (layer == kHeadLayer)
      return numLayers_;
    if (layer == kNoLayer)
      return -2; // the embedding
    return layer < 0 ? -1 : layer;
  }

  // ap.layer on every op of the step but the update (their clones inherit it).
  void markLayers() {
    Builder b(fn_.getContext());
    for (Operation *op : ops_) {
      int layer = isa<ap::EmbeddingOp, ap::EmbeddingGradOp>(op) ? -2 : planLayer(opLayer_[op]);
      if (kind_[op] != Kind::Step && layer != -1)
        op->setAttr(kLayerMark, b.getI64IntegerAttr(layer));
    }
  }

  // Marks the ops of `entry` after `before` (all when null) as `pass` of micro-batch `mb`
  // (-1: none). Ops marked already keep their marks unless `force`.
  void markSince(Block *entry, Operation *before, StringRef pass, int mb, bool force) {
    Builder b(fn_.getContext());
    for (Operation *op = before ? before->getNextNode() : (entry->empty() ? nullptr : &entry->front());
         op; op = op->getNextNode()) {
      if (isa<func::ReturnOp>(op) || (!force && op->hasAttr(kPassMark)))
        continue;
      op->setAttr(kPassMark, b.getStringAttr(pass));
      if (mb >= 0)
        op->setAttr(kMicroBatchMark, b.getI64IntegerAttr(mb));
      else
        op->removeAttr(kMicroBatchMark);
    }
  }

  // ---- The step's arguments and the mesh ----

  LogicalResult findArguments(bool microBatched = true) {
    ids_ = batchArgument(fn_, ap::BatchInput::Tokens);
    labels_ = batchArgument(fn_, ap::BatchInput::Labels);
    for (BlockArgument arg : fn_.getArguments())
      if (argName(fn_, arg.getArgNumber()) == "kept_tokens") // made by ap-micro-batch
        kept_ = arg;
    if (!ids_ || !labels_)
      return fn_.emitError() << "ap-pipeline: @" << fn_.getSymName()
                             << " needs the batch's token ids and labels (arguments marked "
                                "ap.batch)";
    for (Value v : {ids_, labels_})
      if (auto type = dyn_cast<RankedTensorType>(v.getType()); !type || type.getRank() != 2)
        return fn_.emitError() << "ap-pipeline: argument '"
                               << argName(fn_, cast<BlockArgument>(v).getArgNumber()) << "' ("
                               << (v == ids_ ? "the token ids" : "the labels")
                               << ") must be a [batch, seq] tensor, got " << v.getType();
    if (microBatched && !fn_->hasAttr("ap.micro_batches"))
      return fn_.emitError() << "ap-pipeline: @" << fn_.getSymName()
                             << " is not the step of one micro-batch (run ap-micro-batch first)";
    return success();
  }

  // ---- Kinds, layers, stages ----

  void classify() {
    Block &body = fn_.getBody().front();
    llvm::DenseSet<Value> batch{ids_, labels_};
    for (Operation &op : body.without_terminator()) {
      ops_.push_back(&op);
      position_[&op] = int(ops_.size()) - 1;
      if (llvm::any_of(op.getOperands(), [&](Value v) { return batch.contains(v); })) {
        batchDep_.insert(&op);
        for (Value r : op.getResults())
          batch.insert(r);
      }
    }
  }

  // Where a chain of reductions, slices and casts ends at AdamW, the norm or the loss,
  // the value it starts from (the first f32 one) is summed over micro-batches.
  LogicalResult findAccumulated() {
    SmallVector<Value> roots;
    func::ReturnOp ret = cast<func::ReturnOp>(fn_.getBody().front().getTerminator());
    for (Operation *op : ops_) {
      if (auto adam = dyn_cast<ap::AdamWOp>(op))
        roots.push_back(adam.getGrad());
      if (isa<ap::GradNormOp>(op))
        roots.append(op->operand_begin(), op->operand_end());
    }
    for (unsigned i = 0; i < ret.getNumOperands(); ++i)
      if (resultName(fn_, i) == "loss")
        loss_ = ret.getOperand(i);
    if (!loss_)
      return fn_.emitError() << "ap-pipeline: @" << fn_.getSymName() << " returns no 'loss'";
    roots.push_back(loss_);
    for (Value root : roots) {
      SmallVector<Operation *> chain; // from the root down
      Value v = root;
      while (Operation *def = v.getDefiningOp()) {
        if (!batchDep_.contains(def) ||
            !isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllSliceOp, ap::CastOp>(def))
          break;
        chain.push_back(def);
        v = def->getOperand(0);
      }
      Operation *start = v.getDefiningOp();
      if (!start || !batchDep_.contains(start))
        continue; // a gradient that does not depend on the batch (none, or zero)
      // Accumulate in f32: move up through casts while the value is narrower.
      int k = int(chain.size()) - 1;
      while (k >= 0 && !cast<RankedTensorType>(v.getType()).getElementType().isF32() &&
             isa<ap::CastOp>(chain[k]))
        v = chain[k--]->getResult(0);
      accumulated_.insert(v);
    }
    // Sums of squares of gradients (the partitioned norm: squared grad_norm ops, their
    // all-reduces and sums), whose square root becomes the norm over all stages.
    for (Operation *op : ops_) {
      auto norm = dyn_cast<ap::GradNormOp>(op);
      bool squares = (norm && norm.getSquared()) ||
                     (isa<shard::AllReduceOp, ap::AddOp>(op) &&
                      llvm::all_of(op->getOperands(),
                                   [&](Value v) { return normSquares_.contains(v); }));
      if (squares)
        normSquares_.insert(op->getResult(0));
    }
    // Step ops: everything downstream of an accumulated value.
    llvm::DenseSet<Value> step(accumulated_.begin(), accumulated_.end());
    for (Operation *op : ops_)
      if (llvm::any_of(op->getOperands(), [&](Value v) { return step.contains(v); })) {
        kind_[op] = Kind::Step;
        for (Value r : op->getResults())
          step.insert(r);
      }
    for (Operation *op : ops_)
      if (!kind_.count(op))
        kind_[op] = batchDep_.contains(op) ? Kind::Micro : Kind::Feeder;
    return success();
  }

  bool isBackwardSeed(Operation *op) {
    return isa<ap::CrossEntropyGradOp>(op) ||
           isa<ap::VocabParallelLossGradOp>(op);
  }

  // The virtual stage of a layer (the stage without interleaving).
  int stageOfLayer(int layer) {
    if (layer == kHeadLayer)
      return vs_ - 1;
    if (layer < 0)
      return 0;
    for (int s = 0; s < vs_; ++s)
      if (layer < stages_[s].first + stages_[s].count)
        return s;
    return vs_ - 1;
  }

  // The stage (rank on the pp axis, one function) that runs virtual stage `v`.
  int rankOf(int v) const { return v % pp_; }

  LogicalResult assignStages() {
    stages::ModelSizes sizes =
        stages::modelSizesOf(fn_->getAttrOfType<DictionaryAttr>("ap.model"),
                             cast<RankedTensorType>(ids_.getType()).getDimSize(1));
    numLayers_ = int(sizes.layers);
    auto layers = stages::stageLayers(plan_, sizes);
    if (!layers)
      return fn_.emitError() << "ap-pipeline: " << layers.message();
    stages_ = std::move(*layers);

    // Layers of values: parameters as the model marked them, the batch none (kFloat).
    for (BlockArgument arg : fn_.getArguments()) {
      bool param = argRole(fn_, arg.getArgNumber()) == "parameter";
      layer_[arg] = param ? parameterLayer(fn_, arg.getArgNumber()) : kFloat;
      if (param && layer_[arg] == kNoLayer)
        embeddingWeights_.insert(arg);
    }
    int firstBackward = int(ops_.size());
    for (Operation *op : ops_) {
      bool backward = isBackwardSeed(op) || llvm::any_of(op->getOperands(), [&](Value v) {
                        Operation *d = v.getDefiningOp();
                        return d && backward_.contains(d);
                      });
      if (backward && kind_[op] == Kind::Micro) {
        backward_.insert(op);
        firstBackward = std::min(firstBackward, position_[op]);
      }
      int layer = kFloat;
      if (kind_[op] == Kind::Feeder || (kind_[op] == Kind::Micro && !backward)) {
        // Forward: the largest layer among the operands (the head above all).
        for (Value v : op->getOperands())
          layer = std::max(layer, layerOf(v));
        if (kind_[op] == Kind::Feeder && llvm::any_of(op->getOperands(), [&](Value v) {
              return embeddingWeights_.contains(v);
            }))
          for (Value r : op->getResults())
            embeddingWeights_.insert(r);
      } else if (kind_[op] == Kind::Micro) {
        // Backward: the layer of the forward values and weights it reads (not the
        // embedding table: the tied LM head's input gradient reads it), else the
        // lowest layer of the gradients it reads.
        int best = kFloat;
        std::optional<int> lowest; // kHeadLayer is INT_MAX: no sentinel
        for (Value v : op->getOperands()) {
          Operation *d = v.getDefiningOp();
          bool grad = d && backward_.contains(d);
          int l = layerOf(v);
          if (l == kFloat)
            continue;
          if (grad)
            lowest = std::min(lowest.value_or(l), l);
          else if (!embeddingWeights_.contains(v))
            best = std::max(best, l);
        }
        layer = best != kFloat ? best : lowest.value_or(kFloat);
      }
      for (Value r : op->getResults())
        layer_[r] = layer;
      opLayer_[op] = layer;
      if (kind_[op] == Kind::Micro) {
        if (layer == kFloat)
          kind_[op] = Kind::Floating;
        else
          stage_[op] = stageOfLayer(layer);
      }
    }
    for (Operation *op : ops_)
      backwardPhase_[op] = backward_.contains(op) || position_[op] >= firstBackward;
    // A reshape (a view) or a collective within the stage (sequence parallelism's
    // all-gather) whose users all sit on one other stage goes there, so that the stage
    // receives one tensor rather than it and its view or gathered copy.
    for (Operation *op : llvm::reverse(ops_)) {
      if (!isa<ap::ReshapeOp, shard::AllGatherOp, shard::AllReduceOp, shard::ReduceScatterOp,
               shard::AllSliceOp>(op) ||
          kind_[op] != Kind::Micro || op->use_empty())
        continue;
      std::set<std::pair<int, bool>> places;
      for (Operation *user : op->getUsers())
        places.insert(kind_.lookup(user) == Kind::Micro
                          ? std::make_pair(stage_[user], backwardPhase_[user])
                          : std::make_pair(-1, false));
      if (places.size() == 1 && places.begin()->first >= 0) {
        stage_[op] = places.begin()->first;
        backwardPhase_[op] = places.begin()->second;
      }
    }
    return success();
  }

  int layerOf(Value v) {
    auto it = layer_.find(v);
    return it == layer_.end() ? kFloat : it->second;
  }

  bool isMicro(Value v) {
    Operation *d = v.getDefiningOp();
    return d && kind_.lookup(d) == Kind::Micro;
  }
  int stageOf(Value v) { return stage_.lookup(v.getDefiningOp()); } // virtual
  int rankOfValue(Value v) { return rankOf(stageOf(v)); }

  // A tied embedding's gradient is the sum of the embedding's part (first stage) and the
  // LM head's (last stage): each stage accumulates its part; the sum is a step op that
  // both stages compute after exchanging their parts.
  LogicalResult splitCrossStageSums() {
    for (Value v : llvm::to_vector(accumulated_)) {
      auto add = v.getDefiningOp<ap::AddOp>();
      if (!add || !isMicro(add.getLhs()) || !isMicro(add.getRhs()) ||
          rankOfValue(add.getLhs()) == rankOfValue(add.getRhs()))
        continue;
      accumulated_.remove(v);
      accumulated_.insert(add.getLhs());
      accumulated_.insert(add.getRhs());
      kind_[add] = Kind::Step;
    }
    for (Value v : accumulated_)
      if (!isMicro(v)) {
        InFlightDiagnostic d = emitError(v.getLoc())
                               << "ap-pipeline: a value summed over micro-batches must be "
                                  "computed on one stage";
        if (Operation *def = v.getDefiningOp())
          d.attachNote(def->getLoc()) << "it is made by " << def->getName();
        return d;
      }
    return success();
  }

  LogicalResult checkDataflow() {
    for (Operation *op : ops_) {
      Kind k = kind_[op];
      for (Value v : op->getOperands()) {
        Operation *d = v.getDefiningOp();
        if (!d)
          continue;
        Kind dk = kind_[d];
        if (k != Kind::Step && dk == Kind::Step)
          return op->emitOpError() << "ap-pipeline: reads a value of the update (made once per "
                                      "step) inside a micro-batch";
        if (k == Kind::Step && (dk == Kind::Micro || dk == Kind::Floating) &&
            !accumulated_.contains(v))
          return op->emitOpError() << "ap-pipeline: the update reads a value of one micro-batch";
        if (k != Kind::Micro || dk != Kind::Micro || stage_[d] == stage_[op])
          continue;
        bool fwd = !backwardPhase_[d], useFwd = !backwardPhase_[op];
        bool ok = fwd ? (useFwd ? stage_[d] < stage_[op] : true) : (!useFwd && stage_[d] > stage_[op]);
        if (!ok)
          return op->emitOpError() << "ap-pipeline: reads a value of stage " << stage_[d]
                                   << " that its stage " << stage_[op]
                                   << " cannot receive in 1F1B order";
        if (!tag_.count(v))
          tag_[v] = nextTag_++;
        sendTo_[v].insert(stage_[op]);
      }
    }
    return success();
  }

  // ---- What each stage holds ----

  void holdersThrough(Value v, int stage) {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      argStages_[arg].insert(stage);
      return;
    }
    Operation *d = v.getDefiningOp();
    if (d && (kind_[d] == Kind::Feeder || kind_[d] == Kind::Floating))
      for (Value o : d->getOperands())
        holdersThrough(o, stage);
  }

  void findOwnership() {
    for (Operation *op : ops_)
      if (kind_[op] == Kind::Micro)
        for (Value v : op->getOperands())
          holdersThrough(v, rankOf(stage_[op]));
    // Optimizer states follow their parameter; step and lr go everywhere.
    llvm::StringMap<BlockArgument> params;
    for (BlockArgument arg : fn_.getArguments())
      if (argRole(fn_, arg.getArgNumber()) == "parameter") {
        params[argName(fn_, arg.getArgNumber())] = arg;
        if (argStages_[arg].empty())
          argStages_[arg].insert(0);
      }
    for (BlockArgument arg : fn_.getArguments()) {
      std::string name = argName(fn_, arg.getArgNumber());
      StringRef rest(name);
      if (argRole(fn_, arg.getArgNumber()) == "optimizer_state" &&
          (rest.consume_front("exp_avg_sq.") || rest.consume_front("exp_avg.")) &&
          params.count(rest)) {
        std::set<int> stages = argStages_[params[rest]]; // a copy: the map may grow
        argStages_[arg] = stages;
      }
      else if (name == "step" || name == "lr")
        for (int s = 0; s < pp_; ++s)
          argStages_[arg].insert(s);
    }
  }

  bool holds(int stage, unsigned argIndex) {
    Value arg = fn_.getArgument(argIndex);
    if (arg == kept_)
      return false;
    return argStages_[arg].count(stage) > 0;
  }

  // The stages whose accumulated values `v` is computed from (one for most gradients).
  std::set<int> accStages(Value v, llvm::DenseSet<Value> &seen) {
    std::set<int> out;
    if (!seen.insert(v).second)
      return out;
    if (accumulated_.contains(v))
      return {rankOfValue(v)};
    if (Operation *d = v.getDefiningOp(); d && kind_[d] == Kind::Step)
      for (Value o : d->getOperands())
        for (int s : accStages(o, seen))
          out.insert(s);
    return out;
  }

  // A gradient's square counts once towards the norm: on the first stage computing it.
  int normStage(Value g) {
    llvm::DenseSet<Value> seen;
    std::set<int> stages = accStages(g, seen);
    return stages.empty() ? 0 : *stages.begin();
  }

  // The update ops stage `s` runs: those its results need (its parameters' new values
  // and moments, the norm, the loss on the last stage).
  LogicalResult collectStepOps(int s) {
    auto ret = cast<func::ReturnOp>(fn_.getBody().front().getTerminator());
    SmallVector<Value> work;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i)
      if (returnsOn(s, i) && (resultNames_[i] != "loss" || s == pp_ - 1))
        work.push_back(ret.getOperand(i));
    llvm::DenseSet<Operation *> &needed = stepOps_[s];
    while (!work.empty()) {
      Value v = work.pop_back_val();
      if (accumulated_.contains(v)) {
        if (rankOfValue(v) != s)
          remoteAcc_[s].insert(v);
        continue;
      }
      Operation *d = v.getDefiningOp();
      if (!d || kind_[d] != Kind::Step || !needed.insert(d).second)
        continue;
      for (Value o : d->getOperands())
        if (!(isa<ap::GradNormOp>(d) && pp_ > 1 && normStage(o) != s))
          work.push_back(o);
    }
    return success();
  }

  // Whether stage `s` returns result `i`: the loss and the norm everywhere, a new
  // parameter or moment where its argument is held.
  bool returnsOn(int s, unsigned i) {
    const std::string &name = resultNames_[i];
    if (name == "loss" || name == "grad_norm")
      return true;
    if (auto it = argIndex_.find(name); it != argIndex_.end())
      return holds(s, it->second);
    return s == 0;
  }

  // ---- Building a stage ----

  // The micro ops of each stage's forward and backward block (blockOps_[2 * stage +
  // backward]), in step order: every pass of the schedule clones one of them.
  void collectBlocks() {
    blockOps_.assign(2 * vs_, {});
    for (Operation *op : ops_)
      if (kind_[op] == Kind::Micro)
        blockOps_[2 * stage_[op] + int(backwardPhase_[op])].push_back(op);
  }

  struct StageBuilder {
    StageBuilder(int stage, func::FuncOp fn, OpBuilder b) : stage(stage), fn(fn), b(b) {}
    int stage;
    func::FuncOp fn;
    OpBuilder b;
    IRMapping args;                                 // step argument -> stage argument
    Value count;                                    // the step's kept tokens
    SmallVector<llvm::DenseMap<Value, Value>> perMicroBatch; // values of micro-batch i
    llvm::DenseMap<Value, Value> block;              // feeders and floating ops of a block
    llvm::DenseMap<Value, Value> keptForStep;        // working copies under ZeRO-1/2
    llvm::DenseMap<Value, Value> accumulated;        // sums over micro-batches so far
    llvm::DenseMap<Value, Value> stepValues;         // the update's values
  };

  FailureOr<func::FuncOp> buildStage(int s) {
    MLIRContext *ctx = fn_.getContext();
    // Arguments the stage holds (the batch whole: all micro-batches of the step).
    SmallVector<Type> argTypes;
    SmallVector<DictionaryAttr> argAttrs;
    SmallVector<unsigned> argIndex;
    for (unsigned i = 0; i < fn_.getNumArguments(); ++i) {
      Value arg = fn_.getArgument(i);
      bool batchArg = arg == ids_ || arg == labels_;
      if (batchArg ? argStages_[arg].count(s) == 0 : !holds(s, i))
        continue;
      Type t = arg.getType();
      if (batchArg) {
        auto type = cast<RankedTensorType>(t);
        SmallVector<int64_t> shape(type.getShape());
        shape[0] *= mb_;
        t = RankedTensorType::get(shape, type.getElementType());
      }
      argTypes.push_back(t);
      argAttrs.push_back(fn_.getArgAttrDict(i));
      argIndex.push_back(i);
    }
    auto ret = cast<func::ReturnOp>(fn_.getBody().front().getTerminator());
    SmallVector<unsigned> results;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i)
      if (returnsOn(s, i))
        results.push_back(i);
    SmallVector<Type> resultTypes;
    for (unsigned i : results)
      resultTypes.push_back(ret.getOperand(i).getType());

    OpBuilder mb(module_.getBodyRegion());
    mb.setInsertionPoint(fn_);
    std::string name = pp_ == 1 ? fn_.getSymName().str()
                                : (fn_.getSymName() + ".stage" + std::to_string(s)).str();
    auto stageFn = func::FuncOp::create(mb, fn_.getLoc(), pp_ == 1 ? name + ".pipelined" : name,
                                        FunctionType::get(ctx, argTypes, resultTypes));
    for (NamedAttribute a : fn_->getAttrs())
      if (a.getName() != fn_.getSymNameAttrName() && a.getName() != fn_.getFunctionTypeAttrName() &&
          a.getName() != "arg_attrs" && a.getName() != "res_attrs")
        stageFn->setAttr(a.getName(), a.getValue());
    stageFn->setAttr("ap.stage", mb.getI64IntegerAttr(s));
    for (unsigned k = 0; k < argIndex.size(); ++k)
      if (argAttrs[k])
        stageFn.setArgAttrs(k, argAttrs[k]);
    for (unsigned k = 0; k < results.size(); ++k)
      if (DictionaryAttr d = fn_.getResultAttrDict(results[k]))
        stageFn.setResultAttrs(k, d);
    Block *entry = stageFn.addEntryBlock();

    StageBuilder sb{s, stageFn, OpBuilder::atBlockEnd(entry)};
    sb.perMicroBatch.resize(mb_);
    for (unsigned k = 0; k < argIndex.size(); ++k)
      sb.args.map(fn_.getArgument(argIndex[k]), entry->getArgument(k));
    if (failed(countKeptTokens(sb)))
      return failure();

    markSince(entry, nullptr, "other", -1, /*force=*/false); // the kept-token count
    // The passes in the schedule's order (Schedule.h: 1F1B, interleaved with vp > 1).
    for (const schedule::Pass &pass : schedule::interleavedOrder(pp_, vp_, s, mb_)) {
      Operation *before = entry->empty() ? nullptr : &entry->back();
      bool backward = !pass.forward();
      int i = pass.microBatch;
      int v = pass.chunk * pp_ + s;
      sb.block.clear();
      for (Operation *op : blockOps_[2 * v + int(backward)])
        if (failed(cloneMicro(sb, op, i)))
          return failure();
      markSince(entry, before, backward ? "backward" : "forward", i, /*force=*/true);
    }
    Operation *beforeUpdate = entry->empty() ? nullptr : &entry->back();
    if (failed(buildUpdate(sb, ret, results)))
      return failure();
    markSince(entry, beforeUpdate, "step", -1, /*force=*/true);
    if (pp_ == 1)
      stageFn.setSymName(name);
    return stageFn;
  }

  // The kept tokens of the step's whole batch: the count of every micro-batch's labels as
  // the loss sees them (shifted), summed and all-reduced over dp and cp; the micro-batch
  // function divides its loss by it.
  LogicalResult countKeptTokens(StageBuilder &sb) {
    if (!kept_ || kept_.use_empty() || !sb.args.contains(labels_))
      return success();
    IntegerAttr ignore;
    Value lossLabels;
    for (Operation *user : kept_.getUsers()) {
      if (auto a = user->getAttrOfType<IntegerAttr>("ignore_index"))
        ignore = a;
      for (Value o : user->getOperands())
        if (auto t = dyn_cast<RankedTensorType>(o.getType());
            t && t.getElementType().isSignlessInteger() && !lossLabels)
          lossLabels = o;
    }
    if (!lossLabels)
      return emitError(kept_.getLoc()) << "ap-pipeline: the loss that divides by kept_tokens "
                                          "reads no labels";
    if (!ignore)
      ignore = sb.b.getI64IntegerAttr(-100);
    auto scalar = cast<RankedTensorType>(kept_.getType());
    Value count;
    for (int i = 0; i < mb_; ++i) {
      sb.block.clear(); // floating clones are per micro-batch
      FailureOr<Value> labels = microValue(sb, lossLabels, i);
      if (failed(labels))
        return failure();
      Value c = ap::CountKeptOp::create(sb.b, kept_.getLoc(), scalar, *labels, ignore);
      count = count ? Value(ap::AddOp::create(sb.b, kept_.getLoc(), scalar, count, c).getResult())
                    : c;
    }
    sb.block.clear();
    // The labels are split over dp (rows) and cp (each device's chunks of the sequence).
    SmallVector<shard::GridAxis> axes;
    if (plan_.dp > 1)
      axes.push_back(shard::GridAxis(dpAxis_));
    if (cpAxis_ >= 0)
      axes.push_back(shard::GridAxis(cpAxis_));
    if (!axes.empty())
      count = shard::AllReduceOp::create(sb.b, kept_.getLoc(), scalar, kGrid, axes, count,
                                         shard::ReductionKind::Sum)
                  .getResult();
    sb.count = count;
    return success();
  }

  // Under ZeRO-1/2 a parameter's working copy (its cast to the compute type, its
  // gather over dp) is made once per step and kept for every block.
  bool keptForStep(Operation *op) {
    return (plan_.zero == 1 || plan_.zero == 2) && plan_.dp > 1 && kind_[op] == Kind::Feeder &&
           isa<ap::CastOp, shard::AllGatherOp>(op);
  }

  // `v` of micro-batch `i` on this stage, at the builder's point.
  FailureOr<Value> microValue(StageBuilder &sb, Value v, int i) {
    auto &values = sb.perMicroBatch[i];
    if (Value known = values.lookup(v))
      return known;
    if (Value known = sb.block.lookup(v))
      return known;
    if (Value known = sb.keptForStep.lookup(v))
      return known;
    Location loc = v.getLoc();
    if (v == kept_) {
      if (!sb.count)
        return emitError(loc) << "ap-pipeline: stage " << sb.stage << " has no labels to count";
      return sb.count;
    }
    if (v == ids_ || v == labels_) {
      Value whole = sb.args.lookupOrNull(v);
      if (!whole)
        return emitError(loc) << "ap-pipeline: stage " << sb.stage << " does not hold "
                              << argName(fn_, cast<BlockArgument>(v).getArgNumber());
      auto type = cast<RankedTensorType>(v.getType());
      Value slice = ap::SliceOp::create(sb.b, loc, type, whole, sb.b.getI64IntegerAttr(0),
                                        sb.b.getI64IntegerAttr(i * type.getDimSize(0)));
      return values[v] = slice;
    }
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (Value mapped = sb.args.lookupOrNull(arg))
        return mapped;
      return emitError(loc) << "ap-pipeline: stage " << sb.stage << " does not hold '"
                            << argName(fn_, arg.getArgNumber()) << "'";
    }
    Operation *d = v.getDefiningOp();
    Kind k = kind_[d];
    if (k == Kind::Feeder || k == Kind::Floating) {
      IRMapping map;
      for (Value o : d->getOperands()) {
        FailureOr<Value> m = microValue(sb, o, i);
        if (failed(m))
          return failure();
        map.map(o, *m);
      }
      Operation *clone = sb.b.clone(*d, map);
      for (auto [r, c] : llvm::zip(d->getResults(), clone->getResults()))
        (keptForStep(d) ? sb.keptForStep : sb.block)[r] = c;
      return clone->getResult(cast<OpResult>(v).getResultNumber());
    }
    if (k == Kind::Micro && rankOf(stage_[d]) != sb.stage) {
      auto recv = ap::RecvOp::create(sb.b, loc, v.getType(), sb.b.getDenseI64ArrayAttr({ppAxis_}),
                                     sb.b.getI64IntegerAttr(rankOf(stage_[d]) - sb.stage),
                                     sb.b.getI64IntegerAttr(tag_.lookup(v)));
      if (Attribute layer = d->getAttr(kLayerMark)) // the layer of what it receives
        recv->setAttr(kLayerMark, layer);
      return values[v] = recv.getResult();
    }
    return d->emitOpError() << "ap-pipeline: internal error: used by stage " << sb.stage
                            << " before it is computed";
  }

  LogicalResult cloneMicro(StageBuilder &sb, Operation *op, int i) {
    IRMapping map;
    for (Value o : op->getOperands()) {
      FailureOr<Value> m = microValue(sb, o, i);
      if (failed(m))
        return failure();
      map.map(o, *m);
    }
    Operation *clone = sb.b.clone(*op, map);
    for (auto [r, c] : llvm::zip(op->getResults(), clone->getResults())) {
      sb.perMicroBatch[i][r] = c;
      std::set<int> ranks; // a stage reached through several of its chunks gets one copy
      if (auto it = sendTo_.find(r); it != sendTo_.end())
        for (int t : it->second)
          if (rankOf(t) != sb.stage) // a chunk of this stage reads it here
            ranks.insert(rankOf(t));
      for (int t : ranks) {
        auto send = ap::SendOp::create(sb.b, r.getLoc(), c, sb.b.getDenseI64ArrayAttr({ppAxis_}),
                                       sb.b.getI64IntegerAttr(t - sb.stage),
                                       sb.b.getI64IntegerAttr(tag_.lookup(r)));
        if (Attribute layer = clone->getAttr(kLayerMark)) // the layer of what it sends
          send->setAttr(kLayerMark, layer);
      }
      if (accumulated_.contains(r)) {
        Value &sum = sb.accumulated[r];
        sum = sum ? Value(ap::AddOp::create(sb.b, r.getLoc(), c.getType(), sum, c).getResult())
                  : Value(c);
      }
    }
    return success();
  }

  // ---- The update ----

  FailureOr<Value> stepValue(StageBuilder &sb, Value v) {
    if (Value known = sb.stepValues.lookup(v))
      return known;
    if (accumulated_.contains(v)) {
      if (rankOfValue(v) == sb.stage)
        return sb.accumulated.lookup(v);
      auto recv = ap::RecvOp::create(sb.b, v.getLoc(), v.getType(),
                                     sb.b.getDenseI64ArrayAttr({ppAxis_}),
                                     sb.b.getI64IntegerAttr(rankOfValue(v) - sb.stage),
                                     sb.b.getI64IntegerAttr(accTag(v)));
      return sb.stepValues[v] = recv.getResult();
    }
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (Value mapped = sb.args.lookupOrNull(arg))
        return mapped;
      return emitError(v.getLoc()) << "ap-pipeline: the update of stage " << sb.stage
                                   << " reads '" << argName(fn_, arg.getArgNumber())
                                   << "', which it does not hold";
    }
    Operation *d = v.getDefiningOp();
    if (kind_[d] == Kind::Feeder) {
      IRMapping map;
      for (Value o : d->getOperands()) {
        FailureOr<Value> m = stepValue(sb, o);
        if (failed(m))
          return failure();
        map.map(o, *m);
      }
      Operation *clone = sb.b.clone(*d, map);
      for (auto [r, c] : llvm::zip(d->getResults(), clone->getResults()))
        sb.stepValues[r] = c;
      return sb.stepValues.lookup(v);
    }
    return d->emitOpError() << "ap-pipeline: internal error: the update of stage " << sb.stage
                            << " reads it before it is computed";
  }

  int64_t accTag(Value v) {
    auto [it, added] = accTags_.try_emplace(v, 0);
    if (added)
      it->second = nextTag_++;
    return it->second;
  }

  Value allReduceOverStages(OpBuilder &b, Value v) {
    return shard::AllReduceOp::create(b, v.getLoc(), v.getType(), kGrid,
                                      SmallVector<shard::GridAxis>{shard::GridAxis(ppAxis_)}, v,
                                      shard::ReductionKind::Sum)
        .getResult();
  }

  LogicalResult buildUpdate(StageBuilder &sb, func::ReturnOp ret, ArrayRef<unsigned> results) {
    OpBuilder &b = sb.b;
    // This stage's parts of sums that other stages finish (a tied embedding's).
    for (int t = 0; t < pp_; ++t)
      if (t != sb.stage)
        for (Value v : remoteAcc_[t])
          if (rankOfValue(v) == sb.stage)
            ap::SendOp::create(b, v.getLoc(), sb.accumulated.lookup(v),
                               b.getDenseI64ArrayAttr({ppAxis_}),
                               b.getI64IntegerAttr(t - sb.stage), b.getI64IntegerAttr(accTag(v)));
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    for (Operation *op : ops_) {
      if (!stepOps_[sb.stage].contains(op))
        continue;
      if (auto norm = dyn_cast<ap::GradNormOp>(op); norm && pp_ > 1) {
        // This stage's share of the sum of squares (each gradient counted once).
        SmallVector<Value> grads;
        for (Value g : norm->getOperands())
          if (normStage(g) == sb.stage) {
            FailureOr<Value> m = stepValue(sb, g);
            if (failed(m))
              return failure();
            grads.push_back(*m);
          }
        Value squares;
        if (grads.empty()) {
          squares = ap::FillOp::create(b, op->getLoc(), scalar, b.getF64FloatAttr(0.0));
        } else {
          auto sq = ap::GradNormOp::create(b, op->getLoc(), scalar, grads);
          sq.setSquared(true);
          squares = sq.getResult();
        }
        sb.stepValues[norm.getResult()] =
            norm.getSquared()
                ? squares
                : ap::SqrtOp::create(b, op->getLoc(), scalar, allReduceOverStages(b, squares))
                      .getResult();
        continue;
      }
      IRMapping map;
      for (Value o : op->getOperands()) {
        FailureOr<Value> m = stepValue(sb, o);
        if (failed(m))
          return failure();
        // The norm's sum of squares: over all stages.
        map.map(o, isa<ap::SqrtOp>(op) && pp_ > 1 && normSquares_.contains(o)
                       ? allReduceOverStages(b, *m)
                       : *m);
      }
      Operation *clone = b.clone(*op, map);
      for (auto [r, c] : llvm::zip(op->getResults(), clone->getResults()))
        sb.stepValues[r] = c;
    }
    SmallVector<Value> operands;
    for (unsigned i : results) {
      Value v = ret.getOperand(i);
      Value out;
      if (v == loss_) {
        // The loss lives on the last stage; every rank reports it.
        if (sb.stage == pp_ - 1) {
          FailureOr<Value> m = stepValue(sb, v);
          if (failed(m))
            return failure();
          out = *m;
        } else {
          out = ap::FillOp::create(b, v.getLoc(), v.getType(), b.getF64FloatAttr(0.0));
        }
        if (pp_ > 1)
          out = allReduceOverStages(b, out);
      } else {
        FailureOr<Value> m = stepValue(sb, v);
        if (failed(m))
          return failure();
        out = *m;
      }
      operands.push_back(out);
    }
    func::ReturnOp::create(b, ret.getLoc(), operands);
    return success();
  }

  // The stages' layers and the micro-batches, for lowering and the plan.
  void recordPipeline() {
    SmallVector<int64_t> layers;
    for (const stages::StageLayers &s : stages_) {
      layers.push_back(s.first);
      layers.push_back(s.count);
    }
    OpBuilder b(module_.getContext());
    module_->setAttr("ap.pipeline",
                     b.getDictionaryAttr({b.getNamedAttr("stage_layers",
                                                         b.getDenseI64ArrayAttr(layers)),
                                          b.getNamedAttr("micro_batches",
                                                         b.getI64IntegerAttr(mb_)),
                                          b.getNamedAttr("chunks", b.getI64IntegerAttr(vp_))}));
  }

  ModuleOp module_;
  func::FuncOp fn_;
  partition::ParallelPlan plan_;
  int pp_, mb_;
  // Interleaving: vp_ model chunks per stage, vs_ = pp_ x vp_ virtual stages. Ops are
  // placed on virtual stages (stage_, blockOps_, sendTo_); functions, arguments, sends
  // and receives belong to stages (ranks on the pp axis): virtual stage v runs on stage
  // v % pp_ as its chunk v / pp_.
  int vp_, vs_;
  int ppAxis_, dpAxis_; // mesh axes (ppAxis_ -1 without stages: mb alone accumulates)
  int cpAxis_;          // -1 without context parallelism
  std::vector<stages::StageLayers> stages_;
  Value ids_, labels_, kept_, loss_;
  SmallVector<Operation *> ops_;
  llvm::DenseMap<Operation *, int> position_;
  llvm::DenseSet<Operation *> batchDep_, backward_;
  llvm::DenseMap<Operation *, Kind> kind_;
  llvm::DenseMap<Operation *, int> stage_;
  llvm::DenseMap<Operation *, bool> backwardPhase_;
  llvm::DenseMap<Value, int> layer_;
  llvm::DenseMap<Operation *, int> opLayer_; // as layer_, for ops without results too
  int numLayers_ = 0;
  std::vector<std::vector<Operation *>> blockOps_;
  std::vector<std::string> resultNames_;  // by result index
  llvm::StringMap<unsigned> argIndex_;     // argument name -> its (first) index
  llvm::DenseSet<Value> embeddingWeights_;
  llvm::DenseSet<Value> normSquares_;
  llvm::SetVector<Value> accumulated_;
  llvm::DenseMap<Value, std::set<int>> sendTo_;
  llvm::DenseMap<Value, int64_t> tag_, accTags_;
  int64_t nextTag_ = 1;
  llvm::DenseMap<Value, std::set<int>> argStages_;
  std::map<int, llvm::DenseSet<Operation *>> stepOps_;
  std::map<int, llvm::SetVector<Value>> remoteAcc_;
};

// A step with token ids and labels (ap.batch) that returns a loss: what markOnly reads.
bool isTrainingStep(func::FuncOp fn) {
  bool loss = false;
  for (unsigned i = 0; i < fn.getNumResults(); ++i)
    loss = loss || resultName(fn, i) == "loss";
  return batchArgument(fn, ap::BatchInput::Tokens) && batchArgument(fn, ap::BatchInput::Labels) &&
         loss && !fn.getBody().empty();
}

} // namespace

LogicalResult stages::placeOnStages(ModuleOp module) {
  partition::ParallelPlan plan = partition::fromAttr(parallelPlanOf(module));
  if (plan.mb == 1 && plan.pp == 1)
    return success();
  FailureOr<func::FuncOp> entry = findEntryFunction(module);
  if (failed(entry))
    return failure();
  FailureOr<Mesh> mesh = meshOf(module);
  if (failed(mesh))
    return failure();
  return Pipeliner(module, *entry, plan, *mesh).place();
}

namespace {

struct ApPipelinePass : impl::ApPipelinePassBase<ApPipelinePass> {
  using ApPipelinePassBase::ApPipelinePassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    partition::ParallelPlan plan = partition::fromAttr(parallelPlanOf(module));
    if (plan.mb == 1 && plan.pp == 1) {
      // Nothing to pipeline: only mark the step's ops (when it is a training step).
      SmallVector<func::FuncOp> functions(module.getOps<func::FuncOp>());
      func::FuncOp fn = module.lookupSymbol<func::FuncOp>("train_step");
      if (!fn && functions.size() == 1)
        fn = functions.front();
      if (!fn || !isTrainingStep(fn))
        return;
      if (failed(Pipeliner(module, fn, plan, Mesh()).markOnly()))
        return signalPassFailure();
      return;
    }
    FailureOr<func::FuncOp> entry = findEntryFunction(module);
    if (failed(entry))
      return signalPassFailure();
    FailureOr<Mesh> mesh = meshOf(module);
    if (failed(mesh))
      return signalPassFailure();
    Pipeliner pipeliner(module, *entry, plan, *mesh);
    if (failed(pipeliner.run()) || failed(verify(module)))
      return signalPassFailure();
  }
};

} // namespace
} // namespace apc
