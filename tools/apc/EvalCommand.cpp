// `apc eval`: run the entry function of an ap IR file on the reference interpreter.
//
// Arguments are matched to tensors of the input safetensors file by their `ap.name`
// (Hugging Face names for parameters, `input_ids` and `labels` for the batch);
// floating tensors are converted to the argument's element type (f32, bf16, f16),
// integer tensors to i32/i64. Results are written by their `ap.name` (`loss`, ...).
#include "tools/apc/Commands.h"

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
  std::string irPath, inputsPath, outputPath, entry;
  FlagParser flags("apc eval", "run an ap IR function on the reference interpreter",
                   "apc eval FILE.mlir --inputs in.safetensors -o out.safetensors "
                   "[--entry NAME]");
  flags.addPositional("FILE.mlir", &irPath, "ap IR (from apc import or apc compile)");
  flags.addString("inputs", &inputsPath,
                  "safetensors with one tensor per argument, by name", "FILE");
  flags.addString("o", &outputPath, "safetensors file for the results, by name", "FILE");
  flags.addString("entry", &entry, "function to run (default: @train_step or the only one)",
                  "NAME");
  flags.require("inputs");
  flags.require("o");
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;

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
