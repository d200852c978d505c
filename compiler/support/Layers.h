// Which decoder layer a parameter belongs to, as the model marked it: `ap.layer = N` on
// a decoder layer's parameters, `ap.head` on the final norm and the LM head, neither on
// the embedding. Recomputation groups ops by layer and pipelines put layers on stages;
// both read layers from the dataflow starting here.
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <climits>

namespace apc {

constexpr int kNoLayer = -1;        // the embedding, the batch, constants
constexpr int kHeadLayer = INT_MAX; // the final norm, the LM head, the loss

// Argument `index` of `fn`: its `ap.layer`, kHeadLayer with `ap.head`, else kNoLayer.
int parameterLayer(mlir::func::FuncOp fn, unsigned index);

} // namespace apc
