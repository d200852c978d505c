#include "runtime/exec/DevicesHere.h"

#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanLoader.h"
#include "runtime/plan/PlanTypes.h"

#ifdef APC_HAVE_CUDA
#include "runtime/device/cuda/CudaDevice.h"
#endif

namespace apc::exec {

Status checkDevicesHere(const plan::Plan &plan, const std::string &path, int64_t localRanks) {
  APC_RETURN_IF_ERROR(plan::checkBackendBuilt(plan, path));
  if (!plan.backend() || plan.backend()->str() != "cuda")
    return Status::ok();
#ifdef APC_HAVE_CUDA
  const plan::Prediction *predicted = plan.predicted();
  std::string compiledFor = path + ": compiled for " +
                            (predicted && predicted->cluster() ? predicted->cluster()->str()
                                                               : std::string("cuda"));
  int visible = device::visibleCudaDevices();
  if (visible == 0) {
    auto none = device::cudaDevice(0);
    return Status::error(compiledFor + ": " +
                         (none ? std::string("no CUDA device is visible") : none.message()));
  }
  if (plan::deviceCount(plan) > 1)
    return Status::error(compiledFor + ": a plan of " + std::to_string(plan::deviceCount(plan)) +
                         " GPUs needs NCCL collectives, which the CUDA backend does not have "
                         "yet (docs/cuda.md); compile for --cluster h100-sxm:1, or for cpu:N");
  if (localRanks > visible)
    return Status::error(compiledFor + ": its " + std::to_string(localRanks) +
                         " ranks on this machine need a GPU each; " + std::to_string(visible) +
                         " visible");
#endif
  (void)localRanks;
  return Status::ok();
}

} // namespace apc::exec
