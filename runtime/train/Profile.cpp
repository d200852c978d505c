#include "runtime/train/Profile.h"

#include "runtime/exec/Executor.h"
#include "runtime/support/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>

namespace apc::train {
namespace {

struct KernelTotal {
  std::string kernel;
  int64_t calls = 0;   // per step
  double seconds = 0;  // per step
};

// Per-kernel totals per step, the most expensive first.
std::vector<KernelTotal> kernelTotals(const exec::Executor &executor, int64_t steps) {
  std::map<std::string, KernelTotal> byName;
  const std::vector<double> &seconds = executor.instructionSeconds();
  for (size_t k = 0; k < seconds.size(); ++k) {
    KernelTotal &t = byName[executor.instructionKernel(k)];
    t.kernel = executor.instructionKernel(k);
    ++t.calls;
    t.seconds += seconds[k] / double(std::max<int64_t>(steps, 1));
  }
  std::vector<KernelTotal> totals;
  for (auto &[name, t] : byName)
    totals.push_back(t);
  std::sort(totals.begin(), totals.end(),
            [](const KernelTotal &a, const KernelTotal &b) { return a.seconds > b.seconds; });
  return totals;
}

double sum(const std::vector<KernelTotal> &totals) {
  double s = 0;
  for (const KernelTotal &t : totals)
    s += t.seconds;
  return s;
}

} // namespace

std::string profilePathOf(const std::string &path, int rank) {
  size_t at = path.find("%r");
  if (at == std::string::npos)
    return rank == 0 ? path : "";
  return path.substr(0, at) + std::to_string(rank) + path.substr(at + 2);
}

Status writeProfile(const std::string &path, const exec::Executor &executor,
                    const ProfileRun &run) {
  std::vector<KernelTotal> totals = kernelTotals(executor, run.stepsProfiled);
  double instructions = sum(totals);
  nlohmann::json kernels = nlohmann::json::array();
  for (const KernelTotal &t : totals)
    kernels.push_back({{"kernel", t.kernel},
                       {"calls_per_step", t.calls},
                       {"seconds_per_step", t.seconds},
                       {"share", instructions > 0 ? t.seconds / instructions : 0.0}});
  nlohmann::json perInstruction = nlohmann::json::array();
  const std::vector<double> &seconds = executor.instructionSeconds();
  double steps = double(std::max<int64_t>(run.stepsProfiled, 1));
  for (size_t k = 0; k < seconds.size(); ++k)
    perInstruction.push_back({{"index", k},
                              {"kernel", executor.instructionKernel(k)},
                              {"seconds_per_step", seconds[k] / steps}});
  nlohmann::json doc = {{"format", "apc-profile-1"},
                        {"plan", run.planPath},
                        {"rank", run.rank},
                        {"stage", run.stage},
                        {"threads", run.threads},
                        {"steps_profiled", run.stepsProfiled},
                        {"median_step_seconds", run.medianStepSeconds},
                        {"instruction_seconds_per_step", instructions},
                        {"kernels", kernels},
                        {"instructions", perInstruction}};
  return writeFileAtomically(path, doc.dump(1) + "\n");
}

std::string profileSummary(const exec::Executor &executor, const ProfileRun &run, int top) {
  std::vector<KernelTotal> totals = kernelTotals(executor, run.stepsProfiled);
  double instructions = sum(totals);
  char line[200];
  std::snprintf(line, sizeof line,
                "profile (rank %d, %lld steps after the first): %.3g s of kernels per step, "
                "median step %.3g s\n",
                run.rank, (long long)run.stepsProfiled, instructions, run.medianStepSeconds);
  std::string text = line;
  for (size_t i = 0; i < totals.size() && int(i) < top; ++i) {
    std::snprintf(line, sizeof line, "  %-22s %5lld calls %10.3f ms %5.1f%%\n",
                  totals[i].kernel.c_str(), (long long)totals[i].calls,
                  totals[i].seconds * 1e3,
                  instructions > 0 ? 100 * totals[i].seconds / instructions : 0.0);
    text += line;
  }
  return text;
}

} // namespace apc::train
