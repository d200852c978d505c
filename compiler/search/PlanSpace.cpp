#include "compiler/search/PlanSpace.h"

namespace apc::search {

Result<PlanRequest> parsePlanRequest(const std::string &text) {
  PlanRequest request;
  size_t first = text.find_first_not_of(" \t");
  std::string trimmed = first == std::string::npos ? "" : text.substr(first);
  if (trimmed.empty() || trimmed == "auto") {
    request.search = true;
    return request;
  }
  if (trimmed.rfind("auto,", 0) == 0) {
    request.search = true;
    auto plan = partition::parseParallelPlan(trimmed.substr(5), &request.fixedFields);
    if (!plan)
      return plan.status();
    request.plan = *plan;
    return request;
  }
  auto plan = partition::parseParallelPlan(text);
  if (!plan)
    return plan.status();
  request.plan = *plan;
  return request;
}

std::vector<int64_t> divisorsOf(int64_t n) {
  std::vector<int64_t> small, large;
  for (int64_t d = 1; d * d <= n; ++d)
    if (n % d == 0) {
      small.push_back(d);
      if (d != n / d)
        large.push_back(n / d);
    }
  small.insert(small.end(), large.rbegin(), large.rend());
  return small;
}

namespace {

// On how many first stages a pipeline recomputes: all (0), or 1, 2, 4, ... of them (the
// first stages hold the most micro-batches in flight under 1F1B: the memory relief is
// needed there first).
std::vector<int64_t> recomputeStagesOf(int64_t pp, const std::string &recompute) {
  std::vector<int64_t> values{0};
  if (recompute != "none")
    for (int64_t k = 1; k < pp; k *= 2)
      values.push_back(k);
  return values;
}

} // namespace

Space enumeratePlans(const partition::PlanContext &context, const cost::Cluster &cluster,
                     const SpaceOptions &options) {
  Space space;
  const int64_t devices = cluster.devices();
  auto isFixed = [&](const char *field) { return options.fixedFields.count(field) > 0; };
  const partition::ParallelPlan &fixed = options.fixed;
  // A field's values: the fixed one, or `all`.
  auto values = [&](const char *field, int64_t fixedValue, std::vector<int64_t> all) {
    return isFixed(field) ? std::vector<int64_t>{fixedValue} : all;
  };
  auto drop = [&](const partition::ParallelPlan &plan, std::string reason) {
    space.dropped.push_back({plan, std::move(reason)});
  };
  for (int64_t tp : values("tp", fixed.tp, divisorsOf(devices)))
    for (int64_t pp : values("pp", fixed.pp, divisorsOf(devices / std::max<int64_t>(tp, 1))))
    // Context parallelism: unasked, cp = 2 at most (the published recipes' degree at 8K
    // tokens; a larger one when given), its per-layer exchanges inside a node with tp's
    // (cp x tp at most a node's devices), 2 x cp cutting the sequence.
    for (int64_t cp : values("cp", fixed.cp, divisorsOf(devices / std::max<int64_t>(tp * pp, 1)))) {
      if (!isFixed("cp") && cp > 1 &&
          (cp > 2 || tp * cp > cluster.devicesPerNode ||
           (context.seqLen > 0 && context.seqLen % (2 * cp) != 0)))
        continue;
      if (devices % (tp * pp * cp) != 0)
        continue; // a fixed tp, pp or cp that does not divide: validate says so below
      int64_t dp = devices / (tp * pp * cp);
      // Unasked, cp only where whole sequences cannot use the devices: dp x cp devices
      // holding whole sequences are no slower and need no more memory (the same tokens
      // a device, no exchange of keys and values, ZeRO over more devices), so cp pays
      // where dp x cp does not divide the batch (that plan does not exist).
      if (!isFixed("cp") && cp > 1 && context.batch > 0 && context.batch % (dp * cp) == 0)
        continue;
      if (isFixed("dp") && fixed.dp != dp)
        continue;
      std::vector<int64_t> zeros = dp > 1 ? std::vector<int64_t>{0, 1, 2, 3}
                                          : std::vector<int64_t>{0};
      std::vector<int64_t> sps = tp > 1 ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0};
      std::vector<int64_t> mbs;
      int64_t perReplica = context.batch > 0 && context.batch % dp == 0 ? context.batch / dp : 1;
      for (int64_t mb : divisorsOf(perReplica))
        if (mb <= options.maxMicroBatches)
          mbs.push_back(mb);
      for (int64_t zero : values("zero", fixed.zero, zeros))
        for (int64_t sp : values("sp", fixed.sp ? 1 : 0, sps))
          for (int64_t mb : values("mb", fixed.mb, mbs))
            for (const char *recompute : {"none", "selective", "full"})
            for (int64_t firstStages : isFixed("recompute_stages")
                                           ? std::vector<int64_t>{fixed.recomputeStages}
                                           : recomputeStagesOf(pp, recompute))
            // Interleaved stages only when asked for ("auto,vp=2"): the stand-ins time
            // 1F1B stages, so such plans are compiled whole (PlanSearch.cpp, estimable).
            for (int64_t vp : values("vp", fixed.vp, {1})) {
              if (isFixed("recompute") && fixed.recompute != recompute)
                continue;
              partition::ParallelPlan plan;
              plan.dp = dp;
              plan.tp = tp;
              plan.pp = pp;
              plan.cp = cp;
              plan.zero = zero;
              plan.sp = sp != 0;
              plan.mb = mb;
              plan.vp = vp;
              plan.recompute = recompute;
              plan.recomputeStages = firstStages;
              if (isFixed("stages"))
                plan.stages = fixed.stages;
              ++space.enumerated;
              if (tp > cluster.devicesPerNode && !isFixed("tp")) {
                drop(plan, "tp=" + std::to_string(tp) + " spans nodes of " +
                               std::to_string(cluster.devicesPerNode) +
                               " devices: its per-layer all-reduces would cross the network "
                               "(give tp to try it)");
                continue;
              }
              if (Status s = partition::validate(plan, context); !s) {
                drop(plan, s.message());
                continue;
              }
              space.candidates.push_back(plan);
            }
    }
  return space;
}

} // namespace apc::search
