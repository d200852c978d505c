// Writing plan.fb from a lowered program and the step function it came from.
#pragma once

#include "compiler/lowering/ExecProgram.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>

namespace apc::emit {

struct PlanInfo {
  std::string cluster = "cpu:1";
  double clusterFlopsPerSecond = 50e9; // the cluster profile's assumed throughput
  int64_t padId = -1;
};

// Serialises the plan (model config from the function's `ap.model`, optimizer attributes
// from its ap.adamw ops, data spec from its input_ids). Fails with a located error if the
// function lacks what a plan needs.
mlir::FailureOr<std::string> emitPlan(const lowering::ExecProgram &program,
                                      mlir::func::FuncOp step, const PlanInfo &info);

} // namespace apc::emit
