#include "compiler/search/PlanSearch.h"

#include "compiler/search/StandInEstimate.h"

#include "compiler/driver/Compile.h"
#include "compiler/driver/Predict.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/stages/Stages.h"
#include "compiler/support/EntryFunction.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Diagnostics.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <thread>

namespace apc::search {
namespace {

// Trained parameters of the imported step; without the embedding tables that are only
// looked up (no GEMM reads them: a tied one is the LM head's too) when `gemmsOnly`.
double parameterCount(mlir::func::FuncOp step, bool gemmsOnly) {
  double parameters = 0;
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    if (argRole(step, i) != "parameter")
      continue;
    mlir::BlockArgument arg = step.getArgument(i);
    bool lookupOnly = !arg.use_empty() && llvm::all_of(arg.getUsers(), [](mlir::Operation *op) {
      return mlir::isa<ap::EmbeddingOp>(op);
    });
    if (auto type = mlir::dyn_cast<mlir::RankedTensorType>(arg.getType());
        type && !(gemmsOnly && lookupOnly))
      parameters += double(type.getNumElements());
  }
  return parameters;
}

// FLOPs per step that no plan can avoid, counted no higher than the ops' cost rules
// count them (so the bound stays below every prediction): 6 per GEMM parameter per token
// for forward and backward; attention causal, 2 h s d per token forward and 2.5 x that
// backward (compiler/rules/AttentionRules.cpp), of which 6 h s d are counted.
double unavoidableFlopsPerStep(mlir::func::FuncOp step, const cost::ModelFigures &m) {
  double tokens = double(m.globalBatch) * double(m.seqLen);
  return (6 * parameterCount(step, /*gemmsOnly=*/true) +
          6 * double(m.layers) * double(m.heads) * double(m.headDim) * double(m.seqLen)) *
         tokens;
}

// The fastest rate a GEMM or attention kernel can reach on the cluster: the measured
// samples' best, else the peak at the profile's GEMM efficiency (the model derates both
// kernels by it and by their shapes' tile efficiency, at most 1).
double bestRate(const cost::Cluster &cluster) {
  double best = 0;
  for (const auto &[dtype, flops] : cluster.device.peakFlops)
    best = std::max(best, flops * cluster.device.gemmEfficiency);
  for (const cost::GemmSample &s : cluster.device.gemm)
    best = std::max(best, s.flopsPerSecond);
  for (const auto &[kernel, rate] : cluster.device.kernelRates)
    if (rate.byFlops)
      for (const cost::RateSample &s : rate.samples)
        best = std::max(best, s.perSecond);
  return best;
}

int recomputeRank(const std::string &recompute) {
  return recompute == "none" ? 0 : recompute == "selective" ? 1 : 2;
}

// How much stage `s` of `p` recomputes (recompute_stages leaves the later ones none).
int stageRecomputeRank(const partition::ParallelPlan &p, int64_t s) {
  return p.recomputeStages > 0 && s >= p.recomputeStages ? 0 : recomputeRank(p.recompute);
}

// Recomputation over the whole plan, for ordering: the rank times the stages it covers.
int64_t recomputeWeight(const partition::ParallelPlan &p) {
  return recomputeRank(p.recompute) * (p.recomputeStages > 0 ? p.recomputeStages : p.pp);
}

// Plans that differ only in what relieves memory: the same degrees, zero and sp, and,
// under a pipeline, the same micro-batch count (there it trades the bubble, not memory).
std::string reliefGroup(const partition::ParallelPlan &p) {
  return std::to_string(p.dp) + "," + std::to_string(p.tp) + "," + std::to_string(p.pp) + "," +
         std::to_string(p.cp) + "," + std::to_string(p.zero) + "," + (p.sp ? "1" : "0") + "," +
         (p.pp > 1 ? std::to_string(p.mb) + "," + std::to_string(p.vp) : std::string("-")) +
         "," + partition::stagesText(p.stages);
}

// Whether `fitting` (same relief group, and it fits) does no more to save memory than
// `plan`: no more micro-batches, no more recomputation. Then `plan` cannot be faster:
// recomputation only adds work, and more micro-batches without a pipeline only split
// the same work into smaller kernels.
bool relievesNoMore(const partition::ParallelPlan &fitting, const partition::ParallelPlan &plan) {
  if (fitting.mb > plan.mb)
    return false;
  for (int64_t s = 0; s < std::max<int64_t>(plan.pp, 1); ++s)
    if (stageRecomputeRank(fitting, s) > stageRecomputeRank(plan, s))
      return false;
  return true;
}

std::string bytesText(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / 1073741824.0);
  return text;
}

// Compiles `plan` on a copy of `module` as apc compile does and predicts it; the error is
// the reason to drop it.
Result<cost::Prediction> compileAndPredict(mlir::ModuleOp module,
                                           const partition::ParallelPlan &plan,
                                           const cost::Cluster &cluster,
                                           const TrainStepOptions &train) {
  Result<cost::Prediction> predicted = Result<cost::Prediction>::error("not compiled");
  Status s = compileCandidate(module, plan, cluster, train, [&](const driver::LoweredStages &l) {
    predicted = driver::predictPlan(l, cluster, /*byKernel=*/false);
  });
  if (!s)
    return s;
  return predicted;
}

// N, L, H, Dh, T, the batch and the compute dtype of the imported step, for MFU.
cost::ModelFigures figuresOf(mlir::func::FuncOp step, const partition::PlanContext &context,
                             const TrainStepOptions &train) {
  cost::ModelFigures m = driver::modelShapeOf(step);
  m.parameters = parameterCount(step, /*gemmsOnly=*/false);
  m.seqLen = context.seqLen;
  m.globalBatch = context.batch;
  m.computeDType = train.precision == "bf16" ? "bf16" : "f32";
  return m;
}

} // namespace

double statesLowerBoundBytes(const partition::ParallelPlan &plan, double parameters) {
  double split = double(std::max<int64_t>(plan.tp, 1) * std::max<int64_t>(plan.pp, 1));
  double dp = double(std::max<int64_t>(plan.dp, 1));
  // Under any ZeRO level the f32 masters are split over dp like their moments (the
  // distributed optimizer's layout).
  double master = 4 * parameters / (split * (plan.zero >= 1 ? dp : 1));
  double moments = 8 * parameters / (split * (plan.zero >= 1 ? dp : 1));
  return master + moments;
}

double stepLowerBound(const partition::ParallelPlan &plan, double flopsPerStep,
                      double flopsPerSecond, int64_t devices) {
  if (!(flopsPerSecond > 0) || devices < 1)
    return 0;
  // Full recomputation runs the forward twice: 8 of 6 parts of the work (on every stage;
  // on some, the stages without it bound the step as well).
  double work = plan.recompute == "full" && plan.recomputeStages == 0 ? flopsPerStep * 4.0 / 3.0
                                                                       : flopsPerStep;
  double compute = work / (double(devices) * flopsPerSecond);
  // The bubble: (pp - 1) / (vp mb) of the work with vp chunks per stage.
  double mb = double(std::max<int64_t>(plan.mb, 1)) * double(std::max<int64_t>(plan.vp, 1)),
         pp = double(std::max<int64_t>(plan.pp, 1));
  return compute * (mb + pp - 1) / mb;
}

Result<cost::Prediction> estimatePlan(mlir::ModuleOp module, const partition::ParallelPlan &plan,
                                      const cost::Cluster &cluster, const TrainStepOptions &train,
                                      const RebuildFn &rebuild, uint64_t *peakUpper) {
  auto step = findEntryFunction(module);
  if (mlir::failed(step))
    return Result<cost::Prediction>::error("no training step");
  auto context = partition::planContextOf(*step, cluster.devices(), cluster.spec);
  if (!context)
    return context.status();
  std::vector<mlir::OwningOpRef<mlir::ModuleOp>> built;
  auto standIn = [&](int64_t layers, int64_t batch) -> Result<mlir::ModuleOp> {
    auto m = rebuild(*module.getContext(), layers, batch);
    if (!m)
      return m.status();
    built.push_back(std::move(*m));
    return *built.back();
  };
  stages::ModelSizes sizes = stages::modelSizesOf(
      (*step)->getAttrOfType<mlir::DictionaryAttr>("ap.model"), context->seqLen);
  StandInEstimator estimator(sizes, figuresOf(*step, *context, train), cluster, train,
                             context->batch, standIn);
  return estimator.estimate(plan, peakUpper);
}

Result<SearchResult> searchPlans(mlir::ModuleOp module, const cost::Cluster &cluster,
                                 const SearchOptions &options) {
  using R = Result<SearchResult>;
  auto start = std::chrono::steady_clock::now();
  auto step = findEntryFunction(module);
  if (mlir::failed(step))
    return R::error("no training step to plan (see above)");
  auto context = partition::planContextOf(*step, cluster.devices(), cluster.spec);
  if (!context)
    return context.status();
  Space space = enumeratePlans(*context, cluster, options.space);
  SearchResult result;
  result.enumerated = space.enumerated;
  result.dropped = space.dropped;
  if (space.candidates.empty()) {
    if (space.dropped.empty())
      return R::error("no plan of " + std::to_string(cluster.devices()) +
                      " devices has the fixed fields (dp x tp x pp must be " +
                      std::to_string(cluster.devices()) + ")");
    return R::error("no plan can run: " + space.dropped.front().plan.toString() + ": " +
                    space.dropped.front().reason + (space.dropped.size() > 1 ? " (and " +
                    std::to_string(space.dropped.size() - 1) + " more dropped)" : ""));
  }

  // Plans whose parameters and optimizer state alone exceed the memory are dropped
  // without compiling.
  const cost::ModelFigures figures = figuresOf(*step, *context, options.train);
  const double parameters = figures.parameters;
  const double usable = cluster.device.memoryBytes * cluster.device.usableMemoryFraction;

  // Cheapest bound first: the best plans are likely early, and the rest prune. Among
  // equal bounds, the plans that relieve memory least first (relievesNoMore).
  double flops = unavoidableFlopsPerStep(*step, figures), rate = bestRate(cluster);
  std::vector<std::pair<double, partition::ParallelPlan>> order;
  for (const partition::ParallelPlan &plan : space.candidates) {
    double states = statesLowerBoundBytes(plan, parameters);
    if (!options.exhaustive && usable > 0 && states > usable) {
      result.dropped.push_back({plan, "memory: at least " + bytesText(states) +
                                          " of parameters and optimizer state per device "
                                          "(12 bytes per parameter over its shards), more "
                                          "than the " + bytesText(usable) + " usable"});
      ++result.droppedByMemoryBound;
      continue;
    }
    order.push_back({stepLowerBound(plan, flops, rate, cluster.devices()), plan});
  }
  std::stable_sort(order.begin(), order.end(), [](const auto &a, const auto &b) {
    if (a.first != b.first)
      return a.first < b.first;
    int64_t ra = recomputeWeight(a.second), rb = recomputeWeight(b.second);
    return ra != rb ? ra < rb : a.second.mb < b.second.mb;
  });
  std::map<std::string, std::vector<partition::ParallelPlan>> fittingByGroup;

  const stages::ModelSizes sizes =
      stages::modelSizesOf((*step)->getAttrOfType<mlir::DictionaryAttr>("ap.model"),
                           context->seqLen);
  // Whether a plan is estimated from stand-ins, or compiled whole as it is no bigger.
  auto estimable = [&](const partition::ParallelPlan &plan) {
    return options.rebuild && !options.exhaustive && plan.vp == 1 &&
           !(sizes.layers <= 2 * plan.pp && plan.pp <= 3 && plan.mb <= 3);
  };
  // Two lanes where there is a second core: two plans estimated at once, each lane with
  // its own context (one context shared by two threads mostly waits on its locks), its
  // stand-ins traced once per (layers, batch) and its estimator. Whole compiles run in
  // the first lane, the step's context.
  struct Lane {
    mlir::MLIRContext *context = nullptr;
    std::map<std::pair<int64_t, int64_t>, mlir::OwningOpRef<mlir::ModuleOp>> standIns;
    std::unique_ptr<StandInEstimator> estimator;
  };
  const bool twoLanes = options.rebuild && !options.exhaustive && options.lanes > 1 &&
                        std::thread::hardware_concurrency() > 1;
  std::unique_ptr<mlir::MLIRContext> secondContext;
  if (twoLanes)
    secondContext = std::make_unique<mlir::MLIRContext>(
        module.getContext()->getDialectRegistry(), mlir::MLIRContext::Threading::DISABLED);
  Lane lanes[2];
  auto sharedWorks = std::make_shared<StandInCache>();
  for (int l = 0; l < (twoLanes ? 2 : 1); ++l) {
    Lane &lane = lanes[l];
    lane.context = l == 0 ? module.getContext() : secondContext.get();
    auto standIn = [&lane, &options](int64_t layers, int64_t batch) -> Result<mlir::ModuleOp> {
      auto it = lane.standIns.find({layers, batch});
      if (it == lane.standIns.end()) {
        auto built = options.rebuild(*lane.context, layers, batch);
        if (!built)
          return built.status();
        it = lane.standIns.emplace(std::pair{layers, batch}, std::move(*built)).first;
      }
      return *it->second;
    };
    lane.estimator = std::make_unique<StandInEstimator>(sizes, figures, cluster, options.train,
                                                        context->batch, standIn, sharedWorks);
  }
  // A plan's prediction in lane `l`: estimated from stand-ins (`exact` false), or compiled
  // whole (only in lane 0).
  auto evaluate = [&](int l, const partition::ParallelPlan &plan, bool &exact,
                      uint64_t &peakUpper) -> Result<cost::Prediction> {
    exact = !estimable(plan);
    if (!exact) {
      auto estimate = lanes[l].estimator->estimate(plan, &peakUpper);
      if (estimate || l > 0)
        return estimate;
      exact = true; // no estimate (a stand-in that cannot be made): the whole compile says
    }
    return compileAndPredict(module, plan, cluster, options.train);
  };

  // Pass 1: every candidate in bound order, estimated or compiled; the best kept.
  struct Scored {
    partition::ParallelPlan plan;
    cost::Prediction prediction;
    double bound = 0;
    bool exact = false;
  };
  std::vector<Scored> scored; // fitting, fastest first
  // The step times of the plans sure to fit (exactly, or estimated with 10% to spare),
  // sorted: only they prune by bound, since pass 2 may drop the others.
  std::vector<double> sure;
  const size_t top = size_t(std::max(1, options.top));
  auto prunes = [&](double bound) {
    return !options.exhaustive && sure.size() >= top && bound >= sure[top - 1];
  };
  auto dominated = [&](const partition::ParallelPlan &plan) {
    if (options.exhaustive)
      return false;
    for (const partition::ParallelPlan &fit : fittingByGroup[reliefGroup(plan)])
      if (relievesNoMore(fit, plan))
        return true;
    return false;
  };
  // Every plan evaluated with its step time, fitting or not, by relief group: a plan that
  // relieves memory more than one of them (rule 3's order) is no faster than it, so its
  // time bounds the plan's from below (at 98%: the estimates' error is within 1%).
  std::map<std::string, std::vector<std::pair<partition::ParallelPlan, double>>> timedByGroup;
  auto siblingBound = [&](const partition::ParallelPlan &plan) {
    double bound = 0;
    for (const auto &[other, seconds] : timedByGroup[reliefGroup(plan)])
      if (relievesNoMore(other, plan))
        bound = std::max(bound, 0.98 * seconds);
    return bound;
  };
  auto siblingPrunes = [&](const partition::ParallelPlan &plan) {
    return !options.exhaustive && sure.size() >= top && siblingBound(plan) >= sure[top - 1];
  };
  // Keeps what evaluating `plan` found.
  auto record = [&](double bound, const partition::ParallelPlan &plan, bool exact,
                    uint64_t peakUpper, Result<cost::Prediction> prediction) {
    ++(exact ? result.compiled : result.estimated);
    if (prediction)
      timedByGroup[reliefGroup(plan)].push_back({plan, prediction->secondsPerStep});
    if (!prediction) {
      result.dropped.push_back({plan, prediction.message()});
      return;
    }
    // An estimate's memory is close, not exact (the arena planner packs a deeper program
    // a little differently): one within 10% of the memory is compiled whole to decide.
    bool fits = exact ? prediction->fits
                      : !(prediction->usableBytesPerDevice > 0) ||
                            double(prediction->peakBytesPerDevice) <=
                                1.10 * prediction->usableBytesPerDevice;
    if (!fits) {
      result.dropped.push_back(
          {plan, std::string(exact ? "memory: " : "memory (estimated): ") +
                     bytesText(double(prediction->peakBytesPerDevice)) +
                     " per device, more than the " +
                     bytesText(prediction->usableBytesPerDevice) + " usable"});
      return;
    }
    // It spares the plans relieving more memory only if it surely fits: exactly, or by an
    // estimate whose bound (StandInEstimator::estimate's peakUpper) has 10% to spare.
    if (exact || !(prediction->usableBytesPerDevice > 0) ||
        double(std::max<uint64_t>(peakUpper, prediction->peakBytesPerDevice)) <=
            0.90 * prediction->usableBytesPerDevice) {
      fittingByGroup[reliefGroup(plan)].push_back(plan);
      sure.insert(std::upper_bound(sure.begin(), sure.end(), prediction->secondsPerStep),
                  prediction->secondsPerStep);
    }
    Scored entry{plan, std::move(*prediction), bound, exact};
    auto pos = std::upper_bound(scored.begin(), scored.end(), entry,
                                [](const Scored &a, const Scored &b) {
                                  return a.prediction.secondsPerStep < b.prediction.secondsPerStep;
                                });
    scored.insert(pos, std::move(entry));
  };
  // The next candidate from `i` on that is neither pruned nor dominated (dominated ones
  // and those a sibling's time prunes counted); order.size() when none is left.
  // `prunedFrom`: where the bound order stopped the search (every plan from there on
  // cannot enter the top K).
  size_t prunedFrom = order.size();
  int64_t skippedByBound = 0;
  auto next = [&](size_t i) {
    for (; i < order.size(); ++i) {
      if (prunes(order[i].first)) {
        prunedFrom = std::min(prunedFrom, i);
        return order.size();
      }
      if (dominated(order[i].second))
        ++result.dominated;
      else if (siblingPrunes(order[i].second))
        ++skippedByBound;
      else
        return i;
    }
    return i;
  };
  // Judges `j` again after an earlier candidate's result: true when it is still to be
  // evaluated (else it was pruned, by the order, which stops the search, or by a sibling,
  // or counted as dominated).
  auto stillOpen = [&](size_t j) {
    if (prunes(order[j].first)) {
      prunedFrom = std::min(prunedFrom, j);
      return false;
    }
    if (dominated(order[j].second)) {
      ++result.dominated;
      return false;
    }
    if (siblingPrunes(order[j].second)) {
      ++skippedByBound;
      return false;
    }
    return true;
  };
  // With two lanes, a window of candidates in order up to the second that needs stand-ins
  // compiled (the others' are cached: estimating them costs next to nothing): those two
  // are estimated at once, then the window is judged and recorded in order, each after
  // the results before it (pruned or dominated by them, it is let go as one lane would:
  // the decisions only grow more certain, so those made early stay right).
  size_t i = next(0);
  bool judged = true; // order[i] passed next() with the results recorded so far
  while (i < order.size()) {
    if (!judged && !stillOpen(i)) {
      i = prunedFrom < order.size() ? order.size() : next(i + 1);
      judged = true;
      continue;
    }
    const auto &[bound, plan] = order[i];
    bool exact = true;
    uint64_t peakUpper = 0;
    if (!twoLanes || !estimable(plan)) {
      record(bound, plan, exact, peakUpper, evaluate(0, plan, exact, peakUpper));
      i = next(i + 1);
      continue;
    }
    std::vector<size_t> window{i};
    std::vector<size_t> compiling; // window entries whose stand-ins are not cached
    if (lanes[0].estimator->needsCompile(plan))
      compiling.push_back(i);
    size_t after = order.size(); // the first candidate past the window (judged by next())
    for (size_t k = i; compiling.size() < 2;) {
      k = next(k + 1);
      if (k >= order.size())
        break;
      if (!estimable(order[k].second)) {
        after = k;
        break;
      }
      window.push_back(k);
      if (lanes[0].estimator->needsCompile(order[k].second))
        compiling.push_back(k);
    }
    // The two that need compiling, at once (their results kept for their turn).
    std::map<size_t, std::tuple<Result<cost::Prediction>, bool, uint64_t>> done;
    if (compiling.size() == 2) {
      bool exact1 = true, exact2 = true;
      uint64_t upper1 = 0, upper2 = 0;
      Result<cost::Prediction> r2 = Result<cost::Prediction>::error("not estimated");
      std::thread worker(
          [&] { r2 = evaluate(1, order[compiling[1]].second, exact2, upper2); });
      auto r1 = evaluate(0, order[compiling[0]].second, exact1, upper1);
      worker.join();
      done.emplace(compiling[0], std::make_tuple(std::move(r1), exact1, upper1));
      done.emplace(compiling[1], std::make_tuple(std::move(r2), exact2, upper2));
    }
    // Every window entry comes before where extending it found the order pruned (if it
    // did); an entry's result may prune the later ones.
    for (size_t w = 0; w < window.size(); ++w) {
      size_t k = window[w];
      if (w > 0 && !stillOpen(k)) {
        if (prunedFrom <= k)
          break;
        continue;
      }
      auto it = done.find(k);
      if (it != done.end()) {
        auto &[result, wasExact, upper] = it->second;
        record(order[k].first, order[k].second, wasExact, upper, std::move(result));
      } else {
        bool e = true;
        uint64_t u = 0;
        record(order[k].first, order[k].second, e, u, evaluate(0, order[k].second, e, u));
      }
    }
    if (prunedFrom < order.size())
      break;
    if (after < order.size()) { // a whole compile: judged again, then evaluated alone
      i = after;
      judged = false;
      continue;
    }
    i = next(window.back() + 1);
  }
  result.prunedByBound = skippedByBound + int64_t(order.size() - prunedFrom);

  // Pass 2: the winner compiled whole (an estimate is only an estimate: its figures,
  // memory included, are replaced by the real ones): the best estimates in order until
  // one fits, and every one estimated within kOvertake of the best compiled so far (an
  // estimate that close might still overtake it). The rest of the ranking keeps the
  // estimates of the plans that fit by them, marked as estimated.
  constexpr double kOvertake = 1.02;
  std::vector<Ranked> finals;
  double best = -1;
  for (Scored &entry : scored) {
    const bool contender = best < 0 || entry.prediction.secondsPerStep < kOvertake * best;
    if (!contender) {
      if (finals.size() >= top)
        break;
      if (!entry.exact && !entry.prediction.fits)
        continue; // estimated within 10% over the memory: not known to fit
    } else if (!entry.exact) {
      auto real = compileAndPredict(module, entry.plan, cluster, options.train);
      ++result.compiled;
      if (!real) {
        result.dropped.push_back({entry.plan, real.message()});
        continue;
      }
      if (!real->fits) {
        result.dropped.push_back(
            {entry.plan, "memory: " + bytesText(double(real->peakBytesPerDevice)) +
                             " per device, more than the " +
                             bytesText(real->usableBytesPerDevice) + " usable (estimated to fit)"});
        continue;
      }
      entry.prediction = std::move(*real);
      entry.exact = true;
    }
    Ranked ranked{entry.plan, std::move(entry.prediction), entry.bound, !entry.exact};
    auto pos = std::upper_bound(finals.begin(), finals.end(), ranked,
                                [](const Ranked &x, const Ranked &y) {
                                  return x.prediction.secondsPerStep < y.prediction.secondsPerStep;
                                });
    finals.insert(pos, std::move(ranked));
    if (finals.size() > top)
      finals.pop_back();
    if (!finals.front().estimated)
      best = finals.front().prediction.secondsPerStep;
  }
  result.ranked = std::move(finals);
  for (const Lane &lane : lanes)
    result.standInCompiles += lane.estimator ? lane.estimator->compiles() : 0;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.ranked.empty() && result.dropped.empty())
    return R::error("no plan fits: none of the " + std::to_string(result.enumerated) +
                    " could be evaluated");
  if (result.ranked.empty()) {
    const Dropped &first = result.dropped.front();
    return R::error("no plan fits: all " + std::to_string(result.enumerated) +
                    " were dropped (" + std::to_string(result.droppedByMemoryBound) +
                    " whose parameters and state alone exceed the memory, " +
                    std::to_string(result.compiled + result.estimated) +
                    " estimated or compiled; the first: " + first.plan.toString() + ": " +
                    first.reason + ")");
  }
  return result;
}

} // namespace apc::search
