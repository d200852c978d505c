// The compute half of apc calibrate: the CPU backend's kernels, timed.
//
// Every case goes through the kernel's own `prepare` before it is timed, as the executor
// does at load, so a case the kernel would refuse is an error here, not a silent figure.
#include "tools/calibrate/Measure.h"
#include "tools/calibrate/Timing.h"

#include "runtime/kernels/cpu/CpuKernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>

namespace apc::calibrate {
namespace {

using kernels::Attribute;
using kernels::Attributes;
using kernels::TensorView;

struct Operand {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

// One timed call of a kernel: its operands, attributes and the work it does as the
// compiler's cost rules count it (FLOPs; bytes are its operands' sizes).
struct Case {
  std::string kernel;
  std::vector<Operand> inputs, outputs;
  std::vector<Attribute> attrs;
  double flops = 0;
};

Attribute boolAttr(const char *name, bool v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Bool;
  a.b = v;
  return a;
}
Attribute intAttr(const char *name, int64_t v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Int;
  a.i = v;
  return a;
}
Attribute floatAttr(const char *name, double v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Float;
  a.f = v;
  return a;
}
Attribute stringAttr(const char *name, const char *v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::String;
  a.s = v;
  return a;
}

int64_t elements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

// A case's buffers: floats small and random (no denormals, no overflow in exp); ids 1
// (a valid label, and AdamW's 1-based step).
class Buffers {
public:
  explicit Buffers(const Case &c) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (auto [list, views] : {std::pair{&c.inputs, &inputs}, {&c.outputs, &outputs}})
      for (const Operand &o : *list) {
        size_t bytes = size_t(elements(o.shape)) * dtypeSize(o.dtype);
        storage_.emplace_back(new uint64_t[(bytes + 7) / 8 + 1]());
        void *data = storage_.back().get();
        if (o.dtype == DType::F32) {
          float *f = static_cast<float *>(data);
          for (int64_t i = 0; i < elements(o.shape); ++i)
            f[i] = 0.1f * uniform(rng);
        } else if (o.dtype == DType::BF16) {
          uint16_t *h = static_cast<uint16_t *>(data);
          for (int64_t i = 0; i < elements(o.shape); ++i) {
            float v = 0.1f * uniform(rng);
            uint32_t bits;
            std::memcpy(&bits, &v, 4);
            h[i] = uint16_t(bits >> 16);
          }
        } else if (o.dtype == DType::I64) {
          int64_t *ids = static_cast<int64_t *>(data);
          for (int64_t i = 0; i < elements(o.shape); ++i)
            ids[i] = 1;
        }
        views->push_back(TensorView{data, o.dtype, o.shape});
        bytes_ += double(bytes);
      }
  }
  std::vector<TensorView> inputs, outputs;
  double bytes() const { return bytes_; }

private:
  std::vector<std::unique_ptr<uint64_t[]>> storage_;
  double bytes_ = 0;
};

struct Timed {
  double seconds = 0;
  double bytes = 0;
};

// How many copies of a case's buffers the timing cycles through: enough that one cycle
// touches 64 MiB, more than a CPU's last-level cache, so each call finds its operands in
// memory as a training step (whose working set is far larger) mostly does, not in the
// cache the previous call of the same case left them in.
int copiesFor(double bytes) {
  constexpr double kCycleBytes = 64.0 * 1048576.0;
  return int(std::clamp(std::ceil(kCycleBytes / std::max(bytes, 1.0)), 1.0, 64.0));
}

Result<Timed> timeCase(const Case &c, const MeasureOptions &options) {
  const kernels::KernelInfo *info = kernels::findCpuKernel(c.kernel);
  if (!info)
    return Result<Timed>::error("the CPU backend has no kernel '" + c.kernel + "'");
  std::vector<std::unique_ptr<Buffers>> copies;
  copies.push_back(std::make_unique<Buffers>(c));
  for (int i = 1; i < copiesFor(copies[0]->bytes()); ++i)
    copies.push_back(std::make_unique<Buffers>(c));
  Attributes attrs(c.attrs);
  if (Status s = info->prepare(copies[0]->inputs, copies[0]->outputs, attrs); !s)
    return Result<Timed>::error("calibration case of '" + c.kernel + "': " + s.message());
  kernels::KernelContext context;
  context.threads = options.threads;
  Status failed = Status::ok();
  size_t next = 0;
  double seconds = secondsPerRun(
      [&] {
        const Buffers &b = *copies[next];
        next = (next + 1) % copies.size();
        if (Status s = info->run(context, b.inputs, b.outputs, attrs); !s)
          failed = s;
      },
      options.minSeconds);
  if (!failed)
    return Result<Timed>::error("calibration case of '" + c.kernel + "': " + failed.message());
  return Timed{seconds, copies[0]->bytes()};
}

Case gemmCase(int64_t m, int64_t n, int64_t k, DType dtype) {
  Case c;
  c.kernel = "gemm";
  c.inputs = {{dtype, {m, k}}, {dtype, {k, n}}};
  c.outputs = {{dtype, {m, n}}};
  c.attrs = {boolAttr("transpose_a", false), boolAttr("transpose_b", false)};
  c.flops = 2.0 * double(m) * double(n) * double(k);
  return c;
}

// The kernels whose own rates the model uses (KernelTime.cpp), each at sizes from
// cache-resident to DRAM-bound (`scale` 0, 1, 2: 64, 512 and 4096 rows of a 1024-wide
// activation; attention at sequence 128, 512 and 1024). Attention is counted in FLOPs as
// its cost rule counts them, the others in the bytes of their operands.
std::vector<Case> kernelCases(int scale) {
  const int64_t rows = int64_t(64) << (3 * scale), width = 1024;
  const int64_t seq = scale == 0 ? 128 : scale == 1 ? 512 : 1024;
  const int64_t heads = 8, kvHeads = 4, headDim = 64;
  const int64_t lossRows = rows / 4, vocab = 16384;
  const Operand x{DType::F32, {rows, width}};
  const Operand w{DType::F32, {width}};
  const Operand q{DType::F32, {1, seq, heads, headDim}}, kv{DType::F32, {1, seq, kvHeads, headDim}};
  const Operand rope{DType::F32, {rows / 64, 64, width / headDim, headDim}};
  const Operand logits{DType::F32, {lossRows, vocab}}, labels{DType::I64, {lossRows}};
  const Operand scalar{DType::F32, {}}, rowStat{DType::F32, {lossRows}};
  const double attentionFlops = 2.0 * double(heads) * double(seq) * double(seq) * double(headDim);
  std::vector<Attribute> ropeAttrs = {floatAttr("theta", 500000.0), intAttr("position_offset", 0),
                                      stringAttr("rope_type", "default")};
  std::vector<Attribute> lossAttrs = {intAttr("ignore_index", -100), stringAttr("reduction", "mean")};
  return {
      {"add", {x, x}, {x}, {}, 0},
      {"mul", {x, x}, {x}, {}, 0},
      {"silu", {x}, {x}, {}, 0},
      {"silu_grad", {x, x}, {x}, {}, 0},
      {"rms_norm", {x, w}, {x}, {floatAttr("epsilon", 1e-5)}, 0},
      {"rms_norm_grad", {x, w, x}, {x, w}, {floatAttr("epsilon", 1e-5)}, 0},
      {"rope", {rope}, {rope}, ropeAttrs, 0},
      {"rope_grad", {rope}, {rope}, ropeAttrs, 0},
      {"cross_entropy", {logits, labels}, {scalar}, lossAttrs, 0},
      {"cross_entropy_grad", {logits, labels, scalar}, {logits}, lossAttrs, 0},
      // The tensor-parallel loss: one exp per logit as cross_entropy, in three passes.
      {"vocab_parallel_max", {logits}, {rowStat}, {}, 0},
      {"vocab_parallel_stats", {logits, labels, rowStat}, {rowStat, rowStat},
       {intAttr("ignore_index", -100)}, 0},
      {"vocab_parallel_loss_grad", {logits, labels, rowStat, rowStat, scalar}, {logits},
       lossAttrs, 0},
      {"adamw", {x, x, x, x, {DType::I64, {}}, scalar}, {x, x, x}, {}, 0},
      {"grad_norm", {x}, {scalar}, {boolAttr("squared", false)}, 0},
      {"attention", {q, kv, kv}, {q}, {boolAttr("causal", true)}, attentionFlops},
      {"attention_grad", {q, kv, kv, q}, {q, kv, kv}, {boolAttr("causal", true)},
       2.5 * attentionFlops},
  };
}

std::string rateText(double perSecond, const char *unit) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f G%s/s", perSecond / 1e9, unit);
  return text;
}

} // namespace

Result<ComputeMeasurements> measureCompute(const MeasureOptions &options,
                                           const Progress &progress) {
  ComputeMeasurements m;
  // GEMMs over a grid of the dims a transformer's GEMMs take (tokens x hidden x hidden,
  // ... x ffn, ... x vocab): every combination, so the model interpolates inside it.
  std::vector<int64_t> dims = options.quick ? std::vector<int64_t>{64, 512}
                                            : std::vector<int64_t>{32, 128, 512, 2048};
  for (DType dtype : {DType::F32, DType::BF16})
    for (int64_t mDim : dims)
      for (int64_t nDim : dims)
        for (int64_t kDim : dims) {
          Case c = gemmCase(mDim, nDim, kDim, dtype);
          auto timed = timeCase(c, options);
          if (!timed)
            return timed.status();
          cost::GemmSample s{mDim, nDim, kDim, dtypeName(dtype), c.flops / timed->seconds};
          m.gemm.push_back(s);
          progress("gemm " + s.dtype + " " + std::to_string(mDim) + "x" + std::to_string(nDim) +
                   "x" + std::to_string(kDim) + ": " + rateText(s.flopsPerSecond, "FLOP"));
        }
  for (int scale = 0; scale < (options.quick ? 2 : 3); ++scale)
    for (const Case &c : kernelCases(scale)) {
      auto timed = timeCase(c, options);
      if (!timed)
        return timed.status();
      cost::KernelRate &rate = m.kernelRates[c.kernel];
      rate.byFlops = c.flops > 0;
      double work = rate.byFlops ? c.flops : timed->bytes;
      rate.samples.push_back({work, work / timed->seconds});
      char line[128];
      std::snprintf(line, sizeof line, "%s, %.3g %s: %s", c.kernel.c_str(), work,
                    rate.byFlops ? "FLOP" : "bytes",
                    rateText(work / timed->seconds, rate.byFlops ? "FLOP" : "B").c_str());
      progress(line);
    }
  // Memory bandwidth: what the plainest streaming kernel reaches at the largest size; the
  // per-call floor: that kernel on a handful of elements.
  m.memoryBandwidth = m.kernelRates["add"].samples.back().perSecond;
  Case tiny{"add", {{DType::F32, {8}}, {DType::F32, {8}}}, {{DType::F32, {8}}}, {}, 0};
  auto floor = timeCase(tiny, options);
  if (!floor)
    return floor.status();
  m.kernelOverhead = floor->seconds;
  char line[96];
  std::snprintf(line, sizeof line, "kernel call floor: %.2f us", m.kernelOverhead * 1e6);
  progress(line);
  return m;
}

} // namespace apc::calibrate
