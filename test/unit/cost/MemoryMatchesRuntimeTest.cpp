// The cost model's memory per device is what aprun allocates: the tiny Llama 3 compiled
// under data, ZeRO 1/2/3, tensor, sequence and pipeline parallelism and recomputation;
// for every stage, the executor of one of its devices allocates exactly the bytes the
// model predicts, and plan.fb records the largest stage's.
#include "compiler/cost/Memory.h"
#include "compiler/driver/Compile.h"
#include "compiler/driver/Predict.h"
#include "frontends/llama3/Llama3Model.h"
#include "runtime/exec/Executor.h"
#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanLoader.h"
#include "test/unit/runtime/ThreadCommunicator.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

namespace {

using namespace apc;

struct Compiled {
  std::vector<lowering::ExecProgram> programs;
  std::string planBytes;
  cost::Prediction prediction;
};

Compiled compile(const std::string &planText, int64_t devices) {
  mlir::DialectRegistry registry;
  driver::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  auto config = llama3::readConfig(APC_SOURCE_DIR "/frontends/llama3/configs/tiny.json");
  EXPECT_TRUE(config) << config.message();
  llama3::ImportOptions options;
  options.batch = 4;
  options.seqLen = 8;
  auto module = llama3::buildTrainStep(context, *config, options);
  EXPECT_TRUE(module) << module.message();
  auto plan = partition::parseParallelPlan(planText);
  EXPECT_TRUE(plan) << plan.message();
  auto resolved = cost::resolveCluster("cpu:" + std::to_string(devices));
  EXPECT_TRUE(resolved) << resolved.message();
  const cost::Cluster &cluster = *resolved;
  Status set = driver::setParallelPlan(**module, *plan, cluster);
  EXPECT_TRUE(set) << set.message();
  TrainStepOptions step;
  EXPECT_TRUE(mlir::succeeded(driver::runPasses(**module, step, Phase::Pipeline)));
  Compiled c;
  auto lowered = driver::lowerStages(**module);
  EXPECT_TRUE(mlir::succeeded(lowered));
  c.programs = lowered->programs;
  auto prediction = driver::predictPlan(*lowered, cluster);
  EXPECT_TRUE(prediction) << prediction.message();
  c.prediction = *prediction;
  driver::PlanOptions planOptions;
  planOptions.cluster = cluster.spec;
  auto emitted = driver::emitPlan(**module, planOptions);
  EXPECT_TRUE(mlir::succeeded(emitted));
  c.planBytes = emitted->bytes;
  return c;
}

// Every set of mesh axes a collective may name.
std::vector<std::vector<int64_t>> axisSets(size_t axes) {
  std::vector<std::vector<int64_t>> sets;
  for (unsigned mask = 1; mask < (1u << axes); ++mask) {
    std::vector<int64_t> set;
    for (size_t a = 0; a < axes; ++a)
      if (mask & (1u << a))
        set.push_back(int64_t(a));
    sets.push_back(set);
  }
  return sets;
}

class MemoryMatchesRuntime
    : public ::testing::TestWithParam<std::pair<const char *, int64_t>> {};

TEST_P(MemoryMatchesRuntime, ForEveryStage) {
  auto [planText, devices] = GetParam();
  Compiled c = compile(planText, devices);
  ASSERT_FALSE(c.programs.empty());
  auto loaded = plan::LoadedPlan::fromBytes(c.planBytes, "memory.fb");
  ASSERT_TRUE(loaded) << loaded.message();
  std::vector<int64_t> mesh = plan::meshShapeOf(loaded->plan());
  apc::testing::ThreadMesh threads(mesh, axisSets(mesh.size()));
  uint64_t largest = 0;
  for (size_t s = 0; s < c.programs.size(); ++s) {
    // The first device whose program is stage s.
    int device = -1;
    for (int d = 0; d < int(meshSize(mesh)) && device < 0; ++d)
      if (plan::programOf(loaded->plan(), d) == loaded->plan().programs()->Get(unsigned(s)))
        device = d;
    ASSERT_GE(device, 0);
    auto exec = exec::Executor::create(loaded->plan(), device, exec::cpuBackend(), {},
                                       threads.lookup(device));
    ASSERT_TRUE(exec) << exec.message();
    cost::MemoryUse predicted = cost::memoryOf(c.programs[s]);
    EXPECT_EQ(predicted.total(), (*exec)->allocatedBytes()) << planText << " stage " << s;
    EXPECT_EQ(c.prediction.stages[s].memory.total(), predicted.total());
    largest = std::max(largest, predicted.total());
  }
  EXPECT_EQ(c.prediction.peakBytesPerDevice, largest);
  EXPECT_EQ(loaded->plan().predicted()->bytes_per_device(), largest);
  EXPECT_DOUBLE_EQ(loaded->plan().predicted()->seconds_per_step(),
                   c.prediction.secondsPerStep);
}

INSTANTIATE_TEST_SUITE_P(
    Plans, MemoryMatchesRuntime,
    ::testing::Values(std::make_pair("dp=1", int64_t(1)), std::make_pair("dp=2", int64_t(2)),
                      std::make_pair("dp=2,zero=1", int64_t(2)),
                      std::make_pair("dp=2,zero=2", int64_t(2)),
                      std::make_pair("dp=2,zero=3", int64_t(2)),
                      std::make_pair("tp=2", int64_t(2)),
                      std::make_pair("tp=2,sp=on", int64_t(2)),
                      std::make_pair("pp=2,mb=2", int64_t(2)),
                      std::make_pair("dp=2,recompute=full", int64_t(2)),
                      std::make_pair("dp=2,tp=2,pp=2,mb=2,zero=1,recompute=selective",
                                     int64_t(8))));

TEST(Prediction, RecomputationShowsInTheBreakdown) {
  Compiled none = compile("dp=2", 2), full = compile("dp=2,recompute=full", 2);
  EXPECT_EQ(cost::breakdownSeconds(none.prediction, "recompute"), 0);
  EXPECT_GT(cost::breakdownSeconds(full.prediction, "recompute"), 0);
  EXPECT_GT(full.prediction.secondsPerStep, none.prediction.secondsPerStep);
}

TEST(Prediction, PipelinesHaveABubbleAndATimeline) {
  Compiled c = compile("pp=2,mb=2", 2);
  EXPECT_EQ(c.prediction.microBatches, 2);
  ASSERT_EQ(c.prediction.timeline.passes.size(), 2u);
  EXPECT_EQ(c.prediction.timeline.passes[0].size(), 4u);
  EXPECT_GT(cost::breakdownSeconds(c.prediction, "bubble") +
                cost::breakdownSeconds(c.prediction, "p2p"),
            0);
  double total = 0;
  for (const auto &e : c.prediction.breakdown)
    total += e.second;
  EXPECT_NEAR(total, c.prediction.secondsPerStep, 1e-12 * c.prediction.secondsPerStep);
}

} // namespace

namespace {

// The search calls the model for every candidate: one call on a compiled plan is plain
// loops over its instructions. Prints the rate (not asserted: machines differ).
TEST(Prediction, IsFastEnoughForTheSearch) {
  Compiled c = compile("dp=2,tp=2,pp=2,mb=2,zero=1,recompute=selective", 8);
  cost::Cluster cluster = *cost::resolveCluster("cpu:8");
  size_t instructions = 0;
  for (const auto &p : c.programs)
    instructions += p.instructions.size();
  auto start = std::chrono::steady_clock::now();
  int calls = 0;
  double seconds = 0;
  while (seconds < 0.2) {
    cost::ModelFigures model;
    model.seqLen = 8;
    model.globalBatch = 4;
    auto r = cost::predict(c.programs, model, cluster);
    ASSERT_TRUE(r) << r.message();
    ++calls;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::printf("cost model: %.0f predictions per second of a plan of %zu instructions in %zu "
              "stages\n",
              calls / seconds, instructions, c.programs.size());
  EXPECT_GT(calls, 1);
}

} // namespace
