// The plan search (compiler/search): the space it walks, partial plans, and its pick
// against brute force (every candidate compiled and predicted).
#include "compiler/driver/Compile.h"
#include "compiler/search/PlanSearch.h"
#include "frontends/llama3/Llama3Model.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <memory>

#include <set>

namespace {

using namespace apc;

mlir::OwningOpRef<mlir::ModuleOp> tinyStep(mlir::MLIRContext &context, int64_t batch) {
  auto config = llama3::readConfig(APC_SOURCE_DIR "/frontends/llama3/configs/tiny.json");
  EXPECT_TRUE(config) << config.message();
  llama3::ImportOptions options;
  options.batch = batch;
  options.seqLen = 8;
  auto module = llama3::buildTrainStep(context, *config, options);
  EXPECT_TRUE(module) << module.message();
  return std::move(*module);
}

cost::Cluster cluster(const std::string &spec) {
  auto c = cost::resolveCluster(spec);
  EXPECT_TRUE(c) << c.message();
  return *c;
}

// tiny.json: 2 layers, 4 heads / 2 kv heads, vocab 256, intermediate 160.
partition::PlanContext tinyContext(int64_t devices, int64_t batch) {
  partition::PlanContext c;
  c.devices = devices;
  c.cluster = "cpu:" + std::to_string(devices);
  c.batch = batch;
  c.seqLen = 8;
  c.heads = 4;
  c.kvHeads = 2;
  c.layers = 2;
  c.vocab = 256;
  c.ffn = 160;
  return c;
}

// A context with the compiler's dialects, as apc's commands make one.
std::unique_ptr<mlir::MLIRContext> compilerContext() {
  mlir::DialectRegistry registry;
  driver::registerCompilerDialects(registry);
  return std::make_unique<mlir::MLIRContext>(registry);
}

TEST(PlanSpace, EveryCombinationOnce) {
  search::Space space = search::enumeratePlans(tinyContext(4, 4), cluster("cpu:4"), {});
  std::set<std::string> seen;
  for (const auto &p : space.candidates) {
    EXPECT_EQ(p.devices(), 4) << p.toString();
    EXPECT_TRUE(seen.insert(p.toString()).second) << p.toString();
    EXPECT_TRUE(p.zero == 0 || p.dp > 1) << p.toString();
    EXPECT_TRUE(!p.sp || p.tp > 1) << p.toString();
  }
  // (dp, tp, pp) in {(4,1,1), (2,2,1), (2,1,2), (1,2,2), (1,4,1), (1,1,4)}: tp=4 does not
  // divide the 2 kv heads and pp=4 exceeds the 2 layers (dropped with validate's reason).
  bool tp4 = false, pp4 = false;
  for (const auto &d : space.dropped) {
    tp4 = tp4 || (d.plan.tp == 4 && d.reason.find("heads") != std::string::npos);
    pp4 = pp4 || (d.plan.pp == 4 && d.reason.find("layers") != std::string::npos);
  }
  EXPECT_TRUE(tp4);
  EXPECT_TRUE(pp4);
  EXPECT_EQ(space.enumerated, int64_t(space.candidates.size() + space.dropped.size()));
  // Every candidate is one that validate accepts.
  for (const auto &p : space.candidates)
    EXPECT_TRUE(partition::validate(p, tinyContext(4, 4))) << p.toString();
}

TEST(PlanSpace, FixedFieldsAreHeld) {
  search::SpaceOptions options;
  auto request = search::parsePlanRequest("auto,tp=2,recompute=full");
  ASSERT_TRUE(request) << request.message();
  EXPECT_TRUE(request->search);
  EXPECT_EQ(request->fixedFields, (std::set<std::string>{"tp", "recompute"}));
  options.fixed = request->plan;
  options.fixedFields = request->fixedFields;
  search::Space space = search::enumeratePlans(tinyContext(4, 4), cluster("cpu:4"), options);
  ASSERT_FALSE(space.candidates.empty());
  for (const auto &p : space.candidates) {
    EXPECT_EQ(p.tp, 2);
    EXPECT_EQ(p.recompute, "full");
  }
}

TEST(PlanSpace, PlanRequests) {
  for (const char *text : {"", "auto", "  auto"}) {
    auto r = search::parsePlanRequest(text);
    ASSERT_TRUE(r) << text;
    EXPECT_TRUE(r->search) << text;
    EXPECT_TRUE(r->fixedFields.empty()) << text;
  }
  auto complete = search::parsePlanRequest("dp=2,tp=2");
  ASSERT_TRUE(complete);
  EXPECT_FALSE(complete->search);
  EXPECT_EQ(complete->plan.toString(), "dp=2,tp=2,pp=1,zero=0,sp=off,mb=1,recompute=none");
  auto bad = search::parsePlanRequest("auto,tp=two");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.message().find("plan field 'tp'"), std::string::npos) << bad.message();
  // Interleaved stages are searched when asked for.
  auto interleaved = search::parsePlanRequest("auto,vp=2");
  ASSERT_TRUE(interleaved) << interleaved.message();
  EXPECT_TRUE(interleaved->fixedFields.count("vp"));
  EXPECT_EQ(interleaved->plan.vp, 2);
  auto whole = search::parsePlanRequest("pp=2,vp=2,mb=4");
  ASSERT_TRUE(whole) << whole.message();
  EXPECT_EQ(whole->plan.toString(), "dp=1,tp=1,pp=2,zero=0,sp=off,mb=4,vp=2,recompute=none");
}

TEST(PlanSpace, TensorParallelismStaysInANodeUnlessFixed) {
  search::Space space = search::enumeratePlans(tinyContext(4, 4), cluster("cpu:2x2"), {});
  for (const auto &p : space.candidates)
    EXPECT_LE(p.tp, 2) << p.toString();
  bool said = false;
  for (const auto &d : space.dropped)
    said = said || d.reason.find("spans nodes of 2 devices") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(PlanSpace, Divisors) {
  EXPECT_EQ(search::divisorsOf(12), (std::vector<int64_t>{1, 2, 3, 4, 6, 12}));
  EXPECT_EQ(search::divisorsOf(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(search::divisorsOf(16), (std::vector<int64_t>{1, 2, 4, 8, 16}));
}

TEST(PlanSearch, BoundIsBelowEveryPrediction) {
  // The bound prunes soundly only if no prediction beats it: check on every candidate.
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = tinyStep(context, 4);
  search::SearchOptions options;
  options.exhaustive = true;
  options.top = 1000;
  auto all = search::searchPlans(*module, cluster("cpu:4"), options);
  ASSERT_TRUE(all) << all.message();
  ASSERT_GT(all->ranked.size(), 20u);
  // Exhaustive: every plan of the space is ranked or dropped with its reason.
  EXPECT_EQ(int64_t(all->ranked.size() + all->dropped.size()), all->enumerated);
  EXPECT_EQ(all->prunedByBound, 0);
  for (size_t i = 0; i < all->ranked.size(); ++i) {
    const search::Ranked &r = all->ranked[i];
    EXPECT_GT(r.bound, 0) << r.plan.toString();
    EXPECT_LE(r.bound, r.prediction.secondsPerStep) << r.plan.toString();
    if (i > 0)
      EXPECT_LE(all->ranked[i - 1].prediction.secondsPerStep, r.prediction.secondsPerStep);
  }
}

// The search's pick, with pruning, is the best of compiling every candidate.
class SearchMatchesBruteForce : public ::testing::TestWithParam<std::pair<const char *, int64_t>> {};

TEST_P(SearchMatchesBruteForce, SamePick) {
  auto [spec, batch] = GetParam();
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = tinyStep(context, batch);
  search::SearchOptions pruned, brute;
  pruned.top = brute.top = 3;
  brute.exhaustive = true;
  auto fast = search::searchPlans(*module, cluster(spec), pruned);
  auto slow = search::searchPlans(*module, cluster(spec), brute);
  ASSERT_TRUE(fast) << fast.message();
  ASSERT_TRUE(slow) << slow.message();
  // The winner is the same; every plan the fast search ranks has brute force's figures.
  ASSERT_FALSE(fast->ranked.empty());
  EXPECT_EQ(fast->ranked.front().plan.toString(), slow->ranked.front().plan.toString());
  EXPECT_EQ(fast->ranked.front().prediction.secondsPerStep,
            slow->ranked.front().prediction.secondsPerStep);
  brute.top = 100000;
  auto every = search::searchPlans(*module, cluster(spec), brute);
  ASSERT_TRUE(every) << every.message();
  for (const search::Ranked &r : fast->ranked) {
    bool found = false;
    for (const search::Ranked &b : every->ranked)
      if (b.plan.toString() == r.plan.toString()) {
        found = true;
        EXPECT_EQ(b.prediction.secondsPerStep, r.prediction.secondsPerStep) << r.plan.toString();
      }
    EXPECT_TRUE(found) << r.plan.toString();
  }
  EXPECT_LE(fast->compiled, slow->compiled);
  EXPECT_EQ(fast->enumerated, slow->enumerated);
  // The module searched is left as it was: no plan set on it.
  EXPECT_FALSE((*module)->hasAttr("ap.parallel"));
}

INSTANTIATE_TEST_SUITE_P(Clusters, SearchMatchesBruteForce,
                         ::testing::Values(std::pair{"cpu:2", int64_t(4)},
                                           std::pair{"cpu:4", int64_t(8)},
                                           std::pair{"h100-sxm:4", int64_t(8)},
                                           std::pair{"a100-80g:8", int64_t(16)}));

TEST(PlanSearch, MemoryPressureIsRelievedNotIgnored) {
  // A device whose memory fits the states but not the plain plan's activations: the
  // winner recomputes or splits the batch, and it fits.
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = tinyStep(context, 8);
  cost::Cluster c = cluster("cpu:2");
  search::SearchOptions brute;
  brute.exhaustive = true;
  brute.top = 100000;
  auto every = search::searchPlans(*module, c, brute);
  ASSERT_TRUE(every) << every.message();
  // The smallest peak of the plain plans (no recompute, one micro-batch), less a little.
  double plain = 1e30, least = 1e30;
  for (const search::Ranked &r : every->ranked) {
    least = std::min(least, double(r.prediction.peakBytesPerDevice));
    if (r.plan.recompute == "none" && r.plan.mb == 1)
      plain = std::min(plain, double(r.prediction.peakBytesPerDevice));
  }
  ASSERT_LT(least, plain);
  c.device.usableMemoryFraction = 1.0;
  c.device.memoryBytes = (least + plain) / 2;
  auto found = search::searchPlans(*module, c, {});
  ASSERT_TRUE(found) << found.message();
  const search::Ranked &winner = found->ranked.front();
  EXPECT_TRUE(winner.prediction.fits);
  EXPECT_LE(double(winner.prediction.peakBytesPerDevice), c.device.memoryBytes);
  EXPECT_TRUE(winner.plan.recompute != "none" || winner.plan.mb > 1) << winner.plan.toString();
  brute.top = 1;
  auto best = search::searchPlans(*module, c, brute);
  ASSERT_TRUE(best) << best.message();
  EXPECT_EQ(winner.plan.toString(), best->ranked.front().plan.toString());
}

// A deeper tiny model (8 layers), where stand-ins of 1 and 2 layers per stage are smaller.
mlir::OwningOpRef<mlir::ModuleOp> deepStep(mlir::MLIRContext &context) {
  auto config = llama3::readConfig(APC_SOURCE_DIR "/frontends/llama3/configs/tiny.json");
  EXPECT_TRUE(config) << config.message();
  config->numHiddenLayers = 8;
  llama3::ImportOptions options;
  options.batch = 8;
  options.seqLen = 16;
  auto module = llama3::buildTrainStep(context, *config, options);
  EXPECT_TRUE(module) << module.message();
  return std::move(*module);
}

class EstimateFromStandIns : public ::testing::TestWithParam<const char *> {};

TEST_P(EstimateFromStandIns, IsCloseToTheWholeCompile) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = deepStep(context);
  auto rebuild = llama3::retracer(*module);
  ASSERT_TRUE(rebuild);
  cost::Cluster c = cluster("h100-sxm:4");
  auto plan = partition::parseParallelPlan(GetParam());
  ASSERT_TRUE(plan) << plan.message();
  TrainStepOptions train;
  uint64_t peakUpper = 0;
  auto estimate = search::estimatePlan(*module, *plan, c, train, rebuild, &peakUpper);
  ASSERT_TRUE(estimate) << estimate.message();
  search::SearchOptions exactOnly;
  exactOnly.space.fixed = *plan;
  exactOnly.space.fixedFields = {"dp", "tp", "pp", "cp", "vp", "zero", "sp", "mb", "recompute",
                                 "recompute_stages"};
  exactOnly.exhaustive = true;
  auto exact = search::searchPlans(*module, c, exactOnly);
  ASSERT_TRUE(exact) << exact.message();
  ASSERT_EQ(exact->ranked.size(), 1u);
  const cost::Prediction &e = exact->ranked.front().prediction;
  // Layers are alike and every instruction is costed on its own, so a stage's work is
  // affine in its layer count and, past the first micro-batch, in the micro-batch count:
  // times within 1% (a deep pipeline's middle stages are copies of the stand-in's one);
  // memory within 10% (the arena planner packs a deeper program a little differently).
  EXPECT_NEAR(estimate->secondsPerStep / e.secondsPerStep, 1.0, 0.01) << GetParam();
  EXPECT_NEAR(double(estimate->peakBytesPerDevice) / double(e.peakBytesPerDevice), 1.0, 0.10)
      << GetParam();
  EXPECT_NEAR(estimate->flopsPerStep / e.flopsPerStep, 1.0, 0.01) << GetParam();
  // The bound the search trusts before it spares plans: never below the real peak, and
  // claimed for every plan but a pipeline of more micro-batches than its stand-ins.
  EXPECT_GE(peakUpper, e.peakBytesPerDevice) << GetParam();
  if (plan->pp <= 3 || plan->mb <= 3)
    EXPECT_LT(peakUpper, UINT64_MAX) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Plans, EstimateFromStandIns,
                         ::testing::Values("dp=4", "dp=2,tp=2,sp=on", "dp=4,zero=3,recompute=full",
                                           "dp=2,pp=2,mb=4", "pp=4,mb=4,recompute=selective",
                                           "tp=2,pp=2,mb=2,zero=0", "dp=4,zero=2,mb=2",
                                           "dp=2,zero=1,tp=2,mb=4", "pp=4,mb=8",
                                           "dp=2,pp=2,mb=4,zero=3,recompute=full", "tp=2,pp=2,mb=8",
                                           "tp=2,pp=2,mb=8,recompute=selective",
                                           "pp=4,mb=4,recompute=full,recompute_stages=2",
                                           "tp=2,pp=2,mb=2,recompute=selective,recompute_stages=1",
                                           "dp=2,cp=2", "cp=2,tp=2,sp=on", "cp=2,pp=2,mb=2",
                                           "cp=4,recompute=full", "dp=2,cp=2,zero=1"));

TEST(PlanSearch, WithStandInsPicksWhatBruteForcePicks) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = deepStep(context);
  for (const char *spec : {"cpu:4", "h100-sxm:4"}) {
    search::SearchOptions fast, brute;
    fast.rebuild = llama3::retracer(*module);
    brute.exhaustive = true;
    auto quick = search::searchPlans(*module, cluster(spec), fast);
    auto every = search::searchPlans(*module, cluster(spec), brute);
    ASSERT_TRUE(quick) << quick.message();
    ASSERT_TRUE(every) << every.message();
    EXPECT_GT(quick->estimated, 0) << spec;
    EXPECT_EQ(quick->ranked.front().plan.toString(), every->ranked.front().plan.toString()) << spec;
    // The winner's figures are the whole compile's, not the estimate's.
    EXPECT_EQ(quick->ranked.front().prediction.secondsPerStep,
              every->ranked.front().prediction.secondsPerStep) << spec;
  }
}

// "auto,vp=2": the other fields searched with two chunks per stage; such plans are
// compiled whole (the stand-ins time 1F1B stages), and only pipelines that can
// interleave are candidates; the others are dropped with the field's reason.
TEST(PlanSearch, InterleavedStagesWhenAskedFor) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = deepStep(context);
  search::SearchOptions options;
  options.rebuild = llama3::retracer(*module);
  options.space.fixed.vp = 2;
  options.space.fixedFields = {"vp"};
  auto found = search::searchPlans(*module, cluster("h100-sxm:4"), options);
  ASSERT_TRUE(found) << found.message();
  ASSERT_FALSE(found->ranked.empty());
  for (const auto &r : found->ranked) {
    EXPECT_EQ(r.plan.vp, 2) << r.plan.toString();
    EXPECT_GT(r.plan.pp, 1) << r.plan.toString();
    EXPECT_EQ(r.plan.mb % r.plan.pp, 0) << r.plan.toString();
    EXPECT_FALSE(r.estimated) << r.plan.toString() << ": compiled whole";
  }
  // Without vp the open search stays on 1F1B.
  search::SearchOptions open;
  open.rebuild = llama3::retracer(*module);
  auto plain = search::searchPlans(*module, cluster("h100-sxm:4"), open);
  ASSERT_TRUE(plain) << plain.message();
  for (const auto &r : plain->ranked)
    EXPECT_EQ(r.plan.vp, 1) << r.plan.toString();
}

// Context parallelism: "auto,cp=2" searches the other fields over the devices cp leaves
// (dp x tp x pp = 2 of 4). Unasked, the search tries cp = 2 only where whole sequences
// cannot use the devices (the batch has fewer sequences than dp x cp): with a batch of 8
// on 4 devices it adds nothing; with a batch of 2 on 8 devices cp = 2 plans are ranked
// (on this tiny model, whose kernels are all latency, deep pipelines still win).
TEST(PlanSearch, ContextParallelJoinsTheSpace) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = deepStep(context);
  search::SearchOptions options;
  options.rebuild = llama3::retracer(*module);
  options.space.fixed.cp = 2;
  options.space.fixedFields = {"cp"};
  auto found = search::searchPlans(*module, cluster("h100-sxm:4"), options);
  ASSERT_TRUE(found) << found.message();
  ASSERT_FALSE(found->ranked.empty());
  for (const auto &r : found->ranked) {
    EXPECT_EQ(r.plan.cp, 2) << r.plan.toString();
    EXPECT_EQ(r.plan.dp * r.plan.tp * r.plan.pp, 2) << r.plan.toString();
  }
  search::SearchOptions open;
  open.rebuild = llama3::retracer(*module);
  auto plain = search::searchPlans(*module, cluster("h100-sxm:4"), open);
  ASSERT_TRUE(plain) << plain.message();
  for (const auto &r : plain->ranked)
    EXPECT_EQ(r.plan.cp, 1) << r.plan.toString();

  auto config = llama3::readConfig(APC_SOURCE_DIR "/frontends/llama3/configs/tiny.json");
  ASSERT_TRUE(config) << config.message();
  config->numHiddenLayers = 8;
  llama3::ImportOptions small;
  small.batch = 2;
  small.seqLen = 16;
  auto fewRows = llama3::buildTrainStep(context, *config, small);
  ASSERT_TRUE(fewRows) << fewRows.message();
  search::SearchOptions wide;
  wide.rebuild = llama3::retracer(**fewRows);
  wide.top = 8;
  auto chosen = search::searchPlans(**fewRows, cluster("h100-sxm:8"), wide);
  ASSERT_TRUE(chosen) << chosen.message();
  bool ranksContext = false;
  for (const auto &r : chosen->ranked)
    ranksContext = ranksContext || r.plan.cp == 2;
  EXPECT_TRUE(ranksContext) << "no cp=2 plan among the " << chosen->ranked.size() << " ranked";
}

// Two lanes estimate two candidates at once but judge each after the results before it:
// the same plans ranked with the same figures, and the same counts, as one lane.
TEST(PlanSearch, TwoLanesDecideAsOne) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = deepStep(context);
  for (const char *spec : {"cpu:4", "h100-sxm:4", "h100-sxm:8"}) {
    search::SearchOptions one, two;
    one.rebuild = two.rebuild = llama3::retracer(*module);
    one.lanes = 1;
    two.lanes = 2;
    auto a = search::searchPlans(*module, cluster(spec), one);
    auto b = search::searchPlans(*module, cluster(spec), two);
    ASSERT_TRUE(a) << a.message();
    ASSERT_TRUE(b) << b.message();
    ASSERT_EQ(a->ranked.size(), b->ranked.size()) << spec;
    for (size_t i = 0; i < a->ranked.size(); ++i) {
      EXPECT_EQ(a->ranked[i].plan.toString(), b->ranked[i].plan.toString()) << spec;
      EXPECT_EQ(a->ranked[i].prediction.secondsPerStep, b->ranked[i].prediction.secondsPerStep)
          << spec;
    }
    EXPECT_GT(b->estimated, 0) << spec; // the lanes estimated something
    EXPECT_EQ(a->estimated, b->estimated) << spec;
    EXPECT_EQ(a->compiled, b->compiled) << spec;
    EXPECT_EQ(a->prunedByBound, b->prunedByBound) << spec;
    EXPECT_EQ(a->dominated, b->dominated) << spec;
    EXPECT_EQ(a->dropped.size(), b->dropped.size()) << spec;
  }
}

TEST(PlanSearch, NothingFitsSaysWhy) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = tinyStep(context, 4);
  cost::Cluster tiny = cluster("cpu:2");
  tiny.device.memoryBytes = 1024; // nothing fits in a KiB
  auto found = search::searchPlans(*module, tiny, {});
  ASSERT_FALSE(found);
  EXPECT_NE(found.message().find("no plan fits"), std::string::npos) << found.message();
  EXPECT_NE(found.message().find("memory:"), std::string::npos) << found.message();
}

TEST(PlanSearch, ContradictoryFixedFieldsAreRefused) {
  auto owned = compilerContext();
  mlir::MLIRContext &context = *owned;
  auto module = tinyStep(context, 4);
  search::SearchOptions options;
  auto request = search::parsePlanRequest("auto,dp=3");
  ASSERT_TRUE(request);
  options.space.fixed = request->plan;
  options.space.fixedFields = request->fixedFields;
  auto found = search::searchPlans(*module, cluster("cpu:4"), options);
  ASSERT_FALSE(found);
  EXPECT_NE(found.message().find("dp x tp x pp must be 4"), std::string::npos) << found.message();
}

} // namespace
