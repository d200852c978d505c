// The compiler driver (compiler/driver/Compile.h) on the tiny Llama 3: clusters, plans
// checked against the model before they are set, and a plan.fb per pipeline stage.
#include "compiler/driver/Compile.h"
#include "compiler/support/Mesh.h"
#include "frontends/llama3/Llama3Model.h"
#include "runtime/plan/PlanLoader.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

namespace {

using namespace apc;

struct Imported {
  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  Imported() : context(registry()) {
    auto config = llama3::readConfig(APC_SOURCE_DIR "/frontends/llama3/configs/tiny.json");
    EXPECT_TRUE(config) << config.message();
    llama3::ImportOptions options;
    options.batch = 4;
    options.seqLen = 8;
    auto built = llama3::buildTrainStep(context, *config, options);
    EXPECT_TRUE(built) << built.message();
    module = std::move(*built);
  }
  static mlir::DialectRegistry registry() {
    mlir::DialectRegistry r;
    driver::registerCompilerDialects(r);
    return r;
  }
};

TEST(Driver, ParsesCpuClustersAndRefusesOthers) {
  auto cpu = driver::parseCluster("cpu:8");
  ASSERT_TRUE(cpu);
  EXPECT_EQ(cpu->devices, 8);
  for (const char *bad : {"cpu:0", "cpu:-1", "cpu:", "cpu:2x", "gpu:8", "cpu:99999999999999999999"})
    EXPECT_FALSE(driver::parseCluster(bad)) << bad;
}

TEST(Driver, ChecksThePlanAgainstTheModelBeforeSettingIt) {
  Imported imported;
  partition::ParallelPlan plan;
  plan.tp = 3; // the tiny model has 4 heads
  Status s = driver::setParallelPlan(*imported.module, plan, {"cpu:3", 3});
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("plan field 'tp' (3) must divide the attention heads"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE((*imported.module)->hasAttr(kParallelAttr)); // nothing set on refusal
  plan.tp = 2;
  EXPECT_TRUE(driver::setParallelPlan(*imported.module, plan, {"cpu:2", 2}));
  EXPECT_EQ(parallelPlanOf(*imported.module).getTp(), 2);
}

TEST(Driver, CompilesOnePlanProgramPerPipelineStage) {
  Imported imported;
  partition::ParallelPlan plan;
  plan.dp = 2;
  plan.pp = 2;
  plan.mb = 2;
  ASSERT_TRUE(driver::setParallelPlan(*imported.module, plan, {"cpu:4", 4}));
  TrainStepOptions options;
  options.precision = "fp32";
  ASSERT_TRUE(mlir::succeeded(driver::runPasses(*imported.module, options, Phase::Pipeline)));
  driver::PlanOptions planOptions;
  planOptions.cluster = "cpu:4";
  auto compiled = driver::emitPlan(*imported.module, planOptions);
  ASSERT_TRUE(mlir::succeeded(compiled));
  EXPECT_EQ(compiled->stageArenas.size(), 2u);
  auto loaded = plan::LoadedPlan::fromBytes(compiled->bytes, "driver-test.fb");
  ASSERT_TRUE(loaded) << loaded.message();
}

} // namespace
