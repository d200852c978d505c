#include "runtime/train/Sampler.h"

#include <numeric>
#include <random>

namespace apc::train {

Sampler::Sampler(int64_t numRows, int64_t batchSize, uint64_t seed, bool shuffle)
    : numRows_(numRows), batchSize_(batchSize), seed_(seed), shuffle_(shuffle) {}

void Sampler::shuffleFor(int64_t epoch) {
  if (epoch == cachedEpoch_)
    return;
  order_.resize(size_t(numRows_));
  std::iota(order_.begin(), order_.end(), int64_t(0));
  cachedEpoch_ = epoch;
  if (!shuffle_)
    return;
  std::seed_seq seq{uint32_t(seed_), uint32_t(seed_ >> 32), uint32_t(epoch),
                    uint32_t(uint64_t(epoch) >> 32)};
  std::mt19937_64 rng(seq);
  for (int64_t i = numRows_ - 1; i > 0; --i) {
    // Unbiased draw in [0, i] by rejection.
    uint64_t bound = uint64_t(i) + 1, limit = UINT64_MAX - UINT64_MAX % bound, x;
    do
      x = rng();
    while (x >= limit);
    std::swap(order_[i], order_[x % bound]);
  }
}

std::vector<int64_t> Sampler::batch(int64_t epoch, int64_t index) {
  if (index < 0 || index >= batchesPerEpoch())
    return {}; // callers keep index in range; never read past the order
  shuffleFor(epoch);
  return std::vector<int64_t>(order_.begin() + index * batchSize_,
                              order_.begin() + (index + 1) * batchSize_);
}

} // namespace apc::train
