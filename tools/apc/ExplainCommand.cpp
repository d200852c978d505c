// `apc explain plan.fb [--svg schedule.svg] [--json]`: what a compiled plan does, in
// words: the model and the mesh, the pipeline stages, where every parameter and moment
// lives, the collectives and memory per device, and a picture of the 1F1B schedule.
#include "tools/apc/Commands.h"

#include "runtime/plan/PlanLoader.h"
#include "runtime/support/AtomicFile.h"
#include "runtime/support/Flags.h"
#include "tools/apc/explain/PlanFacts.h"

#include <cstdio>
#include <string>

namespace apc::tools {

int runExplain(int argc, char **argv, int first) {
  std::string input, svgPath;
  bool json = false;
  FlagParser flags("apc explain",
                   "explain a compiled plan: mesh, pipeline stages, parameter layouts, "
                   "collectives and memory per device",
                   "apc explain plan.fb [--svg schedule.svg] [--json]");
  flags.addPositional("plan.fb", &input, "a plan written by apc compile");
  flags.addString("svg", &svgPath, "also draw the pipeline schedule (1F1B) as an SVG picture",
                  "FILE");
  flags.addBool("json", &json, "print the explanation as one JSON object (every parameter and "
                               "collective listed)");
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  if (flags.given("svg") && (svgPath.empty() || svgPath == "-")) {
    std::fprintf(stderr, "apc explain: --svg needs a file name\n");
    return 2;
  }
  // Loaded as aprun loads it: a plan aprun refuses is refused here with the same message.
  auto loaded = plan::LoadedPlan::load(input);
  if (!loaded) {
    std::fprintf(stderr, "apc explain: %s\n", loaded.message().c_str());
    return 2;
  }
  auto facts = explain::gatherFacts(loaded->plan(), input);
  if (!facts) {
    std::fprintf(stderr, "apc explain: %s\n", facts.message().c_str());
    return 2;
  }
  std::string written;
  if (!svgPath.empty()) {
    if (!facts->timeline) {
      std::fprintf(stderr, "apc explain: %s: the schedule of %zu stages x %d micro-batches is "
                           "too large to draw\n",
                   input.c_str(), facts->stages.size(), facts->microBatches);
      return 1;
    }
    if (Status s = writeFileAtomically(svgPath, explain::renderScheduleSvg(*facts)); !s) {
      std::fprintf(stderr, "apc explain: %s\n", s.message().c_str());
      return 1;
    }
    written = svgPath;
  }
  std::string out = json ? explain::renderJson(*facts, written)
                         : explain::renderText(*facts, written);
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (json && !written.empty())
    std::fprintf(stderr, "apc explain: wrote %s\n", written.c_str());
  return std::fflush(stdout) == 0 ? 0 : 1;
}

} // namespace apc::tools
