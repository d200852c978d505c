// `apc eval --make-inputs`: the safetensors file a function of ap IR takes, made from
// what a user has (a weights folder or nothing, an Arrow file of token ids or nothing),
// so that `apc eval` runs without a script (docs/tools/apc-eval.md).
#pragma once

#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::func {
class FuncOp;
}

namespace apc::tools {

struct EvalInputOptions {
  std::string irPath;        // for messages
  std::string weightsPath;   // empty: aprun's seeded initialisation
  std::string dataPath;      // empty: seeded random token ids
  std::string column = "input_ids";
  std::optional<int64_t> padId;
  double lr = 1e-4;
  uint64_t seed = 42;
};

// One tensor per argument of `fn`, by its ap.name: parameters from the weights (or
// initialised exactly as aprun does with the same seed), optimizer moments zero, `step`
// 1 (the first update), `lr`, and the first `batch` rows of the data as input_ids and
// labels (the labels as aprun builds them: padded positions -100).
Result<std::vector<safetensors::TensorToWrite>> makeEvalInputs(mlir::func::FuncOp fn,
                                                                const EvalInputOptions &o);

} // namespace apc::tools
