// Rotary position embedding on CUDA: rope and rope_grad (the rotation by the opposite
// angle). Two launches per call: the cos/sin table of the call's positions, computed in
// double and rounded to f32 into the workspace, then one grid-stride loop over the
// (j, j + half) pairs rotating in f32 (RopeMath.h holds the arithmetic). Each pair is
// read by one thread before it is written, so the output may be the input (in place).
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/RopeMath.h"

namespace apc::kernels::cuda {
namespace {

__global__ void ropeTableKernel(float *table, int64_t entries, int64_t half, int64_t offset,
                                RopeFrequencies f, double direction, RopePart part) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < entries; i += stride)
    ropeTableEntry(f, i, half, offset, direction, table[i], table[entries + i], part);
}

template <typename T>
__global__ void ropeRotateKernel(const T *x, T *y, const float *table, int64_t pairs,
                                 int64_t entries, int64_t seq, int64_t heads, int64_t half) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < pairs; q += stride) {
    RopePair p = ropePair(q, seq, heads, half);
    float y1, y2;
    ropeRotate(Storage<T>::load(x[p.first]), Storage<T>::load(x[p.second]), table[p.entry],
               table[entries + p.entry], y1, y2);
    y[p.first] = Storage<T>::store(y1);
    y[p.second] = Storage<T>::store(y2);
  }
}

uint64_t ropeWorkspaceOf(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                         const Attributes &) {
  return ropeTableBytes(in[0].shape[1], in[0].shape[3] / 2);
}

Status runRopeRotate(const char *name, const KernelContext &context, const TensorView &x,
                     const TensorView &y, const Attributes &attrs, double direction) {
  int64_t seq = x.shape[1], heads = x.shape[2], half = x.shape[3] / 2;
  int64_t pairs = x.numElements() / 2, entries = seq * half;
  if (pairs == 0)
    return Status::ok();
  uint64_t need = ropeTableBytes(seq, half);
  if (context.workspaceBytes < need || !context.workspace)
    return Status::error(std::string(name) + " needs " + std::to_string(need) +
                         " bytes of workspace; the backend gave " +
                         std::to_string(context.workspaceBytes));
  auto *table = static_cast<float *>(context.workspace);
  cudaStream_t stream = streamOf(context);
  Launch tableLaunch = elementwiseLaunch(entries);
  ropeTableKernel<<<tableLaunch.blocks, tableLaunch.threads, 0, stream>>>(
      table, entries, half, attrs.getInt("position_offset", 0), ropeFrequencies(attrs),
      direction, ropePart(attrs, seq));
  Launch launch = elementwiseLaunch(pairs);
  dispatchFloat(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    ropeRotateKernel<<<launch.blocks, launch.threads, 0, stream>>>(
        x.as<const T>(), y.as<T>(), table, pairs, entries, seq, heads, half);
  });
  return launched(name);
}

Status runRope(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &attrs) {
  return runRopeRotate("rope", context, in[0], out[0], attrs, +1.0);
}
Status runRopeGrad(const KernelContext &context, const std::vector<TensorView> &in,
                   const std::vector<TensorView> &out, const Attributes &attrs) {
  return runRopeRotate("rope_grad", context, in[0], out[0], attrs, -1.0);
}

} // namespace

std::vector<KernelInfo> ropeKernels() {
  return {
      {"rope", runRope, nullptr, ropeWorkspaceOf},
      {"rope_grad", runRopeGrad, nullptr, ropeWorkspaceOf},
  };
}

} // namespace apc::kernels::cuda
