#include "runtime/checkpoint/Weights.h"

#include "runtime/checkpoint/SafetensorsIndex.h"
#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/HalfFloat.h"
#include "runtime/support/MeshCoordinates.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace apc::checkpoint {
namespace fs = std::filesystem;

namespace {

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// name -> shard file, from an index file.
Result<std::map<std::string, std::string>> readIndex(const std::string &indexPath) {
  std::ifstream in(indexPath);
  if (!in)
    return Result<std::map<std::string, std::string>>::error(indexPath + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return parseSafetensorsIndex(text.str(), indexPath);
}

// Elements [first, first + n) of a floating tensor of the mapped file, as f32 (the same
// values as widening to double and rounding to float: bf16/f16/f32 exactly, f64 rounded).
void convert(const safetensors::TensorView &t, int64_t first, float *out, int64_t n) {
  using safetensors::DType;
  const uint8_t *p = t.data + size_t(first) * safetensors::dtypeSize(t.dtype);
  switch (t.dtype) {
  case DType::F32:
    std::memcpy(out, p, size_t(n) * sizeof(float));
    return;
  case DType::F64:
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = float(v);
    }
    return;
  case DType::BF16:
  case DType::F16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = t.dtype == DType::BF16 ? bf16ToFloat(h) : f16ToFloat(h);
    }
    return;
  default: // refused by the caller
    return;
  }
}

} // namespace

Status loadWeights(const std::string &path, const std::vector<ParameterSlot> &slots,
                   std::vector<std::string> *unused) {
  // Resolve which file holds each tensor.
  std::map<std::string, std::string> location;
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path index = fs::path(path) / "model.safetensors.index.json";
    fs::path single = fs::path(path) / "model.safetensors";
    if (fs::exists(index)) {
      auto map = readIndex(index.string());
      if (!map)
        return map.status();
      location = *map;
    } else if (fs::exists(single)) {
      files.push_back(single.string());
    } else {
      return Status::error(path + ": no model.safetensors or model.safetensors.index.json "
                                  "in this folder");
    }
  } else if (path.size() > 5 && path.substr(path.size() - 5) == ".json") {
    auto map = readIndex(path);
    if (!map)
      return map.status();
    location = *map;
  } else {
    files.push_back(path);
  }
  for (auto &[name, file] : location)
    if (std::find(files.begin(), files.end(), file) == files.end())
      files.push_back(file);

  std::map<std::string, const ParameterSlot *> wanted;
  std::set<std::string> elsewhere; // plan parameters other ranks hold
  for (const ParameterSlot &s : slots)
    if (s.data)
      wanted[s.name] = &s;
    else
      elsewhere.insert(s.name);
  std::map<std::string, bool> filled;
  for (const std::string &file : files) {
    auto st = safetensors::File::open(file);
    if (!st)
      return st.status();
    for (const safetensors::TensorView &t : st->tensors()) {
      auto it = wanted.find(t.name);
      if (it == wanted.end()) {
        if (unused && !elsewhere.count(t.name))
          unused->push_back(t.name);
        continue;
      }
      if (!location.empty() && location[t.name] != file)
        continue; // the index says another shard holds it
      const ParameterSlot &slot = *it->second;
      if (t.shape != slot.shape)
        return Status::error(file + ": tensor '" + t.name + "' has shape " +
                             shapeString(t.shape) + " but the plan expects " +
                             shapeString(slot.shape));
      using safetensors::DType;
      if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16 &&
          t.dtype != DType::F64)
        return Status::error(file + ": tensor '" + t.name + "' is " +
                             safetensors::dtypeName(t.dtype) +
                             "; weights must be F32, BF16, F16 or F64");
      // Non-finite weights would poison every step (and every checkpoint after it):
      // refused, naming the tensor and the first such element.
      int64_t badAt = -1;
      auto copy = [&](int64_t global, int64_t local, int64_t n) {
        convert(t, global, slot.data + local, n);
        for (int64_t i = 0; i < n && badAt < 0; ++i)
          if (!std::isfinite(slot.data[local + i]))
            badAt = global + i;
      };
      if (slot.block.whole())
        copy(0, 0, numElements(slot.shape));
      else
        forEachRun(slot.shape, slot.block.start, slot.block.count, copy);
      if (badAt >= 0) {
        // A flat element index unravels row-major, as a rank on a mesh does.
        std::vector<int64_t> index = coordinatesOf(badAt, t.shape);
        return Status::error(file + ": tensor '" + t.name +
                             "' holds a non-finite value (NaN or infinity) at index " +
                             shapeString(index) + "; weights must be finite");
      }
      filled[t.name] = true;
    }
  }
  for (const ParameterSlot &s : slots)
    if (s.data && !filled.count(s.name))
      return Status::error(path + ": no tensor '" + s.name + "' (the plan's parameter " +
                           shapeString(s.shape) + ")");
  return Status::ok();
}

void initWeights(const std::vector<ParameterSlot> &slots, double std, uint64_t seed) {
  std::vector<float> whole; // a split slot's whole tensor, generated to keep its block
  for (size_t p = 0; p < slots.size(); ++p) {
    const ParameterSlot &slot = slots[p];
    if (!slot.data)
      continue; // another rank's: its stream is (seed, p) there too
    int64_t n = numElements(slot.shape);
    if (slot.init == "ones") {
      std::fill(slot.data, slot.data + numElements(localShape(slot.shape, slot.block)), 1.0f);
      continue;
    }
    // A split slot draws the whole tensor from the same stream and keeps its block, so
    // every split initialises bit-identically to one device. Fine for the models trained
    // on CPUs; large models want a counter-based generator that can start at any element
    // (each device then draws only its block).
    float *out = slot.data;
    if (!slot.block.whole()) {
      whole.resize(size_t(n));
      out = whole.data();
    }
    // One stream per parameter (seed, index): adding a parameter does not shift others.
    std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(p)};
    std::mt19937_64 rng(seq);
    auto uniform = [&] { return (double(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
    for (int64_t i = 0; i < n; i += 2) { // Box-Muller: two normals per two uniforms
      double r = std::sqrt(-2.0 * std::log(uniform())), angle = 2.0 * M_PI * uniform();
      out[i] = float(std * r * std::cos(angle));
      if (i + 1 < n)
        out[i + 1] = float(std * r * std::sin(angle));
    }
    if (!slot.block.whole())
      forEachRun(slot.shape, slot.block.start, slot.block.count,
                 [&](int64_t global, int64_t local, int64_t count) {
                   std::memcpy(slot.data + local, whole.data() + global,
                               size_t(count) * sizeof(float));
                 });
  }
}

} // namespace apc::checkpoint
