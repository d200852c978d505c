#include "compiler/support/Layers.h"

namespace apc {

int parameterLayer(llvm::StringRef name) {
  if (name == "model.norm.weight" || name == "lm_head.weight")
    return kHeadLayer;
  if (!name.consume_front("model.layers."))
    return kNoLayer;
  unsigned layer = 0;
  if (name.consumeInteger(10, layer) || !name.starts_with("."))
    return kNoLayer;
  return int(layer);
}

} // namespace apc
