// cross_entropy(_grad), count_kept, vocab_parallel_* on CUDA: not written yet (docs/cuda.md lists what is).
#include "runtime/kernels/cuda/Families.h"

namespace apc::kernels::cuda {

std::vector<KernelInfo> lossKernels() { return {}; }

} // namespace apc::kernels::cuda
