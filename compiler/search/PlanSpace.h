// The space the plan search walks: every parallel plan of a model on a cluster, jointly
// over dp, zero, tp, sp, pp, mb, recompute and the stages it covers (all, or the first 1,
// 2, 4, ... of a pipeline's) (stage boundaries balanced), with the fields
// a partial plan fixes held, and the candidates that cannot work dropped with their
// reason. MLIR-free: the model enters as its PlanContext (heads, layers, batch, ...).
//
// A new plan field joins the space here: one more loop in `enumeratePlans` (its values,
// what it requires of the others) and `validate` (compiler/partition) refusing what
// cannot be built. The search itself (PlanSearch.h) ranks whatever this yields.
#pragma once

#include "compiler/cost/Cluster.h"
#include "compiler/partition/ParallelPlanText.h"

#include <set>
#include <string>
#include <vector>

namespace apc::search {

struct SpaceOptions {
  partition::ParallelPlan fixed;     // a partial plan's values ...
  std::set<std::string> fixedFields; // ... for the fields it names
  int64_t maxMicroBatches = 64;      // mb beyond this is not tried (nor beyond the batch)
};

// A candidate left out, and why ("tp=16 spans nodes of 8 devices", validate's message, "memory: ...").
struct Dropped {
  partition::ParallelPlan plan;
  std::string reason;
};

struct Space {
  std::vector<partition::ParallelPlan> candidates; // feasible as far as the fields go
  std::vector<Dropped> dropped;
  int64_t enumerated = 0; // candidates + dropped
};

// Every plan for `cluster.devices()` devices. tp stays inside a node unless fixed (its
// per-layer all-reduces would cross the network); zero > 0 needs dp > 1, sp needs tp > 1;
// mb divides the per-replica batch. Each plan is validated against `context`.
Space enumeratePlans(const partition::PlanContext &context, const cost::Cluster &cluster,
                     const SpaceOptions &options);

// What --plan asks for: no plan or "auto" searches every field; "auto,tp=8,recompute=full"
// searches the fields it does not name; any other plan is complete (fields it does not
// name take their defaults, as they always have) and is only checked and predicted.
struct PlanRequest {
  bool search = false;
  partition::ParallelPlan plan;      // the complete plan, or the fixed fields' values
  std::set<std::string> fixedFields; // when searching
};
Result<PlanRequest> parsePlanRequest(const std::string &text);

// The positive divisors of n in increasing order.
std::vector<int64_t> divisorsOf(int64_t n);

} // namespace apc::search
