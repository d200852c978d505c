// The CUDA kernel registry: the families' kernels, each validated by the CPU backend's
// `prepare` of the same name (one validation for both backends), then by the CUDA
// kernel's own limits where it has some.
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/Families.h"

#include "runtime/kernels/cpu/CpuKernels.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace apc::kernels::cuda {

namespace {

// A family may give a kernel a `prepare` of its own: the limits only the CUDA kernel has
// (attention's head_dim, a grid's size), checked at load after the CPU's validation.
// A PrepareFn is a plain function pointer, so each composed pair gets a trampoline of its
// own from this table.
struct ComposedPrepare {
  PrepareFn cpu = nullptr, cuda = nullptr;
};
constexpr size_t kMaxComposed = 32;
ComposedPrepare composed[kMaxComposed];

template <size_t I>
Status composedPrepare(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                       const Attributes &attrs) {
  APC_RETURN_IF_ERROR(composed[I].cpu(in, out, attrs));
  return composed[I].cuda(in, out, attrs);
}

template <size_t... I>
constexpr std::array<PrepareFn, sizeof...(I)> trampolines(std::index_sequence<I...>) {
  return {&composedPrepare<I>...};
}

} // namespace

const std::vector<KernelInfo> &cudaKernels() {
  static const std::vector<KernelInfo> kernels = [] {
    static constexpr auto kTrampolines = trampolines(std::make_index_sequence<kMaxComposed>());
    std::vector<KernelInfo> all;
    size_t used = 0;
    for (auto family : {elementwiseKernels, normKernels, layoutKernels, ropeKernels,
                         embeddingKernels, lossKernels, optimizerKernels, attentionKernels,
                         gemmKernels})
      for (KernelInfo k : family()) {
        const KernelInfo *cpu = findCpuKernel(k.name);
        if (!cpu || (k.prepare && used == kMaxComposed)) { // build defects
          std::fprintf(stderr, "CUDA kernel '%s': %s\n", k.name,
                       cpu ? "more CUDA limits than kMaxComposed" : "no CPU twin to validate it");
          std::abort();
        }
        if (k.prepare) {
          composed[used] = {cpu->prepare, k.prepare};
          k.prepare = kTrampolines[used++];
        } else {
          k.prepare = cpu->prepare;
        }
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
