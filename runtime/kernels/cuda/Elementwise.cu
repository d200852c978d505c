// Elementwise kernels on CUDA: add, mul, silu, silu_grad. One grid-stride loop each
// (Launch.h), every element read before its output is written, so an output may be
// the memory of an input (in-place), as on the CPU.
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"

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

} // namespace

std::vector<KernelInfo> elementwiseKernels() {
  return {
      {"add", runAdd, nullptr},
      {"mul", runMul, nullptr},
      {"silu", runSilu, nullptr},
      {"silu_grad", runSiluGrad, nullptr},
  };
}

} // namespace apc::kernels::cuda
