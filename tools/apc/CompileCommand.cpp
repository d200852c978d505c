// `apc compile`: flags and files around the compiler driver (compiler/driver/Compile.h),
// which takes the imported forward + loss to the training step and plan.fb.
#include "tools/apc/Commands.h"
#include "tools/apc/SearchRequest.h"
#include "frontends/llama3/Llama3Model.h"

#include "compiler/cost/Cluster.h"
#include "compiler/driver/Compile.h"
#include "compiler/emit/EmitPlan.h"
#include "compiler/search/PlanSearch.h"
#include "runtime/support/AtomicFile.h"
#include "runtime/support/Flags.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <optional>

namespace apc::tools {

int runCompile(int argc, char **argv, int first) {
  std::string input, output, cluster, precision = "bf16", emit = "plan", compileTo;
  TrainStepOptions options;
  bool timing = false;
  std::string phases;
  for (const std::string &p : phaseNames())
    phases += (phases.empty() ? "" : "|") + p;
  FlagParser flags("apc compile", "compile the imported training step",
                   "apc compile llama3.mlir --cluster cpu:1 [--plan PLAN] "
                   "[--precision bf16|fp32] [--emit=plan|mlir] [--compile-to=PHASE] "
                   "[--pad-id N] [--beta1 X --beta2 X --eps X --weight-decay X "
                   "--max-grad-norm X] [--timing] -o OUT");
  flags.addPositional("FILE.mlir", &input, "ap IR from apc import");
  flags.addString("cluster", &cluster,
                  "devices to compile for: a built-in profile with a count (cpu:4 local CPU "
                  "processes, h100-sxm:8 one node of 8, h100-sxm:64 or :8x8 eight nodes of 8; "
                  "profiles a100-80g, cpu, h100-500w, h100-sxm, h200) or a cluster file "
                  "(FILE.json, docs/cost-model.md); default: this machine's CPUs as cpu:N, "
                  "one device per 4 cores (said on stderr)",
                  "NAME:N|FILE");
  std::string planText;
  flags.addString("plan", &planText,
                  "parallel plan, e.g. \"dp=2,tp=2,pp=2,mb=4,zero=1,sp=on\" or '{\"dp\": 2}'; fields "
                  "dp, tp, pp, vp, mb, zero, sp, recompute, recompute_stages, stages (docs/partitioning.md); auto "
                  "(the default): the plan search picks the fastest plan that fits; "
                  "\"auto,tp=8\": it picks the fields not given (docs/search.md)",
                  "PLAN");
  flags.addString("precision", &precision,
                  "bf16 (default: bf16 compute, f32 master weights and loss) or fp32",
                  "bf16|fp32");
  flags.addString("emit", &emit, "what to write: plan (default: plan.fb for aprun) or mlir",
                  "plan|mlir");
  flags.addString("compile-to", &compileTo,
                  "stop after this phase and write its IR (implies --emit=mlir)", phases);
  int64_t padId = -1;
  flags.addInt("pad-id", &padId, "default pad token id recorded in the plan (aprun --pad-id "
                                 "overrides)");
  flags.addDouble("beta1", &options.beta1, "AdamW beta1 (default 0.9)");
  flags.addDouble("beta2", &options.beta2, "AdamW beta2 (default 0.999)");
  flags.addDouble("eps", &options.epsilon, "AdamW epsilon (default 1e-8)");
  flags.addDouble("weight-decay", &options.weightDecay, "AdamW weight decay (default 0.01)");
  flags.addDouble("max-grad-norm", &options.maxGradNorm,
                  "clip gradients to this global L2 norm (default 0: no clipping)");
  flags.addBool("timing", &timing, "print the time spent in each pass");
  flags.addString("o", &output, "output file ('-': stdout)", "FILE");
  flags.require("o");
  std::string message;
  switch (flags.parse(argc, argv, first, message)) {
  case FlagParser::Outcome::Help:
    std::fputs(flags.help().c_str(), stdout);
    std::printf("\nphases, in order: %s\n", phases.c_str());
    return 0;
  case FlagParser::Outcome::Error:
    std::fprintf(stderr, "%s\n", message.c_str());
    return 2;
  case FlagParser::Outcome::Ok:
    break;
  }
  auto usage = [](const std::string &what) {
    std::fprintf(stderr, "apc compile: %s\n", what.c_str());
    return 2;
  };
  if (!flags.given("cluster")) {
    std::string assumed;
    cluster = cost::thisMachineCluster(assumed);
    std::fprintf(stderr, "%s: %s\n", "apc compile", assumed.c_str());
  }
  auto clusterSpec = cost::resolveCluster(cluster);
  if (!clusterSpec)
    return usage("--cluster " + clusterSpec.message());
  auto request = search::parsePlanRequest(planText);
  if (!request)
    return usage("--plan: " + request.message());
  std::optional<partition::ParallelPlan> parallelPlan = request->plan;
  if (precision != "bf16" && precision != "fp32")
    return usage("--precision must be bf16 or fp32, got '" + precision + "'");
  if (!compileTo.empty()) {
    if (flags.given("emit") && emit != "mlir")
      return usage("--compile-to writes IR: use it with --emit=mlir");
    emit = "mlir";
  }
  std::optional<Phase> last = parsePhase(compileTo.empty() ? "pipeline" : compileTo);
  if (!last)
    return usage("--compile-to must be one of " + phases + ", got '" + compileTo + "'");
  if (emit != "mlir" && emit != "plan")
    return usage("--emit must be plan or mlir, got '" + emit + "'");
  if (!(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1))
    return usage("--beta1 and --beta2 must be in [0, 1)");
  if (!(options.epsilon > 0) || options.weightDecay < 0 || options.maxGradNorm < 0)
    return usage("--eps must be positive, --weight-decay and --max-grad-norm non-negative");
  options.precision = precision;

  mlir::DialectRegistry registry;
  driver::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  // A user sees the located message, not the failing operation printed after it.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  auto start = std::chrono::steady_clock::now();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(input, sourceMgr, mlir::ParserConfig(&context));
  if (!module) {
    std::fprintf(stderr, "apc compile: %s: cannot parse (see above)\n", input.c_str());
    return 1;
  }
  if (Status s = driver::checkImportedStep(*module); !s) {
    std::fprintf(stderr, "apc compile: %s: %s\n", input.c_str(), s.message().c_str());
    return 1;
  }
  std::optional<emit::SearchInfo> searchInfo;
  if (request->search) {
    // The plan search (compiler/search): compiles candidates as below and keeps the
    // fastest that fits; what it weighed is `apc plan`'s to show.
    // The winner and two runners-up, recorded in the plan.
    search::SearchOptions searchOptions = searchOptionsFor(*request, options, *module, 3);
    auto found = search::searchPlans(*module, *clusterSpec, searchOptions);
    if (!found) {
      std::fprintf(stderr, "apc compile: %s on %s: %s\n", input.c_str(), cluster.c_str(),
                   found.message().c_str());
      return 1;
    }
    parallelPlan = found->ranked.front().plan;
    searchInfo.emplace();
    searchInfo->request = planText.empty() ? "auto" : planText;
    searchInfo->enumerated = found->enumerated;
    searchInfo->estimated = found->estimated;
    searchInfo->compiled = found->compiled;
    searchInfo->prunedByBound = found->prunedByBound;
    searchInfo->dominated = found->dominated;
    searchInfo->dropped = int64_t(found->dropped.size());
    searchInfo->seconds = found->seconds;
    for (size_t i = 1; i < found->ranked.size(); ++i) {
      const cost::Prediction &p = found->ranked[i].prediction;
      searchInfo->alternatives.push_back(
          {found->ranked[i].plan.toString(), p.secondsPerStep, p.peakBytesPerDevice, p.breakdown,
           found->ranked[i].estimated});
    }
    std::fprintf(output == "-" ? stderr : stdout,
                 "searched %lld plans for %s in %.2f s (%lld estimated, %lld compiled, %lld pruned "
                 "by bound, %zu dropped): chose %s (apc plan lists the ranking)\n",
                 (long long)found->enumerated, cluster.c_str(), found->seconds,
                 (long long)found->estimated, (long long)found->compiled, (long long)found->prunedByBound,
                 found->dropped.size(), parallelPlan->toString().c_str());
  }
  if (Status s = driver::setParallelPlan(*module, *parallelPlan, *clusterSpec); !s)
    return usage("--plan \"" + planText + "\": " + s.message());
  std::string planDescription = parallelPlan->toString();
  if (mlir::failed(driver::runPasses(*module, options, *last, timing))) {
    std::fprintf(stderr, "apc compile: %s: compilation failed (see above)\n", input.c_str());
    return 1;
  }
  std::string text;
  std::vector<uint64_t> stageArenas; // one per pipeline stage
  std::string predicted;             // the cost model's summary (plans only)
  if (emit == "mlir") {
    llvm::raw_string_ostream os(text);
    module->print(os);
  } else {
    driver::PlanOptions planOptions;
    planOptions.cluster = cluster;
    planOptions.backend = clusterSpec->backend;
    planOptions.padId = padId;
    planOptions.search = searchInfo ? &*searchInfo : nullptr;
    auto plan = driver::emitPlan(*module, planOptions);
    if (mlir::failed(plan)) {
      std::fprintf(stderr, "apc compile: %s: lowering to a plan failed (see above)\n",
                   input.c_str());
      return 1;
    }
    text = std::move(plan->bytes);
    stageArenas = plan->stageArenas;
    const cost::Prediction &p = plan->prediction;
    char line[256];
    std::snprintf(line, sizeof line,
                  "predicted on %s: %.4g s per step, %.4g tokens/s per device, MFU %.2f%%, "
                  "%.1f MiB per device (%s); apc plan shows the breakdown\n",
                  cluster.c_str(), p.secondsPerStep, p.tokensPerSecondPerDevice, 100 * p.mfu,
                  double(p.peakBytesPerDevice) / 1048576.0, p.fits ? "fits" : "does NOT fit");
    predicted = line;
  }
  if (output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else if (Status s = writeFileAtomically(output, text); !s) {
    std::fprintf(stderr, "apc compile: %s\n", s.message().c_str());
    return 1;
  }
  uint64_t arenaBytes = 0;
  for (uint64_t a : stageArenas)
    arenaBytes = std::max(arenaBytes, a);
  int64_t ops = 0;
  std::string arenas = "arena " + std::to_string(arenaBytes) + " bytes";
  if (stageArenas.size() > 1) {
    arenas += " in the largest stage; per stage:";
    for (uint64_t a : stageArenas)
      arenas += " " + std::to_string(a);
  }
  std::string what = emit == "plan" ? "plan (" + arenas + ")"
                                    : "phase '" + (compileTo.empty() ? std::string("pipeline")
                                                                     : compileTo) + "'";
  module->walk([&](mlir::Operation *) { ++ops; });
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(output == "-" ? stderr : stdout,
               "compiled %s to %s (precision %s, cluster %s, plan %s): %lld ops in %.2fs%s%s\n",
               input.c_str(), what.c_str(), precision.c_str(), cluster.c_str(),
               planDescription.c_str(),
               (long long)ops, seconds, output == "-" ? "" : "; wrote ",
               output == "-" ? "" : output.c_str());
  std::fputs(predicted.c_str(), output == "-" ? stderr : stdout);
  return 0;
}

} // namespace apc::tools
