// Stage assignment on its own (compiler/stages/Stages.h): which decoder layers each
// pipeline stage holds. Balanced splits are checked against a brute force over every
// split (the least possible largest stage cost, the LM head on the last stage); given
// splits are taken as written or refused naming the field.
#include "compiler/stages/Stages.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <random>

namespace {

using namespace apc;

stages::ModelSizes llama3_8b() {
  stages::ModelSizes m;
  m.layers = 32;
  m.hidden = 4096;
  m.ffn = 14336;
  m.heads = 32;
  m.kvHeads = 8;
  m.headDim = 128;
  m.vocab = 128256;
  m.seqLen = 1024;
  return m;
}

// The cost per token the balancer minimises (Stages.cpp's model, written out as spec):
// a layer's multiply-adds (projections, MLP, causal attention) and the head's.
double layerCost(const stages::ModelSizes &m) {
  double attention = double(m.hidden) * double(m.heads * m.headDim) * 2 +
                     double(m.hidden) * double(m.kvHeads * m.headDim) * 2;
  return attention + 3.0 * double(m.hidden) * double(m.ffn) +
         double(m.seqLen) * double(m.heads * m.headDim);
}

double largestStage(const std::vector<int64_t> &counts, const stages::ModelSizes &m) {
  double worst = 0;
  for (size_t s = 0; s < counts.size(); ++s)
    worst = std::max(worst, double(counts[s]) * layerCost(m) +
                                (s + 1 == counts.size() ? double(m.vocab) * double(m.hidden)
                                                        : 0.0));
  return worst;
}

// The least largest stage over every split of the layers into pp non-empty stages.
double bruteForceBest(const stages::ModelSizes &m, int64_t pp) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<int64_t> counts;
  std::function<void(int64_t)> go = [&](int64_t left) {
    if (int64_t(counts.size()) == pp - 1) {
      counts.push_back(left);
      best = std::min(best, largestStage(counts, m));
      counts.pop_back();
      return;
    }
    for (int64_t c = 1; c <= left - (pp - 1 - int64_t(counts.size())); ++c) {
      counts.push_back(c);
      go(left - c);
      counts.pop_back();
    }
  };
  go(m.layers);
  return best;
}

TEST(Stages, BalancedSplitsAreOptimalAndCoverTheLayersInOrder) {
  for (int64_t layers : {2, 5, 8, 32})
    for (int64_t pp = 1; pp <= std::min<int64_t>(layers, 6); ++pp) {
      stages::ModelSizes m = llama3_8b();
      m.layers = layers;
      partition::ParallelPlan plan;
      plan.pp = pp;
      auto split = stages::stageLayers(plan, m);
      ASSERT_TRUE(split) << split.message();
      ASSERT_EQ(int64_t(split->size()), pp);
      std::vector<int64_t> counts;
      int64_t next = 0;
      for (const stages::StageLayers &s : *split) {
        EXPECT_EQ(s.first, next) << "layers " << layers << " pp " << pp;
        EXPECT_GE(s.count, 1);
        next = s.first + s.count;
        counts.push_back(s.count);
      }
      EXPECT_EQ(next, layers);
      EXPECT_DOUBLE_EQ(largestStage(counts, m), bruteForceBest(m, pp))
          << "layers " << layers << " pp " << pp;
    }
}

TEST(Stages, Llama3_8BOnFourStagesLeavesTheHeadStageLighter) {
  partition::ParallelPlan plan;
  plan.pp = 4;
  auto split = stages::stageLayers(plan, llama3_8b());
  ASSERT_TRUE(split) << split.message();
  std::vector<int64_t> counts;
  for (const stages::StageLayers &s : *split)
    counts.push_back(s.count);
  // The LM head (vocab x hidden) weighs about 4 layers here: ties fill earlier stages.
  EXPECT_EQ(counts, (std::vector<int64_t>{9, 9, 9, 5}));
}

TEST(Stages, GivenSplitsAreTakenAsWrittenOrRefusedByField) {
  stages::ModelSizes m = llama3_8b();
  m.layers = 8;
  partition::ParallelPlan plan;
  plan.pp = 2;
  plan.stages = {3, 5};
  auto split = stages::stageLayers(plan, m);
  ASSERT_TRUE(split) << split.message();
  EXPECT_EQ((*split)[0].first, 0);
  EXPECT_EQ((*split)[0].count, 3);
  EXPECT_EQ((*split)[1].first, 3);
  EXPECT_EQ((*split)[1].count, 5);
  for (std::vector<int64_t> bad : {std::vector<int64_t>{4, 5}, {8}, {0, 8}, {9, -1}}) {
    plan.stages = bad;
    auto refused = stages::stageLayers(plan, m);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.message().find("plan field 'stages'"), std::string::npos)
        << refused.message();
  }
  plan.stages.clear();
  plan.pp = 9;
  auto deep = stages::stageLayers(plan, m);
  ASSERT_FALSE(deep);
  EXPECT_NE(deep.message().find("plan field 'pp' (9) exceeds the 8 layers"), std::string::npos);
}

// The O(pp * layers^2) dynamic programme balancedCounts replaced (a hand-edited ap.model
// with a million layers kept apc compile busy for minutes; found by mlir_fuzz): the same
// counts, ties included, on random sizes.
std::vector<int64_t> dynamicProgramme(int64_t pp, int64_t layers, double layer, double head) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(pp + 1, std::vector<double>(layers + 1, inf));
  std::vector<std::vector<int64_t>> cut(pp + 1, std::vector<int64_t>(layers + 1, 0));
  best[0][0] = 0;
  for (int64_t k = 1; k <= pp; ++k)
    for (int64_t n = k; n <= layers; ++n)
      for (int64_t c = 1; c <= n - (k - 1); ++c) {
        double stage = double(c) * layer + (k == pp && n == layers ? head : 0.0);
        double worst = std::max(best[k - 1][n - c], stage);
        if (worst < best[k][n]) {
          best[k][n] = worst;
          cut[k][n] = c;
        }
      }
  std::vector<int64_t> counts(pp, 0);
  for (int64_t k = pp, n = layers; k >= 1; n -= counts[k - 1], --k)
    counts[k - 1] = cut[k][n];
  return counts;
}

TEST(Stages, BalancedCountsEqualTheDynamicProgramme) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    int64_t layers = 1 + int64_t(rng() % 40), pp = 1 + int64_t(rng() % layers);
    double layer = 1.0 + double(rng() % 1000);
    double head = trial % 3 == 0 ? 0.0 : double(rng() % 20000);
    EXPECT_EQ(stages::balancedCounts(pp, layers, layer, head),
              dynamicProgramme(pp, layers, layer, head))
        << "pp " << pp << " layers " << layers << " layer " << layer << " head " << head;
  }
  // A million layers: fast now.
  auto counts = stages::balancedCounts(4, 1 << 20, 1.0, 10.0);
  EXPECT_EQ(counts.size(), 4u);
  int64_t sum = 0;
  for (int64_t c : counts)
    sum += c;
  EXPECT_EQ(sum, 1 << 20);
}

} // namespace
