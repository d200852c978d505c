#include "runtime/checkpoint/Checkpoint.h"

#include "runtime/comm/Communicator.h"
#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
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

// The rank that sends the block at `ownerCoords` (its index on each axis in `splitAxes`):
// the lowest holder with those coordinates (every rank holds the tensor when `holders`
// is empty: the rank with coordinate 0 on every other axis). -1: no rank holds it.
int ownerOf(const ParameterSlot &slot, const std::vector<int64_t> &mesh,
            const std::vector<int64_t> &ownerCoords, const std::vector<int> &splitAxes) {
  if (slot.holders.empty())
    return int(meshRank(mesh, ownerCoords));
  for (int h : slot.holders) {
    std::vector<int64_t> c = meshCoords(mesh, h);
    bool match = true;
    for (int a : splitAxes)
      match = match && c[size_t(a)] == ownerCoords[size_t(a)];
    if (match)
      return h;
  }
  return -1;
}

// The whole tensor of `slot` on rank 0 of `world` (other ranks get an empty tensor),
// assembled block by block (a whole tensor is one block): the owner of a block (the
// lowest rank holding it, ownerOf) broadcasts it, rank 0 places it; a block rank 0
// holds is its own copy, not sent. Every rank takes part in every broadcast, holder or
// not; memory beyond rank 0's result is one block.
Result<safetensors::TensorToWrite> gather(const ParameterSlot &slot, comm::Communicator &world,
                                          const std::vector<int64_t> &mesh) {
  using R = Result<safetensors::TensorToWrite>;
  bool leader = world.rank() == 0;
  safetensors::TensorToWrite t;
  t.name = slot.name;
  t.dtype = safetensors::DType::F32;
  t.shape = slot.shape;
  int64_t n = numElements(slot.shape);
  if (slot.block.whole() && slot.holders.empty()) { // every rank holds it: rank 0's copy
    if (leader) {
      t.bytes.resize(size_t(n) * sizeof(float));
      std::memcpy(t.bytes.data(), slot.data, t.bytes.size());
    }
    return t;
  }
  if (leader)
    t.bytes.resize(size_t(n) * sizeof(float));
  const Block &mine = slot.block;
  std::vector<int64_t> count = localShape(slot.shape, mine);
  int64_t blockElements = numElements(count);
  std::vector<float> received;
  // Walk the blocks: one index per split dim, row-major over the split dims.
  std::vector<size_t> splitDims;
  std::vector<int> splitAxes;
  for (size_t d = 0; d < mine.dimAxes.size(); ++d)
    if (mine.dimAxes[d] >= 0) {
      splitDims.push_back(d);
      splitAxes.push_back(mine.dimAxes[d]);
    }
  std::vector<int64_t> index(splitDims.size(), 0);
  for (;;) {
    std::vector<int64_t> ownerCoords(mesh.size(), 0), start(slot.shape.size(), 0);
    for (size_t i = 0; i < splitDims.size(); ++i) {
      size_t d = splitDims[i];
      ownerCoords[size_t(mine.dimAxes[d])] = index[i];
      start[d] = index[i] * count[d];
    }
    int owner = ownerOf(slot, mesh, ownerCoords, splitAxes);
    if (owner < 0) // every rank sees the same holders: all fail here, none waits
      return R::error("no rank holds this block");
    if (world.rank() == owner && !slot.data)
      return R::error("rank " + std::to_string(owner) + " is listed as a holder but has no data");
    const float *block = slot.data;
    if (owner != 0) {
      float *buffer = slot.data;
      if (world.rank() != owner) {
        received.resize(size_t(blockElements));
        buffer = received.data();
      }
      if (Status s = world.broadcast(buffer, size_t(blockElements) * sizeof(float), owner); !s)
        return R::error(s.message());
      block = buffer;
    }
    if (leader) {
      auto *out = reinterpret_cast<float *>(t.bytes.data());
      forEachRun(slot.shape, start, count, [&](int64_t global, int64_t local, int64_t k) {
        std::memcpy(out + global, block + local, size_t(k) * sizeof(float));
      });
    }
    size_t i = splitDims.size();
    while (i > 0 && ++index[i - 1] == mesh[size_t(mine.dimAxes[splitDims[i - 1]])])
      index[--i] = 0;
    if (i == 0)
      break;
  }
  return t;
}

Result<std::string> writeFolder(const std::string &dir,
                                std::vector<safetensors::TensorToWrite> model,
                                std::vector<safetensors::TensorToWrite> moments,
                                const CheckpointContents &c);

void syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

} // namespace

Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &c) {
  for (const auto *list : {&c.parameters, &c.expAvg, &c.expAvgSq})
    for (const ParameterSlot &s : *list)
      if (!s.block.whole() || !s.data)
        return Result<std::string>::error("checkpoint: '" + s.name + "' is " +
                                          (s.data ? "split" : "held by another rank") +
                                          "; save it with the job's communicator");
  auto moments = toWrite(c.expAvg, "exp_avg.");
  for (auto &t : toWrite(c.expAvgSq, "exp_avg_sq."))
    moments.push_back(std::move(t));
  return writeFolder(dir, toWrite(c.parameters, ""), std::move(moments), c);
}

Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &c,
                                   comm::Communicator &world, const std::vector<int64_t> &mesh) {
  using R = Result<std::string>;
  bool leader = world.rank() == 0;
  std::vector<safetensors::TensorToWrite> model, moments;
  for (auto [list, prefix, out] : {std::tuple{&c.parameters, "", &model},
                                   std::tuple{&c.expAvg, "exp_avg.", &moments},
                                   std::tuple{&c.expAvgSq, "exp_avg_sq.", &moments}})
    for (const ParameterSlot &slot : *list) {
      auto gathered = gather(slot, world, mesh);
      if (!gathered)
        return R::error("checkpoint: gathering '" + std::string(prefix) + slot.name +
                        "': " + gathered.message());
      if (leader) {
        gathered->name = prefix + slot.name;
        out->push_back(std::move(*gathered));
      }
    }
  // Rank 0 writes, then every rank learns the outcome: ok flag and text (the path or
  // the error), so that a failure to write ends every rank, not only rank 0.
  std::string text;
  uint64_t header[2] = {1, 0};
  if (leader) {
    auto written = writeFolder(dir, std::move(model), std::move(moments), c);
    header[0] = written.isOk() ? 1 : 0;
    text = written.isOk() ? *written : written.message();
    header[1] = text.size();
  }
  if (world.size() > 1) {
    APC_RETURN_IF_ERROR(world.broadcast(header, sizeof header, 0));
    text.resize(size_t(header[1]));
    if (!text.empty())
      APC_RETURN_IF_ERROR(world.broadcast(text.data(), text.size(), 0));
  }
  if (!header[0])
    return R::error(leader ? text : "rank 0 could not write the checkpoint: " + text);
  return text;
}

namespace {

Result<std::string> writeFolder(const std::string &dir,
                                std::vector<safetensors::TensorToWrite> model,
                                std::vector<safetensors::TensorToWrite> moments,
                                const CheckpointContents &c) {
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

  if (Status s = safetensors::write((fs::path(tmp) / "model.safetensors").string(), model,
                                    {{"format", "pt"}});
      !s)
    return fail(s);
  model.clear();
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

} // namespace

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
