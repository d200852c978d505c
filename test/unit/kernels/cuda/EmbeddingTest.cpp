// embedding and embedding_grad on CUDA (runtime/kernels/cuda/Embedding.cu).
//
// Without a GPU: the kernels' indexing and arithmetic (EmbeddingMath.h) driven over
// whole tensors on the host as the launches do (the gather; the ids' check; the keys,
// each radix pass's tile histograms, one-block scan and tile scatter, then one block
// per row) must equal the CPU backend's kernel bit for bit: the gather copies, and the
// gradient sums the same values in the same (position) order in double and rounds once.
// Also the sort's stability, the bad-id message, the workspace sizes and refusals.
// With a GPU: the same equality (and the tolerances of CudaParity.h), the bad-id error,
// and repeated runs giving identical bytes.
#include "test/unit/kernels/CudaParity.h"

#include "runtime/kernels/cuda/EmbeddingMath.h"

#include <gtest/gtest.h>

#include <climits>

namespace apc::kernels {
namespace {

using namespace testing;
using cuda::kRadixDigits;
using cuda::kSortTile;

// Runs the CPU backend's kernel; returns its status.
Status runCpu(const char *kernel, std::vector<Operand> inputs, std::vector<Operand> &outputs,
              const Attributes &attrs) {
  std::vector<TensorView> in, out;
  for (Operand &o : inputs)
    in.push_back({o.bytes.data(), o.dtype, o.shape});
  for (Operand &o : outputs)
    out.push_back({o.bytes.data(), o.dtype, o.shape});
  const KernelInfo *k = findCpuKernel(kernel);
  Status prepared = k->prepare(in, out, attrs);
  EXPECT_TRUE(prepared) << prepared.message();
  return k->run(KernelContext{}, in, out, attrs);
}

Attributes shard(int64_t start) { return Attributes({intAttr("vocab_start", start)}); }

// ---- host emulation of Embedding.cu -----------------------------------------------

// The first bad position's message as the check kernel and the host find it, or "".
std::string emulateCheck(const char *kernel, const Operand &ids, int64_t vocab) {
  unsigned long long first = cuda::kNoBadPosition;
  for (int64_t p = 0; p < ids.count(); ++p)
    if (cuda::idOutside(int64_t(ids.at(p)), vocab))
      first = std::min(first, (unsigned long long)p);
  if (first == cuda::kNoBadPosition)
    return "";
  return cuda::badIdMessage(kernel, int64_t(ids.at(int64_t(first))), ids.shape, int64_t(first),
                            vocab);
}

Operand emulateEmbedding(const Operand &weight, const Operand &ids, const Attributes &attrs) {
  int64_t vocab = weight.shape[0], hidden = weight.shape[1], n = ids.count();
  std::vector<int64_t> shape = ids.shape;
  shape.push_back(hidden);
  Operand out = zeros(weight.dtype, shape);
  int64_t start = attrs.getInt("vocab_start", 0);
  for (int64_t i = 0; i < n * hidden; ++i) {
    int64_t row = cuda::embeddingRow(int64_t(ids.at(i / hidden)), start, vocab);
    int64_t source = cuda::embeddingSource(i, hidden, row);
    out.set(i, source >= 0 ? weight.at(source) : 0.0);
  }
  return out;
}

// A tile's digits as loadTileDigits leaves them in shared memory; returns the count.
int64_t tileDigits(const std::vector<uint32_t> &keys, int64_t tile, int pass,
                   std::vector<uint32_t> &digits) {
  int64_t n = int64_t(keys.size()), begin = tile * kSortTile;
  int64_t count = std::min(kSortTile, n - begin);
  digits.assign(size_t(kSortTile), kRadixDigits);
  for (int64_t t = 0; t < count; ++t)
    digits[size_t(t)] = cuda::radixDigit(keys[size_t(begin + t)], pass);
  return count;
}

// exclusiveScanKernel, thread by thread.
void emulateScan(std::vector<uint32_t> &counts) {
  int64_t m = int64_t(counts.size());
  std::vector<uint32_t> sums(cuda::kScanThreads);
  for (uint32_t t = 0; t < cuda::kScanThreads; ++t) {
    cuda::Range r = cuda::scanRange(t, cuda::kScanThreads, m);
    for (int64_t k = r.begin; k < r.end; ++k)
      sums[t] += counts[size_t(k)];
  }
  uint32_t carry = 0;
  for (uint32_t &s : sums) {
    uint32_t v = s;
    s = carry;
    carry += v;
  }
  for (uint32_t t = 0; t < cuda::kScanThreads; ++t) {
    cuda::Range r = cuda::scanRange(t, cuda::kScanThreads, m);
    uint32_t c = sums[t];
    for (int64_t k = r.begin; k < r.end; ++k) {
      uint32_t v = counts[size_t(k)];
      counts[size_t(k)] = c;
      c += v;
    }
  }
}

// The sorted keys and positions of embedding_grad's radix sort.
void emulateSort(const Operand &ids, int64_t start, int64_t rows, std::vector<uint32_t> &keys,
                 std::vector<uint32_t> &positions) {
  int64_t n = ids.count(), tiles = cuda::sortTiles(n);
  keys.resize(size_t(n));
  positions.resize(size_t(n));
  for (int64_t p = 0; p < n; ++p) {
    keys[size_t(p)] = cuda::sortKey(int64_t(ids.at(p)), start, rows);
    positions[size_t(p)] = uint32_t(p);
  }
  std::vector<uint32_t> digits;
  for (int pass = 0; pass < cuda::radixPasses(rows); ++pass) {
    std::vector<uint32_t> histograms(size_t(tiles * kRadixDigits));
    for (int64_t tile = 0; tile < tiles; ++tile) {
      int64_t count = tileDigits(keys, tile, pass, digits);
      for (uint32_t d = 0; d < kRadixDigits; ++d)
        histograms[size_t(cuda::histogramIndex(d, tile, tiles))] =
            cuda::tileDigitCount(digits.data(), count, d);
    }
    emulateScan(histograms);
    std::vector<uint32_t> keysOut(keys.size()), positionsOut(keys.size());
    for (int64_t tile = 0; tile < tiles; ++tile) {
      int64_t count = tileDigits(keys, tile, pass, digits);
      for (int64_t t = 0; t < count; ++t) {
        int64_t p = tile * kSortTile + t;
        int64_t to = histograms[size_t(cuda::histogramIndex(digits[size_t(t)], tile, tiles))] +
                     cuda::tileRank(digits.data(), t);
        keysOut[size_t(to)] = keys[size_t(p)];
        positionsOut[size_t(to)] = positions[size_t(p)];
      }
    }
    keys.swap(keysOut);
    positions.swap(positionsOut);
  }
}

// A double rounded once to the operand's dtype (the kernel's storeDouble).
void setDouble(Operand &o, int64_t i, double v) {
  o.set(i, o.dtype == DType::F32 ? v : double(toFloatRoundToOdd(v)));
}

Operand emulateEmbeddingGrad(const Operand &ids, const Operand &grad, int64_t vocab,
                             const Attributes &attrs) {
  int64_t hidden = grad.shape.back(), n = ids.count();
  std::vector<uint32_t> keys, positions;
  emulateSort(ids, attrs.getInt("vocab_start", 0), vocab, keys, positions);
  Operand dw = zeros(grad.dtype, {vocab, hidden});
  auto load = [&](int64_t i) { return float(grad.at(i)); };
  for (int64_t v = 0; v < vocab; ++v) {
    int64_t begin = cuda::lowerBound(keys.data(), n, uint32_t(v));
    int64_t end = cuda::lowerBound(keys.data(), n, uint32_t(v + 1));
    for (int64_t h = 0; h < hidden; ++h)
      setDouble(dw, v * hidden + h,
                cuda::rowGradient(load, positions.data(), begin, end, hidden, h));
  }
  return dw;
}

// ---- cases ---------------------------------------------------------------------------

struct Case {
  int64_t vocab, hidden;
  std::vector<int64_t> idsShape;
  int64_t lo, hi; // ids uniform in [lo, hi)
  Attributes attrs;
  std::string what;
};

std::vector<Case> cases() {
  return {
      {1, 1, {1}, 0, 1, Attributes(), "one id"},
      {50, 24, {3, 700}, 0, 50, Attributes(), "many repeats, 5 tiles"},
      {70000, 8, {2, 1500}, 0, 70000, Attributes(), "3 radix passes"},
      {100, 16, {4, 300}, -5, 300, shard(120), "vocab block, other blocks' ids"},
      {256, 8, {600}, 0, 600, shard(256), "block of 256 rows (2 passes)"},
      {7, 5, {0}, 0, 7, Attributes(), "no ids"},
  };
}

TEST(CudaEmbeddingMath, HostEmulationEqualsTheCpuBitForBit) {
  std::mt19937 rng(13);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (DType idType : {DType::I32, DType::I64})
      for (const Case &c : cases()) {
        SCOPED_TRACE(std::string(dtypeName(t)) + " " + dtypeName(idType) + " " + c.what);
        Operand ids = randomInts(idType, c.idsShape, rng, c.lo, c.hi);
        Operand weight = randomOperand(t, {c.vocab, c.hidden}, rng);
        std::vector<int64_t> outShape = c.idsShape;
        outShape.push_back(c.hidden);
        std::vector<Operand> cpu = {zeros(t, outShape)};
        ASSERT_TRUE(runCpu("embedding", {weight, ids}, cpu, c.attrs));
        if (!c.attrs.has("vocab_start"))
          EXPECT_EQ(emulateCheck("embedding", ids, c.vocab), "");
        EXPECT_EQ(emulateEmbedding(weight, ids, c.attrs).bytes, cpu[0].bytes);

        Operand grad = randomOperand(t, outShape, rng);
        std::vector<Operand> cpuGrad = {zeros(t, {c.vocab, c.hidden})};
        ASSERT_TRUE(runCpu("embedding_grad", {ids, grad}, cpuGrad, c.attrs));
        EXPECT_EQ(emulateEmbeddingGrad(ids, grad, c.vocab, c.attrs).bytes, cpuGrad[0].bytes);
      }
}

TEST(CudaEmbeddingMath, TheSortIsStableByRow) {
  std::mt19937 rng(17);
  for (int64_t rows : {int64_t(3), int64_t(255), int64_t(256), int64_t(70000)}) {
    Operand ids = randomInts(DType::I64, {2000}, rng, -10, rows + 10);
    std::vector<uint32_t> keys, positions;
    emulateSort(ids, 0, rows, keys, positions);
    ASSERT_EQ(keys.size(), 2000u);
    for (size_t k = 0; k < keys.size(); ++k) {
      EXPECT_EQ(keys[k], cuda::sortKey(int64_t(ids.at(positions[k])), 0, rows));
      if (k > 0) // by key, then by position
        EXPECT_TRUE(keys[k - 1] < keys[k] ||
                    (keys[k - 1] == keys[k] && positions[k - 1] < positions[k]))
            << "rows " << rows << " at " << k;
    }
  }
  EXPECT_EQ(cuda::radixPasses(255), 1);
  EXPECT_EQ(cuda::radixPasses(256), 2);
  EXPECT_EQ(cuda::radixPasses(70000), 3);
  EXPECT_EQ(cuda::radixPasses(int64_t(INT32_MAX)), 4);
}

TEST(CudaEmbeddingMath, BadIdsAreReportedAsTheCpuReportsThem) {
  for (const char *kernel : {"embedding", "embedding_grad"})
    for (DType idType : {DType::I32, DType::I64}) {
      Operand ids = zeros(idType, {2, 3});
      ids.set(4, 10); // the first bad one: position [1, 1]
      ids.set(5, -1);
      Operand rows = zeros(DType::F32, {10, 4}), other = zeros(DType::F32, {2, 3, 4});
      std::vector<Operand> out = {std::string(kernel) == "embedding" ? other : rows};
      Status cpu = std::string(kernel) == "embedding"
                       ? runCpu(kernel, {rows, ids}, out, Attributes())
                       : runCpu(kernel, {ids, other}, out, Attributes());
      ASSERT_FALSE(cpu);
      EXPECT_EQ(emulateCheck(kernel, ids, 10), cpu.message());
    }
}

TEST(CudaEmbedding, AskForTheirWorkspaceAndRefuseLess) {
  const KernelInfo *forward = cuda::findCudaKernel("embedding");
  const KernelInfo *backward = cuda::findCudaKernel("embedding_grad");
  ASSERT_NE(forward, nullptr);
  ASSERT_NE(backward, nullptr);
  std::vector<TensorView> weight = {{nullptr, DType::BF16, {1000, 64}}};
  TensorView ids{nullptr, DType::I32, {4, 300}}, rows{nullptr, DType::BF16, {4, 300, 64}};
  // embedding: the bad-id flag, none with vocab_start (no check).
  EXPECT_EQ(forward->workspace({weight[0], ids}, {rows}, Attributes()), 8u);
  EXPECT_EQ(forward->workspace({weight[0], ids}, {rows}, shard(0)), 0u);
  Status s = forward->run(KernelContext{}, {weight[0], ids}, {rows}, Attributes());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "embedding needs 8 bytes of workspace; the backend gave 0");
  // embedding_grad, 1200 positions: the flag (256), keys and positions twice (4 x 4864),
  // 3 tiles' histograms (3072).
  EXPECT_EQ(backward->workspace({ids, rows}, weight, Attributes()), 256u + 4 * 4864 + 3072);
  s = backward->run(KernelContext{}, {ids, rows}, weight, Attributes());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "embedding_grad needs 22784 bytes of workspace; the backend gave 0");
  // Beyond the sort's 32-bit positions: refused before anything is launched.
  int64_t huge = int64_t(1) << 32;
  s = backward->run(KernelContext{}, {{nullptr, DType::I32, {huge}},
                                      {nullptr, DType::BF16, {huge, 64}}},
                    weight, Attributes());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("more than the CUDA kernel handles"), std::string::npos)
      << s.message();
  // Nothing at all: nothing launched.
  std::vector<TensorView> noRows = {{nullptr, DType::BF16, {0, 64}}};
  EXPECT_TRUE(backward->run(KernelContext{}, {{nullptr, DType::I32, {0}},
                                              {nullptr, DType::BF16, {0, 64}}},
                            noRows, Attributes()));
  EXPECT_TRUE(forward->run(KernelContext{}, {weight[0], {nullptr, DType::I32, {0}}},
                           {{nullptr, DType::BF16, {0, 64}}}, Attributes()));
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

std::vector<Case> gpuCases() {
  std::vector<Case> all = cases();
  // More result elements than one full grid (132 x 16 x 256), hidden not a multiple of
  // the block, a popular id summing thousands of positions.
  all.push_back({32000, 520, {4, 512}, 0, 32000, Attributes(), "more than one grid"});
  all.push_back({3, 1000, {8, 1024}, 0, 3, Attributes(), "3 ids, 8192 positions"});
  all.push_back(
      {128256, 64, {2, 4096}, 0, 192384, shard(64128), "block of 128256 rows at 64128"});
  return all;
}

TEST(CudaParity, EmbeddingAndEmbeddingGradMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(19);
  for (DType t : {DType::F32, DType::BF16})
    for (DType idType : {DType::I32, DType::I64})
      for (const Case &c : gpuCases()) {
        std::string where = std::string(dtypeName(t)) + " " + dtypeName(idType) + " " + c.what;
        Operand ids = randomInts(idType, c.idsShape, rng, c.lo, c.hi);
        Operand weight = randomOperand(t, {c.vocab, c.hidden}, rng);
        std::vector<int64_t> outShape = c.idsShape;
        outShape.push_back(c.hidden);
        std::vector<Operand> cpu, gpu;
        runBoth("embedding", {weight, ids}, {zeros(t, outShape)}, c.attrs, cpu, gpu);
        EXPECT_EQ(cpu[0].bytes, gpu[0].bytes) << "embedding " << where; // a copy
        Operand grad = randomOperand(t, outShape, rng);
        runBoth("embedding_grad", {ids, grad}, {zeros(t, {c.vocab, c.hidden})}, c.attrs, cpu,
                gpu);
        expectClose("embedding_grad " + where, cpu[0], gpu[0]);
        // Same values summed in the same order in double, rounded once: equal bytes.
        EXPECT_EQ(cpu[0].bytes, gpu[0].bytes) << "embedding_grad " << where;
        std::vector<Operand> again;
        runBoth("embedding_grad", {ids, grad}, {zeros(t, {c.vocab, c.hidden})}, c.attrs, cpu,
                again);
        EXPECT_EQ(gpu[0].bytes, again[0].bytes) << "embedding_grad twice " << where;
      }
}

// A bad id: the CPU's error, and the output left as it was.
TEST(CudaParity, EmbeddingBadIdIsTheCpuError) {
  APC_REQUIRE_GPU();
  auto device = device::cudaDevice(0);
  ASSERT_TRUE(device) << device.message();
  for (const char *kernel : {"embedding", "embedding_grad"}) {
    bool forward = std::string(kernel) == "embedding";
    Operand ids = zeros(DType::I64, {3, 1000});
    ids.set(1500, 1000);
    ids.set(2000, -3);
    Operand rows = zeros(DType::F32, {1000, 8}), other = zeros(DType::F32, {3, 1000, 8});
    std::vector<Operand> inputs = forward ? std::vector<Operand>{rows, ids}
                                          : std::vector<Operand>{ids, other};
    Operand output = forward ? other : rows;
    output.set(0, 7.0); // a mark the kernel must not overwrite
    std::vector<Operand> cpuOut = {output};
    Status cpu = runCpu(kernel, inputs, cpuOut, Attributes());
    ASSERT_FALSE(cpu);
    std::vector<void *> held;
    auto place = [&](const Operand &o) {
      void *m = *(*device)->allocate(o.bytes.size());
      held.push_back(m);
      EXPECT_TRUE((*device)->upload(m, o.bytes.data(), o.bytes.size()));
      return TensorView{m, o.dtype, o.shape};
    };
    std::vector<TensorView> in = {place(inputs[0]), place(inputs[1])}, out = {place(output)};
    const KernelInfo *k = cuda::findCudaKernel(kernel);
    KernelContext context;
    context.workspaceBytes = k->workspace(in, out, Attributes());
    context.workspace = *(*device)->allocate(context.workspaceBytes);
    held.push_back(context.workspace);
    Status gpu = k->run(context, in, out, Attributes());
    ASSERT_FALSE(gpu) << kernel;
    EXPECT_EQ(gpu.message(), cpu.message());
    Operand after = output;
    ASSERT_TRUE((*device)->download(after.bytes.data(), out[0].data, after.bytes.size()));
    EXPECT_EQ(after.bytes, output.bytes) << kernel << " wrote its output despite the bad id";
    for (void *m : held)
      (*device)->release(m);
  }
}

} // namespace
} // namespace apc::kernels
