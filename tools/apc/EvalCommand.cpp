// `apc eval`: run the entry function of an ap IR file on the reference interpreter.
//
// Arguments are matched to tensors of the input safetensors file by their `ap.name`
// (Hugging Face names for parameters, `input_ids` and `labels` for the batch);
// floating tensors are converted to the argument's element type (f32, bf16, f16),
// integer tensors to i32/i64. Results are written by their `ap.name` (`loss`, ...).
#include "tools/apc/Commands.h"
#include "tools/apc/EvalInputs.h"

#include "compiler/interpreter/Interpreter.h"
#include "dialects/ap/IR/ApDialect.h"
#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/Flags.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdio>
#include <map>

namespace apc::tools {
namespace {

using safetensors::DType;

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool isFloat(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}
bool isFloat(interp::ElementType t) {
  return t == interp::ElementType::F32 || t == interp::ElementType::BF16 ||
         t == interp::ElementType::F16;
}

interp::ElementType elementTypeOf(mlir::Type type) {
  mlir::Type e = mlir::cast<mlir::RankedTensorType>(type).getElementType();
  if (e.isBF16()) return interp::ElementType::BF16;
  if (e.isF16()) return interp::ElementType::F16;
  if (e.isSignlessInteger(32)) return interp::ElementType::I32;
  if (e.isSignlessInteger(64)) return interp::ElementType::I64;
  return interp::ElementType::F32;
}

std::string nameOf(mlir::DictionaryAttr attrs, const std::string &fallback) {
  if (attrs)
    if (auto name = attrs.getAs<mlir::StringAttr>("ap.name"))
      return name.getValue().str();
  return fallback;
}

Result<mlir::func::FuncOp> findEntry(mlir::ModuleOp module, const std::string &file,
                                     const std::string &requested) {
  std::vector<mlir::func::FuncOp> functions;
  module.walk([&](mlir::func::FuncOp f) { functions.push_back(f); });
  for (mlir::func::FuncOp f : functions)
    if (!requested.empty() ? f.getSymName() == requested : f.getSymName() == "train_step")
      return f;
  if (requested.empty() && functions.size() == 1)
    return functions.front();
  if (!requested.empty())
    return Result<mlir::func::FuncOp>::error(file + ": no function named @" + requested);
  return Result<mlir::func::FuncOp>::error(
      file + ": no @train_step and " + std::to_string(functions.size()) +
      " functions; choose one with --entry");
}

} // namespace

int runEval(int argc, char **argv, int first) {
  std::string irPath, inputsPath, outputPath, entry, makeInputsPath;
  EvalInputOptions make;
  int64_t padId = -1, seed = int64_t(make.seed);
  FlagParser flags("apc eval", "run an ap IR function on the reference interpreter",
                   "apc eval FILE.mlir --inputs in.safetensors -o out.safetensors "
                   "[--entry NAME]\n"
                   "       apc eval FILE.mlir --make-inputs in.safetensors [--weights PATH] "
                   "[--data FILE.arrow] [--column NAME] [--pad-id N] [--lr X] [--seed N] "
                   "[--entry NAME]");
  flags.addPositional("FILE.mlir", &irPath, "ap IR (from apc import or apc compile)");
  flags.addString("inputs", &inputsPath,
                  "safetensors with one tensor per argument, by name", "FILE");
  flags.addString("o", &outputPath, "safetensors file for the results, by name", "FILE");
  flags.addString("entry", &entry, "function to run (default: @train_step or the only one)",
                  "NAME");
  flags.addString("make-inputs", &makeInputsPath,
                  "write the inputs the function takes to FILE instead of running it: "
                  "parameters, zero moments, step 1, lr, a batch", "FILE");
  flags.addString("weights", &make.weightsPath,
                  "with --make-inputs: Hugging Face safetensors (file or folder; default: "
                  "aprun's seeded initialisation)", "PATH");
  flags.addString("data", &make.dataPath,
                  "with --make-inputs: Arrow file of token ids whose first rows are the batch "
                  "(default: seeded random ids)", "FILE");
  flags.addString("column", &make.column,
                  "with --make-inputs: the token-id column (default input_ids)", "NAME");
  flags.addInt("pad-id", &padId, "with --make-inputs: token id that pads short rows "
                                 "(default: the id apc data tokenize recorded in the data)",
               "N");
  flags.addDouble("lr", &make.lr, "with --make-inputs: the learning rate (default 1e-4)");
  flags.addInt("seed", &seed, "with --make-inputs: initialisation and random-id seed "
                              "(default 42, as aprun's)");
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  auto usage = [&](const std::string &message) {
    std::fprintf(stderr, "apc eval: %s (see 'apc eval --help')\n", message.c_str());
    return 2;
  };
  bool making = flags.given("make-inputs");
  if (making && (flags.given("inputs") || flags.given("o")))
    return usage("--make-inputs writes the inputs and runs nothing: give it without "
                 "--inputs and -o, then run apc eval FILE.mlir --inputs ... -o ...");
  if (!making) {
    if (!flags.given("inputs"))
      return usage("missing required flag '--inputs' (or --make-inputs FILE to write one)");
    if (!flags.given("o"))
      return usage("missing required flag '-o'");
    for (const char *only : {"weights", "data", "column", "pad-id", "lr", "seed"})
      if (flags.given(only))
        return usage(FlagParser::spelling(only) + " goes with --make-inputs");
  }
  if (flags.given("pad-id") && padId < 0)
    return usage("--pad-id must be a token id (>= 0)");
  if (padId >= 0)
    make.padId = padId;
  make.seed = uint64_t(seed);
  make.irPath = irPath;

  mlir::DialectRegistry registry;
  registry.insert<ap::ApDialect, mlir::func::FuncDialect, mlir::shard::ShardDialect>();
  mlir::MLIRContext context(registry);
  // A user sees the located message, not the failing operation printed after it.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(irPath, sourceMgr, mlir::ParserConfig(&context));
  if (!module) {
    std::fprintf(stderr, "apc eval: %s: cannot parse (see above)\n", irPath.c_str());
    return 1;
  }
  Result<mlir::func::FuncOp> function = findEntry(*module, irPath, entry);
  if (!function) {
    std::fprintf(stderr, "apc eval: %s\n", function.message().c_str());
    return 1;
  }
  mlir::func::FuncOp fn = *function;

  if (making) {
    auto made = makeEvalInputs(fn, make);
    if (!made) {
      std::fprintf(stderr, "apc eval: %s\n", made.message().c_str());
      return 1;
    }
    if (Status s = safetensors::write(makeInputsPath, *made); !s) {
      std::fprintf(stderr, "apc eval: %s\n", s.message().c_str());
      return 1;
    }
    std::printf("wrote %zu tensors for @%s to %s (%s, %s)\n", made->size(),
                fn.getSymName().str().c_str(), makeInputsPath.c_str(),
                make.weightsPath.empty()
                    ? ("parameters initialised with seed " + std::to_string(make.seed)).c_str()
                    : ("parameters from " + make.weightsPath).c_str(),
                make.dataPath.empty() ? "random token ids"
                                      : ("the first rows of " + make.dataPath).c_str());
    return 0;
  }

  Result<safetensors::File> inputs = safetensors::File::open(inputsPath);
  if (!inputs) {
    std::fprintf(stderr, "apc eval: %s\n", inputs.message().c_str());
    return 1;
  }
  std::vector<interp::RefTensor> arguments;
  std::map<std::string, bool> used;
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    std::string name = nameOf(fn.getArgAttrDict(i), "arg" + std::to_string(i));
    auto type = mlir::dyn_cast<mlir::RankedTensorType>(fn.getArgument(i).getType());
    if (!type || !type.hasStaticShape()) {
      std::fprintf(stderr, "apc eval: %s: argument %u of @%s is %s; only static tensors can "
                           "be evaluated\n", irPath.c_str(), i, fn.getSymName().str().c_str(),
                   [&] {
                     std::string s;
                     llvm::raw_string_ostream os(s);
                     os << fn.getArgument(i).getType();
                     return s;
                   }().c_str());
      return 1;
    }
    const safetensors::TensorView *tensor = inputs->find(name);
    if (!tensor) {
      std::fprintf(stderr, "apc eval: %s: no tensor '%s' for argument %u of @%s\n",
                   inputsPath.c_str(), name.c_str(), i, fn.getSymName().str().c_str());
      return 1;
    }
    used[name] = true;
    interp::RefTensor arg;
    arg.shape.assign(type.getShape().begin(), type.getShape().end());
    arg.type = elementTypeOf(type);
    if (tensor->shape != arg.shape) {
      std::fprintf(stderr, "apc eval: %s: tensor '%s' has shape %s but @%s expects %s\n",
                   inputsPath.c_str(), name.c_str(), shapeString(tensor->shape).c_str(),
                   fn.getSymName().str().c_str(), shapeString(arg.shape).c_str());
      return 1;
    }
    if (isFloat(tensor->dtype) != isFloat(arg.type)) {
      std::fprintf(stderr, "apc eval: %s: tensor '%s' is %s but @%s expects %s\n",
                   inputsPath.c_str(), name.c_str(), safetensors::dtypeName(tensor->dtype),
                   fn.getSymName().str().c_str(), interp::elementTypeName(arg.type));
      return 1;
    }
    arg.data = safetensors::toDoubles(*tensor);
    for (double &x : arg.data)
      x = interp::roundTo(arg.type, x);
    arguments.push_back(std::move(arg));
  }
  for (const safetensors::TensorView &t : inputs->tensors())
    if (!used.count(t.name))
      std::fprintf(stderr, "apc eval: warning: %s: tensor '%s' matches no argument, ignored\n",
                   inputsPath.c_str(), t.name.c_str());

  auto results = interp::run(fn, arguments);
  if (!results) {
    std::fprintf(stderr, "apc eval: %s: %s\n", irPath.c_str(), results.message().c_str());
    return 1;
  }
  std::vector<safetensors::TensorToWrite> outputs;
  for (unsigned i = 0; i < fn.getNumResults(); ++i) {
    const interp::RefTensor &r = (*results)[i];
    safetensors::TensorToWrite out;
    out.name = nameOf(fn.getResultAttrDict(i), "result" + std::to_string(i));
    out.dtype = safetensors::fileDType(r.type);
    out.shape = r.shape;
    out.bytes = safetensors::fromDoubles(r.data, out.dtype);
    if (r.numElements() == 1)
      std::printf("%s = %.9g\n", out.name.c_str(), r.data[0]);
    outputs.push_back(std::move(out));
  }
  if (Status s = safetensors::write(outputPath, outputs); !s) {
    std::fprintf(stderr, "apc eval: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

} // namespace apc::tools
