// Reading trainer_state.json (TrainerState.h), apart from the checkpoint I/O so that the
// fuzz target of test/fuzz can run it on bytes.
#include "runtime/checkpoint/TrainerState.h"

#include <nlohmann/json.hpp>

namespace apc::checkpoint {

Result<TrainerState> parseTrainerState(const std::string &text, const std::string &statePath) {
  using R = Result<TrainerState>;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  TrainerState s;
  try {
    if (j.is_discarded() || !j.is_object())
      return R::error(statePath + ": not valid JSON");
    s.step = j.at("step").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.batchInEpoch = j.at("batch_in_epoch").get<int64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.numRows = j.at("num_rows").get<int64_t>();
    s.batch = j.at("batch").get<int64_t>();
    s.seqLen = j.at("seq_len").get<int64_t>();
    s.dataPath = j.value("data", "");
  } catch (const nlohmann::json::exception &e) {
    return R::error(statePath + ": missing or malformed field (" + std::string(e.what()) + ")");
  }
  if (s.step < 0 || s.epoch < 0 || s.batchInEpoch < 0)
    return R::error(statePath + ": negative step or data position");
  return s;
}

} // namespace apc::checkpoint
