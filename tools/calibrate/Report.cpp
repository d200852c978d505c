#include "tools/calibrate/Report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace apc::calibrate {
namespace {

std::string format(const char *fmt, double a, double b = 0, double c = 0) {
  char text[160];
  std::snprintf(text, sizeof text, fmt, a, b, c);
  return text;
}

} // namespace

MachineFacts thisMachine() {
  MachineFacts facts;
  facts.cores = int(std::max(1u, std::thread::hardware_concurrency()));
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      facts.cpuModel = line.substr(line.find(':') + 1);
      facts.cpuModel.erase(0, facts.cpuModel.find_first_not_of(' '));
      break;
    }
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);)
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream fields(line.substr(9));
      double kib = 0;
      fields >> kib;
      facts.memoryBytes = kib * 1024;
      break;
    }
  return facts;
}

Result<cost::Cluster> buildCluster(const std::string &name, const MachineFacts &machine,
                                   const comm::ProcessInfo &process,
                                   const MeasureOptions &options,
                                   const ComputeMeasurements &compute,
                                   const std::vector<cost::CollectiveSample> &collectives,
                                   double collectiveSyncSeconds) {
  using R = Result<cost::Cluster>;
  // What is not measured (the other node's network, the usable share of memory) comes
  // from the built-in cpu profile, said so in the sources.
  if (process.worldSize != process.localWorldSize)
    return R::error("calibrate measures one machine: the job has " +
                    std::to_string(process.worldSize) + " ranks but " +
                    std::to_string(process.localWorldSize) +
                    " on this machine (run apc calibrate --nproc N on one machine)");
  auto base = cost::resolveCluster("cpu:1");
  if (!base)
    return base;
  cost::Cluster c = *base;
  c.sources.clear();
  c.spec.clear();
  c.profile = name;
  c.backend = "cpu";
  c.devicesPerNode = process.localWorldSize;
  c.nodes = 1;
  std::string what = std::to_string(options.threads) + " thread" +
                     (options.threads == 1 ? "" : "s");
  c.device.name = (machine.cpuModel.empty() ? std::string("CPU") : machine.cpuModel) +
                  ", one process of " + std::to_string(process.localWorldSize) + " with " +
                  what;
  const std::string measured = "measured by apc calibrate (" +
                               std::to_string(process.localWorldSize) + " rank" +
                               (process.localWorldSize == 1 ? "" : "s") + " of " + what +
                               " at once)";
  c.sources["device"] = measured + "; valid for aprun jobs of as many ranks and threads";
  for (const char *dtype : {"f32", "bf16"}) {
    double best = 0;
    for (const cost::GemmSample &s : compute.gemm)
      if (s.dtype == dtype)
        best = std::max(best, s.flopsPerSecond);
    if (!(best > 0))
      return R::error(std::string("no GEMM rate was measured for ") + dtype);
    c.device.peakFlops[dtype] = best;
    c.sources[std::string("device.peak_flops.") + dtype] =
        "measured: the best GEMM rate of the grid (so MFU is against what OpenBLAS reaches "
        "here, not a datasheet peak)";
  }
  if (!(compute.memoryBandwidth > 0))
    return R::error("no memory bandwidth was measured");
  c.device.memoryBandwidth = compute.memoryBandwidth;
  c.sources["device.memory_bandwidth"] = "measured: the add kernel streaming 3 buffers of "
                                         "tens of MiB";
  if (machine.memoryBytes > 0) {
    c.device.memoryBytes = machine.memoryBytes / double(process.localWorldSize);
    c.sources["device.memory_bytes"] = "/proc/meminfo MemTotal shared among the ranks";
  } else {
    c.sources["device.memory_bytes"] = "assumption: the cpu profile's (MemTotal unreadable)";
  }
  c.sources["device.usable_memory_fraction"] =
      "assumption: the system and other programs keep a quarter";
  c.device.gemmEfficiency = 1.0;
  c.device.memoryEfficiency = 1.0;
  c.sources["device.gemm_efficiency"] = "1: the GEMM samples are achieved rates";
  c.sources["device.memory_efficiency"] = "1: the memory bandwidth is an achieved rate";
  c.device.kernelOverheadSeconds = compute.kernelOverhead;
  c.sources["device.kernel_overhead_seconds"] = "measured: the add kernel on 8 elements";
  c.device.gemm = compute.gemm;
  c.sources["device.gemm"] = "measured: OpenBLAS through the gemm kernel, every m x n x k of "
                             "the grid, f32 and bf16";
  c.device.kernelRates = compute.kernelRates;
  c.sources["device.kernel_rates"] =
      "measured: each kernel on a small transformer's shapes (attention by FLOPs as the "
      "cost rules count them, the others by the bytes of their operands)";
  c.collectives = collectives;
  cost::Link link = fitLink(collectives);
  if (link.bytesPerSecond > 0) {
    c.intraNode = link;
    c.sources["links.intra_node"] = "fitted to the measured ring all-reduce (Gloo between "
                                    "the local ranks): bandwidth from the two largest sizes, "
                                    "latency from the smallest";
    c.sources["collectives"] = "measured: Gloo between the local ranks, the slowest rank's "
                               "mean time";
    c.collectiveSyncSeconds = collectiveSyncSeconds;
    c.sources["collective_sync_seconds"] =
        "measured: a 4 KiB all-reduce after a few ms of work on every rank, less the same "
        "back to back (the ranks' mean)";
  } else {
    c.sources["links.intra_node"] = "assumption: the cpu profile's (one rank: no collective "
                                    "was measured; run with --nproc N)";
  }
  c.sources["links.inter_node"] = "assumption: the cpu profile's 10 Gb Ethernet (one machine "
                                  "measures no network)";
  c.sources["collective_algorithm"] = "Gloo's allreduce is a ring";
  c.sources["overlap_communication"] = "Gloo calls block the rank: no overlap with compute";
  return c;
}

std::string summaryTable(const cost::Cluster &c) {
  std::string t = "\nsummary (" + c.device.name + ")\n";
  for (const char *dtype : {"f32", "bf16"}) {
    std::vector<double> rates;
    for (const cost::GemmSample &s : c.device.gemm)
      if (s.dtype == dtype)
        rates.push_back(s.flopsPerSecond);
    if (rates.empty())
      continue;
    std::sort(rates.begin(), rates.end());
    char line[160];
    std::snprintf(line, sizeof line,
                  "  gemm %-4s            best %7.1f GFLOP/s, median %7.1f, worst %7.1f\n",
                  dtype, rates.back() / 1e9, rates[rates.size() / 2] / 1e9,
                  rates.front() / 1e9);
    t += line;
  }
  t += format("  memory bandwidth     %7.2f GB/s\n", c.device.memoryBandwidth / 1e9);
  t += format("  kernel call floor    %7.2f us\n", c.device.kernelOverheadSeconds * 1e6);
  for (const auto &[kernel, rate] : c.device.kernelRates) {
    std::string line = "  " + kernel + std::string(kernel.size() < 20 ? 20 - kernel.size() : 0, ' ');
    for (const cost::RateSample &sample : rate.samples)
      line += format(" %7.2f", sample.perSecond / 1e9);
    t += line + (rate.byFlops ? " GFLOP/s" : " GB/s") + " (small to large)\n";
  }
  const cost::CollectiveSample *largest[4] = {};
  const char *kinds[4] = {"all_reduce", "all_gather", "reduce_scatter", "send_recv"};
  for (const cost::CollectiveSample &s : c.collectives)
    for (int k = 0; k < 4; ++k)
      if (s.kind == kinds[k] && (!largest[k] || s.bytes > largest[k]->bytes))
        largest[k] = &s;
  for (int k = 0; k < 4; ++k)
    if (largest[k]) {
      char line[160];
      std::snprintf(line, sizeof line, "  %-20s %7.2f GB/s at %lld MiB over %lld ranks\n",
                    kinds[k], double(largest[k]->bytes) / largest[k]->seconds / 1e9,
                    (long long)(largest[k]->bytes >> 20), (long long)largest[k]->ranks);
      t += line;
    }
  if (!c.collectives.empty())
    t += format("  link (fitted)        %7.2f GB/s, latency %.1f us\n",
                c.intraNode.bytesPerSecond / 1e9, c.intraNode.latencySeconds * 1e6);
  if (!c.collectives.empty())
    t += format("  collective sync      %7.1f us (a collective reached from compute)\n",
                c.collectiveSyncSeconds * 1e6);
  return t;
}

} // namespace apc::calibrate
