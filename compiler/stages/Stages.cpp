#include "compiler/stages/Stages.h"

#include <algorithm>
#include <limits>

namespace apc::stages {

ModelSizes modelSizesOf(mlir::DictionaryAttr model, int64_t seqLen) {
  auto get = [&](llvm::StringRef key) -> int64_t {
    auto a = model ? model.getAs<mlir::IntegerAttr>(key) : mlir::IntegerAttr();
    return a ? a.getInt() : 1;
  };
  ModelSizes m;
  m.layers = get("num_hidden_layers");
  m.hidden = get("hidden_size");
  m.ffn = get("intermediate_size");
  m.heads = get("num_attention_heads");
  m.kvHeads = get("num_key_value_heads");
  m.headDim = get("head_dim");
  m.vocab = get("vocab_size");
  m.seqLen = seqLen;
  return m;
}

// The least possible largest stage cost of n layers of cost `layer` on k stages (no head).
static double evenCost(int64_t k, int64_t n, double layer) {
  if (k == 0)
    return n == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return double((n + k - 1) / k) * layer;
}

std::vector<int64_t> balancedCounts(int64_t pp, int64_t layers, double layer, double head) {
  // The last stage carries the head: try each of its sizes against the others balanced,
  // the smallest on a tie (earlier stages fuller). O(layers), as the search needs.
  int64_t last = layers - (pp - 1);
  double bestCost = std::numeric_limits<double>::infinity();
  for (int64_t c = 1; c <= layers - (pp - 1); ++c) {
    double worst = std::max(evenCost(pp - 1, layers - c, layer), double(c) * layer + head);
    if (worst < bestCost) {
      bestCost = worst;
      last = c;
    }
  }
  // The others: each the fewest layers that still leaves the rest an even split no worse
  // than this stage's share, from the back (what a least-largest-stage split gives).
  std::vector<int64_t> counts(size_t(pp), 0);
  counts[size_t(pp - 1)] = last;
  for (int64_t k = pp - 1, n = layers - last; k >= 1; --k) {
    int64_t share = (n + k - 1) / k;
    int64_t c = k == 1 ? n : std::max<int64_t>(1, n - (k - 1) * share);
    counts[size_t(k - 1)] = c;
    n -= c;
  }
  return counts;
}

Result<std::vector<StageLayers>> stageLayers(const partition::ParallelPlan &plan,
                                             const ModelSizes &m) {
  // With vp > 1 the units are the pp x vp model chunks (virtual stages).
  int64_t pp = std::max<int64_t>(plan.pp, 1) * std::max<int64_t>(plan.vp, 1), layers = m.layers;
  if (layers < pp)
    return Status::error(plan.vp > 1 ? "plan field 'vp': pp x vp = " + std::to_string(pp) +
                                           " chunks exceed the " + std::to_string(layers) +
                                           " layers"
                                     : "plan field 'pp' (" + std::to_string(pp) +
                                           ") exceeds the " + std::to_string(layers) + " layers");
  std::vector<int64_t> counts;
  if (!plan.stages.empty()) {
    auto refuse = [&] {
      return Status::error("plan field 'stages' (" + partition::stagesText(plan.stages) +
                           ") must give " +
                           (plan.vp > 1 ? "pp x vp = " + std::to_string(pp) + " chunks"
                                        : "pp=" + std::to_string(pp) + " stages") +
                           " of at least one layer each, " + std::to_string(layers) +
                           " layers in all");
    };
    int64_t sum = 0;
    for (int64_t n : plan.stages) {
      if (n < 1 || n > layers)
        return refuse();
      counts.push_back(n);
      sum += n;
    }
    if (int64_t(counts.size()) != pp || sum != layers)
      return refuse();
  } else {
    // Cost per token, in multiply-adds: a layer's weights plus its causal attention;
    // the LM head's weights on the last stage (the embedding is a lookup). In double: the
    // products of a hand-edited ap.model must not overflow.
    double q = double(m.heads) * double(m.headDim), kv = double(m.kvHeads) * double(m.headDim);
    double layer = double(m.hidden) * q * 2 + double(m.hidden) * kv * 2 +
                   3.0 * double(m.hidden) * double(m.ffn) +
                   double(m.seqLen) * q; // q.k and p.v, halved
    double head = double(m.vocab) * double(m.hidden);
    counts = balancedCounts(pp, layers, layer, head);
  }
  std::vector<StageLayers> stages;
  int64_t first = 0;
  for (int64_t c : counts) {
    stages.push_back({first, c});
    first += c;
  }
  return stages;
}

} // namespace apc::stages
