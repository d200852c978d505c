// Fuzzes what `apc compile`, `apc-opt` and `apc eval` do with ap IR (see README.md).
//
// Two kinds of input. Text (first byte a lowercase letter, '/', '#' or '!'): MLIR text
// for the parser, with an optional first line `// plan: dp=2,tp=2` (default dp=1), also
// run on the interpreter.
// Anything else: bytes that choose one of the imported programs of mlir_seeds/, a
// parallel plan, options and then structured mutations (MlirMutations.h), so that most
// inputs get past the verifier and into the passes. Then, as `apc compile` does: verify,
// checkImportedStep, setParallelPlan (or, as apc-opt reads it, the plan set on the module
// unchecked), the training-step passes, emitPlan; sometimes `apc eval`'s interpreter on
// the input and on the compiled step.
//
// A refusal is fine when it comes with an error; crashes, UB, a pass failing silently or
// leaving IR that does not verify, printed IR that does not parse back, and a plan that
// the runtime's loader refuses are findings. APC_FUZZ_STATS=1 prints how far the inputs
// got (at exit and at every power of two executions); APC_FUZZ_PRINT_MUTANT=1 prints each
// mutant's text.
#include "compiler/driver/Compile.h"
#include "compiler/interpreter/Interpreter.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Mesh.h"
#include "runtime/plan/PlanLoader.h"
#include "test/fuzz/ByteReader.h"
#include "test/fuzz/FuzzSupport.h"
#include "test/fuzz/MlirFuzzStats.h"
#include "test/fuzz/MlirMutations.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassInstrumentation.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <string>
#include <vector>

#ifndef APC_MLIR_FUZZ_SEEDS
#error "APC_MLIR_FUZZ_SEEDS: the folder of mlir_fuzz's seed programs (test/CMakeLists.txt)"
#endif

using namespace apc;
using namespace mlir;

namespace {

// The imported programs that mutations start from, read once.
const std::vector<std::string> &seedPrograms() {
  static const std::vector<std::string> seeds = [] {
    std::vector<std::string> texts;
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(APC_MLIR_FUZZ_SEEDS, ec), end; it != end && !ec;
         it.increment(ec)) {
      if (llvm::StringRef(it->path()).ends_with(".mlir"))
        if (auto buffer = llvm::MemoryBuffer::getFile(it->path()))
          texts.push_back((*buffer)->getBuffer().str());
    }
    std::sort(texts.begin(), texts.end()); // the same choice on every machine
    APC_FUZZ_CHECK(!texts.empty(), "no seed programs in %s", APC_MLIR_FUZZ_SEEDS);
    return texts;
  }();
  return seeds;
}

const DialectRegistry &registry() {
  static DialectRegistry *r = [] {
    auto *reg = new DialectRegistry;
    driver::registerCompilerDialects(*reg);
    return reg;
  }();
  return *r;
}

// Counts the errors the context reports: every refusal must come with one.
class ErrorCount {
public:
  explicit ErrorCount(MLIRContext &context) {
    context.getDiagEngine().registerHandler([this](Diagnostic &d) {
      if (d.getSeverity() == DiagnosticSeverity::Error) {
        ++count;
        last = d.str();
      }
      fuzz::report("diagnostic: " + d.str());
      return success();
    });
  }
  int count = 0;
  std::string last;
};

// `cpu:N` as apc compile resolves it (N at most a node of the cpu profile).
cost::Cluster cpuCluster(int64_t devices) {
  auto cluster = cost::resolveCluster("cpu:" + std::to_string(devices));
  if (!cluster)
    std::abort(); // the fuzzer only asks for small counts
  return *cluster;
}

// What one input asks for besides the program.
struct Setup {
  partition::ParallelPlan plan;
  cost::Cluster cluster = cpuCluster(1);
  bool planUnchecked = false; // set on the module as is, as apc-opt reads it
  TrainStepOptions options;
  Phase last = Phase::Pipeline;
  bool evalInput = false, evalCompiled = false;
};

// `plan` as text with every field: "dp=2,tp=1,..." for --plan, "dp = 2, tp = 1, ..."
// for #ap.parallel (and whatever values the fuzzer chose, valid or not).
std::string planText(const partition::ParallelPlan &p, const std::string &is = "=",
                     const std::string &comma = ",") {
  std::string stages = partition::stagesText(p.stages);
  if (is != "=") // #ap.parallel writes the list in brackets
    stages = "[" + std::string(llvm::join(llvm::split(stages, '+'), ", ")) + "]";
  std::string text;
  for (auto [key, value] : std::vector<std::pair<const char *, std::string>>{
           {"dp", std::to_string(p.dp)}, {"tp", std::to_string(p.tp)},
           {"pp", std::to_string(p.pp)}, {"zero", std::to_string(p.zero)},
           {"sp", p.sp ? (is == "=" ? "on" : "true") : (is == "=" ? "off" : "false")},
           {"mb", std::to_string(p.mb)}, {"recompute", p.recompute}, {"stages", stages}}) {
    if (std::string(key) == "stages" && p.stages.empty())
      continue;
    text += (text.empty() ? "" : comma) + key + is + value;
  }
  return text;
}

Setup readSetup(fuzz::ByteReader &in) {
  // A short input reads zeros: they choose the common case (a feasible plan, the whole
  // pipeline), the rare ones take a nonzero choice.
  Setup s;
  partition::ParallelPlan &p = s.plan;
  bool wild = in.below(4) == 1;
  if (!wild) { // plans the tiny models can mostly take, so that the passes run
    p.dp = in.pick<int64_t>({1, 2, 1, 2, 4});
    p.tp = in.pick<int64_t>({1, 2, 1, 2});
    p.pp = in.pick<int64_t>({1, 1, 2});
    p.mb = in.pick<int64_t>({1, 1, 2});
    p.zero = p.dp > 1 ? in.pick<int64_t>({0, 1, 2, 3}) : 0;
    p.sp = p.tp > 1 && in.flag();
    p.recompute = in.pick<const char *>({"none", "selective", "full"});
    if (p.pp == 2 && in.below(4) == 1)
      p.stages = {1, 1};
  } else { // anything the parsers might let through
    p.dp = in.pick<int64_t>({0, 1, 2, 3, 8, -1, 16, 5});
    p.tp = in.pick<int64_t>({0, 1, 2, 3, 8, -1, 16, 4});
    p.pp = in.pick<int64_t>({0, 1, 2, 3, 4, -1, 8, 2});
    p.mb = in.pick<int64_t>({0, 1, 2, 3, 8, -1, 16, 5});
    p.zero = in.pick<int64_t>({0, 1, 2, 3, 4, -1});
    p.sp = in.flag();
    p.recompute = in.pick<const char *>({"none", "selective", "full", "bogus"});
    for (size_t n = in.below(4); n > 0; --n)
      p.stages.push_back(in.pick<int64_t>({0, 1, 2, 3, -1}));
  }
  int64_t devices = wild && in.flag() ? in.pick<int64_t>({1, 2, 3, 8}) : p.devices();
  s.cluster = cpuCluster(std::max<int64_t>(devices, 1));
  s.planUnchecked = in.below(8) == 1;
  s.options.precision = in.flag() ? "fp32" : "bf16";
  s.options.maxGradNorm = in.below(4) == 1 ? 1.0 : 0.0;
  if (in.below(4) == 1)
    s.last = Phase(in.below(unsigned(Phase::Pipeline) + 1));
  s.evalInput = in.below(8) == 1;
  s.evalCompiled = in.below(4) == 1;
  return s;
}

// Watches the passes: which ran (for the statistics), that a failing one said why, and
// that a succeeding one left IR that verifies (the pass manager's own verifier is off,
// so that the two cases can be told apart).
class PassWatch : public PassInstrumentation {
public:
  PassWatch(ErrorCount &errors) : errors_(errors) {}
  void runBeforePass(Pass *pass, Operation *) override {
    errorsBefore_ = errors_.count;
    fuzz::stats().reached(pass->getArgument());
  }
  void runAfterPass(Pass *pass, Operation *op) override {
    APC_FUZZ_CHECK(succeeded(verify(op)), "pass %s left IR that does not verify: %s",
                   pass->getName().str().c_str(), errors_.last.c_str());
  }
  void runAfterPassFailed(Pass *pass, Operation *) override {
    APC_FUZZ_CHECK(errors_.count > errorsBefore_, "pass %s failed without an error",
                   pass->getName().str().c_str());
    fuzz::stats().count("failed in " + pass->getArgument().str());
  }

private:
  ErrorCount &errors_;
  int errorsBefore_ = 0;
};

// Arguments for the interpreter: small deterministic values, token ids below 4 (every
// vocabulary of the seeds is larger). None when an argument is dynamic or large, or a
// result is large but not so large that the interpreter must refuse it (slow otherwise).
std::optional<std::vector<interp::RefTensor>> evalArguments(func::FuncOp fn) {
  constexpr int64_t kMaxElements = 1 << 16, kRefused = int64_t(1) << 30;
  auto elements = [](RankedTensorType t) { // saturates at kRefused + 1; -1 when dynamic
    int64_t n = 1;
    for (int64_t d : t.getShape()) {
      if (d < 0)
        return int64_t(-1);
      n = d != 0 && n > (kRefused + 1) / d ? kRefused + 1 : n * d;
    }
    return n;
  };
  bool cheap = true;
  fn.walk([&](Operation *op) {
    for (Type t : op->getResultTypes()) {
      auto tensor = dyn_cast<RankedTensorType>(t);
      int64_t n = tensor ? elements(tensor) : 0;
      cheap = cheap && (n <= kMaxElements || n > kRefused);
    }
  });
  if (!cheap)
    return std::nullopt;
  std::vector<interp::RefTensor> args;
  for (BlockArgument a : fn.getArguments()) {
    auto tensor = dyn_cast<RankedTensorType>(a.getType());
    if (!tensor || elements(tensor) < 0 || elements(tensor) > kMaxElements)
      return std::nullopt;
    interp::RefTensor t;
    t.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
    Type e = tensor.getElementType();
    if (e.isF32()) t.type = interp::ElementType::F32;
    else if (e.isBF16()) t.type = interp::ElementType::BF16;
    else if (e.isF16()) t.type = interp::ElementType::F16;
    else if (e.isSignlessInteger(64)) t.type = interp::ElementType::I64;
    else if (e.isSignlessInteger(32)) t.type = interp::ElementType::I32;
    else return std::nullopt;
    bool isInt = e.isSignlessInteger();
    for (int64_t i = 0; i < tensor.getNumElements(); ++i)
      t.data.push_back(isInt ? double(i % 4)
                             : interp::roundTo(t.type, double((i * 37) % 17 - 8) / 16.0));
    args.push_back(std::move(t));
  }
  return args;
}

void evaluate(ModuleOp module, const char *what) {
  FailureOr<func::FuncOp> fn = findEntryFunction(module);
  if (failed(fn))
    return;
  std::optional<std::vector<interp::RefTensor>> args = evalArguments(*fn);
  if (!args)
    return;
  auto results = interp::run(*fn, *args);
  fuzz::report(std::string(what) + ": " + (results ? "ran" : results.message()));
  if (!results) {
    APC_FUZZ_CHECK(!results.message().empty(), "%s: the interpreter failed silently", what);
    return;
  }
  APC_FUZZ_CHECK(results->size() == fn->getNumResults(), "%s: %zu results for %u", what,
                 results->size(), fn->getNumResults());
  fuzz::stats().count(what);
}

// Printed IR must parse back: apc compile --emit=mlir and apc-opt hand it on.
void checkRoundTrip(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  MLIRContext context(registry(), MLIRContext::Threading::DISABLED);
  ErrorCount errors(context);
  OwningOpRef<ModuleOp> again = parseSourceString<ModuleOp>(text, ParserConfig(&context));
  APC_FUZZ_CHECK(again, "printed IR does not parse back: %s", errors.last.c_str());
}

// A clean refusal: it says why.
void refused(const char *phase, const std::string &message) {
  APC_FUZZ_CHECK(!message.empty(), "%s refused without a message", phase);
  fuzz::report(std::string(phase) + ": " + message);
  fuzz::stats().count(std::string("refused by ") + phase);
}

void compile(ModuleOp module, const Setup &setup, ErrorCount &errors) {
  fuzz::Stats &stats = fuzz::stats();
  if (failed(verify(module))) {
    refused("verifier", errors.last);
    return;
  }
  stats.count("verified");
  if (setup.evalInput)
    evaluate(module, "evaluated input");
  if (setup.planUnchecked) {
    // As apc-opt gets it: through the parser, which checks the attribute's invariants.
    std::string text = "#ap.parallel<" + planText(setup.plan, " = ", ", ") + ">";
    Attribute attr = parseAttribute(text, module.getContext());
    if (!attr)
      return refused("#ap.parallel", errors.last);
    module->setAttr(kParallelAttr, attr);
  } else {
    if (Status s = driver::checkImportedStep(module); !s)
      return refused("checkImportedStep", s.message());
    // As the command line gets it: the plan's text through the plan parser first.
    Result<partition::ParallelPlan> parsed = partition::parseParallelPlan(planText(setup.plan));
    if (!parsed)
      return refused("parseParallelPlan", parsed.message());
    if (Status s = driver::setParallelPlan(module, *parsed, setup.cluster); !s)
      return refused("setParallelPlan", s.message());
  }
  stats.count("plan set");
  PassManager pm(module.getContext());
  pm.enableVerifier(false); // PassWatch verifies
  pm.addInstrumentation(std::make_unique<PassWatch>(errors));
  buildTrainStepPipeline(pm, setup.options, setup.last);
  if (failed(pm.run(module)))
    return refused("passes", errors.last);
  stats.count("passes done");
  if (setup.last != Phase::Pipeline || setup.evalInput)
    checkRoundTrip(module);
  if (setup.last != Phase::Pipeline)
    return;
  driver::PlanOptions options;
  options.cluster = setup.cluster.spec;
  int errorsBefore = errors.count;
  FailureOr<driver::CompiledPlan> plan = driver::emitPlan(module, options);
  if (failed(plan)) {
    APC_FUZZ_CHECK(errors.count > errorsBefore, "emitPlan failed without an error");
    return refused("emitPlan", errors.last);
  }
  stats.count("plan emitted");
  Result<plan::LoadedPlan> loaded = plan::LoadedPlan::fromBytes(plan->bytes, "plan.fb");
  APC_FUZZ_CHECK(loaded.isOk(), "the runtime refuses the emitted plan: %s",
                 loaded.message().c_str());
  if (setup.evalCompiled && setup.cluster.devices() == 1)
    evaluate(module, "evaluated step");
}

bool isText(const uint8_t *data, size_t size) {
  return size > 0 && ((data[0] >= 'a' && data[0] <= 'z') || data[0] == '/' || data[0] == '#' ||
                      data[0] == '!');
}

// Text input: the plan from a first line `// plan: TEXT`, the rest through the parser.
void runText(const std::string &text) {
  fuzz::stats().count("text inputs");
  Setup setup;
  setup.evalInput = true; // as apc eval would, on a hand-written function too
  const std::string prefix = "// plan: ";
  if (text.compare(0, prefix.size(), prefix) == 0) {
    std::string planText = text.substr(prefix.size(), text.find('\n') - prefix.size());
    Result<partition::ParallelPlan> plan = partition::parseParallelPlan(planText);
    if (!plan)
      return refused("parseParallelPlan", plan.message());
    setup.plan = *plan;
    setup.cluster = cpuCluster(std::max<int64_t>(1, plan->devices()));
  }
  MLIRContext context(registry(), MLIRContext::Threading::DISABLED);
  ErrorCount errors(context);
  // Unverified: compile() verifies, so that the statistics tell parser and verifier apart.
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(text, ParserConfig(&context, /*verifyAfterParse=*/false));
  if (!module) {
    APC_FUZZ_CHECK(errors.count > 0, "the parser failed without an error");
    return refused("parser", errors.last);
  }
  // A module that carries its plan is read as apc-opt reads it.
  setup.planUnchecked = (*module)->hasAttr(kParallelAttr);
  compile(*module, setup, errors);
}

void runMutated(const uint8_t *data, size_t size) {
  fuzz::ByteReader in(data, size);
  const std::string &seed = in.pick(seedPrograms());
  Setup setup = readSetup(in);
  std::string mutated;
  {
    MLIRContext context(registry(), MLIRContext::Threading::DISABLED);
    ErrorCount errors(context);
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(seed, ParserConfig(&context));
    APC_FUZZ_CHECK(module, "a seed program does not parse: %s", errors.last.c_str());
    auto fn = *(*module).getOps<func::FuncOp>().begin();
    // Few mutations at a time: each one risks the verifier's refusal.
    for (int n = in.pick({0, 1, 1, 1, 2, 2, 3, 6}); n > 0; --n)
      fuzz::report(std::string("mutation: ") + fuzz::mutateProgram(*module, fn, in));
    llvm::raw_string_ostream os(mutated);
    // Generic and unverified: custom printers and the verifier trust the IR, the parser
    // does not.
    module->print(os, OpPrintingFlags().printGenericOpForm().assumeVerified());
  }
  if (std::getenv("APC_FUZZ_PRINT_MUTANT")) // to turn a finding into a lit test
    std::fprintf(stderr, "%s\n", mutated.c_str());
  // The compiler gets the mutant as text, as it would get it: so it sees only what the
  // parser can make (the parser fills in defaulted attributes a mutation may drop).
  MLIRContext context(registry(), MLIRContext::Threading::DISABLED);
  ErrorCount errors(context);
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(mutated, ParserConfig(&context, /*verifyAfterParse=*/false));
  if (!module)
    return refused("parser", errors.last);
  compile(*module, setup, errors);
}

} // namespace

// LLVM's allocators poison and unpoison their slabs in code compiled with ASan (ours, the
// headers' inline copies) but not in libMLIR.so, which then hands out memory that ASan
// still thinks poisoned. Such hand-made poisoning is ignored; ASan's own checks remain.
extern "C" const char *__asan_default_options() { return "allow_user_poisoning=0"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::stats().count("inputs");
  if (isText(data, size))
    runText(std::string(reinterpret_cast<const char *>(data), size));
  else
    runMutated(data, size);
  fuzz::stats().executionDone();
  return 0;
}
