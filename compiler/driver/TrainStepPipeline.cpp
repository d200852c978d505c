#include "compiler/driver/TrainStepPipeline.h"

#include "compiler/Passes.h"

#include "mlir/Pass/PassRegistry.h"

namespace apc {

const std::vector<std::string> &phaseNames() {
  static const std::vector<std::string> names = {
      "input",    "mesh",      "micro-batch", "mixed-precision", "autodiff",
      "optimizer", "recompute", "partition",   "bucket-gradients", "assign-stages", "pipeline"};
  return names;
}

std::optional<Phase> parsePhase(const std::string &name) {
  const auto &names = phaseNames();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name)
      return Phase(i);
  return std::nullopt;
}

void buildTrainStepPipeline(mlir::OpPassManager &pm, const TrainStepOptions &options,
                            Phase last) {
  if (last < Phase::Mesh)
    return;
  ApMeshPassOptions mesh;
  mesh.plan = options.planText;
  pm.addPass(createApMeshPass(mesh));
  if (last < Phase::MicroBatch)
    return;
  pm.addPass(createApMicroBatchPass());
  if (last < Phase::MixedPrecision)
    return;
  ApMixedPrecisionPassOptions precision;
  precision.computeType = options.precision == "fp32" ? "f32" : options.precision;
  pm.addPass(createApMixedPrecisionPass(precision));
  if (last < Phase::Autodiff)
    return;
  pm.addPass(createApAutodiffPass());
  if (last < Phase::Optimizer)
    return;
  ApOptimizerPassOptions optimizer;
  optimizer.beta1 = options.beta1;
  optimizer.beta2 = options.beta2;
  optimizer.epsilon = options.epsilon;
  optimizer.weightDecay = options.weightDecay;
  optimizer.maxGradNorm = options.maxGradNorm;
  pm.addPass(createApOptimizerPass(optimizer));
  if (last < Phase::Recompute)
    return;
  pm.addPass(createApRecomputePass()); // its mode: the plan's recompute field
  if (last < Phase::Partition)
    return;
  pm.addPass(createApPartitionPass());
  if (last < Phase::BucketGradients)
    return;
  pm.addPass(createApBucketGradientsPass());
  if (last < Phase::AssignStages)
    return;
  pm.addPass(createApAssignStagesPass());
  if (last < Phase::Pipeline)
    return;
  pm.addPass(createApPipelinePass());
}

namespace {
struct PipelineOptions : mlir::PassPipelineOptions<PipelineOptions> {
  Option<std::string> precision{*this, "precision", llvm::cl::desc("bf16 or fp32"),
                                llvm::cl::init("bf16")};
  Option<double> maxGradNorm{*this, "max-grad-norm",
                             llvm::cl::desc("clip to this global norm (0: off)"),
                             llvm::cl::init(0.0)};
  Option<std::string> plan{*this, "plan",
                           llvm::cl::desc("set this parallel plan (\"dp=1,recompute=full\"; "
                                          "default: the module's ap.parallel)"),
                           llvm::cl::init("")};
};
} // namespace

void registerCompilerPasses() {
  registerAPCPasses();
  mlir::PassPipelineRegistration<PipelineOptions>(
      "ap-train-step", "imported forward + loss -> full training step",
      [](mlir::OpPassManager &pm, const PipelineOptions &o) {
        TrainStepOptions options;
        options.precision = o.precision;
        options.maxGradNorm = o.maxGradNorm;
        options.planText = o.plan;
        buildTrainStepPipeline(pm, options);
      });
}

} // namespace apc
