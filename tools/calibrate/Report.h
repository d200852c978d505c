// apc calibrate's results as a cluster file (compiler/cost/Cluster.h) and as a table.
#pragma once

#include "compiler/cost/Cluster.h"
#include "runtime/comm/Bootstrap.h"
#include "tools/calibrate/Measure.h"

#include <string>
#include <vector>

namespace apc::calibrate {

// What the operating system says of this machine.
struct MachineFacts {
  std::string cpuModel;   // /proc/cpuinfo "model name" ("" when unknown)
  double memoryBytes = 0; // /proc/meminfo MemTotal (0 when unknown)
  int cores = 1;
};
MachineFacts thisMachine();

// The cluster file of the measurements: one node of the job's ranks, each a "device"
// with its share of the memory; peaks are the best GEMM rates measured (a CPU's
// theoretical peak is not knowable from here, so MFU is against what OpenBLAS reaches);
// every figure's source says measured or assumed. Errors: nothing measured.
Result<cost::Cluster> buildCluster(const std::string &name, const MachineFacts &machine,
                                   const comm::ProcessInfo &process,
                                   const MeasureOptions &options,
                                   const ComputeMeasurements &compute,
                                   const std::vector<cost::CollectiveSample> &collectives,
                                   double collectiveSyncSeconds = 0);

// The summary apc calibrate prints: GEMM rates, bandwidth, the floor, per-kernel rates,
// the collectives' bandwidth at the largest size, the fitted link.
std::string summaryTable(const cost::Cluster &cluster);

} // namespace apc::calibrate
