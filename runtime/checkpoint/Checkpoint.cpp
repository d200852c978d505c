#include "runtime/checkpoint/Checkpoint.h"

#include "runtime/comm/Communicator.h"
#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/AtomicFile.h"
#include "runtime/support/MeshCoordinates.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <tuple>
#include <csignal>
#include <cstdlib>
#include <unistd.h>

namespace apc::checkpoint {
namespace fs = std::filesystem;

namespace {

std::vector<ParameterSlot> renamed(const std::vector<ParameterSlot> &slots,
                                   const std::string &prefix) {
  std::vector<ParameterSlot> out = slots;
  for (ParameterSlot &s : out)
    s.name = prefix + s.name;
  return out;
}

// `buffer` holding `n` floats, without ever holding its old and its new storage at once.
float *sized(std::vector<float> &buffer, int64_t n) {
  if (buffer.capacity() < size_t(n))
    std::vector<float>().swap(buffer);
  buffer.resize(size_t(n));
  return buffer.data();
}

// The rank that sends the block at `ownerCoords` (its index on each axis in `splitAxes`):
// the lowest holder with those coordinates (every rank holds the tensor when `holders`
// is empty: the rank with coordinate 0 on every other axis). -1: no rank holds it.
int ownerOf(const ParameterSlot &slot, const std::vector<int64_t> &mesh,
            const std::vector<int64_t> &ownerCoords, const std::vector<int> &splitAxes) {
  if (slot.holders.empty())
    return int(rankOf(ownerCoords, mesh));
  for (int h : slot.holders) {
    std::vector<int64_t> c = coordinatesOf(h, mesh);
    bool match = true;
    for (int a : splitAxes)
      match = match && c[size_t(a)] == ownerCoords[size_t(a)];
    if (match)
      return h;
  }
  return -1;
}

// The whole tensor of `slot` on rank 0 of `world` (null on the other ranks), assembled
// block by block: the owner of a block (the lowest rank holding it, ownerOf) broadcasts
// it, rank 0 places it; a block rank 0 holds is its own copy, not sent. Every rank takes
// part in every broadcast, holder or not. A tensor rank 0 holds whole is its own data;
// one another rank holds whole is received straight into `assembled`; a split one is
// assembled there from blocks received into `received`. So the memory rank 0 uses is
// the two buffers, at most one tensor and one block, reused from tensor to tensor.
Result<const float *> gather(const ParameterSlot &slot, comm::Communicator &world,
                             const std::vector<int64_t> &mesh, std::vector<float> &assembled,
                             std::vector<float> &received) {
  using R = Result<const float *>;
  bool leader = world.rank() == 0;
  if (slot.block.whole() && slot.holders.empty()) // every rank holds it: rank 0's copy
    return leader ? static_cast<const float *>(slot.data) : nullptr;
  const Block &mine = slot.block;
  std::vector<int64_t> count = localShape(slot.shape, mine);
  int64_t blockElements = numElements(count);
  // Walk the blocks: one index per split dim, row-major over the split dims.
  std::vector<size_t> splitDims;
  std::vector<int> splitAxes;
  for (size_t d = 0; d < mine.dimAxes.size(); ++d)
    if (mine.dimAxes[d] >= 0) {
      splitDims.push_back(d);
      splitAxes.push_back(mine.dimAxes[d]);
    }
  bool oneBlock = splitDims.empty(); // the block is the whole tensor
  float *out = leader && !oneBlock ? sized(assembled, numElements(slot.shape)) : nullptr;
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
      if (world.rank() != owner)
        buffer = sized(leader && oneBlock ? assembled : received, blockElements);
      if (Status s = world.broadcast(buffer, size_t(blockElements) * sizeof(float), owner); !s)
        return R::error(s.message());
      block = buffer;
    }
    if (oneBlock)
      return leader ? block : nullptr;
    if (leader)
      forEachRun(slot.shape, start, count, [&](int64_t global, int64_t local, int64_t k) {
        std::memcpy(out + global, block + local, size_t(k) * sizeof(float));
      });
    size_t i = splitDims.size();
    while (i > 0 && ++index[i - 1] == mesh[size_t(mine.dimAxes[splitDims[i - 1]])])
      index[--i] = 0;
    if (i == 0)
      break;
  }
  return static_cast<const float *>(out);
}

void syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Creates DIR and an empty DIR/.checkpoint-<step>.tmp-<pid>; returns the latter.
Result<std::string> beginFolder(const std::string &dir, int64_t step) {
  using R = Result<std::string>;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return R::error(dir + ": cannot create the checkpoint folder: " + ec.message());
  std::string name = "checkpoint-" + std::to_string(step);
  std::string tmp = (fs::path(dir) / ("." + name + ".tmp-" + std::to_string(::getpid()))).string();
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec)
    return R::error(tmp + ": cannot create: " + ec.message());
  return tmp;
}

// Writes config.json and trainer_state.json into `tmp` (which holds the two safetensors
// files) and renames it to DIR/checkpoint-<step>; on failure removes `tmp`.
Result<std::string> finishFolder(const std::string &dir, const std::string &tmp,
                                 const CheckpointContents &c) {
  using R = Result<std::string>;
  std::error_code ec;
  std::string name = "checkpoint-" + std::to_string(c.state.step);
  std::string final = (fs::path(dir) / name).string();
  auto fail = [&](const Status &s) {
    fs::remove_all(tmp, ec);
    return R::error(s.message());
  };
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

// The whole tensor of a slot on the writing rank (null elsewhere), or an error.
using WholeTensor = std::function<Result<const float *>(const ParameterSlot &)>;

// Walks every tensor of the checkpoint in file order (the parameters, then exp_avg.* and
// exp_avg_sq.*), asking `whole` for each; when `writes`, streams each one into its
// safetensors file as it comes (the headers are computed from the shapes up front), so
// no more than the tensor `whole` returns is held at a time, then finishes the folder.
// A failure to write does not stop the walk (the other ranks are in the gathers): the
// writing rank keeps asking, discards, and returns the first error at the end. A failure
// of `whole` ends the walk at once: it goes to `gathered`, and the temporary folder is
// removed. Returns the path on the writing rank, "" elsewhere.
Result<std::string> streamCheckpoint(const std::string &dir, const CheckpointContents &c,
                                     bool writes, const WholeTensor &whole, Status &gathered) {
  using R = Result<std::string>;
  Status written = Status::ok(); // the writing rank's first failure
  std::string tmp;
  if (writes) {
    auto begun = beginFolder(dir, c.state.step);
    if (begun)
      tmp = *begun;
    else
      written = begun.status();
  }
  auto removeTmp = [&] {
    std::error_code ec;
    if (!tmp.empty())
      fs::remove_all(tmp, ec);
  };
  struct Part {
    const std::vector<ParameterSlot> *slots;
    std::string prefix;
  };
  struct File {
    const char *name, *format;
    std::vector<Part> parts;
  };
  const File files[] = {{"model.safetensors", "pt", {{&c.parameters, ""}}},
                        {"optimizer.safetensors",
                         "apc",
                         {{&c.expAvg, "exp_avg."}, {&c.expAvgSq, "exp_avg_sq."}}}};
  for (const File &file : files) {
    std::optional<safetensors::Writer> out;
    if (writes && written) {
      std::vector<safetensors::TensorInfo> infos;
      for (const Part &part : file.parts)
        for (const ParameterSlot &slot : *part.slots)
          infos.push_back({part.prefix + slot.name, safetensors::DType::F32, slot.shape});
      auto created = safetensors::Writer::create((fs::path(tmp) / file.name).string(), infos,
                                                 {{"format", file.format}});
      if (created)
        out.emplace(std::move(*created));
      else
        written = created.status();
    }
    for (const Part &part : file.parts)
      for (const ParameterSlot &slot : *part.slots) {
        auto tensor = whole(slot);
        if (!tensor) {
          out.reset();
          removeTmp();
          gathered = Status::error("checkpoint: gathering '" + part.prefix + slot.name +
                                   "': " + tensor.message());
          return R::error(gathered.message());
        }
        if (out && written)
          written = out->append(*tensor, size_t(numElements(slot.shape)) * sizeof(float));
      }
    if (out && written)
      written = out->commit();
  }
  if (!writes)
    return std::string();
  if (!written) {
    removeTmp();
    return R::error(written.message());
  }
  return finishFolder(dir, tmp, c);
}

} // namespace

Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &c) {
  for (const auto *list : {&c.parameters, &c.expAvg, &c.expAvgSq})
    for (const ParameterSlot &s : *list)
      if (!s.block.whole() || !s.data)
        return Result<std::string>::error("checkpoint: '" + s.name + "' is " +
                                          (s.data ? "split" : "held by another rank") +
                                          "; save it with the job's communicator");
  Status gathered = Status::ok();
  return streamCheckpoint(
      dir, c, /*writes=*/true,
      [](const ParameterSlot &slot) { return Result<const float *>(slot.data); }, gathered);
}

Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &c,
                                   comm::Communicator &world, const std::vector<int64_t> &mesh) {
  using R = Result<std::string>;
  bool leader = world.rank() == 0;
  // Rank 0 writes each tensor as soon as it is gathered; then every rank learns the
  // outcome: ok flag and text (the path or the error), so that a failure to write ends
  // every rank, not only rank 0. A failure to gather ends every rank where it happens.
  std::vector<float> assembled, received;
  Status gathered = Status::ok();
  auto written = streamCheckpoint(
      dir, c, leader,
      [&](const ParameterSlot &slot) { return gather(slot, world, mesh, assembled, received); },
      gathered);
  if (!gathered)
    return R::error(gathered.message());
  std::vector<float>().swap(assembled);
  std::vector<float>().swap(received);
  std::string text;
  uint64_t header[2] = {1, 0};
  if (leader) {
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

Result<std::string> findCheckpoint(const std::string &dir,
                                   std::vector<std::string> *passedOver) {
  using R = Result<std::string>;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "trainer_state.json", ec))
    return dir;
  if (!fs::is_directory(dir, ec))
    return R::error(dir + ": no such checkpoint folder");
  int64_t best = -1;
  std::string found;
  std::vector<std::pair<int64_t, std::string>> incomplete; // step, description
  std::vector<std::string> interrupted; // saves killed midway (beginFolder's hidden names)
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(".checkpoint-", 0) == 0 && entry.is_directory() &&
        (name.find(".tmp-") != std::string::npos || name.find(".old-") != std::string::npos))
      interrupted.push_back(name);
    if (name.rfind("checkpoint-", 0) != 0 || !entry.is_directory())
      continue;
    // Only decimal digits after the prefix: strtoll alone would take "checkpoint-"
    // as step 0 and "checkpoint-+5" or "checkpoint- 5" as step 5.
    std::string digits = name.substr(11);
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    int64_t step = std::stoll(digits);
    std::string missing;
    for (const char *file : {"trainer_state.json", "model.safetensors", "optimizer.safetensors",
                             "config.json"})
      if (!fs::exists(entry.path() / file, ec))
        missing += std::string(missing.empty() ? "no " : ", ") + file;
    if (!missing.empty())
      incomplete.push_back({step, entry.path().string() + " (" + missing + ")"});
    else if (step > best) {
      best = step;
      found = entry.path().string();
    }
  }
  std::sort(incomplete.rbegin(), incomplete.rend());
  std::string newerIncomplete;
  for (const auto &[step, description] : incomplete)
    if (step > best) {
      newerIncomplete += (newerIncomplete.empty() ? "" : "; ") + description;
      if (passedOver)
        passedOver->push_back(description);
    }
  // What a killed save leaves: named, so that a folder holding only that says why.
  std::sort(interrupted.begin(), interrupted.end());
  std::string leftovers;
  for (const std::string &name : interrupted)
    leftovers += (leftovers.empty() ? "" : ", ") + name;
  if (!leftovers.empty())
    leftovers = " (" + leftovers + (interrupted.size() == 1 ? " is a save" : " are saves") +
                " killed before it finished: not resumable, removed by the next save)";
  if (best < 0)
    return R::error(dir + (newerIncomplete.empty()
                               ? ": no checkpoint-<step> folder with a trainer_state.json"
                               : ": no complete checkpoint-<step> folder: " + newerIncomplete) +
                    leftovers);
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
  Result<TrainerState> s = parseTrainerState(text.str(), statePath);
  if (!s)
    return s;
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
