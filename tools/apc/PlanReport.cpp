#include "tools/apc/PlanReport.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

namespace apc::tools {
namespace {

using Json = nlohmann::ordered_json;

std::string format(const char *fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a);
  return buf;
}

// Seconds with a unit that keeps 3-4 significant digits readable.
std::string seconds(double s) {
  if (s == 0)
    return "0 s";
  if (s < 1e-3)
    return format("%.4g us", s * 1e6);
  if (s < 1)
    return format("%.4g ms", s * 1e3);
  return format("%.4g s", s);
}

std::string bytes(double b) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return format(u == 0 ? "%.0f" : "%.1f", b) + " " + units[u];
}

// Right-aligned in `width` columns.
std::string column(const std::string &text, size_t width = 14) {
  return text.size() >= width ? " " + text : std::string(width - text.size(), ' ') + text;
}

double finite(double x) { return std::isfinite(x) ? x : 0; }

// The largest stage by memory (the one peak_bytes_per_device is).
size_t largestStage(const cost::Prediction &p) {
  size_t largest = 0;
  for (size_t s = 0; s < p.stages.size(); ++s)
    if (p.stages[s].memory.total() > p.stages[largest].memory.total())
      largest = s;
  return largest;
}

Json memoryJson(const cost::MemoryUse &m) {
  Json j = Json::object();
  for (const auto &[name, b] : cost::memoryTerms(m))
    j[name] = b;
  j["gradients_in_arena"] = m.gradientsInArena;
  return j;
}

} // namespace

std::string predictionText(const PlanCandidate &c, const cost::ModelFigures &model,
                           const cost::Cluster &cluster) {
  const cost::Prediction &p = c.prediction;
  std::string out;
  auto line = [&](const std::string &s) { out += s + "\n"; };
  line("plan " + c.plan + " on " + cluster.spec + " (" + std::to_string(cluster.devices()) +
       (cluster.devices() == 1 ? " device: " : " devices: ") + std::to_string(cluster.nodes) + " node" + (cluster.nodes == 1 ? "" : "s") +
       " of " + std::to_string(cluster.devicesPerNode) + ", " + cluster.backend + " backend)");
  line("  seconds per step              " + seconds(p.secondsPerStep));
  line("  tokens per second per device  " + format("%.4g", p.tokensPerSecondPerDevice) + " (" +
       format("%.0f", p.tokensPerStep) + " tokens per step)");
  line("  MFU                           " + format("%.2f%%", 100 * p.mfu) + " of the " +
       model.computeDType + " peak (" + format("%.4g", p.flopsPerToken) +
       " model FLOPs per token: 6N + 12 L H Dh T, N " + format("%.4g", model.parameters) +
       ", L " + std::to_string(model.layers) + ", H " + std::to_string(model.heads) + ", Dh " +
       std::to_string(model.headDim) + ", T " + std::to_string(model.seqLen) + ")");
  std::string usable = p.usableBytesPerDevice > 0
                           ? " of " + bytes(p.usableBytesPerDevice) + " usable: " +
                                 (p.fits ? "fits" : "does NOT fit")
                           : " (the device's memory is unknown)";
  line("  peak memory per device        " + bytes(double(p.peakBytesPerDevice)) + usable);

  line("breakdown of the step (stage " + std::to_string(p.criticalStage) +
       (p.stages.size() > 1 ? ", the slowest" : "") + "):");
  for (const auto &[name, s] : p.breakdown)
    line("  " + name + std::string(name.size() < 24 ? 24 - name.size() : 1, ' ') + seconds(s) +
         (p.secondsPerStep > 0 ? format("  %5.1f%%", 100 * s / p.secondsPerStep) : ""));

  line("memory per device by kind:");
  std::string header = "  kind                ";
  for (size_t s = 0; s < p.stages.size(); ++s)
    header += column("stage " + std::to_string(s));
  line(header);
  for (size_t k = 0; k < 6; ++k) {
    std::string name;
    std::string row;
    for (const cost::StagePrediction &stage : p.stages) {
      auto terms = cost::memoryTerms(stage.memory);
      terms.push_back({"total", stage.memory.total()});
      name = terms[k].first;
      row += column(bytes(double(terms[k].second)));
    }
    line("  " + name + std::string(20 - name.size(), ' ') + row);
  }
  size_t largest = largestStage(p);
  line("  (the arena holds activations, gradients and temporaries; of it, the gradients the "
       "update reads: " + bytes(double(p.stages[largest].memory.gradientsInArena)) + " on stage " +
       std::to_string(largest) + ")");

  const int chunks = p.timeline.chunks;
  line("pipeline schedule (" +
       (chunks > 1 ? "interleaved-1f1b, " + std::to_string(chunks) + " chunks per stage"
                   : std::string("1f1b")) +
       ", " + std::to_string(p.microBatches) +
       " micro-batch" + (p.microBatches == 1 ? "" : "es") + "; times from the step's start):");
  for (size_t s = 0; s < p.stages.size(); ++s) {
    const cost::StagePrediction &stage = p.stages[s];
    line("  stage " + std::to_string(s) + ": F " + seconds(stage.forward) + ", B " +
         seconds(stage.backward) +
         (stage.recompute > 0 ? " (recompute " + seconds(stage.recompute) + ")" : "") +
         " per micro-batch; update " + seconds(stage.step) +
         (p.stages.size() > 1 ? "; sends " + seconds(stage.sendForward) + " forward, " +
                                    seconds(stage.sendBackward) + " back"
                              : ""));
    std::string passes = "   ";
    for (const schedule::TimedPass &pass : p.timeline.passes[s])
      passes += " " + pass.pass.label() +
                (chunks > 1 ? "." + std::to_string(pass.pass.chunk) : std::string()) + " " +
                seconds(pass.start) + ".." + seconds(pass.end);
    passes += "; update ends " + seconds(stage.end);
    line(passes);
  }
  return out;
}

std::string predictionJson(const std::vector<PlanCandidate> &candidates,
                           const cost::ModelFigures &model, const cost::Cluster &cluster,
                           const SearchSummary *search) {
  Json j;
  j["cluster"] = cluster.spec;
  j["devices"] = cluster.devices();
  j["model"] = {{"parameters", model.parameters},     {"layers", model.layers},
                {"heads", model.heads},               {"head_dim", model.headDim},
                {"seq_len", model.seqLen},            {"global_batch", model.globalBatch},
                {"flops_per_token", model.flopsPerToken()}};
  Json list = Json::array();
  for (const PlanCandidate &c : candidates) {
    const cost::Prediction &p = c.prediction;
    Json e;
    e["plan"] = c.plan;
    e["estimated"] = c.estimated;
    e["seconds_per_step"] = finite(p.secondsPerStep);
    e["tokens_per_second_per_device"] = finite(p.tokensPerSecondPerDevice);
    e["mfu"] = finite(p.mfu);
    e["peak_bytes_per_device"] = p.peakBytesPerDevice;
    e["fits"] = p.fits;
    e["usable_bytes_per_device"] = finite(p.usableBytesPerDevice);
    Json breakdown = Json::object();
    for (const auto &[name, s] : p.breakdown)
      breakdown[name] = finite(s);
    e["breakdown"] = breakdown;
    e["memory"] = memoryJson(p.stages[largestStage(p)].memory);
    e["flops_per_step"] = finite(p.flopsPerStep);
    e["micro_batches"] = p.microBatches;
    e["critical_stage"] = p.criticalStage;
    Json stages = Json::array();
    for (size_t s = 0; s < p.stages.size(); ++s) {
      const cost::StagePrediction &stage = p.stages[s];
      Json passes = Json::array();
      for (const schedule::TimedPass &pass : p.timeline.passes[s])
        passes.push_back({{"pass", pass.pass.label()}, {"start", pass.start}, {"end", pass.end}});
      Json kernels = Json::object();
      for (const auto &[name, seconds] : stage.kernels)
        kernels[name] = finite(seconds);
      stages.push_back({{"forward", stage.forward},
                        {"backward", stage.backward},
                        {"recompute", stage.recompute},
                        {"step", stage.step},
                        {"send_forward", stage.sendForward},
                        {"send_backward", stage.sendBackward},
                        {"end", stage.end},
                        {"memory", memoryJson(stage.memory)},
                        {"kernels", kernels},
                        {"passes", passes}});
    }
    e["stages"] = stages;
    list.push_back(e);
  }
  j["candidates"] = list;
  if (search) {
    Json dropped = Json::array();
    for (const auto &[plan, reason] : search->dropped)
      dropped.push_back({{"plan", plan}, {"reason", reason}});
    j["dropped"] = dropped;
    j["search"] = {{"enumerated", search->enumerated},
                   {"compiled", search->compiled},
                   {"estimated", search->estimated},
                   {"stand_in_compiles", search->standInCompiles},
                   {"pruned_by_bound", search->prunedByBound},
                   {"dropped_by_memory_bound", search->droppedByMemoryBound},
                   {"dominated", search->dominated},
                   {"seconds", finite(search->seconds)}};
  }
  return j.dump(2) + "\n";
}

std::string searchText(const std::vector<PlanCandidate> &ranked, const SearchSummary &search,
                       const cost::Cluster &cluster, size_t reasons) {
  std::string out;
  char line[320];
  std::snprintf(line, sizeof line,
                "searched %lld plans for %s in %.2f s: %lld estimated from %lld smaller stand-ins, "
                "%lld compiled whole and predicted; not looked at: %lld whose lower bound "
                "cannot beat the best, %lld relieving memory more than a plan that fits, %lld "
                "whose parameters and state alone do not fit; %zu dropped in all\n",
                (long long)search.enumerated, cluster.spec.c_str(), search.seconds,
                (long long)search.estimated, (long long)search.standInCompiles,
                (long long)search.compiled, (long long)search.prunedByBound,
                (long long)search.dominated, (long long)search.droppedByMemoryBound,
                search.dropped.size());
  out += line;
  std::snprintf(line, sizeof line, "  %4s  %-52s %12s %14s %7s %12s\n", "rank", "plan",
                "s/step", "tok/s/device", "MFU", "memory/dev");
  out += line;
  bool anyEstimated = false;
  for (size_t i = 0; i < ranked.size(); ++i) {
    const cost::Prediction &p = ranked[i].prediction;
    std::snprintf(line, sizeof line, "  %4zu  %-52s %12.4g %14.4g %6.2f%% %8.1f MiB%s\n", i + 1,
                  ranked[i].plan.c_str(), p.secondsPerStep, p.tokensPerSecondPerDevice,
                  100 * p.mfu, double(p.peakBytesPerDevice) / 1048576.0,
                  ranked[i].estimated ? " ~" : "");
    out += line;
    anyEstimated = anyEstimated || ranked[i].estimated;
  }
  if (anyEstimated)
    out += "  ~ estimated from smaller stand-ins, not compiled whole (apc plan --plan PLAN "
           "compiles it)\n";
  if (!search.dropped.empty()) {
    out += "dropped (" + std::to_string(search.dropped.size()) + "; apc plan --json lists each):\n";
    for (size_t i = 0; i < search.dropped.size() && i < reasons; ++i)
      out += "  " + search.dropped[i].first + ": " + search.dropped[i].second + "\n";
    if (search.dropped.size() > reasons)
      out += "  ...\n";
  }
  return out;
}

} // namespace apc::tools
