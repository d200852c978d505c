// ap-bucket-gradients: gradient all-reduces grouped into buckets (see Passes.td). Data
// parallelism reduces every gradient; one collective per bucket of ~25 MiB instead of
// one per tensor amortises the collective's latency, as DDP's buckets do.
#include "compiler/Passes.h"
#include "compiler/support/EntryFunction.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace apc {

#define GEN_PASS_DEF_APBUCKETGRADIENTSPASS
#include "compiler/Passes.h.inc"

namespace {

using namespace mlir;

constexpr llvm::StringLiteral kBucketAttr = "ap.bucket";

// The reductions on the chain into `v`: what makes a gradient whole (or its block).
void collectReductions(Value v, llvm::SmallPtrSetImpl<Operation *> &out) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllSliceOp, ap::CastOp>(def))
      return;
    if (isa<shard::AllReduceOp>(def))
      out.insert(def);
    v = def->getOperand(0);
  }
}

struct ApBucketGradientsPass : impl::ApBucketGradientsPassBase<ApBucketGradientsPass> {
  using ApBucketGradientsPassBase::ApBucketGradientsPassBase;

  void runOnOperation() override {
    FailureOr<func::FuncOp> entry = findEntryFunction(getOperation());
    if (failed(entry))
      return signalPassFailure();
    llvm::SmallPtrSet<Operation *, 32> gradient;
    entry->walk([&](Operation *op) {
      if (auto adam = dyn_cast<ap::AdamWOp>(op))
        collectReductions(adam.getGrad(), gradient);
      else if (isa<ap::GradNormOp>(op))
        for (Value g : op->getOperands())
          collectReductions(g, gradient);
    });
    SmallVector<Operation *> reductions;
    entry->walk([&](shard::AllReduceOp op) {
      if (gradient.contains(op))
        reductions.push_back(op);
    });
    bucket(reductions, bucketMb * 1024.0 * 1024.0);
    for (size_t i = 0; i < reductions.size(); ++i)
      sliceAfterNextBucket(reductions[i], ArrayRef(reductions).drop_front(i + 1));
  }

  // The last reduction of `reduction`'s bucket (the run of adjacent all-reduces of its
  // number, fused by lowering); runs of several buckets are adjacent under accumulation.
  static Operation *bucketEnd(Operation *reduction) {
    Operation *end = reduction;
    auto number = reduction->getAttr(kBucketAttr);
    while (isa_and_nonnull<shard::AllReduceOp>(end->getNextNode()) &&
           end->getNextNode()->getAttr(kBucketAttr) == number)
      end = end->getNextNode();
    return end;
  }

  // ZeRO-1 keeps a slice of each reduced gradient. The slice moves up to right after the
  // next bucket's reductions: the whole gradient dies there instead of living until the
  // update, and the slice, on the compute stream, waits for this bucket's reduction
  // only once the next one is issued, so the reduction still overlaps the backward.
  static void sliceAfterNextBucket(Operation *reduction, ArrayRef<Operation *> later) {
    Operation *end = bucketEnd(reduction);
    Operation *next = nullptr;
    for (Operation *op : later)
      if (end->isBeforeInBlock(op)) {
        next = bucketEnd(op);
        break;
      }
    if (!next)
      return; // the last bucket: its slices stay right before their users
    SmallVector<Operation *> slices;
    for (Operation *user : reduction->getUsers())
      if (isa<shard::AllSliceOp>(user) && next->isBeforeInBlock(user))
        slices.push_back(user);
    for (Operation *slice : llvm::reverse(slices))
      slice->moveAfter(next);
  }

  // Each bucket's reductions move next to its last one and are marked with the bucket's
  // number (`ap.bucket`): lowering fuses adjacent reductions of one bucket only, so that
  // reductions that end up adjacent anyway (every one of them after the last backward
  // under gradient accumulation) still form buckets, not one collective (and one staging
  // buffer) of every gradient.
  static void bucket(ArrayRef<Operation *> reductions, double bucketBytes) {
    SmallVector<Operation *> members;
    double bytes = 0;
    int64_t number = 0;
    auto flush = [&] {
      for (Operation *op : members)
        op->setAttr(kBucketAttr, IntegerAttr::get(IntegerType::get(op->getContext(), 64), number));
      number += members.empty() ? 0 : 1;
      if (members.size() > 1) {
        Operation *last = members.back();
        for (Operation *op : llvm::reverse(ArrayRef(members).drop_back()))
          op->moveBefore(last);
      }
      members.clear();
      bytes = 0;
    };
    for (Operation *op : reductions) {
      // The bucket's reductions move down to `op`: legal while none of their users
      // comes before it, and all reduce over the same axes.
      bool movable = llvm::all_of(members, [&](Operation *member) {
        return cast<shard::AllReduceOp>(member).getGridAxes() ==
                   cast<shard::AllReduceOp>(op).getGridAxes() &&
               llvm::all_of(member->getUsers(), [&](Operation *u) {
                 return u->getBlock() != op->getBlock() || op->isBeforeInBlock(u);
               });
      });
      if (!movable)
        flush();
      members.push_back(op);
      auto type = cast<RankedTensorType>(op->getResult(0).getType());
      bytes += double(type.getNumElements()) * double(type.getElementTypeBitWidth()) / 8.0;
      if (bytes >= bucketBytes)
        flush();
    }
    flush();
  }
};

} // namespace
} // namespace apc
