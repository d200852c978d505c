// trainer_state.json of a checkpoint (Checkpoint.h): where training stands.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>

namespace apc::checkpoint {

struct TrainerState {
  int64_t step = 0;           // optimizer updates done
  int64_t epoch = 0;          // epoch of the next batch
  int64_t batchInEpoch = 0;   // index of the next batch within its epoch
  uint64_t seed = 0;          // sampler and initialisation seed
  int64_t numRows = 0;        // rows of the dataset it was trained on
  int64_t batch = 0;          // global batch of the plan it was trained with
  int64_t seqLen = 0;         // and its sequence length
  std::string dataPath;       // for the user's information
};

// The trainer state from the text of a trainer_state.json read from `statePath`;
// errors name statePath.
Result<TrainerState> parseTrainerState(const std::string &text, const std::string &statePath);

} // namespace apc::checkpoint
