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

std::vector<Pass> interleavedOrder(int stages, int chunks, int stage, int microBatches) {
  if (chunks == 1)
    return oneFOneBOrder(stages, stage, microBatches);
  std::vector<Pass> order;
  if (stages <= 0 || chunks <= 0 || stage < 0 || stage >= stages || microBatches <= 0 ||
      microBatches % stages != 0)
    return order;
  const int total = microBatches * chunks; // passes of each kind on this stage
  // The k-th forward (backward) of the stage: groups of `stages` micro-batches per chunk.
  auto passAt = [&](int k, PassKind kind) {
    int group = k / (stages * chunks);
    int chunk = (k / stages) % chunks;
    if (kind == PassKind::Backward)
      chunk = chunks - 1 - chunk;
    return Pass{kind, group * stages + k % stages, chunk};
  };
  int warmup = microBatches == stages ? total
                                      : std::min((stages - stage - 1) * 2 + (chunks - 1) * stages,
                                                 total);
  order.reserve(size_t(2) * size_t(total));
  int forwards = 0, backwards = 0;
  for (; forwards < warmup; ++forwards)
    order.push_back(passAt(forwards, PassKind::Forward));
  while (forwards < total) {
    order.push_back(passAt(forwards++, PassKind::Forward));
    order.push_back(passAt(backwards++, PassKind::Backward));
  }
  while (backwards < total)
    order.push_back(passAt(backwards++, PassKind::Backward));
  return order;
}

Result<Schedule> interleavedOneFOneB(int stages, int chunks, int microBatches) {
  if (chunks < 1)
    return Result<Schedule>::error("a pipeline schedule needs at least one chunk per stage, got " +
                                   std::to_string(chunks));
  if (chunks == 1)
    return oneFOneB(stages, microBatches);
  if (stages < 2)
    return Result<Schedule>::error("an interleaved schedule needs at least two stages, got " +
                                   std::to_string(stages));
  if (microBatches < 1 || microBatches % stages != 0)
    return Result<Schedule>::error("an interleaved schedule needs a number of micro-batches that "
                                   "is a multiple of the stages (" + std::to_string(stages) +
                                   "), got " + std::to_string(microBatches));
  Schedule s;
  s.name = "interleaved-1f1b";
  s.stages = stages;
  s.chunks = chunks;
  s.microBatches = microBatches;
  for (int stage = 0; stage < stages; ++stage)
    s.orders.push_back(interleavedOrder(stages, chunks, stage, microBatches));
  return s;
}

Result<Schedule> scheduleFor(int stages, int chunks, int microBatches) {
  return chunks > 1 ? interleavedOneFOneB(stages, chunks, microBatches)
                    : oneFOneB(stages, microBatches);
}

Result<Schedule> scheduleNamed(const std::string &name, int stages, int microBatches,
                               int chunks) {
  if (name == "1f1b" && chunks == 1)
    return oneFOneB(stages, microBatches);
  if (name == "interleaved-1f1b")
    return interleavedOneFOneB(stages, chunks, microBatches);
  if (name == "1f1b")
    return Result<Schedule>::error("the 1f1b schedule runs one chunk per stage, not " +
                                   std::to_string(chunks));
  return Result<Schedule>::error("unknown pipeline schedule '" + name +
                                 "' (known: 1f1b, interleaved-1f1b)");
}

} // namespace apc::schedule
