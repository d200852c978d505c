// Which decoder layers each pipeline stage holds: as the plan's `stages` field says
// ("3+5"), or balanced by cost (the LM head counts towards the last stage).
#pragma once

#include "compiler/partition/ParallelPlan.h"

#include <vector>

namespace apc::stages {

struct StageLayers {
  int64_t first = 0, count = 0; // decoder layers [first, first + count)
};

// The model's sizes that set a layer's cost.
struct ModelSizes {
  int64_t layers = 1, hidden = 1, ffn = 1, heads = 1, kvHeads = 1, headDim = 1, vocab = 1;
  int64_t seqLen = 1;
};

// The sizes of the model a step records as `ap.model` (absent fields: 1), with the
// sequence length of its batch: what ap-pipeline and the plan search balance stages by.
ModelSizes modelSizesOf(mlir::DictionaryAttr model, int64_t seqLen);

// Layers per stage that make the largest stage cost least: `layers` layers of equal cost
// `layer`, the last stage also carrying `head`; on a tie earlier stages are fuller.
// O(layers): closed forms for the stages without the head.
std::vector<int64_t> balancedCounts(int64_t pp, int64_t layers, double layer, double head);

// pp stages (pp x vp chunks with vp > 1, chunk c of stage s at index c * pp + s) of at
// least one layer each, covering the layers in order; an error naming the plan field when
// `stages` does not list such a split.
Result<std::vector<StageLayers>> stageLayers(const partition::ParallelPlan &plan,
                                             const ModelSizes &m);

} // namespace apc::stages
