// RMSNorm on CUDA: rms_norm (one block per row) and rms_norm_grad (the row pass for the
// input gradient, then a deterministic column sum for the weight's: Launch.h). Sums of
// squares and dot products accumulate in f32 per thread and are combined in a fixed
// tree; the row scale is taken in double, as the CPU backend's.
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/LayoutMath.h"

#include <type_traits>

namespace apc::kernels::cuda {
namespace {

// The sum of `v` over the block (blockDim.x a power of two from 32 to 1024), in a fixed
// order; every thread gets it. `shared` holds 32 floats.
__device__ float blockSum(float v, float *shared) {
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads(); // `shared` may still be read from a previous call
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0f;
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__global__ void __launch_bounds__(1024)
    rmsNormKernel(const T *x, const T *w, T *y, int64_t width, double eps) {
  __shared__ float shared[32];
  const T *xr = x + int64_t(blockIdx.x) * width;
  T *yr = y + int64_t(blockIdx.x) * width;
  float squares = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float v = Storage<T>::load(xr[i]);
    squares += v * v;
  }
  squares = blockSum(squares, shared);
  float inv = float(1.0 / sqrt(double(squares) / double(width) + eps));
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    // The normalised value is rounded to the input dtype before the weight scales it.
    float normalised = Storage<T>::load(Storage<T>::store(Storage<T>::load(xr[i]) * inv));
    yr[i] = Storage<T>::store(Storage<T>::load(w[i]) * normalised);
  }
}

// Per row: r = 1/rms, g = dy w, dx = r g - r^3 mean(g x) x; stores r for the column pass.
template <typename T>
__global__ void __launch_bounds__(1024)
    rmsNormGradRows(const T *x, const T *w, const T *dy, T *dx, float *invs,
                    int64_t width, double eps) {
  __shared__ float shared[32];
  int64_t row = blockIdx.x;
  const T *xr = x + row * width, *dyr = dy + row * width;
  float squares = 0, gx = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float v = Storage<T>::load(xr[i]);
    squares += v * v;
    gx += Storage<T>::load(dyr[i]) * Storage<T>::load(w[i]) * v;
  }
  squares = blockSum(squares, shared);
  gx = blockSum(gx, shared);
  double inv = 1.0 / sqrt(double(squares) / double(width) + eps);
  if (threadIdx.x == 0)
    invs[row] = float(inv);
  float r = float(inv), c = float(inv * inv * inv * double(gx) / double(width));
  T *dxr = dx + row * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float g = Storage<T>::load(dyr[i]) * Storage<T>::load(w[i]);
    dxr[i] = Storage<T>::store(r * g - c * Storage<T>::load(xr[i]));
  }
}

// partials[chunk][col] = sum over the chunk's rows of dy x r, lanes combined in order.
template <typename T>
__global__ void rmsNormGradColumns(const T *x, const T *dy, const float *invs, double *partials,
                                   int64_t rows, int64_t width) {
  __shared__ double lanes[kRowLanes][kColumnTile];
  int64_t col = int64_t(blockIdx.x) * kColumnTile + threadIdx.x;
  int64_t begin = int64_t(blockIdx.y) * kRowChunk;
  int64_t end = begin + kRowChunk < rows ? begin + kRowChunk : rows;
  double acc = 0;
  if (col < width)
    for (int64_t row = begin + threadIdx.y; row < end; row += kRowLanes)
      acc += double(Storage<T>::load(dy[row * width + col])) *
             (double(Storage<T>::load(x[row * width + col])) * double(invs[row]));
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < width) {
    double sum = 0;
    for (int lane = 0; lane < kRowLanes; ++lane)
      sum += lanes[lane][threadIdx.x];
    partials[int64_t(blockIdx.y) * width + col] = sum;
  }
}

template <typename T>
__global__ void rmsNormGradFinish(const double *partials, T *dw, int64_t chunks, int64_t width) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < width; col += stride) {
    double sum = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      sum += partials[chunk * width + col];
    // One rounding of the double, as the CPU's storeDouble: to nearest for f32; for
    // bf16/f16 through f32 rounded to odd, then to nearest.
    if constexpr (std::is_same_v<T, float>)
      dw[col] = float(sum);
    else
      dw[col] = Storage<T>::store(toFloatRoundToOddHD(sum));
  }
}

int64_t rowsOf(const TensorView &v) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < v.shape.size(); ++d)
    rows *= v.shape[d];
  return rows;
}

Status runRmsNorm(const KernelContext &context, const std::vector<TensorView> &in,
                  const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t width = in[0].shape.back(), rows = rowsOf(in[0]);
  Launch launch = rowLaunch(rows, width);
  if (launch.blocks == 0)
    return Status::ok();
  double eps = attrs.getFloat("epsilon");
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    rmsNormKernel<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(
        in[0].as<const T>(), in[1].as<const T>(), out[0].as<T>(), width, eps);
  });
  return launched("rms_norm");
}

uint64_t rmsNormGradWorkspaceOf(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                                const Attributes &) {
  return rmsNormGradWorkspace(rowsOf(in[0]), in[0].shape.back());
}

// At load: the column pass's grid holds up to 65535 chunks of rows.
Status rmsNormGradLimits(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                         const Attributes &) {
  int64_t rows = rowsOf(in[0]);
  if (rowChunks(rows) > 65535 || rows > INT32_MAX)
    return Status::error("rms_norm_grad: " + std::to_string(rows) +
                         " rows are more than the CUDA kernel handles (16776960)");
  return Status::ok();
}

Status runRmsNormGrad(const KernelContext &context, const std::vector<TensorView> &in,
                      const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t width = in[0].shape.back(), rows = rowsOf(in[0]);
  Launch launch = rowLaunch(rows, width);
  if (launch.blocks == 0)
    return Status::ok();
  uint64_t need = rmsNormGradWorkspace(rows, width);
  if (context.workspaceBytes < need || !context.workspace)
    return Status::error("rms_norm_grad needs " + std::to_string(need) +
                         " bytes of workspace; the backend gave " +
                         std::to_string(context.workspaceBytes));
  auto *invs = static_cast<float *>(context.workspace);
  auto *partials = reinterpret_cast<double *>(static_cast<char *>(context.workspace) +
                                              rmsNormGradPartialsOffset(rows));
  double eps = attrs.getFloat("epsilon");
  int64_t chunks = rowChunks(rows);
  if (chunks > 65535 || rows > INT32_MAX) // a grid's y and x limits
    return Status::error("rms_norm_grad: " + std::to_string(rows) +
                         " rows are more than the CUDA kernel handles (16776960)");
  cudaStream_t stream = streamOf(context);
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    const T *x = in[0].as<const T>(), *w = in[1].as<const T>(), *dy = in[2].as<const T>();
    rmsNormGradRows<<<launch.blocks, launch.threads, 0, stream>>>(x, w, dy, out[0].as<T>(), invs,
                                                                  width, eps);
    dim3 tiles{unsigned(columnTiles(width)), unsigned(chunks)};
    dim3 lanes{unsigned(kColumnTile), unsigned(kRowLanes)};
    rmsNormGradColumns<<<tiles, lanes, 0, stream>>>(x, dy, invs, partials, rows, width);
    Launch finish = elementwiseLaunch(width);
    rmsNormGradFinish<<<finish.blocks, finish.threads, 0, stream>>>(partials, out[1].as<T>(),
                                                                     chunks, width);
  });
  return launched("rms_norm_grad");
}

} // namespace

std::vector<KernelInfo> normKernels() {
  return {
      {"rms_norm", runRmsNorm, nullptr},
      {"rms_norm_grad", runRmsNormGrad, rmsNormGradLimits, rmsNormGradWorkspaceOf},
  };
}

} // namespace apc::kernels::cuda
