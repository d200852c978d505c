// Which rows make each batch: shuffled per epoch from the seed, drop_last.
//
// The order of epoch e is a Fisher-Yates shuffle driven by std::mt19937_64 seeded
// with (seed, e), written out here rather than std::shuffle (whose algorithm is
// implementation-defined), so a run is reproducible anywhere and resuming needs only
// (seed, epoch, batch index): that triple is the whole sampler state.
#pragma once

#include <cstdint>
#include <vector>

namespace apc::train {

class Sampler {
public:
  // With `shuffle` false, epochs read rows in file order (batch k holds rows
  // [k*batch, (k+1)*batch)).
  Sampler(int64_t numRows, int64_t batchSize, uint64_t seed, bool shuffle = true);

  int64_t batchesPerEpoch() const { return numRows_ / batchSize_; }
  // Rows of batch `index` (0-based) of epoch `epoch` (0-based).
  std::vector<int64_t> batch(int64_t epoch, int64_t index);

private:
  void shuffleFor(int64_t epoch);
  int64_t numRows_, batchSize_;
  uint64_t seed_;
  bool shuffle_;
  int64_t cachedEpoch_ = -1;
  std::vector<int64_t> order_;
};

} // namespace apc::train
