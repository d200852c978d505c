// The text of `apc explain`: a header (model, precision, plan, cluster, mesh), the
// pipeline, parameter layouts grouped across layers, collectives and memory per device.
#include "tools/apc/explain/PlanFacts.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <tuple>

namespace apc::explain {
namespace {

std::string format(const char *fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

std::string plural(int64_t n, const std::string &one, const std::string &many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string withCommas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string siText(double value, const std::string &unit) {
  static const char *prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  int p = 0;
  while (std::fabs(value) >= 1000.0 && p < 6) {
    value /= 1000.0;
    ++p;
  }
  return format("%.3g %s%s", value, prefixes[p], unit.c_str());
}

std::string secondsText(double s) {
  if (!std::isfinite(s))
    return "?";
  if (s < 1e-3)
    return format("%.3g us", s * 1e6);
  if (s < 1)
    return format("%.3g ms", s * 1e3);
  return format("%.3g s", s);
}

std::string percent(double fraction) { return format("%.1f%%", fraction * 100.0); }

// Annotations of a layout: Megatron's names on a "tp" axis, ZeRO's on "dp".
std::string layoutRole(const PlanFacts &f, const ParameterFacts &p, const Layout &layout,
                       bool moment) {
  std::vector<std::string> roles;
  for (size_t d = 0; d < layout.dimAxes.size(); ++d) {
    if (layout.dimAxes[d] < 0)
      continue;
    std::string axis = f.axisName(layout.dimAxes[d]);
    if (axis == "tp" && layout.dimAxes.size() == 2 && !moment) {
      bool vocab = p.name.find("embed_tokens") != std::string::npos ||
                   p.name.find("lm_head") != std::string::npos;
      if (d == 0)
        roles.push_back(vocab ? "vocabulary-parallel" : "column-parallel");
      else if (!vocab)
        roles.push_back("row-parallel");
    } else if (axis == "dp") {
      roles.push_back("ZeRO-sharded over dp");
    }
  }
  std::string s;
  for (const std::string &r : roles)
    s += (s.empty() ? " (" : ", ") + r;
  return s.empty() ? s : s + ")";
}

// Stage programs with the same value of `key`, in order of first appearance.
template <typename Key, typename F>
std::vector<std::vector<const ProgramFacts *>> groupPrograms(const PlanFacts &f, F key) {
  std::vector<std::pair<Key, std::vector<const ProgramFacts *>>> groups;
  for (const ProgramFacts &p : f.programs) {
    Key k = key(p);
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto &g) { return g.first == k; });
    if (it == groups.end())
      groups.push_back({k, {&p}});
    else
      it->second.push_back(&p);
  }
  std::vector<std::vector<const ProgramFacts *>> out;
  for (auto &g : groups)
    out.push_back(std::move(g.second));
  return out;
}

std::string groupTitle(const PlanFacts &f, const std::vector<const ProgramFacts *> &group) {
  std::vector<int> devices, stages;
  for (const ProgramFacts *p : group) {
    const std::vector<int> &ranks = f.stages[size_t(p->stage)].ranks;
    devices.insert(devices.end(), ranks.begin(), ranks.end());
    if (std::find(stages.begin(), stages.end(), p->stage) == stages.end())
      stages.push_back(p->stage);
  }
  std::sort(stages.begin(), stages.end());
  std::string s = devicesText(devices);
  if (f.stages.size() > 1)
    s += stages.size() == 1 ? " (stage " + std::to_string(stages[0]) + ")"
                            : " (stages " + rangesText(stages) + ")";
  return s;
}

} // namespace

std::string devicesText(std::vector<int> devices) {
  std::sort(devices.begin(), devices.end());
  devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
  std::string ranges = rangesText(devices);
  // Long lists (strided ranks) keep their first few runs.
  if (ranges.size() > 60) {
    size_t cut = ranges.rfind(", ", 60);
    ranges = ranges.substr(0, cut == std::string::npos ? 60 : cut) + ", ... (" +
             std::to_string(devices.size()) + " ranks)";
  }
  return (devices.size() == 1 ? "device " : "devices ") + ranges;
}

std::string ranksText(const std::vector<int> &ranks) {
  if (ranks.empty())
    return "no ranks";
  std::string d = devicesText(ranks);
  return (ranks.size() == 1 ? "rank" : "ranks") + d.substr(d.find(' '));
}

std::string axesText(const PlanFacts &f, const std::vector<int64_t> &axes) {
  if (axes.empty())
    return "-";
  std::string s;
  for (int64_t a : axes)
    s += (s.empty() ? "" : "+") + f.axisName(a);
  return s;
}

std::string layoutText(const PlanFacts &f, const Layout &layout) {
  if (!layout.present)
    return "held by no program";
  std::string splits;
  for (size_t d = 0; d < layout.dimAxes.size(); ++d)
    if (layout.dimAxes[d] >= 0)
      splits += std::string(splits.empty() ? "split " : ", ") + "dim " + std::to_string(d) +
                " over " + f.axisName(layout.dimAxes[d]) + " (" +
                std::to_string(f.axisSize(layout.dimAxes[d])) + " ways)";
  bool some = !layout.ranks.empty() && int64_t(layout.ranks.size()) < f.devices;
  if (splits.empty()) {
    if (some)
      return std::string(layout.ranks.size() > 1 ? "replicated: " : "whole: ") +
             dimsText(layout.localShape) + " on " + ranksText(layout.ranks);
    return (f.devices > 1 ? "replicated: " : "whole: ") + dimsText(layout.localShape) +
           (f.devices > 1 ? " on every device" : " on the one device");
  }
  return splits + " -> " + dimsText(layout.localShape) + " per device" +
         (some ? " of " + ranksText(layout.ranks) : std::string());
}

std::string peerText(const std::string &kind, int64_t peerOffset, int peerStage) {
  std::string offset = (peerOffset > 0 ? "+" : "") + std::to_string(peerOffset);
  std::string way = kind == "send" ? "to " : "from ";
  if (peerStage >= 0)
    return way + "stage " + std::to_string(peerStage) + " (peer_offset " + offset + ")";
  return way + "peer_offset " + offset;
}

std::vector<CollectiveSummary> summarizeCollectives(const ProgramFacts &program) {
  static const std::vector<std::string> order = {"all_reduce", "all_gather", "reduce_scatter",
                                                 "all_slice", "send", "recv"};
  std::vector<CollectiveSummary> rows;
  for (const CollectiveFacts &c : program.collectives) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const CollectiveSummary &r) {
      return r.kind == c.kind && r.op == c.op && r.axes == c.axes &&
             r.peerOffset == c.peerOffset;
    });
    if (it == rows.end()) {
      CollectiveSummary r;
      r.kind = c.kind;
      r.op = c.op;
      r.axes = c.axes;
      r.communicates = c.communicates;
      r.peerOffset = c.peerOffset;
      r.peerStage = c.peerStage;
      rows.push_back(r);
      it = rows.end() - 1;
    }
    ++it->count;
    it->buckets += c.kind == "all_reduce" && c.operands > 1;
    it->bytes += c.bytes;
  }
  auto rank = [&](const CollectiveSummary &r) {
    return std::find(order.begin(), order.end(), r.kind) - order.begin();
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const auto &a, const auto &b) {
    return std::make_tuple(rank(a), a.op != "sum", a.axes, a.peerOffset) <
           std::make_tuple(rank(b), b.op != "sum", b.axes, b.peerOffset);
  });
  return rows;
}

std::string renderText(const PlanFacts &f, const std::string &svgPath) {
  std::string out;
  auto line = [&](const std::string &s) { out += s + "\n"; };

  // ---- Header.
  line("apc explain " + f.path + " (" + f.producer + ", plan format " +
       std::to_string(f.version) + ")");
  line("");
  line(format("model       %s: %lld layers, hidden %lld, intermediate %lld, %lld heads / %lld kv "
              "heads (head_dim %lld), vocab %lld, %s embeddings",
              f.architecture.c_str(), (long long)f.layers, (long long)f.hidden,
              (long long)f.intermediate, (long long)f.heads, (long long)f.kvHeads,
              (long long)f.headDim, (long long)f.vocab, f.tied ? "tied" : "untied"));
  int64_t replicas = 1;
  for (size_t a = 0; a < f.axisNames.size(); ++a)
    if (f.axisNames[a] == "dp")
      replicas = f.meshShape[a];
  line(format("data        global batch %lld x seq %lld", (long long)f.batch, (long long)f.seqLen) +
       (replicas > 1 ? format(" (%lld sequences per dp replica)",
                              (long long)(f.batch / replicas))
                     : std::string()));
  line("precision   " + f.precision +
       (f.precision == "bf16" ? " (bf16 compute; f32 master weights, optimizer state and loss)"
        : f.precision == "fp32" ? " (f32 compute, weights and optimizer state)"
                                : ""));
  line("plan        " + (f.parallelPlan.empty() ? std::string("(not recorded)") : f.parallelPlan));
  line("cluster     " + (f.cluster.empty() ? std::string("(not recorded)") : f.cluster));
  if (f.meshShape.empty()) {
    line("mesh        none: one device (rank 0)");
  } else {
    std::string shape, formula;
    int64_t stride = 1;
    std::vector<int64_t> strides(f.meshShape.size());
    for (int64_t a = int64_t(f.meshShape.size()) - 1; a >= 0; --a) {
      strides[size_t(a)] = stride;
      stride *= f.meshShape[size_t(a)];
    }
    for (size_t a = 0; a < f.meshShape.size(); ++a) {
      shape += (a ? " x " : "") + f.axisNames[a] + " " + std::to_string(f.meshShape[a]);
      formula += (a ? " + " : "") + f.axisNames[a] +
                 (strides[a] > 1 ? "*" + std::to_string(strides[a]) : "");
    }
    line("mesh        " + shape + " = " + plural(f.devices, "device", "devices") +
         "; rank = " + formula + " (row-major)");
    if (f.devices <= 16) {
      std::string header = "  rank";
      for (const std::string &a : f.axisNames)
        header += format(" %4s", a.c_str());
      line(header);
      for (int64_t r = 0; r < f.devices; ++r) {
        std::string row = format("  %4lld", (long long)r);
        for (int64_t c : f.coordinates(r))
          row += format(" %4lld", (long long)c);
        line(row);
      }
    } else {
      std::string inverse;
      for (size_t a = 0; a < f.meshShape.size(); ++a) {
        std::string expr = "rank";
        if (strides[a] > 1)
          expr += " / " + std::to_string(strides[a]);
        if (a > 0)
          expr += " % " + std::to_string(f.meshShape[a]);
        inverse += (a ? ", " : "") + f.axisNames[a] + " = " + expr;
      }
      std::vector<int64_t> example = f.coordinates(f.devices - 1);
      std::string last;
      for (size_t a = 0; a < example.size(); ++a)
        last += (a ? ", " : "") + f.axisNames[a] + " " + std::to_string(example[a]);
      line("  coordinates: " + inverse + " (rank " + std::to_string(f.devices - 1) + " is " +
           last + ")");
    }
  }

  // ---- Pipeline.
  line("");
  line("pipeline    " + plural(int64_t(f.stages.size()), "stage", "stages") + ", " +
       plural(f.microBatches, "micro-batch", "micro-batches") + ", schedule " + f.schedule +
       ", recompute " + f.recompute +
       (f.recomputeStages > 0 ? " on the first " + plural(f.recomputeStages, "stage", "stages")
                              : std::string()) +
       (f.pipelinePresent ? "" : " (no pipeline section: one stage holds the whole model)"));
  for (size_t s = 0; s < f.stages.size(); ++s)
    line("  stage " + std::to_string(s) + " (" + ranksText(f.stages[s].ranks) +
         "): " + stageContents(f.stages[s]) +
         (f.tied && f.stages.size() > 1 && f.stages[s].head && !f.stages[s].embedding
              ? " (tied: holds the embedding for the LM head)"
              : ""));
  if (f.timeline) {
    bool equal = f.stageTimesFromFlops;
    if (f.stageTimesPredicted)
      line("  " + std::string(f.chunks > 1 ? "interleaved 1F1B" : "1F1B") + " bubble: " +
           percent(f.timeline->bubbleFraction) +
           " of the stages' time is idle (the cost model's stage times, predicted by apc "
           "compile: " + secondsText(f.timeline->makespan) + " to the last backward)");
    else
      line("  " + std::string(f.chunks > 1 ? "interleaved 1F1B" : "1F1B") + " bubble: " +
           percent(f.timeline->bubbleFraction) +
           " of the stages' time is idle (cost model: backward = 2 x forward" +
           (f.stages.size() == 1 ? std::string()
            : equal              ? std::string("; forward time per stage from its program's FLOPs")
                                 : std::string("; FLOPs unknown: equal forward times")) +
           ")");
  } else {
    // With equal stage times the bubble is (p - 1) / (v m + p - 1), v chunks per stage.
    double vm = double(f.chunks) * double(f.microBatches);
    line("  " + std::string(f.chunks > 1 ? "interleaved 1F1B" : "1F1B") +
         " bubble: not laid out (" + std::to_string(f.stages.size()) + " stages x " +
         std::to_string(f.microBatches) + " micro-batches); with equal stage times " +
         percent(double(f.stages.size() - 1) / (vm + double(f.stages.size() - 1))));
  }
  if (!f.predictedStagesUnused.empty())
    line("  (the plan's predicted stage times are not used: " + f.predictedStagesUnused + ")");
  if (f.schedule != "1f1b" && !(f.schedule == "interleaved-1f1b" && f.chunks > 1))
    line("  (schedule '" + f.schedule + "' is drawn and costed as 1F1B)");
  // The plan's own order of passes, read from each stage's instructions.
  bool anyOrder = false, allMatch = true;
  for (const StageFacts &st : f.stages) {
    anyOrder = anyOrder || !st.planOrder.empty();
    allMatch = allMatch && !st.planOrder.empty() && st.planOrderIs1F1B;
  }
  std::string scheduleName = f.chunks > 1 ? "interleaved 1F1B" : "1F1B";
  if (anyOrder && allMatch)
    line("  pass order read from each stage's instructions: " + scheduleName + ", as drawn");
  else if (anyOrder)
    for (size_t s = 0; s < f.stages.size(); ++s)
      line("  stage " + std::to_string(s) + " order from its instructions: " +
           (f.stages[s].planOrder.empty()
                ? std::string("not recognised")
                : f.stages[s].planOrder +
                      (f.stages[s].planOrderIs1F1B ? " (" + scheduleName + ")"
                                                   : " (not the " + scheduleName + " drawn)")));
  for (const std::string &w : f.warnings)
    line("  warning: " + w);

  // ---- Parameters, grouped by name pattern, shape and layouts.
  line("");
  int64_t values = 0;
  uint64_t bytes = 0;
  for (const ParameterFacts &p : f.parameters) {
    int64_t n = 1;
    for (int64_t d : p.shape)
      n *= d;
    values += n;
    bytes += uint64_t(n) * (p.dtype == "F32" || p.dtype == "I32" ? 4 : p.dtype == "I64" ? 8 : 2);
  }
  line("parameters  " + plural(int64_t(f.parameters.size()), "tensor", "tensors") + ", " +
       withCommas(values) + " values (" + humanBytes(bytes) +
       " master copy); layouts grouped across layers (--json lists each); moments: "
       "exp_avg and exp_avg_sq");
  struct Group {
    std::string title;
    std::vector<int> layers, stages;
    std::vector<std::string> lines;
  };
  std::vector<std::pair<std::string, Group>> groups;
  for (const ParameterFacts &p : f.parameters) {
    std::vector<std::string> lines;
    lines.push_back("parameter  " + layoutText(f, p.parameter) +
                    layoutRole(f, p, p.parameter, false));
    if (!p.expAvg.present && !p.expAvgSq.present)
      lines.push_back("moments    none");
    else if (p.expAvg.present == p.expAvgSq.present && p.expAvg.dimAxes == p.expAvgSq.dimAxes)
      lines.push_back("moments    " + layoutText(f, p.expAvg) + layoutRole(f, p, p.expAvg, true));
    else {
      lines.push_back("exp_avg    " + layoutText(f, p.expAvg) + layoutRole(f, p, p.expAvg, true));
      lines.push_back("exp_avg_sq " + layoutText(f, p.expAvgSq) +
                      layoutRole(f, p, p.expAvgSq, true));
    }
    std::string title = p.pattern + " " + dimsText(p.shape) +
                        (p.dtype != "F32" ? " " + p.dtype : std::string());
    std::string key = title + "\n" + rangesText(p.stages);
    for (const std::string &l : lines)
      key += "\n" + l;
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto &g) { return g.first == key; });
    if (it == groups.end()) {
      groups.push_back({key, Group{title, {}, {}, lines}});
      it = groups.end() - 1;
    }
    if (p.layer >= 0)
      it->second.layers.push_back(p.layer);
    for (int st : p.stages)
      if (std::find(it->second.stages.begin(), it->second.stages.end(), st) ==
          it->second.stages.end())
        it->second.stages.push_back(st);
  }
  for (auto &[key, g] : groups) {
    std::sort(g.layers.begin(), g.layers.end());
    std::string where;
    if (!g.layers.empty())
      where = g.layers.size() == 1 ? ", layer " + rangesText(g.layers)
                                   : ", layers " + rangesText(g.layers);
    std::sort(g.stages.begin(), g.stages.end());
    if (f.stages.size() > 1 && !g.stages.empty())
      where += (g.stages.size() == 1 ? " (stage " : " (stages ") + rangesText(g.stages) + ")";
    line("  " + g.title + where);
    for (const std::string &l : g.lines)
      line("    " + l);
  }

  // ---- Collectives, per device; programs with the same collectives together.
  line("");
  line("collectives per step, per device (bytes: inputs; all_gather and recv: output; "
       "all_slice is a local slice)");
  auto collectiveGroups = groupPrograms<std::vector<std::tuple<std::string, std::string,
                                                               std::vector<int64_t>, int64_t,
                                                               int, uint64_t>>>(
      f, [](const ProgramFacts &p) {
        std::vector<std::tuple<std::string, std::string, std::vector<int64_t>, int64_t, int,
                               uint64_t>>
            k;
        k.emplace_back("stage", "", std::vector<int64_t>{}, p.stage, 0, 0);
        for (const CollectiveFacts &c : p.collectives)
          k.emplace_back(c.kind, c.op, c.axes, c.dim * 1000003 + c.peerOffset, c.operands,
                         c.bytes);
        return k;
      });
  for (const auto &group : collectiveGroups) {
    const ProgramFacts &p = *group.front();
    uint64_t moved = 0;
    for (const CollectiveFacts &c : p.collectives)
      moved += c.bytes;
    line("  " + groupTitle(f, group) + ": " +
         plural(int64_t(p.collectives.size()), "collective", "collectives") + ", " +
         humanBytes(moved) + " moved");
    if (p.collectives.empty())
      continue;
    line(format("    %-18s %-8s %6s %12s", "kind", "axes", "count", "bytes"));
    for (const CollectiveSummary &r : summarizeCollectives(p)) {
      std::string kind = r.kind + (r.op == "max" ? " (max)" : "");
      std::string note;
      if (!r.communicates)
        note = "  no communication";
      else if (r.buckets)
        note = "  " + plural(r.buckets, "bucket", "buckets") + " of several buffers";
      else if (r.kind == "send" || r.kind == "recv")
        note = "  " + peerText(r.kind, r.peerOffset, r.peerStage);
      line(format("    %-18s %-8s %6d %12s%s", kind.c_str(), axesText(f, r.axes).c_str(), r.count,
                  r.communicates ? humanBytes(r.bytes).c_str() : "-", note.c_str()));
    }
    std::vector<const CollectiveFacts *> largest;
    for (const CollectiveFacts &c : p.collectives)
      if (c.bytes > 0)
        largest.push_back(&c);
    std::stable_sort(largest.begin(), largest.end(),
                     [](auto *a, auto *b) { return a->bytes > b->bytes; });
    if (largest.size() > 3)
      largest.resize(3);
    std::string top;
    for (const CollectiveFacts *c : largest)
      top += (top.empty() ? "" : "; ") + std::string("i") + std::to_string(c->instruction) + " " +
             c->kind + (c->op == "max" ? " (max)" : "") + " over " + axesText(f, c->axes) +
             (c->operands > 1 ? " (bucket of " + std::to_string(c->operands) + ")" : "") +
             (c->kind == "send" || c->kind == "recv"
                  ? " " + peerText(c->kind, c->peerOffset, c->peerStage)
                  : std::string()) +
             " " +
             humanBytes(c->bytes);
    if (!top.empty())
      line("    largest: " + top);
  }

  // ---- Memory, per device.
  line("");
  line("memory per device (gradients are temporaries in the arena)");
  auto memoryGroups =
      groupPrograms<std::tuple<int, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                               std::vector<std::string>>>(f, [](const ProgramFacts &p) {
        return std::make_tuple(p.stage, p.parameterBytes, p.optimizerBytes, p.inputBytes,
                               p.arenaBytes, p.gradientBytes, p.inputBindings);
      });
  for (const auto &group : memoryGroups) {
    const ProgramFacts &p = *group.front();
    line("  " + groupTitle(f, group) + ":");
    line(format("    %-16s %12s  %s", "parameters", humanBytes(p.parameterBytes).c_str(),
                plural(p.parameterBuffers, "buffer", "buffers").c_str()));
    line(format("    %-16s %12s  %s", "optimizer state", humanBytes(p.optimizerBytes).c_str(),
                (plural(p.optimizerBuffers, "buffer", "buffers") +
                 (p.optimizerBuffers ? " (exp_avg, exp_avg_sq)" : ""))
                    .c_str()));
    std::string bindings;
    static const std::vector<std::pair<std::string, std::string>> names = {
        {"InputIds", "ids"}, {"Labels", "labels"}, {"Step", "step"}, {"LearningRate", "lr"}};
    for (const auto &[binding, shortName] : names)
      if (std::count(p.inputBindings.begin(), p.inputBindings.end(), binding))
        bindings += (bindings.empty() ? "" : ", ") + shortName;
    for (const std::string &b : p.inputBindings)
      if (std::none_of(names.begin(), names.end(), [&](auto &n) { return n.first == b; }) &&
          bindings.find(b) == std::string::npos)
        bindings += (bindings.empty() ? "" : ", ") + b;
    line(format("    %-16s %12s  %s", "inputs", humanBytes(p.inputBytes).c_str(),
                (plural(p.inputBuffers, "buffer", "buffers") +
                 (bindings.empty() ? std::string() : " (" + bindings + ")"))
                    .c_str()));
    // Gradients: adamw's grad operands, temporaries in the arena (not added again).
    line(format("    %-16s %12s  %s", "arena", humanBytes(p.arenaBytes).c_str(),
                ("activations and gradients, liveness-planned" +
                 (p.gradientBuffers ? " (gradients " + humanBytes(p.gradientBytes) + " in " +
                                          plural(p.gradientBuffers, "buffer", "buffers") + ")"
                                    : std::string()))
                    .c_str()));
    line(format("    %-16s %12s", "total", humanBytes(p.totalBytes()).c_str()));
  }
  if (f.predictedPresent)
    line("  predicted by apc compile" +
         (f.predictedCluster.empty() ? std::string() : " for " + f.predictedCluster) + ": " +
         humanBytes(f.predictedBytes) + " per device, " + siText(f.predictedFlops, "FLOP") +
         " per step per device, " + secondsText(f.predictedSeconds) + " per step");
  if (f.predictedPresent && f.predictedModel) {
    char figures[160];
    std::snprintf(figures, sizeof figures, "%.4g tokens/s per device, MFU %.2f%%",
                  f.predictedTokensPerSecondPerDevice, 100 * f.predictedMfu);
    line("    " + std::string(figures) + "; memory " +
         (f.predictedUsableBytes > 0 ? std::string(f.predictedFits ? "fits in " : "does NOT fit in ") +
                                           humanBytes(uint64_t(f.predictedUsableBytes)) + " usable"
                                     : std::string("capacity unknown")));
    std::string parts;
    for (const auto &[name, seconds] : f.predictedBreakdown)
      if (seconds > 0)
        parts += (parts.empty() ? "" : ", ") + name + " " + secondsText(seconds);
    line("    step: " + (parts.empty() ? std::string("nothing") : parts));
    std::string kinds;
    for (const auto &[name, bytes] : f.predictedMemory)
      kinds += (kinds.empty() ? "" : ", ") + name + " " + humanBytes(bytes);
    if (!kinds.empty())
      line("    memory per device: " + kinds);
    // Each stage's times: one micro-batch's passes, its transfer, its step; and when its
    // step ends on the timeline (the last one is the step time).
    for (size_t s = 0; s < f.predictedStages.size(); ++s) {
      const PredictedStageTimes &st = f.predictedStages[s];
      std::string l = "    stage " + std::to_string(s) + ": forward " +
                      secondsText(st.times.forward) + ", backward " +
                      secondsText(st.times.backward);
      if (st.recomputeKnown && st.recompute > 0)
        l += " (recompute " + secondsText(st.recompute) + ")";
      l += " per micro-batch";
      if (st.times.sendForward > 0 && s + 1 < f.predictedStages.size())
        l += ", activation to stage " + std::to_string(s + 1) + " in " +
             secondsText(st.times.sendForward);
      if (st.times.sendBackward > 0 && s > 0)
        l += ", gradient to stage " + std::to_string(s - 1) + " in " +
             secondsText(st.times.sendBackward);
      l += "; update and reductions " + secondsText(st.step);
      if (f.stageTimesPredicted && f.timeline && s < f.timeline->stepEnd.size())
        l += ", done at " + secondsText(f.timeline->stepEnd[s]);
      line(l);
    }
  }

  if (f.searched) {
    char counts[200];
    std::snprintf(counts, sizeof counts,
                  "): %lld plans, %lld estimated, %lld compiled, %lld dropped, in %.2f s "
                  "(docs/search.md)\n",
                  (long long)f.searchEnumerated, (long long)f.searchEstimated,
                  (long long)f.searchCompiled, (long long)f.searchDropped, f.searchSeconds);
    out += "\nsearch      chosen by the plan search (--plan " + f.searchRequest + counts;
    for (size_t i = 0; i < f.alternatives.size(); ++i) {
      const PlanFacts::Alternative &a = f.alternatives[i];
      double slower = f.predictedSeconds > 0 ? a.seconds / f.predictedSeconds - 1 : 0;
      char slowerText[32];
      std::snprintf(slowerText, sizeof slowerText, "%+.1f%%", 100 * slower);
      out += "  runner-up " + std::to_string(i + 1) + ": " + a.plan + ", " +
             secondsText(a.seconds) + " per step (" + slowerText + "), " + humanBytes(a.bytes) +
             " per device" + (a.estimated ? " (estimated from stand-ins)" : "") + "\n";
      out += "    loses on: " + whyNot(f, a) + "\n";
    }
    if (f.alternatives.empty())
      out += "  no runner-up fits\n";
  }
  if (!svgPath.empty() && f.timeline)
    out += "\nschedule    wrote " + svgPath + " (" +
           plural(f.timeline->stages, "stage", "stages") + " x " +
           plural(f.timeline->microBatches, "micro-batch", "micro-batches") + ", " +
           std::to_string(2 * f.timeline->stages * f.timeline->microBatches) +
           " boxes, bubble " + percent(f.timeline->bubbleFraction) + ")\n";
  return out;
}

} // namespace apc::explain
