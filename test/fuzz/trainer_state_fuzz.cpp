// Fuzzes checkpoint::parseTrainerState: the input is a checkpoint's trainer_state.json.
// On success the step and the data position must not be negative (resuming divides and
// indexes with them).
#include "runtime/checkpoint/TrainerState.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>

using namespace apc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = "out/checkpoint-10/trainer_state.json";
  auto state = checkpoint::parseTrainerState(fuzz::asText(data, size), path);
  fuzz::report(state ? "accepted" : state.status().message());
  if (!state) {
    APC_FUZZ_CHECK(fuzz::namesFile(state.status().message(), path), "message: %s",
                   state.status().message().c_str());
    return 0;
  }
  APC_FUZZ_CHECK(state->step >= 0 && state->epoch >= 0 && state->batchInEpoch >= 0,
                 "negative step %lld, epoch %lld or batch %lld", (long long)state->step,
                 (long long)state->epoch, (long long)state->batchInEpoch);
  return 0;
}
