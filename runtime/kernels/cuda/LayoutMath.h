// The arithmetic of the CUDA layout kernels (Layout.cu: transpose, reshape, slice,
// reduce_sum, broadcast, shift_labels) and of cast and fill (Elementwise.cu), in plain
// C++ (APC_HD) so that the CPU tests (test/unit/kernels/cuda/LayoutTest.cpp) check it
// against the CPU backend on machines without a GPU:
//
// - each kernel's index mapping (which input element an output element is), built on
//   the host into a small struct passed to the kernel by value, after the same shape
//   simplification as the CPU backend (dims of size 1 dropped, neighbouring dims that
//   move together merged), so the device loops over as few dims as possible;
// - the launch decisions (tiled transpose or gather, lanes of a column sum, the word
//   a slice copies in, the chunks of an overlapping copy);
// - the conversions of cast, bit for bit those of the CPU backend (runtime/support/
//   HalfFloat.h and kernels/cpu/Elementwise.cpp): every value read as a double, f32
//   rounded to nearest even, bf16/f16 through f32 rounded to odd then to nearest even
//   (one rounding from the exact value), integers truncated toward zero, saturating,
//   NaN giving 0.
//
// No CUDA header; the host builders (std::vector) are host-only.
#pragma once

#include "runtime/kernels/cuda/HostDevice.h"
#include "runtime/support/DType.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace apc::kernels::cuda {

// The most dims a layout kernel handles after simplification (merging dims that move
// together); a shape that keeps more is refused by the kernel with its reason.
constexpr int kMaxLayoutRank = 16;

// ---- Bits and conversions (cast, reduce_sum's stores) ----------------------------------

APC_HD uint32_t bitsOfFloat(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}
APC_HD float floatOfBits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// bf16 / f16 <-> f32, round to nearest even: HalfFloat.h's floatToBf16, bf16ToFloat,
// floatToF16 and f16ToFloat, bit for bit (NaN kept quiet, signed zeros and infinities).
APC_HD float bf16BitsToFloat(uint16_t h) { return floatOfBits(uint32_t(h) << 16); }

APC_HD uint16_t floatToBf16Bits(float f) {
  uint32_t bits = bitsOfFloat(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((bits >> 16) | 0x0040u);
  uint32_t roundingBias = 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t((bits + roundingBias) >> 16);
}

APC_HD float f16BitsToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f)
    return floatOfBits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0)
      return floatOfBits(sign);
    float value = float(mantissa) * (1.0f / 16777216.0f); // mantissa x 2^-24, exact
    return sign ? -value : value;
  }
  return floatOfBits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

APC_HD uint16_t floatToF16Bits(float f) {
  uint32_t bits = bitsOfFloat(f);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t absBits = bits & 0x7fffffffu;
  if (absBits > 0x7f800000u)
    return uint16_t(sign | 0x7e00u);
  if (absBits >= 0x477ff000u) // rounds to >= 65520: inf
    return uint16_t(sign | 0x7c00u);
  if (absBits < 0x38800000u) { // below 2^-14: a subnormal or zero, in units of 2^-24
    float magnitude = floatOfBits(absBits) * 16777216.0f; // exact (a power of two)
    return uint16_t(sign | uint16_t(rintf(magnitude)));   // rint: half to even
  }
  uint32_t roundingBias = 0xfffu + ((absBits >> 13) & 1u);
  absBits += roundingBias;
  return uint16_t(sign | uint16_t((absBits - 0x38000000u) >> 13));
}

// double -> f32 rounded to odd (HalfFloat.h's toFloatRoundToOdd): truncated toward zero,
// the last bit set when inexact, so a later rounding to bf16/f16 is the one rounding of
// the double. Every double cast sees is within f32's range (f32/bf16/f16 values and
// integers below 2^63).
APC_HD float toFloatRoundToOddHD(double v) {
  if (v != v)
    return float(v);
  float f = float(v); // nearest even
  if (double(f) == v)
    return f;
  uint32_t bits = bitsOfFloat(f);
  if (fabs(double(f)) > fabs(v)) // one step toward zero (f is not zero here)
    bits -= 1u;
  return floatOfBits(bits | 1u);
}

// The storage type of each dtype's elements as the cast and reduce kernels see them:
// bf16 and f16 as their 16-bit patterns.
template <DType D> struct Raw;
template <> struct Raw<DType::F32> { using T = float; };
template <> struct Raw<DType::BF16> { using T = uint16_t; };
template <> struct Raw<DType::F16> { using T = uint16_t; };
template <> struct Raw<DType::I32> { using T = int32_t; };
template <> struct Raw<DType::I64> { using T = int64_t; };

// An element as a double: exact for every f32, bf16 and f16 value and every integer up
// to 2^53 in magnitude (i64 beyond rounds to nearest, as the CPU's double(int64)).
template <DType D> APC_HD double loadAsDouble(typename Raw<D>::T v) {
  if constexpr (D == DType::F32)
    return double(v);
  else if constexpr (D == DType::BF16)
    return double(bf16BitsToFloat(v));
  else if constexpr (D == DType::F16)
    return double(f16BitsToFloat(v));
  else
    return double(v);
}

// Float to integer: truncated toward zero; out of range saturates, NaN gives 0 (the CPU
// backend's toInt).
APC_HD int32_t doubleToI32(double v) {
  if (v != v)
    return 0;
  double t = trunc(v);
  if (t <= -2147483648.0)
    return INT32_MIN;
  if (t >= 2147483647.0)
    return INT32_MAX;
  return int32_t(t);
}
APC_HD int64_t doubleToI64(double v) {
  if (v != v)
    return 0;
  double t = trunc(v);
  if (t <= -9223372036854775808.0)
    return INT64_MIN;
  if (t >= 9223372036854775807.0) // 2^63 as a double
    return INT64_MAX;
  return int64_t(t);
}

// A double stored as dtype D, rounded once (the CPU's castLoop and storeDouble).
template <DType D> APC_HD typename Raw<D>::T storeDouble(double v) {
  if constexpr (D == DType::F32)
    return float(v);
  else if constexpr (D == DType::BF16)
    return floatToBf16Bits(toFloatRoundToOddHD(v));
  else if constexpr (D == DType::F16)
    return floatToF16Bits(toFloatRoundToOddHD(v));
  else if constexpr (D == DType::I32)
    return doubleToI32(v);
  else
    return doubleToI64(v);
}

// One element of cast from dtype From to dtype To.
template <DType From, DType To>
APC_HD typename Raw<To>::T castElement(typename Raw<From>::T v) {
  return storeDouble<To>(loadAsDouble<From>(v));
}

// ---- Row-major offsets --------------------------------------------------------------

// sum_k index_k x stride[k] for the multi-index of flat position `flat` in `shape`
// (row-major, `rank` dims).
APC_HD int64_t offsetOf(int64_t flat, int rank, const int64_t *shape, const int64_t *stride) {
  int64_t offset = 0;
  for (int k = rank - 1; k >= 0; --k) {
    int64_t size = shape[k];
    offset += (flat % size) * stride[k];
    flat /= size;
  }
  return offset;
}

inline std::vector<int64_t> rowMajorStrides(const std::vector<int64_t> &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = int64_t(shape.size()) - 2; d >= 0; --d)
    strides[size_t(d)] = strides[size_t(d) + 1] * shape[size_t(d) + 1];
  return strides;
}

// ---- transpose ----------------------------------------------------------------------

// A transpose with dims of size 1 dropped and input dims that stay neighbours in the
// output merged: `shape` the input's dims, output dim k is input dim perm[k]. At least
// one dim (a one-element tensor is [1]).
struct SimpleTranspose {
  std::vector<int64_t> shape;
  std::vector<int64_t> perm;
};

inline SimpleTranspose simplifyTranspose(const std::vector<int64_t> &shape,
                                         const std::vector<int64_t> &perm) {
  // Kept input dims, renumbered in input order.
  std::vector<int64_t> renumber(shape.size(), -1);
  int64_t kept = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1)
      renumber[d] = kept++;
  std::vector<int64_t> order; // output order of the kept dims (renumbered)
  for (int64_t d : perm)
    if (renumber[size_t(d)] >= 0)
      order.push_back(renumber[size_t(d)]);
  std::vector<int64_t> keptShape;
  for (int64_t s : shape)
    if (s != 1)
      keptShape.push_back(s);
  if (order.empty())
    return {{1}, {0}};
  // Runs of consecutive input dims in the output order become one dim each.
  std::vector<std::pair<int64_t, int64_t>> runs; // [first, last] input dims, output order
  for (int64_t d : order) {
    if (!runs.empty() && runs.back().second + 1 == d)
      runs.back().second = d;
    else
      runs.push_back({d, d});
  }
  // The merged input dims, in input order: rank of each run's first dim.
  std::vector<int64_t> firsts;
  for (auto &run : runs)
    firsts.push_back(run.first);
  std::vector<int64_t> sorted = firsts;
  std::sort(sorted.begin(), sorted.end());
  SimpleTranspose result;
  result.shape.assign(runs.size(), 1);
  for (size_t k = 0; k < runs.size(); ++k) {
    int64_t index = int64_t(std::lower_bound(sorted.begin(), sorted.end(), runs[k].first) -
                            sorted.begin());
    result.perm.push_back(index);
    int64_t size = 1;
    for (int64_t d = runs[k].first; d <= runs[k].second; ++d)
      size *= keptShape[size_t(d)];
    result.shape[size_t(index)] = size;
  }
  return result;
}

// The gather form: output element i is input element transposeSource(map, i).
struct TransposeMap {
  int rank = 0;
  int64_t outShape[kMaxLayoutRank] = {};
  int64_t sourceStride[kMaxLayoutRank] = {}; // the input stride of each output dim
};

inline TransposeMap transposeMap(const SimpleTranspose &t) {
  TransposeMap map;
  map.rank = int(t.perm.size());
  std::vector<int64_t> inStrides = rowMajorStrides(t.shape);
  for (size_t k = 0; k < t.perm.size() && k < size_t(kMaxLayoutRank); ++k) {
    map.outShape[k] = t.shape[size_t(t.perm[k])];
    map.sourceStride[k] = inStrides[size_t(t.perm[k])];
  }
  return map;
}

APC_HD int64_t transposeSource(const TransposeMap &map, int64_t i) {
  return offsetOf(i, map.rank, map.outShape, map.sourceStride);
}

// The tiled form, for a transpose whose innermost input dim B does not stay innermost:
// the input dim A that becomes the output's innermost and B are cut into 32 x 32 tiles,
// each read along B (contiguous in the input) into shared memory and written along A
// (contiguous in the output); the other dims are a batch of such planes.
constexpr int64_t kTransposeTile = 32;
constexpr int64_t kTransposeTileRows = 8; // threads a tile: 32 x 8, 4 elements each

struct TileTransposeMap {
  int64_t sizeA = 0, sizeB = 0;   // extents of A (output innermost) and B (input innermost)
  int64_t inStrideA = 0;          // input stride of A (B's is 1)
  int64_t outStrideB = 0;         // output stride of B (A's is 1)
  int64_t tilesA = 0, tilesB = 0; // tiles along each
  int64_t tiles = 0;              // tilesA x tilesB x batch
  int batchRank = 0;
  int64_t batchShape[kMaxLayoutRank] = {};
  int64_t batchInStride[kMaxLayoutRank] = {};
  int64_t batchOutStride[kMaxLayoutRank] = {};
};

// Whether the tiled form applies and pays: the innermost input dim moves, and both it
// and the output's innermost dim span at least half a tile (below that most of a tile
// idles, and the gather form's reads are short runs anyway).
inline bool useTiledTranspose(const SimpleTranspose &t) {
  size_t rank = t.perm.size();
  if (rank < 2 || t.perm[rank - 1] == int64_t(rank) - 1)
    return false;
  return t.shape[size_t(t.perm[rank - 1])] >= kTransposeTile / 2 &&
         t.shape[rank - 1] >= kTransposeTile / 2;
}

inline TileTransposeMap tileTransposeMap(const SimpleTranspose &t) {
  TileTransposeMap map;
  size_t rank = t.perm.size();
  std::vector<int64_t> inStrides = rowMajorStrides(t.shape);
  std::vector<int64_t> outShape(rank), position(rank);
  for (size_t k = 0; k < rank; ++k) {
    outShape[k] = t.shape[size_t(t.perm[k])];
    position[size_t(t.perm[k])] = int64_t(k);
  }
  std::vector<int64_t> outStrides = rowMajorStrides(outShape);
  size_t a = size_t(t.perm[rank - 1]), b = rank - 1;
  map.sizeA = t.shape[a];
  map.sizeB = t.shape[b];
  map.inStrideA = inStrides[a];
  map.outStrideB = outStrides[size_t(position[b])];
  map.tilesA = (map.sizeA + kTransposeTile - 1) / kTransposeTile;
  map.tilesB = (map.sizeB + kTransposeTile - 1) / kTransposeTile;
  int64_t batch = 1;
  for (size_t d = 0; d < rank; ++d) {
    if (d == a || d == b || map.batchRank >= kMaxLayoutRank)
      continue;
    map.batchShape[map.batchRank] = t.shape[d];
    map.batchInStride[map.batchRank] = inStrides[d];
    map.batchOutStride[map.batchRank] = outStrides[size_t(position[d])];
    ++map.batchRank;
    batch *= t.shape[d];
  }
  map.tiles = map.tilesA * map.tilesB * batch;
  return map;
}

// Where tile `tile` starts: its first A and B indices and the input and output offsets
// of its plane. Thread (x, y) then reads input[inBase + (a0 + y') inStrideA + b0 + x]
// into tile[y'][x] and writes tile[x][y'] to output[outBase + (b0 + y') outStrideB +
// a0 + x], for y' = y, y + 8, ... below 32, skipping indices past sizeA / sizeB.
struct TileOrigin {
  int64_t a0, b0, inBase, outBase;
};

APC_HD TileOrigin tileOrigin(const TileTransposeMap &map, int64_t tile) {
  int64_t perPlane = map.tilesA * map.tilesB;
  int64_t plane = tile / perPlane, rest = tile % perPlane;
  TileOrigin o;
  o.a0 = (rest / map.tilesB) * kTransposeTile;
  o.b0 = (rest % map.tilesB) * kTransposeTile;
  o.inBase = offsetOf(plane, map.batchRank, map.batchShape, map.batchInStride);
  o.outBase = offsetOf(plane, map.batchRank, map.batchShape, map.batchOutStride);
  return o;
}

// ---- reshape: a copy that may overlap its source ------------------------------------

// The CPU's memmove as stream-ordered copies without overlap inside any one: none when
// the buffers are the same, one when they are disjoint, else chunks as long as the
// distance between them, front to back when the result starts lower (back to front when
// higher), so no chunk overwrites source bytes a later chunk reads. (Plans alias a
// reshape's result to its input, so the kernel rarely copies at all.)
struct CopyPlan {
  int64_t bytes = 0, chunkBytes = 0, chunks = 0;
  bool backward = false;
};

inline CopyPlan copyPlan(uintptr_t dst, uintptr_t src, int64_t bytes) {
  CopyPlan plan;
  plan.bytes = bytes;
  if (dst == src || bytes <= 0)
    return plan;
  int64_t distance = int64_t(dst > src ? dst - src : src - dst);
  plan.chunkBytes = distance >= bytes ? bytes : distance;
  plan.chunks = (bytes + plan.chunkBytes - 1) / plan.chunkBytes;
  plan.backward = dst > src;
  return plan;
}

// Chunk k of the plan: its byte offset (in both buffers) and length.
inline std::pair<int64_t, int64_t> copyChunk(const CopyPlan &plan, int64_t k) {
  if (!plan.backward) {
    int64_t offset = k * plan.chunkBytes;
    return {offset, std::min(plan.chunkBytes, plan.bytes - offset)};
  }
  int64_t end = plan.bytes - k * plan.chunkBytes;
  int64_t offset = std::max<int64_t>(0, end - plan.chunkBytes);
  return {offset, end - offset};
}

// ---- slice: one block of one dim, as words ------------------------------------------

// The result is `outer` blocks, each a contiguous run of the input; copied as words of
// `wordBytes` (16, 8, 4, 2 or 1: the largest dividing every length, offset and both
// addresses). Output word i is input word sliceSource(map, i).
struct SliceMap {
  int64_t words = 0;     // the result's words
  int64_t blockWords = 0;
  int64_t rowWords = 0;  // the input's words between two blocks' starts
  int64_t offsetWords = 0;
  int wordBytes = 1;
};

inline SliceMap sliceMap(const std::vector<int64_t> &inShape, int64_t elementBytes, int64_t dim,
                         int64_t offset, int64_t length, uintptr_t dst, uintptr_t src) {
  int64_t outer = 1, inner = elementBytes;
  for (int64_t d = 0; d < dim; ++d)
    outer *= inShape[size_t(d)];
  for (size_t d = size_t(dim) + 1; d < inShape.size(); ++d)
    inner *= inShape[d];
  int64_t block = length * inner, row = inShape[size_t(dim)] * inner, start = offset * inner;
  int word = 16;
  while (word > 1 && (block % word || row % word || start % word || dst % uintptr_t(word) ||
                      src % uintptr_t(word)))
    word /= 2;
  SliceMap map;
  map.wordBytes = word;
  map.blockWords = block / word;
  map.rowWords = row / word;
  map.offsetWords = start / word;
  map.words = outer * map.blockWords;
  return map;
}

APC_HD int64_t sliceSource(const SliceMap &map, int64_t i) {
  return (i / map.blockWords) * map.rowWords + map.offsetWords + i % map.blockWords;
}

// ---- reduce_sum and broadcast: groups of dims treated alike ---------------------------

// The CPU backend's simplification: dims of size 1 dropped, neighbours with the same
// mark (reduced, or broadcast) merged.
struct Group {
  int64_t size;
  bool marked;
};

inline std::vector<Group> simplifyGroups(const std::vector<int64_t> &shape,
                                         const std::vector<bool> &marked) {
  std::vector<Group> groups;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1)
      continue;
    if (!groups.empty() && groups.back().marked == marked[d])
      groups.back().size *= shape[d];
    else
      groups.push_back({shape[d], bool(marked[d])});
  }
  return groups;
}

// reduce_sum as the CPU's: `inner` the innermost group (contiguous), `kept` and
// `reduced` the other groups with their input strides. When the innermost group is
// reduced (innerReduced), out[o] = sum over r < reducedCount, l < inner of
// x[kept(o) + reduced(r) + l]; else out[o inner + c] = sum over r of
// x[kept(o) + reduced(r) + c]. Sums in double, stored rounded once.
struct ReduceMap {
  bool innerReduced = false;
  int64_t inner = 1;
  int64_t keptCount = 1, reducedCount = 1;
  int keptRank = 0, reducedRank = 0;
  int64_t keptShape[kMaxLayoutRank] = {}, keptStride[kMaxLayoutRank] = {};
  int64_t reducedShape[kMaxLayoutRank] = {}, reducedStride[kMaxLayoutRank] = {};
};

// False when more than kMaxLayoutRank kept or reduced groups remain.
inline bool reduceMap(const std::vector<int64_t> &shape, const std::vector<int64_t> &dims,
                      ReduceMap &map) {
  std::vector<bool> reduced(shape.size(), false);
  for (int64_t d : dims)
    reduced[size_t(d)] = true;
  std::vector<Group> groups = simplifyGroups(shape, reduced);
  map = ReduceMap();
  std::vector<int64_t> strides(groups.size(), 1);
  for (int64_t g = int64_t(groups.size()) - 2; g >= 0; --g)
    strides[size_t(g)] = strides[size_t(g) + 1] * groups[size_t(g) + 1].size;
  map.innerReduced = !groups.empty() && groups.back().marked;
  map.inner = groups.empty() ? 1 : groups.back().size;
  for (size_t g = 0; g + 1 < groups.size(); ++g) {
    int &rank = groups[g].marked ? map.reducedRank : map.keptRank;
    if (rank >= kMaxLayoutRank)
      return false;
    if (groups[g].marked) {
      map.reducedShape[rank] = groups[g].size;
      map.reducedStride[rank] = strides[g];
      map.reducedCount *= groups[g].size;
    } else {
      map.keptShape[rank] = groups[g].size;
      map.keptStride[rank] = strides[g];
      map.keptCount *= groups[g].size;
    }
    ++rank;
  }
  return true;
}

APC_HD int64_t keptOffset(const ReduceMap &map, int64_t o) {
  return offsetOf(o, map.keptRank, map.keptShape, map.keptStride);
}
APC_HD int64_t reducedOffset(const ReduceMap &map, int64_t r) {
  return offsetOf(r, map.reducedRank, map.reducedShape, map.reducedStride);
}
// Element j of output o's reduction when the innermost group is reduced: j runs over
// reducedCount x inner, the run of each reduced offset contiguous.
APC_HD int64_t innerReducedSource(const ReduceMap &map, int64_t keptBase, int64_t j) {
  return keptBase + reducedOffset(map, j / map.inner) + j % map.inner;
}

// The column sum (innermost group kept): blocks of 32 columns x `lanes` rows of
// threads; lane y sums reductions r = y, y + lanes, ... in double, then the lanes are
// added in lane order. More lanes when the tiles alone would leave the GPU idle (fewer
// than about 64 warps per SM of an H100), never more lanes than reductions. Depends on
// the shapes only, so the order of the sums (and the result) is the same every run.
constexpr int64_t kReduceColumns = 32;
constexpr int64_t kMaxReduceLanes = 32;

inline int64_t columnReduceTiles(const ReduceMap &map) {
  return map.keptCount * ((map.inner + kReduceColumns - 1) / kReduceColumns);
}
inline int64_t columnReduceLanes(const ReduceMap &map) {
  int64_t tiles = columnReduceTiles(map), lanes = 8;
  while (lanes < kMaxReduceLanes && tiles * lanes < 132 * 64 && lanes * 2 <= map.reducedCount)
    lanes *= 2;
  return lanes;
}

// broadcast: output element i is input element broadcastSource(map, i); the groups'
// input strides are 0 where the group is broadcast.
struct BroadcastMap {
  int rank = 0;
  int64_t shape[kMaxLayoutRank] = {};
  int64_t sourceStride[kMaxLayoutRank] = {};
};

// False when more than kMaxLayoutRank groups remain.
inline bool broadcastMap(const std::vector<int64_t> &outShape, const std::vector<int64_t> &dims,
                         BroadcastMap &map) {
  std::vector<bool> added(outShape.size(), false);
  for (int64_t d : dims)
    added[size_t(d)] = true;
  std::vector<Group> groups = simplifyGroups(outShape, added);
  if (groups.size() > size_t(kMaxLayoutRank))
    return false;
  map.rank = int(groups.size());
  int64_t stride = 1;
  for (int64_t g = int64_t(groups.size()) - 1; g >= 0; --g) {
    map.shape[g] = groups[size_t(g)].size;
    map.sourceStride[g] = groups[size_t(g)].marked ? 0 : stride;
    if (!groups[size_t(g)].marked)
      stride *= groups[size_t(g)].size;
  }
  return true;
}

APC_HD int64_t broadcastSource(const BroadcastMap &map, int64_t i) {
  return offsetOf(i, map.rank, map.shape, map.sourceStride);
}

// ---- shift_labels -------------------------------------------------------------------

// result[r, t] = labels[r, t + 1], and ignore_index at the last position. In place
// (result the labels' memory) the row goes in chunks of the block's threads: all of a
// chunk read (positions start + 1 ... start + threads), then all write (start ...
// start + threads - 1), so no position is written before the chunk that reads it.
// The source of position t, or -1 for ignore_index.
APC_HD int64_t shiftSource(int64_t t, int64_t seq) { return t + 1 < seq ? t + 1 : -1; }

} // namespace apc::kernels::cuda
