// The parallel plan as the user writes it, without MLIR: the struct, its text and JSON
// forms, and validation against the cluster and the model (ParallelPlan.h adds the IR
// attribute and reads the context from the imported step).
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace apc::partition {

// The largest degree (dp, tp, pp) and micro-batch count a plan may give: far beyond any
// cluster, small enough that dp * tp * pp fits in int64.
constexpr int64_t kMaxPlanDegree = int64_t(1) << 20;

struct ParallelPlan {
  int64_t dp = 1;            // data-parallel degree (batch split)
  int64_t tp = 1;            // tensor-parallel degree (Megatron splits)
  int64_t pp = 1;            // pipeline stages
  // Context parallelism: each device of the cp axis holds 1/cp of every sequence (its
  // two load-balanced chunks r and 2cp-1-r of 2cp); attention all-gathers keys and values.
  int64_t cp = 1;
  int64_t zero = 0;          // ZeRO level over the data-parallel axis (0..3)
  bool sp = false;           // sequence parallelism between tensor-parallel regions
  int64_t mb = 1;            // micro-batches per step (pipelines)
  // Model chunks per pipeline stage (interleaved 1F1B, Megatron's virtual stages): stage
  // s holds chunks s, s + pp, ... of the pp x vp chunks the layers are cut into.
  int64_t vp = 1;
  std::string recompute = "none"; // none | selective | full
  // Recompute only on the first this many pipeline stages (0: on all of them). Under 1F1B
  // the first stages hold the most micro-batches in flight: they need the memory relief,
  // the later ones can keep their activations and skip the recomputation's work.
  int64_t recomputeStages = 0;
  std::vector<int64_t> stages; // layers per stage, "3+5" in text (empty: balanced)

  int64_t devices() const { return dp * tp * pp * cp; }
  // Canonical forms: "dp=2,tp=1,pp=1,zero=1,sp=off,mb=1,recompute=none" (",cp=C" after pp
  // and ",vp=V" after mb when above 1; then ",recompute_stages=K" and ",stages=..." when set) and JSON.
  std::string toString() const;
  std::string toJson() const;
};

// Layers per stage as the text form writes them: "3+5".
std::string stagesText(const std::vector<int64_t> &stages);

// Parses "k=v,k=v" or a JSON object (text starting with '{'). `given`, when set, receives
// the fields the text names (a partial plan for the search: the others are free).
Result<ParallelPlan> parseParallelPlan(const std::string &text,
                                       std::set<std::string> *given = nullptr);

// What validation needs to know about the cluster and the model.
struct PlanContext {
  int64_t devices = 1;      // of the --cluster
  std::string cluster;      // its name, for messages
  int64_t batch = 1, seqLen = 1;
  int64_t heads = 1, kvHeads = 1, layers = 1, vocab = 1, ffn = 1;
};

// Feasibility (degrees multiply to the device count, tp divides heads and kv heads,
// dp divides the batch, ...) and what this version implements.
Status validate(const ParallelPlan &plan, const PlanContext &context);

// Whether this version can compile `plan` (dp, tp, sp, zero, recompute today); the rest of the
// grammar is refused by name, never ignored. `validate` ends with this check.
Status checkImplemented(const ParallelPlan &plan);

} // namespace apc::partition
