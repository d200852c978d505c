// The registry of the CPU backend: the kernels of every family, looked up by name.
//
// Design idea: each family file exports its own list, so adding a kernel touches only
// its family; the registry concatenates the lists once (thread-safe static).
#include "runtime/kernels/cpu/CpuKernels.h"

#include "runtime/kernels/cpu/Common.h"

namespace apc::kernels {

const std::vector<KernelInfo> &cpuKernels() {
  static const std::vector<KernelInfo> kernels = [] {
    std::vector<KernelInfo> all;
    for (auto family : {cpu::gemmKernels, cpu::elementwiseKernels, cpu::normKernels,
                        cpu::attentionKernels, cpu::embeddingKernels, cpu::layoutKernels,
                        cpu::lossKernels, cpu::optimizerKernels}) {
      std::vector<KernelInfo> list = family();
      all.insert(all.end(), list.begin(), list.end());
    }
    return all;
  }();
  return kernels;
}

const KernelInfo *findCpuKernel(std::string_view name) {
  for (const KernelInfo &info : cpuKernels())
    if (name == info.name)
      return &info;
  return nullptr;
}

} // namespace apc::kernels
