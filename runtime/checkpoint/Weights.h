// Model weights in and out: Hugging Face safetensors (one file, a folder, or shards with
// model.safetensors.index.json), and the default initialisation.
#pragma once

#include "runtime/checkpoint/Sharding.h"
#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace apc::checkpoint {

// Where one parameter (or one of its moments) lives in the runtime (f32 master copy).
// Under a pipeline plan a rank holds only its stage's parameters: the others keep a slot
// (so that slot indices are the plan's parameter indices) with `data` null, which the
// loaders and the initialisation skip; `block` still describes the split (its counts
// are every holder's), and `holders` says which ranks to gather the tensor from.
struct ParameterSlot {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // the global shape
  float *data = nullptr;       // this device's block (the whole tensor unless split);
                               // null: this rank does not hold it
  std::string init;            // "normal" or "ones"
  Block block;                 // which part `data` holds; empty: the whole tensor
  std::vector<int> holders;    // the ranks holding it, ascending; empty: every rank
};

// Fills every slot from `path`: a .safetensors file, a folder holding model.safetensors
// or model.safetensors.index.json, or the index file itself. BF16/F16/F32/F64 tensors are
// converted. Missing names or shape mismatches (against the global shape) are errors
// naming the tensor; tensors the plan does not use are returned in `unused`
// (transformers warns about them too). A split slot reads only its block from the
// mapped file. Slots with null data (held by other ranks) are skipped: neither needed
// in the file nor reported unused.
Status loadWeights(const std::string &path, const std::vector<ParameterSlot> &slots,
                   std::vector<std::string> *unused = nullptr);

// A parameter's default initialisation by its rank: the only vectors are rms_norm
// weights, which start at one; every matrix is drawn from normal(0, initializer_range).
// The compiler writes it into the plan (ParameterSpec.init); apc eval --make-inputs uses
// it on the IR.
inline const char *defaultInit(size_t rank) { return rank == 1 ? "ones" : "normal"; }

// Hugging Face's initialisation: normal(0, std) for matrices, ones for norm weights.
// Deterministic in `seed`, independent of thread count and of the split: a split slot
// gets exactly the values of its block in the whole tensor. Slot p draws from its own
// stream (seed, p), so `slots` must list every parameter of the plan in plan order;
// slots with null data (held by other ranks) are skipped without shifting the others.
void initWeights(const std::vector<ParameterSlot> &slots, double std, uint64_t seed);

} // namespace apc::checkpoint
