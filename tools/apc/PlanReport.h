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
};

std::string predictionText(const PlanCandidate &candidate, const cost::ModelFigures &model,
                           const cost::Cluster &cluster);
std::string predictionJson(const std::vector<PlanCandidate> &candidates,
                           const cost::ModelFigures &model, const cost::Cluster &cluster);

} // namespace apc::tools
