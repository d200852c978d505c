#include "compiler/cost/KernelTime.h"

#include <algorithm>
#include <cmath>

namespace apc::cost {
namespace {

double dimEfficiency(double d, double half) { return d > 0 ? d / (d + half) : 0; }

int64_t product(const std::vector<int64_t> &shape, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to && i < shape.size(); ++i)
    n *= shape[i];
  return n;
}

bool isFloat(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

GemmShape gemmShapeOf(const lowering::ExecProgram &program,
                      const lowering::ExecInstruction &inst) {
  GemmShape s;
  if (inst.outputs.empty())
    return s;
  const auto &out = program.buffers[size_t(inst.outputs[0])].shape;
  if (out.empty())
    return s;
  s.n = double(out.back());
  s.m = double(product(out, 0, out.size() - 1));
  s.k = s.m > 0 && s.n > 0 ? inst.flops / (2 * s.m * s.n) : 0;
  return s;
}

// The attention tile shape: query positions and head dim of q [batch, seq, heads, dim].
double attentionTileEfficiency(const lowering::ExecProgram &program,
                               const lowering::ExecInstruction &inst, double half) {
  if (inst.inputs.empty())
    return 1;
  const auto &q = program.buffers[size_t(inst.inputs[0])].shape;
  if (q.size() != 4)
    return 1;
  return dimEfficiency(double(q[1]), half) * dimEfficiency(double(q[3]), half);
}

const KernelRate *measuredRate(const Device &device, const std::string &kernel) {
  auto it = device.kernelRates.find(kernel);
  return it == device.kernelRates.end() || it->second.samples.empty() ? nullptr : &it->second;
}

} // namespace

double rateAt(const KernelRate &rate, double work) {
  const std::vector<RateSample> &s = rate.samples; // sorted by work
  if (s.empty())
    return 0;
  if (work <= s.front().work)
    return s.front().perSecond;
  if (work >= s.back().work)
    return s.back().perSecond;
  size_t hi = 1;
  while (s[hi].work < work)
    ++hi;
  const RateSample &a = s[hi - 1], &b = s[hi];
  double t = std::log(work / a.work) / std::log(b.work / a.work);
  return a.perSecond + t * (b.perSecond - a.perSecond);
}

KernelKind kernelKind(const std::string &kernel) {
  if (kernel == "gemm")
    return KernelKind::Gemm;
  if (kernel == "attention" || kernel == "attention_grad")
    return KernelKind::Attention;
  if (kernel == "all_reduce" || kernel == "all_gather" || kernel == "reduce_scatter")
    return KernelKind::Collective;
  if (kernel == "send" || kernel == "recv")
    return KernelKind::PointToPoint;
  return KernelKind::MemoryBound; // all_slice too: a local copy
}

double peakFlops(const Device &device, const std::string &dtype) {
  if (auto it = device.peakFlops.find(dtype); it != device.peakFlops.end())
    return it->second;
  if (auto it = device.peakFlops.find("f32"); it != device.peakFlops.end())
    return it->second;
  double best = 0;
  for (const auto &[name, flops] : device.peakFlops)
    best = std::max(best, flops);
  return best;
}

double halfEfficiencyDim(const std::string &backend) { return backend == "cpu" ? 16 : 128; }

double gemmFlopsPerSecond(const Cluster &cluster, const GemmShape &shape,
                          const std::string &dtype) {
  const Device &device = cluster.device;
  double weights = 0, weighted = 0;
  for (const GemmSample &sample : device.gemm) {
    if (sample.dtype != dtype || sample.m <= 0 || sample.n <= 0 || sample.k <= 0 ||
        !(sample.flopsPerSecond > 0))
      continue;
    double distance = std::fabs(std::log(std::max(shape.m, 1.0) / double(sample.m))) +
                      std::fabs(std::log(std::max(shape.n, 1.0) / double(sample.n))) +
                      std::fabs(std::log(std::max(shape.k, 1.0) / double(sample.k)));
    if (distance < 1e-9)
      return sample.flopsPerSecond;
    double w = 1.0 / (distance * distance);
    weights += w;
    weighted += w * sample.flopsPerSecond;
  }
  if (weights > 0)
    return weighted / weights;
  double half = halfEfficiencyDim(cluster.backend);
  return peakFlops(device, dtype) * device.gemmEfficiency * dimEfficiency(shape.m, half) *
         dimEfficiency(shape.n, half) * dimEfficiency(shape.k, half);
}

const char *computeDType(const lowering::ExecProgram &program,
                         const lowering::ExecInstruction &inst) {
  for (const std::vector<int> *list : {&inst.outputs, &inst.inputs})
    for (int b : *list)
      if (isFloat(program.buffers[size_t(b)].dtype))
        return dtypeName(program.buffers[size_t(b)].dtype);
  return "f32";
}

double kernelSeconds(const Cluster &cluster, const lowering::ExecProgram &program,
                     const lowering::ExecInstruction &inst, KernelKind kind) {
  const Device &device = cluster.device;
  std::string dtype = computeDType(program, inst);
  double bytes = inst.bytesRead + inst.bytesWritten;
  double rate = peakFlops(device, dtype);
  double bandwidth = device.memoryBandwidth * device.memoryEfficiency;
  // A kernel measured on this machine (apc calibrate) runs at its measured rate for its
  // size; an unmeasured memory-bound one at the streaming `add` kernel's for its bytes.
  const KernelRate *own = measuredRate(device, inst.kernel);
  if (!own && kind == KernelKind::MemoryBound)
    own = measuredRate(device, "add");
  if (kind == KernelKind::Gemm)
    rate = gemmFlopsPerSecond(cluster, gemmShapeOf(program, inst), dtype);
  else if (own && own->byFlops)
    rate = rateAt(*own, inst.flops);
  else if (kind == KernelKind::Attention)
    rate *= device.gemmEfficiency *
            attentionTileEfficiency(program, inst, halfEfficiencyDim(cluster.backend));
  if (own && !own->byFlops)
    bandwidth = rateAt(*own, bytes);
  double compute = inst.flops > 0 && rate > 0 ? inst.flops / rate : 0;
  double memory = bytes > 0 && bandwidth > 0 ? bytes / bandwidth : 0;
  return std::max({compute, memory, device.kernelOverheadSeconds});
}

} // namespace apc::cost
