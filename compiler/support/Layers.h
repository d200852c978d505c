// Which decoder layer a parameter belongs to, by its Hugging Face name. Recomputation
// groups ops by layer and pipelines put layers on stages; both read layers from the
// dataflow starting here (the tracer's names do not survive the text form).
#pragma once

#include "llvm/ADT/StringRef.h"

#include <climits>

namespace apc {

constexpr int kNoLayer = -1;        // the embedding, the batch, constants
constexpr int kHeadLayer = INT_MAX; // the final norm, the LM head, the loss

// `model.layers.N.*` -> N; `model.norm.weight`, `lm_head.weight` -> kHeadLayer;
// anything else (the embedding) -> kNoLayer.
int parameterLayer(llvm::StringRef name);

} // namespace apc
