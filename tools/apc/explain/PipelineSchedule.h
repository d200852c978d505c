// The 1F1B pipeline timeline of `apc explain --svg`: when each stage runs the forward
// and backward of each micro-batch, under a simple cost model, and the bubble fraction.
//
// The order is not decided here: it is compiler/stages/Schedule.h's (the one the
// ap-pipeline pass compiles into the stage programs). This file only times it.
//
// Times come from compiler/stages/ScheduleTiming.h (shared with the cost model): F of
// micro-batch k on stage s starts when the stage is free and F k on stage s-1
// has ended; B k on stage s when the stage is free and B k on stage s+1 has ended. The
// bubble fraction is the idle share of stages x makespan; with equal stage times it is
// (p - 1) / (m + p - 1).
#pragma once

#include "compiler/stages/ScheduleTiming.h"
#include "runtime/support/Status.h"

#include <string>
#include <tuple>
#include <vector>

namespace apc::explain {

struct ScheduledOp {
  bool forward = true; // F or B
  int microBatch = 0;
  double start = 0, end = 0;
  // Of a backward: the seconds it spends recomputing forward ops (drawn at its start; the
  // program interleaves them layer by layer). 0 when none or not recorded.
  double recompute = 0;
  // Its input's transfer from the neighbour stage (F k on stage s: F k of s - 1's
  // activation; B k: B k of s + 1's gradient): sent when that pass ended, arrived after
  // the transfer; the pass starts no earlier. -1 for both when its input is on the stage
  // (the first stage's forwards, the last stage's backwards).
  double inputSent = -1, inputArrived = -1;
  int chunk = -1; // the model chunk under an interleaved schedule (-1: not interleaved)
  std::string label() const {
    return (forward ? "F" : "B") + std::to_string(microBatch) +
           (chunk >= 0 ? "." + std::to_string(chunk) : std::string());
  }
};

struct PipelineTimeline {
  int stages = 0, microBatches = 0;
  std::vector<std::vector<ScheduledOp>> ops; // per stage, in execution order
  double makespan = 0;                       // end of the last op
  double busy = 0;                           // sum of every op's duration
  double bubbleFraction = 0;                 // 1 - busy / (stages * makespan)
  // Each stage's step (the update and its reductions, once per step after the stage's
  // last backward), when the times give one (schedulePredicted): start and end per stage;
  // empty otherwise.
  std::vector<double> stepStart, stepEnd;
  double end = 0; // when the step ends: the last stepEnd, else the makespan
};

// One stage's predicted times (plan.predicted.stages, seconds): one micro-batch's passes
// and transfers, the backward's recomputed share (recomputeKnown false: the plan does not
// record it), and the step once per step.
struct PredictedStageTimes {
  schedule::StageTimes times;
  double recompute = 0;
  bool recomputeKnown = false;
  double step = 0;
};

// The order of one stage's ops as (forward?, micro-batch) pairs: Schedule.h's 1F1B.
std::vector<std::pair<bool, int>> oneFOneBOrder(int stages, int stage, int microBatches);

// One stage's passes as (forward?, micro-batch, chunk): Schedule.h's 1F1B with one chunk,
// its interleaved order with more.
std::vector<std::tuple<bool, int, int>> scheduledOrder(int stages, int chunks, int stage,
                                                       int microBatches);

// Relative forward time per stage from its FLOPs: proportional when every entry is
// positive and finite, else equal (1 each). The largest is 1.
std::vector<double> forwardTimesFromFlops(const std::vector<double> &flops);

// Lays out the 1F1B schedule. `forwardTime` has one positive entry per stage; backward
// takes `backwardFactor` times the forward. Refuses no stages, no micro-batches or
// non-positive times.
Result<PipelineTimeline> scheduleOneFOneB(const std::vector<double> &forwardTime,
                                          int microBatches, double backwardFactor = 2.0,
                                          int chunks = 1);

// Lays out the 1F1B schedule with each stage's own times (the cost model's, as plan.fb's
// prediction records them: forward, backward and transfers per micro-batch, seconds).
// With `chunks` > 1 the interleaved schedule on `perChunk` (chunk c of stage s at c *
// stages + s, as the prediction records the cost model's), else each chunk a 1/chunks
// share of its stage's times (ScheduleTiming.h, chunkTimes).
Result<PipelineTimeline> scheduleStageTimes(const std::vector<schedule::StageTimes> &times,
                                          int microBatches, int chunks = 1,
                                          const std::vector<schedule::StageTimes> *perChunk = nullptr);

// The same with each stage's step after its last backward (as the cost model times it:
// the step ends when the last stage's step ends) and the backwards' recomputed share.
Result<PipelineTimeline> schedulePredicted(const std::vector<PredictedStageTimes> &stages,
                                           int microBatches, int chunks = 1,
                                           const std::vector<schedule::StageTimes> *perChunk = nullptr);

} // namespace apc::explain
