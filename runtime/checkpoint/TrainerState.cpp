// Reading trainer_state.json (TrainerState.h), apart from the checkpoint I/O so that the
// fuzz target of test/fuzz can run it on bytes.
#include "runtime/checkpoint/TrainerState.h"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace apc::checkpoint {

namespace {

// Field `key` of `j` as an integer in [0, max]: JSON integers only (get<int64_t> would
// truncate 1.5 and make 1e30 undefined behaviour), negative ones refused too.
Result<uint64_t> count(const nlohmann::json &j, const char *key, const std::string &statePath,
                       uint64_t max) {
  auto it = j.find(key);
  if (it == j.end())
    return Result<uint64_t>::error(statePath + ": no '" + key + "' field");
  bool isCount = it->is_number_unsigned() ||
                 (it->is_number_integer() && it->get<int64_t>() >= 0);
  if (!isCount || it->get<uint64_t>() > max)
    return Result<uint64_t>::error(statePath + ": '" + key +
                                   "' must be a non-negative integer, got " + it->dump());
  return it->get<uint64_t>();
}

} // namespace

Result<TrainerState> parseTrainerState(const std::string &text, const std::string &statePath) {
  using R = Result<TrainerState>;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return R::error(statePath + ": not valid JSON");
  TrainerState s;
  const uint64_t int64Max = uint64_t(INT64_MAX);
  struct Field {
    const char *key;
    int64_t *out;
  };
  for (Field f : {Field{"step", &s.step}, Field{"epoch", &s.epoch},
                  Field{"batch_in_epoch", &s.batchInEpoch}, Field{"num_rows", &s.numRows},
                  Field{"batch", &s.batch}, Field{"seq_len", &s.seqLen}}) {
    auto v = count(j, f.key, statePath, int64Max);
    if (!v)
      return v.status();
    *f.out = int64_t(*v);
  }
  auto seed = count(j, "seed", statePath, UINT64_MAX);
  if (!seed)
    return seed.status();
  s.seed = *seed;
  auto data = j.find("data");
  if (data != j.end() && !data->is_string())
    return R::error(statePath + ": 'data' must be a string, got " + data->dump());
  s.dataPath = data != j.end() ? data->get<std::string>() : "";
  return s;
}

} // namespace apc::checkpoint
