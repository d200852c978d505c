// The arithmetic and indexing of rope and rope_grad on CUDA (Rope.cu), in plain C++ so
// that the host tests (test/unit/kernels/cuda/RopeTest.cpp) run it against the CPU
// backend without a GPU. As the CPU kernel: the inverse frequencies and the angles are
// doubles (angles reach thousands of radians, where f32 would lose the phase), cos and
// sin are rounded to f32 once into a [seq, half] table, and the pairs rotate in f32.
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/kernels/cuda/HostDevice.h"

#include <cmath>
#include <cstdint>

namespace apc::kernels::cuda {

// The attributes that set the frequencies (prepare checked them; llama3's are read
// only when rope_type is "llama3").
struct RopeFrequencies {
  double theta = 10000.0;
  bool llama3 = false;
  double factor = 1.0, lowFreqFactor = 1.0, highFreqFactor = 1.0, originalMax = 1.0;
};

inline RopeFrequencies ropeFrequencies(const Attributes &attrs) {
  RopeFrequencies f;
  f.theta = attrs.getFloat("theta");
  f.llama3 = attrs.getString("rope_type", "default") == "llama3";
  if (f.llama3) {
    f.factor = attrs.getFloat("factor");
    f.lowFreqFactor = attrs.getFloat("low_freq_factor");
    f.highFreqFactor = attrs.getFloat("high_freq_factor");
    f.originalMax = double(attrs.getInt("original_max_position_embeddings"));
  }
  return f;
}

// inv_freq[j] of a head of `dim` as transformers computes it (and the CPU backend, in
// the same operation order), with llama3's rescaling of the low frequencies.
APC_HD double ropeInverseFrequency(const RopeFrequencies &f, int64_t j, int64_t dim) {
  double inv = 1.0 / pow(f.theta, double(2 * j) / double(dim));
  if (!f.llama3)
    return inv;
  double lowFreqWavelen = f.originalMax / f.lowFreqFactor;
  double highFreqWavelen = f.originalMax / f.highFreqFactor;
  double wavelen = 2.0 * M_PI / inv;
  if (wavelen < highFreqWavelen)
    return inv; // high frequency: kept
  if (wavelen > lowFreqWavelen)
    return inv / f.factor; // low frequency: scaled
  double smooth =
      (f.originalMax / wavelen - f.lowFreqFactor) / (f.highFreqFactor - f.lowFreqFactor);
  return (1.0 - smooth) * inv / f.factor + smooth * inv;
}

// The table: cos at [s * half + j], direction * sin at [seq * half + s * half + j]
// (direction -1 for rope_grad: the adjoint of a rotation is the opposite rotation).
inline uint64_t ropeTableBytes(int64_t seq, int64_t half) {
  return uint64_t(seq) * uint64_t(half) * 2 * sizeof(float);
}

// The part of the sequence a call rotates: all of it, or under context parallelism
// (seq_shard_rank r of seq_shard_parts n) chunks r and 2n-1-r of the sequence cut into
// 2n, `rows` rows in all.
struct RopePart {
  int64_t rank = 0, parts = 1, rows = 0;
};
inline RopePart ropePart(const Attributes &attrs, int64_t rows) {
  return {attrs.getInt("seq_shard_rank", 0), attrs.getInt("seq_shard_parts", 1), rows};
}
// The position in the whole sequence of row s of the part.
APC_HD int64_t ropePosition(const RopePart &p, int64_t s) {
  if (p.parts == 1)
    return s;
  int64_t half = p.rows / 2, chunk = s < half ? p.rank : 2 * p.parts - 1 - p.rank;
  return chunk * half + s % half;
}

// Entry i = s * half + j of the table: the angle (offset + position of s) inv_freq[j] in
// double.
APC_HD void ropeTableEntry(const RopeFrequencies &f, int64_t i, int64_t half, int64_t offset,
                           double direction, float &cosine, float &sine,
                           RopePart part = RopePart()) {
  int64_t s = i / half, j = i % half;
  double angle = double(offset + ropePosition(part, s)) * ropeInverseFrequency(f, j, 2 * half);
  cosine = float(cos(angle));
  sine = float(direction * sin(angle));
}

// Pair q of the input [batch, seq, heads, 2 half] (q over batch x seq x heads x half):
// the elements j and j + half of one head vector, and the table entry of its position.
struct RopePair {
  int64_t first, second, entry;
};
APC_HD RopePair ropePair(int64_t q, int64_t seq, int64_t heads, int64_t half) {
  int64_t vector = q / half, j = q % half;
  int64_t s = (vector / heads) % seq;
  int64_t first = vector * 2 * half + j;
  return {first, first + half, s * half + j};
}

// The rotation of one pair in f32; both read before either is written (in place).
APC_HD void ropeRotate(float x1, float x2, float cosine, float sine, float &y1, float &y2) {
  y1 = x1 * cosine - x2 * sine;
  y2 = x2 * cosine + x1 * sine;
}

} // namespace apc::kernels::cuda
