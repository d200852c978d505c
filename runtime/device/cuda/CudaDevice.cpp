// The CUDA device: cudaMalloc'd memory, zeroed on allocation as the CPU device's is (the
// executor relies on fresh persistent buffers reading as zeros), synchronous copies.
#include "runtime/device/cuda/CudaDevice.h"

#include "runtime/kernels/cuda/Libraries.h"

#include <cuda_runtime.h>

#include <cstring>
#include <string>
#include <unordered_map>

namespace apc::device {
namespace {

std::string cudaText(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

std::string sizeText(uint64_t bytes) {
  if (bytes >= (uint64_t(1) << 20))
    return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

class CudaDevice final : public Device {
public:
  CudaDevice(int ordinal, cudaStream_t stream,
             std::unique_ptr<kernels::cuda::Libraries> libraries)
      : ordinal_(ordinal), stream_(stream), libraries_(std::move(libraries)) {}
  ~CudaDevice() override {
    cudaSetDevice(ordinal_);
    if (stream_)
      cudaStreamSynchronize(stream_);
    for (const auto &[memory, bytes] : sizes_)
      cudaFree(memory);
    libraries_.reset();
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  void bindContext(kernels::KernelContext &context) override {
    context.stream = stream_;
    context.blasLt = libraries_ ? libraries_->blasLt() : nullptr;
  }

  Status synchronize() override {
    if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess)
      return Status::error(name() + ": " + cudaText(e));
    return Status::ok();
  }
  std::string name() const override { return "cuda:" + std::to_string(ordinal_); }

  Result<void *> allocate(uint64_t bytes) override {
    if (cudaError_t e = cudaSetDevice(ordinal_); e != cudaSuccess)
      return Result<void *>::error(name() + ": " + cudaText(e));
    void *memory = nullptr;
    uint64_t size = bytes == 0 ? 1 : bytes;
    if (cudaError_t e = cudaMalloc(&memory, size); e != cudaSuccess) {
      cudaGetLastError(); // an out-of-memory error is not sticky: clear it
      size_t freeBytes = 0, totalBytes = 0;
      cudaMemGetInfo(&freeBytes, &totalBytes);
      return Result<void *>::error(name() + ": cannot allocate " + sizeText(size) + " (" +
                                   cudaText(e) + "; " + sizeText(freeBytes) + " free of " +
                                   sizeText(totalBytes) + ")");
    }
    if (cudaError_t e = cudaMemset(memory, 0, size); e != cudaSuccess) {
      cudaFree(memory);
      return Result<void *>::error(name() + ": zeroing " + sizeText(size) + ": " + cudaText(e));
    }
    bytesInUse_ += bytes;
    sizes_[memory] = bytes;
    return memory;
  }

  void release(void *memory) override {
    if (!memory)
      return;
    auto it = sizes_.find(memory);
    if (it != sizes_.end()) {
      bytesInUse_ -= it->second;
      sizes_.erase(it);
    }
    cudaFree(memory);
  }

  bool hostAccessible() const override { return false; }

  Result<void *> allocateHost(uint64_t bytes) override {
    void *memory = nullptr;
    uint64_t size = bytes == 0 ? 1 : bytes;
    if (cudaError_t e = cudaMallocHost(&memory, size); e != cudaSuccess) {
      cudaGetLastError();
      return Result<void *>::error(name() + ": cannot allocate " + sizeText(size) +
                                   " of pinned host memory (" + cudaText(e) + ")");
    }
    std::memset(memory, 0, size_t(size));
    return memory;
  }
  void releaseHost(void *memory) override {
    if (memory)
      cudaFreeHost(memory);
  }

  Status upload(void *device, const void *host, uint64_t bytes) override {
    return copy(device, host, bytes, cudaMemcpyHostToDevice, "upload");
  }
  Status download(void *host, const void *device, uint64_t bytes) override {
    return copy(host, device, bytes, cudaMemcpyDeviceToHost, "download");
  }

private:
  Status copy(void *to, const void *from, uint64_t bytes, cudaMemcpyKind kind,
              const char *what) {
    if (bytes == 0)
      return Status::ok();
    // Ordered after the kernels launched so far (the stream is a blocking one, which
    // the legacy default stream of cudaMemcpy synchronizes with).
    if (cudaError_t e = cudaMemcpy(to, from, bytes, kind); e != cudaSuccess)
      return Status::error(name() + ": " + what + " of " + sizeText(bytes) + ": " + cudaText(e));
    return Status::ok();
  }

  int ordinal_;
  cudaStream_t stream_ = nullptr; // the kernels' stream (blocking: ordered with copies)
  std::unique_ptr<kernels::cuda::Libraries> libraries_;
  std::unordered_map<void *, uint64_t> sizes_;
};

} // namespace

int visibleCudaDevices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

Result<std::unique_ptr<Device>> cudaDevice(int ordinal) {
  using R = Result<std::unique_ptr<Device>>;
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    cudaGetLastError();
    return R::error("no CUDA device is visible (" + cudaText(e) + ")");
  }
  if (count == 0)
    return R::error("no CUDA device is visible (the driver reports none)");
  if (ordinal < 0 || ordinal >= count)
    return R::error("CUDA device " + std::to_string(ordinal) + " is not visible: " +
                    std::to_string(count) + " device" + (count == 1 ? "" : "s") +
                    " (ordinals 0 to " + std::to_string(count - 1) + ")");
  if (cudaError_t e = cudaSetDevice(ordinal); e != cudaSuccess)
    return R::error("cuda:" + std::to_string(ordinal) + ": " + cudaText(e));
  cudaStream_t stream = nullptr;
  if (cudaError_t e = cudaStreamCreate(&stream); e != cudaSuccess)
    return R::error("cuda:" + std::to_string(ordinal) + ": creating a stream: " + cudaText(e));
  auto libraries = kernels::cuda::Libraries::create();
  if (!libraries) {
    cudaStreamDestroy(stream);
    return R::error("cuda:" + std::to_string(ordinal) + ": " + libraries.message());
  }
  return std::unique_ptr<Device>(new CudaDevice(ordinal, stream, std::move(*libraries)));
}

} // namespace apc::device
