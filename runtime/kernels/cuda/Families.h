// The CUDA kernel families, one per file; CudaKernels.cpp joins them into the registry
// and gives each the CPU backend's `prepare`.
#pragma once

#include "runtime/kernels/Kernel.h"

#include <vector>

namespace apc::kernels::cuda {

std::vector<KernelInfo> elementwiseKernels(); // Elementwise.cu: add, mul, silu(_grad), ...
std::vector<KernelInfo> normKernels();        // Norm.cu: rms_norm, rms_norm_grad
std::vector<KernelInfo> layoutKernels();      // Layout.cu: transpose, slice, reduce_sum, ...
std::vector<KernelInfo> ropeKernels();        // Rope.cu: rope, rope_grad
std::vector<KernelInfo> embeddingKernels();   // Embedding.cu: embedding, embedding_grad
std::vector<KernelInfo> lossKernels();        // Loss.cu: cross_entropy(_grad), vocab_parallel_*
std::vector<KernelInfo> optimizerKernels();   // Optimizer.cu: grad_norm, adamw
std::vector<KernelInfo> attentionKernels();   // Attention.cu: attention, attention_grad
std::vector<KernelInfo> gemmKernels();        // Gemm.cpp: gemm (cuBLASLt)

} // namespace apc::kernels::cuda
