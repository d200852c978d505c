#include "tools/apc/explain/PipelineSchedule.h"

#include "compiler/stages/Schedule.h"

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

  PipelineTimeline t;
  t.stages = stages;
  t.microBatches = microBatches;
  auto scheduled = schedule::oneFOneB(stages, microBatches);
  if (!scheduled)
    return Result<PipelineTimeline>::error(scheduled.message());
  std::vector<std::vector<std::pair<bool, int>>> orders(static_cast<size_t>(stages));
  for (int s = 0; s < stages; ++s)
    for (const schedule::Pass &pass : scheduled->orders[size_t(s)])
      orders[size_t(s)].push_back({pass.forward(), pass.microBatch});
  // End times of each stage's forwards and backwards by micro-batch (-1: not yet run).
  std::vector<std::vector<double>> forwardEnd(size_t(stages),
                                              std::vector<double>(size_t(microBatches), -1)),
      backwardEnd = forwardEnd;
  std::vector<size_t> next(size_t(stages), 0);
  std::vector<double> free(size_t(stages), 0);
  t.ops.assign(size_t(stages), {});
  size_t remaining = size_t(stages) * size_t(microBatches) * 2;
  // Each sweep runs every op whose dependency has run. The 1F1B order never deadlocks
  // (each sweep makes progress), but a sweep without progress ends the loop anyway.
  while (remaining > 0) {
    bool progress = false;
    for (int s = 0; s < stages; ++s) {
      auto &order = orders[size_t(s)];
      while (next[size_t(s)] < order.size()) {
        auto [forward, k] = order[next[size_t(s)]];
        double ready;
        if (forward)
          ready = s == 0 ? 0.0 : forwardEnd[size_t(s - 1)][size_t(k)];
        else
          ready = s == stages - 1 ? forwardEnd[size_t(s)][size_t(k)]
                                  : backwardEnd[size_t(s + 1)][size_t(k)];
        if (ready < 0)
          break;
        double duration = forwardTime[size_t(s)] * (forward ? 1.0 : backwardFactor);
        ScheduledOp op;
        op.forward = forward;
        op.microBatch = k;
        op.start = std::max(ready, free[size_t(s)]);
        op.end = op.start + duration;
        free[size_t(s)] = op.end;
        (forward ? forwardEnd : backwardEnd)[size_t(s)][size_t(k)] = op.end;
        t.ops[size_t(s)].push_back(op);
        t.busy += duration;
        t.makespan = std::max(t.makespan, op.end);
        ++next[size_t(s)];
        --remaining;
        progress = true;
      }
    }
    if (!progress)
      return Result<PipelineTimeline>::error("the 1F1B order deadlocked (internal error)");
  }
  t.bubbleFraction = t.makespan > 0 ? 1.0 - t.busy / (double(stages) * t.makespan) : 0.0;
  if (t.bubbleFraction < 0 && t.bubbleFraction > -1e-12)
    t.bubbleFraction = 0;
  return t;
}

} // namespace apc::explain
