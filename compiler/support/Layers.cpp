#include "compiler/support/Layers.h"

namespace apc {

int parameterLayer(mlir::func::FuncOp fn, unsigned index) {
  if (fn.getArgAttr(index, "ap.head"))
    return kHeadLayer;
  if (auto layer = fn.getArgAttrOfType<mlir::IntegerAttr>(index, "ap.layer"))
    if (layer.getInt() >= 0 && layer.getInt() < INT_MAX)
      return int(layer.getInt());
  return kNoLayer;
}

} // namespace apc
