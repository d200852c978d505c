// The cost model: what a compiled plan costs per training step on a cluster, from the
// same per-stage programs plan.fb holds (the per-device kernel calls after partitioning
// and pipelining, with their shapes, dtypes, FLOPs and bytes, and the collectives with
// their bytes and mesh axes). `apc plan`, `apc compile`'s prediction in plan.fb and
// `apc explain` read it; the plan search calls it for every candidate.
//
// docs/cost-model.md has the formulas. In short, per stage and micro-batch: every kernel
// by its roofline (KernelTime.h), every collective by its algorithm on the link its
// group spans (CollectiveTime.h), exposed unless the cluster overlaps communication and
// it is a data-parallel one; the stages' passes laid out in the 1F1B order
// (compiler/stages/ScheduleTiming.h) with the point-to-point transfers between them;
// then each stage's update. Memory per device is what aprun allocates (Memory.h).
//
// MLIR-free and allocation-light: plain loops over the instructions.
#pragma once

#include "compiler/cost/Cluster.h"
#include "compiler/cost/Memory.h"
#include "compiler/lowering/ExecProgram.h"
#include "compiler/stages/ScheduleTiming.h"
#include "runtime/support/Status.h"

#include <string>
#include <utility>
#include <vector>

namespace apc::cost {

// What the MFU convention needs of the model and the step.
struct ModelFigures {
  double parameters = 0;                 // N: every trained parameter of the whole model
  int64_t layers = 0, heads = 0, headDim = 0;
  int64_t seqLen = 0;                    // T
  int64_t globalBatch = 0;               // sequences per step
  std::string computeDType = "bf16";     // whose peak MFU divides by: "bf16" or "f32"
  // 6 N + 12 L H Dh T (PaLM's convention: forward and backward, attention not causal).
  double flopsPerToken() const {
    return 6 * parameters + 12.0 * double(layers) * double(heads) * double(headDim) *
                                double(seqLen);
  }
};

// One stage (every device of it runs the same program).
struct StagePrediction {
  // One micro-batch's pass, seconds, with the communication it cannot hide.
  double forward = 0, backward = 0;
  double recompute = 0;   // of `backward`: the recomputed forward ops
  double step = 0;        // once per step after its last backward: the update and reductions
  double sendForward = 0, sendBackward = 0; // one micro-batch's transfer to the next / previous stage
  // Seconds over the whole step on this stage, by breakdown name (see Prediction).
  std::vector<std::pair<std::string, double>> busy;
  // With predict(..., byKernel): seconds over the whole step on this stage by kernel name,
  // in first-seen order: where the time goes. Collectives as "<kernel>.<axes>"
  // ("all_reduce.tp") at their full time, hidden or not; point-to-point transfers are not
  // kernels of the stage. Empty otherwise (the search has no use for it).
  std::vector<std::pair<std::string, double>> kernels;
  double flops = 0;       // the FLOPs of the stage's program per step (its instructions')
  double end = 0;         // when the stage's step ends
  MemoryUse memory;
};

// One phase of a stage's step (its forwards, its backwards, or its update) as sums over
// its instructions and micro-batches, before overlap is decided: compute seconds, the
// seconds of each busy kind (compute kinds and exposed communication) and of each
// communication that may hide behind compute. Sums, so a stage's work is linear in its
// instructions: the plan search adds and scales stand-ins' works before finishing them.
struct PhaseWork {
  double compute = 0;
  std::vector<std::pair<std::string, double>> busy, hideable;
  double flops = 0;
};

// One stage's program, measured: its phases, and what finishStage needs besides. The
// passes of the first micro-batch apart from the others' (which also accumulate the
// gradients): so a stand-in of 2 micro-batches gives the work of any count.
struct StageWork {
  PhaseWork forward, backward;         // micro-batch 0
  PhaseWork forwardRest, backwardRest; // micro-batches 1 .. microBatches - 1, summed
  PhaseWork step;
  double recompute = 0;                     // the recomputed ops' seconds, all micro-batches
  double sendForward = 0, sendBackward = 0; // transfers to the next / previous stage, all
  int microBatches = 1;
  std::vector<std::pair<std::string, double>> kernels; // as StagePrediction::kernels
  MemoryUse memory;
};

// The program's instructions costed on `cluster` (kernels by their roofline, collectives by
// their algorithm on the link their group spans), `microBatches` of them in its passes.
StageWork measureStage(const lowering::ExecProgram &program, const Cluster &cluster,
                       int microBatches, bool byKernel = false);
// The stage's prediction from its work: each phase's hideable communication exposed
// beyond the compute it runs behind (the gradient reductions behind what of the last
// backward's compute its own collectives leave free), per micro-batch where it is per pass.
StagePrediction finishStage(const StageWork &work);
// The micro-batches a plan's stage programs run (the most any instruction names).
int microBatchesOf(const std::vector<lowering::ExecProgram> &programs);

struct Prediction {
  double secondsPerStep = 0;
  // Seconds of the slowest stage's step by kind; they add up to secondsPerStep:
  // "compute", "recompute", "communication.<axes>" (exposed, per mesh axis or axes, "dp",
  // "tp", "dp+tp", "pp" for the pipeline's collectives), "p2p" (waiting for a
  // neighbour stage's transfer), "optimizer", "bubble" (idle otherwise).
  std::vector<std::pair<std::string, double>> breakdown;
  double tokensPerStep = 0;
  double tokensPerSecondPerDevice = 0;
  double flopsPerToken = 0; // the MFU convention's
  double mfu = 0;
  double flopsPerStep = 0;  // the instructions' FLOPs on the busiest stage (plan.fb's figure)
  uint64_t peakBytesPerDevice = 0;
  double usableBytesPerDevice = 0; // memory x usable fraction (0: unknown)
  bool fits = true;
  int criticalStage = 0;
  int microBatches = 1;
  int64_t devices = 1;
  std::vector<StagePrediction> stages;
  schedule::Timeline timeline; // the 1F1B passes with absolute start and end times
  // Interleaved: the chunks' times the timeline was laid out with (chunk c of stage s at
  // c * stages + s); empty with one chunk per stage.
  std::vector<schedule::StageTimes> chunkTimes;
};

// Predicts the plan whose stage programs are `programs` (stage order). Errors name what
// does not fit: no programs, a mesh with another device count than the cluster, a device
// without a FLOP rate.
// byKernel fills each stage's `kernels` (a name lookup per instruction: off in the search).
Result<Prediction> predict(const std::vector<lowering::ExecProgram> &programs,
                           const ModelFigures &model, const Cluster &cluster,
                           bool byKernel = false);

// The step from its stages' predictions (each from its program, as `predict` makes them,
// or estimated, as the plan search does from smaller stand-ins): the 1F1B timeline, the
// critical stage and its breakdown, tokens per second, MFU, memory and whether it fits.
// With `chunks` > 1 (vp), the interleaved 1F1B timeline on `perChunk` (chunk c of stage s
// at c * stages + s, as `predict` measures them from each chunk's instructions), else each
// chunk a 1/chunks share of its stage (ScheduleTiming.h, chunkTimes: the search's
// estimates).
Result<Prediction> compose(std::vector<StagePrediction> stages, int microBatches, int chunks,
                           const ModelFigures &model, const Cluster &cluster,
                           const std::vector<schedule::StageTimes> &perChunk = {});

// One chunk's forward and backward instructions of an interleaved stage's program (by
// their layer marks and the program's chunkLayers): what `predict` times each chunk by.
lowering::ExecProgram chunkOf(const lowering::ExecProgram &program, int chunk);

// The breakdown entry `name` (0 when absent).
double breakdownSeconds(const Prediction &p, const std::string &name);

} // namespace apc::cost
