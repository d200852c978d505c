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

// The cluster of `spec` (a built-in profile with a count), for setParallelPlan.
cost::Cluster clusterOf(const std::string &spec) {
  auto cluster = cost::resolveCluster(spec);
  EXPECT_TRUE(cluster) << cluster.message();
  return cluster ? *cluster : cost::Cluster();
}

TEST(Driver, ChecksThePlanAgainstAGpuClustersDevices) {
  Imported imported;
  partition::ParallelPlan plan;
  plan.dp = 2;
  plan.tp = 2;
  Status s = driver::setParallelPlan(*imported.module, plan, clusterOf("h100-sxm:8"));
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("do not match the 8 devices of cluster h100-sxm:8"),
            std::string::npos)
      << s.message();
  plan.dp = 4; // the batch is 4
  Status fits = driver::setParallelPlan(*imported.module, plan, clusterOf("h100-sxm:8"));
  EXPECT_TRUE(fits) << fits.message();
}

TEST(Driver, ChecksThePlanAgainstTheModelBeforeSettingIt) {
  Imported imported;
  partition::ParallelPlan plan;
  plan.tp = 3; // the tiny model has 4 heads
  Status s = driver::setParallelPlan(*imported.module, plan, clusterOf("cpu:3"));
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("plan field 'tp' (3) must divide the attention heads"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE((*imported.module)->hasAttr(kParallelAttr)); // nothing set on refusal
  plan.tp = 2;
  EXPECT_TRUE(driver::setParallelPlan(*imported.module, plan, clusterOf("cpu:2")));
  EXPECT_EQ(parallelPlanOf(*imported.module).getTp(), 2);
}

TEST(Driver, CompilesOnePlanProgramPerPipelineStage) {
  Imported imported;
  partition::ParallelPlan plan;
  plan.dp = 2;
  plan.pp = 2;
  plan.mb = 2;
  ASSERT_TRUE(driver::setParallelPlan(*imported.module, plan, clusterOf("cpu:4")));
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
