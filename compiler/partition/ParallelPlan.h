// The parallel plan: how one training step is split across devices.
//
// One representation for the user (`--plan "dp=2,tp=2,zero=1,sp=on"` or the JSON object
// {"dp": 2, "tp": 2, "zero": 1, "sp": true}) and, later, for the search's output. The
// grammar already holds the pipeline fields (pp, mb, recompute, stages). `validate`
// checks a plan against the cluster and the model and names the offending field.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>

namespace apc::partition {

struct ParallelPlan {
  int64_t dp = 1;            // data-parallel degree (batch split)
  int64_t tp = 1;            // tensor-parallel degree (Megatron splits)
  int64_t pp = 1;            // pipeline stages
  int64_t zero = 0;          // ZeRO level over the data-parallel axis (0..3)
  bool sp = false;           // sequence parallelism between tensor-parallel regions
  int64_t mb = 1;            // micro-batches per step (pipelines)
  std::string recompute = "none"; // none | selective | full
  std::string stages;        // layers per stage joined by '+', e.g. "3+5" (empty: balanced)

  int64_t devices() const { return dp * tp * pp; }
  // Canonical forms: "dp=2,tp=1,pp=1,zero=1,sp=off,mb=1,recompute=none" and JSON.
  std::string toString() const;
  std::string toJson() const;
};

// Parses "k=v,k=v" or a JSON object (text starting with '{').
Result<ParallelPlan> parseParallelPlan(const std::string &text);

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
