// The causal-LM loss: shift_labels, cross_entropy and cross_entropy_grad.
//
// Design idea: labels are validated (and the kept positions counted) by one serial
// scan, so an invalid label is reported at its first position and the row-parallel
// part cannot fail. Each row is widened once to f32 scratch, and its logsumexp takes
// a vectorisable exp and a double sum. The scalar loss is the sum of the per-row
// losses taken in row order, so it is bit-identical for any thread count.
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
      const T *x = logits.as<T>();
      T *dx = out[0].as<T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const T *row = x + r * vocab;
        T *grad = dx + r * vocab;
        int64_t target = int64_t(label[r]);
        if (target == ignore) {
          T zero = S::store(0.0f);
          std::fill(grad, grad + vocab, zero);
          continue;
        }
        static thread_local std::vector<float> rowBuffer;
        float *values = scratch(rowBuffer, size_t(vocab));
        float maxLogit = loadRow<S>(row, vocab, values);
        double sum = sumExp(values, vocab, maxLogit);
        float scale = float(weight / sum);
#pragma omp simd
        for (int64_t v = 0; v < vocab; ++v)
          grad[v] = S::store(values[v] * scale);
        // The one-hot term, subtracted from the unrounded value.
        grad[target] = S::store(values[target] * scale - float(weight));
      }
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
  };
}

} // namespace apc::kernels::cpu
