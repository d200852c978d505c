#include "compiler/stages/ScheduleTiming.h"

#include <algorithm>
#include <cmath>

namespace apc::schedule {

std::vector<StageTimes> chunkTimes(const std::vector<StageTimes> &stages, int chunks) {
  if (chunks <= 1)
    return stages;
  std::vector<StageTimes> out;
  double share = 1.0 / double(chunks);
  for (int c = 0; c < chunks; ++c)
    for (const StageTimes &t : stages)
      out.push_back({t.forward * share, t.backward * share, t.sendForward * share,
                     t.sendBackward * share});
  return out;
}

Result<Timeline> timeSchedule(const Schedule &schedule, const std::vector<StageTimes> &times) {
  using R = Result<Timeline>;
  int stages = schedule.stages, microBatches = schedule.microBatches;
  int chunks = std::max(schedule.chunks, 1), virtualStages = stages * chunks;
  if (stages < 1 || microBatches < 1 || schedule.orders.size() != size_t(stages))
    return R::error("a pipeline schedule needs at least one stage and one micro-batch");
  if (times.size() != size_t(virtualStages))
    return R::error("the schedule has " + std::to_string(virtualStages) +
                    (chunks > 1 ? " virtual stages" : " stages") + " but " +
                    std::to_string(times.size()) + " stage times were given");
  for (const StageTimes &t : times)
    for (double x : {t.forward, t.backward, t.sendForward, t.sendBackward})
      if (!(x >= 0) || !std::isfinite(x))
        return R::error("stage times must be finite and not negative");

  Timeline t;
  t.stages = stages;
  t.microBatches = microBatches;
  t.chunks = chunks;
  // End times of each virtual stage's forwards and backwards by micro-batch (-1: not yet).
  std::vector<std::vector<double>> forwardEnd(size_t(virtualStages),
                                              std::vector<double>(size_t(microBatches), -1)),
      backwardEnd = forwardEnd;
  std::vector<size_t> next(size_t(stages), 0);
  std::vector<double> free(size_t(stages), 0);
  t.passes.assign(size_t(stages), {});
  size_t remaining = 0;
  for (const auto &order : schedule.orders)
    remaining += order.size();
  // Each sweep runs every pass whose input is there. The schedules never deadlock (each
  // sweep makes progress), but a sweep without progress ends the loop anyway.
  while (remaining > 0) {
    bool progress = false;
    for (int s = 0; s < stages; ++s) {
      const auto &order = schedule.orders[size_t(s)];
      while (next[size_t(s)] < order.size()) {
        const Pass &pass = order[next[size_t(s)]];
        size_t k = size_t(pass.microBatch);
        if (k >= size_t(microBatches) || pass.chunk < 0 || pass.chunk >= chunks)
          return R::error("the schedule names micro-batch " + std::to_string(k) + " of " +
                          std::to_string(microBatches) + ", chunk " +
                          std::to_string(pass.chunk) + " of " + std::to_string(chunks));
        int v = pass.chunk * stages + s;
        const StageTimes &own = times[size_t(v)];
        double ready;
        if (pass.forward())
          ready = v == 0 ? 0.0 : forwardEnd[size_t(v - 1)][k];
        else
          ready = v == virtualStages - 1 ? forwardEnd[size_t(v)][k]
                                         : backwardEnd[size_t(v + 1)][k];
        if (ready < 0)
          break;
        if (pass.forward() && v > 0)
          ready += times[size_t(v - 1)].sendForward;
        if (!pass.forward() && v < virtualStages - 1)
          ready += times[size_t(v + 1)].sendBackward;
        double duration = pass.forward() ? own.forward : own.backward;
        TimedPass timed{pass, std::max(ready, free[size_t(s)]), 0};
        timed.end = timed.start + duration;
        free[size_t(s)] = timed.end;
        (pass.forward() ? forwardEnd : backwardEnd)[size_t(v)][k] = timed.end;
        t.passes[size_t(s)].push_back(timed);
        t.busy += duration;
        t.makespan = std::max(t.makespan, timed.end);
        ++next[size_t(s)];
        --remaining;
        progress = true;
      }
    }
    if (!progress)
      return R::error("the pipeline schedule deadlocked (internal error)");
  }
  t.stageEnd = free;
  return t;
}

} // namespace apc::schedule
