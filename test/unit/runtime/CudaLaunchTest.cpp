// The CUDA kernels' launch arithmetic (runtime/kernels/cuda/Launch.h), checked on the CPU
// so that it is tested on every machine, GPU or not: every element is covered exactly
// once, grids stay within CUDA's limits, the column reduction's workspace holds what the
// kernels write.
#include "runtime/kernels/cuda/Launch.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace apc::kernels::cuda {
namespace {

TEST(CudaLaunch, GridStrideCoversEveryElementOnce) {
  for (int64_t n : {int64_t(1), int64_t(255), int64_t(256), int64_t(257), int64_t(100000),
                    int64_t(kElementwiseThreads) * kMaxElementwiseBlocks + 3}) {
    Launch launch = elementwiseLaunch(n);
    ASSERT_GT(launch.blocks, 0u) << n;
    EXPECT_LE(launch.blocks, kMaxElementwiseBlocks) << n;
    EXPECT_EQ(launch.threads, kElementwiseThreads);
    int64_t threads = int64_t(launch.blocks) * launch.threads;
    // No idle block: the grid is not larger than the work needs.
    EXPECT_LT(int64_t(launch.blocks - 1) * launch.threads, n) << n;
    int64_t covered = 0;
    for (int64_t t = 0; t < threads; ++t)
      covered += gridStrideCount(launch, t, n);
    EXPECT_EQ(covered, n) << n;
  }
  // By enumeration on a small case: indices t, t + stride, ... hit each element once.
  Launch launch{3, 4};
  std::vector<int> hits(29, 0);
  for (int64_t t = 0; t < 12; ++t)
    for (int64_t i = t; i < 29; i += 12)
      ++hits[size_t(i)];
  for (int h : hits)
    EXPECT_EQ(h, 1);
  EXPECT_EQ(gridStrideCount(launch, 0, 29), 3);
  EXPECT_EQ(gridStrideCount(launch, 5, 29), 2);
  EXPECT_EQ(gridStrideCount(launch, 30, 29), 0);
}

TEST(CudaLaunch, NothingToDoLaunchesNothing) {
  EXPECT_EQ(elementwiseLaunch(0).blocks, 0u);
  EXPECT_EQ(elementwiseLaunch(-1).blocks, 0u);
  EXPECT_EQ(rowLaunch(0, 4096).blocks, 0u);
  EXPECT_EQ(rowLaunch(8, 0).blocks, 0u);
}

TEST(CudaLaunch, RowBlocksAreWarpMultiplesSizedToTheRow) {
  struct Case {
    int64_t width;
    uint32_t threads;
  } cases[] = {{1, 32}, {128, 32}, {129, 64}, {256, 64}, {4096, 1024}, {16384, 1024}};
  for (const Case &c : cases) {
    Launch launch = rowLaunch(7, c.width);
    EXPECT_EQ(launch.blocks, 7u);
    EXPECT_EQ(launch.threads, c.threads) << c.width;
    EXPECT_EQ(launch.threads % 32, 0u); // blockSum reduces whole warps
  }
}

TEST(CudaLaunch, RmsNormGradWorkspaceHoldsTheScalesAndPartials) {
  for (int64_t rows : {int64_t(1), int64_t(255), int64_t(256), int64_t(257), int64_t(8192)})
    for (int64_t width : {int64_t(1), int64_t(33), int64_t(4096)}) {
      uint64_t partials = rmsNormGradPartialsOffset(rows);
      EXPECT_GE(partials, uint64_t(rows) * 4);    // the f32 scales come first
      EXPECT_EQ(partials % 256, 0u);              // the doubles start aligned
      EXPECT_EQ(rowChunks(rows), (rows + 255) / 256);
      // The last chunk's last column ends inside the workspace.
      uint64_t end = partials + uint64_t((rowChunks(rows) - 1) * width + width) * 8;
      EXPECT_EQ(end, rmsNormGradWorkspace(rows, width));
      // Every column belongs to exactly one tile.
      EXPECT_GE(columnTiles(width) * kColumnTile, width);
      EXPECT_LT((columnTiles(width) - 1) * kColumnTile, width);
    }
}

} // namespace
} // namespace apc::kernels::cuda
