// `apc plan MODEL.mlir --cluster CLUSTER [--plan PLAN] [--top K] [--json]`: the cost
// model's prediction (compiler/cost, docs/cost-model.md) of one plan, or, without a plan
// (or with `--plan auto[,fields]`), the plan search's ranking (compiler/search,
// docs/search.md): the best plans with their figures, what was dropped and why, then the
// winner in full. Seconds per step and its breakdown, tokens per second per device, MFU,
// memory per device by kind and whether it fits, the pipeline schedule with absolute
// times. Plans are compiled exactly as `apc compile` compiles them.
#include "tools/apc/Commands.h"
#include "tools/apc/SearchRequest.h"
#include "frontends/llama3/Llama3Model.h"

#include "compiler/driver/Compile.h"
#include "compiler/driver/Predict.h"
#include "compiler/search/PlanSearch.h"
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
  int64_t top = 5;
  FlagParser flags("apc plan",
                   "predict a parallel plan's step time, throughput and memory, or search for "
                   "the best plan",
                   "apc plan MODEL.mlir --cluster CLUSTER [--plan PLAN|auto[,FIELDS]] "
                   "[--top K] [--precision bf16|fp32] [--json]");
  flags.addPositional("MODEL.mlir", &input, "ap IR from apc import");
  flags.addString("cluster", &cluster,
                  "devices to plan for: a profile with a count (cpu:4, h100-sxm:8, "
                  "h100-sxm:8x16) or a cluster file (apc calibrate); default: this "
                  "machine's CPUs as cpu:N, one device per 4 cores (said on stderr)",
                  "CLUSTER");
  flags.addString("plan", &planText,
                  "a parallel plan as apc compile takes it (\"dp=2,tp=2,pp=2,mb=4\"): "
                  "predicted; or auto (the default): search every plan; or "
                  "\"auto,tp=8,recompute=full\": search the fields not given",
                  "PLAN");
  flags.addInt("top", &top, "with a search, how many plans to rank (default 5)", "K");
  flags.addString("precision", &precision, "bf16 (default) or fp32, as apc compile",
                  "bf16|fp32");
  flags.addBool("json", &json, "print one JSON object: {\"candidates\": [{\"plan\", "
                               "\"seconds_per_step\", \"tokens_per_second_per_device\", \"mfu\", "
                               "\"peak_bytes_per_device\", \"fits\", \"breakdown\", ...}], and "
                               "with a search \"dropped\" and \"search\"}");
  flags.limit("top", 1, 1000);
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  auto usage = [](const std::string &what) {
    std::fprintf(stderr, "apc plan: %s\n", what.c_str());
    return 2;
  };
  if (!flags.given("cluster")) {
    std::string assumed;
    cluster = cost::thisMachineCluster(assumed);
    std::fprintf(stderr, "%s: %s\n", "apc plan", assumed.c_str());
  }
  auto clusterSpec = cost::resolveCluster(cluster);
  if (!clusterSpec)
    return usage(clusterSpec.message());
  auto request = search::parsePlanRequest(planText);
  if (!request)
    return usage("--plan: " + request.message());
  if (precision != "bf16" && precision != "fp32")
    return usage("--precision must be bf16 or fp32, got '" + precision + "'");

  if (!std::ifstream(input)) {
    std::fprintf(stderr, "apc plan: %s: cannot open (ap IR from apc import)\n", input.c_str());
    return 1;
  }
  mlir::DialectRegistry registry;
  driver::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  // A user sees the located message, not the failing operation printed after it.
  context.printOpOnDiagnostic(false);
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
  TrainStepOptions options;
  options.precision = precision;
  const cost::Cluster &costCluster = *clusterSpec;

  std::vector<PlanCandidate> ranked;
  SearchSummary summary;
  partition::ParallelPlan chosen = request->plan;
  if (request->search) {
    search::SearchOptions searchOptions = searchOptionsFor(*request, options, *module, int(top));
    auto found = search::searchPlans(*module, costCluster, searchOptions);
    if (!found) {
      std::fprintf(stderr, "apc plan: %s on %s: %s\n", input.c_str(), cluster.c_str(),
                   found.message().c_str());
      return 1;
    }
    for (search::Ranked &r : found->ranked)
      ranked.push_back({r.plan.toString(), std::move(r.prediction), r.estimated});
    for (const search::Dropped &d : found->dropped)
      summary.dropped.push_back({d.plan.toString(), d.reason});
    summary.enumerated = found->enumerated;
    summary.compiled = found->compiled;
    summary.estimated = found->estimated;
    summary.standInCompiles = found->standInCompiles;
    summary.prunedByBound = found->prunedByBound;
    summary.droppedByMemoryBound = found->droppedByMemoryBound;
    summary.dominated = found->dominated;
    summary.seconds = found->seconds;
    chosen = found->ranked.front().plan;
  }

  // The chosen (or given) plan in full, with each kernel's time.
  if (Status s = driver::setParallelPlan(*module, chosen, costCluster); !s)
    return usage("--plan \"" + planText + "\": " + s.message());
  if (mlir::failed(driver::runPasses(*module, options, Phase::Pipeline))) {
    std::fprintf(stderr, "apc plan: %s: compilation failed (see above)\n", input.c_str());
    return 1;
  }
  auto lowered = driver::lowerStages(*module);
  if (mlir::failed(lowered)) {
    std::fprintf(stderr, "apc plan: %s: lowering failed (see above)\n", input.c_str());
    return 1;
  }
  auto prediction = driver::predictPlan(*lowered, costCluster);
  if (!prediction) {
    std::fprintf(stderr, "apc plan: %s\n", prediction.message().c_str());
    return 1;
  }
  cost::ModelFigures model = driver::modelFiguresOf(lowered->first, lowered->programs);
  PlanCandidate winner{chosen.toString(), std::move(*prediction)};
  std::string out;
  if (request->search) {
    ranked.front() = winner; // the same figures, with the per-kernel times
    out = json ? predictionJson(ranked, model, costCluster, &summary)
               : searchText(ranked, summary, costCluster) + "\nchosen: " +
                     predictionText(winner, model, costCluster);
  } else {
    out = json ? predictionJson({winner}, model, costCluster)
               : predictionText(winner, model, costCluster);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

} // namespace apc::tools
