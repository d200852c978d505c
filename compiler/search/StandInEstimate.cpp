#include "compiler/search/StandInEstimate.h"

#include "compiler/driver/Compile.h"

#include "mlir/IR/Diagnostics.h"

#include <algorithm>
#include <cmath>
#include <optional>

namespace apc::search {
namespace {

// The most stages a stand-in pipeline has: a first, a middle and a last.
constexpr int64_t kStandInStages = 3;

using Entries = std::vector<std::pair<std::string, double>>;

// a + t (b - a), entry by entry (a name missing on one side counts 0 there).
Entries lerp(const Entries &a, const Entries &b, double t) {
  Entries out = a;
  for (auto &[name, value] : out) {
    double other = 0;
    for (const auto &e : b)
      if (e.first == name)
        other = e.second;
    value += t * (other - value);
  }
  for (const auto &e : b) {
    bool seen = false;
    for (const auto &o : out)
      seen = seen || o.first == e.first;
    if (!seen)
      out.push_back({e.first, t * e.second});
  }
  return out;
}

double lerp(double a, double b, double t) { return a + t * (b - a); }
uint64_t lerp(uint64_t a, uint64_t b, double t) {
  return uint64_t(std::llround(std::max(0.0, lerp(double(a), double(b), t))));
}

cost::PhaseWork lerp(const cost::PhaseWork &a, const cost::PhaseWork &b, double t) {
  cost::PhaseWork p;
  p.compute = lerp(a.compute, b.compute, t);
  p.busy = lerp(a.busy, b.busy, t);
  p.hideable = lerp(a.hideable, b.hideable, t);
  p.flops = lerp(a.flops, b.flops, t);
  return p;
}

// The work a + t (b - a): between two stand-ins (t in [0, 1]) or beyond them.
cost::StageWork lerp(const cost::StageWork &a, const cost::StageWork &b, double t) {
  cost::StageWork w;
  w.forward = lerp(a.forward, b.forward, t);
  w.backward = lerp(a.backward, b.backward, t);
  w.forwardRest = lerp(a.forwardRest, b.forwardRest, t);
  w.backwardRest = lerp(a.backwardRest, b.backwardRest, t);
  w.step = lerp(a.step, b.step, t);
  w.recompute = lerp(a.recompute, b.recompute, t);
  w.sendForward = lerp(a.sendForward, b.sendForward, t);
  w.sendBackward = lerp(a.sendBackward, b.sendBackward, t);
  w.microBatches = a.microBatches;
  const cost::MemoryUse &x = a.memory, &y = b.memory;
  w.memory.parameters = lerp(x.parameters, y.parameters, t);
  w.memory.optimizerState = lerp(x.optimizerState, y.optimizerState, t);
  w.memory.inputs = lerp(x.inputs, y.inputs, t);
  w.memory.arena = lerp(x.arena, y.arena, t);
  w.memory.staging = lerp(x.staging, y.staging, t);
  w.memory.gradientsInArena = lerp(x.gradientsInArena, y.gradientsInArena, t);
  return w;
}

// No time below zero (an extrapolation past a small term).
void clampPhase(cost::PhaseWork &p) {
  p.compute = std::max(0.0, p.compute);
  p.flops = std::max(0.0, p.flops);
  for (auto *entries : {&p.busy, &p.hideable})
    for (auto &e : *entries)
      e.second = std::max(0.0, e.second);
}

void scale(cost::PhaseWork &p, double f) {
  p.compute *= f;
  p.flops *= f;
  for (auto *entries : {&p.busy, &p.hideable})
    for (auto &e : *entries)
      e.second *= f;
}

// The passes' work of `w` for `microBatches` micro-batches: the first's as it is, the
// others' as the stand-in's others (the update runs once).
void scalePasses(cost::StageWork &w, int64_t microBatches) {
  if (w.microBatches > 1) {
    double others = double(microBatches - 1) / double(w.microBatches - 1);
    scale(w.forwardRest, others);
    scale(w.backwardRest, others);
  } else { // no other micro-batch measured: only a plan of one asks for this one
    w.forwardRest = w.forward;
    w.backwardRest = w.backward;
    scale(w.forwardRest, double(microBatches - 1));
    scale(w.backwardRest, double(microBatches - 1));
  }
  double f = double(microBatches) / double(std::max(1, w.microBatches));
  w.recompute *= f;
  w.sendForward *= f;
  w.sendBackward *= f;
  w.microBatches = int(microBatches);
}

// The cluster a stand-in of `stages` stages runs on, for `plan` on `cluster`: its
// data-parallel groups (the outermost mesh axis, every pp x cp x tp ranks) have as many
// ranks on one node as the real plan's, and its cp and tp groups stay in a node. None
// where the node does not divide evenly (then the stand-in keeps all the plan's stages).
std::optional<cost::Cluster> standInCluster(const cost::Cluster &cluster,
                                            const partition::ParallelPlan &plan,
                                            int64_t stages) {
  cost::Cluster c = cluster;
  const int64_t inStage = plan.cp * plan.tp; // the ranks of one stage of one replica
  const int64_t node = cluster.devicesPerNode, replica = plan.pp * inStage;
  if (cluster.devices() <= node) {
    c.devicesPerNode = plan.dp * inStage * stages;
    c.nodes = 1;
  } else if (replica >= node) {
    if (replica % node != 0 || node % inStage != 0)
      return std::nullopt;
    c.devicesPerNode = stages * inStage; // one replica a node: each dp rank on its own
    c.nodes = plan.dp;
  } else {
    if (node % replica != 0 || plan.dp % (node / replica) != 0)
      return std::nullopt;
    c.devicesPerNode = (node / replica) * stages * inStage;
    c.nodes = plan.dp / (node / replica);
  }
  return c;
}

std::string groupKey(const partition::ParallelPlan &p, int64_t stages, int64_t microBatches,
                     int64_t rows) {
  return std::to_string(rows) + "," + std::to_string(p.dp) + "," + std::to_string(p.tp) + "," +
         std::to_string(p.pp) + "," + std::to_string(p.cp) + "," +
         std::to_string(p.zero) + "," + (p.sp ? "1" : "0") + "," + p.recompute + "," +
         std::to_string(stages) + "," + std::to_string(microBatches);
}

} // namespace

Status compileCandidate(mlir::ModuleOp module, const partition::ParallelPlan &plan,
                        const cost::Cluster &cluster, const TrainStepOptions &train,
                        const std::function<void(const driver::LoweredStages &)> &use,
                        bool verify) {
  std::string firstError;
  mlir::ScopedDiagnosticHandler quiet(module.getContext(), [&](mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error && firstError.empty())
      firstError = d.str();
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> copy(module.clone());
  if (Status s = driver::setParallelPlan(*copy, plan, cluster); !s)
    return s;
  if (mlir::failed(driver::runPasses(*copy, train, Phase::Pipeline, /*timing=*/false, verify)))
    return Status::error("does not compile: " + firstError);
  auto lowered = driver::lowerStages(*copy);
  if (mlir::failed(lowered))
    return Status::error("does not lower: " + firstError);
  use(*lowered);
  return Status::ok();
}

Result<StandInEstimator::Anchor>
StandInEstimator::compileAnchor(const partition::ParallelPlan &plan, int64_t stages,
                                int64_t microBatches, int64_t rows) {
  using R = Result<Anchor>;
  std::optional<cost::Cluster> cluster =
      stages == plan.pp ? std::optional<cost::Cluster>(cluster_)
                        : standInCluster(cluster_, plan, stages);
  if (!cluster)
    return R::error("no stand-in cluster");
  Anchor anchor;
  for (int64_t k : {1, 2}) { // 1 and 2 layers per stage
    auto m = standIn_(k * stages, rows * plan.dp * microBatches);
    if (!m)
      return R::error("cannot trace a stand-in of " + std::to_string(k * stages) +
                      " layers: " + m.message());
    partition::ParallelPlan small = plan;
    small.pp = stages;
    small.stages.assign(size_t(stages), k);
    small.mb = microBatches;
    std::vector<cost::StageWork> &works = k == 1 ? anchor.one : anchor.two;
    ++compiles_;
    Status s = compileCandidate(
        *m, small, *cluster, train_,
        [&](const driver::LoweredStages &l) {
          int mb = cost::microBatchesOf(l.programs);
          for (const lowering::ExecProgram &program : l.programs)
            works.push_back(cost::measureStage(program, *cluster, mb));
        },
        /*verify=*/false);
    if (!s)
      return R::error(s.message());
    if (int64_t(works.size()) != stages)
      return R::error("a stand-in compiled to " + std::to_string(works.size()) +
                      " stages, not " + std::to_string(stages));
  }
  return anchor;
}

StandInEstimator::Shape StandInEstimator::shapeOf(const partition::ParallelPlan &plan) const {
  int64_t stages = std::min(plan.pp, kStandInStages);
  if (stages < plan.pp && !standInCluster(cluster_, plan, stages))
    stages = plan.pp;
  // Micro-batches of the plan's size: 2 without a pipeline (the first, and one that
  // accumulates gradients: every other is like it); in a pipeline that the stand-in has
  // whole, up to 2 per stage, past which a 1F1B stage's memory no longer grows with their
  // count (the schedule's steady state is reached: PlanSearchTest checks it); a deeper
  // one's stand-in runs one per stage (its memory is scaled, not bounded, in estimate).
  const int64_t microBatches =
      std::min(plan.mb, plan.pp == 1 ? 2 : stages < plan.pp ? stages : 2 * stages);
  return {stages, microBatches, batch_ / (plan.dp * plan.mb)};
}

bool StandInEstimator::needsCompile(const partition::ParallelPlan &plan) {
  const Shape shape = shapeOf(plan);
  std::lock_guard<std::mutex> lock(cache_->mutex);
  for (const std::string &recompute :
       {plan.recompute, std::string(plan.recomputeStages > 0 ? "none" : plan.recompute)}) {
    partition::ParallelPlan uniform = plan;
    uniform.recompute = recompute;
    uniform.recomputeStages = 0;
    if (!cache_->works.count(groupKey(uniform, shape.stages, shape.microBatches, shape.rows)))
      return true;
  }
  return false;
}

Result<cost::Prediction> StandInEstimator::estimate(const partition::ParallelPlan &plan,
                                                    uint64_t *peakUpper) {
  using R = Result<cost::Prediction>;
  auto real = stages::stageLayers(plan, sizes_);
  if (!real)
    return real.status();
  const Shape shape = shapeOf(plan); // (named, not bound: lambdas below capture them)
  const int64_t stages = shape.stages, microBatches = shape.microBatches, rows = shape.rows;
  // Plans that differ in nothing else share their stand-ins (their stages' layer counts
  // may differ: the stand-ins have 1 and 2 on every stage). A plan recomputing on its
  // first stages only takes those stages from the stand-ins recomputing everywhere, the
  // others from those recomputing nothing: a stage's program is its own.
  std::shared_ptr<const Anchor> held[2]; // keeps what the cache hands out alive
  auto anchorFor = [&](const std::string &recompute) -> Result<const Anchor *> {
    partition::ParallelPlan uniform = plan;
    uniform.recompute = recompute;
    uniform.recomputeStages = 0;
    const std::string key = groupKey(uniform, stages, microBatches, rows);
    std::shared_ptr<const Anchor> &slot = held[recompute == plan.recompute ? 0 : 1];
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      auto it = cache_->works.find(key);
      if (it != cache_->works.end())
        slot = it->second;
    }
    if (!slot) { // compiled unlocked: the other lane may compile another meanwhile
      auto compiled = compileAnchor(uniform, stages, microBatches, rows);
      if (!compiled)
        return compiled.status();
      slot = std::make_shared<const Anchor>(std::move(*compiled));
      std::lock_guard<std::mutex> lock(cache_->mutex);
      cache_->works.emplace(key, slot);
    }
    return slot.get();
  };
  auto recomputing = anchorFor(plan.recompute);
  if (!recomputing)
    return recomputing.status();
  const Anchor *notRecomputing = *recomputing;
  if (plan.recomputeStages > 0) {
    auto none = anchorFor("none");
    if (!none)
      return none.status();
    notRecomputing = *none;
  }

  // A decoder layer's gradient on one device in the compute precision, full size (before
  // any reduction): what piles up until the step's reductions.
  const stages::ModelSizes &m = sizes_;
  const double layerParameters =
      double(m.hidden) * double(m.headDim) * double(2 * m.heads + 2 * m.kvHeads) +
      3.0 * double(m.hidden) * double(m.ffn) + 2.0 * double(m.hidden);
  const double computeBytes = train_.precision == "bf16" ? 2.0 : 4.0;
  const double layerGradient =
      computeBytes * layerParameters / double(std::max<int64_t>(plan.tp, 1));
  double upper = 0;
  std::vector<cost::StagePrediction> out;
  for (size_t s = 0; s < real->size(); ++s) {
    // The stand-in stage this one is: the first, the last, or one in the middle.
    size_t role = stages == plan.pp ? s
                  : s == 0          ? 0
                  : s + 1 == real->size() ? size_t(stages - 1)
                                          : 1;
    const Anchor &anchor =
        plan.recomputeStages > 0 && int64_t(s) >= plan.recomputeStages ? *notRecomputing
                                                                          : **recomputing;
    const cost::StageWork &one = anchor.one[role], &two = anchor.two[role];
    const int64_t layers = (*real)[s].count;
    cost::StageWork w = lerp(one, two, double(layers - 1));
    for (cost::PhaseWork *p : {&w.forward, &w.backward, &w.forwardRest, &w.backwardRest, &w.step})
      clampPhase(*p);
    w.recompute = std::max(0.0, w.recompute);
    // Activations in flight: the real schedule's on this stage, where it differs from the
    // stand-in's (a layer's stash per micro-batch from the 1- and 2-layer stand-ins).
    const int64_t inFlight = std::min<int64_t>(plan.mb, plan.pp - int64_t(s));
    const int64_t standInFlight = std::min<int64_t>(microBatches, stages - int64_t(role));
    if (inFlight != standInFlight && standInFlight > 0) {
      double stash = (double(two.memory.arena) - double(one.memory.arena)) -
                     (double(two.memory.gradientsInArena) - double(one.memory.gradientsInArena));
      double perLayer = std::max(0.0, stash) / double(standInFlight);
      double arena = double(w.memory.arena) +
                     double(inFlight - standInFlight) * double(layers) * perLayer;
      w.memory.arena = uint64_t(std::llround(std::max(0.0, arena)));
    }
    // The batch's inputs hold every micro-batch of the step.
    w.memory.inputs = uint64_t(std::llround(double(w.memory.inputs) * double(plan.mb) /
                                            double(microBatches)));
    scalePasses(w, plan.mb);
    out.push_back(cost::finishStage(w));
    upper = std::max(upper, double(w.memory.total()) +
                                double(std::max<int64_t>(0, layers - 2)) * layerGradient);
  }
  // A deeper pipeline than its stand-in, with more micro-batches than it, may keep more
  // than its activations in flight (received inputs and gradients waiting in the
  // unrolled schedule): no bound is claimed for it.
  const bool bounded = plan.pp == 1 || plan.mb <= microBatches || stages == plan.pp;
  if (peakUpper)
    *peakUpper = bounded ? uint64_t(upper) : UINT64_MAX;
  return cost::compose(std::move(out), int(plan.mb), int(std::max<int64_t>(plan.vp, 1)), figures_,
                       cluster_);
}

} // namespace apc::search
