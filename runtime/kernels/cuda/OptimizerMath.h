// The arithmetic and indexing of the CUDA optimizer kernels (Optimizer.cu), in plain C++
// so that the host tests (test/unit/kernels/cuda/OptimizerTest.cpp) run it against the
// CPU backend on machines without a GPU.
//
// grad_norm: the gradients are cut into the CPU backend's chunks of kNormChunk elements
// (per gradient, in input order); one block per chunk sums its squares in double (thread
// t takes elements t, t + T, ... of the chunk, the block folds in BlockFold.h's order)
// into a partial in the workspace, and one block adds the partials (thread t takes
// partials t, t + T, ..., folded the same way). Launches take up to kNormBatch gradients
// each (a NormBatch, passed by value), so a model's hundreds of gradients need a few.
//
// adamw: the per-step scalars (bias corrections, clip factor) in double from the device's
// step, lr and grad_norm, then the CPU backend's per-element update with its rounding
// points (Unfused.h).
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/kernels/cuda/HostDevice.h"
#include "runtime/kernels/cuda/Unfused.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace apc::kernels::cuda::optimizer {

// ---- grad_norm -------------------------------------------------------------------------

constexpr int64_t kNormChunk = int64_t(1) << 14; // the CPU backend's kNormBlock
constexpr uint32_t kNormThreads = 256;           // a chunk's block: 64 elements a thread
constexpr uint32_t kNormFinishThreads = 1024;    // the one block adding the partials
constexpr int kNormBatch = 64;                   // gradients a launch (~1.6 KB parameters)

inline int64_t normChunks(int64_t n) { return n <= 0 ? 0 : (n + kNormChunk - 1) / kNormChunk; }

// Up to kNormBatch non-empty gradients; chunk c of the launch (its blockIdx.x) writes
// partial `base + c`.
struct NormBatch {
  const void *data[kNormBatch];
  DType dtype[kNormBatch];
  int64_t elements[kNormBatch];
  int64_t firstChunk[kNormBatch + 1]; // of the launch; firstChunk[size] is its chunk count
  int size;
  int64_t base; // the first chunk's index among all the gradients' chunks
};

// The elements [begin, end) of gradient `entry` that chunk c of a batch covers.
struct NormChunk {
  int entry;
  int64_t begin, end;
};

APC_HD NormChunk normChunk(const NormBatch &batch, int64_t c) {
  int lo = 0, hi = batch.size - 1; // the last entry whose first chunk is <= c
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (batch.firstChunk[mid] <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  int64_t begin = (c - batch.firstChunk[lo]) * kNormChunk;
  int64_t end = begin + kNormChunk < batch.elements[lo] ? begin + kNormChunk : batch.elements[lo];
  return {lo, begin, end};
}

// Fills `batch` with the next non-empty gradients from `next` on, their chunks numbered
// from `base`; returns false when no gradient is left. Advances `next` and `base`.
inline bool nextNormBatch(const std::vector<TensorView> &grads, size_t &next, int64_t &base,
                          NormBatch &batch) {
  batch.size = 0;
  batch.base = base;
  batch.firstChunk[0] = 0;
  for (; next < grads.size() && batch.size < kNormBatch; ++next) {
    int64_t n = grads[next].numElements();
    if (n == 0)
      continue;
    int e = batch.size++;
    batch.data[e] = grads[next].data;
    batch.dtype[e] = grads[next].dtype;
    batch.elements[e] = n;
    batch.firstChunk[e + 1] = batch.firstChunk[e] + normChunks(n);
  }
  base += batch.firstChunk[batch.size];
  return batch.size > 0;
}

// Partials the workspace holds: one per chunk of every gradient.
inline int64_t normPartials(const std::vector<TensorView> &grads) {
  int64_t chunks = 0;
  for (const TensorView &g : grads)
    chunks += normChunks(g.numElements());
  return chunks;
}

// One element's square, added in double as the CPU's sumSquaresAsDouble.
APC_HD double squareTerm(float v) { return unfusedMul(double(v), double(v)); }

APC_HD float normResult(double sumSquares, bool squared) {
  return float(squared ? sumSquares : ::sqrt(sumSquares));
}

// ---- adamw -----------------------------------------------------------------------------

// The attributes, with the CPU backend's defaults.
struct AdamWHyper {
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0.01;
  double maxGradNorm = 0; // clipping, when `clip`
  bool clip = false;
  bool skipNonFinite = false;
};

// What a step does to every element: the update; keep the parameter and moments (the
// gradient norm is not finite and skip_non_finite is set); or poison them with NaN (a
// step below 1, which the CPU backend refuses: a kernel cannot refuse without reading the
// step back, once per parameter, so the parameter is made NaN and the next loss says so).
enum class AdamWAction : int { Update, Keep, Poison };

struct AdamWScalars {
  AdamWAction action = AdamWAction::Update;
  float decay = 1, stepSize = 0, invBias2Sqrt = 1, b1 = 0, b2 = 0, c1 = 0, c2 = 0, epsilon = 0,
        clip = 1;
};

// The CPU backend's per-step scalars, in double, each rounded to f32 once.
APC_HD AdamWScalars adamwScalars(const AdamWHyper &h, int64_t step, double lr, double gradNorm) {
  AdamWScalars s;
  if (step < 1) {
    s.action = AdamWAction::Poison;
    return s;
  }
  // gradNorm - gradNorm is 0 exactly when gradNorm is finite (inf - inf and NaN are NaN).
  if (h.skipNonFinite && !(gradNorm - gradNorm == 0.0)) {
    s.action = AdamWAction::Keep;
    return s;
  }
  // torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6)), NaN giving 1 as
  // std::min(1.0, NaN) does.
  double clip = 1.0;
  if (h.clip) {
    double c = h.maxGradNorm / (gradNorm + 1e-6);
    clip = c < 1.0 ? c : 1.0;
  }
  double biasCorrection1 = 1.0 - ::pow(h.beta1, double(step));
  double biasCorrection2 = 1.0 - ::pow(h.beta2, double(step));
  s.decay = float(unfusedSub(1.0, unfusedMul(lr, h.weightDecay)));
  s.stepSize = float(lr / biasCorrection1);
  s.invBias2Sqrt = float(1.0 / ::sqrt(biasCorrection2));
  s.b1 = float(h.beta1);
  s.b2 = float(h.beta2);
  s.c1 = float(1.0 - h.beta1);
  s.c2 = float(1.0 - h.beta2);
  s.epsilon = float(h.epsilon);
  s.clip = float(clip);
  return s;
}

struct AdamWElement {
  float param, expAvg, expAvgSq;
};

// One element's update, operation for operation the CPU backend's: decoupled weight decay,
// the moments, then the step.
APC_HD AdamWElement adamwElement(const AdamWScalars &s, float grad, float param, float expAvg,
                                 float expAvgSq) {
  if (s.action == AdamWAction::Keep)
    return {param, expAvg, expAvgSq};
  if (s.action == AdamWAction::Poison) {
    float nan = std::numeric_limits<float>::quiet_NaN();
    return {nan, nan, nan};
  }
  float g = unfusedMul(grad, s.clip);
  float p = unfusedMul(param, s.decay);
  float m = unfusedAdd(unfusedMul(s.b1, expAvg), unfusedMul(s.c1, g));
  float v = unfusedAdd(unfusedMul(s.b2, expAvgSq), unfusedMul(unfusedMul(s.c2, g), g));
  float denominator = unfusedAdd(unfusedMul(roundedSqrt(v), s.invBias2Sqrt), s.epsilon);
  return {unfusedSub(p, unfusedDiv(unfusedMul(s.stepSize, m), denominator)), m, v};
}

} // namespace apc::kernels::cuda::optimizer
