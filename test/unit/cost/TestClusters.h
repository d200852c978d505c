// Clusters built in code for the cost model's tests: figures chosen so hand-worked
// numbers stay simple, not the profiles' (those come from compiler/cost/profiles/).
#pragma once

#include "compiler/cost/Cluster.h"

namespace apc::testing {

// An H100-like node: 1 PFLOP/s bf16, 2 TB/s, NVLink 400 GB/s inside a node, 50 GB/s
// between nodes.
inline cost::Cluster h100Like(int64_t devicesPerNode = 8, int64_t nodes = 1) {
  cost::Cluster c;
  c.spec = "h100-like:" + std::to_string(devicesPerNode * nodes);
  c.profile = "h100-like";
  c.backend = "cuda";
  c.device.name = "H100-like";
  c.device.peakFlops = {{"bf16", 1e15}, {"f32", 5e13}};
  c.device.memoryBytes = 80e9;
  c.device.usableMemoryFraction = 0.9;
  c.device.memoryBandwidth = 2e12;
  c.device.gemmEfficiency = 0.8;
  c.device.memoryEfficiency = 0.5;
  c.device.kernelOverheadSeconds = 5e-6;
  c.devicesPerNode = devicesPerNode;
  c.nodes = nodes;
  c.intraNode = {400e9, 1e-5};
  c.interNode = {50e9, 2e-5};
  c.overlapCommunication = true;
  return c;
}

// Local CPU processes: 50 GFLOP/s, 20 GB/s, 4 GB/s between processes, nothing overlaps.
inline cost::Cluster cpuLike(int64_t devices) {
  cost::Cluster c;
  c.spec = "cpu-like:" + std::to_string(devices);
  c.profile = "cpu-like";
  c.backend = "cpu";
  c.device.peakFlops = {{"f32", 50e9}};
  c.device.memoryBytes = 16e9;
  c.device.memoryBandwidth = 20e9;
  c.device.kernelOverheadSeconds = 2e-6;
  c.devicesPerNode = devices;
  c.intraNode = {4e9, 3e-5};
  c.interNode = c.intraNode;
  return c;
}

} // namespace apc::testing
