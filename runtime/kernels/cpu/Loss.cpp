// The causal-LM loss: shift_labels, cross_entropy, cross_entropy_grad, count_kept, and
// the vocabulary-parallel form of the loss (vocab_parallel_max, vocab_parallel_stats,
// vocab_parallel_loss, vocab_parallel_loss_grad).
//
// Design idea: labels are validated (and the kept positions counted) by one serial
// scan, so an invalid label is reported at its first position and the row-parallel
// part cannot fail. Each row is widened once to f32 scratch, and its logsumexp takes
// a vectorisable exp and a double sum. The scalar loss is the sum of the per-row
// losses taken in row order, so it is bit-identical for any thread count.
//
// The vocabulary-parallel kernels see a block of the vocabulary starting at global id
// `vocab_start` (Int attribute, 0 when absent); labels are not range-checked (a block
// does not know the global vocabulary), a label outside the block simply matches no
// local column. Row statistics are f32 tensors of the labels' shape.
#include "runtime/kernels/cpu/Common.h"

#include <cmath>
#include <limits>

namespace apc::kernels::cpu {
namespace {

// ---- shift_labels -------------------------------------------------------------------

Status prepareShiftLabels(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                          const Attributes &attrs) {
  Checker check("shift_labels");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("labels", in[0], Kind::Id, kRankAtLeast1));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "ignore_index", false));
  return check.sameType("result", out[0], "labels", in[0]);
}

Status runShiftLabels(const KernelContext &, const std::vector<TensorView> &in,
                      const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t ignore = attrs.getInt("ignore_index", -100);
  int64_t seq = in[0].shape.back(), rows = rowsOf(in[0].shape);
  dispatchId(in[0].dtype, [&](auto idType) {
    using Id = decltype(idType);
    const Id *labels = in[0].as<Id>();
    Id *result = out[0].as<Id>();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t t = 0; t + 1 < seq; ++t) // forward order: safe in place
        result[r * seq + t] = labels[r * seq + t + 1];
      if (seq > 0)
        result[r * seq + seq - 1] = Id(ignore);
    }
  });
  return Status::ok();
}

// ---- cross_entropy, cross_entropy_grad ----------------------------------------------

Status checkLossOperands(const Checker &check, const std::vector<TensorView> &in,
                         const Attributes &attrs) {
  APC_RETURN_IF_ERROR(check.tensor("logits", in[0], Kind::Float, kRankAtLeast1));
  APC_RETURN_IF_ERROR(check.tensor("labels", in[1], Kind::Id));
  std::vector<int64_t> rowsShape(in[0].shape.begin(), in[0].shape.end() - 1);
  if (in[1].shape != rowsShape)
    return check.error("labels " + describe(in[1]) +
                       " must have the shape of logits without its last dim, logits " +
                       describe(in[0]));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "ignore_index", false));
  return check.stringAttr(attrs, "reduction", {"mean", "sum"});
}

Status prepareCrossEntropy(const std::vector<TensorView> &in,
                           const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("cross_entropy");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 3, 1));
  APC_RETURN_IF_ERROR(checkLossOperands(check, in, attrs));
  if (in.size() == 3) { // the global kept count (data parallelism)
    APC_RETURN_IF_ERROR(check.dtype("kept_count", in[2], DType::F32));
    APC_RETURN_IF_ERROR(check.shape("kept_count", in[2], {}));
  }
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], DType::F32));
  return check.shape("result", out[0], {});
}

Status prepareCrossEntropyGrad(const std::vector<TensorView> &in,
                               const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("cross_entropy_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 3, 4, 1));
  APC_RETURN_IF_ERROR(checkLossOperands(check, in, attrs));
  if (in.size() == 4) {
    APC_RETURN_IF_ERROR(check.dtype("kept_count", in[3], DType::F32));
    APC_RETURN_IF_ERROR(check.shape("kept_count", in[3], {}));
  }
  APC_RETURN_IF_ERROR(check.dtype("grad_loss", in[2], DType::F32));
  APC_RETURN_IF_ERROR(check.shape("grad_loss", in[2], {}));
  return check.sameType("grad_logits", out[0], "logits", in[0]);
}

// Validates the labels (first bad one reported) and counts the kept positions.
template <typename Id>
Status scanLabels(const char *kernel, const TensorView &labels, int64_t vocab, int64_t ignore,
                  int64_t &kept) {
  const Id *data = labels.as<Id>();
  int64_t n = labels.numElements();
  kept = 0;
  for (int64_t r = 0; r < n; ++r) {
    int64_t label = int64_t(data[r]);
    if (label == ignore)
      continue;
    if (label < 0 || label >= vocab)
      return Status::error(std::string(kernel) + ": label " + std::to_string(label) +
                           " at labels" + positionString(labels.shape, r) + " is outside [0, " +
                           std::to_string(vocab) + ") and is not the ignore index");
    ++kept;
  }
  return Status::ok();
}

// Widens one row of logits to f32 in `x` and returns its max; then
// sumExp(x, n, max) = sum(exp(x - max)) in double, leaving exp(x - max) in x.
template <typename S> float loadRow(const typename S::T *row, int64_t vocab, float *x) {
  float maxLogit = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maxLogit)
  for (int64_t v = 0; v < vocab; ++v) {
    x[v] = S::load(row[v]);
    maxLogit = std::max(maxLogit, x[v]);
  }
  return maxLogit;
}

inline double sumExp(float *x, int64_t vocab, float maxLogit) {
#pragma omp simd
  for (int64_t v = 0; v < vocab; ++v)
    x[v] = expF32(x[v] - maxLogit);
  return sumAsDouble(x, vocab);
}

// Widens one row to f32 in `x`.
template <typename S> void widenRow(const typename S::T *row, int64_t vocab, float *x) {
#pragma omp simd
  for (int64_t v = 0; v < vocab; ++v)
    x[v] = S::load(row[v]);
}

// Rows of the softmax cross-entropy gradient over a block of the vocabulary whose first
// id is `start` (0 and the whole vocabulary for cross_entropy_grad):
// (softmax - one-hot(label)) * weight, zero where the label is `ignore`. The softmax uses
// `rowMax`/`rowSum` when given (the whole rows' statistics, vocabulary-parallel) and
// each row's own otherwise.
template <typename S, typename Id>
void softmaxGradRows(const typename S::T *x, typename S::T *dx, const Id *label, int64_t rows,
                     int64_t vocab, int64_t ignore, int64_t start, double weight,
                     const float *rowMax, const float *rowSum, int threads) {
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const typename S::T *row = x + r * vocab;
    typename S::T *grad = dx + r * vocab;
    int64_t target = int64_t(label[r]);
    if (target == ignore) {
      std::fill(grad, grad + vocab, S::store(0.0f));
      continue;
    }
    static thread_local std::vector<float> rowBuffer;
    float *values = scratch(rowBuffer, size_t(vocab));
    float maxLogit;
    if (rowMax) {
      widenRow<S>(row, vocab, values);
      maxLogit = rowMax[r];
    } else {
      maxLogit = loadRow<S>(row, vocab, values);
    }
    double sum = sumExp(values, vocab, maxLogit);
    float scale = float(weight / (rowSum ? double(rowSum[r]) : sum));
#pragma omp simd
    for (int64_t v = 0; v < vocab; ++v)
      grad[v] = S::store(values[v] * scale);
    // The one-hot term, when this block holds the label, from the unrounded value.
    if (target >= start && target - start < vocab)
      grad[target - start] = S::store(values[target - start] * scale - float(weight));
  }
}

Status runCrossEntropy(const KernelContext &context, const std::vector<TensorView> &in,
                       const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits.shape);
  int64_t ignore = attrs.getInt("ignore_index", -100);
  bool mean = attrs.getString("reduction", "mean") == "mean";
  return dispatchId(labels.dtype, [&](auto idType) {
    using Id = decltype(idType);
    int64_t kept = 0;
    APC_RETURN_IF_ERROR(scanLabels<Id>("cross_entropy", labels, vocab, ignore, kept));
    const Id *label = labels.as<Id>();
    static thread_local std::vector<double> lossBuffer;
    double *losses = scratch(lossBuffer, size_t(rows));
    int threads = threadsFor(context, 8 * rows * vocab);
    dispatchFloat(logits.dtype, [&](auto storage) {
      using S = decltype(storage);
      const typename S::T *x = logits.as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        if (int64_t(label[r]) == ignore) {
          losses[r] = 0;
          continue;
        }
        static thread_local std::vector<float> rowBuffer;
        float *values = scratch(rowBuffer, size_t(vocab));
        float maxLogit = loadRow<S>(x + r * vocab, vocab, values);
        float target = values[int64_t(label[r])];
        double sum = sumExp(values, vocab, maxLogit);
        losses[r] = double(maxLogit) + std::log(sum) - double(target);
      }
    });
    double total = 0;
    for (int64_t r = 0; r < rows; ++r)
      total += losses[r];
    double count = in.size() > 2 ? double(*in[2].as<float>()) : double(kept);
    float result = mean ? (count > 0 ? float(total / count) : std::nanf("")) : float(total);
    *out[0].as<float>() = result;
    return Status::ok();
  });
}

Status runCrossEntropyGrad(const KernelContext &context, const std::vector<TensorView> &in,
                           const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits.shape);
  int64_t ignore = attrs.getInt("ignore_index", -100);
  bool mean = attrs.getString("reduction", "mean") == "mean";
  return dispatchId(labels.dtype, [&](auto idType) {
    using Id = decltype(idType);
    int64_t kept = 0;
    APC_RETURN_IF_ERROR(scanLabels<Id>("cross_entropy_grad", labels, vocab, ignore, kept));
    const Id *label = labels.as<Id>();
    // Mean: each kept position weighs 1/kept; with none kept every row is zero.
    double weight = double(*in[2].as<float>());
    double count = in.size() > 3 ? double(*in[3].as<float>()) : double(kept);
    if (mean && count > 0)
      weight /= count;
    int threads = threadsFor(context, 8 * rows * vocab);
    dispatchFloat(logits.dtype, [&](auto storage) {
      using S = decltype(storage);
      using T = typename S::T;
      softmaxGradRows<S>(logits.as<T>(), out[0].as<T>(), label, rows, vocab, ignore, 0, weight,
                         nullptr, nullptr, threads);
    });
    return Status::ok();
  });
}

// ---- vocab_parallel_max, vocab_parallel_stats, vocab_parallel_loss(_grad) -----------

// Checks the per-row f32 statistic `role` of the labels' shape.
Status checkRowTensor(const Checker &check, const char *role, const TensorView &v,
                      const TensorView &labels) {
  APC_RETURN_IF_ERROR(check.dtype(role, v, DType::F32));
  return check.shape(role, v, labels.shape);
}

Status checkKeptCount(const Checker &check, const TensorView &v) {
  APC_RETURN_IF_ERROR(check.dtype("kept_count", v, DType::F32));
  return check.shape("kept_count", v, {});
}

Status prepareVocabParallelMax(const std::vector<TensorView> &in,
                               const std::vector<TensorView> &out, const Attributes &) {
  Checker check("vocab_parallel_max");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("logits", in[0], Kind::Float, kRankAtLeast1));
  std::vector<int64_t> rowsShape(in[0].shape.begin(), in[0].shape.end() - 1);
  APC_RETURN_IF_ERROR(check.dtype("row_max", out[0], DType::F32));
  return check.shape("row_max", out[0], rowsShape);
}

Status runVocabParallelMax(const KernelContext &context, const std::vector<TensorView> &in,
                           const std::vector<TensorView> &out, const Attributes &) {
  const TensorView &logits = in[0];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits.shape);
  float *rowMax = out[0].as<float>();
  int threads = threadsFor(context, rows * vocab);
  dispatchFloat(logits.dtype, [&](auto storage) {
    using S = decltype(storage);
    const typename S::T *x = logits.as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const typename S::T *row = x + r * vocab;
      float maxLogit = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maxLogit)
      for (int64_t v = 0; v < vocab; ++v)
        maxLogit = std::max(maxLogit, S::load(row[v]));
      rowMax[r] = maxLogit;
    }
  });
  return Status::ok();
}

Status prepareVocabParallelStats(const std::vector<TensorView> &in,
                                 const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("vocab_parallel_stats");
  APC_RETURN_IF_ERROR(check.arity(in, out, 3, 3, 2));
  APC_RETURN_IF_ERROR(check.tensor("logits", in[0], Kind::Float, kRankAtLeast1));
  APC_RETURN_IF_ERROR(check.tensor("labels", in[1], Kind::Id));
  std::vector<int64_t> rowsShape(in[0].shape.begin(), in[0].shape.end() - 1);
  if (in[1].shape != rowsShape)
    return check.error("labels " + describe(in[1]) +
                       " must have the shape of logits without its last dim, logits " +
                       describe(in[0]));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "row_max", in[2], in[1]));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "ignore_index", false));
  APC_RETURN_IF_ERROR(checkVocabStart(check, attrs));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "sum_exp", out[0], in[1]));
  return checkRowTensor(check, "target_logit", out[1], in[1]);
}

Status runVocabParallelStats(const KernelContext &context, const std::vector<TensorView> &in,
                             const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits.shape);
  int64_t ignore = attrs.getInt("ignore_index", -100);
  int64_t start = attrs.getInt("vocab_start", 0);
  const float *rowMax = in[2].as<float>();
  float *sumExpOut = out[0].as<float>(), *targetOut = out[1].as<float>();
  int threads = threadsFor(context, 8 * rows * vocab);
  dispatchId(labels.dtype, [&](auto idType) {
    using Id = decltype(idType);
    const Id *label = labels.as<Id>();
    dispatchFloat(logits.dtype, [&](auto storage) {
      using S = decltype(storage);
      const typename S::T *x = logits.as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const typename S::T *row = x + r * vocab;
        int64_t target = int64_t(label[r]);
        // The label's column in this block, read before the row is overwritten.
        bool here = target != ignore && target >= start && target - start < vocab;
        targetOut[r] = here ? S::load(row[target - start]) : 0.0f;
        static thread_local std::vector<float> rowBuffer;
        float *values = scratch(rowBuffer, size_t(vocab));
        widenRow<S>(row, vocab, values);
        sumExpOut[r] = float(sumExp(values, vocab, rowMax[r]));
      }
    });
  });
  return Status::ok();
}

Status prepareVocabParallelLoss(const std::vector<TensorView> &in,
                                const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("vocab_parallel_loss");
  APC_RETURN_IF_ERROR(check.arity(in, out, 4, 5, 1));
  APC_RETURN_IF_ERROR(check.tensor("labels", in[3], Kind::Id));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "row_max", in[0], in[3]));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "sum_exp", in[1], in[3]));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "target_logit", in[2], in[3]));
  if (in.size() == 5)
    APC_RETURN_IF_ERROR(checkKeptCount(check, in[4]));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "ignore_index", false));
  APC_RETURN_IF_ERROR(check.stringAttr(attrs, "reduction", {"mean", "sum"}));
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], DType::F32));
  return check.shape("result", out[0], {});
}

Status runVocabParallelLoss(const KernelContext &, const std::vector<TensorView> &in,
                            const std::vector<TensorView> &out, const Attributes &attrs) {
  const float *rowMax = in[0].as<float>(), *sumExp = in[1].as<float>(),
              *target = in[2].as<float>();
  int64_t ignore = attrs.getInt("ignore_index", -100), rows = in[3].numElements();
  bool mean = attrs.getString("reduction", "mean") == "mean";
  return dispatchId(in[3].dtype, [&](auto idType) {
    using Id = decltype(idType);
    const Id *label = in[3].as<Id>();
    // One serial pass in row order (rows are few): the same sum for any thread count.
    double total = 0;
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (int64_t(label[r]) == ignore)
        continue;
      total += std::log(double(sumExp[r])) + double(rowMax[r]) - double(target[r]);
      ++kept;
    }
    double count = in.size() > 4 ? double(*in[4].as<float>()) : double(kept);
    float result = mean ? (count > 0 ? float(total / count) : std::nanf("")) : float(total);
    *out[0].as<float>() = result;
    return Status::ok();
  });
}

Status prepareVocabParallelLossGrad(const std::vector<TensorView> &in,
                                    const std::vector<TensorView> &out,
                                    const Attributes &attrs) {
  Checker check("vocab_parallel_loss_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 5, 6, 1));
  APC_RETURN_IF_ERROR(checkLossOperands(check, in, attrs));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "row_max", in[2], in[1]));
  APC_RETURN_IF_ERROR(checkRowTensor(check, "sum_exp", in[3], in[1]));
  APC_RETURN_IF_ERROR(check.dtype("grad_loss", in[4], DType::F32));
  APC_RETURN_IF_ERROR(check.shape("grad_loss", in[4], {}));
  if (in.size() == 6)
    APC_RETURN_IF_ERROR(checkKeptCount(check, in[5]));
  APC_RETURN_IF_ERROR(checkVocabStart(check, attrs));
  return check.sameType("grad_logits", out[0], "logits", in[0]);
}

Status runVocabParallelLossGrad(const KernelContext &context, const std::vector<TensorView> &in,
                                const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits.shape);
  int64_t ignore = attrs.getInt("ignore_index", -100);
  int64_t start = attrs.getInt("vocab_start", 0);
  bool mean = attrs.getString("reduction", "mean") == "mean";
  const float *rowMax = in[2].as<float>(), *sumExpIn = in[3].as<float>();
  return dispatchId(labels.dtype, [&](auto idType) {
    using Id = decltype(idType);
    const Id *label = labels.as<Id>();
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; ++r)
      kept += int64_t(label[r]) != ignore;
    // As cross_entropy_grad: each kept position weighs 1/count; a count of 0 divides
    // nothing (every row is then ignored and zero).
    double weight = double(*in[4].as<float>());
    double count = in.size() > 5 ? double(*in[5].as<float>()) : double(kept);
    if (mean && count > 0)
      weight /= count;
    int threads = threadsFor(context, 8 * rows * vocab);
    dispatchFloat(logits.dtype, [&](auto storage) {
      using S = decltype(storage);
      using T = typename S::T;
      softmaxGradRows<S>(logits.as<T>(), out[0].as<T>(), label, rows, vocab, ignore, start,
                         weight, rowMax, sumExpIn, threads);
    });
    return Status::ok();
  });
}

// ---- count_kept ------------------------------------------------------------------------

Status prepareCountKept(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &attrs) {
  Checker check("count_kept");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("labels", in[0], Kind::Id));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "ignore_index", false));
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], DType::F32));
  return check.shape("result", out[0], {});
}

Status runCountKept(const KernelContext &, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t ignore = attrs.getInt("ignore_index", -100), kept = 0;
  return dispatchId(in[0].dtype, [&](auto idType) {
    using Id = decltype(idType);
    const Id *labels = in[0].as<Id>();
    for (int64_t i = 0, n = in[0].numElements(); i < n; ++i)
      kept += int64_t(labels[i]) != ignore;
    *out[0].as<float>() = float(kept);
    return Status::ok();
  });
}

} // namespace

std::vector<KernelInfo> lossKernels() {
  return {
      {"shift_labels", runShiftLabels, prepareShiftLabels},
      {"cross_entropy", runCrossEntropy, prepareCrossEntropy},
      {"cross_entropy_grad", runCrossEntropyGrad, prepareCrossEntropyGrad},
      {"count_kept", runCountKept, prepareCountKept},
      {"vocab_parallel_max", runVocabParallelMax, prepareVocabParallelMax},
      {"vocab_parallel_stats", runVocabParallelStats, prepareVocabParallelStats},
      {"vocab_parallel_loss", runVocabParallelLoss, prepareVocabParallelLoss},
      {"vocab_parallel_loss_grad", runVocabParallelLossGrad, prepareVocabParallelLossGrad},
  };
}

} // namespace apc::kernels::cpu
