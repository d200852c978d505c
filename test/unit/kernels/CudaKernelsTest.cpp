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

#define REQUIRE_GPU()                                                                    \
  do {                                                                                   \
    if (device::visibleCudaDevices() == 0)                                               \
      GTEST_SKIP() << "no CUDA device is visible: run tools/gpu_check.sh on a GPU machine"; \
  } while (0)

TEST(CudaKernels, EveryKernelIsValidatedByItsCpuTwin) {
  ASSERT_FALSE(cuda::cudaKernels().empty());
  for (const KernelInfo &k : cuda::cudaKernels()) {
    const KernelInfo *cpu = findCpuKernel(k.name);
    ASSERT_NE(cpu, nullptr) << k.name;
    EXPECT_EQ(k.prepare, cpu->prepare) << k.name;
    EXPECT_NE(k.run, cpu->run) << k.name;
    EXPECT_EQ(cuda::findCudaKernel(k.name), &k);
  }
  EXPECT_EQ(cuda::findCudaKernel("no_such_kernel"), nullptr);
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

// One operand: its dtype, shape and host bytes.
struct Operand {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  float at(int64_t i) const {
    if (dtype == DType::F32) {
      float v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      return v;
    }
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    return dtype == DType::BF16 ? bf16ToFloat(h) : f16ToFloat(h);
  }
};

Operand randomOperand(DType dtype, std::vector<int64_t> shape, std::mt19937 &rng) {
  Operand o{dtype, std::move(shape), {}};
  o.bytes.resize(size_t(o.count()) * dtypeSize(dtype));
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (int64_t i = 0; i < o.count(); ++i) {
    float v = dist(rng);
    if (dtype == DType::F32) {
      std::memcpy(o.bytes.data() + 4 * i, &v, 4);
    } else {
      uint16_t h = dtype == DType::BF16 ? floatToBf16(v) : floatToF16(v);
      std::memcpy(o.bytes.data() + 2 * i, &h, 2);
    }
  }
  return o;
}

Operand zeros(DType dtype, std::vector<int64_t> shape) {
  Operand o{dtype, std::move(shape), {}};
  o.bytes.assign(size_t(o.count()) * dtypeSize(dtype), 0);
  return o;
}

// Runs `kernel` on the CPU and on cuda:0 with the same inputs; returns both outputs.
void runBoth(const std::string &kernel, const std::vector<Operand> &inputs,
             const std::vector<Operand> &outputShapes, const Attributes &attrs,
             std::vector<Operand> &cpuOut, std::vector<Operand> &cudaOut) {
  cpuOut = outputShapes;
  cudaOut = outputShapes;
  std::vector<Operand> cpuIn = inputs;
  std::vector<TensorView> in, out;
  for (Operand &o : cpuIn)
    in.push_back({o.bytes.data(), o.dtype, o.shape});
  for (Operand &o : cpuOut)
    out.push_back({o.bytes.data(), o.dtype, o.shape});
  const KernelInfo *cpu = findCpuKernel(kernel);
  ASSERT_NE(cpu, nullptr);
  ASSERT_TRUE(cpu->prepare(in, out, attrs));
  ASSERT_TRUE(cpu->run(KernelContext{}, in, out, attrs));

  auto device = device::cudaDevice(0);
  ASSERT_TRUE(device) << device.message();
  std::vector<void *> held;
  auto place = [&](const Operand &o) -> void * {
    auto memory = (*device)->allocate(o.bytes.size());
    EXPECT_TRUE(memory) << memory.message();
    if (!memory)
      return nullptr;
    held.push_back(*memory);
    EXPECT_TRUE((*device)->upload(*memory, o.bytes.data(), o.bytes.size()));
    return *memory;
  };
  std::vector<TensorView> dIn, dOut;
  for (const Operand &o : inputs)
    dIn.push_back({place(o), o.dtype, o.shape});
  for (const Operand &o : cudaOut)
    dOut.push_back({place(o), o.dtype, o.shape});
  const KernelInfo *k = cuda::findCudaKernel(kernel);
  ASSERT_NE(k, nullptr) << kernel;
  ASSERT_TRUE(k->prepare(dIn, dOut, attrs));
  KernelContext context;
  if (k->workspace) {
    context.workspaceBytes = k->workspace(dIn, dOut, attrs);
    auto scratch = (*device)->allocate(context.workspaceBytes);
    ASSERT_TRUE(scratch) << scratch.message();
    held.push_back(*scratch);
    context.workspace = *scratch;
  }
  Status s = k->run(context, dIn, dOut, attrs);
  ASSERT_TRUE(s) << s.message();
  for (size_t i = 0; i < dOut.size(); ++i)
    ASSERT_TRUE((*device)->download(cudaOut[i].bytes.data(), dOut[i].data, cudaOut[i].bytes.size()));
  for (void *m : held)
    (*device)->release(m);
}

void expectClose(const std::string &what, const Operand &cpu, const Operand &cuda) {
  ASSERT_EQ(cpu.count(), cuda.count());
  double m = 0;
  for (int64_t i = 0; i < cpu.count(); ++i)
    m = std::max(m, double(std::fabs(cpu.at(i))));
  int bad = 0;
  for (int64_t i = 0; i < cpu.count() && bad < 5; ++i) {
    double want = cpu.at(i), got = cuda.at(i);
    double bound = cpu.dtype == DType::F32
                       ? 1e-5 * std::max(std::fabs(want), m / 16)
                       : std::ldexp(1.0, -7) * std::max(std::fabs(want), std::fabs(got)) +
                             std::ldexp(1.0, -10) * m;
    if (!(std::fabs(got - want) <= bound)) {
      ADD_FAILURE() << what << " element " << i << ": cuda " << got << ", cpu " << want
                    << " (bound " << bound << ")";
      ++bad;
    }
  }
}

Attributes epsilon() {
  Attribute eps;
  eps.name = "epsilon";
  eps.kind = Attribute::Kind::Float;
  eps.f = 1e-5;
  return Attributes({eps});
}

TEST(CudaParity, ElementwiseKernelsMatchTheCpu) {
  REQUIRE_GPU();
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
  REQUIRE_GPU();
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
