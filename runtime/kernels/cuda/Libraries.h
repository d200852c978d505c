// The CUDA libraries' handles the kernels use, created once and passed to every kernel
// in KernelContext (today: cuBLASLt's, for gemm). The handle belongs to the device that
// is current when it is created. No CUDA header: the handle is an opaque pointer here.
#pragma once

#include "runtime/support/Status.h"

#include <memory>

namespace apc::kernels::cuda {

class Libraries {
public:
  // Creates the handles on the current device; an error names the library and what it
  // reported (no GPU, no driver, out of memory).
  static Result<std::unique_ptr<Libraries>> create();
  ~Libraries();
  Libraries(const Libraries &) = delete;
  Libraries &operator=(const Libraries &) = delete;

  // The cublasLtHandle_t (KernelContext::blasLt).
  void *blasLt() const { return blasLt_; }

private:
  Libraries() = default;
  void *blasLt_ = nullptr;
};

} // namespace apc::kernels::cuda
