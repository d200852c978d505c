// How `apc compile` and `apc plan` ask the plan search for a --plan request: its fixed
// fields, the step's precision and optimizer settings, the frontend's stand-ins, and how
// many plans to rank.
#pragma once

#include "compiler/search/PlanSearch.h"
#include "frontends/llama3/Llama3Model.h"

namespace apc::tools {

inline search::SearchOptions searchOptionsFor(const search::PlanRequest &request,
                                              const TrainStepOptions &train,
                                              mlir::ModuleOp module, int top) {
  search::SearchOptions options;
  options.space.fixed = request.plan;
  options.space.fixedFields = request.fixedFields;
  options.train = train;
  options.rebuild = llama3::retracer(module);
  options.top = top;
  return options;
}

} // namespace apc::tools
