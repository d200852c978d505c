// The parallel plan as the user writes it: `--plan "dp=2,tp=2,zero=1,sp=on"` or the
// JSON object {"dp": 2, "tp": 2, "zero": 1, "sp": true}.
//
// Text is parsed only by parseParallelPlan (ParallelPlanText.h, by the driver and by
// `ap-mesh{plan=...}`); the IR carries the plan as the typed attribute `#ap.parallel`
// (toAttr / fromAttr), which is what every pass reads. `validate` checks a plan against
// the cluster and the model and names the offending field.
#pragma once

#include "compiler/partition/ParallelPlanText.h"
#include "runtime/support/Status.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::ap {
class ParallelAttr;
} // namespace apc::ap

namespace apc::partition {

// The plan as the IR carries it, and back.
ap::ParallelAttr toAttr(mlir::MLIRContext *context, const ParallelPlan &plan);
ParallelPlan fromAttr(ap::ParallelAttr attr);

// What `fn` (the imported step) says about the model and the batch; a model without
// `ap.model` (a hand-written test function) constrains nothing; the batch and sequence
// come from the token ids (`ap.batch = #ap.batch<tokens>`), an error names a malformed one.
Result<PlanContext> planContextOf(mlir::func::FuncOp fn, int64_t devices,
                                  const std::string &cluster);

} // namespace apc::partition
