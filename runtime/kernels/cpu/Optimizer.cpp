// The optimizer step: grad_norm (global L2 norm, as clip_grad_norm_, or with the Bool
// attribute `squared` the sum of squares a sharded program all-reduces) and adamw (one
// torch.optim.AdamW update of one parameter, with optional clipping, and with the Bool
// attribute `skip_non_finite` no update at all when the gradient norm is not finite).
//
// Design idea: grad_norm splits every gradient into fixed-size blocks (independent of
// the thread count), sums each block's squares in double in parallel and adds the
// block sums in order, so the norm is bit-identical for any thread count. adamw reads
// every input of element i into registers before writing any output of element i, so
// its outputs may be the very buffers of param, exp_avg and exp_avg_sq (the usual
// in-place update); the per-step scalars (bias corrections, clip factor) are computed
// once in double.
#include "runtime/kernels/cpu/Common.h"

#include <cmath>
#include <cstring>

namespace apc::kernels::cpu {
namespace {

// ---- grad_norm ----------------------------------------------------------------------

Status prepareGradNorm(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                       const Attributes &attrs) {
  Checker check("grad_norm");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, size_t(-1), 1));
  APC_RETURN_IF_ERROR(check.boolAttr(attrs, "squared"));
  for (size_t i = 0; i < in.size(); ++i) {
    std::string role = "grad #" + std::to_string(i);
    APC_RETURN_IF_ERROR(check.tensor(role.c_str(), in[i], Kind::Float));
  }
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], DType::F32));
  return check.shape("result", out[0], {});
}

constexpr int64_t kNormBlock = 1 << 14;

Status runGradNorm(const KernelContext &context, const std::vector<TensorView> &in,
                   const std::vector<TensorView> &out, const Attributes &attrs) {
  // Block b of the concatenation: (input, first element) pairs.
  static thread_local std::vector<std::pair<size_t, int64_t>> blockBuffer;
  static thread_local std::vector<double> sumBuffer;
  std::vector<std::pair<size_t, int64_t>> &blocks = blockBuffer;
  blocks.clear();
  int64_t total = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    int64_t n = in[i].numElements();
    total += n;
    for (int64_t begin = 0; begin < n; begin += kNormBlock)
      blocks.push_back({i, begin});
  }
  int64_t count = int64_t(blocks.size());
  double *sums = scratch(sumBuffer, size_t(count));
  int threads = threadsFor(context, total);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t b = 0; b < count; ++b) {
    const TensorView &g = in[blocks[b].first];
    int64_t begin = blocks[b].second, end = std::min(g.numElements(), begin + kNormBlock);
    sums[b] = dispatchFloat(g.dtype, [&](auto storage) {
      using S = decltype(storage);
      return sumSquaresAsDouble<S>(g.as<typename S::T>() + begin, end - begin);
    });
  }
  double sumSquares = 0;
  for (int64_t b = 0; b < count; ++b)
    sumSquares += sums[b];
  *out[0].as<float>() =
      float(attrs.getBool("squared", false) ? sumSquares : std::sqrt(sumSquares));
  return Status::ok();
}

// ---- adamw --------------------------------------------------------------------------

Status prepareAdamW(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                    const Attributes &attrs) {
  Checker check("adamw");
  APC_RETURN_IF_ERROR(check.arity(in, out, 6, 7, 3));
  const TensorView &param = in[0];
  APC_RETURN_IF_ERROR(check.tensor("param", param, Kind::Float));
  APC_RETURN_IF_ERROR(check.dtype("param (the f32 master copy)", param, DType::F32));
  APC_RETURN_IF_ERROR(check.tensor("grad", in[1], Kind::Float));
  if (in[1].shape != param.shape)
    return check.error("grad " + describe(in[1]) + " must have the shape of param " +
                       describe(param));
  APC_RETURN_IF_ERROR(check.sameType("exp_avg", in[2], "param", param));
  APC_RETURN_IF_ERROR(check.sameType("exp_avg_sq", in[3], "param", param));
  APC_RETURN_IF_ERROR(check.tensor("step", in[4], Kind::Id, 0));
  APC_RETURN_IF_ERROR(check.tensor("lr", in[5], Kind::Float, 0));
  APC_RETURN_IF_ERROR(check.dtype("lr", in[5], DType::F32));
  if (in.size() == 7)
    APC_RETURN_IF_ERROR(check.tensor("grad_norm", in[6], Kind::Float, 0));
  for (const char *name : {"beta1", "beta2", "epsilon", "weight_decay", "max_grad_norm"})
    APC_RETURN_IF_ERROR(check.floatAttr(attrs, name, false));
  double beta1 = attrs.getFloat("beta1", 0.9), beta2 = attrs.getFloat("beta2", 0.999);
  if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
    return check.error("beta1 and beta2 must be in [0, 1), got " + std::to_string(beta1) +
                       " and " + std::to_string(beta2));
  if (!(attrs.getFloat("epsilon", 1e-8) > 0.0))
    return check.error("epsilon must be positive");
  if (!(attrs.getFloat("weight_decay", 0.01) >= 0.0))
    return check.error("weight_decay must be non-negative");
  if (attrs.has("skip_non_finite") && in.size() != 7)
    return check.error("skip_non_finite needs the grad_norm input");
  if (attrs.has("max_grad_norm")) {
    if (!(attrs.getFloat("max_grad_norm") > 0.0))
      return check.error("max_grad_norm must be positive");
    if (in.size() != 7)
      return check.error("max_grad_norm needs the grad_norm input");
  }
  APC_RETURN_IF_ERROR(check.sameType("new_param", out[0], "param", param));
  APC_RETURN_IF_ERROR(check.sameType("new_exp_avg", out[1], "param", param));
  return check.sameType("new_exp_avg_sq", out[2], "param", param);
}

Status runAdamW(const KernelContext &context, const std::vector<TensorView> &in,
                const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t step = in[4].dtype == DType::I32 ? int64_t(*in[4].as<int32_t>())
                                           : *in[4].as<int64_t>();
  if (step < 1)
    return Status::error("adamw: step must be at least 1 (the 1-based count of updates), got " +
                         std::to_string(step));
  double gradNorm = in.size() == 7 ? dispatchFloat(in[6].dtype, [&](auto storage) {
    using S = decltype(storage);
    return double(S::load(*in[6].as<typename S::T>()));
  })
                                    : 0.0;
  // aprun --skip-non-finite-steps: a step whose gradients are not all finite leaves the
  // parameter and its moments as they were (as torch's GradScaler skips optimizer.step).
  if (attrs.getBool("skip_non_finite") && !std::isfinite(gradNorm)) {
    for (int k = 0; k < 3; ++k) {
      const TensorView &from = in[k == 0 ? 0 : k + 1];
      if (out[k].data != from.data)
        std::memcpy(out[k].data, from.data, size_t(from.numElements()) * dtypeSize(from.dtype));
    }
    return Status::ok();
  }
  double lr = *in[5].as<float>();
  double beta1 = attrs.getFloat("beta1", 0.9), beta2 = attrs.getFloat("beta2", 0.999);
  double eps = attrs.getFloat("epsilon", 1e-8);
  double weightDecay = attrs.getFloat("weight_decay", 0.01);
  // torch.nn.utils.clip_grad_norm_: grads times min(1, max_norm / (total_norm + 1e-6)).
  double clip = 1.0;
  if (attrs.has("max_grad_norm"))
    clip = std::min(1.0, attrs.getFloat("max_grad_norm") / (gradNorm + 1e-6));
  double biasCorrection1 = 1.0 - std::pow(beta1, double(step));
  double biasCorrection2 = 1.0 - std::pow(beta2, double(step));
  const float decay = float(1.0 - lr * weightDecay);
  const float stepSize = float(lr / biasCorrection1);
  const float invBias2Sqrt = float(1.0 / std::sqrt(biasCorrection2));
  const float b1 = float(beta1), b2 = float(beta2), c1 = float(1.0 - beta1),
              c2 = float(1.0 - beta2), epsilon = float(eps), clipF = float(clip);
  int64_t n = in[0].numElements();
  int threads = threadsFor(context, 8 * n);
  const float *param = in[0].as<float>(), *expAvg = in[2].as<float>(),
              *expAvgSq = in[3].as<float>();
  float *newParam = out[0].as<float>(), *newExpAvg = out[1].as<float>(),
        *newExpAvgSq = out[2].as<float>();
  dispatchFloat(in[1].dtype, [&](auto storage) {
    using S = decltype(storage);
    const typename S::T *grad = in[1].as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      // Every input of element i is read before any output of element i is written.
      float g = S::load(grad[i]) * clipF;
      float p = param[i], m = expAvg[i], v = expAvgSq[i];
      p *= decay; // decoupled weight decay first
      m = b1 * m + c1 * g;
      v = b2 * v + c2 * g * g;
      float denominator = std::sqrt(v) * invBias2Sqrt + epsilon;
      newParam[i] = p - stepSize * m / denominator;
      newExpAvg[i] = m;
      newExpAvgSq[i] = v;
    }
  });
  return Status::ok();
}

} // namespace

std::vector<KernelInfo> optimizerKernels() {
  return {
      {"grad_norm", runGradNorm, prepareGradNorm},
      {"adamw", runAdamW, prepareAdamW},
  };
}

} // namespace apc::kernels::cpu
