// Synthetic arithmetic-progression token rows (see SampleData.h).
#include "runtime/data/SampleData.h"

#include "runtime/data/ArrowWriter.h"
#include "runtime/support/CheckedMath.h"

#include <algorithm>
#include <limits>
#include <random>

namespace apc::data {
namespace {

constexpr int64_t kStrides[] = {1, 2, 3, 5};
constexpr int64_t kNumStrides = int64_t(sizeof kStrides / sizeof kStrides[0]);

// A draw in [0, n) for 1 <= n <= 2^32: the high bits of a 64-bit draw times n (a fixed
// rule, unlike std::uniform_int_distribution; the bias is below n / 2^64).
uint64_t draw(std::mt19937_64 &rng, uint64_t n) {
  return uint64_t((static_cast<unsigned __int128>(rng()) * n) >> 64);
}

// Produces the rows one by one.
class Generator {
public:
  Generator(int64_t minLen, int64_t maxLen, int64_t vocab, uint64_t seed)
      : minLen_(minLen), maxLen_(maxLen), vocab_(vocab), rng_(seed) {}

  // Draws, in this order: the length, the start, the stride.
  void next(std::vector<int32_t> &row) {
    int64_t length = minLen_ + int64_t(draw(rng_, uint64_t(maxLen_ - minLen_ + 1)));
    int64_t modulus = vocab_ - 1; // ids 1 .. vocab-1
    int64_t position = int64_t(draw(rng_, uint64_t(modulus)));
    int64_t stride = kStrides[draw(rng_, uint64_t(kNumStrides))] % modulus;
    row.resize(size_t(length));
    for (int64_t i = 0; i < length; ++i) {
      row[size_t(i)] = int32_t(1 + position);
      position += stride;
      if (position >= modulus)
        position -= modulus;
    }
  }

private:
  int64_t minLen_, maxLen_, vocab_;
  std::mt19937_64 rng_;
};

} // namespace

Status checkSampleOptions(int64_t rows, int64_t minLen, int64_t maxLen, int64_t vocab) {
  constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
  if (rows < 0)
    return Status::error("rows must be non-negative, got " + std::to_string(rows));
  if (minLen < 1 || minLen > kMaxInt32)
    return Status::error("min-len must be in [1, 2147483647], got " + std::to_string(minLen));
  if (maxLen < minLen || maxLen > kMaxInt32)
    return Status::error("max-len must be in [min-len, 2147483647] = [" +
                         std::to_string(minLen) + ", 2147483647], got " +
                         std::to_string(maxLen));
  if (vocab < 2 || vocab > kMaxInt32 + 1)
    return Status::error("vocab must be in [2, 2147483648] (token 0 is reserved for "
                         "padding), got " + std::to_string(vocab));
  // A sample is for trying things out: past 2^36 tokens (a 256 GiB file) a typo in --rows
  // would fill the disk for hours before anything said so.
  constexpr int64_t kMaxTokens = int64_t(1) << 36;
  std::optional<int64_t> tokens = checkedMul(rows, maxLen);
  if (!tokens || *tokens > kMaxTokens)
    return Status::error("rows (" + std::to_string(rows) + ") x max-len (" +
                         std::to_string(maxLen) + ") may make more than 2^36 tokens, the "
                         "most a sample holds");
  return Status::ok();
}

Result<std::vector<std::vector<int32_t>>> sampleRows(int64_t rows, int64_t minLen,
                                                     int64_t maxLen, int64_t vocab,
                                                     uint64_t seed) {
  if (Status s = checkSampleOptions(rows, minLen, maxLen, vocab); !s)
    return s;
  Generator gen(minLen, maxLen, vocab, seed);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(rows));
  for (auto &row : out)
    gen.next(row);
  return out;
}

Status writeSampleDataset(const std::string &path, int64_t rows, int64_t minLen,
                          int64_t maxLen, int64_t vocab, uint64_t seed, SampleStats *stats) {
  if (Status s = checkSampleOptions(rows, minLen, maxLen, vocab); !s)
    return s.withContext(path);
  Result<TokenStreamWriter> writer = TokenStreamWriter::create(path);
  if (!writer)
    return writer.status();
  Generator gen(minLen, maxLen, vocab, seed);
  std::vector<int32_t> row;
  SampleStats st;
  for (int64_t r = 0; r < rows; ++r) {
    gen.next(row);
    APC_RETURN_IF_ERROR(writer->append(row));
    int64_t n = int64_t(row.size());
    st.shortest = r == 0 ? n : std::min(st.shortest, n);
    st.longest = std::max(st.longest, n);
  }
  APC_RETURN_IF_ERROR(writer->finish());
  st.rows = writer->numRows();
  st.tokens = writer->numValues();
  st.recordBatches = writer->numRecordBatches();
  if (stats)
    *stats = st;
  return Status::ok();
}

} // namespace apc::data
