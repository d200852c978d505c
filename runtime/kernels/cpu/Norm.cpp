// RMS normalisation (as transformers' LlamaRMSNorm) and its gradient.
//
// Design idea: rows are independent, so the forward pass and grad_input are one
// parallel loop over rows, each row's sum of squares accumulated in double. The one
// cross-row reduction, grad_weight = sum over rows of grad_output * n, is computed in
// a second pass parallel over *columns*, each column summing its rows in row order in
// double: no atomics, no per-thread partial buffers, and a result that is bit-identical
// for any thread count.
#include "runtime/kernels/cpu/Common.h"

#include <cmath>

namespace apc::kernels::cpu {
namespace {

Status prepareRmsNorm(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                      const Attributes &attrs) {
  Checker check("rms_norm");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float, kRankAtLeast1));
  APC_RETURN_IF_ERROR(check.tensor("weight", in[1], Kind::Float, 1));
  APC_RETURN_IF_ERROR(check.sameDtype("input", in[0], "weight", in[1]));
  if (in[1].shape[0] != in[0].shape.back())
    return check.error("weight " + describe(in[1]) + " must match the last dim of input " +
                       describe(in[0]));
  APC_RETURN_IF_ERROR(check.floatAttr(attrs, "epsilon", true));
  if (!(attrs.getFloat("epsilon") > 0.0))
    return check.error("epsilon must be positive, got " +
                       std::to_string(attrs.getFloat("epsilon")));
  return check.sameType("result", out[0], "input", in[0]);
}

// 1 / sqrt(mean(x^2) + eps) of one row, the sum in double.
template <typename S>
double inverseRms(const typename S::T *x, int64_t h, double eps) {
  return 1.0 / std::sqrt(sumSquaresAsDouble<S>(x, h) / double(h) + eps);
}

Status runRmsNorm(const KernelContext &context, const std::vector<TensorView> &in,
                  const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t h = in[0].shape.back(), rows = rowsOf(in[0].shape);
  double eps = attrs.getFloat("epsilon");
  int threads = threadsFor(context, 4 * rows * h);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    const T *x = in[0].as<T>(), *w = in[1].as<T>();
    T *y = out[0].as<T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * h;
      T *yr = y + r * h;
      float inv = float(inverseRms<S>(xr, h, eps));
      for (int64_t i = 0; i < h; ++i) {
        // The normalised value is cast to the input dtype before the weight scales it.
        float normalised = roundTo<S>(S::load(xr[i]) * inv);
        yr[i] = S::store(S::load(w[i]) * normalised);
      }
    }
  });
  return Status::ok();
}

Status prepareRmsNormGrad(const std::vector<TensorView> &in,
                          const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("rms_norm_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 3, 3, 2));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float, kRankAtLeast1));
  APC_RETURN_IF_ERROR(check.tensor("weight", in[1], Kind::Float, 1));
  APC_RETURN_IF_ERROR(check.sameDtype("input", in[0], "weight", in[1]));
  if (in[1].shape[0] != in[0].shape.back())
    return check.error("weight " + describe(in[1]) + " must match the last dim of input " +
                       describe(in[0]));
  APC_RETURN_IF_ERROR(check.sameType("grad_output", in[2], "input", in[0]));
  APC_RETURN_IF_ERROR(check.floatAttr(attrs, "epsilon", true));
  if (!(attrs.getFloat("epsilon") > 0.0))
    return check.error("epsilon must be positive, got " +
                       std::to_string(attrs.getFloat("epsilon")));
  APC_RETURN_IF_ERROR(check.sameType("grad_input", out[0], "input", in[0]));
  return check.sameType("grad_weight", out[1], "weight", in[1]);
}

Status runRmsNormGrad(const KernelContext &context, const std::vector<TensorView> &in,
                      const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t h = in[0].shape.back(), rows = rowsOf(in[0].shape);
  double eps = attrs.getFloat("epsilon");
  int threads = threadsFor(context, 8 * rows * h);
  static thread_local std::vector<double> invBuffer;
  double *invs = scratch(invBuffer, size_t(rows));
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    const T *x = in[0].as<T>(), *w = in[1].as<T>(), *dy = in[2].as<T>();
    T *dx = out[0].as<T>(), *dw = out[1].as<T>();
    // Pass 1, over rows: r = 1/rms, n = x r, g = dy w, dx = r (g - n mean(g n)).
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const T *xr = x + row * h, *dyr = dy + row * h;
      double inv = inverseRms<S>(xr, h, eps);
      invs[row] = inv;
      static thread_local std::vector<float> rowBuffer;
      float *g = scratch(rowBuffer, size_t(2 * h)), *xf = g + h;
      for (int64_t i = 0; i < h; ++i) {
        g[i] = S::load(dyr[i]) * S::load(w[i]);
        xf[i] = S::load(xr[i]);
      }
      double sumGX = dotAsDouble(g, xf, h); // mean(g n) = r sum(g x) / h
      float r = float(inv);
      float c = float(inv * inv * inv * sumGX / double(h)); // so dx = r g - c x
      T *dxr = dx + row * h;
#pragma omp simd
      for (int64_t i = 0; i < h; ++i)
        dxr[i] = S::store(r * g[i] - c * xf[i]);
    }
    // Pass 2, over columns: dw[i] = sum over rows of dy n, rows in order.
    constexpr int64_t kColumns = 64;
    int64_t blocks = (h + kColumns - 1) / kColumns;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      int64_t begin = block * kColumns, end = std::min(h, begin + kColumns);
      double acc[kColumns] = {};
      for (int64_t row = 0; row < rows; ++row) {
        const T *xr = x + row * h, *dyr = dy + row * h;
        double inv = invs[row];
        for (int64_t i = begin; i < end; ++i)
          acc[i - begin] += double(S::load(dyr[i])) * (double(S::load(xr[i])) * inv);
      }
      for (int64_t i = begin; i < end; ++i)
        dw[i] = storeDouble<S>(acc[i - begin]);
    }
  });
  return Status::ok();
}

} // namespace

std::vector<KernelInfo> normKernels() {
  return {
      {"rms_norm", runRmsNorm, prepareRmsNorm},
      {"rms_norm_grad", runRmsNormGrad, prepareRmsNormGrad},
  };
}

} // namespace apc::kernels::cpu
