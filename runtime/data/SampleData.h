// A synthetic tokenized dataset for smoke-testing training end to end.
//
// Each row is an arithmetic progression over the token ids 1 .. vocab-1 (wrapping
// around, so token 0 never appears and can serve as the pad id): a random start, then
// a stride drawn from {1, 2, 3, 5}, so that a model that has seen two tokens of a row
// can predict the rest, and even a bigram model gets from ln(vocab) down to about
// ln(4). A tiny Llama's loss visibly drops within 50-100 steps at lr 1e-3. Row lengths
// are uniform in [minLen, maxLen], so batches need padding.
//
// The rows depend only on the arguments: draws come from std::mt19937_64 (whose output
// the C++ standard fixes) reduced by a fixed rule, never from the implementation-defined
// std::uniform_int_distribution.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::data {

struct SampleStats {
  int64_t rows = 0;
  int64_t tokens = 0;
  int64_t shortest = 0; // length of the shortest row (0 with no rows)
  int64_t longest = 0;
  int64_t recordBatches = 0;
};

// rows >= 0, 1 <= minLen <= maxLen <= 2^31 - 1, 2 <= vocab <= 2^31. The message names
// the offending parameter ("min-len", "max-len", "vocab", "rows").
Status checkSampleOptions(int64_t rows, int64_t minLen, int64_t maxLen, int64_t vocab);

// The rows of the dataset, in order (for tests and small datasets).
Result<std::vector<std::vector<int32_t>>> sampleRows(int64_t rows, int64_t minLen,
                                                     int64_t maxLen, int64_t vocab,
                                                     uint64_t seed);

// Writes the rows as an Arrow IPC stream with one list<int32> column `input_ids`
// (TokenStreamWriter: atomically, 1000 rows per record batch).
Status writeSampleDataset(const std::string &path, int64_t rows, int64_t minLen,
                          int64_t maxLen, int64_t vocab, uint64_t seed,
                          SampleStats *stats = nullptr);

} // namespace apc::data
