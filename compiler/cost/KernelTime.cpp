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

namespace {

// Where `x` falls between the grid values `axis` (sorted): the lower index and the
// fraction of the way to the next in log space, clamped to the grid's ends.
std::pair<size_t, double> bracket(const std::vector<double> &axis, double x) {
  if (axis.size() == 1 || x <= axis.front())
    return {0, 0.0};
  if (x >= axis.back())
    return {axis.size() - 2, 1.0};
  size_t i = 0;
  while (axis[i + 1] < x)
    ++i;
  return {i, std::log(x / axis[i]) / std::log(axis[i + 1] / axis[i])};
}

// Trilinear interpolation in log(m, n, k) when the samples of `dtype` are a full grid
// (every m x n x k of their values, as apc calibrate measures); -1 otherwise.
double gridRate(const std::vector<GemmSample> &all, const GemmShape &shape,
                const std::string &dtype) {
  std::vector<const GemmSample *> samples;
  std::vector<double> ms, ns, ks;
  for (const GemmSample &s : all)
    if (s.dtype == dtype && s.m > 0 && s.n > 0 && s.k > 0 && s.flopsPerSecond > 0) {
      samples.push_back(&s);
      ms.push_back(double(s.m));
      ns.push_back(double(s.n));
      ks.push_back(double(s.k));
    }
  for (std::vector<double> *axis : {&ms, &ns, &ks}) {
    std::sort(axis->begin(), axis->end());
    axis->erase(std::unique(axis->begin(), axis->end()), axis->end());
  }
  if (samples.size() < 2 || ms.size() * ns.size() * ks.size() != samples.size())
    return -1;
  auto index = [&](const std::vector<double> &axis, double v) {
    return size_t(std::lower_bound(axis.begin(), axis.end(), v) - axis.begin());
  };
  std::vector<double> table(samples.size(), -1);
  for (const GemmSample *s : samples)
    table[(index(ms, double(s->m)) * ns.size() + index(ns, double(s->n))) * ks.size() +
          index(ks, double(s->k))] = s->flopsPerSecond;
  for (double v : table)
    if (v < 0)
      return -1; // a shape twice and another missing: not a grid
  auto [mi, mt] = bracket(ms, std::max(shape.m, 1.0));
  auto [ni, nt] = bracket(ns, std::max(shape.n, 1.0));
  auto [ki, kt] = bracket(ks, std::max(shape.k, 1.0));
  double rate = 0;
  for (int dm = 0; dm < 2; ++dm)
    for (int dn = 0; dn < 2; ++dn)
      for (int dk = 0; dk < 2; ++dk) {
        double w = (dm ? mt : 1 - mt) * (dn ? nt : 1 - nt) * (dk ? kt : 1 - kt);
        if (w == 0)
          continue;
        size_t a = std::min(mi + dm, ms.size() - 1), b = std::min(ni + dn, ns.size() - 1),
               c = std::min(ki + dk, ks.size() - 1);
        rate += w * table[(a * ns.size() + b) * ks.size() + c];
      }
  return rate;
}

} // namespace

double gemmFlopsPerSecond(const Cluster &cluster, const GemmShape &shape,
                          const std::string &dtype) {
  const Device &device = cluster.device;
  if (double rate = gridRate(device.gemm, shape, dtype); rate > 0)
    return rate;
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
