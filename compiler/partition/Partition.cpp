// ap-partition: the training step of one device under a parallel plan.
//
// A single forward sweep propagates, for the data-parallel axis, a state per value:
// Replicated (every device holds all of it), Split(d) (each device holds 1/dp of dim
// d) or Partial (each device holds a summand; the true value is the sum over devices).
// Each op has a rule from its operands' states to its results' states; where a rule
// needs whole values, Partial operands are all-reduced first (shard.all_reduce, sum).
// Types of split values shrink on their split dim. Later axes (tensor, sequence) add
// states and rules of the same kind; see docs/partitioning.md.
#include "compiler/Passes.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/support/EntryFunction.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

namespace apc {

#define GEN_PASS_DEF_APPARTITIONPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

struct State {
  enum Kind { Replicated, Split, Partial } kind = Replicated;
  int64_t dim = 0;
  static State r() { return {}; }
  static State s(int64_t d) { return {Split, d}; }
  static State p() { return {Partial, 0}; }
  bool operator==(const State &o) const {
    return kind == o.kind && (kind != Split || dim == o.dim);
  }
};

constexpr llvm::StringLiteral kGrid = "mesh";

class DataParallel {
public:
  DataParallel(ModuleOp module, func::FuncOp fn, int64_t dp, double bucketBytes)
      : module_(module), fn_(fn), dp_(dp), bucketBytes_(bucketBytes) {}

  LogicalResult run() {
    OpBuilder b(module_.getBodyRegion());
    b.setInsertionPointToStart(module_.getBody());
    if (module_.lookupSymbol(kGrid))
      return module_.emitError() << "ap-partition: the module is already partitioned (it has @"
                                 << kGrid << ")";
    shard::GridOp::create(b, fn_.getLoc(), kGrid, ArrayRef<int64_t>{dp_});

    for (BlockArgument arg : fn_.getArguments()) {
      std::string name = argName(fn_, arg.getArgNumber());
      if (name == "input_ids" || name == "labels") {
        if (failed(setSplit(arg, 0)))
          return failure();
      } else {
        states_[arg] = State::r();
      }
    }
    SmallVector<Operation *> ops;
    for (Operation &op : fn_.getBody().front())
      ops.push_back(&op);
    for (Operation *op : ops)
      if (failed(partition(op)) || failed_)
        return failure();
    fn_.setType(FunctionType::get(fn_.getContext(), fn_.getBody().front().getArgumentTypes(),
                                  fn_.getBody().front().getTerminator()->getOperandTypes()));
    bucketGradientReductions();
    return success();
  }

private:
  RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

  LogicalResult setSplit(Value v, int64_t dim) {
    auto type = typeOf(v);
    if (dim >= type.getRank() || type.getDimSize(dim) % dp_ != 0) {
      emitError(v.getLoc()) << "ap-partition: cannot split " << type << " on dim " << dim
                            << " into " << dp_ << " parts";
      return failure();
    }
    SmallVector<int64_t> shape(type.getShape());
    shape[dim] /= dp_;
    v.setType(RankedTensorType::get(shape, type.getElementType()));
    states_[v] = State::s(dim);
    return success();
  }

  State stateOf(Value v) { return states_.lookup(v); }

  // The whole value of a partial one: all-reduced right after it is complete. Partial
  // sums are reduced in f32 (the runtime's collectives are f32); others are refused.
  Value whole(Value v) {
    if (stateOf(v).kind != State::Partial)
      return v;
    if (Value done = wholes_.lookup(v))
      return done;
    if (!typeOf(v).getElementType().isF32()) {
      emitError(v.getLoc()) << "ap-partition: a partial sum of type " << v.getType()
                            << " would need an all-reduce, which runs in f32 only";
      failed_ = true;
      return v;
    }
    OpBuilder b(fn_.getContext());
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(&fn_.getBody().front());
    auto reduce = shard::AllReduceOp::create(b, v.getLoc(), v.getType(), kGrid,
                                             ArrayRef<shard::GridAxis>{0}, v,
                                             shard::ReductionKind::Sum);
    wholes_[v] = reduce.getResult();
    states_[reduce.getResult()] = State::r();
    return reduce.getResult();
  }

  void makeWhole(Operation *op, unsigned index) {
    Value v = op->getOperand(index);
    if (stateOf(v).kind == State::Partial)
      op->setOperand(index, whole(v));
  }
  void makeAllWhole(Operation *op) {
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      makeWhole(op, i);
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
    states_[local.getResult()] = State::p();
    Value global = whole(local.getResult());
    counts_[key] = global;
    return global;
  }

  LogicalResult setResult(Value result, State state) {
    if (state.kind == State::Split)
      return setSplit(result, state.dim);
    states_[result] = state;
    return success();
  }

  LogicalResult noRule(Operation *op) {
    return op->emitOpError() << "ap-partition: no data-parallel rule for these operand "
                                "shardings";
  }

  // Same state for every operand (after making partials whole) -> that state.
  LogicalResult elementwise(Operation *op, bool keepPartial) {
    bool allPartial = llvm::all_of(op->getOperands(), [&](Value v) {
      return stateOf(v).kind == State::Partial;
    });
    if (!(keepPartial && allPartial))
      makeAllWhole(op);
    State first = op->getNumOperands() ? stateOf(op->getOperand(0)) : State::r();
    for (Value v : op->getOperands())
      if (!(stateOf(v) == first))
        return noRule(op);
    for (Value r : op->getResults())
      if (failed(setResult(r, first)))
        return failure();
    return success();
  }

  LogicalResult matmul(ap::MatmulOp op) {
    makeAllWhole(op);
    State a = stateOf(op.getLhs()), bs = stateOf(op.getRhs());
    int64_t r = typeOf(op.getLhs()).getRank();
    bool ta = op.getTransposeLhs(), tb = op.getTransposeRhs();
    int64_t mDim = ta ? r - 1 : r - 2, kA = ta ? r - 2 : r - 1;
    int64_t kB = tb ? r - 1 : r - 2, nDim = tb ? r - 2 : r - 1;
    if (a.kind == State::Replicated && bs.kind == State::Replicated)
      return setResult(op.getResult(), State::r());
    if (a.kind == State::Split && bs.kind == State::Split && a.dim == bs.dim && a.dim < r - 2)
      return setResult(op.getResult(), State::s(a.dim));
    if (a.kind == State::Split && a.dim == mDim && bs.kind == State::Replicated)
      return setResult(op.getResult(), State::s(r - 2));
    if (a.kind == State::Replicated && bs.kind == State::Split && bs.dim == nDim)
      return setResult(op.getResult(), State::s(r - 1));
    if (a.kind == State::Split && a.dim == kA && bs.kind == State::Split && bs.dim == kB)
      return setResult(op.getResult(), State::p());
    return noRule(op);
  }

  LogicalResult partition(Operation *op) {
    if (isa<shard::AllReduceOp>(op))
      return success(); // made by this pass
    if (isa<func::ReturnOp>(op)) {
      makeAllWhole(op);
      return success();
    }
    OpBuilder b(op);
    auto rows = [&](Value v) { // split on a dim that is not the last (feature) dim
      State s = stateOf(v);
      return s.kind == State::Split && s.dim < typeOf(v).getRank() - 1;
    };
    return llvm::TypeSwitch<Operation *, LogicalResult>(op)
        .Case<ap::AddOp, ap::CastOp>([&](Operation *o) { return elementwise(o, true); })
        .Case<ap::MulOp, ap::SiluOp, ap::SiluGradOp, ap::FillOp, ap::ShiftLabelsOp>(
            [&](Operation *o) {
              if (isa<ap::ShiftLabelsOp>(o) && stateOf(o->getOperand(0)).kind == State::Split &&
                  !rows(o->getOperand(0)))
                return noRule(o);
              return elementwise(o, false);
            })
        .Case([&](ap::ReshapeOp o) -> LogicalResult {
          State s = stateOf(o.getInput());
          if (s.kind != State::Split)
            return setResult(o.getResult(), s);
          if (s.dim != 0 || typeOf(o.getResult()).getDimSize(0) % dp_ != 0)
            return noRule(o);
          return setResult(o.getResult(), State::s(0));
        })
        .Case([&](ap::TransposeOp o) -> LogicalResult {
          State s = stateOf(o.getInput());
          if (s.kind != State::Split)
            return setResult(o.getResult(), s);
          ArrayRef<int64_t> perm = o.getPermutation();
          for (int64_t j = 0; j < int64_t(perm.size()); ++j)
            if (perm[j] == s.dim)
              return setResult(o.getResult(), State::s(j));
          return noRule(o);
        })
        .Case([&](ap::EmbeddingOp o) -> LogicalResult {
          makeAllWhole(o);
          State ids = stateOf(o.getIds());
          if (stateOf(o.getWeight()).kind != State::Replicated)
            return noRule(o);
          return setResult(o.getResult(), ids);
        })
        .Case([&](ap::EmbeddingGradOp o) -> LogicalResult {
          makeAllWhole(o);
          State ids = stateOf(o.getIds()), dy = stateOf(o.getGradOutput());
          if (ids.kind == State::Replicated && dy.kind == State::Replicated)
            return setResult(o.getResult(), State::r());
          if (ids.kind == State::Split && dy == ids)
            return setResult(o.getResult(), State::p());
          return noRule(o);
        })
        .Case([&](ap::LinearOp o) -> LogicalResult {
          makeAllWhole(o);
          State x = stateOf(o.getInput());
          if (stateOf(o.getWeight()).kind != State::Replicated ||
              (x.kind == State::Split && !rows(o.getInput())))
            return noRule(o);
          return setResult(o.getResult(), x);
        })
        .Case([&](ap::MatmulOp o) { return matmul(o); })
        .Case([&](ap::RmsNormOp o) -> LogicalResult {
          makeAllWhole(o);
          State x = stateOf(o.getInput());
          if (stateOf(o.getWeight()).kind != State::Replicated ||
              (x.kind == State::Split && !rows(o.getInput())))
            return noRule(o);
          return setResult(o.getResult(), x);
        })
        .Case([&](ap::RmsNormGradOp o) -> LogicalResult {
          makeAllWhole(o);
          State x = stateOf(o.getInput());
          if (stateOf(o.getWeight()).kind != State::Replicated ||
              !(stateOf(o.getGradOutput()) == x) ||
              (x.kind == State::Split && !rows(o.getInput())))
            return noRule(o);
          if (failed(setResult(o.getGradInput(), x)))
            return failure();
          return setResult(o.getGradWeight(),
                           x.kind == State::Split ? State::p() : State::r());
        })
        .Case<ap::RopeOp, ap::RopeGradOp>([&](Operation *o) -> LogicalResult {
          makeAllWhole(o);
          State s = stateOf(o->getOperand(0));
          if (s.kind == State::Split && s.dim != 0) // positions would need an offset
            return noRule(o);
          return setResult(o->getResult(0), s);
        })
        .Case<ap::AttentionOp, ap::AttentionGradOp>([&](Operation *o) -> LogicalResult {
          makeAllWhole(o);
          State s = stateOf(o->getOperand(0));
          for (Value v : o->getOperands())
            if (!(stateOf(v) == s))
              return noRule(o);
          if (s.kind == State::Split && s.dim != 0) // heads or sequence: not data parallel
            return noRule(o);
          for (Value r : o->getResults())
            if (failed(setResult(r, s)))
              return failure();
          return success();
        })
        .Case([&](ap::ReduceSumOp o) -> LogicalResult {
          State s = stateOf(o.getInput());
          if (s.kind != State::Split)
            return setResult(o.getResult(), s);
          if (llvm::is_contained(o.getDims(), s.dim))
            return setResult(o.getResult(), State::p());
          int64_t d = s.dim;
          if (!o.getKeepDims())
            for (int64_t r : o.getDims())
              d -= r < s.dim ? 1 : 0;
          return setResult(o.getResult(), State::s(d));
        })
        .Case([&](ap::BroadcastOp o) -> LogicalResult {
          makeAllWhole(o);
          State s = stateOf(o.getInput());
          if (s.kind != State::Split)
            return setResult(o.getResult(), s);
          int64_t seen = -1;
          for (int64_t j = 0; j < typeOf(o.getResult()).getRank(); ++j)
            if (!llvm::is_contained(o.getDims(), j) && ++seen == s.dim)
              return setResult(o.getResult(), State::s(j));
          return noRule(o);
        })
        .Case([&](ap::CountKeptOp o) -> LogicalResult {
          State s = stateOf(o.getLabels());
          return setResult(o.getResult(),
                           s.kind == State::Split ? State::p() : State::r());
        })
        .Case([&](ap::CrossEntropyOp o) -> LogicalResult {
          makeAllWhole(o);
          State l = stateOf(o.getLogits());
          if (l.kind == State::Replicated && stateOf(o.getLabels()).kind == State::Replicated)
            return setResult(o.getResult(), State::r());
          if (!rows(o.getLogits()) || !(stateOf(o.getLabels()) == l))
            return noRule(o);
          if (o.getReduction() == "mean" && !o.getKeptCount())
            o.getKeptCountMutable().assign(globalCount(o.getLabels(), o.getIgnoreIndexAttr(), o.getLoc(), b));
          return setResult(o.getResult(), State::p());
        })
        .Case([&](ap::CrossEntropyGradOp o) -> LogicalResult {
          makeAllWhole(o);
          State l = stateOf(o.getLogits());
          if (l.kind == State::Replicated && stateOf(o.getLabels()).kind == State::Replicated)
            return setResult(o.getGradLogits(), State::r());
          if (!rows(o.getLogits()) || !(stateOf(o.getLabels()) == l))
            return noRule(o);
          if (o.getReduction() == "mean" && !o.getKeptCount())
            o.getKeptCountMutable().assign(globalCount(o.getLabels(), o.getIgnoreIndexAttr(), o.getLoc(), b));
          return setResult(o.getGradLogits(), l);
        })
        .Default([&](Operation *o) -> LogicalResult {
          // grad_norm, adamw and anything else: on whole values only.
          makeAllWhole(o);
          for (Value v : o->getOperands())
            if (stateOf(v).kind != State::Replicated)
              return noRule(o);
          for (Value r : o->getResults())
            states_[r] = State::r();
          return success();
        });
  }

  // Gathers the gradient all-reduces into buckets of about bucketBytes_: each bucket's
  // reductions are moved next to its last one, so the runtime fuses them into one
  // collective, issued as soon as the bucket's gradients are complete.
  void bucketGradientReductions() {
    SmallVector<shard::AllReduceOp> reductions;
    fn_.walk([&](shard::AllReduceOp op) {
      if (llvm::any_of(op->getUsers(), [](Operation *u) {
            return isa<ap::GradNormOp, ap::AdamWOp>(u);
          }))
        reductions.push_back(op);
    });
    SmallVector<shard::AllReduceOp> bucket;
    double bytes = 0;
    auto flush = [&] {
      if (bucket.size() > 1) {
        Operation *last = bucket.back();
        for (shard::AllReduceOp op : llvm::reverse(ArrayRef(bucket).drop_back()))
          op->moveBefore(last);
      }
      bucket.clear();
      bytes = 0;
    };
    for (shard::AllReduceOp op : reductions) {
      // The bucket's reductions move down to `op`: legal while none of their users
      // comes before it.
      bool movable = llvm::all_of(bucket, [&](shard::AllReduceOp member) {
        return llvm::all_of(member->getUsers(), [&](Operation *u) {
          return u->getBlock() != op->getBlock() || op->isBeforeInBlock(u);
        });
      });
      if (!movable)
        flush();
      bucket.push_back(op);
      auto type = typeOf(op.getResult());
      bytes += double(type.getNumElements()) * double(type.getElementTypeBitWidth()) / 8.0;
      if (bytes >= bucketBytes_)
        flush();
    }
    flush();
  }

  ModuleOp module_;
  func::FuncOp fn_;
  int64_t dp_;
  double bucketBytes_;
  bool failed_ = false;
  llvm::DenseMap<Value, State> states_;
  llvm::DenseMap<Value, Value> wholes_;
  llvm::DenseMap<std::pair<Value, int64_t>, Value> counts_;
};

struct ApPartitionPass : impl::ApPartitionPassBase<ApPartitionPass> {
  using ApPartitionPassBase::ApPartitionPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto parsed = partition::parseParallelPlan(plan);
    if (!parsed) {
      module.emitError() << "ap-partition: " << parsed.message();
      return signalPassFailure();
    }
    FailureOr<func::FuncOp> entry = findEntryFunction(module);
    if (failed(entry))
      return signalPassFailure();
    if (Status s = partition::checkImplemented(*parsed); !s) {
      module.emitError() << "ap-partition: " << s.message();
      return signalPassFailure();
    }
    (*entry)->setAttr("ap.parallel_plan", StringAttr::get(&getContext(), parsed->toString()));
    if (parsed->dp == 1)
      return;
    DataParallel dp(module, *entry, parsed->dp, bucketMb * 1024.0 * 1024.0);
    if (failed(dp.run()) || failed(verify(module)))
      return signalPassFailure();
  }
};

} // namespace
} // namespace apc
