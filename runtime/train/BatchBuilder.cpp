#include "runtime/train/BatchBuilder.h"

#include "runtime/data/ArrowFile.h"

namespace apc::train {

Status BatchBuilder::fill(const std::vector<int64_t> &rows, const kernels::TensorView &ids,
                          const kernels::TensorView &labels) {
  for (size_t r = 0; r < rows.size(); ++r) {
    column_.row(rows[r], row_);
    int64_t length = std::min<int64_t>(int64_t(row_.size()), seqLen_);
    if (length < seqLen_ && !padId_)
      return Status::error("row " + std::to_string(rows[r]) + " has " +
                           std::to_string(row_.size()) + " tokens, fewer than the plan's "
                           "seq_len " + std::to_string(seqLen_) +
                           ", and no pad id is known: pass --pad-id");
    for (int64_t t = 0; t < seqLen_; ++t) {
      bool real = t < length;
      int64_t id = real ? row_[t] : *padId_;
      if (id < 0 || id >= vocabSize_)
        return Status::error("row " + std::to_string(rows[r]) + " position " +
                             std::to_string(t) + ": token id " + std::to_string(id) +
                             " is outside the vocabulary [0, " + std::to_string(vocabSize_) + ")");
      int64_t label = real ? id : -100;
      size_t k = r * size_t(seqLen_) + size_t(t);
      if (ids.dtype == kernels::DType::I64) {
        ids.as<int64_t>()[k] = id;
        labels.as<int64_t>()[k] = label;
      } else {
        ids.as<int32_t>()[k] = int32_t(id);
        labels.as<int32_t>()[k] = int32_t(label);
      }
    }
  }
  return Status::ok();
}

} // namespace apc::train
