#include "compiler/search/PlanSearch.h"

#include "compiler/driver/Compile.h"
#include "compiler/driver/Predict.h"
#include "compiler/partition/ParallelPlan.h"
#include "compiler/support/EntryFunction.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Diagnostics.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

namespace apc::search {
namespace {

// FLOPs per step that no plan can avoid, counted no higher than the ops' cost rules
// count them (so the bound stays below every prediction): 6 per parameter per token for
// the GEMMs of forward and backward, except an embedding table only looked up (a tied
// one is the LM head's GEMM too); attention causal, 2 h s d per token forward and 2.5 x
// that backward (compiler/rules/AttentionRules.cpp), of which 6 h s d are counted.
double unavoidableFlopsPerStep(mlir::func::FuncOp step, const partition::PlanContext &context) {
  double parameters = 0;
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    if (argRole(step, i) != "parameter")
      continue;
    mlir::BlockArgument arg = step.getArgument(i);
    bool lookupOnly = !arg.use_empty() && llvm::all_of(arg.getUsers(), [](mlir::Operation *op) {
      return mlir::isa<ap::EmbeddingOp>(op);
    });
    if (auto type = mlir::dyn_cast<mlir::RankedTensorType>(arg.getType()); type && !lookupOnly)
      parameters += double(type.getNumElements());
  }
  auto model = step->getAttrOfType<mlir::DictionaryAttr>("ap.model");
  auto get = [&](llvm::StringRef key) -> double {
    auto a = model ? model.getAs<mlir::IntegerAttr>(key) : mlir::IntegerAttr();
    return a ? double(a.getInt()) : 0.0;
  };
  double heads = get("num_attention_heads"), headDim = get("head_dim");
  if (headDim == 0 && heads > 0)
    headDim = get("hidden_size") / heads;
  double tokens = double(context.batch) * double(context.seqLen);
  return (6 * parameters + 6 * get("num_hidden_layers") * heads * headDim *
                               double(context.seqLen)) *
         tokens;
}

// The fastest rate the cluster claims for anything: no kernel beats it.
double bestRate(const cost::Cluster &cluster) {
  double best = 0;
  for (const auto &[dtype, flops] : cluster.device.peakFlops)
    best = std::max(best, flops);
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

// Plans that differ only in what relieves memory: the same degrees, zero and sp, and,
// under a pipeline, the same micro-batch count (there it trades the bubble, not memory).
std::string reliefGroup(const partition::ParallelPlan &p) {
  return std::to_string(p.dp) + "," + std::to_string(p.tp) + "," + std::to_string(p.pp) + "," +
         std::to_string(p.zero) + "," + (p.sp ? "1" : "0") + "," +
         (p.pp > 1 ? std::to_string(p.mb) : std::string("-")) + "," +
         partition::stagesText(p.stages);
}

// Whether `fitting` (same relief group, and it fits) does no more to save memory than
// `plan`: no more micro-batches, no more recomputation. Then `plan` cannot be faster:
// recomputation only adds work, and more micro-batches without a pipeline only split
// the same work into smaller kernels.
bool relievesNoMore(const partition::ParallelPlan &fitting, const partition::ParallelPlan &plan) {
  return fitting.mb <= plan.mb && recomputeRank(fitting.recompute) <= recomputeRank(plan.recompute);
}

std::string bytesText(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / 1073741824.0);
  return text;
}

} // namespace

double statesLowerBoundBytes(const partition::ParallelPlan &plan, double parameters) {
  double split = double(std::max<int64_t>(plan.tp, 1) * std::max<int64_t>(plan.pp, 1));
  double dp = double(std::max<int64_t>(plan.dp, 1));
  double master = 4 * parameters / (split * (plan.zero >= 3 ? dp : 1));
  double moments = 8 * parameters / (split * (plan.zero >= 1 ? dp : 1));
  return master + moments;
}

double stepLowerBound(const partition::ParallelPlan &plan, double flopsPerStep,
                      double flopsPerSecond, int64_t devices) {
  if (!(flopsPerSecond > 0) || devices < 1)
    return 0;
  // Full recomputation runs the forward twice: 8 of 6 parts of the work.
  double work = plan.recompute == "full" ? flopsPerStep * 4.0 / 3.0 : flopsPerStep;
  double compute = work / (double(devices) * flopsPerSecond);
  double mb = double(std::max<int64_t>(plan.mb, 1)), pp = double(std::max<int64_t>(plan.pp, 1));
  return compute * (mb + pp - 1) / mb;
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
  double parameters = 0;
  for (unsigned a = 0; a < step->getNumArguments(); ++a)
    if (argRole(*step, a) == "parameter")
      if (auto type = mlir::dyn_cast<mlir::RankedTensorType>(step->getArgument(a).getType()))
        parameters += double(type.getNumElements());
  const double usable = cluster.device.memoryBytes * cluster.device.usableMemoryFraction;

  // Cheapest bound first: the best plans are likely early, and the rest prune. Among
  // equal bounds, the plans that relieve memory least first (relievesNoMore).
  double flops = unavoidableFlopsPerStep(*step, *context), rate = bestRate(cluster);
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
    int ra = recomputeRank(a.second.recompute), rb = recomputeRank(b.second.recompute);
    return ra != rb ? ra < rb : a.second.mb < b.second.mb;
  });
  std::map<std::string, std::vector<partition::ParallelPlan>> fittingByGroup;

  mlir::MLIRContext *mlirContext = module.getContext();
  const size_t top = size_t(std::max(1, options.top));
  for (size_t i = 0; i < order.size(); ++i) {
    const auto &[bound, plan] = order[i];
    if (!options.exhaustive && result.ranked.size() >= top &&
        bound >= result.ranked[top - 1].prediction.secondsPerStep) {
      result.prunedByBound = int64_t(order.size() - i);
      break;
    }
    if (!options.exhaustive) {
      const partition::ParallelPlan *better = nullptr;
      for (const partition::ParallelPlan &fit : fittingByGroup[reliefGroup(plan)])
        if (relievesNoMore(fit, plan))
          better = &fit;
      if (better) {
        ++result.dominated;
        continue;
      }
    }
    // A candidate's diagnostics are its drop reason, not the user's error output.
    std::string firstError;
    mlir::ScopedDiagnosticHandler quiet(mlirContext, [&](mlir::Diagnostic &d) {
      if (d.getSeverity() == mlir::DiagnosticSeverity::Error && firstError.empty())
        firstError = d.str();
      return mlir::success();
    });
    mlir::OwningOpRef<mlir::ModuleOp> copy(module.clone());
    ++result.compiled;
    if (Status s = driver::setParallelPlan(*copy, plan, cluster); !s) {
      result.dropped.push_back({plan, s.message()});
      continue;
    }
    if (mlir::failed(driver::runPasses(*copy, options.train, Phase::Pipeline))) {
      result.dropped.push_back({plan, "does not compile: " + firstError});
      continue;
    }
    auto lowered = driver::lowerStages(*copy);
    if (mlir::failed(lowered)) {
      result.dropped.push_back({plan, "does not lower: " + firstError});
      continue;
    }
    auto prediction = driver::predictPlan(*lowered, cluster, /*byKernel=*/false);
    if (!prediction) {
      result.dropped.push_back({plan, prediction.message()});
      continue;
    }
    if (!prediction->fits) {
      result.dropped.push_back(
          {plan, "memory: " + bytesText(double(prediction->peakBytesPerDevice)) +
                     " per device, more than the " +
                     bytesText(prediction->usableBytesPerDevice) + " usable"});
      continue;
    }
    fittingByGroup[reliefGroup(plan)].push_back(plan);
    Ranked ranked{plan, std::move(*prediction), bound};
    auto at = std::upper_bound(result.ranked.begin(), result.ranked.end(), ranked,
                               [](const Ranked &a, const Ranked &b) {
                                 return a.prediction.secondsPerStep < b.prediction.secondsPerStep;
                               });
    result.ranked.insert(at, std::move(ranked));
    if (result.ranked.size() > top)
      result.ranked.pop_back();
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.ranked.empty())
    return R::error("no plan fits: each of the " + std::to_string(result.compiled) +
                    " compiled was dropped (first: " + result.dropped.back().plan.toString() +
                    ": " + result.dropped.back().reason + ")");
  return result;
}

} // namespace apc::search
