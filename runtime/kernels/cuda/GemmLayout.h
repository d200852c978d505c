// How the CPU backend's row-major `gemm` (runtime/kernels/cpu/CpuKernels.h) is asked of
// cuBLASLt, which is column-major. Plain C++ (no CUDA header): Gemm.cpp builds its
// cuBLASLt descriptors from these numbers, and the host tests drive a naive column-major
// GEMM with them against the CPU kernel (test/unit/kernels/cuda/GemmTest.cpp).
//
// The mapping: a row-major matrix X [R, C] (leading dimension C) is, read column-major,
// X^T [C, R] with the same leading dimension. So the row-major C = op(A) op(B) is the
// column-major C^T = op(B)^T op(A)^T: cuBLASLt's first operand is gemm's b, its second
// gemm's a, with m = N, n = M, k = K, and C^T is [N, M] column-major with ld N, which is
// exactly C row-major. Each operand is transposed for cuBLASLt exactly when it is for
// gemm (the row/column-major swap and the operand swap cancel).
#pragma once

#include <cstdint>
#include <vector>

namespace apc::kernels::cuda {

// The row-major problem, as the CPU backend derives it: `batch` products of
// op(a) [m, k] x op(b) [k, n] -> c [m, n], all contiguous. With `sharedB` (b of rank 2,
// a of higher rank: ap.linear) a's leading dims are flattened into m and batch is 1.
struct GemmProblem {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false;
  bool sharedB = false;
};

// The problem of operands a and b of these shapes (prepare validated them: same rank
// with equal batch dims, or b rank 2 and no transpose_a).
inline GemmProblem gemmProblem(const std::vector<int64_t> &a, const std::vector<int64_t> &b,
                               bool transposeA, bool transposeB) {
  GemmProblem g;
  g.transposeA = transposeA;
  g.transposeB = transposeB;
  size_t rankA = a.size(), rankB = b.size();
  g.n = b[transposeB ? rankB - 2 : rankB - 1];
  if (rankA == rankB) {
    for (size_t d = 0; d + 2 < rankA; ++d)
      g.batch *= a[d];
    g.m = a[transposeA ? rankA - 1 : rankA - 2];
    g.k = a[transposeA ? rankA - 2 : rankA - 1];
  } else { // b rank 2, shared by every row of a
    g.sharedB = true;
    g.m = 1;
    for (size_t d = 0; d + 1 < rankA; ++d)
      g.m *= a[d];
    g.k = a[rankA - 1];
  }
  return g;
}

// One operand of cuBLASLt's problem as stored: a column-major [rows, cols] matrix with
// leading dimension ld, `batchStride` elements from one batch's matrix to the next, used
// transposed when `transpose` (CUBLAS_OP_T).
struct ColumnMajorOperand {
  int64_t rows = 0, cols = 0, ld = 1, batchStride = 0;
  bool transpose = false;
};

// cuBLASLt's problem: D [m, n] = op(first) [m, k] x op(second) [k, n], column-major,
// `batchCount` times. first is gemm's b, second gemm's a, d gemm's c.
struct LtGemm {
  int64_t m = 0, n = 0, k = 0, batchCount = 1;
  ColumnMajorOperand first, second, d;
};

inline int64_t atLeastOne(int64_t v) { return v < 1 ? 1 : v; }

inline LtGemm ltGemmOf(const GemmProblem &g) {
  LtGemm lt;
  lt.m = g.n;
  lt.n = g.m;
  lt.k = g.k;
  lt.batchCount = g.batch;
  // b is stored row-major [k, n] (column-major [n, k], ld n), or [n, k] with transpose_b
  // (column-major [k, n], ld k, used transposed).
  lt.first.transpose = g.transposeB;
  lt.first.rows = g.transposeB ? g.k : g.n;
  lt.first.cols = g.transposeB ? g.n : g.k;
  lt.first.batchStride = g.sharedB ? 0 : g.k * g.n;
  // a is stored row-major [m, k] (column-major [k, m], ld k), or [k, m] with transpose_a
  // (column-major [m, k], ld m, used transposed).
  lt.second.transpose = g.transposeA;
  lt.second.rows = g.transposeA ? g.m : g.k;
  lt.second.cols = g.transposeA ? g.k : g.m;
  lt.second.batchStride = g.m * g.k;
  // c row-major [m, n] is column-major [n, m] with ld n.
  lt.d.rows = g.n;
  lt.d.cols = g.m;
  lt.d.batchStride = g.m * g.n;
  // Contiguous storage: the leading dimension is the row count (at least 1, as BLAS
  // requires even of empty matrices).
  for (ColumnMajorOperand *o : {&lt.first, &lt.second, &lt.d})
    o->ld = atLeastOne(o->rows);
  return lt;
}

// The largest power of two, up to 256 (cuBLASLt's default requirement), that divides
// the byte address of every batch's matrix of an operand: what the algorithm search may
// assume of it (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES).
inline uint32_t operandAlignment(uint64_t address, int64_t batchStrideBytes, int64_t batchCount) {
  uint64_t bits = address;
  if (batchCount > 1)
    bits |= uint64_t(batchStrideBytes);
  uint32_t alignment = 1;
  while (alignment < 256 && (bits & alignment) == 0)
    alignment *= 2;
  return alignment;
}

} // namespace apc::kernels::cuda
