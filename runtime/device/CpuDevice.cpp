#include "runtime/device/Device.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace apc::device {
namespace {

class CpuDevice final : public Device {
public:
  explicit CpuDevice(bool detached) : detached_(detached) {}
  ~CpuDevice() override {
    for (const auto &[memory, bytes] : sizes_)
      std::free(memory);
  }
  std::string name() const override { return detached_ ? "cpu (detached)" : "cpu"; }

  Result<void *> allocate(uint64_t bytes) override {
    using R = Result<void *>;
    // Rounded up to the alignment (aligned_alloc requires it), refused before it wraps.
    if (bytes > UINT64_MAX - kAlignment)
      return R::error("cannot allocate " + std::to_string(bytes) + " bytes of host memory");
    uint64_t rounded = (std::max<uint64_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
    void *memory = rounded <= SIZE_MAX ? std::aligned_alloc(kAlignment, size_t(rounded)) : nullptr;
    if (!memory)
      return R::error("cannot allocate " + std::to_string(bytes) + " bytes of host memory");
    std::memset(memory, 0, size_t(rounded));
    sizes_.emplace(memory, bytes);
    bytesInUse_ += bytes;
    return memory;
  }

  void release(void *memory) override {
    auto it = sizes_.find(memory);
    if (it == sizes_.end())
      return;
    bytesInUse_ -= it->second;
    std::free(memory);
    sizes_.erase(it);
  }

  bool hostAccessible() const override { return !detached_; }
  Status upload(void *device, const void *host, uint64_t bytes) override {
    if (bytes)
      std::memcpy(device, host, size_t(bytes));
    return Status::ok();
  }
  Status download(void *host, const void *device, uint64_t bytes) override {
    if (bytes)
      std::memcpy(host, device, size_t(bytes));
    return Status::ok();
  }

private:
  bool detached_;
  std::unordered_map<void *, uint64_t> sizes_; // live allocations and their requested size
};

} // namespace

Result<void *> Device::allocateHost(uint64_t bytes) {
  uint64_t rounded = (std::max<uint64_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  void *memory = bytes <= UINT64_MAX - kAlignment && rounded <= SIZE_MAX
                     ? std::aligned_alloc(kAlignment, size_t(rounded))
                     : nullptr;
  if (!memory)
    return Result<void *>::error("cannot allocate " + std::to_string(bytes) +
                                 " bytes of host memory");
  std::memset(memory, 0, size_t(rounded));
  return memory;
}

void Device::releaseHost(void *memory) { std::free(memory); }

std::unique_ptr<Device> cpuDevice() { return std::make_unique<CpuDevice>(false); }
std::unique_ptr<Device> detachedCpuDevice() { return std::make_unique<CpuDevice>(true); }

} // namespace apc::device
