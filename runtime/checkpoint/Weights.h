// Model weights in and out: Hugging Face safetensors (one file, a folder, or shards with
// model.safetensors.index.json), and the default initialisation.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::checkpoint {

// Where one parameter lives in the runtime (f32 master copy).
struct ParameterSlot {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;
  float *data = nullptr;
  std::string init;            // "normal" or "ones"
};

// Fills every slot from `path`: a .safetensors file, a folder holding model.safetensors
// or model.safetensors.index.json, or the index file itself. BF16/F16/F32/F64 tensors are
// converted. Missing names or shape mismatches are errors naming the tensor; tensors
// the plan does not use are returned in `unused` (transformers warns about them too).
Status loadWeights(const std::string &path, const std::vector<ParameterSlot> &slots,
                   std::vector<std::string> *unused = nullptr);

// Hugging Face's initialisation: normal(0, std) for matrices, ones for norm weights.
// Deterministic in `seed`, independent of thread count.
void initWeights(const std::vector<ParameterSlot> &slots, double std, uint64_t seed);

} // namespace apc::checkpoint
