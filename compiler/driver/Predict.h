// The driver's side of the cost model (compiler/cost): the cluster a `--cluster` value
// means, the model's figures for MFU, and the prediction of a lowered plan. `apc plan`,
// `apc compile` (the plan's Prediction) and the search use these.
#pragma once

#include "compiler/cost/CostModel.h"
#include "compiler/driver/Compile.h"
#include "compiler/lowering/ExecProgram.h"

#include "mlir/IR/BuiltinOps.h"

#include <vector>

namespace apc::driver {

// Lowers every stage function of a compiled module (@train_step.stageN in stage order,
// or the step itself); located errors otherwise. Also returns the first stage's function.
struct LoweredStages {
  std::vector<lowering::ExecProgram> programs;
  mlir::func::FuncOp first;
};
mlir::FailureOr<LoweredStages> lowerStages(mlir::ModuleOp module);

// N, L, H, Dh, T and the global batch: from the step's ap.model and the programs.
// L, H and Dh from the step's `ap.model` (head_dim, else hidden_size / heads); the other
// figures left for the caller (the search reads them from the imported step).
cost::ModelFigures modelShapeOf(mlir::func::FuncOp step);

cost::ModelFigures modelFiguresOf(mlir::func::FuncOp step,
                                  const std::vector<lowering::ExecProgram> &programs);

// The cost model on the lowered stages, with each stage's time by kernel unless
// `byKernel` is false (the search: the names cost time and it has no use for them).
Result<cost::Prediction> predictPlan(const LoweredStages &stages, const cost::Cluster &cluster,
                                     bool byKernel = true);

} // namespace apc::driver
