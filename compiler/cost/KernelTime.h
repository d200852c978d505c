// Seconds of one kernel call on one device: a roofline of the instruction's FLOPs and
// bytes (from the op's cost rule, compiler/rules/) at the device's rate for that kind of
// kernel, with a per-kernel floor. Which rate a kernel name gets is the table below;
// what an op costs stays in its rule.
#pragma once

#include "compiler/cost/Cluster.h"
#include "compiler/lowering/ExecProgram.h"

#include <string>

namespace apc::cost {

// How a kernel's time is modelled.
enum class KernelKind {
  Gemm,          // FLOPs at the GEMM rate for its shape
  Attention,     // FLOPs in tiles: the GEMM rate times the tiles' efficiency
  MemoryBound,   // elementwise, norms, losses, the optimizer: bytes at memory bandwidth
  Collective,    // all_reduce, all_gather, reduce_scatter (CollectiveTime.h)
  PointToPoint,  // send, recv (pipeline transfers)
};
KernelKind kernelKind(const std::string &kernel);

// A GEMM's shape as the model sees it: C[m, n] += A[m, k] B[k, n], batch dims in m.
struct GemmShape {
  double m = 0, n = 0, k = 0;
};

// The device's dense peak for `dtype` ("bf16", "f32"); f32's when the profile has no
// figure for it, the largest one when it lacks f32 too (0: none at all).
double peakFlops(const Device &device, const std::string &dtype);

// The dim at which a GEMM (or an attention tile) runs at half its large-size rate, by
// backend: GPU tensor-core tiles are 64-256 wide ("cuda": 128); CPU BLAS micro-kernels
// are a few registers wide ("cpu": 16).
double halfEfficiencyDim(const std::string &backend);

// Achieved FLOP/s of a GEMM of `shape` in `dtype`: the cluster's measured samples when it
// has some for the dtype (trilinear in log(m, n, k) when they form a full grid, as
// apc calibrate measures, clamped at its edges; else inverse-distance weighted in
// log-shape space), else the peak
// times gemmEfficiency times a penalty for small dims: d / (d + halfEfficiencyDim) per dim.
double gemmFlopsPerSecond(const Cluster &cluster, const GemmShape &shape,
                          const std::string &dtype);

// A measured kernel's rate for one call doing `work` (FLOPs or bytes, as the samples):
// linear in log(work) between samples (sorted by work), the nearest sample's beyond them.
double rateAt(const KernelRate &rate, double work);

// The element type an instruction computes in: its first floating-point output, else input.
const char *computeDType(const lowering::ExecProgram &program,
                         const lowering::ExecInstruction &inst);

// Seconds of a compute or memory kernel (not collectives or transfers): max(FLOPs at the
// kind's rate, bytes at the memory bandwidth, the kernel floor).
double kernelSeconds(const Cluster &cluster, const lowering::ExecProgram &program,
                     const lowering::ExecInstruction &inst, KernelKind kind);

} // namespace apc::cost
