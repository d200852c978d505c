// What `apc explain` says about a plan, gathered once from a loaded plan.fb: the model,
// the mesh and who has which coordinates, the pipeline stages, every parameter's and
// optimizer moment's layout, each program's collectives and memory, and the 1F1B
// schedule under a simple cost model. The text, JSON and SVG renderers read only this.
#pragma once

#include "runtime/support/Status.h"
#include "tools/apc/explain/PipelineSchedule.h"

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace apc::plan {
struct Plan;
}

namespace apc::explain {

// How one tensor (a parameter or one of its moments) lies on the devices.
struct Layout {
  bool present = false;              // false: no program holds it
  std::vector<int64_t> dimAxes;      // per dim: the mesh axis it is split over, -1 whole
  std::vector<int64_t> localShape;   // the block one device holds
  uint64_t bytesPerDevice = 0;
  std::vector<int> ranks;            // sorted devices whose programs hold it
};

struct ParameterFacts {
  std::string name;
  std::vector<int64_t> shape;        // global
  std::string dtype;                 // master copy ("F32")
  int layer = -1;                    // decoder layer ("model.layers.N."), -1 outside them
  std::string pattern;               // the name with the layer index replaced by '*'
  Layout parameter, expAvg, expAvgSq;
  std::vector<int> stages;           // pipeline stages whose programs hold it
};

struct CollectiveFacts {
  int instruction = 0;               // index in its program
  std::string kind;                  // all_reduce, all_gather, reduce_scatter, all_slice
  std::string op;                    // all_reduce: "sum" or "max"; else empty
  std::vector<int64_t> axes;         // mesh axes of the group
  int64_t dim = -1;                  // all_gather, reduce_scatter, all_slice
  int operands = 0;                  // inputs (all_reduce: buffers in the bucket)
  uint64_t bytes = 0;                // moved per step: inputs (all_gather: output); all_slice 0
  bool communicates = true;          // all_slice: false (a local slice)
  // send / recv (pipeline point-to-point): the peer's coordinate on the axis in `axes`
  // minus ours (attribute peer_offset; 0 when absent), the peer's pipeline stage (-1:
  // unknown or outside the pipeline), and the attribute tag (-1 when absent).
  int64_t peerOffset = 0, tag = -1;
  int peerStage = -1;
};

// The facts of one stage's program (Plan.programs[stage]). Every device of the stage
// (StageFacts::ranks) runs it, so they are kept once per stage, not once per device: a
// device's are PlanFacts::programOf(rank), found from its coordinates.
struct ProgramFacts {
  int index = 0, stage = 0;
  int instructions = 0;
  double flops = 0;                  // sum of its instructions' estimates
  uint64_t parameterBytes = 0, optimizerBytes = 0, inputBytes = 0, arenaBytes = 0;
  int parameterBuffers = 0, optimizerBuffers = 0, inputBuffers = 0;
  std::vector<std::string> inputBindings; // the Input buffers' bindings, in buffer order
  // Gradients: the distinct grad operands (input 1) of its adamw instructions; arena
  // temporaries, so part of arenaBytes, not added to the total.
  uint64_t gradientBytes = 0;
  int gradientBuffers = 0;
  // Forward (F) and backward (B) passes in program order, read from the instructions'
  // `pass` and `micro_batch` (a run of instructions of one pass of one micro-batch is one
  // pass; under an interleaved schedule the chunk comes from the instruction's layer).
  // Empty when the plan does not mark them.
  std::vector<std::tuple<bool, int, int>> passes; // (forward?, micro-batch, chunk)
  std::vector<bool> passOrder;     // true: forward (passes' first members)
  int64_t ppCoordinate = -1;       // its devices' coordinate on the "pp" mesh axis, -1 none
  uint64_t totalBytes() const { return parameterBytes + optimizerBytes + inputBytes + arenaBytes; }
  std::vector<CollectiveFacts> collectives;
};

struct StageFacts {
  int firstLayer = 0, numLayers = 0;
  // Under an interleaved schedule, the layers of each of its chunks (first, count);
  // empty with one chunk per stage.
  std::vector<std::pair<int, int>> chunkLayers;
  bool embedding = false, head = false;
  std::vector<int> ranks;            // global ranks whose program runs this stage
  double flops = 0;                  // of its first program (0: unknown)
  // The plan's own pass order (ProgramFacts::passes of its program) as "F0 F1 B0 ..."
  // ("F0.1": micro-batch 0's forward of chunk 1 when interleaved), and whether it equals
  // the schedule's order drawn; empty when the plan shows none.
  std::string planOrder;
  bool planOrderIs1F1B = true;
};

struct PlanFacts {
  std::string path, producer;
  unsigned version = 0;
  // Model.
  std::string architecture;
  int64_t layers = 0, hidden = 0, intermediate = 0, heads = 0, kvHeads = 0, headDim = 0,
          vocab = 0;
  bool tied = false;
  int64_t batch = 0, seqLen = 0;
  std::string precision, parallelPlan, cluster;
  // Mesh: names (plan.mesh_axes, "axisN" where missing) and sizes; rank r has
  // coordinates in row-major order.
  std::vector<std::string> axisNames;
  std::vector<int64_t> meshShape;
  int64_t devices = 1;
  std::vector<int64_t> coordinates(int64_t rank) const;
  std::string axisName(int64_t axis) const;
  int64_t axisSize(int64_t axis) const;
  // Pipeline (absent: one stage with everything, one micro-batch).
  bool pipelinePresent = false;
  int microBatches = 1;
  int chunks = 1; // model chunks per stage (interleaved 1F1B)
  // The prediction's per-chunk times (interleaved; chunk c of stage s at c * stages + s).
  std::vector<schedule::StageTimes> predictedChunks;
  std::string schedule = "1f1b", recompute = "none";
  int64_t recomputeStages = 0; // recompute on the first this many stages only (0: all)
  std::vector<StageFacts> stages;
  int64_t ppAxis = -1;               // index of the mesh axis named "pp", -1 none
  // Problems worth a line in the output.
  std::vector<std::string> warnings;
  std::optional<PipelineTimeline> timeline; // absent when too large to lay out
  bool stageTimesFromFlops = false;          // else equal forward times (FLOPs unknown)
  // The timeline uses the plan's predicted stage times (the cost model's, in seconds,
  // with each stage's step) when it has one per stage; else forward times from FLOPs,
  // backward = 2 x forward, relative units and no step.
  bool stageTimesPredicted = false;
  std::vector<ParameterFacts> parameters;
  std::vector<ProgramFacts> programs; // one per stage, in stage order
  // The program device `rank` runs: its stage's (its coordinate on "pp").
  const ProgramFacts &programOf(int64_t rank) const;
  // plan.predicted.
  bool predictedPresent = false;
  double predictedFlops = 0, predictedSeconds = 0;
  uint64_t predictedBytes = 0;
  std::string predictedCluster;
  // The cost model's figures (plans from apc compile with the cost model; absent in older
  // or hand-made plans: predictedModel false).
  bool predictedModel = false;
  double predictedTokensPerSecondPerDevice = 0, predictedMfu = 0, predictedUsableBytes = 0;
  bool predictedFits = true;
  std::vector<std::pair<std::string, double>> predictedBreakdown; // seconds by kind
  std::vector<std::pair<std::string, uint64_t>> predictedMemory;  // bytes by kind
  std::vector<PredictedStageTimes> predictedStages;               // per stage, seconds
  // Why the timeline is not the prediction's though the plan has one (its stage times
  // are absent, for another number of stages, or not usable); empty otherwise.
  std::string predictedStagesUnused;
  // plan.search: how the plan search chose the plan (absent: a plan given by hand).
  struct Alternative {
    std::string plan;
    double seconds = 0;
    uint64_t bytes = 0;
    std::vector<std::pair<std::string, double>> breakdown;
    bool estimated = false; // the search's estimate, not compiled whole
  };
  bool searched = false;
  std::string searchRequest;
  int64_t searchEnumerated = 0, searchEstimated = 0, searchCompiled = 0, searchPruned = 0,
          searchDominated = 0, searchDropped = 0;
  double searchSeconds = 0;
  std::vector<Alternative> alternatives; // the runners-up, best first
};

// What a runner-up loses on against the chosen plan: the kinds of its step that take
// longer, largest first ("bubble +12 ms, communication.tp +3 ms"), and memory.
std::string whyNot(const PlanFacts &f, const PlanFacts::Alternative &a);

// The schedule is laid out when stages x micro-batches is at most this.
constexpr int64_t kMaxScheduledMicroBatchStages = 100000;

// Gathers the facts of a plan that LoadedPlan accepted. Refuses (naming `path`) what the
// loader does not check and the explanation needs: programs whose `stage` is outside the
// pipeline, a pipeline without stages or micro-batches, stages outside the model's layers.
Result<PlanFacts> gatherFacts(const plan::Plan &plan, const std::string &path);

// Renderers.
std::string renderText(const PlanFacts &facts, const std::string &svgPath = "");
std::string renderJson(const PlanFacts &facts, const std::string &svgPath = "");
std::string renderScheduleSvg(const PlanFacts &facts);

// Collectives of one program counted by kind (all_reduce sum and max apart) and mesh
// axes (send and recv also by peer), in the order all_reduce, all_gather, reduce_scatter,
// all_slice, send, recv.
struct CollectiveSummary {
  std::string kind, op;
  std::vector<int64_t> axes;
  int count = 0, buckets = 0; // buckets: all_reduce instructions of several buffers
  uint64_t bytes = 0;
  bool communicates = true;
  int64_t peerOffset = 0; // send / recv: rows apart per peer
  int peerStage = -1;
};
std::vector<CollectiveSummary> summarizeCollectives(const ProgramFacts &program);
// "dp", "dp+tp"
std::string axesText(const PlanFacts &facts, const std::vector<int64_t> &axes);
// How a layout reads: "split dim 0 over tp (2 ways) -> [32, 64] per device", "replicated:
// [64] on every device"; when only some devices hold it (a pipeline stage's), they are
// named: "replicated: [64] on ranks 0-1".
std::string layoutText(const PlanFacts &facts, const Layout &layout);

// Helpers shared by the renderers (and tests).
std::string humanBytes(uint64_t bytes);              // "812 B", "266.6 KiB", "1.5 GiB"
std::string dimsText(const std::vector<int64_t> &dims); // "[32, 64]"
std::string rangesText(const std::vector<int> &sorted); // "0-3, 8, 10-11"
std::string stageContents(const StageFacts &stage);     // "embedding, layers 0-15"
std::string devicesText(std::vector<int> devices);      // "devices 0-3"
std::string ranksText(const std::vector<int> &ranks);   // "ranks 0-3", "rank 5"
// "send to stage 1 (peer_offset +1)", "recv from stage 0 (peer_offset -1)"
std::string peerText(const std::string &kind, int64_t peerOffset, int peerStage);

} // namespace apc::explain
