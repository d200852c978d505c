// What the CUDA kernels share on the device side: f32 loads and stores of each storage
// type (rounding to nearest even, as the CPU backend's HalfFloat.h), the dtype dispatch,
// and the launch check. Included by .cu files only.
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/kernels/cuda/Launch.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

namespace apc::kernels::cuda {

template <typename T> struct Storage;
template <> struct Storage<float> {
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};
template <> struct Storage<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};
template <> struct Storage<__half> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
};

// Calls f(T{}) with the storage type of `dtype` (a float dtype: prepare checked it).
template <typename F> void dispatchFloat(DType dtype, F &&f) {
  switch (dtype) {
  case DType::BF16: f(__nv_bfloat16{}); break;
  case DType::F16: f(__half{}); break;
  default: f(float{}); break;
  }
}

inline cudaStream_t streamOf(const KernelContext &context) {
  return static_cast<cudaStream_t>(context.stream);
}

// The status of the launch just made: a bad configuration is a backend defect, named.
inline Status launched(const char *kernel) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess)
    return Status::ok();
  return Status::error(std::string(kernel) + ": CUDA launch failed: " + cudaGetErrorName(e) +
                       ": " + cudaGetErrorString(e));
}

} // namespace apc::kernels::cuda
