#include "compiler/support/EntryFunction.h"

#include "mlir/IR/Builders.h"

namespace apc {

mlir::FailureOr<mlir::func::FuncOp> findEntryFunction(mlir::ModuleOp module) {
  llvm::SmallVector<mlir::func::FuncOp> functions(module.getOps<mlir::func::FuncOp>());
  for (mlir::func::FuncOp f : functions)
    if (f.getSymName() == "train_step")
      return f;
  if (functions.size() == 1)
    return functions.front();
  module.emitError() << "expected a function @train_step (or exactly one function), found "
                     << functions.size() << " functions";
  return mlir::failure();
}

static std::string stringAttr(mlir::DictionaryAttr attrs, llvm::StringRef key) {
  if (attrs)
    if (auto s = attrs.getAs<mlir::StringAttr>(key))
      return s.getValue().str();
  return "";
}

std::string argName(mlir::func::FuncOp fn, unsigned index) {
  return stringAttr(fn.getArgAttrDict(index), "ap.name");
}
std::string argRole(mlir::func::FuncOp fn, unsigned index) {
  return stringAttr(fn.getArgAttrDict(index), "ap.role");
}
std::string resultName(mlir::func::FuncOp fn, unsigned index) {
  return stringAttr(fn.getResultAttrDict(index), "ap.name");
}

mlir::DictionaryAttr nameAttrs(mlir::MLIRContext *context, const std::string &name,
                               const std::string &role) {
  mlir::Builder b(context);
  llvm::SmallVector<mlir::NamedAttribute> attrs = {
      b.getNamedAttr("ap.name", b.getStringAttr(name))};
  if (!role.empty())
    attrs.push_back(b.getNamedAttr("ap.role", b.getStringAttr(role)));
  return b.getDictionaryAttr(attrs);
}

} // namespace apc

namespace apc {

std::optional<ap::BatchInput> batchInput(mlir::func::FuncOp fn, unsigned index) {
  if (auto mark = fn.getArgAttrOfType<ap::BatchInputAttr>(index, "ap.batch"))
    return mark.getValue();
  return std::nullopt;
}

std::optional<ap::TensorLayout> tensorLayout(mlir::func::FuncOp fn, unsigned index) {
  if (auto mark = fn.getArgAttrOfType<ap::TensorLayoutAttr>(index, "ap.layout"))
    return mark.getValue();
  return std::nullopt;
}

mlir::BlockArgument batchArgument(mlir::func::FuncOp fn, ap::BatchInput which) {
  for (unsigned i = 0; i < fn.getNumArguments(); ++i)
    if (batchInput(fn, i) == which)
      return fn.getArgument(i);
  return {};
}

} // namespace apc
