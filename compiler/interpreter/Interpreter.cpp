// Walks a function in order, keeping one RefTensor per SSA value.
#include "compiler/interpreter/Interpreter.h"

#include "runtime/support/HalfFloat.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

namespace apc::interp {

const char *elementTypeName(ElementType type) { return dtypeName(type); }

int64_t RefTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

double roundTo(ElementType type, double value) {
  switch (type) {
  case ElementType::F32: return double(float(value));
  case ElementType::BF16: return roundDoubleToBf16(value);
  case ElementType::F16: return roundDoubleToF16(value);
  case ElementType::I32:
  case ElementType::I64: return std::trunc(value);
  }
  return value;
}

// Every value is held as doubles: a result needs a static shape and an element count
// that fits (counted without overflow); otherwise the reason, else "".
static std::string unholdableResult(mlir::Operation &op) {
  constexpr int64_t kMaxElements = int64_t(1) << 30; // 8 GiB of doubles
  for (mlir::Type t : op.getResultTypes()) {
    auto type = llvm::dyn_cast<mlir::RankedTensorType>(t);
    if (!type)
      continue;
    std::string text;
    llvm::raw_string_ostream os(text);
    os << type;
    if (!type.hasStaticShape())
      return "result " + text + " has a dynamic shape";
    int64_t n = 1;
    for (int64_t d : type.getShape()) {
      if (d != 0 && n > kMaxElements / d)
        return "result " + text + " has more than 2^30 elements, more than the reference "
                                  "interpreter holds";
      n *= d;
    }
  }
  return "";
}

Result<std::vector<RefTensor>> run(mlir::func::FuncOp function,
                                   const std::vector<RefTensor> &arguments) {
  return run(function, arguments, Options());
}

Result<std::vector<RefTensor>> run(mlir::func::FuncOp function,
                                   const std::vector<RefTensor> &arguments,
                                   const Options &options) {
  using ResultT = Result<std::vector<RefTensor>>;
  mlir::Block &body = function.getBody().front();
  if (arguments.size() != body.getNumArguments())
    return ResultT::error("function @" + function.getSymName().str() + " takes " +
                          std::to_string(body.getNumArguments()) + " arguments, got " +
                          std::to_string(arguments.size()));
  llvm::DenseMap<mlir::Value, RefTensor> values;
  for (auto [arg, tensor] : llvm::zip(body.getArguments(), arguments))
    values[arg] = tensor;

  for (mlir::Operation &op : body) {
    std::vector<const RefTensor *> operands;
    for (mlir::Value v : op.getOperands()) {
      auto it = values.find(v);
      if (it == values.end())
        return ResultT::error("internal error: operand of '" +
                              op.getName().getStringRef().str() + "' has no value");
      operands.push_back(&it->second);
    }
    if (auto ret = llvm::dyn_cast<mlir::func::ReturnOp>(op)) {
      std::vector<RefTensor> results;
      for (const RefTensor *t : operands)
        results.push_back(*t);
      return results;
    }
    std::string unholdable = unholdableResult(op);
    Result<std::vector<RefTensor>> results =
        unholdable.empty() ? evaluate(&op, operands, options) : ResultT::error(unholdable);
    if (!results) {
      std::string where;
      llvm::raw_string_ostream os(where);
      os << op.getLoc();
      return ResultT::error("'" + op.getName().getStringRef().str() + "' at " + where +
                            ": " + results.message());
    }
    if (results->size() != op.getNumResults())
      return ResultT::error("internal error: '" + op.getName().getStringRef().str() +
                            "' gave " + std::to_string(results->size()) +
                            " values for " + std::to_string(op.getNumResults()) +
                            " results");
    for (auto [value, tensor] : llvm::zip(op.getResults(), *results))
      if (!value.use_empty()) // an unused result (say a gradient nobody needs) is dropped
        values[value] = std::move(tensor);
    // Free values whose last use was this op, so large functions fit in memory.
    for (mlir::Value v : op.getOperands()) {
      bool usedLater = llvm::any_of(v.getUsers(), [&](mlir::Operation *user) {
        return user != &op && op.isBeforeInBlock(user);
      });
      if (!usedLater && !llvm::isa<mlir::BlockArgument>(v))
        values.erase(v);
    }
  }
  return ResultT::error("function @" + function.getSymName().str() + " has no return");
}

} // namespace apc::interp
