// The library handles: created with the device current, destroyed with the holder.
#include "runtime/kernels/cuda/Libraries.h"

#include <cublasLt.h>

#include <string>

namespace apc::kernels::cuda {

Result<std::unique_ptr<Libraries>> Libraries::create() {
  std::unique_ptr<Libraries> libraries(new Libraries());
  cublasLtHandle_t handle = nullptr;
  if (cublasStatus_t s = cublasLtCreate(&handle); s != CUBLAS_STATUS_SUCCESS)
    return Result<std::unique_ptr<Libraries>>::error(
        std::string("cuBLASLt: cannot create a handle: ") + cublasLtGetStatusName(s) + ": " +
        cublasLtGetStatusString(s));
  libraries->blasLt_ = handle;
  return libraries;
}

Libraries::~Libraries() {
  if (blasLt_)
    cublasLtDestroy(static_cast<cublasLtHandle_t>(blasLt_));
}

} // namespace apc::kernels::cuda
