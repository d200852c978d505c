// The pipeline schedule: in which order each stage runs the forward and backward passes
// of the step's micro-batches. The one owner of that order (as Megatron-Core's
// pipeline_parallel/schedules.py is): ap-pipeline compiles it into the stage programs,
// and `apc explain` lays out its timeline from it. Plain C++ without MLIR, so that tools
// link it without the compiler.
//
// A schedule is a function from (stages, micro-batches) to one ordered list of passes per
// stage. 1F1B (PipeDream-flush, Megatron's non-interleaved schedule) is the one today;
// each pass carries the model chunk it runs so that an interleaved schedule (virtual
// stages: several chunks per stage) can be added as another function without changing
// its users.
#pragma once

#include "runtime/support/Status.h"

#include <string>
#include <vector>

namespace apc::schedule {

enum class PassKind { Forward, Backward };

// One pass of one micro-batch on a stage.
struct Pass {
  PassKind kind = PassKind::Forward;
  int microBatch = 0;
  int chunk = 0; // the model chunk (virtual stage) on this stage; 0 without interleaving
  bool forward() const { return kind == PassKind::Forward; }
  std::string label() const { return (forward() ? "F" : "B") + std::to_string(microBatch); }
  bool operator==(const Pass &o) const {
    return kind == o.kind && microBatch == o.microBatch && chunk == o.chunk;
  }
  bool operator!=(const Pass &o) const { return !(*this == o); }
};

struct Schedule {
  std::string name; // "1f1b" or "interleaved-1f1b"
  int stages = 0, microBatches = 0;
  int chunks = 1; // model chunks per stage: virtual stage v = chunk * stages + stage
  std::vector<std::vector<Pass>> orders; // per stage, in execution order
  int virtualStages() const { return stages * chunks; }
};

// 1F1B: stage s of p runs w = min(p - 1 - s, m) warm-up forwards F0..F(w-1), then
// alternates one forward and one backward (F(w) B0 F(w+1) B1 ...) until every forward
// has run, then the remaining backwards. Each stage holds at most p - s micro-batches'
// activations at once. Refuses fewer than one stage or micro-batch.
Result<Schedule> oneFOneB(int stages, int microBatches);

// One stage's 1F1B order (empty when the arguments are out of range).
std::vector<Pass> oneFOneBOrder(int stages, int stage, int microBatches);

// Interleaved 1F1B (Megatron's interleaved schedule, virtual stages): each of the `stages`
// stages holds `chunks` model chunks, stage s chunks s, s + stages, ...; micro-batches
// flow through all stages x chunks virtual stages. Stage s runs, in groups of `stages`
// micro-batches, the forwards of chunk 0, then of chunk 1, ... (backwards from the last
// chunk down); it warms up with min((stages - s - 1) * 2 + (chunks - 1) * stages, m *
// chunks) forwards, then alternates one forward and one backward, then runs the
// remaining backwards. The bubble is (stages - 1) / (chunks * m) of the ideal time
// instead of 1F1B's (stages - 1) / m. Needs m a multiple of `stages` (as Megatron);
// with one chunk it is 1F1B.
Result<Schedule> interleavedOneFOneB(int stages, int chunks, int microBatches);

// One stage's interleaved order (empty when the arguments are out of range).
std::vector<Pass> interleavedOrder(int stages, int chunks, int stage, int microBatches);

// The schedule of a plan: 1F1B with one chunk per stage, interleaved with more.
Result<Schedule> scheduleFor(int stages, int chunks, int microBatches);

// The schedule named as in plan.fbs PipelineSpec.schedule ("1f1b", "interleaved-1f1b");
// others are refused.
Result<Schedule> scheduleNamed(const std::string &name, int stages, int microBatches,
                               int chunks = 1);

} // namespace apc::schedule
