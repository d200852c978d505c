// How the plan search estimates a deep model's plan without compiling it whole: from
// stand-ins, the same model traced with 1 and 2 decoder layers per stage, compiled with
// the plan's fields as `apc compile` compiles them, and costed instruction by
// instruction (cost::measureStage). A stage's work is a sum over its instructions, so it
// is taken linearly to the stage's real layer count, and from the stand-ins' micro-batch
// size to the plan's: under the cost model every kernel and collective of a decoder
// layer costs an affine function of the rows it processes (a GEMM's m, a norm's bytes,
// an all-reduce's bytes), and a layer's weights, gradients and update do not depend on
// them at all. So plans that differ only in their micro-batch count share their
// stand-ins: the first two micro-batch sizes of a group (same dp, tp, pp, zero, sp,
// recompute, and micro-batches in flight) are compiled, the others are interpolated.
//
// Deep pipelines are estimated from a pipeline of at most 3 stages (first, middle, last:
// every stage of the real one is one of these), on a cluster shaped so that the
// data-parallel groups span nodes as they do in the real one; a stage's activations in
// flight are scaled to the real schedule's (min(mb, pp - s) micro-batches on stage s).
// The estimate is close, not exact (compiler/search/PlanSearch.h says how close and how
// the search allows for it); the finalists are compiled whole.
#pragma once

#include "compiler/cost/CostModel.h"
#include "compiler/driver/Predict.h"
#include "compiler/driver/TrainStepPipeline.h"
#include "compiler/partition/ParallelPlanText.h"
#include "compiler/stages/Stages.h"

#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace apc::search {

// Compiles `plan` on a copy of `module` as apc compile does (on `cluster`) and hands the
// lowered stage programs to `use`; the error is the first diagnostic, not printed.
// `verify`: as runPasses'.
Status compileCandidate(mlir::ModuleOp module, const partition::ParallelPlan &plan,
                        const cost::Cluster &cluster, const TrainStepOptions &train,
                        const std::function<void(const driver::LoweredStages &)> &use,
                        bool verify = true);

// A stand-in with `layers` decoder layers and a global batch of `batch` sequences.
using StandInFn = std::function<Result<mlir::ModuleOp>(int64_t layers, int64_t batch)>;

// A plan's stand-ins, costed: per stand-in stage, its work with 1 and with 2 layers per
// stage. Plain data, kept by plan group and shared by the estimators of the search's
// lanes (one lane's compile serves the other).
struct StandInWorks {
  std::vector<cost::StageWork> one, two;
};
struct StandInCache {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const StandInWorks>> works;
};

class StandInEstimator {
public:
  StandInEstimator(const stages::ModelSizes &sizes, const cost::ModelFigures &figures,
                   const cost::Cluster &cluster, const TrainStepOptions &train, int64_t batch,
                   StandInFn standIn,
                   std::shared_ptr<StandInCache> cache = std::make_shared<StandInCache>())
      : sizes_(sizes), figures_(figures), cluster_(cluster), train_(train), batch_(batch),
        standIn_(std::move(standIn)), cache_(std::move(cache)) {}

  // `peakUpper` (optional): bytes per device the plan surely stays under. The arena's peak
  // is where most bytes are live, and in a deep model that may be elsewhere than in the
  // stand-ins (where the LM head's logits often set it): e.g. under recompute=full the
  // layers' full-size gradients in the compute precision, which pile up until the step
  // reduces them, overtake it past some depth. So the bound allows every layer beyond
  // the stand-ins' 2 its full-size gradient too. UINT64_MAX (no bound) for a pipeline
  // deeper than its stand-in with more micro-batches than it.
  Result<cost::Prediction> estimate(const partition::ParallelPlan &plan,
                                    uint64_t *peakUpper = nullptr);

  int64_t compiles() const { return compiles_; } // stand-ins compiled so far
  // Whether estimating `plan` would compile stand-ins (none cached for it yet).
  bool needsCompile(const partition::ParallelPlan &plan);

private:
  using Anchor = StandInWorks;
  // The stand-ins a plan is estimated from: their stages, micro-batches and rows.
  struct Shape {
    int64_t stages, microBatches, rows;
  };
  Shape shapeOf(const partition::ParallelPlan &plan) const;
  Result<Anchor> compileAnchor(const partition::ParallelPlan &plan, int64_t stages,
                               int64_t microBatches, int64_t rows);

  stages::ModelSizes sizes_;
  cost::ModelFigures figures_;
  cost::Cluster cluster_;
  TrainStepOptions train_;
  int64_t batch_;
  StandInFn standIn_;
  std::shared_ptr<StandInCache> cache_;
  int64_t compiles_ = 0;
};

} // namespace apc::search
