// The CUDA kernel families, one per file; CudaKernels.cpp joins them into the registry
// and gives each the CPU backend's `prepare`.
#pragma once

#include "runtime/kernels/Kernel.h"

#include <vector>

namespace apc::kernels::cuda {

std::vector<KernelInfo> elementwiseKernels(); // Elementwise.cu
std::vector<KernelInfo> normKernels();        // Norm.cu

} // namespace apc::kernels::cuda
