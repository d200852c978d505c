// Runs one device's program of a plan: owns its memory, resolves its kernels once,
// and executes the instruction list for each training step. The program is that of the
// device's pipeline stage; its vocabulary-parallel kernels get the device's `vocab_start`
// (runtime/plan/DeviceProgram.h).
//
// Memory: each parameter, optimizer state and input buffer has its own allocation
// (they outlive steps and are read and written by the training loop); all temporaries
// share one arena of the size the compiler planned; aliases point into their root. All
// of it comes from the backend's device (runtime/device/Device.h).
// Kernels are looked up by name and `prepare`d at creation, so a plan naming an unknown
// kernel or with inconsistent operands is refused before the first step.
#pragma once

#include "runtime/device/Device.h"
#include "runtime/kernels/Kernel.h"
#include "runtime/support/Status.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace apc::comm {
class Communicator;
}

namespace apc::plan {
struct Program;
struct Plan;
} // namespace apc::plan

namespace apc::exec {

// The kernels of one backend and the device whose memory they work on (the CPU today;
// CUDA later registers its own).
struct Backend {
  const char *name;
  const kernels::KernelInfo *(*find)(std::string_view kernel);
  // The device of this process (an error where there is none: no GPU visible).
  Result<std::unique_ptr<device::Device>> (*makeDevice)();
  // Whether the executor's collectives (Gloo, on host memory) can run on its memory.
  bool hostCollectives = true;
};
const Backend &cpuBackend();
// The CPU backend on a detached device (device::detachedCpuDevice): for tests of the
// host/device discipline.
const Backend &detachedCpuBackend();
// The CUDA backend (docs/cuda.md): the CUDA kernels on the GPU of this process
// (LOCAL_RANK modulo the visible devices); null where aprun was built without CUDA. One
// device per plan for now: collectives on it need NCCL, refused at load.
const Backend *cudaBackend();

// The communicator of the devices that share every coordinate but those of `axes`
// (the group a collective over those mesh axes runs in); null: none available. Its
// ranks are in increasing global rank order, so for one axis the group rank is this
// device's coordinate on that axis.
//
// Collectives the executor runs itself (every one names its mesh axes in the Ints
// attribute `axes`; the last four take exactly one axis; inputs and outputs must not
// overlap unless said otherwise):
//   all_reduce {axes, op = "sum" | "max"}: sum (f32, several inputs form one bucket
//     reduced by a single collective; output i may be input i) or max (one f32 operand);
//   all_gather {axes = [a], dim = d}: output = the group's inputs concatenated along d
//     in group-rank order (output dim d = size * input dim d), any dtype;
//   reduce_scatter {axes = [a], dim = d}: output = this rank's block along d of the sum
//     of the inputs (output dim d = input dim d / size), f32;
//   all_slice {axes = [a], dim = d}: output = block `group rank` of the input along d,
//     no communication, any dtype;
//   send {axes = [a], peer_offset = k, tag = t (default 0)}: one input, no outputs; its
//     bytes go to the device whose coordinate on axis a is this one's + k (k != 0, inside
//     the axis), buffered (returns once the input may be overwritten);
//   recv {axes = [a], peer_offset = k, tag = t (default 0)}: no inputs, one output;
//     waits for the matching send of the device at coordinate + k (the same tag, the same
//     number of bytes, any dtype).
using GroupLookup = std::function<comm::Communicator *(const std::vector<int64_t> &axes)>;

// Whether the executor runs instructions calling `kernel` itself, in the communicator
// of their Ints attribute `axes` (the runtime creates one per distinct `axes`).
bool isCollectiveKernel(std::string_view kernel);

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

  // Profiling: while on, step() adds each instruction's wall-clock seconds to
  // instructionSeconds() (collectives include their wait for peers). Off by default: the
  // clock reads cost a little on tiny kernels.
  void setProfiling(bool on) {
    profiling_ = on;
    if (on && instructionSeconds_.size() != prepared_.size())
      instructionSeconds_.assign(prepared_.size(), 0.0);
  }
  const std::vector<double> &instructionSeconds() const { return instructionSeconds_; }
  const std::string &instructionKernel(size_t index) const { return prepared_[index].name; }

  // Sets attribute `attr` on every instruction calling `kernel` (run-time overrides of
  // compiled values, such as AdamW's weight decay) and re-validates them.
  Status setAttribute(std::string_view kernel, const kernels::Attribute &attr);
  // Removes attribute `name` from every instruction calling `kernel`.
  Status removeAttribute(std::string_view kernel, std::string_view name);

  int numBuffers() const { return int(views_.size()); }
  // The buffer as the kernels see it: device memory (not for the host to touch unless
  // hostAccessible()).
  const kernels::TensorView &buffer(int index) const { return views_[index]; }

  // ---- Host access: how the training loop reads and writes buffers on any device ----
  // A host view of buffer `index`: the buffer itself where the device is host-accessible
  // (the CPU's), else a host copy made on first use. Write it, then push(index) before a
  // step reads it; pull(index) after a step before reading it. On a host-accessible
  // device push and pull do nothing.
  bool hostAccessible() const { return device_->hostAccessible(); }
  kernels::TensorView hostView(int index);
  Status push(int index);
  Status pull(int index);
  // Every host copy made so far (parameters and optimizer state after loading them,
  // before saving them).
  Status pushAll();
  Status pullAll();
  const plan::Program &program() const { return program_; }
  uint64_t arenaBytes() const { return arenaBytes_; }
  // Bytes this device's program took: the arena, every persistent buffer, the collective
  // staging buffer (what the cost model's memory per device predicts, compiler/cost).
  uint64_t allocatedBytes() const {
    return arenaBytes_ + persistentBytes_ + workspaceBytes_ + staging_.size() * sizeof(uint64_t);
  }
  // The kernels' shared scratch (KernelInfo::workspace), the largest any instruction asks.
  uint64_t workspaceBytes() const { return workspaceBytes_; }

private:
  Executor(const plan::Program &program, kernels::KernelContext context,
           std::unique_ptr<device::Device> device)
      : program_(program), context_(context), device_(std::move(device)) {}

  // What an instruction is: a backend kernel, or one of the executor's collectives.
  enum class Op {
    Kernel,
    AllReduceSum,
    AllReduceMax,
    AllGather,
    ReduceScatter,
    AllSlice,
    Send,
    Recv
  };

  struct Prepared {
    Op op = Op::Kernel;
    const kernels::KernelInfo *kernel = nullptr; // Op::Kernel only
    std::string name;                            // the instruction's kernel name
    comm::Communicator *group = nullptr;         // a collective's group
    int64_t dim = 0;                             // all_gather, reduce_scatter, all_slice
    // Context parallelism: `dim` holds 2n chunks, device q's part being chunks q and
    // 2n-1-q (attribute `balanced`), not the q-th contiguous block.
    bool balanced = false;
    int peer = 0;                                // send, recv: the peer's group rank
    uint32_t tag = 0;                            // send, recv
    std::vector<kernels::TensorView> inputs, outputs;
    kernels::Attributes attributes;
  };

  const plan::Program &program_;
  kernels::KernelContext context_;
  std::unique_ptr<device::Device> device_; // owns every allocation below
  std::vector<kernels::TensorView> views_;
  // By buffer: the host copies of a device the host cannot reach (Device::allocateHost:
  // pinned on a GPU), released with the executor.
  std::map<int, void *> hostCopies_;
  uint64_t arenaBytes_ = 0;
  uint64_t persistentBytes_ = 0;
  uint64_t workspaceBytes_ = 0;
  std::vector<Prepared> prepared_;
  bool profiling_ = false;
  std::vector<double> instructionSeconds_; // per instruction, summed over profiled steps
  // Bucketed all-reduces pack their gradients here; all_gather and reduce_scatter on a
  // dim other than the first rearrange blocks here. Sized at creation.
  std::vector<uint64_t> staging_;
  static Status prepareCollective(Prepared &p, const GroupLookup &groups);
  Status runCollective(const Prepared &p);
  Status allReduce(const Prepared &p);
  Status allGather(const Prepared &p);
  Status reduceScatter(const Prepared &p);
  Status allSlice(const Prepared &p);
  static Status preparePointToPoint(Prepared &p, int64_t axis);
  Status fitsWorkspace(const Prepared &p) const;
  Status changeAttributes(std::string_view kernel, const std::string &what,
                          const std::function<void(kernels::Attributes &)> &change);
  // The program's streams and events order every access they must (EventDiscipline.h).
  Status checkStreams() const;
};

} // namespace apc::exec
