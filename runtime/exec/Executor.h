// Runs one device's program of a plan: owns its memory, resolves its kernels once,
// and executes the instruction list for each training step.
//
// Memory: each parameter, optimizer state and input buffer has its own allocation
// (they outlive steps and are read and written by the training loop); all temporaries
// share one arena of the size the compiler planned; aliases point into their root.
// Kernels are looked up by name and `prepare`d at creation, so a plan naming an unknown
// kernel or with inconsistent operands is refused before the first step.
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/support/Status.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace apc::comm {
class Communicator;
}

namespace apc::plan {
struct Program;
struct Plan;
} // namespace apc::plan

namespace apc::exec {

// The kernels of one backend (the CPU today; CUDA later registers its own).
struct Backend {
  const char *name;
  const kernels::KernelInfo *(*find)(std::string_view kernel);
};
const Backend &cpuBackend();

// The communicator of the devices that share every coordinate but those of `axes`
// (the group a collective over those mesh axes runs in); null: none available.
using GroupLookup = std::function<comm::Communicator *(const std::vector<int64_t> &axes)>;

class Executor {
public:
  // `groups` serves the plan's collectives; single-device plans need none.
  static Result<std::unique_ptr<Executor>> create(const plan::Plan &plan, int device,
                                                  const Backend &backend,
                                                  kernels::KernelContext context,
                                                  GroupLookup groups = nullptr);
  ~Executor();

  // Runs every instruction once. Stops at the first kernel error.
  Status step();

  // Sets attribute `attr` on every instruction calling `kernel` (run-time overrides of
  // compiled values, such as AdamW's weight decay) and re-validates them.
  Status setAttribute(std::string_view kernel, const kernels::Attribute &attr);
  // Removes attribute `name` from every instruction calling `kernel`.
  Status removeAttribute(std::string_view kernel, std::string_view name);

  int numBuffers() const { return int(views_.size()); }
  const kernels::TensorView &buffer(int index) const { return views_[index]; }
  const plan::Program &program() const { return program_; }
  uint64_t arenaBytes() const { return arenaBytes_; }

private:
  Executor(const plan::Program &program, kernels::KernelContext context)
      : program_(program), context_(context) {}

  struct Prepared {
    const kernels::KernelInfo *kernel = nullptr; // null for a collective
    comm::Communicator *group = nullptr;         // the collective's group
    std::vector<kernels::TensorView> inputs, outputs;
    kernels::Attributes attributes;
  };

  const plan::Program &program_;
  kernels::KernelContext context_;
  std::vector<kernels::TensorView> views_;
  std::vector<void *> allocations_;
  uint64_t arenaBytes_ = 0;
  std::vector<Prepared> prepared_;
  std::vector<float> staging_; // bucketed all-reduces pack their gradients here
  Status allReduce(const Prepared &p);
};

} // namespace apc::exec
