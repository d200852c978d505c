#include "runtime/checkpoint/Checkpoint.h"

#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <csignal>
#include <cstdlib>
#include <unistd.h>

namespace apc::checkpoint {
namespace fs = std::filesystem;

namespace {

std::vector<safetensors::TensorToWrite> toWrite(const std::vector<ParameterSlot> &slots,
                                                const std::string &prefix) {
  std::vector<safetensors::TensorToWrite> out;
  for (const ParameterSlot &s : slots) {
    safetensors::TensorToWrite t;
    t.name = prefix + s.name;
    t.dtype = safetensors::DType::F32;
    t.shape = s.shape;
    int64_t n = 1;
    for (int64_t d : s.shape)
      n *= d;
    t.bytes.resize(size_t(n) * 4);
    std::memcpy(t.bytes.data(), s.data, t.bytes.size());
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<ParameterSlot> renamed(const std::vector<ParameterSlot> &slots,
                                   const std::string &prefix) {
  std::vector<ParameterSlot> out = slots;
  for (ParameterSlot &s : out)
    s.name = prefix + s.name;
  return out;
}

void syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

} // namespace

Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &c) {
  using R = Result<std::string>;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return R::error(dir + ": cannot create the checkpoint folder: " + ec.message());
  std::string name = "checkpoint-" + std::to_string(c.state.step);
  std::string tmp = (fs::path(dir) / ("." + name + ".tmp-" + std::to_string(::getpid()))).string();
  std::string final = (fs::path(dir) / name).string();
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec)
    return R::error(tmp + ": cannot create: " + ec.message());
  auto fail = [&](const Status &s) {
    fs::remove_all(tmp, ec);
    return R::error(s.message());
  };

  if (Status s = safetensors::write((fs::path(tmp) / "model.safetensors").string(),
                                    toWrite(c.parameters, ""), {{"format", "pt"}});
      !s)
    return fail(s);
  auto moments = toWrite(c.expAvg, "exp_avg.");
  for (auto &t : toWrite(c.expAvgSq, "exp_avg_sq."))
    moments.push_back(std::move(t));
  if (Status s = safetensors::write((fs::path(tmp) / "optimizer.safetensors").string(),
                                    moments, {{"format", "apc"}});
      !s)
    return fail(s);
  if (Status s = writeFileAtomically((fs::path(tmp) / "config.json").string(), c.configJson); !s)
    return fail(s);
  nlohmann::json state = {{"step", c.state.step},
                          {"epoch", c.state.epoch},
                          {"batch_in_epoch", c.state.batchInEpoch},
                          {"seed", c.state.seed},
                          {"num_rows", c.state.numRows},
                          {"batch", c.state.batch},
                          {"seq_len", c.state.seqLen},
                          {"data", c.state.dataPath},
                          {"format", "apc-trainer-state-1"}};
  if (Status s = writeFileAtomically((fs::path(tmp) / "trainer_state.json").string(),
                                     state.dump(2) + "\n");
      !s)
    return fail(s);
  syncDirectory(tmp);
  // An older checkpoint of the same step (a rerun) is moved aside, not deleted, until the
  // new one is in place: at every moment one complete checkpoint-<step> can be found.
  std::string old = (fs::path(dir) / ("." + name + ".old-" + std::to_string(::getpid()))).string();
  bool hadOld = fs::exists(final, ec);
  if (hadOld) {
    fs::remove_all(old, ec);
    fs::rename(final, old, ec);
    if (ec)
      return fail(Status::error(final + ": cannot move the previous checkpoint aside: " +
                                ec.message()));
  }
  fs::rename(tmp, final, ec);
  if (ec) {
    std::error_code ignored;
    if (hadOld)
      fs::rename(old, final, ignored);
    return fail(Status::error(final + ": cannot rename the checkpoint into place: " +
                              ec.message()));
  }
  syncDirectory(dir);
  if (hadOld)
    fs::remove_all(old, ec);
  // Leftovers of runs that were killed while saving (hidden names, never resumed from).
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    std::string leftover = entry.path().filename().string();
    bool ours = leftover.rfind(".checkpoint-", 0) == 0 &&
                (leftover.find(".tmp-") != std::string::npos ||
                 leftover.find(".old-") != std::string::npos);
    if (ours && entry.path() != fs::path(tmp) && entry.path() != fs::path(old)) {
      // Another live process's folder carries its pid: leave those alone.
      std::string pid = leftover.substr(leftover.find_last_of('-') + 1);
      if (::kill(pid_t(std::atol(pid.c_str())), 0) != 0)
        fs::remove_all(entry.path(), ec);
    }
  }
  return final;
}

Result<std::string> findCheckpoint(const std::string &dir) {
  using R = Result<std::string>;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "trainer_state.json", ec))
    return dir;
  if (!fs::is_directory(dir, ec))
    return R::error(dir + ": no such checkpoint folder");
  int64_t best = -1;
  std::string found;
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !entry.is_directory())
      continue;
    // Only decimal digits after the prefix: strtoll alone would take "checkpoint-"
    // as step 0 and "checkpoint-+5" or "checkpoint- 5" as step 5.
    std::string digits = name.substr(11);
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    int64_t step = std::stoll(digits);
    bool complete = true;
    for (const char *file : {"trainer_state.json", "model.safetensors", "optimizer.safetensors",
                             "config.json"})
      complete = complete && fs::exists(entry.path() / file);
    if (step > best && complete) {
      best = step;
      found = entry.path().string();
    }
  }
  if (best < 0)
    return R::error(dir + ": no checkpoint-<step> folder with a trainer_state.json");
  return found;
}

Result<TrainerState> loadCheckpoint(const std::string &folder, const CheckpointContents &slots) {
  using R = Result<TrainerState>;
  std::string statePath = (fs::path(folder) / "trainer_state.json").string();
  std::ifstream in(statePath);
  if (!in)
    return R::error(statePath + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
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
  if (Status st = loadWeights((fs::path(folder) / "model.safetensors").string(), slots.parameters);
      !st)
    return st;
  std::string optimizer = (fs::path(folder) / "optimizer.safetensors").string();
  if (Status st = loadWeights(optimizer, renamed(slots.expAvg, "exp_avg.")); !st)
    return st;
  if (Status st = loadWeights(optimizer, renamed(slots.expAvgSq, "exp_avg_sq.")); !st)
    return st;
  return s;
}

} // namespace apc::checkpoint
