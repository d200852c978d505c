#include "compiler/stages/Schedule.h"

#include <algorithm>

namespace apc::schedule {

std::vector<Pass> oneFOneBOrder(int stages, int stage, int microBatches) {
  std::vector<Pass> order;
  if (stages <= 0 || stage < 0 || stage >= stages || microBatches <= 0)
    return order;
  order.reserve(size_t(2) * size_t(microBatches));
  int warmup = std::min(stages - stage - 1, microBatches);
  int nextForward = 0, nextBackward = 0;
  for (; nextForward < warmup; ++nextForward)
    order.push_back({PassKind::Forward, nextForward});
  while (nextForward < microBatches) {
    order.push_back({PassKind::Forward, nextForward++});
    order.push_back({PassKind::Backward, nextBackward++});
  }
  while (nextBackward < microBatches)
    order.push_back({PassKind::Backward, nextBackward++});
  return order;
}

Result<Schedule> oneFOneB(int stages, int microBatches) {
  if (stages < 1)
    return Result<Schedule>::error("a pipeline schedule needs at least one stage, got " +
                                   std::to_string(stages));
  if (microBatches < 1)
    return Result<Schedule>::error("a pipeline schedule needs at least one micro-batch, got " +
                                   std::to_string(microBatches));
  Schedule s;
  s.name = "1f1b";
  s.stages = stages;
  s.microBatches = microBatches;
  for (int stage = 0; stage < stages; ++stage)
    s.orders.push_back(oneFOneBOrder(stages, stage, microBatches));
  return s;
}

Result<Schedule> scheduleNamed(const std::string &name, int stages, int microBatches) {
  if (name == "1f1b")
    return oneFOneB(stages, microBatches);
  return Result<Schedule>::error("unknown pipeline schedule '" + name + "' (known: 1f1b)");
}

} // namespace apc::schedule
