// Layout kernels on CUDA: transpose, reshape, slice, reduce_sum, broadcast, shift_labels.
// Each has the CPU backend's semantics (runtime/kernels/cpu/Layout.cpp, Loss.cpp for
// shift_labels); the index arithmetic, and the shape simplification it runs on, is in
// LayoutMath.h, where the CPU tests check it.
//
// - transpose: moves element bits (2, 4 or 8 bytes, any dtype). When the innermost dim
//   stays innermost, a grid-stride gather (both sides read and write runs); otherwise
//   32 x 32 tiles through shared memory, read along the input's innermost dim and
//   written along the output's.
// - reshape: plans alias a reshape's result to its input, so usually nothing; else
//   stream-ordered copies (memmove's semantics when the buffers overlap).
// - slice: a grid-stride copy of the blocks in the widest word (up to 16 bytes) that
//   the lengths and addresses allow.
// - reduce_sum: sums in double, stored rounded once, as the CPU's. Innermost dims
//   reduced: one block per output, threads over the reduced elements, a fixed tree;
//   innermost kept: blocks of 32 columns x 8 to 32 lanes, lanes added in lane order.
//   The order depends on the shapes only, so every run gives the same bits.
// - broadcast: a grid-stride gather.
// - shift_labels: one block per row, in chunks read before written, so the result may
//   be the labels' memory (in place), as on the CPU.
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/LayoutMath.h"

#include <string>
#include <type_traits>

namespace apc::kernels::cuda {
namespace {

// Blocks of a launch that loops over `items` (tiles, rows, outputs) by grid stride.
constexpr int64_t kMaxLayoutBlocks = 1 << 20;
uint32_t gridFor(int64_t items) { return uint32_t(std::min<int64_t>(items, kMaxLayoutBlocks)); }

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status copied(const char *kernel, cudaError_t e) {
  if (e == cudaSuccess)
    return Status::ok();
  return Status::error(std::string(kernel) + ": CUDA copy failed: " + cudaGetErrorName(e) + ": " +
                       cudaGetErrorString(e));
}

// Calls f(T{}) with an unsigned type of the element's width: these kernels move bits.
template <typename F> void dispatchWidth(size_t bytes, F &&f) {
  switch (bytes) {
  case 2: f(uint16_t{}); break;
  case 4: f(uint32_t{}); break;
  default: f(uint64_t{}); break;
  }
}

// Calls f(std::integral_constant<DType, D>{}) for a float dtype D.
template <typename F> void dispatchFloatDType(DType dtype, F &&f) {
  switch (dtype) {
  case DType::BF16: f(std::integral_constant<DType, DType::BF16>{}); break;
  case DType::F16: f(std::integral_constant<DType, DType::F16>{}); break;
  default: f(std::integral_constant<DType, DType::F32>{}); break;
  }
}

// ---- transpose ----------------------------------------------------------------------

template <typename T>
__global__ void transposeGather(const T *x, T *y, int64_t n, TransposeMap map) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = x[transposeSource(map, i)];
}

template <typename T> __global__ void transposeTiles(const T *x, T *y, TileTransposeMap map) {
  __shared__ T tile[kTransposeTile][kTransposeTile + 1]; // +1: no bank conflicts on columns
  for (int64_t t = blockIdx.x; t < map.tiles; t += gridDim.x) {
    TileOrigin o = tileOrigin(map, t);
    int64_t b = o.b0 + threadIdx.x;
    for (int64_t r = threadIdx.y; r < kTransposeTile; r += kTransposeTileRows) {
      int64_t a = o.a0 + r;
      if (a < map.sizeA && b < map.sizeB)
        tile[r][threadIdx.x] = x[o.inBase + a * map.inStrideA + b];
    }
    __syncthreads();
    int64_t a = o.a0 + threadIdx.x;
    for (int64_t r = threadIdx.y; r < kTransposeTile; r += kTransposeTileRows) {
      int64_t bOut = o.b0 + r;
      if (a < map.sizeA && bOut < map.sizeB)
        y[o.outBase + bOut * map.outStrideB + a] = tile[threadIdx.x][r];
    }
    __syncthreads(); // the next tile reuses the shared memory
  }
}

// At load (after the CPU's prepare): the merged dims the CUDA kernels index with.
Status transposeLimits(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                       const Attributes &attrs) {
  SimpleTranspose t = simplifyTranspose(in[0].shape, attrs.getInts("permutation"));
  if (t.perm.size() > size_t(kMaxLayoutRank))
    return Status::error("transpose: input " + shapeText(in[0].shape) + " keeps " +
                         std::to_string(t.perm.size()) +
                         " dims after merging those that move together; the CUDA kernel "
                         "handles up to " +
                         std::to_string(kMaxLayoutRank));
  return Status::ok();
}
Status reduceSumLimits(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                       const Attributes &attrs) {
  ReduceMap map;
  if (in[0].numElements() > 0 && !reduceMap(in[0].shape, attrs.getInts("dims"), map))
    return Status::error("reduce_sum: input " + shapeText(in[0].shape) + " keeps more than " +
                         std::to_string(kMaxLayoutRank) +
                         " kept or reduced groups of dims after merging; the CUDA kernel "
                         "handles up to that");
  return Status::ok();
}
Status broadcastLimits(const std::vector<TensorView> &, const std::vector<TensorView> &out,
                       const Attributes &attrs) {
  BroadcastMap map;
  if (out[0].numElements() > 0 && !broadcastMap(out[0].shape, attrs.getInts("dims"), map))
    return Status::error("broadcast: result " + shapeText(out[0].shape) +
                         " keeps more than " + std::to_string(kMaxLayoutRank) +
                         " groups of dims after merging; the CUDA kernel handles up to that");
  return Status::ok();
}

Status runTranspose(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t n = out[0].numElements();
  if (n == 0)
    return Status::ok();
  SimpleTranspose t = simplifyTranspose(in[0].shape, attrs.getInts("permutation"));
  if (t.perm.size() > size_t(kMaxLayoutRank))
    return Status::error("transpose: input " + shapeText(in[0].shape) + " keeps " +
                         std::to_string(t.perm.size()) +
                         " dims after merging those that move together; the CUDA kernel "
                         "handles up to " +
                         std::to_string(kMaxLayoutRank));
  cudaStream_t stream = streamOf(context);
  size_t width = dtypeSize(in[0].dtype);
  if (t.perm.size() == 1) // the order is unchanged: a copy
    return in[0].data == out[0].data
               ? Status::ok()
               : copied("transpose", cudaMemcpyAsync(out[0].data, in[0].data, size_t(n) * width,
                                                     cudaMemcpyDeviceToDevice, stream));
  dispatchWidth(width, [&](auto zero) {
    using T = decltype(zero);
    if (useTiledTranspose(t)) {
      TileTransposeMap map = tileTransposeMap(t);
      dim3 threads{unsigned(kTransposeTile), unsigned(kTransposeTileRows)};
      transposeTiles<<<gridFor(map.tiles), threads, 0, stream>>>(in[0].as<const T>(),
                                                                 out[0].as<T>(), map);
    } else {
      Launch launch = elementwiseLaunch(n);
      transposeGather<<<launch.blocks, launch.threads, 0, stream>>>(
          in[0].as<const T>(), out[0].as<T>(), n, transposeMap(t));
    }
  });
  return launched("transpose");
}

// ---- reshape ------------------------------------------------------------------------

Status runReshape(const KernelContext &context, const std::vector<TensorView> &in,
                  const std::vector<TensorView> &out, const Attributes &) {
  int64_t bytes = in[0].numElements() * int64_t(dtypeSize(in[0].dtype));
  CopyPlan plan = copyPlan(uintptr_t(out[0].data), uintptr_t(in[0].data), bytes);
  auto *dst = static_cast<char *>(out[0].data);
  const auto *src = static_cast<const char *>(in[0].data);
  for (int64_t k = 0; k < plan.chunks; ++k) {
    auto [offset, length] = copyChunk(plan, k);
    APC_RETURN_IF_ERROR(copied("reshape", cudaMemcpyAsync(dst + offset, src + offset,
                                                          size_t(length),
                                                          cudaMemcpyDeviceToDevice,
                                                          streamOf(context))));
  }
  return Status::ok();
}

// ---- slice --------------------------------------------------------------------------

template <typename W> __global__ void sliceWords(const W *x, W *y, SliceMap map) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < map.words; i += stride)
    y[i] = x[sliceSource(map, i)];
}

template <typename W>
void launchSlice(const TensorView &x, const TensorView &y, const SliceMap &map,
                 cudaStream_t stream) {
  Launch launch = elementwiseLaunch(map.words);
  sliceWords<<<launch.blocks, launch.threads, 0, stream>>>(x.as<const W>(), y.as<W>(), map);
}

Status runSlice(const KernelContext &context, const std::vector<TensorView> &in,
                const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t dim = attrs.getInt("dim"), offset = attrs.getInt("offset");
  SliceMap map = sliceMap(in[0].shape, int64_t(dtypeSize(in[0].dtype)), dim, offset,
                          out[0].shape[size_t(dim)], uintptr_t(out[0].data),
                          uintptr_t(in[0].data));
  if (map.words == 0)
    return Status::ok();
  cudaStream_t stream = streamOf(context);
  switch (map.wordBytes) {
  case 16: launchSlice<uint4>(in[0], out[0], map, stream); break;
  case 8: launchSlice<uint2>(in[0], out[0], map, stream); break;
  case 4: launchSlice<uint32_t>(in[0], out[0], map, stream); break;
  case 2: launchSlice<uint16_t>(in[0], out[0], map, stream); break;
  default: launchSlice<uint8_t>(in[0], out[0], map, stream); break;
  }
  return launched("slice");
}

// ---- reduce_sum ---------------------------------------------------------------------

// The sum of `v` over the block (blockDim.x a power of two from 32 to 1024) in a fixed
// order; every thread gets it. `shared` holds 32 doubles.
__device__ double blockSumDouble(double v, double *shared) {
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads(); // `shared` may still be read from the previous output
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0;
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The innermost group reduced: one block per output (grid stride over outputs).
template <DType D>
__global__ void __launch_bounds__(1024)
    reduceRows(const typename Raw<D>::T *x, typename Raw<D>::T *y, ReduceMap map) {
  __shared__ double shared[32];
  int64_t length = map.reducedCount * map.inner;
  for (int64_t o = blockIdx.x; o < map.keptCount; o += gridDim.x) {
    int64_t base = keptOffset(map, o);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < length; j += blockDim.x)
      sum += loadAsDouble<D>(x[innerReducedSource(map, base, j)]);
    sum = blockSumDouble(sum, shared);
    if (threadIdx.x == 0)
      y[o] = storeDouble<D>(sum);
  }
}

// The innermost group kept: tiles of 32 columns of one kept offset, blockDim.y lanes.
template <DType D>
__global__ void reduceColumns(const typename Raw<D>::T *x, typename Raw<D>::T *y, ReduceMap map,
                              int64_t columnTiles) {
  __shared__ double lanes[kMaxReduceLanes][kReduceColumns];
  int64_t tiles = map.keptCount * columnTiles;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    int64_t o = t / columnTiles, c = (t % columnTiles) * kReduceColumns + threadIdx.x;
    double sum = 0;
    if (c < map.inner) {
      int64_t base = keptOffset(map, o) + c;
      for (int64_t r = threadIdx.y; r < map.reducedCount; r += blockDim.y)
        sum += loadAsDouble<D>(x[base + reducedOffset(map, r)]);
    }
    lanes[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < map.inner) {
      double total = 0;
      for (unsigned lane = 0; lane < blockDim.y; ++lane)
        total += lanes[lane][threadIdx.x];
      y[o * map.inner + c] = storeDouble<D>(total);
    }
    __syncthreads(); // the next tile reuses `lanes`
  }
}

Status runReduceSum(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t outCount = out[0].numElements();
  if (outCount == 0)
    return Status::ok();
  cudaStream_t stream = streamOf(context);
  if (in[0].numElements() == 0) // an empty reduction: zeros (+0 in every float dtype)
    return copied("reduce_sum",
                  cudaMemsetAsync(out[0].data, 0, size_t(outCount) * dtypeSize(out[0].dtype),
                                  stream));
  ReduceMap map;
  if (!reduceMap(in[0].shape, attrs.getInts("dims"), map))
    return Status::error("reduce_sum: input " + shapeText(in[0].shape) + " keeps more than " +
                         std::to_string(kMaxLayoutRank) +
                         " kept or reduced groups of dims after merging; the CUDA kernel "
                         "handles up to that");
  dispatchFloatDType(in[0].dtype, [&](auto tag) {
    constexpr DType D = decltype(tag)::value;
    using T = typename Raw<D>::T;
    const T *x = in[0].as<const T>();
    T *y = out[0].as<T>();
    if (map.innerReduced) {
      Launch launch = rowLaunch(map.keptCount, map.reducedCount * map.inner);
      reduceRows<D><<<gridFor(map.keptCount), launch.threads, 0, stream>>>(x, y, map);
    } else {
      int64_t columnTiles = (map.inner + kReduceColumns - 1) / kReduceColumns;
      dim3 threads{unsigned(kReduceColumns), unsigned(columnReduceLanes(map))};
      reduceColumns<D><<<gridFor(columnReduceTiles(map)), threads, 0, stream>>>(x, y, map,
                                                                                columnTiles);
    }
  });
  return launched("reduce_sum");
}

// ---- broadcast ----------------------------------------------------------------------

template <typename T>
__global__ void broadcastGather(const T *x, T *y, int64_t n, BroadcastMap map) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = x[broadcastSource(map, i)];
}

Status runBroadcast(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t n = out[0].numElements();
  if (n == 0)
    return Status::ok();
  BroadcastMap map;
  if (!broadcastMap(out[0].shape, attrs.getInts("dims"), map))
    return Status::error("broadcast: result " + shapeText(out[0].shape) +
                         " keeps more than " + std::to_string(kMaxLayoutRank) +
                         " groups of dims after merging; the CUDA kernel handles up to that");
  Launch launch = elementwiseLaunch(n);
  dispatchWidth(dtypeSize(in[0].dtype), [&](auto zero) {
    using T = decltype(zero);
    broadcastGather<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(
        in[0].as<const T>(), out[0].as<T>(), n, map);
  });
  return launched("broadcast");
}

// ---- shift_labels -------------------------------------------------------------------

// One block per row (grid stride over rows); the row in chunks of blockDim.x positions,
// each chunk's reads before the barrier and its writes after (LayoutMath.h).
template <typename Id>
__global__ void __launch_bounds__(1024)
    shiftLabelsRows(const Id *labels, Id *result, int64_t rows, int64_t seq,
                                Id ignore) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Id *from = labels + r * seq;
    Id *to = result + r * seq;
    for (int64_t start = 0; start < seq; start += blockDim.x) {
      int64_t t = start + threadIdx.x;
      Id v = ignore;
      if (t < seq) {
        int64_t source = shiftSource(t, seq);
        if (source >= 0)
          v = from[source];
      }
      __syncthreads(); // every read of the chunk before any write
      if (t < seq)
        to[t] = v;
    }
  }
}

Status runShiftLabels(const KernelContext &context, const std::vector<TensorView> &in,
                      const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t n = in[0].numElements();
  if (n == 0)
    return Status::ok();
  int64_t seq = in[0].shape.back(), rows = n / seq;
  int64_t ignore = attrs.getInt("ignore_index", -100);
  Launch launch = rowLaunch(rows, seq);
  cudaStream_t stream = streamOf(context);
  if (in[0].dtype == DType::I32)
    shiftLabelsRows<<<gridFor(rows), launch.threads, 0, stream>>>(
        in[0].as<const int32_t>(), out[0].as<int32_t>(), rows, seq, int32_t(ignore));
  else
    shiftLabelsRows<<<gridFor(rows), launch.threads, 0, stream>>>(
        in[0].as<const int64_t>(), out[0].as<int64_t>(), rows, seq, int64_t(ignore));
  return launched("shift_labels");
}

} // namespace

std::vector<KernelInfo> layoutKernels() {
  return {
      {"transpose", runTranspose, transposeLimits},
      {"reshape", runReshape, nullptr},
      {"slice", runSlice, nullptr},
      {"reduce_sum", runReduceSum, reduceSumLimits},
      {"broadcast", runBroadcast, broadcastLimits},
      {"shift_labels", runShiftLabels, nullptr},
  };
}

} // namespace apc::kernels::cuda
