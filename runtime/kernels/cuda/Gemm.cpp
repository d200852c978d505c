// gemm on CUDA: one cublasLtMatmul per call, the row-major problem expressed as
// cuBLASLt's column-major one by swapping the operands (GemmLayout.h).
//
// Numerics as the CPU backend's: f32, bf16 and f16 storage, products accumulated in f32
// (CUBLAS_COMPUTE_32F: for f32 this is true f32 arithmetic, no TF32), the result rounded
// to the output dtype once. Split-K partial sums, where cuBLASLt splits, are kept and
// added in f32 (the reduction schemes that round partials to the output type are
// excluded), in a fixed order: a given algorithm gives the same bits every run.
//
// The algorithm is chosen once per problem (cublasLtMatmulAlgoGetHeuristic) and kept,
// with the descriptors, in a process-wide table guarded by a mutex; calls after the
// first only look it up. cuBLASLt's workspace is the kernel's KernelInfo::workspace
// (Gemm.h): nothing is allocated per call.
#include "runtime/kernels/cuda/Gemm.h"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/GemmLayout.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace apc::kernels::cuda {
namespace {

std::atomic<uint64_t> searches{0};

std::string blasText(cublasStatus_t s) {
  return std::string(cublasLtGetStatusName(s)) + ": " + cublasLtGetStatusString(s);
}

cudaDataType_t cudaTypeOf(DType dtype) {
  switch (dtype) {
  case DType::BF16: return CUDA_R_16BF;
  case DType::F16: return CUDA_R_16F;
  default: return CUDA_R_32F; // prepare admits float dtypes only
  }
}

// Everything the chosen algorithm depends on.
struct PlanKey {
  int device = 0;
  void *handle = nullptr;
  DType dtype = DType::F32;
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false, sharedB = false;
  uint32_t alignFirst = 0, alignSecond = 0, alignD = 0;

  auto tied() const {
    return std::tie(device, handle, dtype, batch, m, n, k, transposeA, transposeB, sharedB,
                    alignFirst, alignSecond, alignD);
  }
  bool operator<(const PlanKey &other) const { return tied() < other.tied(); }
};

// The descriptors and the algorithm of one problem, in cuBLASLt's caller-owned storage
// (the *Init functions: nothing to destroy).
struct Plan {
  cublasLtMatmulDescOpaque_t desc;
  cublasLtMatrixLayoutOpaque_t first, second, d;
  cublasLtMatmulAlgo_t algo;
};

Status check(cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return Status::ok();
  return Status::error(std::string("gemm: cuBLASLt ") + what + " failed: " + blasText(s));
}

Status describeOperand(cublasLtMatrixLayoutOpaque_t &layout, const ColumnMajorOperand &o,
                       cudaDataType_t type, int64_t batchCount) {
  APC_RETURN_IF_ERROR(check(
      cublasLtMatrixLayoutInit(&layout, type, uint64_t(o.rows), uint64_t(o.cols), o.ld),
      "cublasLtMatrixLayoutInit"));
  if (batchCount == 1)
    return Status::ok();
  int32_t count = int32_t(batchCount);
  int64_t stride = o.batchStride;
  APC_RETURN_IF_ERROR(check(cublasLtMatrixLayoutSetAttribute(
                                &layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
                            "setting the batch count"));
  return check(cublasLtMatrixLayoutSetAttribute(
                   &layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
               "setting the batch stride");
}

// Fills `plan` for `key`: descriptors, then the heuristic's first (fastest) algorithm.
Status makePlan(const PlanKey &key, const LtGemm &lt, Plan &plan) {
  cudaDataType_t type = cudaTypeOf(key.dtype);
  APC_RETURN_IF_ERROR(check(cublasLtMatmulDescInit(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                            "cublasLtMatmulDescInit"));
  cublasOperation_t opFirst = lt.first.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opSecond = lt.second.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  APC_RETURN_IF_ERROR(check(cublasLtMatmulDescSetAttribute(&plan.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                           &opFirst, sizeof(opFirst)),
                            "setting transa"));
  APC_RETURN_IF_ERROR(check(cublasLtMatmulDescSetAttribute(&plan.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                           &opSecond, sizeof(opSecond)),
                            "setting transb"));
  APC_RETURN_IF_ERROR(describeOperand(plan.first, lt.first, type, lt.batchCount));
  APC_RETURN_IF_ERROR(describeOperand(plan.second, lt.second, type, lt.batchCount));
  APC_RETURN_IF_ERROR(describeOperand(plan.d, lt.d, type, lt.batchCount));

  cublasLtMatmulPreferenceOpaque_t preference;
  APC_RETURN_IF_ERROR(
      check(cublasLtMatmulPreferenceInit(&preference), "cublasLtMatmulPreferenceInit"));
  uint64_t workspace = kGemmWorkspaceBytes;
  // Split-K partials in f32 only (not rounded to bf16/f16 on the way), as the CPU sums.
  uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  struct {
    cublasLtMatmulPreferenceAttributes_t attribute;
    const void *value;
    size_t size;
  } settings[] = {
      {CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)},
      {CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction, sizeof(reduction)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.alignFirst, sizeof(key.alignFirst)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.alignSecond, sizeof(key.alignSecond)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.alignD, sizeof(key.alignD)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.alignD, sizeof(key.alignD)},
  };
  for (const auto &s : settings)
    APC_RETURN_IF_ERROR(check(
        cublasLtMatmulPreferenceSetAttribute(&preference, s.attribute, s.value, s.size),
        "setting a search preference"));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  ++searches;
  APC_RETURN_IF_ERROR(check(cublasLtMatmulAlgoGetHeuristic(
                                static_cast<cublasLtHandle_t>(key.handle), &plan.desc, &plan.first,
                                &plan.second, &plan.d, &plan.d, &preference, 1, &result, &found),
                            "cublasLtMatmulAlgoGetHeuristic"));
  if (found == 0 || result.state != CUBLAS_STATUS_SUCCESS)
    return Status::error("gemm: cuBLASLt has no algorithm for " + std::to_string(key.batch) +
                         " x [" + std::to_string(key.m) + ", " + std::to_string(key.k) +
                         "] x [" + std::to_string(key.k) + ", " + std::to_string(key.n) + "] " +
                         dtypeName(key.dtype) + " within " +
                         std::to_string(kGemmWorkspaceBytes >> 20) + " MiB of workspace");
  plan.algo = result.algo;
  return Status::ok();
}

// The plan of `key`, made on first use. Entries are never removed, so the pointer stays
// valid after the lock is released.
Result<Plan *> planFor(const PlanKey &key, const LtGemm &lt) {
  static std::mutex mutex;
  static std::map<PlanKey, Plan> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = plans.find(key);
  if (found != plans.end())
    return &found->second;
  // Made in place: cuBLASLt's descriptors are never copied.
  auto entry = plans.try_emplace(key).first;
  Status made = makePlan(key, lt, entry->second);
  if (!made) {
    plans.erase(entry);
    return made;
  }
  return &entry->second;
}

Status cudaCheck(cudaError_t e, const char *what) {
  if (e == cudaSuccess)
    return Status::ok();
  cudaGetLastError(); // not sticky: clear it
  return Status::error(std::string("gemm: ") + what + ": " + cudaGetErrorName(e) + ": " +
                       cudaGetErrorString(e));
}

uint64_t address(const void *p) { return uint64_t(reinterpret_cast<uintptr_t>(p)); }

uint64_t gemmWorkspace(const std::vector<TensorView> &, const std::vector<TensorView> &,
                       const Attributes &) {
  return kGemmWorkspaceBytes;
}

Status runGemm(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &a = in[0], &b = in[1], &c = out[0];
  GemmProblem g = gemmProblem(a.shape, b.shape, attrs.getBool("transpose_a", false),
                              attrs.getBool("transpose_b", false));
  if (g.batch == 0 || g.m == 0 || g.n == 0)
    return Status::ok();
  cudaStream_t stream = static_cast<cudaStream_t>(context.stream);
  if (g.k == 0) // an empty sum: zeros, as the CPU backend writes
    return cudaCheck(
        cudaMemsetAsync(c.data, 0, size_t(c.numElements()) * dtypeSize(c.dtype), stream),
        "zeroing the output of an empty contraction");
  if (!context.workspace || context.workspaceBytes < kGemmWorkspaceBytes)
    return Status::error("gemm needs " + std::to_string(kGemmWorkspaceBytes) +
                         " bytes of workspace; the backend gave " +
                         std::to_string(context.workspaceBytes));
  if (!context.blasLt)
    return Status::error("gemm: the KernelContext carries no cuBLASLt handle (blasLt; "
                         "runtime/kernels/cuda/Libraries.h makes one)");
  if (g.batch > INT32_MAX)
    return Status::error("gemm: " + std::to_string(g.batch) +
                         " batches are more than cuBLASLt's batch count holds (2^31 - 1)");

  LtGemm lt = ltGemmOf(g);
  int64_t element = int64_t(dtypeSize(a.dtype));
  PlanKey key;
  APC_RETURN_IF_ERROR(cudaCheck(cudaGetDevice(&key.device), "cudaGetDevice"));
  key.handle = context.blasLt;
  key.dtype = a.dtype;
  key.batch = g.batch;
  key.m = g.m;
  key.n = g.n;
  key.k = g.k;
  key.transposeA = g.transposeA;
  key.transposeB = g.transposeB;
  key.sharedB = g.sharedB;
  key.alignFirst = operandAlignment(address(b.data), lt.first.batchStride * element, g.batch);
  key.alignSecond = operandAlignment(address(a.data), lt.second.batchStride * element, g.batch);
  key.alignD = operandAlignment(address(c.data), lt.d.batchStride * element, g.batch);
  Result<Plan *> plan = planFor(key, lt);
  if (!plan)
    return Status::error(plan.message());

  const float alpha = 1.0f, beta = 0.0f; // beta 0: c is written, never read
  Plan &p = **plan;
  return check(cublasLtMatmul(static_cast<cublasLtHandle_t>(context.blasLt), &p.desc, &alpha,
                              b.data, &p.first, a.data, &p.second, &beta, c.data, &p.d, c.data,
                              &p.d, &p.algo, context.workspace, kGemmWorkspaceBytes, stream),
               "cublasLtMatmul");
}

} // namespace

uint64_t gemmAlgorithmSearches() { return searches.load(); }

std::vector<KernelInfo> gemmKernels() { return {{"gemm", runGemm, nullptr, gemmWorkspace}}; }

} // namespace apc::kernels::cuda
