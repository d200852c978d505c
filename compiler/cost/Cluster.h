// A cluster: what the cost model knows of the machines a plan runs on.
//
// `--cluster` takes a built-in profile with a device count (`h100-sxm:8` one node of 8,
// `h100-sxm:64` eight nodes of the profile's devices per node, `h100-sxm:8x16` sixteen
// nodes of 8, `cpu:4` four local CPU processes) or a cluster file (`mycluster.json`, as
// `apc calibrate` writes one). Profiles are JSON files in compiler/cost/profiles/, built
// into the binaries, each figure with its source beside it. The file format is
// docs/cost-model.md's "Cluster files"; this header is its C++ form.
//
// MLIR-free: the explain tool, the cost model and `apc calibrate` share it.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace apc::cost {

// One level of the network, as one device sees it: what it sends to a peer at that level
// (one direction, the bus bandwidth a ring collective reaches) and the fixed cost of one
// message (alpha, seconds).
struct Link {
  double bytesPerSecond = 0;
  double latencySeconds = 0;
};

// A measured GEMM: achieved FLOP/s of C[m, n] = A[m, k] B[k, n] in `dtype` ("f32",
// "bf16"). The model interpolates between samples (apc calibrate writes them).
struct GemmSample {
  int64_t m = 0, n = 0, k = 0;
  std::string dtype;
  double flopsPerSecond = 0;
};

// A measured collective over `ranks` local processes: time for `bytes` per rank.
struct CollectiveSample {
  std::string kind; // "all_reduce", "all_gather", "reduce_scatter", "send_recv"
  int64_t ranks = 0;
  int64_t bytes = 0;
  double seconds = 0;
};

// Measured rates of one runtime kernel (apc calibrate) at several sizes: `work` is what
// one call does, FLOPs for compute-bound kernels (attention), bytes of its operands for
// memory-bound ones (rms_norm, silu); the rate is per second of the same. Rates change
// with size (caches, threading), so the model interpolates between samples in log(work).
struct RateSample {
  double work = 0;
  double perSecond = 0;
};
struct KernelRate {
  bool byFlops = false; // work in FLOPs (else bytes)
  std::vector<RateSample> samples; // sorted by work (parseClusterJson sorts them)
};

struct Device {
  std::string name;                        // "NVIDIA H100 SXM5 80GB HBM3"
  std::map<std::string, double> peakFlops; // dense FLOP/s by dtype: "bf16", "f32", ...
  double memoryBytes = 0;                  // per device
  double usableMemoryFraction = 1.0;       // what training may take (context, allocator)
  double memoryBandwidth = 0;              // bytes/s
  // Without measured samples: a large GEMM reaches gemmEfficiency x peak; elementwise
  // and norm kernels reach memoryEfficiency x memoryBandwidth.
  double gemmEfficiency = 1.0;
  double memoryEfficiency = 1.0;
  double kernelOverheadSeconds = 0; // per-kernel floor (launch, dispatch)
  std::vector<GemmSample> gemm;     // measured; empty: the efficiency above
  // Measured rates by kernel name; a kernel without one: the rates above.
  std::map<std::string, KernelRate> kernelRates;
};

struct Cluster {
  std::string spec;    // as the user wrote it: "h100-sxm:8x2", "cpu:4", "my.json"
  std::string profile; // the profile's or the file's `name`
  std::string backend; // "cpu" or "cuda": which runtime backend runs the plan
  Device device;
  int64_t devicesPerNode = 1;
  int64_t nodes = 1;
  Link intraNode; // between devices of one node (NVLink; local processes: shared memory)
  Link interNode; // between nodes (InfiniBand, Ethernet)
  std::string collectiveAlgorithm = "ring"; // "ring", "tree" or "auto" (the cheaper)
  // Whether communication runs concurrently with compute (NCCL streams: yes; the CPU
  // backend's Gloo calls block the rank: no).
  bool overlapCommunication = false;
  // What a blocking collective costs beyond its transfer when the ranks come to it from
  // compute rather than from another collective: they arrive apart (each rank's kernels
  // run at their own pace) and the one that waited must wake. Measured by apc calibrate
  // (Gloo on a shared machine: about a millisecond); 0 where not measured.
  double collectiveSyncSeconds = 0;
  std::vector<CollectiveSample> collectives; // measured; empty: the links' alpha-beta
  std::map<std::string, std::string> sources; // figure -> where it comes from

  int64_t devices() const { return devicesPerNode * nodes; }
};

// The bounds every cluster is held to (a node beyond 1024 devices, or a cluster beyond
// 2^20, is a typo, and counts stay far from overflow in products with plan degrees).
constexpr int64_t kMaxDevicesPerNode = 1024;
constexpr int64_t kMaxNodes = 65536;
constexpr int64_t kMaxDevices = int64_t(1) << 20;

// Resolves a --cluster value: a built-in profile with a count, or a cluster file. Every
// error names the spec (or the file) and the field.
Result<Cluster> resolveCluster(const std::string &spec);
// Parses a cluster file's text (`path` for messages). Counts in it (devices_per_node,
// nodes) are required in a file; a profile's may be overridden by the spec's count.
Result<Cluster> parseClusterJson(const std::string &text, const std::string &path);
// The cluster file of `cluster` (what apc calibrate writes; parseClusterJson reads it).
std::string clusterToJson(const Cluster &cluster);
// The --cluster of this machine when none is given: its CPU processes as `cpu:N`, one
// per 4 cores (the cpu profile's device is a 4-core process), at least 1; `assumed` says
// so in a sentence for the user. (Its GPUs, once the CUDA backend can see them.)
std::string thisMachineCluster(std::string &assumed);

// The names of the built-in profiles, sorted.
std::vector<std::string> builtinProfiles();

} // namespace apc::cost
