// Tests of the batch sampler: each epoch a permutation cut into full batches
// (drop_last), reproducible from (seed, epoch, batch) alone.
#include "runtime/train/Sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

namespace apc::train {
namespace {

// All batches of one epoch, concatenated.
std::vector<int64_t> epochRows(Sampler &sampler, int64_t epoch) {
  std::vector<int64_t> rows;
  for (int64_t k = 0; k < sampler.batchesPerEpoch(); ++k) {
    std::vector<int64_t> b = sampler.batch(epoch, k);
    rows.insert(rows.end(), b.begin(), b.end());
  }
  return rows;
}

TEST(SamplerTest, EachEpochIsAPermutationWithTheRemainderDropped) {
  const int64_t numRows = 103, batchSize = 10;
  Sampler sampler(numRows, batchSize, /*seed=*/17);
  ASSERT_EQ(sampler.batchesPerEpoch(), 10);
  for (int64_t epoch = 0; epoch < 5; ++epoch) {
    std::vector<int64_t> counts(numRows, 0);
    for (int64_t k = 0; k < sampler.batchesPerEpoch(); ++k) {
      std::vector<int64_t> b = sampler.batch(epoch, k);
      ASSERT_EQ(int64_t(b.size()), batchSize);
      for (int64_t row : b) {
        ASSERT_GE(row, 0);
        ASSERT_LT(row, numRows);
        ++counts[size_t(row)];
      }
    }
    // 100 rows exactly once, the 3 others in no batch of this epoch.
    EXPECT_EQ(std::count(counts.begin(), counts.end(), 1), 100) << "epoch " << epoch;
    EXPECT_EQ(std::count(counts.begin(), counts.end(), 0), 3) << "epoch " << epoch;
  }
}

TEST(SamplerTest, DroppedRowsChangeFromEpochToEpoch) {
  // Shuffling moves the dropped remainder around, so over epochs every row is seen.
  Sampler sampler(13, 4, /*seed=*/3); // 3 batches of 4, one row dropped per epoch
  std::set<int64_t> seen, dropped;
  for (int64_t epoch = 0; epoch < 40; ++epoch) {
    std::vector<int64_t> rows = epochRows(sampler, epoch);
    std::set<int64_t> in(rows.begin(), rows.end());
    ASSERT_EQ(in.size(), 12u);
    seen.insert(in.begin(), in.end());
    for (int64_t r = 0; r < 13; ++r)
      if (!in.count(r))
        dropped.insert(r);
  }
  EXPECT_EQ(seen.size(), 13u);
  EXPECT_GT(dropped.size(), 1u);
}

TEST(SamplerTest, ExactMultipleUsesEveryRow) {
  Sampler sampler(24, 8, /*seed=*/1);
  ASSERT_EQ(sampler.batchesPerEpoch(), 3);
  std::vector<int64_t> rows = epochRows(sampler, 0);
  std::sort(rows.begin(), rows.end());
  std::vector<int64_t> all(24);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(rows, all);
}

TEST(SamplerTest, EpochsDiffer) {
  Sampler sampler(100, 10, /*seed=*/5);
  std::vector<int64_t> e0 = epochRows(sampler, 0), e1 = epochRows(sampler, 1),
                       e2 = epochRows(sampler, 2);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e1, e2);
  EXPECT_NE(e0, e2);
  // The epoch's high 32 bits count too.
  EXPECT_NE(e0, epochRows(sampler, int64_t(1) << 32));
}

TEST(SamplerTest, SameSeedSameOrder) {
  Sampler a(100, 10, /*seed=*/99), b(100, 10, /*seed=*/99);
  for (int64_t epoch = 0; epoch < 3; ++epoch)
    EXPECT_EQ(epochRows(a, epoch), epochRows(b, epoch)) << epoch;
}

TEST(SamplerTest, DifferentSeedDifferentOrder) {
  Sampler a(100, 10, /*seed=*/99), b(100, 10, /*seed=*/100),
      c(100, 10, /*seed=*/99 + (uint64_t(1) << 32));
  EXPECT_NE(epochRows(a, 0), epochRows(b, 0));
  EXPECT_NE(epochRows(a, 0), epochRows(c, 0)); // the seed's high bits count
}

TEST(SamplerTest, ShuffledOrderIsNotFileOrder) {
  Sampler sampler(100, 10, /*seed=*/0);
  std::vector<int64_t> rows = epochRows(sampler, 0);
  std::vector<int64_t> fileOrder(100);
  std::iota(fileOrder.begin(), fileOrder.end(), 0);
  EXPECT_NE(rows, fileOrder);
}

TEST(SamplerTest, NoShuffleGivesFileOrder) {
  Sampler sampler(23, 5, /*seed=*/1234, /*shuffle=*/false);
  ASSERT_EQ(sampler.batchesPerEpoch(), 4);
  for (int64_t epoch : {0, 1, 7})
    for (int64_t k = 0; k < 4; ++k)
      EXPECT_EQ(sampler.batch(epoch, k),
                (std::vector<int64_t>{5 * k, 5 * k + 1, 5 * k + 2, 5 * k + 3, 5 * k + 4}))
          << "epoch " << epoch << " batch " << k;
}

TEST(SamplerTest, BatchDoesNotDependOnCallOrder) {
  Sampler inOrder(57, 4, /*seed=*/11), outOfOrder(57, 4, /*seed=*/11);
  std::vector<int64_t> first00 = inOrder.batch(0, 0);
  std::vector<int64_t> first31 = inOrder.batch(3, 1);
  std::vector<int64_t> late31 = outOfOrder.batch(3, 1);
  std::vector<int64_t> late00 = outOfOrder.batch(0, 0);
  EXPECT_EQ(first00, late00);
  EXPECT_EQ(first31, late31);
  // And back again (the sampler caches one epoch at a time).
  EXPECT_EQ(outOfOrder.batch(3, 1), first31);
  EXPECT_EQ(outOfOrder.batch(0, 0), first00);
  EXPECT_EQ(outOfOrder.batch(0, 13), inOrder.batch(0, 13));
}

} // namespace
} // namespace apc::train
