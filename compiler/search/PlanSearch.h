// The plan search: the best parallel plan of an imported training step on a cluster, by
// the cost model (compiler/cost), among every plan of the space (PlanSpace.h).
//
// Each candidate gets a lower bound on its step first (the model's FLOPs at the
// cluster's best rate on every device, the pipeline's bubble), and candidates are
// compiled and predicted in the order of their bounds; once the K-th best plan that fits
// is faster than a candidate's bound, that candidate and all after it cannot enter the
// top K and are not compiled. Every candidate compiled is compiled exactly as
// `apc compile` compiles it (the same passes, lowering and prediction), so the figures a
// ranked candidate shows are those of the plan it names, memory included.
#pragma once

#include "compiler/cost/CostModel.h"
#include "compiler/driver/TrainStepPipeline.h"
#include "compiler/search/PlanSpace.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace apc::search {

struct SearchOptions {
  SpaceOptions space;
  TrainStepOptions train;  // precision and optimizer settings, as apc compile's
  int top = 5;             // how many fitting plans to rank
  bool exhaustive = false; // compile every candidate (no pruning by bound): the tests' oracle
};

struct Ranked {
  partition::ParallelPlan plan;
  cost::Prediction prediction;
  double bound = 0; // the lower bound it was ordered by (at most its seconds per step)
};

struct SearchResult {
  std::vector<Ranked> ranked;   // fitting plans, fastest first (at most `top`)
  std::vector<Dropped> dropped; // infeasible, out of memory, failed to compile: with why
  int64_t enumerated = 0;       // plans in the space
  int64_t compiled = 0;         // compiled and predicted
  int64_t prunedByBound = 0;    // not compiled: their bound cannot beat the top `top`
  double seconds = 0;           // the search's wall time
};

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
double stepLowerBound(const partition::ParallelPlan &plan, double flopsPerStep,
                      double flopsPerSecond, int64_t devices);

} // namespace apc::search
