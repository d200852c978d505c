// The kernels' workspace (KernelInfo::workspace): the executor reserves one scratch area
// of its device, the largest any instruction asks for, once at load, and hands it to
// every kernel in KernelContext; a later attribute change that would need more is
// refused instead of overrunning it.
#include "runtime/exec/Executor.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/plan/PlanLoader.h"
#include "test/unit/runtime/PlanBuilder.h"

#include <gtest/gtest.h>

#include <cstring>

namespace apc::exec {
namespace {

using apc::testing::AttributeSpec;
using apc::testing::PlanSpec;
using apc::testing::ProgramSpec;

// A backend whose `add` asks for 16 bytes of scratch per element (plus the attribute
// `extra`) and checks at every call that it got them, writing over all of it.
struct Seen {
  void *workspace = nullptr;
  uint64_t bytes = 0;
  int calls = 0;
} seen;

uint64_t addWorkspace(const std::vector<kernels::TensorView> &in,
                      const std::vector<kernels::TensorView> &, const kernels::Attributes &attrs) {
  return uint64_t(in[0].numElements()) * 16 + uint64_t(attrs.getInt("extra", 0));
}

Status addWithScratch(const kernels::KernelContext &context,
                      const std::vector<kernels::TensorView> &in,
                      const std::vector<kernels::TensorView> &out,
                      const kernels::Attributes &attrs) {
  uint64_t need = addWorkspace(in, out, attrs);
  if (!context.workspace || context.workspaceBytes < need)
    return Status::error("no room");
  std::memset(context.workspace, 0xab, size_t(need));
  seen = {context.workspace, context.workspaceBytes, seen.calls + 1};
  return kernels::findCpuKernel("add")->run(context, in, out, attrs);
}

const kernels::KernelInfo *findScratchKernel(std::string_view name) {
  static const kernels::KernelInfo add = {"add", addWithScratch,
                                          kernels::findCpuKernel("add")->prepare, addWorkspace};
  return name == "add" ? &add : kernels::findCpuKernel(name);
}

const Backend &scratchBackend() {
  static const Backend backend = {"scratch", findScratchKernel, cpuBackend().makeDevice};
  // (the CPU backend's host device)
  return backend;
}

TEST(ExecutorWorkspace, OneAreaOfTheLargestAskIsReservedAndHandedToKernels) {
  PlanSpec spec;
  spec.batch = 1;
  spec.seqLen = 2;
  ProgramSpec p;
  p.addStandardInputs(spec);
  int small = p.arena("small", plan::DType::F32, {4});
  int large = p.arena("large", plan::DType::F32, {10});
  int smallSum = p.arena("small_sum", plan::DType::F32, {4});
  int largeSum = p.arena("large_sum", plan::DType::F32, {10});
  p.call("add", {small, small}, {smallSum});
  p.call("add", {large, large}, {largeSum}, {AttributeSpec::Int("extra", 8)});
  spec.programs = {p};
  auto loaded = plan::LoadedPlan::fromBytes(spec.build(), "scratch.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  auto exec = Executor::create(loaded->plan(), 0, scratchBackend(), {});
  ASSERT_TRUE(exec.isOk()) << exec.message();
  Executor &e = **exec;
  EXPECT_EQ(e.workspaceBytes(), 10u * 16 + 8); // the larger ask
  seen = {};
  ASSERT_TRUE(e.step().isOk());
  EXPECT_EQ(seen.calls, 2);
  EXPECT_NE(seen.workspace, nullptr);
  EXPECT_EQ(seen.bytes, 168u);
  // Asking for more than was reserved, after load, is refused with both sizes.
  Status more = e.setAttribute("add", {"extra", kernels::Attribute::Kind::Int, 100});
  ASSERT_FALSE(more);
  EXPECT_NE(more.message().find("add with extra: needs 260 bytes of workspace, 168 were "
                                 "reserved at load"),
            std::string::npos)
      << more.message();
  // The refused change is undone: the program runs as before.
  seen = {};
  ASSERT_TRUE(e.step().isOk());
  EXPECT_EQ(seen.calls, 2);

  // The CPU backend's kernels ask for none: nothing is reserved.
  auto plain = Executor::create(loaded->plan(), 0, cpuBackend(), {});
  ASSERT_TRUE(plain.isOk()) << plain.message();
  EXPECT_EQ((*plain)->workspaceBytes(), 0u);
  EXPECT_EQ(e.allocatedBytes(), (*plain)->allocatedBytes() + 168); // counted as held
}

} // namespace
} // namespace apc::exec
