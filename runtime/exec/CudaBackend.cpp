// The executor's CUDA backend: the CUDA kernels (runtime/kernels/cuda) on this process's
// GPU. Built with APC_HAVE_CUDA only.
#include "runtime/exec/Executor.h"

#include "runtime/device/cuda/CudaDevice.h"
#include "runtime/kernels/cuda/CudaKernels.h"

#include <cstdlib>
#include <string>

namespace apc::exec {
namespace {

// The GPU of this process: its LOCAL_RANK (as torchrun and aprun --nproc set it) modulo
// the GPUs it sees, so ranks on one machine take one GPU each.
Result<std::unique_ptr<device::Device>> thisProcessesGpu() {
  int visible = device::visibleCudaDevices();
  if (visible == 0)
    return device::cudaDevice(0); // the error says why none is visible
  const char *localRank = std::getenv("LOCAL_RANK");
  int ordinal = localRank ? std::atoi(localRank) : 0;
  return device::cudaDevice(ordinal < 0 ? 0 : ordinal % visible);
}

} // namespace

const Backend *cudaBackend() {
  static const Backend backend{"cuda", &kernels::cuda::findCudaKernel, &thisProcessesGpu,
                               /*hostCollectives=*/false};
  return &backend;
}

} // namespace apc::exec
