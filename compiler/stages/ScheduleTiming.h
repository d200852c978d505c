// When each pass of a pipeline schedule runs, given each stage's own pass times and the
// point-to-point transfers between neighbour stages. The cost model (compiler/cost) and
// `apc explain`'s timeline share it, so the critical path is computed in one place.
//
// Rules, on virtual stages v = chunk * stages + stage (the stages themselves without
// interleaving): F k on v starts when its stage is free and F k on v-1 has ended and its
// activation has arrived (+ sendForward of v-1); B k on v starts when its stage is free
// and B k on v+1 has ended and its gradient has arrived (+ sendBackward of v+1); on the
// last virtual stage B k follows its own F k. A stage runs its passes in the schedule's
// order, back to back when their inputs are there.
#pragma once

#include "compiler/stages/Schedule.h"

#include <vector>

namespace apc::schedule {

// One (virtual) stage's times for one micro-batch (any unit, seconds in the cost model).
struct StageTimes {
  double forward = 0, backward = 0;
  double sendForward = 0;  // the activation's transfer to stage s+1
  double sendBackward = 0; // the gradient's transfer to stage s-1
};

struct TimedPass {
  Pass pass;
  double start = 0, end = 0;
};

struct Timeline {
  int stages = 0, microBatches = 0;
  int chunks = 1; // per stage (interleaved: passes carry their chunk)
  std::vector<std::vector<TimedPass>> passes; // per stage, in execution order
  std::vector<double> stageEnd;               // when each stage's last pass ends
  double makespan = 0;                        // end of the last pass
  double busy = 0;                            // sum of every pass's duration
};

// Each virtual stage's times from its stage's, with `chunks` chunks per stage: the stage's
// passes and transfers shared evenly by its chunks (virtual stage c * stages + s gets
// stage s's times / chunks). The cost model and `apc explain` both time interleaved
// schedules from per-stage figures this way.
std::vector<StageTimes> chunkTimes(const std::vector<StageTimes> &stages, int chunks);

// Times `schedule` (one entry of `times` per virtual stage, every time finite and >= 0).
Result<Timeline> timeSchedule(const Schedule &schedule, const std::vector<StageTimes> &times);

} // namespace apc::schedule
