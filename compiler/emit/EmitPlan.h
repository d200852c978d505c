// Writing plan.fb from a lowered program and the step function it came from.
#pragma once

#include "compiler/cost/CostModel.h"
#include "compiler/lowering/ExecProgram.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>

namespace apc::emit {

// What the search did (compiler/search), for the plan's SearchRecord.
struct SearchInfo {
  std::string request = "auto";
  int64_t enumerated = 0, estimated = 0, compiled = 0, prunedByBound = 0, dominated = 0,
          dropped = 0;
  double seconds = 0;
  struct Alternative {
    std::string plan;
    double secondsPerStep = 0;
    uint64_t bytesPerDevice = 0;
    std::vector<std::pair<std::string, double>> breakdown;
    bool estimated = false; // the stand-ins' figures (compiler/search/PlanSearch.h)
  };
  std::vector<Alternative> alternatives; // the runners-up, best first
};

struct PlanInfo {
  std::string cluster = "cpu:1";
  std::string backend = "cpu"; // the cluster's runtime backend ("cpu", "cuda")
  // The cost model's prediction of the plan on the cluster (compiler/cost); without one
  // the plan records FLOPs and bytes only (seconds 0: not predicted).
  const cost::Prediction *prediction = nullptr;
  int64_t padId = -1;
  const SearchInfo *search = nullptr; // set when the search chose the plan
  // Larger plans are refused (a located error) rather than written; flatbuffers cannot
  // address more than 2 GiB, the default. Tests lower it.
  uint64_t maxPlanBytes = uint64_t(1) << 31;
};

// Serialises the plan: `stages` holds one lowered program per pipeline stage (one
// without pipelining), `step` the first stage's function (model config from its
// `ap.model`, optimizer attributes from its ap.adamw ops); the stages' layers come from
// the module's `ap.pipeline`. The plan holds one program per stage, which every device
// of that stage runs. Fails with a located error if the functions lack what a plan
// needs or the plan would pass `info.maxPlanBytes`.
mlir::FailureOr<std::string> emitPlan(const std::vector<lowering::ExecProgram> &stages,
                                      mlir::func::FuncOp step, const PlanInfo &info);

} // namespace apc::emit
