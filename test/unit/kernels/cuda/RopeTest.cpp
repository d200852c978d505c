// rope and rope_grad on CUDA (runtime/kernels/cuda/Rope.cu).
//
// Without a GPU: the kernels' arithmetic and indexing (RopeMath.h) driven over whole
// tensors on the host, as the launch loops do (the table, then every pair), must equal
// the CPU backend's kernel bit for bit (same double angles, same f32 rotation); the
// workspace size and its refusal. With a GPU: parity with the CPU within the tolerances
// of CudaParity.h (CUDA's double cos/sin/pow may differ from glibc's in the last bits,
// which can move an f32 table entry by one ulp).
#include "test/unit/kernels/CudaParity.h"

#include "runtime/kernels/cuda/RopeMath.h"

#include <gtest/gtest.h>

namespace apc::kernels {
namespace {

using namespace testing;

Attributes defaultRope(int64_t offset) {
  return Attributes({floatAttr("theta", 10000.0), intAttr("position_offset", offset)});
}
// llama3 scaling whose wavelength bounds fall inside the frequencies of small heads, so
// that kept, scaled and smoothed frequencies all occur.
Attributes llama3Rope(int64_t offset) {
  return Attributes({floatAttr("theta", 500000.0), stringAttr("rope_type", "llama3"),
                     floatAttr("factor", 8.0), floatAttr("low_freq_factor", 1.0),
                     floatAttr("high_freq_factor", 4.0),
                     intAttr("original_max_position_embeddings", 64),
                     intAttr("position_offset", offset)});
}

// Context parallelism: the device at `rank` of `parts` holds two chunks of the sequence.
Attributes withPart(Attributes a, int64_t rank, int64_t parts) {
  a.set(intAttr("seq_shard_rank", rank));
  a.set(intAttr("seq_shard_parts", parts));
  return a;
}

// The CPU backend's rope / rope_grad of x.
Operand cpuRope(const char *kernel, const Operand &x, const Attributes &attrs) {
  Operand in = x, out = zeros(x.dtype, x.shape);
  std::vector<TensorView> ins = {{in.bytes.data(), in.dtype, in.shape}};
  std::vector<TensorView> outs = {{out.bytes.data(), out.dtype, out.shape}};
  const KernelInfo *k = findCpuKernel(kernel);
  EXPECT_TRUE(k->prepare(ins, outs, attrs));
  EXPECT_TRUE(k->run(KernelContext{}, ins, outs, attrs));
  return out;
}

// Rope.cu's two launches on the host, writing into `y` (which may be `x`).
void emulateRope(const Operand &x, Operand &y, const Attributes &attrs, double direction) {
  int64_t seq = x.shape[1], heads = x.shape[2], half = x.shape[3] / 2;
  int64_t entries = seq * half, pairs = x.count() / 2;
  std::vector<float> table(cuda::ropeTableBytes(seq, half) / sizeof(float));
  cuda::RopeFrequencies f = cuda::ropeFrequencies(attrs);
  for (int64_t i = 0; i < entries; ++i)
    cuda::ropeTableEntry(f, i, half, attrs.getInt("position_offset", 0), direction, table[i],
                         table[entries + i], cuda::ropePart(attrs, seq));
  for (int64_t q = 0; q < pairs; ++q) {
    cuda::RopePair p = cuda::ropePair(q, seq, heads, half);
    float y1, y2;
    cuda::ropeRotate(float(x.at(p.first)), float(x.at(p.second)), table[p.entry],
                     table[entries + p.entry], y1, y2);
    y.set(p.first, y1);
    y.set(p.second, y2);
  }
}

struct Case {
  std::vector<int64_t> shape;
  Attributes attrs;
  std::string what;
};

std::vector<Case> cases() {
  return {
      {{1, 1, 1, 2}, defaultRope(0), "one pair"},
      {{2, 5, 3, 8}, defaultRope(0), "small"},
      {{2, 33, 4, 32}, defaultRope(4000), "offset 4000"},
      {{1, 7, 2, 128}, defaultRope(100000), "offset 100000 (angles ~1e5 rad)"},
      {{2, 33, 8, 32}, llama3Rope(7), "llama3"},
      {{1, 9, 2, 64}, llama3Rope(30000), "llama3 offset 30000"},
      {{2, 6, 2, 16}, withPart(llama3Rope(3), 1, 4), "llama3, chunks 1 and 6 of 8 (cp=4)"},
      {{1, 10, 2, 8}, withPart(defaultRope(0), 0, 2), "chunks 0 and 3 of 4 (cp=2)"},
  };
}

TEST(CudaRopeMath, HostEmulationEqualsTheCpuBitForBit) {
  std::mt19937 rng(3);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (const Case &c : cases())
      for (const char *kernel : {"rope", "rope_grad"}) {
        SCOPED_TRACE(std::string(kernel) + " " + dtypeName(t) + " " + c.what);
        Operand x = randomOperand(t, c.shape, rng);
        Operand want = cpuRope(kernel, x, c.attrs);
        double direction = std::string(kernel) == "rope" ? 1.0 : -1.0;
        Operand y = zeros(t, c.shape);
        emulateRope(x, y, c.attrs, direction);
        EXPECT_EQ(y.bytes, want.bytes);
        Operand inPlace = x; // the output is the input's memory
        emulateRope(inPlace, inPlace, c.attrs, direction);
        EXPECT_EQ(inPlace.bytes, want.bytes);
      }
}

TEST(CudaRopeMath, PairsCoverEveryElementOnce) {
  int64_t batch = 2, seq = 3, heads = 5, dim = 6, half = dim / 2;
  std::vector<int> seen(size_t(batch * seq * heads * dim), 0);
  for (int64_t q = 0; q < batch * seq * heads * half; ++q) {
    cuda::RopePair p = cuda::ropePair(q, seq, heads, half);
    ++seen[size_t(p.first)];
    ++seen[size_t(p.second)];
    // The position of the element's row: flat index / (heads * dim) mod seq.
    EXPECT_EQ(p.entry / half, (p.first / (heads * dim)) % seq);
    EXPECT_EQ(p.entry % half, p.first % dim);
    EXPECT_EQ(p.second - p.first, half);
  }
  for (int n : seen)
    EXPECT_EQ(n, 1);
}

TEST(CudaRope, AsksForItsTableAndRefusesLess) {
  for (const char *kernel : {"rope", "rope_grad"}) {
    const KernelInfo *k = cuda::findCudaKernel(kernel);
    ASSERT_NE(k, nullptr) << kernel;
    ASSERT_NE(k->workspace, nullptr);
    std::vector<TensorView> in = {{nullptr, DType::BF16, {2, 100, 8, 64}}};
    std::vector<TensorView> out = {{nullptr, DType::BF16, {2, 100, 8, 64}}};
    Attributes attrs = defaultRope(0);
    ASSERT_TRUE(k->prepare(in, out, attrs));
    EXPECT_EQ(k->workspace(in, out, attrs), 100u * 32 * 2 * 4); // cos and sin, f32
    Status s = k->run(KernelContext{}, in, out, attrs);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.message(), std::string(kernel) +
                               " needs 25600 bytes of workspace; the backend gave 0");
    // Nothing to rotate: nothing launched, no workspace needed.
    std::vector<TensorView> empty = {{nullptr, DType::BF16, {0, 100, 8, 64}}};
    EXPECT_TRUE(k->run(KernelContext{}, empty, empty, attrs));
  }
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

TEST(CudaParity, RopeAndRopeGradMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(5);
  std::vector<Case> all = cases();
  // More pairs than one full grid (132 x 16 x 256): the grid-stride loop.
  all.push_back({{4, 512, 8, 128}, llama3Rope(3), "more than one grid"});
  all.push_back({{1, 3, 1, 250}, defaultRope(11), "pairs not a multiple of the block"});
  for (DType t : {DType::F32, DType::BF16})
    for (const Case &c : all)
      for (const char *kernel : {"rope", "rope_grad"}) {
        Operand x = randomOperand(t, c.shape, rng);
        std::vector<Operand> cpu, gpu;
        runBoth(kernel, {x}, {zeros(t, c.shape)}, c.attrs, cpu, gpu);
        expectClose(std::string(kernel) + " " + dtypeName(t) + " " + c.what, cpu[0], gpu[0]);
      }
}

// The output is the input's memory (the executor's in-place rope).
TEST(CudaParity, RopeInPlaceMatchesTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(9);
  auto device = device::cudaDevice(0);
  ASSERT_TRUE(device) << device.message();
  for (const char *kernel : {"rope", "rope_grad"}) {
    Operand x = randomOperand(DType::BF16, {2, 33, 4, 32}, rng);
    Attributes attrs = llama3Rope(5);
    Operand want = cpuRope(kernel, x, attrs);
    auto memory = (*device)->allocate(x.bytes.size());
    ASSERT_TRUE(memory) << memory.message();
    ASSERT_TRUE((*device)->upload(*memory, x.bytes.data(), x.bytes.size()));
    std::vector<TensorView> views = {{*memory, x.dtype, x.shape}};
    const KernelInfo *k = cuda::findCudaKernel(kernel);
    KernelContext context;
    context.workspaceBytes = k->workspace(views, views, attrs);
    auto scratch = (*device)->allocate(context.workspaceBytes);
    ASSERT_TRUE(scratch) << scratch.message();
    context.workspace = *scratch;
    Status s = k->run(context, views, views, attrs);
    ASSERT_TRUE(s) << s.message();
    Operand got = x;
    ASSERT_TRUE((*device)->download(got.bytes.data(), *memory, got.bytes.size()));
    expectClose(std::string(kernel) + " in place", want, got);
    (*device)->release(*scratch);
    (*device)->release(*memory);
  }
}

} // namespace
} // namespace apc::kernels
