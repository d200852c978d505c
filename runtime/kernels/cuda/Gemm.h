// What the CUDA gemm (Gemm.cpp) tells about itself, for the tests and the docs.
#pragma once

#include <cstdint>

namespace apc::kernels::cuda {

// The scratch every gemm asks for (KernelInfo::workspace): cuBLASLt's workspace. NVIDIA
// recommends 32 MiB on Hopper (4 MiB is enough on Ampere); with less, the algorithm
// search leaves out the split-K kernels that keep the GPU busy when M x N is small and K
// large. gemms on one stream run one after the other, so the backend may share one.
constexpr uint64_t kGemmWorkspaceBytes = uint64_t(32) << 20;

// How many times this process has asked cuBLASLt to choose an algorithm: once per
// distinct problem (shapes, transposes, dtype, alignments, device), never per call.
uint64_t gemmAlgorithmSearches();

} // namespace apc::kernels::cuda
