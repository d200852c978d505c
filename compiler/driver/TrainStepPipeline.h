// The training-step pipeline: imported forward + loss -> full training step.
//
// Phases run in order; `--compile-to=<phase>` stops after one so a user can read the
// IR there. Mixed precision runs before autodiff on purpose: the backward pass then
// inherits the forward pass's precision and parameter gradients come out in f32.
// Recomputation runs on the whole step before partitioning, so the partitioner splits the
// recomputed ops like any others.
#pragma once

#include "mlir/Pass/PassManager.h"

#include <optional>
#include <string>
#include <vector>

namespace apc {

enum class Phase {
  Input,
  Mesh,
  MicroBatch,
  MixedPrecision,
  Autodiff,
  Optimizer,
  Recompute,
  Partition,
  BucketGradients,
  AssignStages,
  Pipeline
};

// Phase names as users type them: input, mesh, micro-batch, mixed-precision, autodiff,
// optimizer, recompute, partition, bucket-gradients, assign-stages, pipeline.
const std::vector<std::string> &phaseNames();
std::optional<Phase> parsePhase(const std::string &name);

struct TrainStepOptions {
  std::string precision = "bf16"; // bf16 | fp32
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0.01;
  double maxGradNorm = 0.0; // 0: no clipping
  // The passes read the parallel plan from the module's `#ap.parallel` (the driver sets
  // it). Non-empty: ap-mesh sets this plan text first (apc-opt's ap-train-step).
  std::string planText;
};

// Adds the passes up to and including `last`.
void buildTrainStepPipeline(mlir::OpPassManager &pm, const TrainStepOptions &options,
                            Phase last = Phase::Pipeline);

// Registers the passes and the `ap-train-step` pipeline for apc-opt.
void registerCompilerPasses();

} // namespace apc
