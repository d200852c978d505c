// The CUDA device (runtime/device/Device.h): one GPU's memory, reached by the host only
// through upload and download. Built where the CUDA toolkit is found (APC_HAVE_CUDA);
// works without a GPU in the sense that it says so: cudaDevice() is an error naming what
// CUDA reported. MLIR-free.
#pragma once

#include "runtime/device/Device.h"

#include <memory>

namespace apc::device {

// How many CUDA devices this process sees (0 when there is no driver, no GPU, or
// CUDA_VISIBLE_DEVICES hides them all); never fails.
int visibleCudaDevices();

// The device of `ordinal` (made current for this thread). Errors: "no CUDA device is
// visible (...)" with CUDA's reason, or an ordinal beyond those visible.
Result<std::unique_ptr<Device>> cudaDevice(int ordinal);

} // namespace apc::device
