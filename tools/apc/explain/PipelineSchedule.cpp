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
                                          int microBatches, double backwardFactor) {
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
  return scheduleStageTimes(times, microBatches);
}

Result<PipelineTimeline> scheduleStageTimes(const std::vector<schedule::StageTimes> &times,
                                          int microBatches) {
  int stages = int(times.size());
  if (stages == 0)
    return Result<PipelineTimeline>::error("a pipeline schedule needs at least one stage");
  if (microBatches <= 0)
    return Result<PipelineTimeline>::error("a pipeline schedule needs at least one "
                                           "micro-batch, got " + std::to_string(microBatches));
  auto scheduled = schedule::oneFOneB(stages, microBatches);
  if (!scheduled)
    return Result<PipelineTimeline>::error(scheduled.message());
  auto timed = schedule::timeSchedule(*scheduled, times);
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
      op.start = p.start;
      op.end = p.end;
      t.ops[size_t(s)].push_back(op);
    }
  t.bubbleFraction = t.makespan > 0 ? 1.0 - t.busy / (double(stages) * t.makespan) : 0.0;
  if (t.bubbleFraction < 0 && t.bubbleFraction > -1e-12)
    t.bubbleFraction = 0;
  return t;
}

} // namespace apc::explain
