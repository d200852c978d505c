#include "compiler/cost/CostModel.h"

#include "compiler/cost/CollectiveTime.h"
#include "compiler/cost/KernelTime.h"
#include "runtime/support/MeshCoordinates.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace apc::cost {
namespace {

using lowering::ExecInstruction;
using lowering::ExecProgram;
using lowering::Pass;

// Seconds by breakdown name, in first-seen order (small: a handful of names).
struct Seconds {
  std::vector<std::pair<std::string, double>> entries;
  void add(const std::string &name, double s) {
    for (auto &e : entries)
      if (e.first == name) {
        e.second += s;
        return;
      }
    entries.push_back({name, s});
  }
  double total() const {
    double t = 0;
    for (const auto &e : entries)
      t += e.second;
    return t;
  }
};

// The seconds of `phase` once its hideable part runs behind `cover` seconds of compute,
// its busy kinds added to `out`.
double phaseSeconds(const PhaseWork &phase, double cover, Seconds &out) {
  double hide = 0, busy = 0;
  for (const auto &e : phase.hideable)
    hide += e.second;
  double exposed = std::max(0.0, hide - cover);
  for (const auto &e : phase.busy) {
    out.add(e.first, e.second);
    busy += e.second;
  }
  for (const auto &e : phase.hideable)
    out.add(e.first, hide > 0 ? e.second * exposed / hide : 0);
  return busy + exposed;
}

double totalOf(const std::vector<std::pair<std::string, double>> &entries) {
  double t = 0;
  for (const auto &e : entries)
    t += e.second;
  return t;
}

// What a collective's group looks like: its size, whether it leaves a node, its name.
struct Group {
  int64_t ranks = 1;
  bool spansNodes = false;
  int64_t ranksPerNode = 1; // spanning nodes: the fewest ranks of a group on one node
  bool dataParallelOnly = false;
  bool gradientAxes = false; // dp and cp together (Streams.cpp: behind compute)
  std::string name; // "communication.dp", "communication.dp+tp"
};

class StageModel {
public:
  StageModel(const ExecProgram &program, const Cluster &cluster)
      : program_(program), cluster_(cluster) {}

  StageWork measure(int microBatches, bool byKernel) {
    StageWork w;
    w.microBatches = std::max(1, microBatches);
    // Busy and hideable seconds by name, per phase: forward, backward (micro-batch 0),
    // forward, backward (the others), step.
    Seconds busyOf[5], hideOf[5], kernels;
    PhaseWork *phases[5] = {&w.forward, &w.backward, &w.forwardRest, &w.backwardRest, &w.step};
    bool updating = false; // past the update's first compute kernel
    bool fromCompute = true; // the last instruction run was a compute kernel
    for (const ExecInstruction &inst : program_.instructions) {
      bool isStep = inst.pass != Pass::Forward && inst.pass != Pass::Backward;
      int index = isStep ? 4 : (inst.pass == Pass::Forward ? 0 : 1) + (inst.microBatch > 0 ? 2 : 0);
      PhaseWork &phase = *phases[index];
      Seconds &busy = busyOf[index], &hideable = hideOf[index];
      phase.flops += inst.flops;
      KernelKind kind = kernelKind(inst.kernel);
      if (kind == KernelKind::PointToPoint) {
        // A send's transfer delays its peer's pass (the schedule's edge); a recv waits.
        if (inst.kernel == "send" && !inst.inputs.empty()) {
          const Group &g = groupOf(inst);
          double t = collectiveSeconds(cluster_, Collective::SendRecv, 2,
                                       double(buffer(inst.inputs[0]).bytes()), g.spansNodes);
          // By pass, not by direction: under interleaving a forward's activation may
          // go back to stage 0 (the next chunk) and a backward's gradient forward.
          bool forwardSend = inst.pass == Pass::Forward ||
                             (inst.pass != Pass::Backward && peerOffset(inst) > 0);
          (forwardSend ? w.sendForward : w.sendBackward) += t;
        }
        continue;
      }
      if (kind == KernelKind::Collective) {
        const Group &g = groupOf(inst);
        Collective c;
        collectiveOf(inst.kernel, c);
        double t = collectiveSeconds(cluster_, c, g.ranks, bytesPerRank(inst, c), g.spansNodes,
                                     g.ranksPerNode);
        // Data-parallel collectives may run behind compute, except those of the update
        // after its first kernel (ZeRO gathers of the updated blocks wait for it).
        // Under context parallelism the gradients' all-reduces span dp and cp (Streams.cpp).
        bool hides = cluster_.overlapCommunication && !updating &&
                     (g.dataParallelOnly || (g.gradientAxes && inst.kernel == "all_reduce"));
        // A blocking collective reached from compute waits for the last rank to arrive.
        if (!hides && fromCompute)
          t += cluster_.collectiveSyncSeconds;
        if (!hides) // a collective behind compute does not bring the ranks together
          fromCompute = false;
        (hides ? hideable : busy).add(g.name, t);
        if (byKernel)
          kernels.add(inst.kernel + g.name.substr(g.name.find('.')), t);
        continue;
      }
      double t = kernelSeconds(cluster_, program_, inst, kind);
      fromCompute = true;
      if (byKernel)
        kernels.add(inst.kernel, t);
      phase.compute += t;
      updating = updating || inst.pass == Pass::Step;
      static const std::string kRecompute = "recompute", kOptimizer = "optimizer",
                               kCompute = "compute";
      busy.add(inst.recomputed ? kRecompute : isStep ? kOptimizer : kCompute, t);
      if (inst.recomputed)
        w.recompute += t;
    }
    for (int i = 0; i < 5; ++i) {
      phases[i]->busy = std::move(busyOf[i].entries);
      phases[i]->hideable = std::move(hideOf[i].entries);
    }
    w.kernels = std::move(kernels.entries);
    w.memory = memoryOf(program_);
    return w;
  }

private:
  const lowering::ExecBuffer &buffer(int b) const { return program_.buffers[size_t(b)]; }

  static const lowering::ExecAttribute *attribute(const ExecInstruction &inst,
                                                  const char *name) {
    for (const auto &a : inst.attributes)
      if (a.name == name)
        return &a;
    return nullptr;
  }
  static int64_t peerOffset(const ExecInstruction &inst) {
    const auto *a = attribute(inst, "peer_offset");
    return a ? a->i : 1;
  }

  // Bytes per rank as the algorithms count them (CollectiveTime.h).
  double bytesPerRank(const ExecInstruction &inst, Collective c) const {
    double bytes = 0;
    const std::vector<int> &side =
        c == Collective::AllGather ? inst.outputs : inst.inputs; // gathered result / input
    for (int b : side)
      bytes += double(buffer(b).bytes());
    return bytes;
  }

  const Group &groupOf(const ExecInstruction &inst) {
    static const std::vector<int64_t> kNone;
    const auto *a = attribute(inst, "axes");
    const std::vector<int64_t> &axes = a ? a->ints : kNone;
    auto it = groups_.find(axes);
    if (it != groups_.end())
      return it->second;
    Group g;
    g.dataParallelOnly = !axes.empty();
    g.gradientAxes = !axes.empty();
    bool hasDp = false, hasCp = false;
    std::string names;
    for (int64_t x : axes) {
      bool inMesh = x >= 0 && size_t(x) < program_.meshShape.size();
      std::string name = inMesh && size_t(x) < program_.meshAxes.size()
                             ? program_.meshAxes[size_t(x)]
                             : "axis" + std::to_string(x);
      if (inMesh)
        g.ranks *= std::max<int64_t>(1, program_.meshShape[size_t(x)]);
      g.dataParallelOnly = g.dataParallelOnly && name == "dp";
      g.gradientAxes = g.gradientAxes && (name == "dp" || name == "cp");
      hasDp = hasDp || name == "dp";
      hasCp = hasCp || name == "cp";
      names += (names.empty() ? "" : "+") + name;
    }
    g.gradientAxes = g.gradientAxes && hasDp && hasCp;
    g.name = "communication." + (names.empty() ? std::string("none") : names);
    g.spansNodes = groupSpansNodes(program_.meshShape, axes, cluster_.devicesPerNode);
    if (g.spansNodes)
      g.ranksPerNode = groupRanksPerNode(program_.meshShape, axes, cluster_.devicesPerNode);
    return groups_.emplace(axes, g).first->second;
  }

  const ExecProgram &program_;
  const Cluster &cluster_;
  std::map<std::vector<int64_t>, Group> groups_;
};

} // namespace

int microBatchesOf(const std::vector<ExecProgram> &programs) {
  int mb = 0;
  for (const ExecProgram &p : programs)
    for (const ExecInstruction &inst : p.instructions)
      mb = std::max(mb, inst.microBatch + 1);
  return std::max(mb, 1);
}

StageWork measureStage(const ExecProgram &program, const Cluster &cluster, int microBatches,
                       bool byKernel) {
  return StageModel(program, cluster).measure(microBatches, byKernel);
}

// The sum of two phases' works, entry by entry.
PhaseWork sumOf(const PhaseWork &a, const PhaseWork &b) {
  PhaseWork p = a;
  p.compute += b.compute;
  p.flops += b.flops;
  for (auto [to, from] : {std::pair{&p.busy, &b.busy}, std::pair{&p.hideable, &b.hideable}})
    for (const auto &e : *from) {
      bool added = false;
      for (auto &t : *to)
        if (t.first == e.first) {
          t.second += e.second;
          added = true;
        }
      if (!added)
        to->push_back(e);
    }
  return p;
}

StagePrediction finishStage(const StageWork &w) {
  StagePrediction s;
  Seconds busy;
  double mb = double(std::max(1, w.microBatches));
  PhaseWork forward = sumOf(w.forward, w.forwardRest), backward = sumOf(w.backward, w.backwardRest);
  s.forward = phaseSeconds(forward, forward.compute, busy) / mb;
  s.backward = phaseSeconds(backward, backward.compute, busy) / mb;
  // The data-parallel gradient reductions start as the last backward makes them: they
  // hide behind what of its compute the backward's own collectives leave free.
  double lastBackwardFree = std::max(0.0, backward.compute - totalOf(backward.hideable)) / mb;
  s.step = phaseSeconds(w.step, lastBackwardFree, busy);
  s.recompute = w.recompute / mb;
  s.sendForward = w.sendForward / mb;
  s.sendBackward = w.sendBackward / mb;
  s.busy = std::move(busy.entries);
  s.kernels = w.kernels;
  s.flops = forward.flops + backward.flops + w.step.flops;
  s.memory = w.memory;
  return s;
}

double breakdownSeconds(const Prediction &p, const std::string &name) {
  for (const auto &e : p.breakdown)
    if (e.first == name)
      return e.second;
  return 0;
}

Result<Prediction> predict(const std::vector<ExecProgram> &programs, const ModelFigures &model,
                           const Cluster &cluster, bool byKernel) {
  using R = Result<Prediction>;
  if (programs.empty())
    return R::error("the cost model needs at least one stage program");
  int64_t devices = meshSize(programs.front().meshShape);
  if (devices != cluster.devices())
    return R::error("the plan's mesh has " + std::to_string(devices) +
                    " devices but the cluster '" + cluster.spec + "' has " +
                    std::to_string(cluster.devices()));
  if (!(peakFlops(cluster.device, model.computeDType) > 0))
    return R::error("the cluster '" + cluster.spec + "' gives its device no FLOP rate");
  std::vector<StagePrediction> stages;
  const int microBatches = microBatchesOf(programs);
  for (const ExecProgram &program : programs)
    stages.push_back(finishStage(measureStage(program, cluster, microBatches, byKernel)));
  // Interleaved: each chunk timed from its own passes' instructions.
  const int chunks = programs.front().chunks;
  std::vector<schedule::StageTimes> perChunk;
  if (chunks > 1) {
    perChunk.resize(size_t(chunks) * programs.size());
    for (size_t s = 0; s < programs.size(); ++s)
      for (int c = 0; c < chunks; ++c) {
        StagePrediction part = finishStage(
            measureStage(chunkOf(programs[s], c), cluster, microBatches, false));
        perChunk[size_t(c) * programs.size() + s] = {part.forward, part.backward,
                                                     part.sendForward, part.sendBackward};
      }
  }
  return compose(std::move(stages), microBatches, chunks, model, cluster, perChunk);
}

ExecProgram chunkOf(const ExecProgram &program, int chunk) {
  ExecProgram part = program;
  part.instructions.clear();
  const auto &layers = program.chunkLayers;
  auto chunkOfLayer = [&](int layer) {
    if (layer == -2) // the embedding: the first chunk
      return 0;
    for (size_t c = 0; c < layers.size(); ++c)
      if (layer >= layers[c].first && layer < layers[c].first + layers[c].second)
        return int(c);
    // The head (numbered after every layer) is on the last chunk; what else names a layer
    // of another stage is a receive, which costs nothing here.
    if (!layers.empty() && layer >= layers.back().first + layers.back().second)
      return int(layers.size()) - 1;
    return -1;
  };
  for (const ExecInstruction &inst : program.instructions)
    if ((inst.pass == Pass::Forward || inst.pass == Pass::Backward) &&
        chunkOfLayer(inst.layer) == chunk)
      part.instructions.push_back(inst);
  return part;
}

Result<Prediction> compose(std::vector<StagePrediction> stagePredictions, int microBatches,
                           int chunks, const ModelFigures &model, const Cluster &cluster,
                           const std::vector<schedule::StageTimes> &perChunk) {
  using R = Result<Prediction>;
  if (stagePredictions.empty())
    return R::error("the cost model needs at least one stage");
  Prediction p;
  p.devices = cluster.devices();
  p.microBatches = microBatches;
  int stages = int(stagePredictions.size());
  p.stages = std::move(stagePredictions);
  std::vector<schedule::StageTimes> times;
  for (const StagePrediction &s : p.stages) {
    times.push_back({s.forward, s.backward, s.sendForward, s.sendBackward});
    p.flopsPerStep = std::max(p.flopsPerStep, s.flops); // the busiest stage sets the pace
    p.peakBytesPerDevice = std::max(p.peakBytesPerDevice, s.memory.total());
  }
  // 1F1B, or with chunks the interleaved schedule on the chunks' even shares.
  auto order = schedule::scheduleFor(stages, std::max(chunks, 1), p.microBatches);
  if (!order)
    return R::error(order.message());
  bool measuredChunks = chunks > 1 && perChunk.size() == size_t(chunks) * size_t(stages);
  if (chunks > 1)
    p.chunkTimes = measuredChunks ? perChunk : schedule::chunkTimes(times, chunks);
  auto timeline = schedule::timeSchedule(*order, chunks > 1 ? p.chunkTimes : times);
  if (!timeline)
    return R::error(timeline.message());
  p.timeline = std::move(*timeline);
  for (int s = 0; s < stages; ++s) {
    StagePrediction &stage = p.stages[size_t(s)];
    stage.end = p.timeline.stageEnd[size_t(s)] + stage.step;
    if (stage.end > p.secondsPerStep) {
      p.secondsPerStep = stage.end;
      p.criticalStage = s;
    }
  }

  // The critical stage's time by kind; what it spends neither working nor waiting for a
  // transfer is the bubble.
  const StagePrediction &critical = p.stages[size_t(p.criticalStage)];
  Seconds breakdown;
  for (const char *kind : {"compute", "recompute"})
    breakdown.add(kind, 0);
  for (const auto &e : critical.busy)
    breakdown.add(e.first, e.second);
  double idle = p.secondsPerStep - breakdown.total();
  if (idle < 1e-12 * p.secondsPerStep) // rounding, not idle time
    idle = 0;
  double transfers = 0;
  if (p.criticalStage > 0)
    transfers += p.stages[size_t(p.criticalStage - 1)].sendForward;
  if (p.criticalStage + 1 < stages)
    transfers += p.stages[size_t(p.criticalStage + 1)].sendBackward;
  double waiting = std::min(idle, transfers * p.microBatches);
  if (stages > 1)
    breakdown.add("p2p", waiting);
  breakdown.add("optimizer", 0);
  breakdown.add("bubble", idle - waiting);
  p.breakdown = std::move(breakdown.entries);

  p.tokensPerStep = double(model.globalBatch) * double(model.seqLen);
  p.flopsPerToken = model.flopsPerToken();
  if (p.secondsPerStep > 0) {
    p.tokensPerSecondPerDevice = p.tokensPerStep / p.secondsPerStep / double(p.devices);
    p.mfu = p.tokensPerSecondPerDevice * p.flopsPerToken /
            peakFlops(cluster.device, model.computeDType);
  }
  p.usableBytesPerDevice = cluster.device.memoryBytes * cluster.device.usableMemoryFraction;
  p.fits = !(p.usableBytesPerDevice > 0) || double(p.peakBytesPerDevice) <= p.usableBytesPerDevice;
  return p;
}

} // namespace apc::cost
