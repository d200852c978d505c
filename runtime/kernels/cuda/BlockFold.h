// The order in which a block combines its threads' partial results (sums, maxima, a
// first position): lane t takes lane t + o for o = n/2, n/4, ..., 1 (n a power of two),
// a fixed pairwise tree, so the result does not depend on scheduling. foldHalves runs
// that order serially (the host tests emulate a block with it); blockFold runs the same
// order in a block on the GPU (shared memory down to one warp, then shuffles, which pair
// lane t with lane t + o exactly as foldHalves does). Plain header: the device part
// compiles only under nvcc.
#pragma once

#include "runtime/kernels/cuda/HostDevice.h"

namespace apc::kernels::cuda {

struct Plus {
  template <typename T> APC_HD T operator()(T a, T b) const { return a + b; }
};
// As std::max(a, b): b only when a < b, so a NaN in b is passed over as on the CPU.
struct Max {
  template <typename T> APC_HD T operator()(T a, T b) const { return a < b ? b : a; }
};
struct Min {
  template <typename T> APC_HD T operator()(T a, T b) const { return b < a ? b : a; }
};

template <typename T, typename Combine> APC_HD T foldHalves(T *lanes, int n, Combine combine) {
  for (int o = n / 2; o > 0; o /= 2)
    for (int t = 0; t < o; ++t)
      lanes[t] = combine(lanes[t], lanes[t + o]);
  return lanes[0];
}

#if defined(__CUDACC__)
// Every thread passes its partial and gets the block's result. blockDim.x is a power of
// two from 32 to 1024; `shared` holds blockDim.x values.
template <typename T, typename Combine> __device__ T blockFold(T v, T *shared, Combine combine) {
  unsigned t = threadIdx.x;
  __syncthreads(); // `shared` may still be read by a previous fold
  shared[t] = v;
  __syncthreads();
  for (unsigned o = blockDim.x / 2; o >= 32; o /= 2) {
    if (t < o)
      shared[t] = combine(shared[t], shared[t + o]);
    __syncthreads();
  }
  if (t < 32) {
    v = shared[t];
    for (unsigned o = 16; o > 0; o /= 2)
      v = combine(v, __shfl_down_sync(0xffffffffu, v, o));
    if (t == 0)
      shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}
#endif

} // namespace apc::kernels::cuda
