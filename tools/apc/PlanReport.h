// `apc plan`'s output: one prediction of the cost model (compiler/cost) as text for
// people or as JSON. The JSON's `candidates` list is the one the plan search fills with
// more entries; each entry's names (plan, seconds_per_step, tokens_per_second_per_device,
// mfu, peak_bytes_per_device, fits, breakdown) are stable.
#pragma once

#include "compiler/cost/Cluster.h"
#include "compiler/cost/CostModel.h"

#include <string>
#include <vector>

namespace apc::tools {

struct PlanCandidate {
  std::string plan; // in --plan syntax
  cost::Prediction prediction;
  bool estimated = false; // the search's estimate from stand-ins, not compiled whole
};

// What the search did, beside its ranked candidates (compiler/search/PlanSearch.h).
struct SearchSummary {
  std::vector<std::pair<std::string, std::string>> dropped; // plan, why
  int64_t enumerated = 0, compiled = 0, estimated = 0, standInCompiles = 0, prunedByBound = 0,
          droppedByMemoryBound = 0, dominated = 0;
  double seconds = 0;
};

std::string predictionText(const PlanCandidate &candidate, const cost::ModelFigures &model,
                           const cost::Cluster &cluster);
// With `search`: also "dropped" ([{plan, reason}]) and "search" ({enumerated, compiled,
// pruned_by_bound, seconds}) beside "candidates".
std::string predictionJson(const std::vector<PlanCandidate> &candidates,
                           const cost::ModelFigures &model, const cost::Cluster &cluster,
                           const SearchSummary *search = nullptr);
// The search's ranking as a table, its counts and time, and why plans were dropped
// (`reasons` of them shown).
std::string searchText(const std::vector<PlanCandidate> &ranked, const SearchSummary &search,
                       const cost::Cluster &cluster, size_t reasons = 5);

} // namespace apc::tools
