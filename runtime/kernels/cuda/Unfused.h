// Float arithmetic with the CPU backend's rounding points. nvcc contracts a * b + c into
// one fused multiply-add (one rounding where the CPU, compiled for baseline x86-64,
// rounds twice); these operations are never contracted, so a formula written with them
// rounds on the GPU exactly as the same formula in the CPU backend. Plain header.
#pragma once

#include "runtime/kernels/cuda/HostDevice.h"

#include <cmath>

namespace apc::kernels::cuda {

APC_HD float unfusedMul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

APC_HD float unfusedAdd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

APC_HD float unfusedSub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

APC_HD float unfusedDiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

APC_HD float roundedSqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

APC_HD double unfusedMul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

APC_HD double unfusedSub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

} // namespace apc::kernels::cuda
