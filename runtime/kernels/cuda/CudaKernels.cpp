// The CUDA kernel registry: the families' kernels, each validated by the CPU backend's
// `prepare` of the same name (one validation for both backends).
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/Families.h"

#include "runtime/kernels/cpu/CpuKernels.h"

#include <cstdio>
#include <cstdlib>

namespace apc::kernels::cuda {

const std::vector<KernelInfo> &cudaKernels() {
  static const std::vector<KernelInfo> kernels = [] {
    std::vector<KernelInfo> all;
    for (auto family : {elementwiseKernels, normKernels, layoutKernels, ropeKernels,
                         embeddingKernels, lossKernels, optimizerKernels, attentionKernels,
                         gemmKernels})
      for (KernelInfo k : family()) {
        const KernelInfo *cpu = findCpuKernel(k.name);
        if (!cpu) { // a build defect: every CUDA kernel mirrors a CPU one
          std::fprintf(stderr, "CUDA kernel '%s' has no CPU twin to validate it\n", k.name);
          std::abort();
        }
        k.prepare = cpu->prepare;
        all.push_back(k);
      }
    return all;
  }();
  return kernels;
}

const KernelInfo *findCudaKernel(std::string_view name) {
  for (const KernelInfo &k : cudaKernels())
    if (name == k.name)
      return &k;
  return nullptr;
}

} // namespace apc::kernels::cuda
