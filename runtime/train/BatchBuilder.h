// Turning dataset rows into a [batch, seq] batch of input_ids and labels.
//
// Rows longer than seq_len are truncated; shorter ones are padded on the right with
// the pad id; labels are the ids with padded positions set to -100 (the tutorial's
// mask_pads, applied to positions rather than to every token equal to the pad id).
// With maskPadIdTokens the labels are exactly the tutorial's instead: every position
// whose id equals the pad id is -100, real tokens included (docs/data.md).
//
// Rows come from an Arrow list column (token-id files) or from TokenRows (text datasets
// tokenized by aprun).
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace apc::data {
class IntListColumn;
struct TokenRows;
}

namespace apc::train {

class BatchBuilder {
public:
  BatchBuilder(const data::IntListColumn &column, int64_t seqLen, std::optional<int64_t> padId,
               int64_t vocabSize, bool maskPadIdTokens = false);
  BatchBuilder(const data::TokenRows &rows, int64_t seqLen, std::optional<int64_t> padId,
               int64_t vocabSize, bool maskPadIdTokens = false);

  // Fills `ids` and `labels` ([rows.size(), seqLen], I64 or I32) from `rows`. Fails
  // on a token id outside the vocabulary or a short row with no pad id.
  Status fill(const std::vector<int64_t> &rows, const kernels::TensorView &ids,
              const kernels::TensorView &labels);

  // Without a pad id every row must fill seq_len: the first of the `numRows` rows that
  // does not, with its length, read from the row offsets (no token is touched), so that
  // a run refuses such data before its first step instead of at the row's batch.
  std::optional<std::pair<int64_t, int64_t>> firstShortRow(int64_t numRows) const;

  // How many labels of `rows` the loss keeps: those not -100 after the shift of causal
  // language modelling (position t predicts t + 1, so position 0 is never a target).
  // Zero means the batch's loss is 0 / 0; every rank can tell before running the step.
  int64_t keptLabels(const std::vector<int64_t> &rows);

private:
  // The label of position t of the row in row_ (its first `length` ids real).
  int64_t labelAt(int64_t t, int64_t length) const;

  std::function<void(int64_t, std::vector<int64_t> &)> read_;
  std::function<int64_t(int64_t)> length_; // a row's length, from the offsets
  int64_t seqLen_;
  std::optional<int64_t> padId_;
  int64_t vocabSize_;
  bool maskPadIdTokens_;
  std::vector<int64_t> row_;
};

} // namespace apc::train
