// The training loop of aprun: plan + data + weights -> steps, metrics, checkpoints.
#pragma once

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/support/Status.h"
#include "runtime/train/Schedule.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace apc::plan {
struct Plan;
}

namespace apc::train {

struct TrainOptions {
  std::string planPath;
  std::string dataPath;
  std::string column = "input_ids";
  std::string tokenizerPath;      // set: --data is a text dataset, tokenized with this
  std::string promptTemplate;     // empty: data::kDefaultTemplate
  bool maskPadIdTokens = false;   // labels -100 wherever the id equals the pad id (tutorial)
  std::string weightsPath;      // empty: seeded initialisation
  int64_t steps = 0;            // total optimizer updates (0: use epochs)
  int64_t epochs = 0;           // whole epochs (0: use steps)
  Schedule schedule;
  std::optional<double> weightDecay, beta1, beta2, epsilon, maxGradNorm; // plan overrides
  uint64_t seed = 42;
  bool seedGiven = false; // --seed on the command line (a resumed run keeps its own)
  bool shuffle = true;           // false: rows in file order every epoch
  std::optional<int64_t> padId; // overrides the plan's
  std::string saveDir;
  int64_t saveEvery = 0;        // 0: only at the end
  std::string resumeDir;
  std::string metricsPath;
  // Set: time every instruction of the steps after the first and write the totals here
  // ("%r" in the path: every rank its own file; else rank 0 only). runtime/train/Profile.h
  std::string profilePath;
  int threads = 1;
  bool quiet = false;           // no per-step progress lines
  // A step whose gradient norm is not finite leaves the weights and optimizer state as
  // they were and the run goes on (default: such a step stops the job).
  bool skipNonFiniteSteps = false;
  int commTimeoutSeconds = 300; // a rank silent this long ends the job (multi-rank)
};

// Exit codes of aprun: 0 ok, 1 a runtime error (bad data, weights, a kernel failure),
// 2 bad usage (flags, a malformed or mismatched plan).
struct TrainOutcome {
  int exitCode = 0;
  std::string message; // the error, when exitCode != 0
};

TrainOutcome train(const TrainOptions &options);

// What the loop binds in the program of `rank` (the one whose device is `rank`).
struct ProgramBinding {
  // Every parameter of the plan and its two moments, in plan order (slot p is
  // Plan.parameters[p]; initWeights draws slot p from stream (seed, p)). A slot this
  // rank's program holds points at its buffer (`bufferData(b)`); the others (another
  // pipeline stage's) have null data, the split every holder uses, and `holders`, the
  // ranks to gather them from. `holders` is left empty where every rank holds the tensor.
  checkpoint::CheckpointContents slots;
  int stage = 0;                           // the program's pipeline stage
  int ids = -1, labels = -1;               // input buffers; -1 where the stage has none
  int step = -1, lr = -1;
};

// Binds rank `rank`'s program of `plan` (checked by plan::LoadedPlan). Errors (bad
// usage: a malformed or mismatched plan): two buffers for one slot; a parameter or
// moment that no program holds; under a one-stage plan, one this program lacks; a stage
// outside Plan.pipeline.stages; a missing step or lr input, or a missing input_ids
// (labels) on a stage with the embedding (the head); with no pipeline section the one
// stage has both.
Result<ProgramBinding> bindProgram(const plan::Plan &plan, int rank,
                                   const std::function<float *(int buffer)> &bufferData);

} // namespace apc::train
