// Launch arithmetic of the CUDA kernels, in plain C++ so that the CPU tests check it
// (test/unit/kernels/CudaLaunchTest.cpp) on machines without a GPU: grid sizes, the
// element ranges a grid-stride loop covers, a row reduction's block size. Included by
// the .cu files and by host code alike; no CUDA header.
#pragma once

#include <algorithm>
#include <cstdint>

namespace apc::kernels::cuda {

// A 1-D launch: `blocks` of `threads`. blocks == 0 means there is nothing to do (CUDA
// refuses an empty grid, so callers skip the launch).
struct Launch {
  uint32_t blocks = 0;
  uint32_t threads = 0;
};

// Enough resident blocks to fill an H100 (132 SMs x 16 blocks of 256) without a grid
// larger than the work: beyond it a grid-stride loop gives each thread more elements.
constexpr uint32_t kElementwiseThreads = 256;
constexpr uint32_t kMaxElementwiseBlocks = 132 * 16;

// The launch of a grid-stride loop over `n` elements.
inline Launch elementwiseLaunch(int64_t n) {
  if (n <= 0)
    return {};
  int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return {uint32_t(std::min<int64_t>(blocks, kMaxElementwiseBlocks)), kElementwiseThreads};
}

// How many elements thread `thread` of `launch` handles in a grid-stride loop over n:
// indices thread, thread + stride, ... below n (stride = blocks x threads). For tests.
inline int64_t gridStrideCount(const Launch &launch, int64_t thread, int64_t n) {
  int64_t stride = int64_t(launch.blocks) * launch.threads;
  return thread >= n ? 0 : (n - thread + stride - 1) / stride;
}

// A row-wise kernel (RMSNorm): one block per row, a power of two threads from 32 (one
// warp) to 1024, about one thread per 4 elements of the row, so short rows do not idle
// most of a block and long ones loop.
inline Launch rowLaunch(int64_t rows, int64_t width) {
  if (rows <= 0 || width <= 0)
    return {};
  uint32_t threads = 32;
  while (threads < 1024 && int64_t(threads) * 4 < width)
    threads *= 2;
  return {uint32_t(rows), threads};
}

// A column sum over rows (RMSNorm's weight gradient), deterministic as the CPU
// backend's: blocks of kColumnTile columns x kRowLanes row lanes each sum one chunk of
// kRowChunk rows in a fixed order into a partial (double) per chunk and column; a second
// kernel adds each column's partials in chunk order. No atomics, so the result does not
// depend on scheduling.
constexpr int64_t kColumnTile = 32;
constexpr int64_t kRowLanes = 8;
constexpr int64_t kRowChunk = 256;

inline int64_t rowChunks(int64_t rows) { return rows <= 0 ? 0 : (rows + kRowChunk - 1) / kRowChunk; }
inline int64_t columnTiles(int64_t width) {
  return width <= 0 ? 0 : (width + kColumnTile - 1) / kColumnTile;
}

// Workspace of rms_norm_grad: each row's 1/rms (f32), then the partial column sums
// (double, rowChunks x width), the second part starting on a 256-byte boundary.
inline uint64_t rmsNormGradPartialsOffset(int64_t rows) {
  return (uint64_t(rows) * 4 + 255) / 256 * 256;
}
inline uint64_t rmsNormGradWorkspace(int64_t rows, int64_t width) {
  return rmsNormGradPartialsOffset(rows) + uint64_t(rowChunks(rows)) * uint64_t(width) * 8;
}

} // namespace apc::kernels::cuda
