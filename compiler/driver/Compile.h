// The compiler driver: an imported training step -> the per-stage programs -> plan.fb.
//
// One library that `apc compile` (and next the plan search) calls; the tool only parses
// flags, reads and writes files and prints. The steps are separate so a caller can stop
// after any of them: the cluster, the plan checked against the model and set on the
// module as #ap.parallel, the pass pipeline up to a phase, then lowering every stage
// function and writing the plan.
#pragma once

#include "compiler/cost/Cluster.h"
#include "compiler/cost/CostModel.h"
#include "compiler/driver/TrainStepPipeline.h"
#include "compiler/partition/ParallelPlan.h"
#include "runtime/support/Status.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::emit {
struct SearchInfo;
}

namespace apc::driver {

// The dialects the compiler reads and writes (ap, func, shard) and the per-op rules.
void registerCompilerDialects(mlir::DialectRegistry &registry);

// A step with a model (`ap.model`) but without the marks apc import now writes (the
// batch's `ap.batch`, the parameters' `ap.layer`) was imported by an older apc: refused,
// saying so.
Status checkImportedStep(mlir::ModuleOp module);

// Checks `plan` against the cluster (cost::resolveCluster of --cluster) and the module's model (heads, layers, vocabulary,
// batch) and sets it on the module as #ap.parallel. Errors name the plan field.
Status setParallelPlan(mlir::ModuleOp module, const partition::ParallelPlan &plan,
                       const cost::Cluster &cluster);

// Runs the training-step passes up to and including `last`; diagnostics go to the
// context's handler. `timing` prints the time of each pass. `verify` false skips the IR
// verifier between passes (the search's stand-ins, compiled only to be costed: the plan
// it picks is compiled again, verified).
mlir::LogicalResult runPasses(mlir::ModuleOp module, const TrainStepOptions &options,
                              Phase last, bool timing = false, bool verify = true);

struct PlanOptions {
  const emit::SearchInfo *search = nullptr; // set when the search chose the plan
  std::string cluster = "cpu:1"; // the --cluster spec, recorded in the plan
  std::string backend = "cpu";   // the cluster's backend: which runtime may run the plan
  int64_t padId = -1;
};

struct CompiledPlan {
  std::string bytes;                 // plan.fb
  std::vector<uint64_t> stageArenas; // each stage's arena, in stage order
  cost::Prediction prediction;       // what plan.fb records (compiler/cost)
};

// Lowers every stage function of a compiled module (@train_step.stageN in stage order,
// or the step itself), predicts it on the cluster (compiler/driver/Predict.h) and writes
// plan.fb. Emits a located error and fails otherwise.
mlir::FailureOr<CompiledPlan> emitPlan(mlir::ModuleOp module, const PlanOptions &options);

} // namespace apc::driver
