// `apc plan MODEL.mlir --cluster CLUSTER --plan PLAN [--json]`: the cost model's
// prediction of one plan (compiler/cost, docs/cost-model.md): seconds per step and its
// breakdown, tokens per second per device, MFU, memory per device by kind and whether it
// fits, and the pipeline schedule with absolute times. It compiles the plan as
// `apc compile` does and predicts from the same per-stage programs.
#include "tools/apc/Commands.h"

#include "compiler/driver/Compile.h"
#include "compiler/driver/Predict.h"
#include "runtime/support/Flags.h"
#include "tools/apc/PlanReport.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdio>
#include <fstream>

namespace apc::tools {

int runPlan(int argc, char **argv, int first) {
  std::string input, cluster, planText, precision = "bf16";
  bool json = false;
  FlagParser flags("apc plan", "predict a parallel plan's step time, throughput and memory",
                   "apc plan MODEL.mlir --cluster cpu:N [--plan PLAN] [--precision bf16|fp32] "
                   "[--json]");
  flags.addPositional("MODEL.mlir", &input, "ap IR from apc import");
  flags.addString("cluster", &cluster, "devices to predict for: cpu:N (N local CPU processes)",
                  "NAME");
  flags.addString("plan", &planText,
                  "parallel plan as apc compile takes it, e.g. \"dp=2,tp=2,pp=2,mb=4\" "
                  "(default: dp over all devices)",
                  "PLAN");
  flags.addString("precision", &precision, "bf16 (default) or fp32, as apc compile",
                  "bf16|fp32");
  flags.addBool("json", &json, "print one JSON object: {\"candidates\": [{\"plan\", "
                               "\"seconds_per_step\", \"tokens_per_second_per_device\", \"mfu\", "
                               "\"peak_bytes_per_device\", \"fits\", \"breakdown\", ...}]}");
  flags.require("cluster");
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  auto usage = [](const std::string &what) {
    std::fprintf(stderr, "apc plan: %s\n", what.c_str());
    return 2;
  };
  auto clusterSpec = cost::resolveCluster(cluster);
  if (!clusterSpec)
    return usage(clusterSpec.message());
  if (planText.empty())
    planText = "dp=" + std::to_string(clusterSpec->devices());
  auto parallelPlan = partition::parseParallelPlan(planText);
  if (!parallelPlan)
    return usage("--plan: " + parallelPlan.message());
  if (precision != "bf16" && precision != "fp32")
    return usage("--precision must be bf16 or fp32, got '" + precision + "'");

  if (!std::ifstream(input)) {
    std::fprintf(stderr, "apc plan: %s: cannot open (ap IR from apc import)\n", input.c_str());
    return 1;
  }
  mlir::DialectRegistry registry;
  driver::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(input, sourceMgr, mlir::ParserConfig(&context));
  if (!module) {
    std::fprintf(stderr, "apc plan: %s: cannot parse (see above)\n", input.c_str());
    return 1;
  }
  if (Status s = driver::checkImportedStep(*module); !s) {
    std::fprintf(stderr, "apc plan: %s: %s\n", input.c_str(), s.message().c_str());
    return 1;
  }
  if (Status s = driver::setParallelPlan(*module, *parallelPlan, *clusterSpec); !s)
    return usage("--plan \"" + planText + "\": " + s.message());
  TrainStepOptions options;
  options.precision = precision;
  if (mlir::failed(driver::runPasses(*module, options, Phase::Pipeline))) {
    std::fprintf(stderr, "apc plan: %s: compilation failed (see above)\n", input.c_str());
    return 1;
  }
  auto lowered = driver::lowerStages(*module);
  if (mlir::failed(lowered)) {
    std::fprintf(stderr, "apc plan: %s: lowering failed (see above)\n", input.c_str());
    return 1;
  }
  const cost::Cluster &costCluster = *clusterSpec;
  auto prediction = driver::predictPlan(*lowered, costCluster);
  if (!prediction) {
    std::fprintf(stderr, "apc plan: %s\n", prediction.message().c_str());
    return 1;
  }
  cost::ModelFigures model = driver::modelFiguresOf(lowered->first, lowered->programs);
  PlanCandidate candidate{parallelPlan->toString(), std::move(*prediction)};
  std::string out = json ? predictionJson({candidate}, model, costCluster)
                         : predictionText(candidate, model, costCluster);
  std::fputs(out.c_str(), stdout);
  return 0;
}

} // namespace apc::tools
