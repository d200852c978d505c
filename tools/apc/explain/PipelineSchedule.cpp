#include "tools/apc/explain/PipelineSchedule.h"

#include "compiler/stages/Schedule.h"
#include "compiler/stages/ScheduleTiming.h"

#include <algorithm>
#include <cmath>

namespace apc::explain {

std::vector<std::pair<bool, int>> oneFOneBOrder(int stages, int stage, int microBatches) {
  std::vector<std::pair<bool, int>> order;
  for (const schedule::Pass &pass : schedule::oneFOneBOrder(stages, stage, microBatches))
    order.push_back({pass.forward(), pass.microBatch});
  return order;
}

std::vector<std::tuple<bool, int, int>> scheduledOrder(int stages, int chunks, int stage,
                                                       int microBatches) {
  std::vector<std::tuple<bool, int, int>> order;
  for (const schedule::Pass &pass :
       schedule::interleavedOrder(stages, std::max(chunks, 1), stage, microBatches))
    order.push_back({pass.forward(), pass.microBatch, pass.chunk});
  return order;
}

std::vector<double> forwardTimesFromFlops(const std::vector<double> &flops) {
  bool known = !flops.empty();
  double largest = 0;
  for (double f : flops) {
    if (!(f > 0) || !std::isfinite(f))
      known = false;
    else
      largest = std::max(largest, f);
  }
  std::vector<double> times(flops.size(), 1.0);
  if (known)
    for (size_t s = 0; s < flops.size(); ++s)
      times[s] = flops[s] / largest;
  return times;
}

Result<PipelineTimeline> scheduleOneFOneB(const std::vector<double> &forwardTime,
                                          int microBatches, double backwardFactor,
                                          int chunks) {
  int stages = int(forwardTime.size());
  if (stages == 0)
    return Result<PipelineTimeline>::error("a pipeline schedule needs at least one stage");
  if (microBatches <= 0)
    return Result<PipelineTimeline>::error("a pipeline schedule needs at least one "
                                           "micro-batch, got " + std::to_string(microBatches));
  for (double t : forwardTime)
    if (!(t > 0) || !std::isfinite(t))
      return Result<PipelineTimeline>::error("stage times must be positive");
  if (!(backwardFactor > 0) || !std::isfinite(backwardFactor))
    return Result<PipelineTimeline>::error("the backward factor must be positive");

  std::vector<schedule::StageTimes> times(static_cast<size_t>(stages));
  for (int s = 0; s < stages; ++s) {
    times[size_t(s)].forward = forwardTime[size_t(s)];
    times[size_t(s)].backward = forwardTime[size_t(s)] * backwardFactor;
  }
  return scheduleStageTimes(times, microBatches, chunks);
}

Result<PipelineTimeline> scheduleStageTimes(const std::vector<schedule::StageTimes> &times,
                                          int microBatches, int chunks,
                                          const std::vector<schedule::StageTimes> *perChunk) {
  int stages = int(times.size());
  if (stages == 0)
    return Result<PipelineTimeline>::error("a pipeline schedule needs at least one stage");
  if (microBatches <= 0)
    return Result<PipelineTimeline>::error("a pipeline schedule needs at least one "
                                           "micro-batch, got " + std::to_string(microBatches));
  chunks = std::max(chunks, 1);
  auto scheduled = schedule::scheduleFor(stages, chunks, microBatches);
  if (!scheduled)
    return Result<PipelineTimeline>::error(scheduled.message());
  std::vector<schedule::StageTimes> virtualTimes =
      perChunk && chunks > 1 && perChunk->size() == times.size() * size_t(chunks)
          ? *perChunk
          : schedule::chunkTimes(times, chunks);
  auto timed = schedule::timeSchedule(*scheduled, virtualTimes);
  if (!timed)
    return Result<PipelineTimeline>::error(timed.message());
  PipelineTimeline t;
  t.stages = stages;
  t.microBatches = microBatches;
  t.makespan = timed->makespan;
  t.busy = timed->busy;
  t.ops.assign(size_t(stages), {});
  for (int s = 0; s < stages; ++s)
    for (const schedule::TimedPass &p : timed->passes[size_t(s)]) {
      ScheduledOp op;
      op.forward = p.pass.forward();
      op.microBatch = p.pass.microBatch;
      op.chunk = chunks > 1 ? p.pass.chunk : -1;
      op.start = p.start;
      op.end = p.end;
      t.ops[size_t(s)].push_back(op);
    }
  t.bubbleFraction = t.makespan > 0 ? 1.0 - t.busy / (double(stages) * t.makespan) : 0.0;
  if (t.bubbleFraction < 0 && t.bubbleFraction > -1e-12)
    t.bubbleFraction = 0;
  t.end = t.makespan;
  // Each pass's input transfer: from the same micro-batch's pass on the neighbour
  // virtual stage (v = chunk * stages + stage; the stage itself without chunks).
  int virtualStages = stages * chunks;
  auto virtualOf = [&](int s, const ScheduledOp &op) {
    return (op.chunk < 0 ? 0 : op.chunk) * stages + s;
  };
  std::vector<std::vector<double>> forwardEnd(size_t(virtualStages),
                                              std::vector<double>(size_t(microBatches), -1)),
      backwardEnd = forwardEnd;
  for (int s = 0; s < stages; ++s)
    for (const ScheduledOp &op : t.ops[size_t(s)])
      (op.forward ? forwardEnd : backwardEnd)[size_t(virtualOf(s, op))][size_t(op.microBatch)] =
          op.end;
  for (int s = 0; s < stages; ++s)
    for (ScheduledOp &op : t.ops[size_t(s)]) {
      int v = virtualOf(s, op);
      if (op.forward && v > 0) {
        op.inputSent = forwardEnd[size_t(v - 1)][size_t(op.microBatch)];
        op.inputArrived = op.inputSent + virtualTimes[size_t(v - 1)].sendForward;
      } else if (!op.forward && v + 1 < virtualStages) {
        op.inputSent = backwardEnd[size_t(v + 1)][size_t(op.microBatch)];
        op.inputArrived = op.inputSent + virtualTimes[size_t(v + 1)].sendBackward;
      }
    }
  return t;
}

Result<PipelineTimeline> schedulePredicted(const std::vector<PredictedStageTimes> &stages,
                                           int microBatches, int chunks,
                                           const std::vector<schedule::StageTimes> *perChunk) {
  std::vector<schedule::StageTimes> times;
  for (const PredictedStageTimes &s : stages) {
    if (!(s.step >= 0) || !std::isfinite(s.step) ||
        (s.recomputeKnown && (!(s.recompute >= 0) || !std::isfinite(s.recompute))))
      return Result<PipelineTimeline>::error("stage times must be finite and not negative");
    times.push_back(s.times);
  }
  auto t = scheduleStageTimes(times, microBatches, chunks, perChunk);
  if (!t)
    return t;
  t->end = 0;
  for (size_t s = 0; s < stages.size(); ++s) {
    for (ScheduledOp &op : t->ops[s])
      if (!op.forward && stages[s].recomputeKnown)
        op.recompute = std::min(stages[s].recompute, op.end - op.start);
    // A stage's last pass is its last backward (1F1B ends with backwards).
    double last = t->ops[s].empty() ? 0.0 : t->ops[s].back().end;
    t->stepStart.push_back(last);
    t->stepEnd.push_back(last + stages[s].step);
    t->end = std::max(t->end, t->stepEnd.back());
  }
  return t;
}

} // namespace apc::explain
