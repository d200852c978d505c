// Embedding lookup on CUDA: embedding (a row gather, one grid-stride loop over the
// result's elements) and embedding_grad (a stable radix sort of the positions by row,
// then one block per row summing its positions in position order in double: no float
// atomics, so results are bit-identical run to run). EmbeddingMath.h holds the
// arithmetic and the sort's indexing.
//
// Token ids outside the vocabulary (no vocab_start) are data errors, reported as the CPU
// backend reports them and before anything is written: a kernel records the first bad
// position with an integer atomicMin in the workspace, and the host reads it back with
// a synchronous copy (and then the id itself) before the main kernels launch. With
// vocab_start, ids of other blocks are not errors and nothing is synchronised.
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/EmbeddingMath.h"
#include "runtime/kernels/cuda/Families.h"

#include <climits>

namespace apc::kernels::cuda {
namespace {

// A double rounded once, to nearest even, to the storage type (the CPU's storeDouble).
template <typename T> __device__ T storeDouble(double v);
template <> __device__ float storeDouble<float>(double v) { return __double2float_rn(v); }
template <> __device__ __nv_bfloat16 storeDouble<__nv_bfloat16>(double v) {
  return __double2bfloat16(v);
}
template <> __device__ __half storeDouble<__half>(double v) { return __double2half(v); }

template <typename F> void dispatchIdType(DType dtype, F &&f) {
  if (dtype == DType::I32)
    f(int32_t{});
  else
    f(int64_t{});
}

Status cudaFailure(const char *kernel, const char *what, cudaError_t e) {
  return Status::error(std::string(kernel) + ": " + what + ": " + cudaGetErrorName(e) + ": " +
                       cudaGetErrorString(e));
}

Status refuseWorkspace(const char *kernel, uint64_t need, uint64_t given) {
  return Status::error(std::string(kernel) + " needs " + std::to_string(need) +
                       " bytes of workspace; the backend gave " + std::to_string(given));
}

// ---- the ids' check -----------------------------------------------------------------

template <typename Id>
__global__ void firstBadIdKernel(const Id *ids, int64_t n, int64_t vocab,
                                 unsigned long long *first) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < n; p += stride)
    if (idOutside(int64_t(ids[p]), vocab))
      atomicMin(first, (unsigned long long)p);
}

// The CPU's error for the first id outside [0, vocab), or ok. Waits for the stream.
template <typename Id>
Status checkIds(const char *kernel, const TensorView &ids, int64_t vocab,
                unsigned long long *first, cudaStream_t stream) {
  int64_t n = ids.numElements();
  const Id *data = ids.as<const Id>();
  cudaError_t e = cudaMemsetAsync(first, 0xFF, sizeof *first, stream); // kNoBadPosition
  if (e != cudaSuccess)
    return cudaFailure(kernel, "clearing the bad-id flag failed", e);
  Launch launch = elementwiseLaunch(n);
  firstBadIdKernel<<<launch.blocks, launch.threads, 0, stream>>>(data, n, vocab, first);
  APC_RETURN_IF_ERROR(launched(kernel));
  unsigned long long bad = kNoBadPosition;
  e = cudaMemcpyAsync(&bad, first, sizeof bad, cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess)
    return cudaFailure(kernel, "checking the token ids failed", e);
  if (bad == kNoBadPosition)
    return Status::ok();
  Id id{};
  e = cudaMemcpyAsync(&id, data + bad, sizeof id, cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess)
    return cudaFailure(kernel, "reading a bad token id failed", e);
  return Status::error(badIdMessage(kernel, int64_t(id), ids.shape, int64_t(bad), vocab));
}

// ---- embedding ----------------------------------------------------------------------

template <typename T, typename Id>
__global__ void embeddingKernel(const T *table, const Id *ids, T *out, int64_t total,
                                int64_t hidden, int64_t start, int64_t rows) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t row = embeddingRow(int64_t(ids[i / hidden]), start, rows);
    int64_t source = embeddingSource(i, hidden, row);
    out[i] = source >= 0 ? table[source] : Storage<T>::store(0.0f);
  }
}

uint64_t embeddingWorkspaceOf(const std::vector<TensorView> &, const std::vector<TensorView> &,
                              const Attributes &attrs) {
  return attrs.has("vocab_start") ? 0 : sizeof(unsigned long long);
}

Status runEmbedding(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &weight = in[0], &ids = in[1];
  int64_t vocab = weight.shape[0], hidden = weight.shape[1], n = ids.numElements();
  if (n == 0)
    return Status::ok();
  bool block = attrs.has("vocab_start");
  uint64_t need = embeddingWorkspaceOf(in, out, attrs);
  if (context.workspaceBytes < need || (need && !context.workspace))
    return refuseWorkspace("embedding", need, context.workspaceBytes);
  cudaStream_t stream = streamOf(context);
  Status status = Status::ok();
  dispatchIdType(ids.dtype, [&](auto idType) {
    using Id = decltype(idType);
    if (!block) {
      status = checkIds<Id>("embedding", ids, vocab,
                            static_cast<unsigned long long *>(context.workspace), stream);
      if (!status)
        return;
    }
    Launch launch = elementwiseLaunch(n * hidden);
    if (launch.blocks == 0)
      return;
    dispatchFloat(weight.dtype, [&](auto zero) {
      using T = decltype(zero);
      embeddingKernel<<<launch.blocks, launch.threads, 0, stream>>>(
          weight.as<const T>(), ids.as<const Id>(), out[0].as<T>(), n * hidden, hidden,
          attrs.getInt("vocab_start", 0), vocab);
    });
    status = launched("embedding");
  });
  return status;
}

// ---- embedding_grad: the sort -------------------------------------------------------

template <typename Id>
__global__ void sortKeysKernel(const Id *ids, int64_t n, int64_t start, int64_t rows,
                               uint32_t *keys, uint32_t *positions) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < n; p += stride) {
    keys[p] = sortKey(int64_t(ids[p]), start, rows);
    positions[p] = uint32_t(p);
  }
}

// Block = tile of kSortTile positions: the tile's digits into shared memory; returns
// how many positions the tile has.
__device__ int64_t loadTileDigits(const uint32_t *keys, int64_t n, int pass, uint32_t *digits) {
  int64_t begin = int64_t(blockIdx.x) * kSortTile, count = n - begin;
  count = count < kSortTile ? count : kSortTile;
  digits[threadIdx.x] = int64_t(threadIdx.x) < count ? radixDigit(keys[begin + threadIdx.x], pass)
                                                      : kRadixDigits;
  __syncthreads();
  return count;
}

__global__ void tileHistogramKernel(const uint32_t *keys, int64_t n, int pass, int64_t tiles,
                                    uint32_t *histograms) {
  __shared__ uint32_t digits[kSortTile];
  int64_t count = loadTileDigits(keys, n, pass, digits);
  for (uint32_t d = threadIdx.x; d < kRadixDigits; d += blockDim.x)
    histograms[histogramIndex(d, blockIdx.x, tiles)] = tileDigitCount(digits, count, d);
}

// One block of kScanThreads: the exclusive scan of the m histogram counts, in place.
__global__ void exclusiveScanKernel(uint32_t *counts, int64_t m) {
  __shared__ uint32_t sums[kScanThreads];
  Range r = scanRange(threadIdx.x, kScanThreads, m);
  uint32_t sum = 0;
  for (int64_t k = r.begin; k < r.end; ++k)
    sum += counts[k];
  sums[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint32_t carry = 0;
    for (uint32_t t = 0; t < kScanThreads; ++t) {
      uint32_t v = sums[t];
      sums[t] = carry;
      carry += v;
    }
  }
  __syncthreads();
  uint32_t carry = sums[threadIdx.x];
  for (int64_t k = r.begin; k < r.end; ++k) {
    uint32_t v = counts[k];
    counts[k] = carry;
    carry += v;
  }
}

__global__ void tileScatterKernel(const uint32_t *keys, const uint32_t *positions, int64_t n,
                                  int pass, int64_t tiles, const uint32_t *offsets,
                                  uint32_t *keysOut, uint32_t *positionsOut) {
  __shared__ uint32_t digits[kSortTile];
  int64_t count = loadTileDigits(keys, n, pass, digits);
  if (int64_t(threadIdx.x) >= count)
    return;
  int64_t p = int64_t(blockIdx.x) * kSortTile + threadIdx.x;
  int64_t to = offsets[histogramIndex(digits[threadIdx.x], blockIdx.x, tiles)] +
               tileRank(digits, threadIdx.x);
  keysOut[to] = keys[p];
  positionsOut[to] = positions[p];
}

// ---- embedding_grad: the rows -------------------------------------------------------

// Block v: row v's positions are where the sorted keys equal v.
template <typename T>
__global__ void __launch_bounds__(1024)
    rowGradientKernel(const T *dy, const uint32_t *keys, const uint32_t *positions,
                                  int64_t n, int64_t hidden, T *dw) {
  __shared__ int64_t range[2];
  uint32_t row = blockIdx.x;
  if (threadIdx.x < 2)
    range[threadIdx.x] = lowerBound(keys, n, row + threadIdx.x);
  __syncthreads();
  auto load = [dy](int64_t i) { return Storage<T>::load(dy[i]); };
  for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x)
    dw[int64_t(row) * hidden + h] =
        storeDouble<T>(rowGradient(load, positions, range[0], range[1], hidden, h));
}

uint64_t embeddingGradWorkspaceOf(const std::vector<TensorView> &in,
                                  const std::vector<TensorView> &, const Attributes &) {
  return embeddingGradLayout(in[0].numElements()).bytes;
}

Status runEmbeddingGrad(const KernelContext &context, const std::vector<TensorView> &in,
                        const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &ids = in[0], &grad = in[1], &gradWeight = out[0];
  int64_t vocab = gradWeight.shape[0], hidden = gradWeight.shape[1], n = ids.numElements();
  Launch rows = rowLaunch(vocab, hidden);
  if (n == 0 && rows.blocks == 0)
    return Status::ok();
  if (n >= int64_t(UINT32_MAX) || vocab > int64_t(INT32_MAX))
    return Status::error("embedding_grad: " + std::to_string(n) + " positions or " +
                         std::to_string(vocab) +
                         " rows are more than the CUDA kernel handles (2^32 - 1, 2^31 - 1)");
  EmbeddingGradLayout layout = embeddingGradLayout(n);
  if (context.workspaceBytes < layout.bytes || !context.workspace)
    return refuseWorkspace("embedding_grad", layout.bytes, context.workspaceBytes);
  char *ws = static_cast<char *>(context.workspace);
  auto part = [ws](uint64_t offset) { return reinterpret_cast<uint32_t *>(ws + offset); };
  uint32_t *keys[2] = {part(layout.keys[0]), part(layout.keys[1])};
  uint32_t *positions[2] = {part(layout.positions[0]), part(layout.positions[1])};
  uint32_t *histograms = part(layout.histograms);
  bool block = attrs.has("vocab_start");
  int64_t start = attrs.getInt("vocab_start", 0);
  cudaStream_t stream = streamOf(context);
  Status status = Status::ok();
  int sorted = 0; // which ping-pong buffer holds the sorted keys
  if (n > 0)
    dispatchIdType(ids.dtype, [&](auto idType) {
      using Id = decltype(idType);
      if (!block) {
        status = checkIds<Id>("embedding_grad", ids, vocab,
                              reinterpret_cast<unsigned long long *>(ws), stream);
        if (!status)
          return;
      }
      Launch each = elementwiseLaunch(n);
      sortKeysKernel<<<each.blocks, each.threads, 0, stream>>>(ids.as<const Id>(), n, start,
                                                               vocab, keys[0], positions[0]);
      int64_t tiles = sortTiles(n);
      for (int pass = 0; pass < radixPasses(vocab); ++pass, sorted ^= 1) {
        tileHistogramKernel<<<unsigned(tiles), unsigned(kSortTile), 0, stream>>>(
            keys[sorted], n, pass, tiles, histograms);
        exclusiveScanKernel<<<1, kScanThreads, 0, stream>>>(histograms, tiles * kRadixDigits);
        tileScatterKernel<<<unsigned(tiles), unsigned(kSortTile), 0, stream>>>(
            keys[sorted], positions[sorted], n, pass, tiles, histograms, keys[sorted ^ 1],
            positions[sorted ^ 1]);
      }
      status = launched("embedding_grad");
    });
  if (!status || rows.blocks == 0)
    return status;
  dispatchFloat(grad.dtype, [&](auto zero) {
    using T = decltype(zero);
    rowGradientKernel<<<rows.blocks, rows.threads, 0, stream>>>(
        grad.as<const T>(), keys[sorted], positions[sorted], n, hidden, gradWeight.as<T>());
  });
  return launched("embedding_grad");
}

} // namespace

std::vector<KernelInfo> embeddingKernels() {
  return {
      {"embedding", runEmbedding, nullptr, embeddingWorkspaceOf},
      {"embedding_grad", runEmbeddingGrad, nullptr, embeddingGradWorkspaceOf},
  };
}

} // namespace apc::kernels::cuda
