// The plan search: the best parallel plan of an imported training step on a cluster, by
// the cost model (compiler/cost), among every plan of the space (PlanSpace.h).
//
// Each candidate gets a lower bound on its step first (the model's FLOPs at the
// cluster's best rate on every device, the pipeline's bubble), and candidates are
// compiled and predicted in the order of their bounds; once the K-th best plan that fits
// is faster than a candidate's bound, that candidate and all after it cannot enter the
// top K and are not compiled. Every candidate compiled is compiled exactly as
// `apc compile` compiles it (the same passes, lowering and prediction), so the figures a
// ranked candidate shows are those of the plan it names, memory included, unless it is
// marked estimated (below).
#pragma once

#include "compiler/cost/CostModel.h"
#include "compiler/driver/TrainStepPipeline.h"
#include "compiler/search/PlanSpace.h"

#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <string>
#include <vector>

namespace apc::search {

// Traces the step's model again with `layers` decoder layers and a global batch of
// `batch` sequences (the same sequence length and dtype), into `context` (the step's, or
// another with the same dialects: the search estimates two plans at once, one per
// context): the search's smaller stand-ins (below).
using RebuildFn = std::function<Result<mlir::OwningOpRef<mlir::ModuleOp>>(
    mlir::MLIRContext &context, int64_t layers, int64_t batch)>;

struct SearchOptions {
  SpaceOptions space;
  // Set: a plan bigger than its stand-ins is first estimated from them
  // (StandInEstimator: the model traced with 1 and 2 layers per stage, at most 3 stages
  // and min(mb, max(pp, 2)) micro-batches of the plan's size, compiled, each stage's work
  // taken linearly to its real layer count and micro-batch count, the 1F1B step composed).
  // Times come within 1% of the whole compile (exactly, up to 3 stages); memory may be
  // off where the peak moves with depth, so an estimate within 10% over the usable memory
  // is compiled whole before it is dropped, and only an estimate whose bound has 10% to
  // spare prunes or spares the plans relieving more memory. Only the winner, and any
  // plan estimated within 2% of it, are compiled whole; the other ranked plans keep their
  // estimates (Ranked::estimated). Null: every candidate is compiled whole.
  RebuildFn rebuild;
  TrainStepOptions train;  // precision and optimizer settings, as apc compile's
  int top = 5;             // how many fitting plans to rank
  bool exhaustive = false; // compile every candidate (no pruning by bound): the tests' oracle
  // Two: with rebuild and a second core, two candidates are estimated at once (each lane
  // in its own MLIR context); the result is the one lane's, which 1 forces.
  int lanes = 2;
};

struct Ranked {
  partition::ParallelPlan plan;
  cost::Prediction prediction;
  double bound = 0; // the lower bound it was ordered by (at most its seconds per step)
  // The figures are the stand-ins' estimate (a runner-up that could not overtake the
  // winner is not compiled whole); false: the whole compile's, as apc compile makes them.
  bool estimated = false;
};

struct SearchResult {
  std::vector<Ranked> ranked;   // fitting plans, fastest first (at most `top`)
  std::vector<Dropped> dropped; // infeasible, out of memory, failed to compile: with why
  int64_t enumerated = 0;       // plans in the space
  int64_t compiled = 0;         // compiled whole and predicted
  int64_t estimated = 0;        // estimated from stand-ins (SearchOptions::rebuild)
  int64_t standInCompiles = 0;  // stand-ins compiled for those estimates
  int64_t prunedByBound = 0;    // not compiled: their bound cannot beat the top `top`
  int64_t droppedByMemoryBound = 0; // not compiled: parameters and state alone do not fit
  int64_t dominated = 0;        // not compiled: a plan relieving memory less fits (below)
  double seconds = 0;           // the search's wall time
};

// Besides the bound, two rules save compiles (neither applies with `exhaustive`):
// - a plan whose parameters and optimizer state alone exceed the device's usable memory
//   (statesLowerBoundBytes) is dropped uncompiled;
// - within plans that differ only in recomputation and, without a pipeline, micro-batch
//   count, one that recomputes more or splits the batch more than a plan that already
//   fits is not compiled: recomputation only adds work, and micro-batches without a
//   pipeline only cut the same work into smaller kernels, so it cannot be faster. Such
//   plans are counted in `dominated`, not ranked: the ranking lists real alternatives.
// Searches `module` (an imported step, left unchanged: candidates compile clones).
// Errors: no step, or a space with no plan at all (the fixed fields contradict the
// devices), or no plan that fits (the result's `dropped` says why each failed).
Result<SearchResult> searchPlans(mlir::ModuleOp module, const cost::Cluster &cluster,
                                 const SearchOptions &options);

// The lower bound the search orders and prunes by: seconds a step of `plan` takes at
// least, from the FLOPs per step no plan avoids (`flopsPerStep`: the GEMMs' 6 per
// parameter per token, embedding lookups excluded, and causal attention; full
// recomputation's extra forward added) spread perfectly over every device at
// `flopsPerSecond` (the fastest rate the cluster claims for anything), stretched by the
// 1F1B bubble (mb + pp - 1) / mb.
// The estimate the search ranks a deep model's plan by (SearchOptions::rebuild): stand-ins
// of 1 and 2 layers per stage compiled and predicted with `plan`, each stage's figures
// (times, FLOPs, memory by kind) taken linearly to its real layer count, the step composed.
// `peakUpper`: as StandInEstimator::estimate's.
Result<cost::Prediction> estimatePlan(mlir::ModuleOp module, const partition::ParallelPlan &plan,
                                      const cost::Cluster &cluster, const TrainStepOptions &train,
                                      const RebuildFn &rebuild, uint64_t *peakUpper = nullptr);

// Bytes per device a plan needs at least for its parameters' f32 master copy (4 per
// parameter, split over tp x pp, and dp under zero >= 1) and the two AdamW moments (8, split
// over tp x pp, and dp under zero >= 1), whatever the precision.
double statesLowerBoundBytes(const partition::ParallelPlan &plan, double parameters);

double stepLowerBound(const partition::ParallelPlan &plan, double flopsPerStep,
                      double flopsPerSecond, int64_t devices);

} // namespace apc::search
