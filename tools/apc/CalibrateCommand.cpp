// `apc calibrate [-o cluster.json] [--nproc N]`: measures this machine as the CPU backend
// uses it and writes the cluster file `--cluster` takes (docs/tools/apc-calibrate.md).
//
// With --nproc N it starts N ranks of itself, as `aprun --nproc N` starts a training
// job: every rank times the kernels at once with its share of the cores (so GEMMs see
// the contention of a real job), then the ranks time the collectives between them. Rank
// 0 averages the ranks' kernel rates, fits the link, writes the file and prints a summary.
#include "tools/apc/Commands.h"

#include "compiler/cost/Cluster.h"
#include "runtime/comm/Bootstrap.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/GlooCommunicator.h"
#include "runtime/comm/TcpStore.h"
#include "runtime/support/AtomicFile.h"
#include "runtime/support/Flags.h"
#include "tools/aprun/Launcher.h"
#include "tools/calibrate/Measure.h"
#include "tools/calibrate/Report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace apc::tools {
namespace {

// Every rank's figures, averaged: rates are summed over the ranks and divided.
Status averageOverRanks(comm::Communicator &world, calibrate::ComputeMeasurements &m) {
  std::vector<double> values;
  for (const cost::GemmSample &s : m.gemm)
    values.push_back(s.flopsPerSecond);
  for (const auto &[name, rate] : m.kernelRates)
    for (const cost::RateSample &sample : rate.samples)
      values.push_back(sample.perSecond);
  values.push_back(m.memoryBandwidth);
  values.push_back(m.kernelOverhead);
  APC_RETURN_IF_ERROR(world.allReduceSum(values.data(), values.size()));
  double n = double(world.size());
  size_t i = 0;
  for (cost::GemmSample &s : m.gemm)
    s.flopsPerSecond = values[i++] / n;
  for (auto &[name, rate] : m.kernelRates)
    for (cost::RateSample &sample : rate.samples)
      sample.perSecond = values[i++] / n;
  m.memoryBandwidth = values[i++] / n;
  m.kernelOverhead = values[i++] / n;
  return Status::ok();
}

} // namespace

int runCalibrate(int argc, char **argv, int first) {
  std::string output = "cluster.json", name = "calibrated-cpu";
  int64_t nproc = 1, threads = 0;
  double minSeconds = 0.05;
  bool quick = false;
  FlagParser flags("apc calibrate",
                   "measure this machine's kernels and communication and write a cluster file",
                   "apc calibrate [-o cluster.json] [--nproc N] [--threads T] [--quick] "
                   "[--min-seconds S] [--name NAME]");
  flags.addString("o", &output, "the cluster file to write (default cluster.json)",
                  "FILE.json");
  flags.addInt("nproc", &nproc, "measure as N local ranks (aprun --nproc N): each rank's "
                                "share of the cores, and the collectives between the ranks "
                                "(default 1)");
  flags.addInt("threads", &threads, "threads per rank (default: the cores divided among the "
                                    "ranks, as aprun)");
  flags.addString("name", &name, "the profile name written into the file (default "
                                 "calibrated-cpu)", "NAME");
  flags.addDouble("min-seconds", &minSeconds, "time each case at least this long (default "
                                              "0.05)", "SECONDS");
  flags.addBool("quick", &quick, "fewer and smaller cases: a first look in seconds");
  flags.limit("nproc", 1, kMaxLocalRanks);
  flags.limit("threads", 0, 4096);
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  auto usage = [](const std::string &what) {
    std::fprintf(stderr, "apc calibrate: %s\n", what.c_str());
    return 2;
  };
  if (!(minSeconds > 0 && minSeconds <= 60))
    return usage("--min-seconds must be in (0, 60]");
  if (name.empty())
    return usage("--name is empty");
  if (output.empty())
    return usage("-o is empty");
  // Found out before minutes of measuring: the folder the file goes into.
  std::filesystem::path folder = std::filesystem::path(output).parent_path();
  if (folder.empty())
    folder = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    return usage(output + ": cannot write: " + folder.string() + " is not a folder");

  if (flags.given("nproc") && nproc > 1) {
    if (std::getenv("RANK") || std::getenv("OMPI_COMM_WORLD_RANK"))
      return usage("--nproc starts ranks itself, but this process already is one (RANK is "
                   "set): drop --nproc");
    std::vector<char *> rankArgs = withoutFlag(argc, argv, "nproc");
    return launchLocalRanks(int(nproc), int(rankArgs.size()), rankArgs.data(),
                            std::chrono::seconds(0));
  }

  auto process = comm::detectProcess();
  if (!process)
    return usage(process.message());
  const bool leader = process->rank == 0;
  calibrate::MeasureOptions options;
  options.quick = quick;
  options.minSeconds = minSeconds;
  int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  options.threads =
      threads > 0 ? int(threads) : std::max(1, cores / std::max(1, process->localWorldSize));
  calibrate::Progress progress = [&](const std::string &line) {
    if (leader) {
      std::printf("  %s\n", line.c_str());
      std::fflush(stdout);
    }
  };
  auto fail = [&](const std::string &what) {
    std::fprintf(stderr, "apc calibrate: rank %d: %s\n", process->rank, what.c_str());
    return 1;
  };

  std::unique_ptr<comm::TcpStore> store;
  std::unique_ptr<comm::Communicator> world;
  const std::chrono::milliseconds timeout(std::chrono::seconds(120));
  if (process->multiProcess()) {
    auto created = comm::TcpStore::create(*process, timeout);
    if (!created)
      return fail(created.message());
    store = std::move(*created);
    auto communicator = comm::createWorldCommunicator(*store, *process, timeout);
    if (!communicator) {
      store->abandon();
      return fail(communicator.message());
    }
    world = std::move(*communicator);
  }
  if (leader)
    std::printf("apc calibrate: %d rank%s, %d thread%s each%s\nkernels (every rank at once):\n",
                process->worldSize, process->worldSize == 1 ? "" : "s", options.threads,
                options.threads == 1 ? "" : "s", quick ? ", quick" : "");
  auto compute = calibrate::measureCompute(options, progress);
  if (!compute) {
    if (store)
      store->abandon();
    return fail(compute.message());
  }
  std::vector<cost::CollectiveSample> collectives;
  double collectiveSync = 0;
  if (world) {
    if (Status s = averageOverRanks(*world, *compute); !s) {
      store->abandon();
      return fail(s.message());
    }
    if (leader)
      std::printf("collectives (Gloo, %d ranks):\n", world->size());
    auto measured = calibrate::measureCollectives(*world, options, progress);
    if (!measured) {
      store->abandon();
      return fail(measured.message());
    }
    collectives = std::move(*measured);
    auto sync = calibrate::measureCollectiveSync(*world, options, progress);
    if (!sync) {
      store->abandon();
      return fail(sync.message());
    }
    collectiveSync = *sync;
  }

  int code = 0;
  if (leader) {
    calibrate::MachineFacts facts = calibrate::thisMachine();
    auto cluster = calibrate::buildCluster(name, facts, *process, options, *compute, collectives,
                                           collectiveSync);
    if (!cluster) {
      code = fail(cluster.message());
    } else if (Status s = writeFileAtomically(output, cost::clusterToJson(*cluster)); !s) {
      code = fail(s.message());
    } else {
      std::printf("%s", calibrate::summaryTable(*cluster).c_str());
      std::printf("wrote %s: use it as --cluster %s (apc plan, apc compile)\n", output.c_str(),
                  output.c_str());
    }
  }
  if (store)
    if (Status s = store->close(); !s && code == 0)
      code = fail(s.message());
  return code;
}

} // namespace apc::tools
