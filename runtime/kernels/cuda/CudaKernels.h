// The CUDA backend's kernels: the CPU backend's names, operand order, attributes and
// semantics (runtime/kernels/cpu/CpuKernels.h), computed in f32 from f32, bf16 or f16
// storage, launched on KernelContext::stream. Each kernel is validated by the very
// `prepare` the CPU backend uses (one validation for both backends), so an instruction
// either backend refuses, both refuse with the same message.
//
// Built where the CUDA toolkit is found (APC_HAVE_CUDA). One file per family
// (Families.h): every kernel of the CPU backend has its CUDA twin (docs/cuda.md lists
// them); CudaKernelsTest checks that none is missing. A plan op without a CUDA kernel is
// a load-time error naming it (findCudaKernel returns null), never a silent fallback to
// the CPU. MLIR-free.
#pragma once

#include "runtime/kernels/Kernel.h"

#include <string_view>
#include <vector>

namespace apc::kernels::cuda {

const KernelInfo *findCudaKernel(std::string_view name);
const std::vector<KernelInfo> &cudaKernels();

} // namespace apc::kernels::cuda
