// The CUDA gemm (runtime/kernels/cuda/Gemm.cpp, GemmLayout.h) against the CPU backend's.
//
// Without a GPU (CudaGemm.*): the row-major -> column-major mapping is proved by a naive
// column-major GEMM that reads the operands exactly as cuBLASLt reads the descriptors
// ltGemmOf makes (m, n, k, ld, transposes, batch count and strides, gemm's b as the first
// operand), compared with the CPU kernel over many shapes, transposes, batch ranks, the
// shared rank-2 b of ap.linear and the three float dtypes. Inputs are small integers, so
// every sum is exact in f32 whatever its order: the comparison is bit for bit. Plus the
// checks the kernel makes before it touches the GPU.
//
// With a GPU (CudaParity.Gemm*): cuBLASLt against the CPU kernel. Bounds, per element
// with S = sum_l |a_il| |b_lj| and gamma_K = K 2^-24 / (1 - K 2^-24): any f32 summation
// order of K products, rounding to nearest, is within gamma_K S of the exact sum (the
// CPU's); tensor cores may truncate their adds (2^-23 each), 2 gamma_K S. So the two
// differ by at most 3 gamma_K S before the output is rounded:
//   f32:       |cuda - cpu| <= max(3 gamma_K S, CudaParity.h's 1e-5 rule); for K in the
//              hundreds two correct f32 GEMMs can differ by more than 1e-5 of M/16, the
//              error analysis bound covers them; a TF32 product (2^-11 relative) would
//              not fit the exact tests below.
//   bf16, f16: both round their f32 sums once to the storage type (unit roundoff
//              u_s = 2^-9 for bf16, 2^-12 for f16), so
//              |cuda - cpu| <= 2 u_s (1 + 2 u_s) max(|cpu|, |cuda|) + 3 gamma_K S.
// And exact: f32 inputs with 16-bit significands times small integers (sums exact in f32,
// but not in TF32) and bf16 small integers must match bit for bit.
#include "test/unit/kernels/CudaParity.h"

#include "runtime/kernels/cuda/Gemm.h"
#include "runtime/kernels/cuda/GemmLayout.h"
#include "runtime/kernels/cuda/Libraries.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace apc::kernels {
namespace {

using namespace testing;
using cuda::ColumnMajorOperand;
using cuda::LtGemm;

// One gemm instruction: a [batch..., M, K] (or [batch..., K, M]), b [batch..., K, N] (or
// [batch..., N, K]), or b [K, N] / [N, K] shared by every row of a (ap.linear).
struct Case {
  std::vector<int64_t> batch;
  int64_t m, k, n;
  bool transposeA = false, transposeB = false, sharedB = false;

  std::vector<int64_t> aShape() const {
    return with(batch, transposeA ? k : m, transposeA ? m : k);
  }
  std::vector<int64_t> bShape() const {
    return with(sharedB ? std::vector<int64_t>{} : batch, transposeB ? n : k, transposeB ? k : n);
  }
  std::vector<int64_t> cShape() const { return with(batch, m, n); }
  Attributes attrs() const {
    return Attributes({boolAttr("transpose_a", transposeA), boolAttr("transpose_b", transposeB)});
  }
  std::string name() const {
    std::string s = "batch [";
    for (int64_t d : batch)
      s += std::to_string(d) + " ";
    return s + "] m " + std::to_string(m) + " k " + std::to_string(k) + " n " +
           std::to_string(n) + (transposeA ? " ta" : "") + (transposeB ? " tb" : "") +
           (sharedB ? " shared b" : "");
  }

private:
  static std::vector<int64_t> with(std::vector<int64_t> dims, int64_t rows, int64_t cols) {
    dims.push_back(rows);
    dims.push_back(cols);
    return dims;
  }
};

// Shapes: 1, sizes not multiples of 8 or 16, a long K, K = 0; ranks 2 to 4.
std::vector<Case> cases() {
  std::vector<Case> all;
  const int64_t mkn[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {8, 16, 24}, {13, 1, 31},
                            {1, 64, 1}, {2, 200, 3}, {5, 0, 4}, {31, 17, 1}};
  for (const auto &d : mkn)
    for (std::vector<int64_t> batch : {std::vector<int64_t>{}, {3}, {2, 3}})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          all.push_back({batch, d[0], d[1], d[2], ta, tb, false});
          if (!batch.empty() && !ta) // the linear form: b rank 2, no transpose_a
            all.push_back({batch, d[0], d[1], d[2], false, tb, true});
        }
  return all;
}

// Small integers: every product and sum below is exact in f32 (and in bf16/f16 storage).
Operand integers(DType dtype, std::vector<int64_t> shape, std::mt19937 &rng) {
  Operand o = zeros(dtype, std::move(shape));
  std::uniform_int_distribution<int> dist(-4, 4);
  for (int64_t i = 0; i < o.count(); ++i)
    o.set(i, dist(rng));
  return o;
}

Operand cpuGemm(const Operand &a, const Operand &b, const Case &c) {
  Operand out = zeros(a.dtype, c.cShape());
  Operand ca = a, cb = b;
  std::vector<TensorView> in = {{ca.bytes.data(), ca.dtype, ca.shape},
                                {cb.bytes.data(), cb.dtype, cb.shape}};
  std::vector<TensorView> outs = {{out.bytes.data(), out.dtype, out.shape}};
  const KernelInfo *k = findCpuKernel("gemm");
  EXPECT_NE(k, nullptr);
  Status prepared = k->prepare(in, outs, c.attrs());
  EXPECT_TRUE(prepared) << prepared.message();
  Status ran = k->run(KernelContext{}, in, outs, c.attrs());
  EXPECT_TRUE(ran) << ran.message();
  return out;
}

// Element (row, col) of op(X) in batch p, read as cuBLASLt reads a column-major operand
// of this description; counts reads outside the operand's storage in `outside`.
double opElement(const Operand &x, const ColumnMajorOperand &o, int64_t p, int64_t row,
                 int64_t col, bool absolute, int &outside) {
  int64_t r = o.transpose ? col : row, c = o.transpose ? row : col;
  int64_t index = p * o.batchStride + r + c * o.ld;
  if (r >= o.rows || c >= o.cols || index < 0 || index >= x.count()) {
    ++outside;
    return 0;
  }
  double v = x.at(index);
  return absolute ? std::fabs(v) : v;
}

// D = op(first) op(second) in double, column-major, batch by batch, exactly as the
// descriptors say, with first = gemm's b and second = gemm's a; D's storage is gemm's c
// (row-major). With `absolute`, sum_l |a_il| |b_lj| (the error bounds' S).
std::vector<double> columnMajorReference(const Operand &a, const Operand &b, const Case &c,
                                         bool absolute = false) {
  cuda::GemmProblem g = cuda::gemmProblem(a.shape, b.shape, c.transposeA, c.transposeB);
  LtGemm lt = cuda::ltGemmOf(g);
  // The descriptors are consistent: op(first) is m x k, op(second) k x n, d m x n.
  auto opRows = [](const ColumnMajorOperand &o) { return o.transpose ? o.cols : o.rows; };
  auto opCols = [](const ColumnMajorOperand &o) { return o.transpose ? o.rows : o.cols; };
  EXPECT_EQ(opRows(lt.first), lt.m);
  EXPECT_EQ(opCols(lt.first), lt.k);
  EXPECT_EQ(opRows(lt.second), lt.k);
  EXPECT_EQ(opCols(lt.second), lt.n);
  EXPECT_EQ(lt.d.rows, lt.m);
  EXPECT_EQ(lt.d.cols, lt.n);
  EXPECT_FALSE(lt.d.transpose);
  for (const ColumnMajorOperand *o : {&lt.first, &lt.second, &lt.d})
    EXPECT_GE(o->ld, std::max<int64_t>(1, o->rows)); // BLAS's rule for ld
  int64_t count = 1;
  for (int64_t d : c.cShape())
    count *= d;
  std::vector<double> d(size_t(count), 0.0);
  int outside = 0;
  for (int64_t p = 0; p < lt.batchCount; ++p)
    for (int64_t j = 0; j < lt.n; ++j)
      for (int64_t i = 0; i < lt.m; ++i) {
        double sum = 0;
        for (int64_t l = 0; l < lt.k; ++l)
          sum += opElement(b, lt.first, p, i, l, absolute, outside) *
                 opElement(a, lt.second, p, l, j, absolute, outside);
        int64_t index = p * lt.d.batchStride + i + j * lt.d.ld;
        if (index < 0 || index >= count)
          ++outside;
        else
          d[size_t(index)] = sum;
      }
  EXPECT_EQ(outside, 0) << "reads or writes outside an operand";
  return d;
}

Operand rounded(const std::vector<double> &values, DType dtype, std::vector<int64_t> shape) {
  Operand o = zeros(dtype, std::move(shape));
  for (int64_t i = 0; i < o.count(); ++i)
    o.set(i, float(values[size_t(i)]));
  return o;
}

TEST(CudaGemm, ColumnMajorMappingMatchesTheCpuKernelExactly) {
  std::mt19937 rng(11);
  int compared = 0;
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (const Case &c : cases()) {
      SCOPED_TRACE(std::string(dtypeName(t)) + " " + c.name());
      Operand a = integers(t, c.aShape(), rng), b = integers(t, c.bShape(), rng);
      Operand want = cpuGemm(a, b, c);
      Operand got = rounded(columnMajorReference(a, b, c), t, c.cShape());
      ASSERT_EQ(got.count(), want.count());
      EXPECT_EQ(got.bytes, want.bytes);
      ++compared;
    }
  EXPECT_GT(compared, 300);
}

TEST(CudaGemm, ColumnMajorMappingMatchesTheCpuKernelOnRealValues) {
  // Uniform reals: the CPU's f32 sums are within gamma_K S of the exact ones.
  std::mt19937 rng(12);
  for (const Case &c : cases()) {
    SCOPED_TRACE(c.name());
    Operand a = randomOperand(DType::F32, c.aShape(), rng);
    Operand b = randomOperand(DType::F32, c.bShape(), rng);
    Operand want = cpuGemm(a, b, c);
    std::vector<double> exact = columnMajorReference(a, b, c);
    std::vector<double> s = columnMajorReference(a, b, c, true);
    int bad = 0;
    for (int64_t i = 0; i < want.count() && bad < 5; ++i) {
      double bound = double(c.k + 2) * std::ldexp(1.0, -24) * s[size_t(i)];
      if (std::fabs(want.at(i) - exact[size_t(i)]) > bound) {
        ADD_FAILURE() << "element " << i << ": cpu " << want.at(i) << ", mapped "
                      << exact[size_t(i)] << " (bound " << bound << ")";
        ++bad;
      }
    }
  }
}

TEST(CudaGemm, TheProblemIsTheCpuBackendsReading) {
  // ap.linear: x [2, 3, 8] times w [5, 8]^T is one product of 6 x 8 by 8 x 5.
  cuda::GemmProblem g = cuda::gemmProblem({2, 3, 8}, {5, 8}, false, true);
  EXPECT_TRUE(g.sharedB);
  EXPECT_EQ(g.batch, 1);
  EXPECT_EQ(g.m, 6);
  EXPECT_EQ(g.k, 8);
  EXPECT_EQ(g.n, 5);
  LtGemm lt = cuda::ltGemmOf(g);
  EXPECT_EQ(lt.m, 5); // cuBLASLt's m is gemm's n: the operands are swapped
  EXPECT_EQ(lt.n, 6);
  EXPECT_TRUE(lt.first.transpose);
  EXPECT_EQ(lt.first.ld, 8);
  EXPECT_FALSE(lt.second.transpose);
  EXPECT_EQ(lt.second.ld, 8);
  EXPECT_EQ(lt.d.ld, 5);
  // Batched with transpose_a: a [4, 7, 3] is op(a) [4, 3, 7].
  g = cuda::gemmProblem({4, 7, 3}, {4, 7, 2}, true, false);
  EXPECT_EQ(g.batch, 4);
  EXPECT_EQ(g.m, 3);
  EXPECT_EQ(g.k, 7);
  EXPECT_EQ(g.n, 2);
  lt = cuda::ltGemmOf(g);
  EXPECT_EQ(lt.batchCount, 4);
  EXPECT_EQ(lt.first.batchStride, 14);
  EXPECT_EQ(lt.second.batchStride, 21);
  EXPECT_EQ(lt.d.batchStride, 6);
  EXPECT_TRUE(lt.second.transpose);
  EXPECT_EQ(lt.second.ld, 3);
}

TEST(CudaGemm, AlignmentIsWhatEveryBatchsMatrixHas) {
  EXPECT_EQ(cuda::operandAlignment(0x10000, 0, 1), 256u);
  EXPECT_EQ(cuda::operandAlignment(0x10002, 0, 1), 2u);
  EXPECT_EQ(cuda::operandAlignment(0x10010, 4096, 1), 16u);
  // A batch stride of 3 f32 (12 bytes) leaves the second matrix 4-byte aligned only.
  EXPECT_EQ(cuda::operandAlignment(0x10000, 12, 2), 4u);
  EXPECT_EQ(cuda::operandAlignment(0x10000, 12, 1), 256u); // one matrix: stride unused
}

TEST(CudaGemm, AsksForItsWorkspaceAndRefusesLessOrNoHandle) {
  const KernelInfo *k = cuda::findCudaKernel("gemm");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->prepare, findCpuKernel("gemm")->prepare);
  ASSERT_NE(k->workspace, nullptr);
  std::vector<TensorView> in = {{nullptr, DType::BF16, {2, 5, 8}}, {nullptr, DType::BF16, {3, 8}}};
  std::vector<TensorView> out = {{nullptr, DType::BF16, {2, 5, 3}}};
  Attributes attrs;
  EXPECT_EQ(k->workspace(in, out, attrs), cuda::kGemmWorkspaceBytes);
  KernelContext context; // checked before anything reaches the GPU
  Status s = k->run(context, in, out, attrs);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("gemm needs 33554432 bytes of workspace; the backend gave 0"),
            std::string::npos)
      << s.message();
  std::vector<uint8_t> scratch(1);
  context.workspace = scratch.data();
  context.workspaceBytes = cuda::kGemmWorkspaceBytes;
  s = k->run(context, in, out, attrs);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("no cuBLASLt handle"), std::string::npos) << s.message();
  // An empty product launches nothing and needs neither.
  std::vector<TensorView> emptyIn = {{nullptr, DType::F32, {0, 8}}, {nullptr, DType::F32, {8, 3}}};
  std::vector<TensorView> emptyOut = {{nullptr, DType::F32, {0, 3}}};
  EXPECT_TRUE(k->run(KernelContext{}, emptyIn, emptyOut, attrs));
}

TEST(CudaGemm, LibrariesMakeAHandleOrSayWhyNot) {
  auto libraries = cuda::Libraries::create();
  if (libraries)
    EXPECT_NE((*libraries)->blasLt(), nullptr);
  else
    EXPECT_EQ(libraries.message().rfind("cuBLASLt: cannot create a handle", 0), 0u)
        << libraries.message();
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

// The header's bounds: 3 gamma_K S plus, for 16-bit storage, two roundings to it.
void expectGemmClose(const std::string &what, const Operand &a, const Operand &b, const Case &c,
                     const Operand &cpu, const Operand &gpu) {
  ASSERT_EQ(cpu.count(), gpu.count()) << what;
  std::vector<double> s = columnMajorReference(a, b, c, true);
  double u = std::ldexp(1.0, -24), gamma = double(c.k) * u / (1 - double(c.k) * u);
  double storage = cpu.dtype == DType::BF16 ? std::ldexp(1.0, -9)
                   : cpu.dtype == DType::F16 ? std::ldexp(1.0, -12)
                                             : 0.0;
  double m = 0;
  for (int64_t i = 0; i < cpu.count(); ++i)
    m = std::max(m, std::fabs(cpu.at(i)));
  int bad = 0;
  for (int64_t i = 0; i < cpu.count() && bad < 5; ++i) {
    double want = cpu.at(i), got = gpu.at(i);
    double bound = 3 * gamma * s[size_t(i)] +
                   2 * storage * (1 + 2 * storage) * std::max(std::fabs(want), std::fabs(got));
    if (cpu.dtype == DType::F32)
      bound = std::max(bound, 1e-5 * std::max(std::fabs(want), m / 16));
    if (!(std::fabs(got - want) <= bound)) {
      ADD_FAILURE() << what << " element " << i << ": cuda " << got << ", cpu " << want
                    << " (bound " << bound << ")";
      ++bad;
    }
  }
}

// Shapes for the GPU: the host cases plus sizes past a tile and a wave of an H100.
std::vector<Case> gpuCases() {
  std::vector<Case> all = cases();
  all.push_back({{}, 300, 520, 130, false, true, false});
  all.push_back({{4}, 129, 67, 255, true, false, false});
  all.push_back({{2, 8}, 1, 300, 77, false, false, false});     // decode-like rows
  all.push_back({{2, 96}, 33, 64, 200, false, true, true});     // ap.linear, M = 6336
  all.push_back({{}, 1536, 96, 1024, false, false, false});     // many tiles
  all.push_back({{}, 16, 4097, 24, true, true, false});         // small M N, long K: split-K
  return all;
}

TEST(CudaParity, GemmMatchesTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(21);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (const Case &c : gpuCases()) {
      std::string what = std::string("gemm ") + dtypeName(t) + " " + c.name();
      Operand a = randomOperand(t, c.aShape(), rng), b = randomOperand(t, c.bShape(), rng);
      std::vector<Operand> cpu, gpu;
      runBoth("gemm", {a, b}, {zeros(t, c.cShape())}, c.attrs(), cpu, gpu);
      if (::testing::Test::HasFatalFailure())
        return;
      expectGemmClose(what, a, b, c, cpu[0], gpu[0]);
    }
}

TEST(CudaParity, GemmIsExactWhereEverySumIs) {
  // f32: a with 16-bit significands (TF32 keeps 11) times integers in [-7, 7], K <= 32:
  // every partial sum is a multiple of 2^-14 below 2^9, exact in f32 in any order.
  APC_REQUIRE_GPU();
  std::mt19937 rng(22);
  std::uniform_int_distribution<int> significand(-(1 << 15), (1 << 15) - 1), small(-7, 7);
  for (const Case &c : cases()) {
    if (c.k > 32)
      continue;
    Operand a = zeros(DType::F32, c.aShape()), b = zeros(DType::F32, c.bShape());
    for (int64_t i = 0; i < a.count(); ++i)
      a.set(i, std::ldexp(double(significand(rng)), -14));
    for (int64_t i = 0; i < b.count(); ++i)
      b.set(i, small(rng));
    std::vector<Operand> cpu, gpu;
    runBoth("gemm", {a, b}, {zeros(DType::F32, c.cShape())}, c.attrs(), cpu, gpu);
    if (::testing::Test::HasFatalFailure())
      return;
    EXPECT_EQ(cpu[0].bytes, gpu[0].bytes) << "f32 " << c.name();
  }
  // bf16 integers: exact f32 sums, rounded once to bf16 by both.
  for (const Case &c : cases()) {
    Operand a = integers(DType::BF16, c.aShape(), rng), b = integers(DType::BF16, c.bShape(), rng);
    std::vector<Operand> cpu, gpu;
    runBoth("gemm", {a, b}, {zeros(DType::BF16, c.cShape())}, c.attrs(), cpu, gpu);
    if (::testing::Test::HasFatalFailure())
      return;
    EXPECT_EQ(cpu[0].bytes, gpu[0].bytes) << "bf16 " << c.name();
  }
}

// Runs the CUDA gemm `times` times on one handle with operands placed `offset` elements
// into their allocations (alignment below cuBLASLt's default 256 bytes); the results of
// each run, and the algorithm searches each run made.
void runOnGpu(const Operand &a, const Operand &b, const Case &c, int64_t offset, int times,
              std::vector<Operand> &results, std::vector<uint64_t> &searches) {
  auto device = device::cudaDevice(0);
  ASSERT_TRUE(device) << device.message();
  auto libraries = cuda::Libraries::create();
  ASSERT_TRUE(libraries) << libraries.message();
  const KernelInfo *k = cuda::findCudaKernel("gemm");
  ASSERT_NE(k, nullptr);
  uint64_t element = dtypeSize(a.dtype);
  std::vector<void *> held;
  auto place = [&](const Operand &o) -> char * {
    auto memory = (*device)->allocate(o.bytes.size() + uint64_t(offset) * element);
    EXPECT_TRUE(memory) << memory.message();
    if (!memory)
      return nullptr;
    held.push_back(*memory);
    char *at = static_cast<char *>(*memory) + offset * int64_t(element);
    EXPECT_TRUE((*device)->upload(at, o.bytes.data(), o.bytes.size()));
    return at;
  };
  Operand c0 = zeros(a.dtype, c.cShape());
  std::vector<TensorView> in = {{place(a), a.dtype, a.shape}, {place(b), b.dtype, b.shape}};
  std::vector<TensorView> out = {{place(c0), c0.dtype, c0.shape}};
  ASSERT_TRUE(k->prepare(in, out, c.attrs()));
  KernelContext context;
  context.blasLt = (*libraries)->blasLt();
  context.workspaceBytes = k->workspace(in, out, c.attrs());
  auto scratch = (*device)->allocate(context.workspaceBytes);
  ASSERT_TRUE(scratch) << scratch.message();
  held.push_back(*scratch);
  context.workspace = *scratch;
  for (int r = 0; r < times; ++r) {
    uint64_t before = cuda::gemmAlgorithmSearches();
    Status s = k->run(context, in, out, c.attrs());
    ASSERT_TRUE(s) << s.message();
    searches.push_back(cuda::gemmAlgorithmSearches() - before);
    Operand result = c0;
    ASSERT_TRUE((*device)->download(result.bytes.data(), out[0].data, result.bytes.size()));
    results.push_back(result);
  }
  for (void *m : held)
    (*device)->release(m);
}

TEST(CudaParity, GemmChoosesOnceIsDeterministicAndTakesUnalignedOperands) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(23);
  for (DType t : {DType::F32, DType::BF16})
    for (int64_t offset : {0, 1, 3}) {
      Case c{{3}, 45, 391, 70, false, true, false};
      std::string what = std::string(dtypeName(t)) + " offset " + std::to_string(offset);
      Operand a = randomOperand(t, c.aShape(), rng), b = randomOperand(t, c.bShape(), rng);
      std::vector<Operand> runs;
      std::vector<uint64_t> searches;
      runOnGpu(a, b, c, offset, 3, runs, searches);
      if (::testing::Test::HasFatalFailure())
        return;
      ASSERT_EQ(runs.size(), 3u);
      // The first call searches (or finds the problem already chosen), the others never.
      EXPECT_LE(searches[0], 1u) << what;
      EXPECT_EQ(searches[1] + searches[2], 0u) << what << ": a search after the first call";
      EXPECT_EQ(runs[0].bytes, runs[1].bytes) << what << ": same bits every run";
      EXPECT_EQ(runs[0].bytes, runs[2].bytes) << what;
      expectGemmClose("gemm " + what, a, b, c, cpuGemm(a, b, c), runs[0]);
    }
}

} // namespace
} // namespace apc::kernels
