#include "runtime/train/BatchBuilder.h"

#include "runtime/data/ArrowFile.h"
#include "runtime/data/TextDataset.h"

namespace apc::train {

BatchBuilder::BatchBuilder(const data::IntListColumn &column, int64_t seqLen,
                           std::optional<int64_t> padId, int64_t vocabSize, bool maskPadIdTokens)
    : read_([&column](int64_t r, std::vector<int64_t> &out) { column.row(r, out); }),
      length_([&column](int64_t r) { return column.rowLength(r); }), seqLen_(seqLen), padId_(padId), vocabSize_(vocabSize), maskPadIdTokens_(maskPadIdTokens) {}

BatchBuilder::BatchBuilder(const data::TokenRows &rows, int64_t seqLen,
                           std::optional<int64_t> padId, int64_t vocabSize, bool maskPadIdTokens)
    : read_([&rows](int64_t r, std::vector<int64_t> &out) {
        if (r < 0 || r >= rows.numRows())
          out.clear();
        else
          rows.row(r, out);
      }),
      length_([&rows](int64_t r) {
        return r < 0 || r >= rows.numRows() ? 0 : rows.offsets[size_t(r) + 1] - rows.offsets[size_t(r)];
      }),
      seqLen_(seqLen), padId_(padId), vocabSize_(vocabSize), maskPadIdTokens_(maskPadIdTokens) {}

int64_t BatchBuilder::labelAt(int64_t t, int64_t length) const {
  bool real = t < length;
  int64_t id = real ? row_[t] : padId_.value_or(-1);
  if (!real || (maskPadIdTokens_ && padId_ && id == *padId_))
    return -100; // padding; with the tutorial's mask_pads, labels[input_ids == pad_id] too
  return id;
}

std::optional<std::pair<int64_t, int64_t>> BatchBuilder::firstShortRow(int64_t numRows) const {
  if (padId_)
    return std::nullopt;
  for (int64_t r = 0; r < numRows; ++r)
    if (int64_t length = length_(r); length < seqLen_)
      return std::make_pair(r, length);
  return std::nullopt;
}

int64_t BatchBuilder::keptLabels(const std::vector<int64_t> &rows) {
  int64_t kept = 0;
  for (int64_t row : rows) {
    read_(row, row_);
    int64_t length = std::min<int64_t>(int64_t(row_.size()), seqLen_);
    for (int64_t t = 1; t < length; ++t)
      kept += labelAt(t, length) != -100;
  }
  return kept;
}

Status BatchBuilder::fill(const std::vector<int64_t> &rows, const kernels::TensorView &ids,
                          const kernels::TensorView &labels) {
  for (size_t r = 0; r < rows.size(); ++r) {
    read_(rows[r], row_);
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
      int64_t label = labelAt(t, length);
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
