// transpose, reshape, slice, reduce_sum, broadcast, shift_labels on CUDA: not written yet (docs/cuda.md lists what is).
#include "runtime/kernels/cuda/Families.h"

namespace apc::kernels::cuda {

std::vector<KernelInfo> layoutKernels() { return {}; }

} // namespace apc::kernels::cuda
