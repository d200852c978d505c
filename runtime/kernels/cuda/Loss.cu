// The causal-LM loss on CUDA: cross_entropy, cross_entropy_grad, count_kept and the
// vocabulary-parallel kernels (vocab_parallel_max, _stats, _loss, _loss_grad), with the
// CPU backend's semantics (cpu/Loss.cpp). Row work takes one block per row: a max pass,
// a pass summing exp(x - max) in double, a gradient pass; each combines its threads in
// BlockFold.h's fixed order. The labels are scanned by one block (kept count, first bad
// label, the sum of the rows' losses in a fixed order), so every result is deterministic.
// LossMath.h holds the arithmetic, which the host tests check against the CPU backend.
#include "runtime/kernels/cuda/BlockFold.h"
#include "runtime/kernels/cuda/CudaKernels.h"
#include "runtime/kernels/cuda/DeviceCommon.cuh"
#include "runtime/kernels/cuda/Families.h"
#include "runtime/kernels/cuda/LossMath.h"

#include <climits>

namespace apc::kernels::cuda {
namespace {

using namespace loss;

// rowLaunch's largest block; kernels are bounded to it so that they never ask more
// registers than a block of 1024 threads can have.
constexpr int kMaxRowThreads = 1024;

// ---- Device: a row's statistics ------------------------------------------------------

template <typename T> __device__ float rowMaxOf(const T *row, int64_t vocab, float *shared) {
  float m = negativeInfinity();
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    m = Max()(m, Storage<T>::load(row[i]));
  return blockFold(m, shared, Max());
}

template <typename T>
__device__ double rowSumExp(const T *row, int64_t vocab, float rowMax, double *shared) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    s += expTerm(Storage<T>::load(row[i]), rowMax);
  return blockFold(s, shared, Plus());
}

// ---- Device: row kernels ---------------------------------------------------------------

// cross_entropy's rows: each kept row's loss into `losses` (ignored and bad rows are the
// label scan's).
template <typename T, typename Id>
__global__ void __launch_bounds__(kMaxRowThreads)
    crossEntropyRows(const T *x, const Id *labels, double *losses, int64_t vocab, int64_t ignore) {
  __shared__ float maxes[kMaxRowThreads];
  __shared__ double sums[kMaxRowThreads];
  int64_t row = blockIdx.x, label = int64_t(labels[row]);
  if (label == ignore || isBadLabel(label, ignore, vocab))
    return;
  const T *xr = x + row * vocab;
  float m = rowMaxOf(xr, vocab, maxes);
  double s = rowSumExp(xr, vocab, m, sums);
  if (threadIdx.x == 0)
    losses[row] = rowLoss(m, s, Storage<T>::load(xr[label]));
}

// The softmax gradient rows of cross_entropy_grad (whole rows, start 0, each row's own
// max and sum) and vocab_parallel_loss_grad (a block of the vocabulary from `start`, the
// whole rows' max and sum given): (softmax - one-hot) x weight, zero where ignored.
// Nothing is written when the label scan found a bad label (the run is refused).
template <typename T, typename Id>
__global__ void __launch_bounds__(kMaxRowThreads)
    softmaxGradRows(const T *x, T *dx, const Id *labels, const LabelReport *report,
                    const float *rowMaxIn, const float *rowSumIn, int64_t vocab, int64_t ignore,
                    int64_t start) {
  __shared__ float maxes[kMaxRowThreads];
  __shared__ double sums[kMaxRowThreads];
  if (report->badPosition >= 0)
    return;
  int64_t row = blockIdx.x, label = int64_t(labels[row]);
  const T *xr = x + row * vocab;
  T *dr = dx + row * vocab;
  if (label == ignore) {
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      dr[i] = Storage<T>::store(0.0f);
    return;
  }
  double weight = report->weight;
  // Both passes end in a block-wide fold, so in place (dx == x) is safe: the row is read
  // whole before the last pass writes it, each element by the thread that read it.
  float m = rowMaxIn ? rowMaxIn[row] : rowMaxOf(xr, vocab, maxes);
  double s = rowSumIn ? double(rowSumIn[row]) : rowSumExp(xr, vocab, m, sums);
  float scale = softmaxScale(weight, s);
  int64_t column = localColumn(label, ignore, start, vocab);
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float e = expF32(Storage<T>::load(xr[i]) - m);
    dr[i] =
        Storage<T>::store(i == column ? targetGradValue(e, scale, weight) : gradValue(e, scale));
  }
}

template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    rowMaxRows(const T *x, float *rowMax, int64_t vocab) {
  __shared__ float maxes[kMaxRowThreads];
  float m = rowMaxOf(x + int64_t(blockIdx.x) * vocab, vocab, maxes);
  if (threadIdx.x == 0)
    rowMax[blockIdx.x] = m;
}

// vocab_parallel_stats: sum exp(x - row_max) over this block's columns, and the label's
// logit where this block holds it (0 elsewhere).
template <typename T, typename Id>
__global__ void __launch_bounds__(kMaxRowThreads)
    statsRows(const T *x, const Id *labels, const float *rowMax, float *sumExp, float *target,
              int64_t vocab, int64_t ignore, int64_t start) {
  __shared__ double sums[kMaxRowThreads];
  int64_t row = blockIdx.x;
  const T *xr = x + row * vocab;
  double s = rowSumExp(xr, vocab, rowMax[row], sums);
  if (threadIdx.x == 0) {
    int64_t column = localColumn(int64_t(labels[row]), ignore, start, vocab);
    target[row] = column >= 0 ? Storage<T>::load(xr[column]) : 0.0f;
    sumExp[row] = float(s);
  }
}

// ---- Device: the label scan --------------------------------------------------------------

// One block, rows t, t + T, ... per thread (LossMath.h), folded in BlockFold.h's order.
template <typename Id>
__global__ void __launch_bounds__(kLabelThreads) scanLabels(const Id *labels, ScanArgs a) {
  __shared__ double sums[kLabelThreads];
  __shared__ int64_t counts[kLabelThreads];
  ScanPartial p = scanThread(labels, a, threadIdx.x, blockDim.x);
  p.total = blockFold(p.total, sums, Plus());
  p.kept = blockFold(p.kept, counts, Plus());
  p.firstBad = blockFold(p.firstBad, counts, Min());
  if (threadIdx.x == 0)
    scanFinish(labels, a, p);
}

// ---- Host --------------------------------------------------------------------------------

template <typename F> void dispatchId(DType dtype, F &&f) {
  if (dtype == DType::I32)
    f(int32_t{});
  else
    f(int64_t{});
}

int64_t rowsOf(const TensorView &v) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < v.shape.size(); ++d)
    rows *= v.shape[d];
  return rows;
}

Status checkWorkspace(const char *kernel, const KernelContext &context, uint64_t need) {
  if (context.workspaceBytes >= need && (need == 0 || context.workspace))
    return Status::ok();
  return Status::error(std::string(kernel) + " needs " + std::to_string(need) +
                       " bytes of workspace; the backend gave " +
                       std::to_string(context.workspaceBytes));
}

// A grid's x dimension holds the rows.
Status checkRows(const char *kernel, int64_t rows) {
  if (rows <= INT32_MAX)
    return Status::ok();
  return Status::error(std::string(kernel) + ": " + std::to_string(rows) +
                       " rows are more than the CUDA kernel handles (2147483647)");
}

// Refuses a bad label as the CPU backend does. The report is on the device, so this
// reads it back: one synchronization of the stream per call (cross_entropy and
// cross_entropy_grad only; the vocabulary-parallel kernels do not range-check labels).
Status refuseBadLabel(const char *kernel, const KernelContext &context, const LabelReport *report,
                      const TensorView &labels, int64_t vocab) {
  LabelReport host{};
  cudaStream_t stream = streamOf(context);
  cudaError_t e = cudaMemcpyAsync(&host, report, sizeof host, cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess)
    return Status::error(std::string(kernel) + ": reading the label check back failed: " +
                         cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  if (host.badPosition < 0)
    return Status::ok();
  return Status::error(
      badLabelMessage(kernel, labels.shape, host.badPosition, host.badLabel, vocab));
}

const float *optionalScalar(const std::vector<TensorView> &in, size_t index) {
  return in.size() > index ? in[index].as<const float>() : nullptr;
}

uint64_t crossEntropyWorkspaceOf(const std::vector<TensorView> &in, const std::vector<TensorView> &,
                                 const Attributes &) {
  return crossEntropyWorkspace(rowsOf(in[0]));
}

uint64_t reportWorkspaceOf(const std::vector<TensorView> &, const std::vector<TensorView> &,
                           const Attributes &) {
  return kReportBytes;
}

Status runCrossEntropy(const KernelContext &context, const std::vector<TensorView> &in,
                       const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits);
  APC_RETURN_IF_ERROR(checkRows("cross_entropy", rows));
  APC_RETURN_IF_ERROR(checkWorkspace("cross_entropy", context, crossEntropyWorkspace(rows)));
  auto *report = static_cast<LabelReport *>(context.workspace);
  auto *losses = reinterpret_cast<double *>(static_cast<char *>(context.workspace) + kReportBytes);
  ScanArgs scan;
  scan.rows = rows;
  scan.vocab = vocab;
  scan.ignore = attrs.getInt("ignore_index", -100);
  scan.validate = true;
  scan.mean = attrs.getString("reduction", "mean") == "mean";
  scan.losses = losses;
  scan.keptCount = optionalScalar(in, 2);
  scan.loss = out[0].as<float>();
  scan.report = report;
  Launch launch = rowsLaunch(rows, vocab);
  cudaStream_t stream = streamOf(context);
  dispatchId(labels.dtype, [&](auto id) {
    using Id = decltype(id);
    const Id *label = labels.as<const Id>();
    if (launch.blocks > 0 && vocab > 0)
      dispatchFloat(logits.dtype, [&](auto zero) {
        using T = decltype(zero);
        crossEntropyRows<<<launch.blocks, launch.threads, 0, stream>>>(logits.as<const T>(), label,
                                                                       losses, vocab, scan.ignore);
      });
    scanLabels<<<1, kLabelThreads, 0, stream>>>(label, scan);
  });
  APC_RETURN_IF_ERROR(launched("cross_entropy"));
  return refuseBadLabel("cross_entropy", context, report, labels, vocab);
}

// The gradient kernels: the label scan's weight, then the rows.
Status runSoftmaxGrad(const char *kernel, const KernelContext &context, const TensorView &logits,
                      const TensorView &labels, const TensorView &gradLogits, ScanArgs scan,
                      const float *rowMax, const float *rowSum, int64_t start) {
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits);
  APC_RETURN_IF_ERROR(checkRows(kernel, rows));
  APC_RETURN_IF_ERROR(checkWorkspace(kernel, context, kReportBytes));
  scan.rows = rows;
  scan.vocab = vocab;
  scan.report = static_cast<LabelReport *>(context.workspace);
  Launch launch = rowsLaunch(rows, vocab);
  cudaStream_t stream = streamOf(context);
  dispatchId(labels.dtype, [&](auto id) {
    using Id = decltype(id);
    const Id *label = labels.as<const Id>();
    scanLabels<<<1, kLabelThreads, 0, stream>>>(label, scan);
    if (launch.blocks > 0 && vocab > 0)
      dispatchFloat(logits.dtype, [&](auto zero) {
        using T = decltype(zero);
        softmaxGradRows<<<launch.blocks, launch.threads, 0, stream>>>(
            logits.as<const T>(), gradLogits.as<T>(), label, scan.report, rowMax, rowSum, vocab,
            scan.ignore, start);
      });
  });
  APC_RETURN_IF_ERROR(launched(kernel));
  if (!scan.validate)
    return Status::ok();
  return refuseBadLabel(kernel, context, scan.report, labels, vocab);
}

Status runCrossEntropyGrad(const KernelContext &context, const std::vector<TensorView> &in,
                           const std::vector<TensorView> &out, const Attributes &attrs) {
  ScanArgs scan;
  scan.ignore = attrs.getInt("ignore_index", -100);
  scan.validate = true;
  scan.mean = attrs.getString("reduction", "mean") == "mean";
  scan.gradLoss = in[2].as<const float>();
  scan.keptCount = optionalScalar(in, 3);
  return runSoftmaxGrad("cross_entropy_grad", context, in[0], in[1], out[0], scan, nullptr, nullptr,
                        0);
}

Status runVocabParallelLossGrad(const KernelContext &context, const std::vector<TensorView> &in,
                                const std::vector<TensorView> &out, const Attributes &attrs) {
  ScanArgs scan;
  scan.ignore = attrs.getInt("ignore_index", -100);
  scan.mean = attrs.getString("reduction", "mean") == "mean";
  scan.gradLoss = in[4].as<const float>();
  scan.keptCount = optionalScalar(in, 5);
  return runSoftmaxGrad("vocab_parallel_loss_grad", context, in[0], in[1], out[0], scan,
                        in[2].as<const float>(), in[3].as<const float>(),
                        attrs.getInt("vocab_start", 0));
}

Status runCountKept(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  ScanArgs scan;
  scan.rows = in[0].numElements();
  scan.ignore = attrs.getInt("ignore_index", -100);
  scan.count = out[0].as<float>();
  dispatchId(in[0].dtype, [&](auto id) {
    using Id = decltype(id);
    scanLabels<<<1, kLabelThreads, 0, streamOf(context)>>>(in[0].as<const Id>(), scan);
  });
  return launched("count_kept");
}

Status runVocabParallelMax(const KernelContext &context, const std::vector<TensorView> &in,
                           const std::vector<TensorView> &out, const Attributes &) {
  int64_t vocab = in[0].shape.back(), rows = rowsOf(in[0]);
  APC_RETURN_IF_ERROR(checkRows("vocab_parallel_max", rows));
  Launch launch = rowsLaunch(rows, vocab);
  if (launch.blocks == 0)
    return Status::ok();
  dispatchFloat(in[0].dtype, [&](auto zero) {
    using T = decltype(zero);
    rowMaxRows<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(in[0].as<const T>(),
                                                                        out[0].as<float>(), vocab);
  });
  return launched("vocab_parallel_max");
}

Status runVocabParallelStats(const KernelContext &context, const std::vector<TensorView> &in,
                             const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits);
  APC_RETURN_IF_ERROR(checkRows("vocab_parallel_stats", rows));
  Launch launch = rowsLaunch(rows, vocab);
  if (launch.blocks == 0)
    return Status::ok();
  int64_t ignore = attrs.getInt("ignore_index", -100), start = attrs.getInt("vocab_start", 0);
  dispatchId(labels.dtype, [&](auto id) {
    using Id = decltype(id);
    dispatchFloat(logits.dtype, [&](auto zero) {
      using T = decltype(zero);
      statsRows<<<launch.blocks, launch.threads, 0, streamOf(context)>>>(
          logits.as<const T>(), labels.as<const Id>(), in[2].as<const float>(), out[0].as<float>(),
          out[1].as<float>(), vocab, ignore, start);
    });
  });
  return launched("vocab_parallel_stats");
}

Status runVocabParallelLoss(const KernelContext &context, const std::vector<TensorView> &in,
                            const std::vector<TensorView> &out, const Attributes &attrs) {
  ScanArgs scan;
  scan.rows = in[3].numElements();
  scan.ignore = attrs.getInt("ignore_index", -100);
  scan.mean = attrs.getString("reduction", "mean") == "mean";
  scan.rowMax = in[0].as<const float>();
  scan.sumExp = in[1].as<const float>();
  scan.target = in[2].as<const float>();
  scan.keptCount = optionalScalar(in, 4);
  scan.loss = out[0].as<float>();
  dispatchId(in[3].dtype, [&](auto id) {
    using Id = decltype(id);
    scanLabels<<<1, kLabelThreads, 0, streamOf(context)>>>(in[3].as<const Id>(), scan);
  });
  return launched("vocab_parallel_loss");
}

} // namespace

std::vector<KernelInfo> lossKernels() {
  return {
      {"cross_entropy", runCrossEntropy, nullptr, crossEntropyWorkspaceOf},
      {"cross_entropy_grad", runCrossEntropyGrad, nullptr, reportWorkspaceOf},
      {"count_kept", runCountKept, nullptr},
      {"vocab_parallel_max", runVocabParallelMax, nullptr},
      {"vocab_parallel_stats", runVocabParallelStats, nullptr},
      {"vocab_parallel_loss", runVocabParallelLoss, nullptr},
      {"vocab_parallel_loss_grad", runVocabParallelLossGrad, nullptr, reportWorkspaceOf},
  };
}

} // namespace apc::kernels::cuda
