// APC_HD marks a function both the CUDA kernels and host code call: the per-element and
// per-row arithmetic of a kernel lives in such functions (in plain headers), so that the
// CPU tests check it against the CPU backend on machines without a GPU, and the kernel
// adds only the launch around it. No CUDA header needed.
#pragma once

#if defined(__CUDACC__)
#define APC_HD __host__ __device__ inline
#else
#define APC_HD inline
#endif
