// Helpers of the host tests of the CUDA kernel families: a CUDA block's reduction run
// serially in the kernels' order, and one kernel run on the CPU backend (the reference).
#pragma once

#include "runtime/kernels/cuda/BlockFold.h"
#include "test/unit/kernels/CudaParity.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace apc::kernels::testing {

// A block of `threads` over n items: thread t folds items t, t + threads, ... into its
// partial with `step` (from `init`), and the partials are combined in BlockFold.h's order.
template <typename P, typename Step, typename Combine>
P emulateBlock(int threads, int64_t n, P init, Step step, Combine combine) {
  std::vector<P> lanes(size_t(threads), init);
  for (int t = 0; t < threads; ++t)
    for (int64_t i = t; i < n; i += threads)
      lanes[size_t(t)] = step(lanes[size_t(t)], i);
  return cuda::foldHalves(lanes.data(), threads, combine);
}

// Runs `kernel` of the CPU backend (prepare, then run) on host operands; `outputs` holds
// the results. The status is the run's (a data error such as a bad label).
inline Status runCpu(const std::string &kernel, std::vector<Operand> inputs,
                     std::vector<Operand> &outputs, const Attributes &attrs) {
  std::vector<TensorView> in, out;
  for (Operand &o : inputs)
    in.push_back({o.bytes.data(), o.dtype, o.shape});
  for (Operand &o : outputs)
    out.push_back({o.bytes.data(), o.dtype, o.shape});
  const KernelInfo *cpu = findCpuKernel(kernel);
  if (!cpu)
    return Status::error("no CPU kernel " + kernel);
  Status prepared = cpu->prepare(in, out, attrs);
  if (!prepared)
    return Status::error("prepare: " + prepared.message());
  return cpu->run(KernelContext{}, in, out, attrs);
}

// A host operand's bytes as T (labels, f32 scalars).
template <typename T> const T *dataOf(const Operand &o) {
  return reinterpret_cast<const T *>(o.bytes.data());
}
template <typename T> T *dataOf(Operand &o) { return reinterpret_cast<T *>(o.bytes.data()); }

} // namespace apc::kernels::testing
