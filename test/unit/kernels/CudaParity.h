// Helpers of the CUDA kernel tests (test/unit/kernels/Cuda*Test.cpp): host operands with
// seeded random contents, one kernel run on the CPU backend and on cuda:0 with the same
// inputs, and the comparison with the stated tolerances.
//
// Tolerances, per output with M = max |cpu| over the output:
//   f32:      |cuda - cpu| <= rel * max(|cpu|, M / 16), rel = 1e-5 unless a test states
//             another. Both backends compute in f32; the CPU sums in double where CUDA
//             sums f32 trees, and exp differs in the last bits (the CPU's polynomial,
//             CUDA's expf): a few f32 ulps, ~1e-7 relative.
//   bf16/f16: |cuda - cpu| <= 2^-7 max(|cpu|, |cuda|) + 2^-10 M: one bf16 ulp (f32
//             differences can fall on either side of a rounding boundary), plus room for
//             values cancelled near zero.
//   integers: exact.
#pragma once

#include "runtime/device/cuda/CudaDevice.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/Libraries.h"
#include "runtime/support/HalfFloat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace apc::kernels::testing {

// Skips the test, with the reason in the ctest summary, where no GPU is visible.
#define APC_REQUIRE_GPU()                                                                    \
  do {                                                                                       \
    if (::apc::device::visibleCudaDevices() == 0)                                            \
      GTEST_SKIP() << "no CUDA device is visible: run tools/gpu_check.sh on a GPU machine";  \
  } while (0)

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
  // Element i as a double (floats widened, integers converted).
  double at(int64_t i) const {
    switch (dtype) {
    case DType::F32: {
      float v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      return v;
    }
    case DType::I32: {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      return double(v);
    }
    case DType::I64: {
      int64_t v;
      std::memcpy(&v, bytes.data() + 8 * i, 8);
      return double(v);
    }
    default: {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      return dtype == DType::BF16 ? bf16ToFloat(h) : f16ToFloat(h);
    }
    }
  }
  void set(int64_t i, double v) {
    switch (dtype) {
    case DType::F32: {
      float f = float(v);
      std::memcpy(bytes.data() + 4 * i, &f, 4);
      break;
    }
    case DType::I32: {
      int32_t n = int32_t(v);
      std::memcpy(bytes.data() + 4 * i, &n, 4);
      break;
    }
    case DType::I64: {
      int64_t n = int64_t(v);
      std::memcpy(bytes.data() + 8 * i, &n, 8);
      break;
    }
    default: {
      uint16_t h = dtype == DType::BF16 ? floatToBf16(float(v)) : floatToF16(float(v));
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    }
  }
};

inline Operand zeros(DType dtype, std::vector<int64_t> shape) {
  Operand o{dtype, std::move(shape), {}};
  o.bytes.assign(size_t(o.count()) * dtypeSize(dtype), 0);
  return o;
}

// Uniform in [lo, hi) (floats), rounded to the storage type.
inline Operand randomOperand(DType dtype, std::vector<int64_t> shape, std::mt19937 &rng,
                             double lo = -2.0, double hi = 2.0) {
  Operand o = zeros(dtype, std::move(shape));
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < o.count(); ++i)
    o.set(i, dist(rng));
  return o;
}

// Integers uniform in [lo, hi) (ids, labels, steps).
inline Operand randomInts(DType dtype, std::vector<int64_t> shape, std::mt19937 &rng, int64_t lo,
                          int64_t hi) {
  Operand o = zeros(dtype, std::move(shape));
  std::uniform_int_distribution<int64_t> dist(lo, hi - 1);
  for (int64_t i = 0; i < o.count(); ++i)
    o.set(i, double(dist(rng)));
  return o;
}

inline Attribute intAttr(const char *name, int64_t v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Int;
  a.i = v;
  return a;
}
inline Attribute floatAttr(const char *name, double v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Float;
  a.f = v;
  return a;
}
inline Attribute boolAttr(const char *name, bool v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Bool;
  a.b = v;
  return a;
}
inline Attribute stringAttr(const char *name, std::string v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::String;
  a.s = std::move(v);
  return a;
}
inline Attribute intsAttr(const char *name, std::vector<int64_t> v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}

// Runs `kernel` on the CPU backend and on cuda:0 with the same inputs (each backend's
// prepare first, the CUDA kernel's workspace reserved as the backend will, and a
// cuBLASLt handle in the context, as the backend will give it);
// `cpuOut` and `cudaOut` start as `outputs` (so outputs that are also read start equal).
inline void runBoth(const std::string &kernel, const std::vector<Operand> &inputs,
                    const std::vector<Operand> &outputs, const Attributes &attrs,
                    std::vector<Operand> &cpuOut, std::vector<Operand> &cudaOut) {
  cpuOut = outputs;
  cudaOut = outputs;
  std::vector<Operand> cpuIn = inputs;
  std::vector<TensorView> in, out;
  for (Operand &o : cpuIn)
    in.push_back({o.bytes.data(), o.dtype, o.shape});
  for (Operand &o : cpuOut)
    out.push_back({o.bytes.data(), o.dtype, o.shape});
  const KernelInfo *cpu = findCpuKernel(kernel);
  ASSERT_NE(cpu, nullptr) << kernel;
  Status prepared = cpu->prepare(in, out, attrs);
  ASSERT_TRUE(prepared) << prepared.message();
  Status ran = cpu->run(KernelContext{}, in, out, attrs);
  ASSERT_TRUE(ran) << ran.message();

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
  ASSERT_NE(k, nullptr) << kernel << " has no CUDA kernel";
  ASSERT_TRUE(k->prepare(dIn, dOut, attrs));
  auto libraries = cuda::Libraries::create();
  ASSERT_TRUE(libraries) << libraries.message();
  KernelContext context;
  context.blasLt = (*libraries)->blasLt();
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
    ASSERT_TRUE(
        (*device)->download(cudaOut[i].bytes.data(), dOut[i].data, cudaOut[i].bytes.size()));
  for (void *m : held)
    (*device)->release(m);
}

// The comparison of the header's tolerances; `rel` is f32's relative bound.
inline void expectClose(const std::string &what, const Operand &cpu, const Operand &cuda,
                        double rel = 1e-5) {
  ASSERT_EQ(cpu.count(), cuda.count()) << what;
  ASSERT_EQ(cpu.dtype, cuda.dtype) << what;
  bool integer = cpu.dtype == DType::I32 || cpu.dtype == DType::I64;
  double m = 0;
  for (int64_t i = 0; i < cpu.count(); ++i)
    m = std::max(m, std::fabs(cpu.at(i)));
  int bad = 0;
  for (int64_t i = 0; i < cpu.count() && bad < 5; ++i) {
    double want = cpu.at(i), got = cuda.at(i);
    double bound = integer                  ? 0
                   : cpu.dtype == DType::F32 ? rel * std::max(std::fabs(want), m / 16)
                                             : std::ldexp(1.0, -7) *
                                                       std::max(std::fabs(want), std::fabs(got)) +
                                                   std::ldexp(1.0, -10) * m;
    bool same = std::isnan(want) ? std::isnan(got) : std::fabs(got - want) <= bound;
    if (!same) {
      ADD_FAILURE() << what << " element " << i << ": cuda " << got << ", cpu " << want
                    << " (bound " << bound << ")";
      ++bad;
    }
  }
}

} // namespace apc::kernels::testing
