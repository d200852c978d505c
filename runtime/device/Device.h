// A device's memory, as the executor sees it: where a plan's buffers live. The CPU's is
// host memory (`cpuDevice`); the CUDA backend (docs/cuda.md, to come) adds device memory
// that the host reaches only through upload and download. The first piece of the
// runtime's device layer: streams, events and kernel state come with the CUDA backend.
// MLIR-free.
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <string>

namespace apc::device {

// Every allocation starts on this boundary (a cache line; a CUDA allocation is 256).
constexpr uint64_t kAlignment = 64;

class Device {
public:
  virtual ~Device() = default;
  virtual std::string name() const = 0; // "cpu", "cuda:0"

  // `bytes` of zeroed memory (at least 1), aligned to kAlignment; an error naming the
  // size where the device has not that much.
  virtual Result<void *> allocate(uint64_t bytes) = 0;
  // Gives back what allocate returned (null: nothing).
  virtual void release(void *memory) = 0;

  // Whether the host may read and write the device's memory directly (the CPU's: the
  // training loop fills inputs and reads results in place); otherwise only through
  // upload and download.
  virtual bool hostAccessible() const = 0;
  virtual Status upload(void *device, const void *host, uint64_t bytes) = 0;
  virtual Status download(void *host, const void *device, uint64_t bytes) = 0;

  // Host memory for the training loop's side of transfers, zeroed: pinned (page-locked)
  // on a GPU, so that copies run at the bus's speed without staging through another
  // buffer; ordinary aligned memory on the CPU. Allocated at load, never per step.
  virtual Result<void *> allocateHost(uint64_t bytes);
  virtual void releaseHost(void *memory);

  // What kernels on this device need besides their operands: the CUDA device sets its
  // stream and library handles; the CPU's nothing.
  virtual void bindContext(kernels::KernelContext &) {}
  // Waits until everything launched on the device has finished (the end of a step);
  // an error names what the device reported (a kernel fault).
  virtual Status synchronize() { return Status::ok(); }

  // Bytes allocated and not yet released, as requested (not rounded).
  uint64_t bytesInUse() const { return bytesInUse_; }

protected:
  uint64_t bytesInUse_ = 0;
};

// Host memory: 64-byte aligned, zeroed, host-accessible; upload and download copy.
std::unique_ptr<Device> cpuDevice();

// The same memory, but saying it is not host-accessible, as a GPU's: the training loop
// must then reach it through upload and download (the executor's host views), so a
// run on it checks that discipline on a CPU (docs/testing.md, APC_CPU_DEVICE=detached).
std::unique_ptr<Device> detachedCpuDevice();

} // namespace apc::device
