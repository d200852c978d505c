// The CUDA backend against the CPU backend (runtime/kernels/cuda, runtime/device/cuda).
//
// Without a GPU (CI, the development machine) these run: the registry (every CUDA kernel
// validated by its CPU twin's prepare, so both refuse the same instructions with the
// same words), the device's refusal naming why no GPU is there, and the checks a kernel
// makes before it launches. The parity tests need a GPU and report themselves skipped
// without one (ctest counts them as skipped, tools/gpu_check.sh runs them).
//
// Parity: the same seeded inputs through the CPU kernel and the CUDA kernel. Tolerances,
// per output with M = max |cpu|:
//   f32:  |cuda - cpu| <= 1e-5 max(|cpu|, M / 16). Both compute in f32; the CPU sums
//         rows in double, CUDA in f32 trees, and exp differs in the last bits (the CPU's
//         polynomial, CUDA's expf): a few f32 ulps, ~1e-7 relative.
//   bf16: |cuda - cpu| <= 2^-7 max(|cpu|, |cuda|) + 2^-10 M: one bf16 ulp (f32
//         differences can fall on either side of a rounding boundary), plus room for
//         values cancelled near zero.
#include "test/unit/kernels/CudaParity.h"

#include "runtime/device/cuda/CudaDevice.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/support/HalfFloat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace apc::kernels {
namespace {

using namespace testing;

TEST(CudaKernels, EveryKernelIsValidatedByItsCpuTwin) {
  ASSERT_FALSE(cuda::cudaKernels().empty());
  for (const KernelInfo &k : cuda::cudaKernels()) {
    const KernelInfo *cpu = findCpuKernel(k.name);
    ASSERT_NE(cpu, nullptr) << k.name;
    ASSERT_NE(k.prepare, nullptr) << k.name;
    // Either the CPU's prepare itself, or it composed with the CUDA kernel's limits.
    bool ownLimits = k.prepare != cpu->prepare;
    for (const char *limited : {"attention", "attention_grad", "rms_norm_grad", "transpose",
                                "reduce_sum", "broadcast"})
      if (std::string(k.name) == limited)
        EXPECT_TRUE(ownLimits) << k.name;
    EXPECT_NE(k.run, cpu->run) << k.name;
    EXPECT_EQ(cuda::findCudaKernel(k.name), &k);
  }
  EXPECT_EQ(cuda::findCudaKernel("no_such_kernel"), nullptr);
}

TEST(CudaKernels, EveryCpuKernelHasACudaTwin) {
  // The plan may name any kernel of the CPU backend; the CUDA backend must run each
  // (collectives are the executor's own, not kernels).
  for (const KernelInfo &k : cpuKernels())
    EXPECT_NE(cuda::findCudaKernel(k.name), nullptr) << k.name << " has no CUDA kernel";
  EXPECT_EQ(cuda::cudaKernels().size(), cpuKernels().size());
}

TEST(CudaKernels, RefusesWhatTheCpuBackendRefuses) {
  // add of f32[4] and f32[5]: both backends' prepare give the same message.
  std::vector<float> a(4), b(5), c(4);
  std::vector<TensorView> in = {{a.data(), DType::F32, {4}}, {b.data(), DType::F32, {5}}};
  std::vector<TensorView> out = {{c.data(), DType::F32, {4}}};
  Status viaCuda = cuda::findCudaKernel("add")->prepare(in, out, Attributes());
  Status viaCpu = findCpuKernel("add")->prepare(in, out, Attributes());
  ASSERT_FALSE(viaCuda);
  EXPECT_EQ(viaCuda.message(), viaCpu.message());
  EXPECT_NE(viaCuda.message().find("add"), std::string::npos) << viaCuda.message();
}

TEST(CudaKernels, TheCudaKernelsOwnLimitsAreCheckedAtLoad) {
  // head_dim 320 passes the CPU's validation but not the CUDA attention's: refused by
  // prepare, before any step, with the reason.
  std::vector<TensorView> in = {{nullptr, DType::F32, {1, 4, 2, 320}},
                                {nullptr, DType::F32, {1, 4, 2, 320}},
                                {nullptr, DType::F32, {1, 4, 2, 320}}};
  std::vector<TensorView> out = {{nullptr, DType::F32, {1, 4, 2, 320}}};
  Attributes attrs({boolAttr("causal", true)});
  ASSERT_TRUE(findCpuKernel("attention")->prepare(in, out, attrs));
  Status s = cuda::findCudaKernel("attention")->prepare(in, out, attrs);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("attention: head_dim 320 is more than the CUDA kernel supports "
                             "(at most 256)"),
            std::string::npos)
      << s.message();
  // And what the CPU refuses is still refused first, in its words.
  in[1].shape = {1, 4, 3, 320};
  Status cpu = findCpuKernel("attention")->prepare(in, out, attrs);
  ASSERT_FALSE(cpu);
  EXPECT_EQ(cuda::findCudaKernel("attention")->prepare(in, out, attrs).message(), cpu.message());
}

TEST(CudaKernels, RmsNormGradAsksForItsWorkspaceAndRefusesLess) {
  const KernelInfo *k = cuda::findCudaKernel("rms_norm_grad");
  ASSERT_NE(k, nullptr);
  ASSERT_NE(k->workspace, nullptr);
  std::vector<TensorView> in = {{nullptr, DType::F32, {2, 300, 64}},
                                {nullptr, DType::F32, {64}},
                                {nullptr, DType::F32, {2, 300, 64}}};
  std::vector<TensorView> out = {{nullptr, DType::F32, {2, 300, 64}}, {nullptr, DType::F32, {64}}};
  Attribute eps;
  eps.name = "epsilon";
  eps.kind = Attribute::Kind::Float;
  eps.f = 1e-5;
  Attributes attrs({eps});
  // 600 rows: 600 scales (2400 bytes, 2560 aligned), then 3 chunks x 64 columns of doubles.
  EXPECT_EQ(k->workspace(in, out, attrs), 2560u + 3 * 64 * 8);
  KernelContext context; // no workspace: refused before anything is launched
  Status s = k->run(context, in, out, attrs);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("rms_norm_grad needs 4096 bytes of workspace; the backend gave 0"),
            std::string::npos)
      << s.message();
}

TEST(CudaDevice, SaysWhyThereIsNoDeviceOrAllocatesOnIt) {
  auto device = device::cudaDevice(0);
  if (device::visibleCudaDevices() == 0) {
    ASSERT_FALSE(device);
    EXPECT_EQ(device.message().rfind("no CUDA device is visible (", 0), 0u) << device.message();
    return;
  }
  ASSERT_TRUE(device) << device.message();
  EXPECT_EQ((*device)->name(), "cuda:0");
  EXPECT_FALSE((*device)->hostAccessible());
  auto memory = (*device)->allocate(1000);
  ASSERT_TRUE(memory) << memory.message();
  EXPECT_EQ((*device)->bytesInUse(), 1000u);
  std::vector<uint8_t> back(1000, 7);
  ASSERT_TRUE((*device)->download(back.data(), *memory, 1000));
  EXPECT_TRUE(std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0; }));
  std::vector<uint8_t> there(1000);
  for (size_t i = 0; i < there.size(); ++i)
    there[i] = uint8_t(i * 7);
  ASSERT_TRUE((*device)->upload(*memory, there.data(), 1000));
  ASSERT_TRUE((*device)->download(back.data(), *memory, 1000));
  EXPECT_EQ(back, there);
  (*device)->release(*memory);
  EXPECT_EQ((*device)->bytesInUse(), 0u);
  // Too much memory is refused with the size and what is free, and the device goes on.
  auto huge = (*device)->allocate(uint64_t(1) << 50);
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.message().find("cannot allocate"), std::string::npos) << huge.message();
  EXPECT_TRUE((*device)->allocate(16));
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

Attributes epsilon() { return Attributes({floatAttr("epsilon", 1e-5)}); }

TEST(CudaParity, ElementwiseKernelsMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(7);
  // Sizes: one element, a partial block, and more than one full grid (grid-stride).
  for (DType t : {DType::F32, DType::BF16})
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(600000)}) {
    Operand a = randomOperand(t, {n}, rng), b = randomOperand(t, {n}, rng);
    for (const char *kernel : {"add", "mul", "silu_grad"}) {
      std::vector<Operand> cpu, gpu;
      runBoth(kernel, {a, b}, {zeros(t, {n})}, Attributes(), cpu, gpu);
      expectClose(std::string(kernel) + " " + dtypeName(t) + " n=" + std::to_string(n), cpu[0],
                  gpu[0]);
    }
    std::vector<Operand> cpu, gpu;
    runBoth("silu", {a}, {zeros(t, {n})}, Attributes(), cpu, gpu);
    expectClose(std::string("silu ") + dtypeName(t) + " n=" + std::to_string(n), cpu[0], gpu[0]);
  }
}

TEST(CudaParity, RmsNormForwardAndBackwardMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(11);
  struct Shape {
    int64_t rows, width;
  } shapes[] = {{1, 64}, {3, 100}, {300, 128}, {1030, 4096}};
  for (DType t : {DType::F32, DType::BF16})
  for (const Shape &s : shapes) {
    Operand x = randomOperand(t, {s.rows, s.width}, rng), w = randomOperand(t, {s.width}, rng);
    Operand dy = randomOperand(t, {s.rows, s.width}, rng);
    std::string where = std::string(dtypeName(t)) + " " + std::to_string(s.rows) + "x" +
                        std::to_string(s.width);
    std::vector<Operand> cpu, gpu;
    runBoth("rms_norm", {x, w}, {zeros(t, {s.rows, s.width})}, epsilon(), cpu, gpu);
    expectClose("rms_norm " + where, cpu[0], gpu[0]);
    runBoth("rms_norm_grad", {x, w, dy}, {zeros(t, {s.rows, s.width}), zeros(t, {s.width})},
            epsilon(), cpu, gpu);
    expectClose("rms_norm_grad input " + where, cpu[0], gpu[0]);
    expectClose("rms_norm_grad weight " + where, cpu[1], gpu[1]);
  }
}

} // namespace
} // namespace apc::kernels
