// The optimizer step on CUDA: grad_norm (the global L2 norm, or with `squared` its square)
// and adamw (one AdamW update of one parameter, in place), with the CPU backend's
// semantics (cpu/Optimizer.cpp). grad_norm is deterministic without atomics: one block per
// chunk of the CPU backend's size writes a double partial to the workspace, one block adds
// the partials in a fixed order. adamw is a grid-stride loop; its per-step scalars are
// computed from the device's step, lr and grad_norm by every thread (the same values).
// OptimizerMath.h holds the arithmetic, which the host tests check against the CPU backend.
#include "runtime/kernels/cuda/BlockFold.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/OptimizerMath.h"

#include <climits>

namespace apc::kernels::cuda {
namespace {

using namespace optimizer;

// ---- grad_norm -------------------------------------------------------------------------

template <typename T> __device__ double chunkSquares(const void *data, int64_t begin, int64_t end) {
  const T *g = static_cast<const T *>(data);
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    s += squareTerm(Storage<T>::load(g[i]));
  return s;
}

__global__ void __launch_bounds__(kNormThreads) normChunkSums(NormBatch batch, double *partials) {
  __shared__ double sums[kNormThreads];
  NormChunk chunk = normChunk(batch, blockIdx.x);
  const void *data = batch.data[chunk.entry];
  double s;
  switch (batch.dtype[chunk.entry]) {
  case DType::BF16:
    s = chunkSquares<__nv_bfloat16>(data, chunk.begin, chunk.end);
    break;
  case DType::F16:
    s = chunkSquares<__half>(data, chunk.begin, chunk.end);
    break;
  default:
    s = chunkSquares<float>(data, chunk.begin, chunk.end);
    break;
  }
  s = blockFold(s, sums, Plus());
  if (threadIdx.x == 0)
    partials[batch.base + blockIdx.x] = s;
}

__global__ void __launch_bounds__(kNormFinishThreads)
    normFinish(const double *partials, int64_t count, bool squared, float *result) {
  __shared__ double sums[kNormFinishThreads];
  double s = 0;
  for (int64_t c = threadIdx.x; c < count; c += blockDim.x)
    s += partials[c];
  s = blockFold(s, sums, Plus());
  if (threadIdx.x == 0)
    *result = normResult(s, squared);
}

uint64_t gradNormWorkspaceOf(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                             const Attributes &) {
  return uint64_t(normPartials(in)) * sizeof(double);
}

Status runGradNorm(const KernelContext &context, const std::vector<TensorView> &in,
                   const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t partials = normPartials(in);
  uint64_t need = uint64_t(partials) * sizeof(double);
  if (context.workspaceBytes < need || (need > 0 && !context.workspace))
    return Status::error("grad_norm needs " + std::to_string(need) +
                         " bytes of workspace; the backend gave " +
                         std::to_string(context.workspaceBytes));
  auto *sums = static_cast<double *>(context.workspace);
  cudaStream_t stream = streamOf(context);
  NormBatch batch;
  size_t next = 0;
  int64_t base = 0;
  while (nextNormBatch(in, next, base, batch)) {
    int64_t chunks = batch.firstChunk[batch.size];
    if (chunks > INT32_MAX) // a grid's x limit: 2^31 - 1 chunks of 16384 elements
      return Status::error("grad_norm: " + std::to_string(chunks) +
                           " chunks in one launch are more than CUDA's grid holds");
    normChunkSums<<<unsigned(chunks), kNormThreads, 0, stream>>>(batch, sums);
  }
  // The result is written even with no element (0, as the CPU backend's).
  normFinish<<<1, kNormFinishThreads, 0, stream>>>(sums, partials, attrs.getBool("squared", false),
                                                   out[0].as<float>());
  return launched("grad_norm");
}

// ---- adamw -----------------------------------------------------------------------------

// The step (i32 or i64) and the optional gradient norm (any float dtype), on the device.
struct AdamWOperands {
  const void *step;
  bool step64;
  const float *lr;
  const void *gradNorm; // null: none
  DType gradNormDtype;
};

__device__ double loadScalar(const void *p, DType dtype) {
  switch (dtype) {
  case DType::BF16:
    return Storage<__nv_bfloat16>::load(*static_cast<const __nv_bfloat16 *>(p));
  case DType::F16:
    return Storage<__half>::load(*static_cast<const __half *>(p));
  default:
    return *static_cast<const float *>(p);
  }
}

// Every input of element i is read before any output of element i is written, so the
// outputs may be the param, exp_avg and exp_avg_sq buffers (the usual in-place update).
template <typename G>
__global__ void adamwKernel(const float *param, const G *grad, const float *expAvg,
                            const float *expAvgSq, float *newParam, float *newExpAvg,
                            float *newExpAvgSq, int64_t n, AdamWHyper hyper, AdamWOperands ops) {
  int64_t step = ops.step64 ? *static_cast<const int64_t *>(ops.step)
                            : int64_t(*static_cast<const int32_t *>(ops.step));
  double gradNorm = ops.gradNorm ? loadScalar(ops.gradNorm, ops.gradNormDtype) : 0.0;
  AdamWScalars s = adamwScalars(hyper, step, double(*ops.lr), gradNorm);
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    AdamWElement e = adamwElement(s, Storage<G>::load(grad[i]), param[i], expAvg[i], expAvgSq[i]);
    newParam[i] = e.param;
    newExpAvg[i] = e.expAvg;
    newExpAvgSq[i] = e.expAvgSq;
  }
}

AdamWHyper hyperOf(const Attributes &attrs, bool hasGradNorm) {
  AdamWHyper h;
  h.beta1 = attrs.getFloat("beta1", 0.9);
  h.beta2 = attrs.getFloat("beta2", 0.999);
  h.epsilon = attrs.getFloat("epsilon", 1e-8);
  h.weightDecay = attrs.getFloat("weight_decay", 0.01);
  h.clip = attrs.has("max_grad_norm");
  h.maxGradNorm = attrs.getFloat("max_grad_norm", 0.0);
  h.skipNonFinite = hasGradNorm && attrs.getBool("skip_non_finite");
  return h;
}

Status runAdamW(const KernelContext &context, const std::vector<TensorView> &in,
                const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t n = in[0].numElements();
  Launch launch = elementwiseLaunch(n);
  if (launch.blocks == 0)
    return Status::ok();
  bool hasGradNorm = in.size() == 7;
  AdamWOperands ops{in[4].data, in[4].dtype == DType::I64, in[5].as<const float>(),
                    hasGradNorm ? in[6].data : nullptr, hasGradNorm ? in[6].dtype : DType::F32};
  AdamWHyper hyper = hyperOf(attrs, hasGradNorm);
  dispatchFloat(in[1].dtype, [&](auto zero) {
    using G = decltype(zero);
    adamwKernel<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(
        in[0].as<const float>(), in[1].as<const G>(), in[2].as<const float>(),
        in[3].as<const float>(), out[0].as<float>(), out[1].as<float>(), out[2].as<float>(), n,
        hyper, ops);
  });
  return launched("adamw");
}

} // namespace

std::vector<KernelInfo> optimizerKernels() {
  return {
      {"grad_norm", runGradNorm, nullptr, gradNormWorkspaceOf},
      {"adamw", runAdamW, nullptr},
  };
}

} // namespace apc::kernels::cuda
