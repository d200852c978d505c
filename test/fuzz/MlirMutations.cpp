// The mutations of MlirMutations.h. Each keeps the IR something the parser could have
// produced (types MLIR can print, no op erased while used), so that a crash found later
// is the compiler's and not the mutator's; the verifier judges everything else.
#include "test/fuzz/MlirMutations.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/APInt.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace apc::fuzz {
namespace {

using namespace mlir;

std::vector<Operation *> bodyOps(func::FuncOp fn) {
  std::vector<Operation *> ops;
  for (Operation &op : fn.getBody().front().without_terminator())
    ops.push_back(&op);
  return ops;
}

// The values `op` may use: the arguments and the results of the ops before it (all of
// them when `op` is null).
std::vector<Value> valuesBefore(func::FuncOp fn, Operation *op) {
  Block &block = fn.getBody().front();
  std::vector<Value> values(block.args_begin(), block.args_end());
  for (Operation &o : block) {
    if (&o == op)
      break;
    values.insert(values.end(), o.result_begin(), o.result_end());
  }
  return values;
}

std::vector<Value> ofType(const std::vector<Value> &values, Type type, Value except = {}) {
  std::vector<Value> out;
  for (Value v : values)
    if (v.getType() == type && v != except)
      out.push_back(v);
  return out;
}

// Keeps the function's type in step with its arguments and its return.
void syncFunctionType(func::FuncOp fn) {
  Block &block = fn.getBody().front();
  std::vector<Type> inputs, results;
  for (BlockArgument a : block.getArguments())
    inputs.push_back(a.getType());
  for (Value v : block.getTerminator()->getOperands())
    results.push_back(v.getType());
  fn.setType(FunctionType::get(fn.getContext(), inputs, results));
}

// Near `old` without overflowing (it may be dynamic: INT64_MIN).
int64_t pickDim(ByteReader &in, int64_t old) {
  old = std::clamp<int64_t>(old, -(int64_t(1) << 40), int64_t(1) << 40);
  return in.pick<int64_t>({1, 2, 3, 4, 8, 16, 0, ShapedType::kDynamic, old * 2, old + 1,
                           old > 1 ? old / 2 : 5, 64, 256, int64_t(1) << 20,
                           int64_t(1) << 40, 7});
}

Type pickElement(ByteReader &in, MLIRContext *ctx) {
  Builder b(ctx);
  switch (in.below(8)) {
  case 0: return b.getF32Type();
  case 1: return b.getBF16Type();
  case 2: return b.getF16Type();
  case 3: return b.getI64Type();
  case 4: return b.getI32Type();
  case 5: return b.getF64Type();
  case 6: return b.getI1Type();
  default: return b.getF32Type();
  }
}

// `type` with a dimension or its element type changed; non-tensors unchanged.
Type mutateType(Type type, ByteReader &in) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return type;
  std::vector<int64_t> shape(tensor.getShape().begin(), tensor.getShape().end());
  switch (in.below(4)) {
  case 0: // element type
    return RankedTensorType::get(shape, pickElement(in, type.getContext()));
  case 1: // rank: one dimension more or fewer
    if (!shape.empty() && in.flag())
      shape.erase(shape.begin() + in.below(shape.size()));
    else
      shape.insert(shape.begin() + in.below(shape.size() + 1), in.pick<int64_t>({1, 2, 4}));
    return RankedTensorType::get(shape, tensor.getElementType());
  default:
    if (shape.empty())
      return type;
    int64_t &d = shape[in.below(shape.size())];
    d = pickDim(in, d);
    return RankedTensorType::get(shape, tensor.getElementType());
  }
}

// Rewrites every type of `fn` (arguments, results, function type) with `map`: a change
// made consistently, so that the verifier agrees and the passes see new shapes.
template <typename Map> void remapAllTypes(func::FuncOp fn, Map map) {
  for (BlockArgument a : fn.getBody().front().getArguments())
    a.setType(map(a.getType()));
  fn.walk([&](Operation *op) {
    for (OpResult r : op->getResults())
      r.setType(map(r.getType()));
  });
  syncFunctionType(fn);
}

const char *globalDim(func::FuncOp fn, ByteReader &in) {
  std::set<int64_t> dims;
  fn.walk([&](Operation *op) {
    for (Value v : op->getOperands())
      if (auto t = dyn_cast<RankedTensorType>(v.getType()))
        dims.insert(t.getShape().begin(), t.getShape().end());
  });
  if (dims.empty())
    return "global-dim (none)";
  std::vector<int64_t> all(dims.begin(), dims.end());
  int64_t from = all[in.below(all.size())], to = pickDim(in, from);
  remapAllTypes(fn, [&](Type t) -> Type {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (!tensor)
      return t;
    std::vector<int64_t> shape(tensor.getShape().begin(), tensor.getShape().end());
    for (int64_t &d : shape)
      if (d == from)
        d = to;
    return RankedTensorType::get(shape, tensor.getElementType());
  });
  return "global-dim";
}

const char *globalElement(func::FuncOp fn, ByteReader &in) {
  MLIRContext *ctx = fn.getContext();
  Type from = in.flag() ? Type(Builder(ctx).getF32Type()) : pickElement(in, ctx);
  Type to = pickElement(in, ctx);
  remapAllTypes(fn, [&](Type t) -> Type {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (!tensor || tensor.getElementType() != from)
      return t;
    return RankedTensorType::get(tensor.getShape(), to);
  });
  return "global-element-type";
}

const char *valueType(func::FuncOp fn, ByteReader &in) {
  std::vector<Value> values = valuesBefore(fn, nullptr);
  if (values.empty())
    return "value-type (none)";
  Value v = values[in.below(values.size())];
  v.setType(mutateType(v.getType(), in));
  syncFunctionType(fn);
  return isa<BlockArgument>(v) ? "argument-type" : "result-type";
}

const char *swapOperands(func::FuncOp fn, ByteReader &in) {
  std::vector<Operation *> ops;
  fn.walk([&](Operation *op) {
    if (op->getNumOperands() >= 2)
      ops.push_back(op);
  });
  if (ops.empty())
    return "swap-operands (none)";
  Operation *op = ops[in.below(ops.size())];
  unsigned a = in.below(op->getNumOperands()), b = in.below(op->getNumOperands());
  Value va = op->getOperand(a), vb = op->getOperand(b);
  op->setOperand(a, vb);
  op->setOperand(b, va);
  return "swap-operands";
}

// Replaces one operand: by an earlier value of its type (usually still valid), or by any
// value at all (a type or dominance error for the verifier, or a shape the rules check).
const char *replaceOperand(func::FuncOp fn, ByteReader &in, bool sameType) {
  std::vector<Operation *> ops;
  fn.walk([&](Operation *op) {
    if (op->getNumOperands() > 0)
      ops.push_back(op);
  });
  if (ops.empty())
    return "replace-operand (none)";
  Operation *op = ops[in.below(ops.size())];
  unsigned i = in.below(op->getNumOperands());
  Value old = op->getOperand(i);
  std::vector<Value> candidates = valuesBefore(fn, op);
  if (sameType)
    candidates = ofType(candidates, old.getType(), old);
  else if (in.below(4) == 0)
    candidates = valuesBefore(fn, nullptr);
  if (candidates.empty())
    return "replace-operand (none)";
  op->setOperand(i, candidates[in.below(candidates.size())]);
  return sameType ? "operand-same-type" : "operand-any-value";
}

// Erases an op, its uses first moved to earlier values of the same types.
const char *eraseOp(func::FuncOp fn, ByteReader &in) {
  std::vector<Operation *> ops = bodyOps(fn);
  if (ops.empty())
    return "erase-op (none)";
  Operation *op = ops[in.below(ops.size())];
  std::vector<Value> before = valuesBefore(fn, op);
  std::vector<Value> replacements;
  for (Value r : op->getResults()) {
    if (r.use_empty()) {
      replacements.push_back({});
      continue;
    }
    std::vector<Value> same = ofType(before, r.getType());
    if (same.empty())
      return "erase-op (no replacement)";
    replacements.push_back(same[in.below(same.size())]);
  }
  for (unsigned i = 0; i < op->getNumResults(); ++i)
    if (replacements[i])
      op->getResult(i).replaceAllUsesWith(replacements[i]);
  op->erase();
  return "erase-op";
}

const char *duplicateOp(func::FuncOp fn, ByteReader &in) {
  std::vector<Operation *> ops = bodyOps(fn);
  if (ops.empty())
    return "duplicate-op (none)";
  Operation *op = ops[in.below(ops.size())];
  OpBuilder b(op->getContext());
  b.setInsertionPointAfter(op);
  Operation *copy = b.clone(*op);
  for (unsigned i = 0; i < op->getNumResults(); ++i)
    op->getResult(i).replaceUsesWithIf(copy->getResult(i), [&](OpOperand &use) {
      return use.getOwner() != copy && in.flag();
    });
  return "duplicate-op";
}

const char *moveOp(func::FuncOp fn, ByteReader &in) {
  std::vector<Operation *> ops = bodyOps(fn);
  if (ops.size() < 2)
    return "move-op (none)";
  Operation *op = ops[in.below(ops.size())], *to = ops[in.below(ops.size())];
  if (op != to)
    op->moveBefore(to);
  return "move-op";
}

// Inserts a new op after a value's definition and gives it some of the value's uses:
// unary ops keep the type, a cast changes the element type, a reshape flattens.
const char *insertOp(func::FuncOp fn, ByteReader &in) {
  std::vector<Value> values = valuesBefore(fn, nullptr);
  if (values.empty())
    return "insert-op (none)";
  Value v = values[in.below(values.size())];
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return "insert-op (none)";
  OpBuilder b(fn.getContext());
  if (auto arg = dyn_cast<BlockArgument>(v))
    b.setInsertionPointToStart(arg.getOwner());
  else
    b.setInsertionPointAfter(v.getDefiningOp());
  const char *name = in.pick({"ap.silu", "ap.sqrt", "ap.add", "ap.mul", "ap.cast",
                              "ap.reshape", "ap.shift_labels", "ap.transpose"});
  OperationState state(fn.getLoc(), name);
  state.addOperands(v);
  Type result = type;
  if (std::string(name) == "ap.add" || std::string(name) == "ap.mul") {
    state.addOperands(v);
  } else if (std::string(name) == "ap.cast") {
    result = RankedTensorType::get(type.getShape(), pickElement(in, fn.getContext()));
  } else if (std::string(name) == "ap.reshape") {
    result = type.hasStaticShape()
                 ? RankedTensorType::get({type.getNumElements()}, type.getElementType())
                 : mutateType(type, in);
  } else if (std::string(name) == "ap.transpose") {
    result = mutateType(type, in);
  }
  state.addTypes(result);
  Operation *op = b.create(state);
  v.replaceUsesWithIf(op->getResult(0),
                      [&](OpOperand &use) { return use.getOwner() != op && in.flag(); });
  return "insert-op";
}

// Every attribute in the module, to borrow from: enums and dictionaries of other places.
std::vector<NamedAttribute> attributePool(ModuleOp module) {
  std::vector<NamedAttribute> pool;
  auto add = [&](DictionaryAttr dict) {
    if (!dict)
      return;
    for (NamedAttribute a : dict) {
      pool.push_back(a);
      if (auto inner = dyn_cast<DictionaryAttr>(a.getValue()))
        pool.insert(pool.end(), inner.begin(), inner.end());
    }
  };
  module.walk([&](Operation *op) {
    add(op->getAttrDictionary());
    if (auto fn = dyn_cast<func::FuncOp>(op))
      for (unsigned i = 0; i < fn.getNumArguments(); ++i)
        add(fn.getArgAttrDict(i));
  });
  return pool;
}

Attribute mutateAttr(Attribute attr, ByteReader &in, const std::vector<NamedAttribute> &pool);

DictionaryAttr mutateDict(DictionaryAttr dict, ByteReader &in,
                          const std::vector<NamedAttribute> &pool) {
  MLIRContext *ctx = dict ? dict.getContext() : nullptr;
  NamedAttrList list(dict);
  switch (in.below(4)) {
  case 0: // remove an entry
    if (!list.empty())
      list.erase(list.getAttrs()[in.below(list.getAttrs().size())].getName());
    break;
  case 1: // add (or overwrite) one from elsewhere
    if (!pool.empty()) {
      NamedAttribute a = pool[in.below(pool.size())];
      list.set(a.getName(), a.getValue());
    }
    break;
  default: // change an entry's value
    if (!list.empty()) {
      NamedAttribute a = list.getAttrs()[in.below(list.getAttrs().size())];
      list.set(a.getName(), mutateAttr(a.getValue(), in, pool));
    }
  }
  if (!ctx && !pool.empty())
    ctx = pool.front().getName().getContext();
  return ctx ? list.getDictionary(ctx) : dict;
}

Attribute mutateAttr(Attribute attr, ByteReader &in, const std::vector<NamedAttribute> &pool) {
  if (in.below(8) == 1 && !pool.empty()) // anything else found in the module
    return pool[in.below(pool.size())].getValue();
  if (auto b = dyn_cast<BoolAttr>(attr))
    return BoolAttr::get(attr.getContext(), !b.getValue());
  if (auto i = dyn_cast<IntegerAttr>(attr)) {
    unsigned width = i.getType().isIndex() ? 64 : i.getType().getIntOrFloatBitWidth();
    int64_t old = std::clamp<int64_t>(i.getValue().trySExtValue().value_or(0), -(int64_t(1) << 40),
                                      int64_t(1) << 40);
    int64_t v = in.pick<int64_t>({0, 1, -1, 2, 3, old + 1, old - 1, old * 2, int64_t(1) << 20,
                                  std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min(), 7});
    return IntegerAttr::get(i.getType(), APInt(width, uint64_t(v), /*isSigned=*/true,
                                               /*implicitTrunc=*/true));
  }
  if (auto f = dyn_cast<FloatAttr>(attr)) {
    double old = f.getValueAsDouble();
    double v = in.pick<double>({0.0, -1.0, 1.0, old * 2, 1e30, 1e-30,
                                std::numeric_limits<double>::quiet_NaN(),
                                std::numeric_limits<double>::infinity(), -old});
    return FloatAttr::get(f.getType(), v);
  }
  if (isa<StringAttr>(attr)) {
    const char *s = in.pick({"", "llama3", "parameter", "input", "x", "train_step",
                             "model.embed_tokens.weight", "lm_head.weight", "default"});
    return StringAttr::get(attr.getContext(), s);
  }
  if (auto dict = dyn_cast<DictionaryAttr>(attr))
    return mutateDict(dict, in, pool);
  if (auto array = dyn_cast<ArrayAttr>(attr)) {
    std::vector<Attribute> items(array.begin(), array.end());
    if (!items.empty() && in.flag())
      items.erase(items.begin() + in.below(items.size()));
    else if (!items.empty())
      items.push_back(items[in.below(items.size())]);
    return ArrayAttr::get(attr.getContext(), items);
  }
  return pool.empty() ? attr : pool[in.below(pool.size())].getValue();
}

const char *opAttribute(ModuleOp module, func::FuncOp fn, ByteReader &in) {
  std::vector<Operation *> ops;
  fn.walk([&](Operation *op) {
    if (!op->getAttrDictionary().empty() && op != fn.getOperation())
      ops.push_back(op);
  });
  if (ops.empty())
    return "op-attribute (none)";
  Operation *op = ops[in.below(ops.size())];
  DictionaryAttr mutated = mutateDict(op->getAttrDictionary(), in, attributePool(module));
  for (NamedAttribute a : op->getAttrDictionary())
    if (!mutated.get(a.getName()))
      op->removeAttr(a.getName());
  for (NamedAttribute a : mutated)
    op->setAttr(a.getName(), a.getValue());
  return "op-attribute";
}

const char *argumentAttribute(ModuleOp module, func::FuncOp fn, ByteReader &in) {
  if (fn.getNumArguments() == 0)
    return "argument-attribute (none)";
  unsigned i = in.below(fn.getNumArguments());
  fn.setArgAttrs(i, mutateDict(fn.getArgAttrDict(i), in, attributePool(module)));
  return "argument-attribute";
}

// The function's own attributes, ap.model (the model's sizes) most often.
const char *functionAttribute(ModuleOp module, func::FuncOp fn, ByteReader &in) {
  std::vector<NamedAttribute> pool = attributePool(module);
  if (auto model = fn->getAttrOfType<DictionaryAttr>("ap.model"); model && in.below(4)) {
    fn->setAttr("ap.model", mutateDict(model, in, pool));
    return "model-attribute";
  }
  // The inherent attributes (name, type, argument and result attributes) stay: without
  // them the function is nothing the parser could return.
  auto inherent = [](StringAttr name) {
    return name == "function_type" || name == "sym_name" || name == "arg_attrs" ||
           name == "res_attrs" || name == "sym_visibility";
  };
  if (in.flag()) {
    std::vector<StringAttr> names;
    for (NamedAttribute a : fn->getDiscardableAttrs())
      names.push_back(a.getName());
    if (!names.empty())
      fn->removeAttr(names[in.below(names.size())]);
    return "function-attribute";
  }
  if (!pool.empty()) {
    NamedAttribute a = pool[in.below(pool.size())];
    if (!inherent(a.getName()))
      fn->setAttr(a.getName(), mutateAttr(a.getValue(), in, pool));
  }
  return "function-attribute";
}

const char *returnOperand(func::FuncOp fn, ByteReader &in) {
  Operation *ret = fn.getBody().front().getTerminator();
  std::vector<Value> values = valuesBefore(fn, ret);
  if (ret->getNumOperands() == 0 || values.empty())
    return "return-operand (none)";
  if (in.flag()) { // an extra result or one fewer; the function type follows
    if (ret->getNumOperands() > 1 && in.flag())
      ret->eraseOperand(in.below(ret->getNumOperands()));
    else
      ret->insertOperands(ret->getNumOperands(), values[in.below(values.size())]);
    syncFunctionType(fn);
    fn.removeResAttrsAttr(); // their count no longer matches
    return "return-arity";
  }
  ret->setOperand(in.below(ret->getNumOperands()), values[in.below(values.size())]);
  syncFunctionType(fn);
  return "return-operand";
}

// Drops an argument (its uses moved to another of the same type) or adds one.
const char *argumentList(func::FuncOp fn, ByteReader &in) {
  Block &block = fn.getBody().front();
  if (in.flag() && fn.getNumArguments() > 0) {
    unsigned i = in.below(fn.getNumArguments());
    BlockArgument arg = block.getArgument(i);
    std::vector<Value> same = ofType(valuesBefore(fn, &block.front()), arg.getType(), arg);
    if (!arg.use_empty()) {
      if (same.empty())
        return "erase-argument (no replacement)";
      arg.replaceAllUsesWith(same[in.below(same.size())]);
    }
    (void)fn.eraseArgument(i);
    return "erase-argument";
  }
  std::vector<Value> values = valuesBefore(fn, nullptr);
  if (values.empty())
    return "add-argument (none)";
  unsigned i = in.below(fn.getNumArguments() + 1);
  unsigned from = fn.getNumArguments() ? in.below(fn.getNumArguments()) : 0;
  DictionaryAttr attrs = fn.getNumArguments() ? fn.getArgAttrDict(from) : DictionaryAttr();
  (void)fn.insertArgument(i, values[in.below(values.size())].getType(), attrs, fn.getLoc());
  return "add-argument";
}

// A second function beside the step (a copy, maybe renamed), or the step renamed.
const char *functions(ModuleOp module, func::FuncOp fn, ByteReader &in) {
  MLIRContext *ctx = module.getContext();
  const char *name = in.pick({"train_step", "step", "train_step_copy", "main"});
  if (in.flag()) {
    fn.setSymName(name);
    return "rename-function";
  }
  OpBuilder b(ctx);
  b.setInsertionPointAfter(fn);
  auto copy = cast<func::FuncOp>(b.clone(*fn));
  copy.setSymName(name);
  return "copy-function";
}

} // namespace

const char *mutateProgram(ModuleOp module, func::FuncOp fn, ByteReader &in) {
  // Weighted towards changes the verifier accepts, so that most mutants reach the passes.
  switch (in.below(26)) {
  case 0: case 1: case 2: return globalDim(fn, in);
  case 3: return globalElement(fn, in);
  case 4: return valueType(fn, in);
  case 5: case 6: return swapOperands(fn, in);
  case 7: case 8: case 9: return replaceOperand(fn, in, /*sameType=*/true);
  case 10: return replaceOperand(fn, in, /*sameType=*/false);
  case 11: case 12: return eraseOp(fn, in);
  case 13: case 14: return duplicateOp(fn, in);
  case 15: return moveOp(fn, in);
  case 16: case 17: return insertOp(fn, in);
  case 18: case 19: return opAttribute(module, fn, in);
  case 20: case 21: return argumentAttribute(module, fn, in);
  case 22: case 23: return functionAttribute(module, fn, in);
  case 24: return in.flag() ? returnOperand(fn, in) : argumentList(fn, in);
  default: return functions(module, fn, in);
  }
}

} // namespace apc::fuzz
