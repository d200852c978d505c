// The arithmetic of the CUDA loss kernels (Loss.cu), in plain C++ so that the host tests
// (test/unit/kernels/cuda/LossTest.cpp) run it against the CPU backend on machines
// without a GPU: the exp, a row's loss and gradient terms, the labels' meaning, the
// loss's reduction and weight, the kernels' launch and workspace.
//
// Rows are spread over a block's threads as a grid-stride loop over the row: thread t of
// T takes columns t, t + T, ... in order (a running max; exp terms summed in double) and
// the block combines the threads' partials in BlockFold.h's order. Labels are scanned by
// one block of kLabelThreads threads the same way, row t, t + T, ...
#pragma once

#include "runtime/kernels/cuda/HostDevice.h"
#include "runtime/kernels/cuda/Launch.h"
#include "runtime/kernels/cuda/Unfused.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace apc::kernels::cuda::loss {

// exp(x) exactly as the CPU backend's expF32 (cpu/Common.h: Cephes' expf, a degree-7
// polynomial, 2^n from the exponent bits), with its rounding points (Unfused.h), so both
// backends' softmax terms agree bit for bit. 0 below x = -87.34, clamped above 88.37.
APC_HD float expF32(float x) {
  bool underflow = x < -87.336544f;
  x = x > 88.376259f ? 88.376259f : x; // NaN stays NaN
  x = underflow ? -87.336544f : x;
  float n = unfusedSub(unfusedAdd(unfusedMul(x, 1.44269504088896341f), 12582912.0f),
                       12582912.0f); // round(x / ln2)
  float r = unfusedSub(unfusedSub(x, unfusedMul(n, 0.693359375f)),
                       unfusedMul(n, -2.12194440e-4f)); // ln2 in two parts
  float p = 1.9875691500e-4f;
  p = unfusedAdd(unfusedMul(p, r), 1.3981999507e-3f);
  p = unfusedAdd(unfusedMul(p, r), 8.3334519073e-3f);
  p = unfusedAdd(unfusedMul(p, r), 4.1665795894e-2f);
  p = unfusedAdd(unfusedMul(p, r), 1.6666665459e-1f);
  p = unfusedAdd(unfusedMul(p, r), 5.0000001201e-1f);
  p = unfusedAdd(unfusedAdd(unfusedMul(p, unfusedMul(r, r)), r), 1.0f);
  n = n == n ? n : 0.0f;                            // NaN: p carries it
  uint32_t bits = uint32_t(int32_t(n) + 127) << 23; // 2^n, n in [-126, 127]
#if defined(__CUDA_ARCH__)
  float scale = __uint_as_float(bits);
#else
  float scale;
  std::memcpy(&scale, &bits, 4);
#endif
  return underflow ? 0.0f : unfusedMul(p, scale);
}

APC_HD float negativeInfinity() { return -std::numeric_limits<float>::infinity(); }
APC_HD float notANumber() { return std::numeric_limits<float>::quiet_NaN(); }

// ---- Labels -------------------------------------------------------------------------

// A label that is neither the ignore index nor a column of [0, vocab): cross_entropy and
// cross_entropy_grad refuse it (the vocabulary-parallel kernels do not range-check).
APC_HD bool isBadLabel(int64_t label, int64_t ignore, int64_t vocab) {
  return label != ignore && (label < 0 || label >= vocab);
}

// The label's column in a block of `vocab` ids from global id `start`, or -1 where the
// label is ignored or another block holds it.
APC_HD int64_t localColumn(int64_t label, int64_t ignore, int64_t start, int64_t vocab) {
  return label != ignore && label >= start && label - start < vocab ? label - start : -1;
}

// "No bad label" in the first-bad-position reduction (a minimum over rows).
constexpr int64_t kNoBadLabel = std::numeric_limits<int64_t>::max();

// ---- A row's loss and gradient ------------------------------------------------------

// One term of a row's sum of exponentials (the sum is taken in double, as the CPU's).
APC_HD double expTerm(float logit, float rowMax) { return double(expF32(logit - rowMax)); }

// -log softmax(x)[label] = max + log(sum exp(x - max)) - x[label], in double.
APC_HD double rowLoss(float rowMax, double sumExp, float target) {
  return double(rowMax) + ::log(sumExp) - double(target);
}

// The softmax's scale: weight / sum exp(x - max), rounded to f32 once.
APC_HD float softmaxScale(double weight, double sumExp) { return float(weight / sumExp); }

// The gradient at a column that is not the label's, and at the label's (the one-hot term
// subtracted from the unrounded product), before rounding to the logits' dtype.
APC_HD float gradValue(float expValue, float scale) { return unfusedMul(expValue, scale); }
APC_HD float targetGradValue(float expValue, float scale, double weight) {
  return unfusedSub(unfusedMul(expValue, scale), float(weight));
}

// ---- Reductions over rows -----------------------------------------------------------

// The loss of the kept rows' summed losses: their mean over `count` (NaN when nothing is
// kept) or their sum.
APC_HD float reducedLoss(double total, double count, bool mean) {
  return mean ? (count > 0 ? float(total / count) : notANumber()) : float(total);
}

// Each kept row's gradient weight: grad_loss / count for the mean (with nothing kept every
// row is ignored and zero, so the weight is left undivided), grad_loss for the sum.
APC_HD double lossWeight(double gradLoss, double count, bool mean) {
  return mean && count > 0 ? gradLoss / count : gradLoss;
}

// ---- The label scan --------------------------------------------------------------------

// The labels' scan (counting kept rows, the first bad label, the loss's sum): one block.
constexpr uint32_t kLabelThreads = 1024;

// What the label scan leaves for the host and the gradient rows, at the workspace's start.
struct LabelReport {
  int64_t badPosition; // the first bad label's flat position, -1 if none
  int64_t badLabel;    // its value
  double weight;       // the gradient's weight per kept row (the _grad kernels)
};

// What one scan reads and writes; absent pointers are parts it does not do.
struct ScanArgs {
  int64_t rows = 0, vocab = 0, ignore = -100;
  bool validate = false, mean = true;
  const double *losses = nullptr;                                      // cross_entropy's rows
  const float *rowMax = nullptr, *sumExp = nullptr, *target = nullptr; // vocab_parallel_loss
  const float *keptCount = nullptr; // the global kept count (data parallelism)
  const float *gradLoss = nullptr;  // the _grad kernels: the weight per kept row
  float *loss = nullptr;            // the reduced loss
  float *count = nullptr;           // count_kept
  LabelReport *report = nullptr;
};

// One thread's part of the scan, each field folded over the block with its own combine
// (Plus, Plus, Min).
struct ScanPartial {
  double total = 0; // the kept rows' losses
  int64_t kept = 0; // rows whose label is not the ignore index (and not bad)
  int64_t firstBad = kNoBadLabel;
};

// Thread t of `threads`: rows t, t + threads, ... in order.
template <typename Id>
APC_HD ScanPartial scanThread(const Id *labels, const ScanArgs &a, int64_t t, int64_t threads) {
  ScanPartial p;
  for (int64_t r = t; r < a.rows; r += threads) {
    int64_t label = int64_t(labels[r]);
    if (label == a.ignore)
      continue;
    if (a.validate && isBadLabel(label, a.ignore, a.vocab)) {
      p.firstBad = p.firstBad < r ? p.firstBad : r;
      continue;
    }
    ++p.kept;
    if (a.losses)
      p.total += a.losses[r];
    else if (a.rowMax)
      p.total += rowLoss(a.rowMax[r], double(a.sumExp[r]), a.target[r]);
  }
  return p;
}

// The block's result (thread 0): the report, then the outputs unless a label was bad
// (the run is refused and the outputs stay as they were, as the CPU backend's).
template <typename Id>
APC_HD void scanFinish(const Id *labels, const ScanArgs &a, const ScanPartial &block) {
  bool bad = block.firstBad != kNoBadLabel;
  double count = a.keptCount ? double(*a.keptCount) : double(block.kept);
  if (a.report) {
    a.report->badPosition = bad ? block.firstBad : -1;
    a.report->badLabel = bad ? int64_t(labels[block.firstBad]) : 0;
    a.report->weight = a.gradLoss ? lossWeight(double(*a.gradLoss), count, a.mean) : 0.0;
  }
  if (bad)
    return;
  if (a.loss)
    *a.loss = reducedLoss(block.total, count, a.mean);
  if (a.count)
    *a.count = float(block.kept);
}

// ---- Launch and workspace -----------------------------------------------------------

// One block per row, sized by the row's width (Launch.h); a row of no columns still gets
// a block, as its statistics (max -inf, sum 0) are written.
inline Launch rowsLaunch(int64_t rows, int64_t vocab) {
  return rowLaunch(rows, vocab > 0 ? vocab : 1);
}

// The label scan's report, padded so that what follows is aligned.
constexpr uint64_t kReportBytes = 256;

// cross_entropy: the report, then each row's loss (double).
inline uint64_t crossEntropyWorkspace(int64_t rows) {
  return kReportBytes + uint64_t(rows > 0 ? rows : 0) * 8;
}

// The CPU backend's refusal of a bad label, word for word.
inline std::string badLabelMessage(const char *kernel, const std::vector<int64_t> &shape,
                                   int64_t flat, int64_t label, int64_t vocab) {
  std::vector<int64_t> index(shape.size());
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    index[size_t(i)] = shape[size_t(i)] ? flat % shape[size_t(i)] : 0;
    flat = shape[size_t(i)] ? flat / shape[size_t(i)] : 0;
  }
  std::string position = "[";
  for (size_t i = 0; i < index.size(); ++i)
    position += (i ? ", " : "") + std::to_string(index[i]);
  return std::string(kernel) + ": label " + std::to_string(label) + " at labels" + position +
         "] is outside [0, " + std::to_string(vocab) + ") and is not the ignore index";
}

} // namespace apc::kernels::cuda::loss
