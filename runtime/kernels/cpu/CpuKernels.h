// The CPU backend: one kernel per `ap` op the executor runs, looked up by name.
//
// Kernel names, operand order and attribute names are those of the ap op (ApOps.td),
// except `gemm`, which serves both ap.matmul and ap.linear: inputs (a, b), output c,
// attributes transpose_a / transpose_b (default false); a is [batch..., M, K] (or
// [batch..., K, M] with transpose_a), b is [batch..., K, N] (or [batch..., N, K] with
// transpose_b), or b has rank 2 and a rank >= 2 without transpose_a, in which case a's
// leading dims flatten into M (ap.linear: x [B, S, in] times w [out, in] with
// transpose_b = true).
//
// The vocabulary-parallel kernels (embedding, embedding_grad, vocab_parallel_stats,
// vocab_parallel_loss_grad) take an optional Int attribute `vocab_start`, the first
// global vocabulary id of the block this device holds: the plan's instruction keeps
// `vocab_shard_axis` and `vocab_shard_rows`, and the executor gives each device its
// start from its mesh coordinate (runtime/plan/DeviceProgram.h). grad_norm takes an optional Bool `squared` (the sum of squares, no root).
//
// Kernels compute in f32 (double for reductions and statistics) and round results to
// the output dtype once, to nearest even. Results do not depend on
// KernelContext::threads except gemm's (OpenBLAS may split work differently; the
// difference is within f32 rounding). Elementwise kernels (silu, silu_grad, sqrt, add, mul,
// same-width cast, rope, rope_grad, adamw) accept outputs that are exactly the memory
// of an input of the same shape (in-place update); adamw's outputs may be its param,
// exp_avg and exp_avg_sq buffers.
#pragma once

#include "runtime/kernels/Kernel.h"

#include <string_view>
#include <vector>

namespace apc::kernels {

// The kernel called `name`, or nullptr.
const KernelInfo *findCpuKernel(std::string_view name);

// Every kernel of the backend.
const std::vector<KernelInfo> &cpuKernels();

} // namespace apc::kernels
