// embedding, embedding_grad on CUDA: not written yet (docs/cuda.md lists what is).
#include "runtime/kernels/cuda/Families.h"

namespace apc::kernels::cuda {

std::vector<KernelInfo> embeddingKernels() { return {}; }

} // namespace apc::kernels::cuda
