// Elementwise kernels on CUDA: add, mul, silu, silu_grad, sqrt, cast, fill. One
// grid-stride loop each (Launch.h), every element read before its output is written,
// so an output may be the memory of an input (in-place), as on the CPU; for cast that
// holds between dtypes of one width (f32 and i32, bf16 and f16).
//
// cast converts as the CPU backend, bit for bit (LayoutMath.h: the value as a double,
// rounded once to the target; float to integer truncates and saturates, NaN gives 0),
// for every pair of f32, bf16, f16, i32 and i64; same dtype is a copy. fill writes the
// value rounded once from the double attribute, computed on the host.
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/LayoutMath.h"

#include <string>
#include <type_traits>

namespace apc::kernels::cuda {
namespace {

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct Silu {
  __device__ float operator()(float v) const { return v / (1.0f + expf(-v)); }
};
struct SiluGrad { // (input, grad_output) -> grad_input
  __device__ float operator()(float v, float g) const {
    float s = 1.0f / (1.0f + expf(-v));
    return g * s * (1.0f + v * (1.0f - s));
  }
};

struct Sqrt { // IEEE sqrtf (nvcc's default -prec-sqrt=true): correctly rounded, as the CPU's
  __device__ float operator()(float v) const { return sqrtf(v); }
};

template <typename T, typename Op>
__global__ void unaryKernel(const T *x, T *y, int64_t n, Op op) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = Storage<T>::store(op(Storage<T>::load(x[i])));
}

template <typename T, typename Op>
__global__ void binaryKernel(const T *a, const T *b, T *c, int64_t n, Op op) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    c[i] = Storage<T>::store(op(Storage<T>::load(a[i]), Storage<T>::load(b[i])));
}

template <typename Op>
Status runUnary(const char *name, const KernelContext &context, const std::vector<TensorView> &in,
                const std::vector<TensorView> &out) {
  int64_t n = in[0].numElements();
  Launch launch = elementwiseLaunch(n);
  if (launch.blocks == 0)
    return Status::ok();
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    unaryKernel<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(
        in[0].as<const T>(), out[0].as<T>(), n, Op{});
  });
  return launched(name);
}

template <typename Op>
Status runBinary(const char *name, const KernelContext &context,
                 const std::vector<TensorView> &in, const std::vector<TensorView> &out) {
  int64_t n = in[0].numElements();
  Launch launch = elementwiseLaunch(n);
  if (launch.blocks == 0)
    return Status::ok();
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    binaryKernel<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(
        in[0].as<const T>(), in[1].as<const T>(), out[0].as<T>(), n, Op{});
  });
  return launched(name);
}

Status runAdd(const KernelContext &c, const std::vector<TensorView> &in,
              const std::vector<TensorView> &out, const Attributes &) {
  return runBinary<Add>("add", c, in, out);
}
Status runMul(const KernelContext &c, const std::vector<TensorView> &in,
              const std::vector<TensorView> &out, const Attributes &) {
  return runBinary<Mul>("mul", c, in, out);
}
Status runSilu(const KernelContext &c, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &) {
  return runUnary<Silu>("silu", c, in, out);
}
Status runSiluGrad(const KernelContext &c, const std::vector<TensorView> &in,
                   const std::vector<TensorView> &out, const Attributes &) {
  return runBinary<SiluGrad>("silu_grad", c, in, out);
}

Status runSqrt(const KernelContext &c, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &) {
  return runUnary<Sqrt>("sqrt", c, in, out);
}

// ---- cast ---------------------------------------------------------------------------

template <DType From, DType To>
__global__ void castKernel(const typename Raw<From>::T *x, typename Raw<To>::T *y, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = castElement<From, To>(x[i]);
}

// Calls f(std::integral_constant<DType, D>{}) with the dtype `dtype` (prepare checked it
// is one of the enum's).
template <typename F> void dispatchDType(DType dtype, F &&f) {
  switch (dtype) {
  case DType::F32: f(std::integral_constant<DType, DType::F32>{}); break;
  case DType::BF16: f(std::integral_constant<DType, DType::BF16>{}); break;
  case DType::F16: f(std::integral_constant<DType, DType::F16>{}); break;
  case DType::I32: f(std::integral_constant<DType, DType::I32>{}); break;
  case DType::I64: f(std::integral_constant<DType, DType::I64>{}); break;
  }
}

Status runCast(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &) {
  int64_t n = in[0].numElements();
  if (n == 0)
    return Status::ok();
  cudaStream_t stream = streamOf(context);
  if (in[0].dtype == out[0].dtype) {
    if (in[0].data == out[0].data)
      return Status::ok();
    cudaError_t e = cudaMemcpyAsync(out[0].data, in[0].data, size_t(n) * dtypeSize(in[0].dtype),
                                    cudaMemcpyDeviceToDevice, stream);
    if (e != cudaSuccess)
      return Status::error(std::string("cast: CUDA copy failed: ") + cudaGetErrorName(e) + ": " +
                           cudaGetErrorString(e));
    return Status::ok();
  }
  Launch launch = elementwiseLaunch(n);
  dispatchDType(in[0].dtype, [&](auto from) {
    dispatchDType(out[0].dtype, [&](auto to) {
      constexpr DType From = decltype(from)::value, To = decltype(to)::value;
      if constexpr (From != To)
        castKernel<From, To><<<launch.blocks, launch.threads, 0, stream>>>(
            in[0].as<const typename Raw<From>::T>(), out[0].as<typename Raw<To>::T>(), n);
    });
  });
  return launched("cast");
}

// ---- fill ---------------------------------------------------------------------------

template <typename T> __global__ void fillKernel(T *y, int64_t n, T bits) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = bits;
}

Status runFill(const KernelContext &context, const std::vector<TensorView> &,
               const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t n = out[0].numElements();
  Launch launch = elementwiseLaunch(n);
  if (launch.blocks == 0)
    return Status::ok();
  double value = attrs.getFloat("value");
  cudaStream_t stream = streamOf(context);
  switch (out[0].dtype) {
  case DType::BF16:
    fillKernel<<<launch.blocks, launch.threads, 0, stream>>>(out[0].as<uint16_t>(), n,
                                                             storeDouble<DType::BF16>(value));
    break;
  case DType::F16:
    fillKernel<<<launch.blocks, launch.threads, 0, stream>>>(out[0].as<uint16_t>(), n,
                                                             storeDouble<DType::F16>(value));
    break;
  default:
    fillKernel<<<launch.blocks, launch.threads, 0, stream>>>(out[0].as<float>(), n,
                                                             storeDouble<DType::F32>(value));
    break;
  }
  return launched("fill");
}

} // namespace

std::vector<KernelInfo> elementwiseKernels() {
  return {
      {"add", runAdd, nullptr},
      {"mul", runMul, nullptr},
      {"silu", runSilu, nullptr},
      {"silu_grad", runSiluGrad, nullptr},
      {"sqrt", runSqrt, nullptr},
      {"cast", runCast, nullptr},
      {"fill", runFill, nullptr},
  };
}

} // namespace apc::kernels::cuda
