// The 1F1B schedule of `apc explain --svg` (tools/apc/explain/PipelineSchedule.h): the
// order of each stage's forwards and backwards, dependencies, and the bubble fraction.
#include "tools/apc/explain/PipelineSchedule.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace apc::explain;

namespace {

std::string orderText(int stages, int stage, int microBatches) {
  std::string s;
  for (auto [forward, k] : oneFOneBOrder(stages, stage, microBatches))
    s += (s.empty() ? "" : " ") + std::string(forward ? "F" : "B") + std::to_string(k);
  return s;
}

std::string timelineText(const PipelineTimeline &t, int stage) {
  std::string s;
  for (const ScheduledOp &op : t.ops[size_t(stage)])
    s += (s.empty() ? "" : " ") + op.label();
  return s;
}

} // namespace

TEST(ExplainSchedule, OneFOneBOrderFourStagesEightMicroBatches) {
  // Megatron's 1F1B: stage s runs min(p - s - 1, m) warm-up forwards, then one forward and
  // one backward at a time, then the remaining backwards.
  EXPECT_EQ(orderText(4, 0, 8), "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  EXPECT_EQ(orderText(4, 1, 8), "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7");
  EXPECT_EQ(orderText(4, 2, 8), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7");
  EXPECT_EQ(orderText(4, 3, 8), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
}

TEST(ExplainSchedule, OneStageAlternates) {
  EXPECT_EQ(orderText(1, 0, 4), "F0 B0 F1 B1 F2 B2 F3 B3");
  auto t = scheduleOneFOneB({1.0}, 4);
  ASSERT_TRUE(t) << t.message();
  EXPECT_EQ(timelineText(*t, 0), "F0 B0 F1 B1 F2 B2 F3 B3");
  EXPECT_DOUBLE_EQ(t->makespan, 12.0);
  EXPECT_DOUBLE_EQ(t->bubbleFraction, 0.0);
}

TEST(ExplainSchedule, FewerMicroBatchesThanStages) {
  // Warm-up is capped by the micro-batches: every forward first, then every backward.
  EXPECT_EQ(orderText(4, 0, 2), "F0 F1 B0 B1");
  EXPECT_EQ(orderText(4, 3, 2), "F0 B0 F1 B1");
  auto t = scheduleOneFOneB({1, 1, 1, 1}, 2);
  ASSERT_TRUE(t) << t.message();
  EXPECT_NEAR(t->bubbleFraction, 3.0 / 5.0, 1e-12);
}

TEST(ExplainSchedule, EqualStagesBubbleIsFormula) {
  for (int p : {1, 2, 3, 4, 8})
    for (int m : {1, 2, 4, 8, 16}) {
      auto t = scheduleOneFOneB(std::vector<double>(size_t(p), 1.0), m);
      ASSERT_TRUE(t) << t.message();
      EXPECT_NEAR(t->bubbleFraction, double(p - 1) / double(m + p - 1), 1e-12)
          << p << " stages, " << m << " micro-batches";
      EXPECT_NEAR(t->makespan, 3.0 * (m + p - 1), 1e-9);
      EXPECT_NEAR(t->busy, 3.0 * m * p, 1e-9);
    }
}

TEST(ExplainSchedule, FourByEightTimesAndDependencies) {
  auto t = scheduleOneFOneB({1, 1, 1, 1}, 8);
  ASSERT_TRUE(t) << t.message();
  ASSERT_EQ(t->ops.size(), 4u);
  for (int s = 0; s < 4; ++s) {
    ASSERT_EQ(t->ops[size_t(s)].size(), 16u);
    EXPECT_EQ(timelineText(*t, s), orderText(4, s, 8));
  }
  EXPECT_NEAR(t->bubbleFraction, 3.0 / 11.0, 1e-12);
  // F k on stage s after F k on stage s-1; B k on stage s after B k on stage s+1; no
  // overlap on a stage; backward twice the forward.
  auto find = [&](int s, bool forward, int k) {
    for (const ScheduledOp &op : t->ops[size_t(s)])
      if (op.forward == forward && op.microBatch == k)
        return op;
    ADD_FAILURE() << "missing op";
    return ScheduledOp{};
  };
  for (int s = 0; s < 4; ++s) {
    for (size_t i = 1; i < t->ops[size_t(s)].size(); ++i)
      EXPECT_GE(t->ops[size_t(s)][i].start, t->ops[size_t(s)][i - 1].end);
    for (int k = 0; k < 8; ++k) {
      ScheduledOp f = find(s, true, k), b = find(s, false, k);
      EXPECT_DOUBLE_EQ(f.end - f.start, 1.0);
      EXPECT_DOUBLE_EQ(b.end - b.start, 2.0);
      if (s > 0)
        EXPECT_GE(f.start, find(s - 1, true, k).end);
      if (s < 3)
        EXPECT_GE(b.start, find(s + 1, false, k).end);
      else
        EXPECT_GE(b.start, f.end);
    }
  }
  // The classic picture: stage 0 starts its first backward after every stage has run
  // forward 0 and the backwards came back: F0 ends at 1 on stage 0, 4 on stage 3, B0 on
  // stage 3 ends at 6 and reaches stage 0 at 12.
  EXPECT_DOUBLE_EQ(find(3, true, 0).start, 3.0);
  EXPECT_DOUBLE_EQ(find(0, false, 0).start, 10.0);
  EXPECT_DOUBLE_EQ(t->makespan, 33.0);
}

TEST(ExplainSchedule, UnequalStagesFromFlops) {
  std::vector<double> times = forwardTimesFromFlops({2e9, 4e9});
  ASSERT_EQ(times.size(), 2u);
  EXPECT_DOUBLE_EQ(times[0], 0.5);
  EXPECT_DOUBLE_EQ(times[1], 1.0);
  // Unknown (zero, negative or NaN) FLOPs anywhere: equal times.
  EXPECT_EQ(forwardTimesFromFlops({2e9, 0}), (std::vector<double>{1, 1}));
  EXPECT_EQ(forwardTimesFromFlops({-1, 5}), (std::vector<double>{1, 1}));
  auto t = scheduleOneFOneB(times, 4);
  ASSERT_TRUE(t) << t.message();
  // The slow last stage dominates: busy 4 x (0.5 + 1) + 4 x (1 + 2) = 18 of 2 x makespan.
  EXPECT_NEAR(t->busy, 18.0, 1e-12);
  EXPECT_GT(t->bubbleFraction, 1.0 / 5.0);
  EXPECT_NEAR(t->bubbleFraction, 1.0 - t->busy / (2 * t->makespan), 1e-12);
}

TEST(ExplainSchedule, Refusals) {
  EXPECT_FALSE(scheduleOneFOneB({}, 4));
  EXPECT_FALSE(scheduleOneFOneB({1.0}, 0));
  EXPECT_FALSE(scheduleOneFOneB({1.0, 0.0}, 2));
  EXPECT_TRUE(oneFOneBOrder(2, 5, 3).empty());
}

// The predicted layout: each stage's step after its last backward, the backwards'
// recomputed share and every pass's input transfer. 2 stages x 2 micro-batches, by hand:
// stage 0 F 1, B 2 (recompute 0.25), activation transfer 0.5, step 1; stage 1 F 2, B 3
// (recompute not recorded), gradient transfer 0.25, step 0.5. Orders: stage 0 F0 F1 B0
// B1, stage 1 F0 B0 F1 B1.
TEST(ExplainSchedule, PredictedStepsRecomputeAndTransfers) {
  std::vector<PredictedStageTimes> stages(2);
  stages[0].times = {1.0, 2.0, 0.5, 0.0};
  stages[0].recompute = 0.25;
  stages[0].recomputeKnown = true;
  stages[0].step = 1.0;
  stages[1].times = {2.0, 3.0, 0.0, 0.25};
  stages[1].step = 0.5;
  auto t = schedulePredicted(stages, 2);
  ASSERT_TRUE(t) << t.message();
  ASSERT_EQ(timelineText(*t, 0), "F0 F1 B0 B1");
  ASSERT_EQ(timelineText(*t, 1), "F0 B0 F1 B1");
  auto at = [&](int s, size_t i) { return std::make_pair(t->ops[size_t(s)][i].start, t->ops[size_t(s)][i].end); };
  using P = std::pair<double, double>;
  EXPECT_EQ(at(0, 0), P(0, 1));
  EXPECT_EQ(at(0, 1), P(1, 2));
  EXPECT_EQ(at(1, 0), P(1.5, 3.5));   // F0's activation leaves stage 0 at 1, arrives at 1.5
  EXPECT_EQ(at(1, 1), P(3.5, 6.5));   // B0 follows its own F0 on the last stage
  EXPECT_EQ(at(1, 2), P(6.5, 8.5));   // F1 arrived at 2.5; the stage is busy until 6.5
  EXPECT_EQ(at(1, 3), P(8.5, 11.5));
  EXPECT_EQ(at(0, 2), P(6.75, 8.75)); // B0's gradient: sent at 6.5, arrives at 6.75
  EXPECT_EQ(at(0, 3), P(11.75, 13.75));
  EXPECT_DOUBLE_EQ(t->makespan, 13.75);
  // Steps after each stage's last backward; the step ends with the later one.
  ASSERT_EQ(t->stepStart.size(), 2u);
  EXPECT_EQ(std::make_pair(t->stepStart[0], t->stepEnd[0]), P(13.75, 14.75));
  EXPECT_EQ(std::make_pair(t->stepStart[1], t->stepEnd[1]), P(11.5, 12.0));
  EXPECT_DOUBLE_EQ(t->end, 14.75);
  // Transfers: the input's send and arrival; none where the input is on the stage.
  const ScheduledOp &f0 = t->ops[1][0], &b0 = t->ops[0][2];
  EXPECT_EQ(std::make_pair(f0.inputSent, f0.inputArrived), P(1.0, 1.5));
  EXPECT_EQ(std::make_pair(b0.inputSent, b0.inputArrived), P(6.5, 6.75));
  EXPECT_EQ(t->ops[0][0].inputSent, -1);
  EXPECT_EQ(t->ops[1][1].inputSent, -1);
  // Recompute on stage 0's backwards only (stage 1's is not recorded).
  EXPECT_EQ(t->ops[0][0].recompute, 0);
  EXPECT_EQ(t->ops[0][2].recompute, 0.25);
  EXPECT_EQ(t->ops[1][1].recompute, 0);
  // Without steps (scheduleStageTimes) the step ends with the last pass.
  auto plain = scheduleStageTimes({stages[0].times, stages[1].times}, 2);
  ASSERT_TRUE(plain) << plain.message();
  EXPECT_TRUE(plain->stepStart.empty());
  EXPECT_DOUBLE_EQ(plain->end, 13.75);
  // Negative or not finite steps are refused.
  stages[1].step = -1;
  EXPECT_FALSE(schedulePredicted(stages, 2));
}

// Interleaved 1F1B as explain draws it: the cost model's stage times shared by the
// stage's chunks; with equal stages the bubble is (p - 1) / (v m + p - 1), v times smaller
// than 1F1B's in the limit; every pass of every chunk once, labelled "F<mb>.<chunk>", and
// each pass's input from the neighbouring virtual stage.
TEST(ExplainSchedule, InterleavedBubbleIsFormulaAndInputsComeFromTheVirtualNeighbour) {
  const int p = 4, v = 2, m = 8;
  std::vector<apc::schedule::StageTimes> times(p, {1.0, 2.0, 0.1, 0.1});
  auto t = scheduleStageTimes(times, m, v);
  ASSERT_TRUE(t) << t.message();
  auto plain = scheduleStageTimes(times, m);
  ASSERT_TRUE(plain) << plain.message();
  std::vector<apc::schedule::StageTimes> noSends(p, {1.0, 2.0, 0, 0});
  auto ideal = scheduleStageTimes(noSends, m, v);
  ASSERT_TRUE(ideal);
  EXPECT_NEAR(ideal->bubbleFraction, double(p - 1) / double(v * m + p - 1), 1e-12);
  EXPECT_LT(t->bubbleFraction, plain->bubbleFraction);
  for (int s = 0; s < p; ++s) {
    ASSERT_EQ(t->ops[size_t(s)].size(), size_t(2 * m * v));
    EXPECT_EQ(t->ops[size_t(s)][0].label(), "F0.0");
  }
  // Stage 0's first chunk-1 forward waits for the last stage's chunk-0 forward of the
  // same micro-batch (virtual stage 3 -> 4) and its transfer (0.1 / 2 per chunk).
  const ScheduledOp *f01 = nullptr;
  for (const ScheduledOp &op : t->ops[0])
    if (op.forward && op.microBatch == 0 && op.chunk == 1)
      f01 = &op;
  ASSERT_NE(f01, nullptr);
  const ScheduledOp *f00last = nullptr;
  for (const ScheduledOp &op : t->ops[p - 1])
    if (op.forward && op.microBatch == 0 && op.chunk == 0)
      f00last = &op;
  ASSERT_NE(f00last, nullptr);
  EXPECT_DOUBLE_EQ(f01->inputSent, f00last->end);
  EXPECT_DOUBLE_EQ(f01->inputArrived, f00last->end + 0.05);
  EXPECT_GE(f01->start, f01->inputArrived);
}
