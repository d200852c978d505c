// apc calibrate's measurements of this machine, one rank's view: the runtime's own CPU
// kernels (OpenBLAS GEMMs, attention, the memory-bound kernels) timed on the shapes a
// transformer step runs, and the collectives of the runtime's communicator (Gloo) timed
// between the job's processes. MLIR-free: these are the runtime's kernels and comms.
#pragma once

#include "compiler/cost/Cluster.h"
#include "runtime/support/Status.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace apc::comm {
class Communicator;
}

namespace apc::calibrate {

struct MeasureOptions {
  int threads = 1;          // the kernels' threads (aprun's default per rank)
  double minSeconds = 0.05; // time each case at least this long (and at least 3 runs)
  bool quick = false;       // fewer and smaller cases (tests, a first look)
};

// One line of progress ("gemm f32 512x512x512: 38.2 GFLOP/s").
using Progress = std::function<void(const std::string &line)>;

struct ComputeMeasurements {
  std::vector<cost::GemmSample> gemm;
  std::map<std::string, cost::KernelRate> kernelRates; // by kernel name
  double memoryBandwidth = 0;    // bytes/s the streaming `add` kernel reaches
  double kernelOverhead = 0;     // seconds of a kernel call on a handful of elements
};

// Times the CPU backend's kernels with `options.threads` threads. Every rank of a job
// runs this at once, so each sees the cores, caches and memory bandwidth shared as in
// training. Errors: a kernel refusing its case (a build defect, named).
Result<ComputeMeasurements> measureCompute(const MeasureOptions &options,
                                           const Progress &progress);

// Times all_reduce, all_gather, reduce_scatter (the whole world) and send/recv (ranks 0
// and 1) over `world` at sizes from 4 KiB up, as the cost model counts bytes
// (compiler/cost/CollectiveTime.h). Every rank calls it; the samples are the slowest
// rank's time. A world of one rank measures nothing.
Result<std::vector<cost::CollectiveSample>> measureCollectives(comm::Communicator &world,
                                                               const MeasureOptions &options,
                                                               const Progress &progress);

// Seconds a blocking collective costs beyond its transfer when the ranks come to it from
// compute (cost::Cluster::collectiveSyncSeconds): a small all-reduce timed after a few
// milliseconds of work on every rank, less the same all-reduce back to back. Every rank
// calls it; 0 for a world of one rank.
Result<double> measureCollectiveSync(comm::Communicator &world, const MeasureOptions &options,
                                     const Progress &progress);

// The link (bandwidth, latency) that best explains `samples` of the ring all-reduce
// (least squares of seconds against the ring's alpha and beta terms); zeros when there
// are fewer than two usable samples.
cost::Link fitLink(const std::vector<cost::CollectiveSample> &samples);

} // namespace apc::calibrate
