// Attention on CUDA: attention and attention_grad, flash-attention style (no seq x seq
// matrix anywhere), f32 SIMT arithmetic from f32/bf16/f16 storage. The block programs
// and their arithmetic are in AttentionMath.h (tested on the host against the CPU
// backend); this file runs them, one CUDA thread per program thread, and launches.
//
// attention: one block per (batch, head, query tile).
// attention_grad: three launches on the stream, in order: the statistics pass (the
// forward again, per query tile: row max, row sum, delta = dO . O into the workspace),
// dQ per (batch, head, query tile), dK and dV per (batch, kv head, key tile), each
// summing the query heads of its group in head order. No atomics: deterministic.
#include "runtime/kernels/cuda/AttentionMath.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"

namespace apc::kernels::cuda {
namespace {

// The block of AttentionMath.h's programs on the GPU: every thread runs a stage for its
// own index, then the block waits for all.
struct DeviceBlock {
  int threads;
  template <class Stage> __device__ void parallel(Stage &&stage) {
    stage(int(threadIdx.x));
    __syncthreads();
  }
};

// The operands in storage T, read and written as f32 (rounded once, nearest even).
template <typename T> struct DeviceIo {
  const T *q = nullptr, *k = nullptr, *v = nullptr, *gradOutput = nullptr;
  T *out = nullptr, *gradQ = nullptr, *gradK = nullptr, *gradV = nullptr;
  __device__ float query(int64_t i) const { return Storage<T>::load(q[i]); }
  __device__ float key(int64_t i) const { return Storage<T>::load(k[i]); }
  __device__ float value(int64_t i) const { return Storage<T>::load(v[i]); }
  __device__ float gradOut(int64_t i) const { return Storage<T>::load(gradOutput[i]); }
  __device__ void storeOut(int64_t i, float x) const { out[i] = Storage<T>::store(x); }
  __device__ void storeGradQuery(int64_t i, float x) const { gradQ[i] = Storage<T>::store(x); }
  __device__ void storeGradKey(int64_t i, float x) const { gradK[i] = Storage<T>::store(x); }
  __device__ void storeGradValue(int64_t i, float x) const { gradV[i] = Storage<T>::store(x); }
};

template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    attentionForwardKernel(DeviceIo<T> io, AttentionDims a, int tile, int64_t tiles) {
  extern __shared__ float shared[];
  DeviceBlock block{int(blockDim.x)};
  AttentionTask task = attentionTask(blockIdx.x, a.heads, tiles, true);
  attentionForwardBlock(block, io, a, task, tile, shared);
}

template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    attentionGradStatsKernel(DeviceIo<T> io, AttentionDims a, int tile, int64_t tiles,
                             AttentionStats stats) {
  extern __shared__ float shared[];
  DeviceBlock block{int(blockDim.x)};
  AttentionTask task = attentionTask(blockIdx.x, a.heads, tiles, true);
  attentionGradStatsBlock(block, io, a, task, tile, shared, stats);
}

template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    attentionGradQueryKernel(DeviceIo<T> io, AttentionDims a, int tile, int64_t tiles,
                             AttentionStats stats) {
  extern __shared__ float shared[];
  DeviceBlock block{int(blockDim.x)};
  AttentionTask task = attentionTask(blockIdx.x, a.heads, tiles, true);
  attentionGradQueryBlock(block, io, a, task, tile, shared, stats);
}

// Under a causal mask the first key tiles see the most queries: they start first.
template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    attentionGradKeyValueKernel(DeviceIo<T> io, AttentionDims a, int tile, int64_t tiles,
                                AttentionStats stats) {
  extern __shared__ float shared[];
  DeviceBlock block{int(blockDim.x)};
  AttentionTask task = attentionTask(blockIdx.x, a.kvHeads, tiles, false);
  attentionGradKeyValueBlock(block, io, a, task, tile, shared, stats);
}

Status checkHeadDim(const char *kernel, const AttentionDims &a) {
  if (a.dim > kAttentionMaxHeadDim)
    return Status::error(std::string(kernel) + ": head_dim " + std::to_string(a.dim) +
                         " is more than the CUDA kernel supports (at most " +
                         std::to_string(kAttentionMaxHeadDim) + ")");
  return Status::ok();
}

// A launch of `blocks` blocks of one pass: its tile, shared bytes (the kernel opted in
// above the default 48 KiB) and the grid's limit.
struct PassLaunch {
  int tile = 0;
  int64_t tiles = 0, blocks = 0;
  int shared = 0;
};

template <typename Kernel>
Status planPass(const char *kernel, Kernel *entry, AttentionPass pass, const AttentionDims &a,
                int64_t heads, PassLaunch &launch) {
  launch.tile = attentionTile(pass, a.dim);
  launch.tiles = attentionTiles(a.seq, launch.tile);
  launch.blocks = a.batch * heads * launch.tiles;
  launch.shared = int(attentionLayout(pass, launch.tile, int(a.dim)).bytes());
  if (launch.blocks > INT32_MAX)
    return Status::error(std::string(kernel) + ": " + std::to_string(launch.blocks) +
                         " blocks are more than a CUDA grid holds");
  if (launch.blocks == 0 || launch.shared <= 48 * 1024)
    return Status::ok();
  cudaError_t e =
      cudaFuncSetAttribute(entry, cudaFuncAttributeMaxDynamicSharedMemorySize, launch.shared);
  if (e != cudaSuccess) {
    (void)cudaGetLastError(); // not a launch failure: reported here
    return Status::error(std::string(kernel) + ": cannot give a block " +
                         std::to_string(launch.shared) + " bytes of shared memory (head_dim " +
                         std::to_string(a.dim) + "): " + cudaGetErrorString(e));
  }
  return Status::ok();
}

// At load (the registry runs these after the CPU's prepare): what only the CUDA kernels
// cannot take.
// Context parallelism (queries of two chunks against the whole sequence's keys) is
// the CPU kernel's only: refused by name, never computed as plain causal attention.
Status notSequenceSharded(const char *kernel, const Attributes &attrs) {
  if (attrs.getInt("seq_shard_parts", 1) > 1)
    return Status::error(std::string(kernel) + ": context parallelism (seq_shard_parts " +
                         std::to_string(attrs.getInt("seq_shard_parts", 1)) +
                         ") is not built for the CUDA attention kernels yet");
  return Status::ok();
}
Status attentionLimits(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                       const Attributes &attrs) {
  APC_RETURN_IF_ERROR(notSequenceSharded("attention", attrs));
  return checkHeadDim("attention", attentionDims(in, attrs));
}
Status attentionGradLimits(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                           const Attributes &attrs) {
  APC_RETURN_IF_ERROR(notSequenceSharded("attention_grad", attrs));
  return checkHeadDim("attention_grad", attentionDims(in, attrs));
}

Status runAttention(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  AttentionDims a = attentionDims(in, attrs);
  APC_RETURN_IF_ERROR(checkHeadDim("attention", a));
  Status status = Status::ok();
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    PassLaunch launch;
    status = planPass("attention", attentionForwardKernel<T>, AttentionPass::Forward, a, a.heads,
                      launch);
    if (!status || launch.blocks == 0)
      return;
    DeviceIo<T> io;
    io.q = in[0].as<const T>();
    io.k = in[1].as<const T>();
    io.v = in[2].as<const T>();
    io.out = out[0].as<T>();
    attentionForwardKernel<<<unsigned(launch.blocks), kAttentionThreads, launch.shared,
                             streamOf(context)>>>(io, a, launch.tile, launch.tiles);
    status = launched("attention");
  });
  return status;
}

uint64_t attentionGradWorkspaceOf(const std::vector<TensorView> &in,
                                  const std::vector<TensorView> &, const Attributes &) {
  const TensorView &q = in[0];
  return attentionGradWorkspace(q.shape[0] * q.shape[1] * q.shape[2]);
}

Status runAttentionGrad(const KernelContext &context, const std::vector<TensorView> &in,
                        const std::vector<TensorView> &out, const Attributes &attrs) {
  AttentionDims a = attentionDims(in, attrs);
  APC_RETURN_IF_ERROR(checkHeadDim("attention_grad", a));
  int64_t rows = a.batch * a.heads * a.seq;
  uint64_t need = attentionGradWorkspace(rows);
  if (need > 0 && (context.workspaceBytes < need || !context.workspace))
    return Status::error("attention_grad needs " + std::to_string(need) +
                         " bytes of workspace; the backend gave " +
                         std::to_string(context.workspaceBytes));
  char *base = static_cast<char *>(context.workspace);
  uint64_t stride = attentionStatsStride(rows);
  AttentionStats stats{reinterpret_cast<float *>(base), reinterpret_cast<float *>(base + stride),
                       reinterpret_cast<float *>(base + 2 * stride)};
  cudaStream_t stream = streamOf(context);
  Status status = Status::ok();
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    PassLaunch statsPass, queryPass, keyValuePass;
    status = planPass("attention_grad", attentionGradStatsKernel<T>, AttentionPass::Forward, a,
                      a.heads, statsPass);
    if (status)
      status = planPass("attention_grad", attentionGradQueryKernel<T>, AttentionPass::GradQuery,
                        a, a.heads, queryPass);
    if (status)
      status = planPass("attention_grad", attentionGradKeyValueKernel<T>,
                        AttentionPass::GradKeyValue, a, a.kvHeads, keyValuePass);
    if (!status)
      return;
    DeviceIo<T> io;
    io.q = in[0].as<const T>();
    io.k = in[1].as<const T>();
    io.v = in[2].as<const T>();
    io.gradOutput = in[3].as<const T>();
    io.gradQ = out[0].as<T>();
    io.gradK = out[1].as<T>();
    io.gradV = out[2].as<T>();
    if (keyValuePass.blocks == 0) // empty tensors
      return;
    // With no query heads (heads = 0) only the key pass runs: dK = dV = 0, as on the CPU.
    if (statsPass.blocks > 0) {
      attentionGradStatsKernel<<<unsigned(statsPass.blocks), kAttentionThreads, statsPass.shared,
                                 stream>>>(io, a, statsPass.tile, statsPass.tiles, stats);
      attentionGradQueryKernel<<<unsigned(queryPass.blocks), kAttentionThreads, queryPass.shared,
                                 stream>>>(io, a, queryPass.tile, queryPass.tiles, stats);
    }
    attentionGradKeyValueKernel<<<unsigned(keyValuePass.blocks), kAttentionThreads,
                                    keyValuePass.shared, stream>>>(
          io, a, keyValuePass.tile, keyValuePass.tiles, stats);
    status = launched("attention_grad");
  });
  return status;
}

} // namespace

std::vector<KernelInfo> attentionKernels() {
  return {
      {"attention", runAttention, attentionLimits},
      {"attention_grad", runAttentionGrad, attentionGradLimits, attentionGradWorkspaceOf},
  };
}

} // namespace apc::kernels::cuda
