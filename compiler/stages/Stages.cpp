#include "compiler/stages/Stages.h"

#include <algorithm>
#include <limits>

namespace apc::stages {

Result<std::vector<StageLayers>> stageLayers(const partition::ParallelPlan &plan,
                                             const ModelSizes &m) {
  int64_t pp = std::max<int64_t>(plan.pp, 1), layers = m.layers;
  if (layers < pp)
    return Status::error("plan field 'pp' (" + std::to_string(pp) + ") exceeds the " +
                         std::to_string(layers) + " layers");
  std::vector<int64_t> counts;
  if (!plan.stages.empty()) {
    auto refuse = [&] {
      return Status::error("plan field 'stages' (" + partition::stagesText(plan.stages) + ") must give pp=" +
                           std::to_string(pp) + " stages of at least one layer each, " +
                           std::to_string(layers) + " layers in all");
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
    // the LM head's weights on the last stage (the embedding is a lookup).
    double attention = double(m.hidden) * double(m.heads * m.headDim) * 2 +
                       double(m.hidden) * double(m.kvHeads * m.headDim) * 2;
    double layer = attention + 3.0 * double(m.hidden) * double(m.ffn) +
                   double(m.seqLen) * double(m.heads * m.headDim); // q.k and p.v, halved
    double head = double(m.vocab) * double(m.hidden);
    // best[k][n]: the least possible largest stage cost with the first n layers on k
    // stages; the last stage also carries the head.
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<std::vector<double>> best(pp + 1, std::vector<double>(layers + 1, inf));
    std::vector<std::vector<int64_t>> cut(pp + 1, std::vector<int64_t>(layers + 1, 0));
    best[0][0] = 0;
    for (int64_t k = 1; k <= pp; ++k)
      for (int64_t n = k; n <= layers; ++n)
        for (int64_t c = 1; c <= n - (k - 1); ++c) {
          double stage = double(c) * layer + (k == pp && n == layers ? head : 0.0);
          double worst = std::max(best[k - 1][n - c], stage);
          if (worst < best[k][n]) { // ties keep the smaller last stage: earlier stages fuller
            best[k][n] = worst;
            cut[k][n] = c;
          }
        }
    counts.assign(pp, 0);
    for (int64_t k = pp, n = layers; k >= 1; n -= counts[k - 1], --k)
      counts[k - 1] = cut[k][n];
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
