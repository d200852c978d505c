// The CUDA layout kernels (transpose, reshape, slice, reduce_sum, broadcast,
// shift_labels: Layout.cu) and sqrt, cast and fill (Elementwise.cu) against the CPU
// backend.
//
// Everywhere (no GPU needed): the arithmetic the kernels run, from LayoutMath.h, run
// here the way each kernel runs it (every thread's indices, the tiles through shared
// memory, the chunks of an in-place row, the lanes of a column sum) and compared with
// the CPU backend's kernel: bit for bit for the moves and for cast and fill, within
// f32 rounding for reduce_sum (both sum in double, in other orders); and the
// conversions against runtime/support/HalfFloat.h over every 16-bit pattern and a sweep
// of f32's. The registry and the refusals, as the CPU backend's.
//
// With a GPU (skipped, with the reason, without one): each kernel on cuda:0 against the
// CPU backend (CudaParity.h's tolerances; moves, cast and fill exactly, NaN matching
// NaN), in place where the CPU backend allows it.
#include "test/unit/kernels/CudaParity.h"

#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/Launch.h"
#include "runtime/kernels/cuda/LayoutMath.h"
#include "runtime/support/HalfFloat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace apc::kernels {
namespace {

using namespace testing;
using cuda::kMaxLayoutRank;

// ---- Helpers ------------------------------------------------------------------------

// Runs the CPU backend's `kernel` (prepare, then run) and returns its outputs, which
// start as `outputs`.
std::vector<Operand> runCpu(const std::string &kernel, std::vector<Operand> inputs,
                            std::vector<Operand> outputs, const Attributes &attrs) {
  std::vector<TensorView> in, out;
  for (Operand &o : inputs)
    in.push_back({o.bytes.data(), o.dtype, o.shape});
  for (Operand &o : outputs)
    out.push_back({o.bytes.data(), o.dtype, o.shape});
  const KernelInfo *k = findCpuKernel(kernel);
  EXPECT_NE(k, nullptr) << kernel;
  if (!k)
    return outputs;
  Status prepared = k->prepare(in, out, attrs);
  EXPECT_TRUE(prepared) << prepared.message();
  if (!prepared)
    return outputs;
  Status ran = k->run(KernelContext{}, in, out, attrs);
  EXPECT_TRUE(ran) << ran.message();
  return outputs;
}

// Operand whose elements have distinct bits (up to 30000 of them in 16-bit dtypes, all
// finite): i + 1 in 4- and 8-byte dtypes, the pattern i + 1 in 2-byte ones.
Operand iota(DType dtype, std::vector<int64_t> shape) {
  Operand o = zeros(dtype, std::move(shape));
  for (int64_t i = 0; i < o.count(); ++i) {
    if (dtypeSize(dtype) == 2) {
      uint16_t bits = uint16_t(i % 30000 + 1);
      std::memcpy(o.bytes.data() + 2 * i, &bits, 2);
    } else {
      o.set(i, double(i + 1));
    }
  }
  return o;
}

bool isFloatDType(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

// The same bytes, except that a NaN matches any NaN (NaN payloads may differ between
// the CPU's and the GPU's conversions).
void expectSameBits(const std::string &what, const Operand &cpu, const Operand &got) {
  ASSERT_EQ(cpu.dtype, got.dtype) << what;
  ASSERT_EQ(cpu.bytes.size(), got.bytes.size()) << what;
  size_t width = dtypeSize(cpu.dtype);
  int bad = 0;
  for (int64_t i = 0; i < cpu.count() && bad < 5; ++i) {
    if (std::memcmp(cpu.bytes.data() + i * width, got.bytes.data() + i * width, width) == 0)
      continue;
    if (isFloatDType(cpu.dtype) && std::isnan(cpu.at(i)) && std::isnan(got.at(i)))
      continue;
    ADD_FAILURE() << what << " element " << i << ": got " << got.at(i) << ", cpu " << cpu.at(i);
    ++bad;
  }
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- Conversions ----------------------------------------------------------------------

TEST(CudaLayoutMath, HalfConversionsMatchHalfFloatBitForBit) {
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(floatToBits(cuda::bf16BitsToFloat(uint16_t(h))), floatToBits(bf16ToFloat(uint16_t(h))))
        << h;
    ASSERT_EQ(floatToBits(cuda::f16BitsToFloat(uint16_t(h))), floatToBits(f16ToFloat(uint16_t(h))))
        << h;
  }
  auto check = [](uint32_t bits) {
    float f = bitsToFloat(bits);
    ASSERT_EQ(cuda::floatToBf16Bits(f), floatToBf16(f)) << std::hex << bits;
    ASSERT_EQ(cuda::floatToF16Bits(f), floatToF16(f)) << std::hex << bits;
  };
  // A sweep of every f32 pattern with a prime stride, both signs and NaNs included.
  for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4093)
    check(uint32_t(bits));
  // Every bf16 rounding boundary: just below, at, and just above each halfway point.
  for (uint32_t h = 0; h < 65536; ++h)
    for (uint32_t low : {0x7ffeu, 0x7fffu, 0x8000u, 0x8001u, 0xffffu})
      check((h << 16) | low);
  // Every f16 halfway point (normal and subnormal) and its neighbours.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    float lo = f16ToFloat(uint16_t(h)), hi = f16ToFloat(uint16_t(h + 1));
    float mid = lo + (hi - lo) / 2; // exact in f32
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)})
      for (float s : {f, -f})
        check(floatToBits(s));
  }
}

TEST(CudaLayoutMath, RoundToOddMatchesHalfFloat) {
  std::mt19937_64 rng(3);
  std::vector<double> values = {0.0,  -0.0, 1.0,  -1.0, 1e-30, 3.0e38, -3.0e38, 0.1, 1.0 / 3,
                                 std::numeric_limits<double>::quiet_NaN(),
                                 9223372036854775807.0, -9223372036854775808.0, 16777217.0,
                                 33554435.0};
  std::uniform_real_distribution<double> unit(-1, 1);
  std::uniform_int_distribution<int> exponent(-140, 127);
  for (int i = 0; i < 200000; ++i)
    values.push_back(std::ldexp(unit(rng), exponent(rng)));
  for (int i = 0; i < 100000; ++i) // integers of every width, as casts from i64 give them
    values.push_back(double(int64_t(rng()) >> (rng() % 63)));
  for (double v : values) {
    float want = toFloatRoundToOdd(v), got = cuda::toFloatRoundToOddHD(v);
    if (std::isnan(v))
      EXPECT_TRUE(std::isnan(got));
    else
      ASSERT_EQ(floatToBits(got), floatToBits(want)) << v;
  }
}

// Values every cast is tried on: the edges of each dtype and of each conversion.
Operand castInputs(DType dtype, std::mt19937 &rng) {
  std::vector<double> specials;
  if (isFloatDType(dtype)) {
    specials = {0.0, -0.0, 0.5, 1.5, 2.5, -2.5, -0.5, 0.99999, -0.99999, 65504, 65519.9,
                65520, 1e-8, 6e-8, 3e-8, 2.9802322387695312e-08, 1e-40, 3.0e38, -3.0e38,
                2147483647.0, 2147483648.0, -2147483648.0, -2147483904.0, 9.3e18, -9.3e18,
                9223372036854775807.0, 16777217.0, 1.00390625, 1.0078125, 1.01171875,
                std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                std::numeric_limits<double>::quiet_NaN()};
  } else {
    specials = {0, 1, -1, 255, 256, 257, 16777216, 16777217, 16777219, -16777217,
                2147483647.0, -2147483648.0, 65504, 65520, 65535, -65520, 3, -7};
  }
  int64_t random = dtype == DType::BF16 || dtype == DType::F16 ? 65536 : 50000;
  Operand o = zeros(dtype, {int64_t(specials.size()) + random});
  for (size_t i = 0; i < specials.size(); ++i)
    o.set(int64_t(i), specials[i]);
  size_t width = dtypeSize(dtype);
  for (int64_t i = 0; i < random; ++i) {
    uint8_t *p = o.bytes.data() + (int64_t(specials.size()) + i) * int64_t(width);
    if (width == 2) { // every 16-bit pattern
      uint16_t bits = uint16_t(i);
      std::memcpy(p, &bits, 2);
    } else if (dtype == DType::F32) { // random patterns, every exponent
      uint32_t bits = uint32_t(rng());
      std::memcpy(p, &bits, 4);
    } else if (dtype == DType::I32) {
      int32_t v = int32_t(rng()) >> (rng() % 31);
      std::memcpy(p, &v, 4);
    } else {
      int64_t v = int64_t((uint64_t(rng()) << 32) | rng()) >> (rng() % 63);
      if (i == 0)
        v = std::numeric_limits<int64_t>::max();
      if (i == 1)
        v = std::numeric_limits<int64_t>::min();
      if (i == 2)
        v = (int64_t(1) << 53) + 1;
      std::memcpy(p, &v, 8);
    }
  }
  return o;
}

constexpr DType kAllDTypes[] = {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64};

// The cast kernel's element function for a runtime pair, on raw bytes.
template <DType From, DType To> void castOne(const uint8_t *src, uint8_t *dst) {
  typename cuda::Raw<From>::T v;
  std::memcpy(&v, src, sizeof v);
  typename cuda::Raw<To>::T r = cuda::castElement<From, To>(v);
  std::memcpy(dst, &r, sizeof r);
}
template <DType From> void castOneTo(DType to, const uint8_t *src, uint8_t *dst) {
  switch (to) {
  case DType::F32: castOne<From, DType::F32>(src, dst); break;
  case DType::BF16: castOne<From, DType::BF16>(src, dst); break;
  case DType::F16: castOne<From, DType::F16>(src, dst); break;
  case DType::I32: castOne<From, DType::I32>(src, dst); break;
  case DType::I64: castOne<From, DType::I64>(src, dst); break;
  }
}
void castOneDynamic(DType from, DType to, const uint8_t *src, uint8_t *dst) {
  switch (from) {
  case DType::F32: castOneTo<DType::F32>(to, src, dst); break;
  case DType::BF16: castOneTo<DType::BF16>(to, src, dst); break;
  case DType::F16: castOneTo<DType::F16>(to, src, dst); break;
  case DType::I32: castOneTo<DType::I32>(to, src, dst); break;
  case DType::I64: castOneTo<DType::I64>(to, src, dst); break;
  }
}

TEST(CudaLayoutMath, CastElementsMatchTheCpuCastBitForBit) {
  std::mt19937 rng(5);
  for (DType from : kAllDTypes) {
    Operand x = castInputs(from, rng);
    for (DType to : kAllDTypes) {
      if (from == to)
        continue;
      Operand cpu = runCpu("cast", {x}, {zeros(to, x.shape)}, Attributes())[0];
      Operand got = zeros(to, x.shape);
      for (int64_t i = 0; i < x.count(); ++i)
        castOneDynamic(from, to, x.bytes.data() + i * int64_t(dtypeSize(from)),
                       got.bytes.data() + i * int64_t(dtypeSize(to)));
      // Bit for bit, NaN payloads included (the host's conversions are the CPU's).
      EXPECT_EQ(got.bytes, cpu.bytes) << dtypeName(from) << " -> " << dtypeName(to);
    }
  }
}

TEST(CudaLayoutMath, FillValueIsTheCpusRounding) {
  for (double v : {0.0, -0.0, 1.0, -3.25e-3, 0.1, 1.0 / 3, 65519.99, 1e30, -1e-45, 1e-7})
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      Attributes attrs({floatAttr("value", v)});
      Operand cpu = runCpu("fill", {}, {zeros(t, {3})}, attrs)[0];
      Operand got = zeros(t, {3});
      for (int64_t i = 0; i < 3; ++i) {
        if (t == DType::F32) {
          float bits = cuda::storeDouble<DType::F32>(v);
          std::memcpy(got.bytes.data() + 4 * i, &bits, 4);
        } else {
          uint16_t bits = t == DType::BF16 ? cuda::storeDouble<DType::BF16>(v)
                                           : cuda::storeDouble<DType::F16>(v);
          std::memcpy(got.bytes.data() + 2 * i, &bits, 2);
        }
      }
      EXPECT_EQ(got.bytes, cpu.bytes) << v << " " << dtypeName(t);
    }
}

// ---- transpose ----------------------------------------------------------------------

// Runs the transpose kernels' arithmetic on the host, as the GPU would: every output
// index of the gather form, or every tile of the tiled form with every thread's load
// and store. Each output element must be written exactly once.
Operand emulateTranspose(const Operand &x, const std::vector<int64_t> &perm, bool tiled) {
  std::vector<int64_t> outShape;
  for (int64_t d : perm)
    outShape.push_back(x.shape[size_t(d)]);
  Operand y = zeros(x.dtype, outShape);
  int64_t n = y.count();
  size_t w = dtypeSize(x.dtype);
  if (n == 0)
    return y;
  cuda::SimpleTranspose t = cuda::simplifyTranspose(x.shape, perm);
  std::vector<int> writes(size_t(n), 0);
  auto move = [&](int64_t to, int64_t from) {
    EXPECT_GE(from, 0);
    EXPECT_LT(from, n);
    EXPECT_GE(to, 0);
    EXPECT_LT(to, n);
    if (from < 0 || from >= n || to < 0 || to >= n)
      return;
    ++writes[size_t(to)];
    std::memcpy(y.bytes.data() + to * int64_t(w), x.bytes.data() + from * int64_t(w), w);
  };
  bool canTile = t.perm.size() >= 2 && t.perm.back() != int64_t(t.perm.size()) - 1;
  if (tiled && canTile) {
    cuda::TileTransposeMap map = cuda::tileTransposeMap(t);
    const int64_t T = cuda::kTransposeTile;
    for (int64_t tile = 0; tile < map.tiles; ++tile) {
      cuda::TileOrigin o = cuda::tileOrigin(map, tile);
      int64_t shared[32][33]; // the input index each shared slot holds
      for (auto &row : shared)
        for (int64_t &s : row)
          s = -1;
      for (int64_t ty = 0; ty < cuda::kTransposeTileRows; ++ty)
        for (int64_t tx = 0; tx < T; ++tx)
          for (int64_t r = ty; r < T; r += cuda::kTransposeTileRows) {
            int64_t a = o.a0 + r, b = o.b0 + tx;
            if (a < map.sizeA && b < map.sizeB)
              shared[r][tx] = o.inBase + a * map.inStrideA + b;
          }
      for (int64_t ty = 0; ty < cuda::kTransposeTileRows; ++ty)
        for (int64_t tx = 0; tx < T; ++tx)
          for (int64_t r = ty; r < T; r += cuda::kTransposeTileRows) {
            int64_t a = o.a0 + tx, b = o.b0 + r;
            if (a < map.sizeA && b < map.sizeB) {
              EXPECT_GE(shared[tx][r], 0) << "a tile slot read before it was loaded";
              move(o.outBase + b * map.outStrideB + a, shared[tx][r]);
            }
          }
    }
  } else {
    cuda::TransposeMap map = cuda::transposeMap(t);
    for (int64_t i = 0; i < n; ++i)
      move(i, cuda::transposeSource(map, i));
  }
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(writes[size_t(i)], 1) << "output " << i;
  return y;
}

TEST(CudaLayoutMath, SimplifyTransposeMergesWhatMovesTogether) {
  // [2, 3, 4, 5] -> [0, 2, 3, 1]: dims 2 and 3 move together; as [2, 3, 20] -> [0, 2, 1].
  cuda::SimpleTranspose t = cuda::simplifyTranspose({2, 3, 4, 5}, {0, 2, 3, 1});
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3, 20}));
  EXPECT_EQ(t.perm, (std::vector<int64_t>{0, 2, 1}));
  // Size-1 dims go; the identity becomes one dim.
  t = cuda::simplifyTranspose({1, 6, 1, 7}, {2, 1, 0, 3});
  EXPECT_EQ(t.shape, (std::vector<int64_t>{42}));
  EXPECT_EQ(t.perm, (std::vector<int64_t>{0}));
  t = cuda::simplifyTranspose({}, {});
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1}));
  // [b, s, h, d] -> [b, h, s, d]: d stays innermost, gathered; a matrix transpose tiles.
  t = cuda::simplifyTranspose({2, 128, 8, 64}, {0, 2, 1, 3});
  EXPECT_EQ(t.perm, (std::vector<int64_t>{0, 2, 1, 3}));
  EXPECT_FALSE(cuda::useTiledTranspose(t));
  EXPECT_TRUE(cuda::useTiledTranspose(cuda::simplifyTranspose({256, 512}, {1, 0})));
  EXPECT_FALSE(cuda::useTiledTranspose(cuda::simplifyTranspose({256, 2}, {1, 0})));
}

TEST(CudaLayoutMath, TransposeIndicesMatchTheCpu) {
  std::mt19937 rng(13);
  const int64_t sizes[] = {1, 2, 3, 5, 17, 33, 40};
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    int rank = int(rng() % 7);
    std::vector<int64_t> shape;
    int64_t count = 1;
    for (int d = 0; d < rank; ++d) {
      int64_t s = sizes[rng() % 7];
      if (count * s > 40000)
        s = 1;
      shape.push_back(s);
      count *= s;
    }
    std::vector<int64_t> perm(static_cast<size_t>(rank));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    DType dtype = trial % 3 == 0 ? DType::BF16 : trial % 3 == 1 ? DType::F32 : DType::I64;
    Operand x = iota(dtype, shape);
    std::vector<int64_t> outShape;
    for (int64_t d : perm)
      outShape.push_back(shape[size_t(d)]);
    Operand cpu =
        runCpu("transpose", {x}, {zeros(dtype, outShape)}, Attributes({intsAttr("permutation", perm)}))[0];
    std::string what = "transpose " + shapeText(shape) + " by " + shapeText(perm);
    expectSameBits(what + " gather", cpu, emulateTranspose(x, perm, false));
    expectSameBits(what + " tiled", cpu, emulateTranspose(x, perm, true));
    ++checked;
  }
  // A case where both tiled extents run past whole tiles, with a batch on each side.
  Operand x = iota(DType::F32, {3, 45, 2, 70});
  std::vector<int64_t> perm = {2, 3, 0, 1};
  Operand cpu = runCpu("transpose", {x}, {zeros(DType::F32, {2, 70, 3, 45})},
                       Attributes({intsAttr("permutation", perm)}))[0];
  expectSameBits("transpose [3,45,2,70] tiled", cpu, emulateTranspose(x, perm, true));
  EXPECT_EQ(checked, 400);
}

// ---- reshape ------------------------------------------------------------------------

TEST(CudaLayoutMath, OverlappingCopiesAreMemmove) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 2000; ++trial) {
    int64_t bytes = int64_t(rng() % 300);
    int64_t srcAt = int64_t(rng() % 200), dstAt = int64_t(rng() % 200);
    if (trial % 5 == 0)
      dstAt = srcAt;
    std::vector<uint8_t> want(600), got;
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = uint8_t(i * 31 + 7);
    got = want;
    std::memmove(want.data() + dstAt, want.data() + srcAt, size_t(bytes));
    cuda::CopyPlan plan = cuda::copyPlan(uintptr_t(1000 + dstAt), uintptr_t(1000 + srcAt), bytes);
    int64_t covered = 0;
    for (int64_t k = 0; k < plan.chunks; ++k) {
      auto [offset, length] = cuda::copyChunk(plan, k);
      ASSERT_GT(length, 0);
      // No chunk overlaps itself (what cudaMemcpyAsync requires).
      ASSERT_TRUE(dstAt + offset + length <= srcAt + offset ||
                  srcAt + offset + length <= dstAt + offset)
          << "chunk " << k << " of " << bytes << " bytes from " << srcAt << " to " << dstAt;
      std::memcpy(got.data() + dstAt + offset, got.data() + srcAt + offset, size_t(length));
      covered += length;
    }
    EXPECT_EQ(covered, dstAt == srcAt ? 0 : bytes);
    ASSERT_EQ(got, want) << bytes << " bytes from " << srcAt << " to " << dstAt;
  }
  // Disjoint buffers: one copy.
  EXPECT_EQ(cuda::copyPlan(0, 4096, 4096).chunks, 1);
  EXPECT_EQ(cuda::copyPlan(256, 256, 4096).chunks, 0);
}

// ---- slice --------------------------------------------------------------------------

TEST(CudaLayoutMath, SliceWordsMatchTheCpu) {
  std::mt19937 rng(19);
  for (int trial = 0; trial < 600; ++trial) {
    int rank = 1 + int(rng() % 4);
    std::vector<int64_t> shape;
    for (int d = 0; d < rank; ++d)
      shape.push_back(1 + int64_t(rng() % 9));
    int64_t dim = int64_t(rng() % uint32_t(rank));
    int64_t length = int64_t(rng() % uint32_t(shape[size_t(dim)] + 1));
    int64_t offset = int64_t(rng() % uint32_t(shape[size_t(dim)] - length + 1));
    DType dtype = kAllDTypes[rng() % 5];
    Operand x = iota(dtype, shape);
    std::vector<int64_t> outShape = shape;
    outShape[size_t(dim)] = length;
    Attributes attrs({intAttr("dim", dim), intAttr("offset", offset)});
    Operand cpu = runCpu("slice", {x}, {zeros(dtype, outShape)}, attrs)[0];
    // Addresses as the arena may give them: aligned to 256, or to an element only.
    uintptr_t dst = 4096 + (trial % 2 ? 0 : dtypeSize(dtype) * (rng() % 8));
    uintptr_t src = 8192 + (trial % 3 ? 0 : dtypeSize(dtype) * (rng() % 8));
    cuda::SliceMap map =
        cuda::sliceMap(shape, int64_t(dtypeSize(dtype)), dim, offset, length, dst, src);
    int w = map.wordBytes;
    ASSERT_TRUE(w == 1 || w == 2 || w == 4 || w == 8 || w == 16);
    EXPECT_GE(w, std::min<int>(int(dtypeSize(dtype)), 16)) << "an element is always a word";
    EXPECT_EQ(dst % uintptr_t(w), 0u);
    EXPECT_EQ(src % uintptr_t(w), 0u);
    Operand got = zeros(dtype, outShape);
    ASSERT_EQ(map.words * w, int64_t(got.bytes.size()));
    for (int64_t i = 0; i < map.words; ++i) {
      int64_t from = cuda::sliceSource(map, i);
      ASSERT_LE((from + 1) * w, int64_t(x.bytes.size()));
      std::memcpy(got.bytes.data() + i * w, x.bytes.data() + from * w, size_t(w));
    }
    expectSameBits("slice " + shapeText(shape) + " dim " + std::to_string(dim), cpu, got);
  }
  // bf16 [4, 6, 10], rows 2..4 of dim 1: blocks of 60 bytes every 120, from byte 40:
  // 4-byte words; 16 when everything is a multiple of 16.
  EXPECT_EQ(cuda::sliceMap({4, 6, 10}, 2, 1, 2, 3, 0, 0).wordBytes, 4);
  EXPECT_EQ(cuda::sliceMap({4, 8, 16}, 4, 1, 4, 4, 256, 512).wordBytes, 16);
  EXPECT_EQ(cuda::sliceMap({4, 8, 16}, 4, 1, 4, 4, 260, 512).wordBytes, 4);
}

// ---- reduce_sum ---------------------------------------------------------------------

// The reduce_sum kernels' arithmetic on the host: the row form (each output's thread
// partial sums, then their sum) or the column form (each lane's sum over its
// reductions, the lanes added in order), stored as the kernel stores. Every input
// element must be summed exactly once.
Operand emulateReduceSum(const Operand &x, const std::vector<int64_t> &dims,
                         const std::vector<int64_t> &outShape) {
  Operand y = zeros(x.dtype, outShape);
  if (y.count() == 0 || x.count() == 0)
    return y; // the kernel writes zeros for an empty input
  cuda::ReduceMap map;
  EXPECT_TRUE(cuda::reduceMap(x.shape, dims, map));
  std::vector<int> reads(size_t(x.count()), 0);
  auto load = [&](int64_t i) {
    EXPECT_GE(i, 0);
    EXPECT_LT(i, x.count());
    if (i < 0 || i >= x.count())
      return 0.0;
    ++reads[size_t(i)];
    return x.at(i);
  };
  auto store = [&](int64_t o, double sum) {
    switch (x.dtype) {
    case DType::BF16: y.set(o, bf16ToFloat(cuda::storeDouble<DType::BF16>(sum))); break;
    case DType::F16: y.set(o, f16ToFloat(cuda::storeDouble<DType::F16>(sum))); break;
    default: y.set(o, cuda::storeDouble<DType::F32>(sum)); break;
    }
  };
  if (map.innerReduced) {
    EXPECT_EQ(map.keptCount, y.count());
    int64_t length = map.reducedCount * map.inner;
    int64_t threads = cuda::rowLaunch(map.keptCount, length).threads;
    for (int64_t o = 0; o < map.keptCount; ++o) {
      int64_t base = cuda::keptOffset(map, o);
      double sum = 0;
      for (int64_t t = 0; t < threads; ++t)
        for (int64_t j = t; j < length; j += threads)
          sum += load(cuda::innerReducedSource(map, base, j));
      store(o, sum);
    }
  } else {
    EXPECT_EQ(map.keptCount * map.inner, y.count());
    int64_t lanes = cuda::columnReduceLanes(map);
    int64_t columnTiles = (map.inner + cuda::kReduceColumns - 1) / cuda::kReduceColumns;
    EXPECT_EQ(cuda::columnReduceTiles(map), map.keptCount * columnTiles);
    for (int64_t t = 0; t < cuda::columnReduceTiles(map); ++t) {
      int64_t o = t / columnTiles;
      for (int64_t tx = 0; tx < cuda::kReduceColumns; ++tx) {
        int64_t c = (t % columnTiles) * cuda::kReduceColumns + tx;
        if (c >= map.inner)
          continue;
        double total = 0;
        for (int64_t lane = 0; lane < lanes; ++lane) {
          double sum = 0;
          for (int64_t r = lane; r < map.reducedCount; r += lanes)
            sum += load(cuda::keptOffset(map, o) + c + cuda::reducedOffset(map, r));
          total += sum;
        }
        store(o * map.inner + c, total);
      }
    }
  }
  for (int64_t i = 0; i < x.count(); ++i)
    EXPECT_EQ(reads[size_t(i)], 1) << "input " << i;
  return y;
}

TEST(CudaLayoutMath, ReduceSumMatchesTheCpu) {
  std::mt19937 rng(23);
  const int64_t sizes[] = {1, 2, 3, 7, 33, 64};
  for (int trial = 0; trial < 400; ++trial) {
    int rank = int(rng() % 5);
    std::vector<int64_t> shape;
    int64_t count = 1;
    for (int d = 0; d < rank; ++d) {
      int64_t s = sizes[rng() % 6];
      if (count * s > 30000)
        s = 1;
      if (trial % 50 == 7 && d == 0)
        s = 0; // an empty reduction or an empty result
      shape.push_back(s);
      count *= s;
    }
    std::vector<int64_t> dims;
    for (int d = 0; d < rank; ++d)
      if (rng() % 2)
        dims.push_back(d);
    bool keep = rng() % 2;
    std::vector<int64_t> outShape;
    for (int d = 0; d < rank; ++d) {
      bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
      if (!reduced)
        outShape.push_back(shape[size_t(d)]);
      else if (keep)
        outShape.push_back(1);
    }
    DType dtype = trial % 3 == 0 ? DType::BF16 : trial % 3 == 1 ? DType::F32 : DType::F16;
    Operand x = randomOperand(dtype, shape, rng);
    Attributes attrs({intsAttr("dims", dims), boolAttr("keep_dims", keep)});
    Operand cpu = runCpu("reduce_sum", {x}, {zeros(dtype, outShape)}, attrs)[0];
    expectClose("reduce_sum " + shapeText(shape) + " over " + shapeText(dims), cpu,
                emulateReduceSum(x, dims, outShape), 1e-6);
  }
}

TEST(CudaLayoutMath, ColumnSumLanesGrowOnlyWhereTilesAreFew) {
  auto lanesOf = [](std::vector<int64_t> shape, std::vector<int64_t> dims) {
    cuda::ReduceMap map;
    EXPECT_TRUE(cuda::reduceMap(shape, dims, map));
    EXPECT_FALSE(map.innerReduced);
    return cuda::columnReduceLanes(map);
  };
  EXPECT_EQ(lanesOf({8192, 4096}, {0}), 32);   // a bias-like gradient: 128 tiles
  EXPECT_EQ(lanesOf({4, 2048, 4096}, {0}), 8); // many tiles
  EXPECT_EQ(lanesOf({3, 64}, {0}), 8);         // never more than reductions beyond 8
  EXPECT_EQ(lanesOf({20, 64}, {0}), 16);
}

TEST(CudaLayoutMath, MoreGroupsThanTheKernelsHoldAreRefused) {
  // 34 dims alternating kept and reduced: 17 of each after merging.
  std::vector<int64_t> shape(34, 2), dims;
  for (int64_t d = 1; d < 34; d += 2)
    dims.push_back(d);
  cuda::ReduceMap map;
  EXPECT_FALSE(cuda::reduceMap(shape, dims, map));
  cuda::BroadcastMap broadcast;
  EXPECT_FALSE(cuda::broadcastMap(shape, dims, broadcast));
  shape.resize(32);
  dims.pop_back();
  EXPECT_TRUE(cuda::reduceMap(shape, dims, map));
  EXPECT_EQ(map.keptRank, 16);
  EXPECT_EQ(map.reducedRank, 15); // the last reduced group is the innermost
  EXPECT_TRUE(map.innerReduced);
}

// ---- broadcast ----------------------------------------------------------------------

TEST(CudaLayoutMath, BroadcastIndicesMatchTheCpu) {
  std::mt19937 rng(29);
  const int64_t sizes[] = {1, 2, 3, 5, 16, 33};
  for (int trial = 0; trial < 400; ++trial) {
    int rank = int(rng() % 6);
    std::vector<int64_t> outShape;
    int64_t count = 1;
    for (int d = 0; d < rank; ++d) {
      int64_t s = sizes[rng() % 6];
      if (count * s > 30000)
        s = 1;
      outShape.push_back(s);
      count *= s;
    }
    std::vector<int64_t> dims, inShape;
    for (int d = 0; d < rank; ++d) {
      if (rng() % 2)
        dims.push_back(d);
      else
        inShape.push_back(outShape[size_t(d)]);
    }
    DType dtype = trial % 2 ? DType::BF16 : DType::F32;
    Operand x = iota(dtype, inShape);
    Operand cpu =
        runCpu("broadcast", {x}, {zeros(dtype, outShape)}, Attributes({intsAttr("dims", dims)}))[0];
    cuda::BroadcastMap map;
    ASSERT_TRUE(cuda::broadcastMap(outShape, dims, map));
    Operand got = zeros(dtype, outShape);
    size_t w = dtypeSize(dtype);
    for (int64_t i = 0; i < got.count(); ++i) {
      int64_t from = cuda::broadcastSource(map, i);
      ASSERT_GE(from, 0);
      ASSERT_LT(from, x.count());
      std::memcpy(got.bytes.data() + i * int64_t(w), x.bytes.data() + from * int64_t(w), w);
    }
    expectSameBits("broadcast " + shapeText(inShape) + " to " + shapeText(outShape), cpu, got);
  }
}

// ---- shift_labels -------------------------------------------------------------------

// The kernel's in-place schedule on the host: per row, per chunk of `threads`
// positions, every thread reads, then every thread writes.
void emulateShiftInPlace(Operand &labels, int64_t threads, int64_t ignore) {
  int64_t seq = labels.shape.back(), rows = labels.count() / std::max<int64_t>(seq, 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t start = 0; start < seq; start += threads) {
      std::vector<double> v(static_cast<size_t>(threads), static_cast<double>(ignore));
      for (int64_t t = 0; t < threads; ++t)
        if (start + t < seq) {
          int64_t source = cuda::shiftSource(start + t, seq);
          if (source >= 0)
            v[size_t(t)] = labels.at(r * seq + source);
        }
      for (int64_t t = 0; t < threads; ++t)
        if (start + t < seq)
          labels.set(r * seq + start + t, v[size_t(t)]);
    }
}

TEST(CudaLayoutMath, ShiftLabelsInPlaceMatchesTheCpu) {
  std::mt19937 rng(31);
  for (DType t : {DType::I32, DType::I64})
    for (int64_t seq : {1, 2, 31, 32, 33, 100, 1025})
      for (int64_t rows : {1, 3}) {
        Operand labels = randomInts(t, {rows, seq}, rng, 0, 50000);
        int64_t threads = cuda::rowLaunch(rows, seq).threads;
        for (int64_t ignore : {int64_t(-100), int64_t(7)}) {
          Attributes attrs({intAttr("ignore_index", ignore)});
          // The CPU kernel in place, on its own copy.
          Operand cpu = labels;
          TensorView view{cpu.bytes.data(), t, cpu.shape};
          ASSERT_TRUE(findCpuKernel("shift_labels")->run(KernelContext{}, {view}, {view}, attrs));
          for (int64_t th : {threads, int64_t(32), int64_t(1024)}) {
            Operand got = labels;
            emulateShiftInPlace(got, th, ignore);
            expectSameBits("shift_labels in place " + std::to_string(rows) + "x" +
                               std::to_string(seq) + " threads " + std::to_string(th),
                           cpu, got);
          }
        }
      }
}

// ---- Registry -----------------------------------------------------------------------

const char *const kFamilyKernels[] = {"transpose", "reshape", "slice", "reduce_sum", "broadcast",
                                      "shift_labels", "sqrt", "cast", "fill"};

TEST(CudaLayoutKernels, EachHasACudaKernelValidatedByItsCpuTwin) {
  for (const char *name : kFamilyKernels) {
    const KernelInfo *k = cuda::findCudaKernel(name);
    ASSERT_NE(k, nullptr) << name;
    // The CPU's prepare, composed with the CUDA kernel's merged-dims limit where the
    // kernel has one (CudaKernels.cpp).
    bool ownLimits = std::string(name) == "transpose" || std::string(name) == "reduce_sum" ||
                     std::string(name) == "broadcast";
    EXPECT_EQ(k->prepare == findCpuKernel(name)->prepare, !ownLimits) << name;
    EXPECT_NE(k->run, findCpuKernel(name)->run) << name;
    EXPECT_EQ(k->workspace, nullptr) << name << " needs no workspace";
  }
}

TEST(CudaLayoutKernels, RefuseWhatTheCpuBackendRefuses) {
  std::vector<float> a(24), b(24);
  struct Case {
    const char *kernel;
    std::vector<TensorView> in, out;
    Attributes attrs;
  } cases[] = {
      {"transpose", {{a.data(), DType::F32, {2, 3, 4}}}, {{b.data(), DType::F32, {4, 3, 2}}},
       Attributes({intsAttr("permutation", {2, 2, 0})})},
      {"slice", {{a.data(), DType::F32, {4, 6}}}, {{b.data(), DType::F32, {4, 3}}},
       Attributes({intAttr("dim", 1), intAttr("offset", 4)})},
      {"reduce_sum", {{a.data(), DType::I32, {4, 6}}}, {{b.data(), DType::I32, {6}}},
       Attributes({intsAttr("dims", {0})})},
      {"broadcast", {{a.data(), DType::F32, {6}}}, {{b.data(), DType::F32, {4, 6}}},
       Attributes({intsAttr("dims", {1})})},
      {"shift_labels", {{a.data(), DType::F32, {4, 6}}}, {{b.data(), DType::F32, {4, 6}}},
       Attributes()},
      {"cast", {{a.data(), DType::F32, {4, 6}}}, {{b.data(), DType::BF16, {6, 4}}}, Attributes()},
      {"fill", {}, {{b.data(), DType::F32, {4}}},
       Attributes({floatAttr("value", std::numeric_limits<double>::infinity())})},
      {"sqrt", {{a.data(), DType::I32, {4}}}, {{b.data(), DType::I32, {4}}}, Attributes()},
  };
  for (const Case &c : cases) {
    Status viaCuda = cuda::findCudaKernel(c.kernel)->prepare(c.in, c.out, c.attrs);
    Status viaCpu = findCpuKernel(c.kernel)->prepare(c.in, c.out, c.attrs);
    ASSERT_FALSE(viaCuda) << c.kernel;
    EXPECT_EQ(viaCuda.message(), viaCpu.message());
    EXPECT_EQ(viaCuda.message().rfind(std::string(c.kernel) + ": ", 0), 0u) << viaCuda.message();
  }
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

// Runs `kernel` in place (its one output the memory of its one input, as dtype `outType`
// of the same shape) on the CPU backend and on cuda:0.
void runBothInPlace(const std::string &kernel, const Operand &x, DType outType,
                    const Attributes &attrs, Operand &cpu, Operand &gpu) {
  ASSERT_EQ(dtypeSize(outType), dtypeSize(x.dtype));
  cpu = x;
  TensorView in{cpu.bytes.data(), x.dtype, x.shape}, out{cpu.bytes.data(), outType, x.shape};
  const KernelInfo *k = findCpuKernel(kernel);
  ASSERT_TRUE(k->prepare({in}, {out}, attrs));
  ASSERT_TRUE(k->run(KernelContext{}, {in}, {out}, attrs));
  cpu.dtype = outType;

  auto device = device::cudaDevice(0);
  ASSERT_TRUE(device) << device.message();
  auto memory = (*device)->allocate(x.bytes.size());
  ASSERT_TRUE(memory) << memory.message();
  ASSERT_TRUE((*device)->upload(*memory, x.bytes.data(), x.bytes.size()));
  TensorView dIn{*memory, x.dtype, x.shape}, dOut{*memory, outType, x.shape};
  const KernelInfo *c = cuda::findCudaKernel(kernel);
  ASSERT_NE(c, nullptr);
  Status s = c->run(KernelContext{}, {dIn}, {dOut}, attrs);
  ASSERT_TRUE(s) << s.message();
  gpu = zeros(outType, x.shape);
  ASSERT_TRUE((*device)->download(gpu.bytes.data(), *memory, gpu.bytes.size()));
  (*device)->release(*memory);
}

TEST(CudaParity, TransposeReshapeAndSliceMoveWhatTheCpuMoves) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(37);
  struct T {
    std::vector<int64_t> shape, perm;
  } transposes[] = {
      {{1000}, {0}},
      {{1, 1}, {1, 0}},                    // one element
      {{3, 5}, {1, 0}},
      {{64, 48}, {1, 0}},                  // tiled
      {{1000, 1030}, {1, 0}},              // tiled, partial tiles, more than a grid
      {{2, 3, 4, 5}, {3, 1, 0, 2}},
      {{8, 128, 4, 64}, {0, 2, 1, 3}},     // heads: the innermost dim stays
      {{1, 300, 1, 70}, {3, 1, 2, 0}},     // size-1 dims
      {{2, 1030, 33}, {2, 0, 1}},          // tiled with a batch
      {{4, 2, 6, 3, 5, 2, 3}, {6, 0, 5, 1, 4, 2, 3}},
  };
  for (DType t : {DType::F32, DType::BF16, DType::I64})
    for (const auto &c : transposes) {
      Operand x = randomOperand(t, c.shape, rng, -1000, 1000);
      std::vector<int64_t> outShape;
      for (int64_t d : c.perm)
        outShape.push_back(c.shape[size_t(d)]);
      std::vector<Operand> cpu, gpu;
      runBoth("transpose", {x}, {zeros(t, outShape)},
              Attributes({intsAttr("permutation", c.perm)}), cpu, gpu);
      expectSameBits(std::string("transpose ") + dtypeName(t) + " " + shapeText(c.shape) +
                         " by " + shapeText(c.perm),
                     cpu[0], gpu[0]);
    }
  for (DType t : {DType::F32, DType::BF16, DType::I32}) {
    Operand x = randomOperand(t, {6, 700}, rng, -1000, 1000);
    std::vector<Operand> cpu, gpu;
    runBoth("reshape", {x}, {zeros(t, {4200})}, Attributes(), cpu, gpu);
    expectSameBits(std::string("reshape ") + dtypeName(t), cpu[0], gpu[0]);
  }
  struct S {
    std::vector<int64_t> shape;
    int64_t dim, offset, length;
  } slices[] = {
      {{8, 1024}, 0, 2, 4},    // a micro-batch
      {{4, 6, 10}, 1, 2, 3},   // odd byte counts
      {{3, 5, 7}, 2, 1, 5},
      {{16, 300, 64}, 1, 100, 100},
      {{5}, 0, 4, 1},
      {{4, 0}, 0, 1, 2},       // empty
  };
  for (DType t : {DType::F32, DType::BF16, DType::I64})
    for (const S &s : slices) {
      Operand x = randomOperand(t, s.shape, rng, -1000, 1000);
      std::vector<int64_t> outShape = s.shape;
      outShape[size_t(s.dim)] = s.length;
      std::vector<Operand> cpu, gpu;
      runBoth("slice", {x}, {zeros(t, outShape)},
              Attributes({intAttr("dim", s.dim), intAttr("offset", s.offset)}), cpu, gpu);
      expectSameBits(std::string("slice ") + dtypeName(t) + " " + shapeText(s.shape), cpu[0],
                     gpu[0]);
    }
}

TEST(CudaParity, ReduceSumAndBroadcastMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(41);
  struct R {
    std::vector<int64_t> shape, dims;
    bool keep;
  } reductions[] = {
      {{1}, {0}, false},                 // one element
      {{4096}, {0}, false},              // to a scalar
      {{64, 4096}, {0}, false},          // column sums
      {{64, 4096}, {1}, true},           // row sums
      {{8192, 1024}, {0}, false},        // few tiles, many rows: 32 lanes
      {{8, 16, 32}, {0, 2}, false},
      {{8, 16, 32}, {1}, true},
      {{2048, 3}, {0}, false},           // narrow columns
      {{3, 0, 5}, {1}, false},           // empty reduction: zeros
      {{5, 7}, {}, false},               // nothing reduced: a copy
      {{300, 1, 129}, {0, 1, 2}, false},
  };
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (const R &r : reductions) {
      Operand x = randomOperand(t, r.shape, rng);
      std::vector<int64_t> outShape;
      for (size_t d = 0; d < r.shape.size(); ++d) {
        bool reduced = std::find(r.dims.begin(), r.dims.end(), int64_t(d)) != r.dims.end();
        if (!reduced)
          outShape.push_back(r.shape[d]);
        else if (r.keep)
          outShape.push_back(1);
      }
      std::vector<Operand> cpu, gpu;
      runBoth("reduce_sum", {x}, {randomOperand(t, outShape, rng)},
              Attributes({intsAttr("dims", r.dims), boolAttr("keep_dims", r.keep)}), cpu, gpu);
      expectClose(std::string("reduce_sum ") + dtypeName(t) + " " + shapeText(r.shape) + " over " +
                      shapeText(r.dims),
                  cpu[0], gpu[0]);
    }
  struct B {
    std::vector<int64_t> in, out, dims;
  } broadcasts[] = {
      {{4096}, {8, 4096}, {0}},
      {{8}, {8, 1000}, {1}},
      {{}, {3, 4}, {0, 1}},
      {{5, 7}, {5, 3, 7, 2}, {1, 3}},
      {{1000}, {700, 1000}, {0}}, // more than a grid
  };
  for (DType t : {DType::F32, DType::BF16})
    for (const B &b : broadcasts) {
      Operand x = randomOperand(t, b.in, rng);
      std::vector<Operand> cpu, gpu;
      runBoth("broadcast", {x}, {zeros(t, b.out)}, Attributes({intsAttr("dims", b.dims)}), cpu,
              gpu);
      expectSameBits(std::string("broadcast ") + dtypeName(t) + " to " + shapeText(b.out), cpu[0],
                     gpu[0]);
    }
}

TEST(CudaParity, ShiftLabelsMatchesTheCpuAlsoInPlace) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(43);
  for (DType t : {DType::I32, DType::I64})
    for (std::vector<int64_t> shape : {std::vector<int64_t>{4, 1000}, {1, 5000}, {3, 1}, {7},
                                       {2, 3, 2049}})
      for (bool withIgnore : {false, true}) {
        Attributes attrs;
        if (withIgnore)
          attrs = Attributes({intAttr("ignore_index", -1)});
        Operand labels = randomInts(t, shape, rng, 0, 128256);
        std::string what = std::string("shift_labels ") + dtypeName(t) + " " + shapeText(shape);
        std::vector<Operand> cpu, gpu;
        runBoth("shift_labels", {labels}, {zeros(t, shape)}, attrs, cpu, gpu);
        expectSameBits(what, cpu[0], gpu[0]);
        Operand cpuInPlace, gpuInPlace;
        runBothInPlace("shift_labels", labels, t, attrs, cpuInPlace, gpuInPlace);
        expectSameBits(what + " in place", cpuInPlace, gpuInPlace);
      }
}

TEST(CudaParity, SqrtCastAndFillMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(47);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(600000)}) {
      Operand x = randomOperand(t, {n}, rng, -1, 100); // negatives: NaN on both
      std::vector<Operand> cpu, gpu;
      runBoth("sqrt", {x}, {zeros(t, {n})}, Attributes(), cpu, gpu);
      expectSameBits(std::string("sqrt ") + dtypeName(t) + " n=" + std::to_string(n), cpu[0],
                     gpu[0]);
      Operand cpuInPlace, gpuInPlace;
      runBothInPlace("sqrt", x, t, Attributes(), cpuInPlace, gpuInPlace);
      expectSameBits(std::string("sqrt in place ") + dtypeName(t), cpuInPlace, gpuInPlace);
    }
  for (DType from : kAllDTypes) {
    Operand x = castInputs(from, rng);
    for (DType to : kAllDTypes) {
      std::vector<Operand> cpu, gpu;
      runBoth("cast", {x}, {zeros(to, x.shape)}, Attributes(), cpu, gpu);
      expectSameBits(std::string("cast ") + dtypeName(from) + " -> " + dtypeName(to), cpu[0],
                     gpu[0]);
      if (from != to && dtypeSize(from) == dtypeSize(to)) {
        Operand cpuInPlace, gpuInPlace;
        runBothInPlace("cast", x, to, Attributes(), cpuInPlace, gpuInPlace);
        expectSameBits(std::string("cast in place ") + dtypeName(from) + " -> " + dtypeName(to),
                       cpuInPlace, gpuInPlace);
      }
    }
  }
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(600000)})
      for (double v : {0.0, 1.5, -3.25e-3, 1e30}) {
        std::vector<Operand> cpu, gpu;
        runBoth("fill", {}, {randomOperand(t, {n}, rng)}, Attributes({floatAttr("value", v)}),
                cpu, gpu);
        expectSameBits(std::string("fill ") + dtypeName(t) + " " + std::to_string(v), cpu[0],
                       gpu[0]);
      }
}

} // namespace
} // namespace apc::kernels
