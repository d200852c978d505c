// Shared internals of the CPU kernels: storage traits, threading policy and the
// validation helpers every `prepare` uses. Not part of the backend's interface.
//
// Design idea: a kernel body is written once as a template over a *storage* type
// (F32Storage, BF16Storage, F16Storage) whose load/store convert to and from the f32
// compute type, and `dispatchFloat` instantiates it for the dtype the plan names. All
// rounding to bf16/f16 therefore happens in one place (HalfFloat.h: nearest even).
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/support/HalfFloat.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace apc::kernels::cpu {

// ---- Storage types ------------------------------------------------------------------

struct F32Storage {
  using T = float;
  static constexpr DType dtype = DType::F32;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
struct BF16Storage {
  using T = uint16_t;
  static constexpr DType dtype = DType::BF16;
  static float load(uint16_t v) { return bf16ToFloat(v); }
  static uint16_t store(float v) { return floatToBf16(v); }
};
struct F16Storage {
  using T = uint16_t;
  static constexpr DType dtype = DType::F16;
  static float load(uint16_t v) { return f16ToFloat(v); }
  static uint16_t store(float v) { return floatToF16(v); }
};

// `v` rounded to what storage S holds, as a float.
template <typename S> inline float roundTo(float v) { return S::load(S::store(v)); }

// A double rounded once to storage S (round-to-odd to f32 first avoids a double
// rounding on the way to bf16/f16): how reductions accumulated in double are stored.
template <typename S> inline typename S::T storeDouble(double v) {
  if constexpr (S::dtype == DType::F32)
    return float(v);
  else
    return S::store(toFloatRoundToOdd(v));
}

// Calls f(S{}) with the storage type of a float dtype (prepare guarantees one).
template <typename F> decltype(auto) dispatchFloat(DType dtype, F &&f) {
  switch (dtype) {
  case DType::BF16: return f(BF16Storage{});
  case DType::F16: return f(F16Storage{});
  default: return f(F32Storage{});
  }
}

// Calls f(T{}) with the C++ type of an id dtype (i32 or i64).
template <typename F> decltype(auto) dispatchId(DType dtype, F &&f) {
  if (dtype == DType::I32)
    return f(int32_t{});
  return f(int64_t{});
}

// A buffer of `n` elements of T owned by the calling thread, reused across calls (no
// allocation in steady state). Each call site must use its own `buffer` variable.
template <typename T> T *scratch(std::vector<T> &buffer, size_t n) {
  if (buffer.size() < n)
    buffer.resize(n);
  return buffer.data();
}

// ---- Vectorisable math ----------------------------------------------------------------

// exp(x) in f32 without a libm call, so that loops over it vectorise (Cephes' expf:
// x = n ln2 + r with |r| <= ln2 / 2, a degree-7 polynomial for e^r, then 2^n from the
// exponent bits); relative error about 2e-7 (1-2 ulp). Results below 2^-126 (x < -87.34,
// -inf included) are 0 and x is clamped above at 88.37 (softmax arguments are <= 0).
inline float expF32(float x) {
  bool underflow = x < -87.336544f;
  x = x > 88.376259f ? 88.376259f : x; // NaN stays NaN
  x = underflow ? -87.336544f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; // round(x / ln2)
  float r = x - n * 0.693359375f - n * -2.12194440e-4f;              // ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  n = n == n ? n : 0.0f;                             // NaN: p carries it
  uint32_t bits = uint32_t(int32_t(n) + 127) << 23; // 2^n, n in [-126, 127]
  return underflow ? 0.0f : p * bitsToFloat(bits);
}

// sum(x[0..n)) and sum(x[i] y[i]) accumulated in double, in eight interleaved partial
// sums (a fixed order, so deterministic) that the compiler vectorises; an `omp simd`
// reduction mixing f32 loads and a double sum does not vectorise with GCC.
inline double sumAsDouble(const float *x, int64_t n) {
  double s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k)
      s[k] += double(x[i + k]);
  double tail = 0;
  for (; i < n; ++i)
    tail += double(x[i]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

inline double dotAsDouble(const float *x, const float *y, int64_t n) {
  double s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k)
      s[k] += double(x[i + k]) * double(y[i + k]);
  double tail = 0;
  for (; i < n; ++i)
    tail += double(x[i]) * double(y[i]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

// sum(x[i]^2) of n elements of storage S, accumulated in double like sumAsDouble.
template <typename S> double sumSquaresAsDouble(const typename S::T *x, int64_t n) {
  double s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      double v = S::load(x[i + k]);
      s[k] += v * v;
    }
  double tail = 0;
  for (; i < n; ++i) {
    double v = S::load(x[i]);
    tail += v * v;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

// ---- Threading ----------------------------------------------------------------------

// Below this much work (roughly, element operations) a parallel region costs more than
// it saves, so kernels run single-threaded.
constexpr int64_t kMinParallelWork = 1 << 15;

// The threads to use for `work` element operations.
inline int threadsFor(const KernelContext &context, int64_t work) {
  if (work < kMinParallelWork)
    return 1;
  return std::max(1, context.threads);
}

// ---- Validation (prepare) -----------------------------------------------------------

bool isFloat(DType dtype);
bool isId(DType dtype);

std::string shapeString(const std::vector<int64_t> &shape); // "[2, 3]"
std::string describe(const TensorView &view);               // "bf16[2, 3]"
// "[i, j, ...]": the multi-index of flat position `flat` in `shape`.
std::string positionString(const std::vector<int64_t> &shape, int64_t flat);

// The product of all dims but the last.
int64_t rowsOf(const std::vector<int64_t> &shape);

// Element kinds a tensor may have.
enum class Kind { Float, Id, Any };
// Rank constraints: any, at least 1, or exactly r (>= 0).
constexpr int kAnyRank = -1;
constexpr int kRankAtLeast1 = -2;

// Messages: "<kernel>: <what>".
class Checker {
public:
  explicit Checker(const char *kernel) : kernel_(kernel) {}

  Status error(const std::string &what) const {
    return Status::error(std::string(kernel_) + ": " + what);
  }
  // Exactly `inputs` inputs (or in [minInputs, maxInputs]) and `outputs` outputs.
  Status arity(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
               size_t minInputs, size_t maxInputs, size_t outputs) const;
  Status tensor(const char *role, const TensorView &v, Kind kind, int rank = kAnyRank) const;
  Status dtype(const char *role, const TensorView &v, DType dtype) const;
  Status shape(const char *role, const TensorView &v, const std::vector<int64_t> &shape) const;
  // `v` has exactly the dtype and shape of `like` (called likeRole).
  Status sameType(const char *role, const TensorView &v, const char *likeRole,
                  const TensorView &like) const;
  Status sameDtype(const char *roleA, const TensorView &a, const char *roleB,
                   const TensorView &b) const;
  // Attribute checks: present (when required) and of a usable kind.
  Status floatAttr(const Attributes &attrs, const char *name, bool required) const;
  Status intAttr(const Attributes &attrs, const char *name, bool required) const;
  Status boolAttr(const Attributes &attrs, const char *name) const;
  Status stringAttr(const Attributes &attrs, const char *name,
                    std::initializer_list<const char *> allowed) const;
  Status intsAttr(const Attributes &attrs, const char *name) const;

private:
  const char *kernel_;
};

// The optional Int attribute `vocab_start` of the vocabulary-parallel kernels (>= 0;
// the op attribute `vocab_shard_axis` is refused unless it comes with it). Embedding.cpp.
Status checkVocabStart(const Checker &check, const Attributes &attrs);

// ---- The kernels of each family (one .cpp each) ---------------------------------------

std::vector<KernelInfo> gemmKernels();
std::vector<KernelInfo> elementwiseKernels();
std::vector<KernelInfo> normKernels();
std::vector<KernelInfo> attentionKernels();
std::vector<KernelInfo> embeddingKernels();
std::vector<KernelInfo> layoutKernels();
std::vector<KernelInfo> lossKernels();
std::vector<KernelInfo> optimizerKernels();

} // namespace apc::kernels::cpu
