// The AddressableTensors trait: shapes whose byte sizes fit APC's limits.
#include "dialects/ap/IR/ApTraits.h"

#include "runtime/support/CheckedMath.h"

#include "mlir/IR/BuiltinTypes.h"

namespace apc::ap {

static mlir::LogicalResult checkAddressable(mlir::Operation *op, llvm::StringRef role,
                                            unsigned index, mlir::Type type) {
  auto tensor = mlir::dyn_cast<mlir::RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return mlir::success(); // the op's own verifier names the expected type
  // Element sizes round up to whole bytes, as every kernel stores them; other element
  // types (refused by the op's verifier) count as 8.
  mlir::Type element = tensor.getElementType();
  int64_t elementBytes =
      element.isIntOrFloat() ? std::max<int64_t>(1, (element.getIntOrFloatBitWidth() + 7) / 8)
                             : 8;
  std::optional<int64_t> bytes = checkedProduct(tensor.getShape(), elementBytes);
  if (!bytes || *bytes > kMaxTensorBytes)
    return op->emitOpError() << role << " #" << index << " (" << type
                             << ") is larger than the " << kMaxTensorBytesText
                             << " APC addresses";
  return mlir::success();
}

mlir::LogicalResult verifyAddressableTensors(mlir::Operation *op) {
  for (auto [i, type] : llvm::enumerate(op->getOperandTypes()))
    if (mlir::failed(checkAddressable(op, "operand", i, type)))
      return mlir::failure();
  for (auto [i, type] : llvm::enumerate(op->getResultTypes()))
    if (mlir::failed(checkAddressable(op, "result", i, type)))
      return mlir::failure();
  return mlir::success();
}

} // namespace apc::ap
