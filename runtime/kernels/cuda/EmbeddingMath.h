// The arithmetic and indexing of embedding and embedding_grad on CUDA (Embedding.cu), in
// plain C++ so that the host tests (test/unit/kernels/cuda/EmbeddingTest.cpp) run it
// against the CPU backend without a GPU.
//
// embedding_grad is deterministic without float atomics, as the CPU's: the positions
// are sorted by their row with a stable LSD radix sort (8-bit digits; per tile of
// kSortTile positions a digit histogram, one exclusive scan of all histograms in
// digit-major order, then a scatter where each position goes after the earlier
// positions of its tile with the same digit), so each row's positions end up in
// position order; then one block per row sums its positions' gradients in that order,
// in double, and rounds once. Same values, same order, same rounding as the CPU.
#pragma once

#include "runtime/kernels/cuda/HostDevice.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::kernels::cuda {

// The row of global id `id` in a block of `rows` rows starting at `start`, or -1
// (another block's id; without vocab_start, start is 0 and ids were checked).
APC_HD int64_t embeddingRow(int64_t id, int64_t start, int64_t rows) {
  return id >= start && id - start < rows ? id - start : -1;
}

// embedding's element i of the result [n, hidden], for position i / hidden whose row
// is `row`: the table element it copies, or -1 for a zero (another block's id).
APC_HD int64_t embeddingSource(int64_t i, int64_t hidden, int64_t row) {
  return row >= 0 ? row * hidden + i % hidden : -1;
}

APC_HD bool idOutside(int64_t id, int64_t vocab) { return id < 0 || id >= vocab; }

// "No bad id seen": the initial value of the first bad position's atomicMin.
constexpr unsigned long long kNoBadPosition = ~0ull;

// The CPU backend's message for the first id outside [0, vocab), at flat position `p`
// of ids `shape`.
inline std::string badIdMessage(const char *kernel, int64_t id, const std::vector<int64_t> &shape,
                                int64_t p, int64_t vocab) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? p % shape[d] : 0;
    p = shape[d] ? p / shape[d] : 0;
  }
  std::string at = "[";
  for (size_t d = 0; d < index.size(); ++d)
    at += (d ? ", " : "") + std::to_string(index[d]);
  return std::string(kernel) + ": token id " + std::to_string(id) + " at ids" + at +
         "] is outside the vocabulary [0, " + std::to_string(vocab) + ")";
}

// ---- the stable radix sort of positions by row ---------------------------------------

constexpr int kRadixBits = 8;
constexpr uint32_t kRadixDigits = 1u << kRadixBits;
constexpr int64_t kSortTile = 512; // positions per tile = threads per sort block
constexpr uint32_t kScanThreads = 1024;

// The sort key of a position: its row, or `rows` (sorted last, summed by no row) for an
// id of another block.
APC_HD uint32_t sortKey(int64_t id, int64_t start, int64_t rows) {
  int64_t row = embeddingRow(id, start, rows);
  return uint32_t(row >= 0 ? row : rows);
}

// Digit passes to order keys up to maxKey (at least one).
inline int radixPasses(int64_t maxKey) {
  int passes = 1;
  while (passes * kRadixBits < 32 && (maxKey >> (passes * kRadixBits)) != 0)
    ++passes;
  return passes;
}

APC_HD uint32_t radixDigit(uint32_t key, int pass) {
  return (key >> (pass * kRadixBits)) & (kRadixDigits - 1);
}

inline int64_t sortTiles(int64_t n) { return (n + kSortTile - 1) / kSortTile; }

// Where tile `tile`'s count of digit `digit` lives: digit-major, so that the exclusive
// scan of the histograms gives each (digit, tile) its first place in the sorted output.
APC_HD int64_t histogramIndex(uint32_t digit, int64_t tile, int64_t tiles) {
  return int64_t(digit) * tiles + tile;
}

// How many of a tile's `count` digits equal `digit` (thread `digit` of the histogram).
APC_HD uint32_t tileDigitCount(const uint32_t *digits, int64_t count, uint32_t digit) {
  uint32_t n = 0;
  for (int64_t j = 0; j < count; ++j)
    n += digits[j] == digit;
  return n;
}

// How many positions before `i` in its tile have its digit: its place after the tile's
// first of that digit (stable).
APC_HD uint32_t tileRank(const uint32_t *digits, int64_t i) {
  uint32_t n = 0;
  for (int64_t j = 0; j < i; ++j)
    n += digits[j] == digits[i];
  return n;
}

// The exclusive scan of `m` counts by one block: thread t sums the contiguous range
// scanRange(t), a serial scan of the threads' sums gives each its carry, then each
// writes its range's prefixes.
struct Range {
  int64_t begin, end;
};
APC_HD Range scanRange(int64_t thread, int64_t threads, int64_t m) {
  int64_t per = (m + threads - 1) / threads;
  int64_t begin = thread * per < m ? thread * per : m;
  return {begin, begin + per < m ? begin + per : m};
}

// The first index of sorted `keys` whose key is >= key.
APC_HD int64_t lowerBound(const uint32_t *keys, int64_t n, uint32_t key) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (keys[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Column h of one row's gradient: the sum, in the sorted (= position) order, of
// grad_output[positions[k], h] for k in [begin, end). load(i) gives element i as float.
template <typename Load>
APC_HD double rowGradient(Load load, const uint32_t *positions, int64_t begin, int64_t end,
                          int64_t hidden, int64_t h) {
  double acc = 0.0;
  for (int64_t k = begin; k < end; ++k)
    acc += double(load(int64_t(positions[k]) * hidden + h));
  return acc;
}

// The workspace of embedding_grad (n positions), each part on a 256-byte boundary: the
// first bad position (u64), keys and positions twice (u32 each, the sort's ping-pong
// buffers) and the tiles' histograms (u32, digits x tiles).
struct EmbeddingGradLayout {
  uint64_t keys[2], positions[2], histograms, bytes;
};
inline uint64_t alignUp256(uint64_t b) { return (b + 255) / 256 * 256; }
inline EmbeddingGradLayout embeddingGradLayout(int64_t n) {
  EmbeddingGradLayout l;
  uint64_t at = 256, part = alignUp256(uint64_t(n) * 4);
  for (int i = 0; i < 2; ++i) {
    l.keys[i] = at;
    at += part;
    l.positions[i] = at;
    at += part;
  }
  l.histograms = at;
  l.bytes = at + alignUp256(uint64_t(sortTiles(n)) * kRadixDigits * 4);
  return l;
}

} // namespace apc::kernels::cuda
