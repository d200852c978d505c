// gemm: batched matrix products (ap.matmul) and the linear form x @ w^T (ap.linear).
//
// Design idea: all arithmetic goes to OpenBLAS's cblas_sgemm in row-major order, with
// the transposes passed through as BLAS flags rather than materialised; bf16/f16
// operands are widened to f32 scratch (reused per thread), multiplied in f32 and the
// result rounded back once. OpenBLAS threads itself; we only tell it how many threads
// to use, and only when the count changes (the call takes a lock).
#include "runtime/kernels/cpu/Common.h"

#include <atomic>
#include <cblas.h>
#include <cstring>

namespace apc::kernels::cpu {
namespace {

struct GemmShape {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false;
  bool sharedB = false; // b has rank 2 and is used by every batch (the linear form)
  std::vector<int64_t> outShape;
};

// Derives the problem from the operand shapes; an error message when inconsistent.
Status gemmShape(const Checker &check, const TensorView &a, const TensorView &b,
                 const Attributes &attrs, GemmShape &g) {
  g.transposeA = attrs.getBool("transpose_a", false);
  g.transposeB = attrs.getBool("transpose_b", false);
  size_t rankA = a.shape.size(), rankB = b.shape.size();
  if (rankA < 2 || rankB < 2)
    return check.error("a " + describe(a) + " and b " + describe(b) +
                       " must have rank at least 2");
  int64_t kB = b.shape[g.transposeB ? rankB - 1 : rankB - 2];
  g.n = b.shape[g.transposeB ? rankB - 2 : rankB - 1];
  if (rankA == rankB) {
    for (size_t d = 0; d + 2 < rankA; ++d) {
      if (a.shape[d] != b.shape[d])
        return check.error("batch dim " + std::to_string(d) + " of a " + describe(a) +
                           " differs from b " + describe(b));
      g.batch *= a.shape[d];
    }
    g.m = a.shape[g.transposeA ? rankA - 1 : rankA - 2];
    g.k = a.shape[g.transposeA ? rankA - 2 : rankA - 1];
    g.outShape.assign(a.shape.begin(), a.shape.end() - 2);
    g.outShape.push_back(g.m);
  } else if (rankB == 2) {
    if (g.transposeA)
      return check.error("transpose_a is not supported when b " + describe(b) +
                         " has rank 2 and a " + describe(a) + " a higher rank");
    g.sharedB = true;
    g.m = rowsOf(a.shape);
    g.k = a.shape.back();
    g.outShape.assign(a.shape.begin(), a.shape.end() - 1);
  } else {
    return check.error("a " + describe(a) + " and b " + describe(b) +
                       " must have the same rank, or b rank 2");
  }
  if (g.k != kB)
    return check.error("contraction size of a " + describe(a) + " (" + std::to_string(g.k) +
                       ") differs from b " + describe(b) + " (" + std::to_string(kB) + ")");
  g.outShape.push_back(g.n);
  return Status::ok();
}

Status prepareGemm(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                   const Attributes &attrs) {
  Checker check("gemm");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(check.tensor("a", in[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.tensor("b", in[1], Kind::Float));
  APC_RETURN_IF_ERROR(check.sameDtype("a", in[0], "b", in[1]));
  APC_RETURN_IF_ERROR(check.boolAttr(attrs, "transpose_a"));
  APC_RETURN_IF_ERROR(check.boolAttr(attrs, "transpose_b"));
  GemmShape g;
  APC_RETURN_IF_ERROR(gemmShape(check, in[0], in[1], attrs, g));
  APC_RETURN_IF_ERROR(check.dtype("c", out[0], in[0].dtype));
  return check.shape("c", out[0], g.outShape);
}

void setBlasThreads(int threads) {
  static std::atomic<int> current{0};
  threads = std::max(1, threads);
  if (current.exchange(threads) != threads)
    openblas_set_num_threads(threads);
}

// C = op(A) op(B) for every batch, all f32.
void sgemmBatches(const GemmShape &g, const float *a, const float *b, float *c) {
  if (g.m == 0 || g.n == 0)
    return;
  if (g.k == 0) {
    std::memset(c, 0, sizeof(float) * size_t(g.batch * g.m * g.n));
    return;
  }
  int64_t lda = g.transposeA ? g.m : g.k, ldb = g.transposeB ? g.k : g.n;
  int64_t aStride = g.m * g.k, bStride = g.sharedB ? 0 : g.k * g.n, cStride = g.m * g.n;
  for (int64_t p = 0; p < g.batch; ++p)
    cblas_sgemm(CblasRowMajor, g.transposeA ? CblasTrans : CblasNoTrans,
                g.transposeB ? CblasTrans : CblasNoTrans, blasint(g.m), blasint(g.n),
                blasint(g.k), 1.0f, a + p * aStride, blasint(std::max<int64_t>(1, lda)),
                b + p * bStride, blasint(std::max<int64_t>(1, ldb)), 0.0f, c + p * cStride,
                blasint(std::max<int64_t>(1, g.n)));
}

template <typename S>
void widen(const KernelContext &context, const typename S::T *src, float *dst, int64_t n) {
  int threads = threadsFor(context, n);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    dst[i] = S::load(src[i]);
}

template <typename S>
void narrow(const KernelContext &context, const float *src, typename S::T *dst, int64_t n) {
  int threads = threadsFor(context, n);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    dst[i] = S::store(src[i]);
}

Status runGemm(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &attrs) {
  GemmShape g;
  (void)gemmShape(Checker("gemm"), in[0], in[1], attrs, g); // prepare checked it
  setBlasThreads(context.threads);
  if (in[0].dtype == DType::F32) {
    sgemmBatches(g, in[0].as<float>(), in[1].as<float>(), out[0].as<float>());
    return Status::ok();
  }
  static thread_local std::vector<float> aBuffer, bBuffer, cBuffer;
  int64_t nA = in[0].numElements(), nB = in[1].numElements(), nC = out[0].numElements();
  float *a = scratch(aBuffer, size_t(nA)), *b = scratch(bBuffer, size_t(nB));
  float *c = scratch(cBuffer, size_t(nC));
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    widen<S>(context, in[0].as<typename S::T>(), a, nA);
    widen<S>(context, in[1].as<typename S::T>(), b, nB);
    sgemmBatches(g, a, b, c);
    narrow<S>(context, c, out[0].as<typename S::T>(), nC);
  });
  return Status::ok();
}

} // namespace

std::vector<KernelInfo> gemmKernels() { return {{"gemm", runGemm, prepareGemm}}; }

} // namespace apc::kernels::cpu
