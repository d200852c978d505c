// Elementwise kernels: silu, silu_grad, sqrt, add, mul, cast and fill.
//
// Design idea: each is one flat loop over the elements, templated on the storage type
// so the compiler sees a plain f32 expression between a load and a store it can
// vectorise; the loop reads element i of every input before writing element i of the
// output, so an output may be the very memory of an input (in-place). Work is split
// into static chunks, and since no element depends on another, results are identical
// for any thread count.
#include "runtime/kernels/cpu/Common.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace apc::kernels::cpu {
namespace {

// ---- silu, silu_grad, add, mul ------------------------------------------------------

Status prepareSilu(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                   const Attributes &) {
  Checker check("silu");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float));
  return check.sameType("result", out[0], "input", in[0]);
}

Status runSilu(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &) {
  int64_t n = in[0].numElements();
  int threads = threadsFor(context, 8 * n);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    const typename S::T *x = in[0].as<typename S::T>();
    typename S::T *y = out[0].as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float v = S::load(x[i]);
      y[i] = S::store(v / (1.0f + expF32(-v)));
    }
  });
  return Status::ok();
}

Status prepareSiluGrad(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                       const Attributes &) {
  Checker check("silu_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.sameType("grad_output", in[1], "input", in[0]));
  return check.sameType("grad_input", out[0], "input", in[0]);
}

Status runSiluGrad(const KernelContext &context, const std::vector<TensorView> &in,
                   const std::vector<TensorView> &out, const Attributes &) {
  int64_t n = in[0].numElements();
  int threads = threadsFor(context, 8 * n);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    const typename S::T *x = in[0].as<typename S::T>(), *dy = in[1].as<typename S::T>();
    typename S::T *dx = out[0].as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float v = S::load(x[i]), g = S::load(dy[i]);
      float s = 1.0f / (1.0f + expF32(-v));
      dx[i] = S::store(g * s * (1.0f + v * (1.0f - s)));
    }
  });
  return Status::ok();
}

Status prepareSqrt(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                   const Attributes &) {
  Checker check("sqrt");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float));
  return check.sameType("result", out[0], "input", in[0]);
}

Status runSqrt(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &) {
  int64_t n = in[0].numElements();
  int threads = threadsFor(context, 4 * n);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    const typename S::T *x = in[0].as<typename S::T>();
    typename S::T *y = out[0].as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) // correctly rounded in f32; NaN for negative x
      y[i] = S::store(std::sqrt(S::load(x[i])));
  });
  return Status::ok();
}

template <const char *Name>
Status prepareBinary(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                     const Attributes &) {
  Checker check(Name);
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(check.tensor("lhs", in[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.sameType("rhs", in[1], "lhs", in[0]));
  return check.sameType("result", out[0], "lhs", in[0]);
}

template <bool Multiply>
Status runBinary(const KernelContext &context, const std::vector<TensorView> &in,
                 const std::vector<TensorView> &out, const Attributes &) {
  int64_t n = in[0].numElements();
  int threads = threadsFor(context, n);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    const typename S::T *a = in[0].as<typename S::T>(), *b = in[1].as<typename S::T>();
    typename S::T *c = out[0].as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float x = S::load(a[i]), y = S::load(b[i]);
      c[i] = S::store(Multiply ? x * y : x + y);
    }
  });
  return Status::ok();
}

constexpr char kAdd[] = "add";
constexpr char kMul[] = "mul";

// ---- cast ---------------------------------------------------------------------------

// Reads element i of a buffer of dtype `From` as a double: exact for every f32, bf16
// and f16 value and every integer up to 2^53 in magnitude.
template <DType From> double loadAsDouble(const void *data, int64_t i) {
  if constexpr (From == DType::F32)
    return static_cast<const float *>(data)[i];
  else if constexpr (From == DType::BF16)
    return bf16ToFloat(static_cast<const uint16_t *>(data)[i]);
  else if constexpr (From == DType::F16)
    return f16ToFloat(static_cast<const uint16_t *>(data)[i]);
  else if constexpr (From == DType::I32)
    return double(static_cast<const int32_t *>(data)[i]);
  else
    return double(static_cast<const int64_t *>(data)[i]);
}

// Float to integer truncates toward zero (torch's .to()); out-of-range values saturate
// and NaN gives 0 (torch leaves both undefined).
template <typename Int> Int toInt(double v) {
  if (std::isnan(v))
    return 0;
  double t = std::trunc(v);
  constexpr double lo = double(std::numeric_limits<Int>::min());
  constexpr double hi = double(std::numeric_limits<Int>::max()); // 2^63 for i64
  if (t <= lo)
    return std::numeric_limits<Int>::min();
  if (t >= hi)
    return std::numeric_limits<Int>::max();
  return Int(t);
}

// One rounding from the exact value to the target: bf16/f16 go through
// toFloatRoundToOdd so that a wide integer rounds as a single rounding would.
template <DType From, DType To>
void castLoop(const void *src, void *dst, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    double v = loadAsDouble<From>(src, i);
    if constexpr (To == DType::F32)
      static_cast<float *>(dst)[i] = float(v);
    else if constexpr (To == DType::BF16)
      static_cast<uint16_t *>(dst)[i] = floatToBf16(toFloatRoundToOdd(v));
    else if constexpr (To == DType::F16)
      static_cast<uint16_t *>(dst)[i] = floatToF16(toFloatRoundToOdd(v));
    else if constexpr (To == DType::I32)
      static_cast<int32_t *>(dst)[i] = toInt<int32_t>(v);
    else
      static_cast<int64_t *>(dst)[i] = toInt<int64_t>(v);
  }
}

using CastFn = void (*)(const void *, void *, int64_t, int64_t);

template <DType From> CastFn castTo(DType to) {
  switch (to) {
  case DType::F32: return castLoop<From, DType::F32>;
  case DType::BF16: return castLoop<From, DType::BF16>;
  case DType::F16: return castLoop<From, DType::F16>;
  case DType::I32: return castLoop<From, DType::I32>;
  case DType::I64: return castLoop<From, DType::I64>;
  }
  return nullptr;
}

CastFn castFunction(DType from, DType to) {
  switch (from) {
  case DType::F32: return castTo<DType::F32>(to);
  case DType::BF16: return castTo<DType::BF16>(to);
  case DType::F16: return castTo<DType::F16>(to);
  case DType::I32: return castTo<DType::I32>(to);
  case DType::I64: return castTo<DType::I64>(to);
  }
  return nullptr;
}

Status prepareCast(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                   const Attributes &) {
  Checker check("cast");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Any));
  APC_RETURN_IF_ERROR(check.tensor("result", out[0], Kind::Any));
  if (in[0].shape != out[0].shape)
    return check.error("result " + describe(out[0]) + " must have the shape of input " +
                       describe(in[0]));
  return Status::ok();
}

Status runCast(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &) {
  int64_t n = in[0].numElements();
  if (in[0].dtype == out[0].dtype) {
    if (in[0].data != out[0].data)
      std::memcpy(out[0].data, in[0].data, size_t(n) * dtypeSize(in[0].dtype));
    return Status::ok();
  }
  CastFn cast = castFunction(in[0].dtype, out[0].dtype);
  constexpr int64_t kChunk = 1 << 14;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  int threads = threadsFor(context, 4 * n);
  const void *src = in[0].data;
  void *dst = out[0].data;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t c = 0; c < chunks; ++c)
    cast(src, dst, c * kChunk, std::min(n, (c + 1) * kChunk));
  return Status::ok();
}

// ---- fill ---------------------------------------------------------------------------

Status prepareFill(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                   const Attributes &attrs) {
  Checker check("fill");
  APC_RETURN_IF_ERROR(check.arity(in, out, 0, 0, 1));
  APC_RETURN_IF_ERROR(check.tensor("result", out[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.floatAttr(attrs, "value", true));
  if (!std::isfinite(attrs.getFloat("value")))
    return check.error("value must be finite");
  return Status::ok();
}

Status runFill(const KernelContext &context, const std::vector<TensorView> &,
               const std::vector<TensorView> &out, const Attributes &attrs) {
  double value = attrs.getFloat("value");
  int64_t n = out[0].numElements();
  int threads = threadsFor(context, n / 4);
  dispatchFloat(out[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    // Rounded once from the double, as the reference does.
    typename S::T bits;
    if constexpr (S::dtype == DType::F32)
      bits = float(value);
    else
      bits = S::store(toFloatRoundToOdd(value));
    typename S::T *y = out[0].as<typename S::T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i)
      y[i] = bits;
  });
  return Status::ok();
}

} // namespace

std::vector<KernelInfo> elementwiseKernels() {
  return {
      {"silu", runSilu, prepareSilu},
      {"silu_grad", runSiluGrad, prepareSiluGrad},
      {"sqrt", runSqrt, prepareSqrt},
      {"add", runBinary<false>, prepareBinary<kAdd>},
      {"mul", runBinary<true>, prepareBinary<kMul>},
      {"cast", runCast, prepareCast},
      {"fill", runFill, prepareFill},
  };
}

} // namespace apc::kernels::cpu
