// The pipeline schedule (compiler/stages/Schedule.h), the one order of forward and
// backward passes that ap-pipeline compiles and `apc explain` draws: 1F1B's warm-up,
// steady state and cool-down, every pass exactly once, dependencies never inverted, and
// the in-flight bound p - s.
#include "compiler/stages/Schedule.h"
#include "compiler/stages/ScheduleTiming.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>

namespace apc::schedule {
namespace {

std::string text(const std::vector<Pass> &order) {
  std::string s;
  for (const Pass &p : order)
    s += (s.empty() ? "" : " ") + p.label();
  return s;
}

TEST(Schedule, OneFOneBOnFourStages) {
  auto s = oneFOneB(4, 6);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(s->name, "1f1b");
  ASSERT_EQ(s->orders.size(), 4u);
  EXPECT_EQ(text(s->orders[0]), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  EXPECT_EQ(text(s->orders[2]), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
  EXPECT_EQ(text(s->orders[3]), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
}

TEST(Schedule, FewerMicroBatchesThanStages) {
  EXPECT_EQ(text(oneFOneBOrder(4, 0, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(text(oneFOneBOrder(1, 0, 3)), "F0 B0 F1 B1 F2 B2");
}

// Every pass once; each backward after its forward; at most p - s forwards in flight.
TEST(Schedule, EveryPassOnceInDependencyOrder) {
  for (int p = 1; p <= 6; ++p)
    for (int m = 1; m <= 9; ++m)
      for (int st = 0; st < p; ++st) {
        std::vector<Pass> order = oneFOneBOrder(p, st, m);
        ASSERT_EQ(order.size(), size_t(2 * m));
        std::set<std::pair<bool, int>> seen;
        int inFlight = 0, nextForward = 0, nextBackward = 0;
        for (const Pass &pass : order) {
          EXPECT_TRUE(seen.insert({pass.forward(), pass.microBatch}).second);
          EXPECT_EQ(pass.chunk, 0);
          if (pass.forward()) {
            EXPECT_EQ(pass.microBatch, nextForward++);
            ++inFlight;
          } else {
            EXPECT_EQ(pass.microBatch, nextBackward++);
            EXPECT_LT(pass.microBatch, nextForward);
            --inFlight;
          }
          EXPECT_LE(inFlight, p - st) << p << " " << m << " " << st;
        }
      }
}

// Passes with their chunk: "F0.1" is micro-batch 0's forward of chunk 1.
std::string chunked(const std::vector<Pass> &order) {
  std::string s;
  for (const Pass &p : order)
    s += (s.empty() ? "" : " ") + p.label() + "." + std::to_string(p.chunk);
  return s;
}

TEST(Schedule, InterleavedOnTwoStagesOfTwoChunks) {
  auto s = interleavedOneFOneB(2, 2, 4);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(s->name, "interleaved-1f1b");
  EXPECT_EQ(s->virtualStages(), 4);
  // Megatron's order: groups of 2 micro-batches per chunk; stage 0 warms up with
  // (2 - 0 - 1) * 2 + (2 - 1) * 2 = 4 forwards, stage 1 with 2.
  EXPECT_EQ(chunked(s->orders[0]),
            "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0");
  EXPECT_EQ(chunked(s->orders[1]),
            "F0.0 F1.0 F0.1 B0.1 F1.1 B1.1 F2.0 B0.0 F3.0 B1.0 F2.1 B2.1 F3.1 B3.1 B2.0 B3.0");
  // As many micro-batches as stages: every forward first.
  EXPECT_EQ(chunked(interleavedOrder(2, 2, 1, 2)), "F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0");
  // One chunk is 1F1B.
  EXPECT_EQ(text(interleavedOrder(4, 1, 0, 6)), text(oneFOneBOrder(4, 0, 6)));
}

// Every pass of every chunk once, in an order the timing runs without deadlock, and the
// bubble (p - 1) / (v m) of the ideal time: with every virtual stage's passes one unit
// long and nothing to send, a step takes (v m + p - 1) x 2 units.
TEST(Schedule, InterleavedRunsEveryPassOnceWithTheSmallerBubble) {
  for (int p = 2; p <= 5; ++p)
    for (int v = 1; v <= 4; ++v)
      for (int m = p; m <= 4 * p; m += p) {
        auto s = interleavedOneFOneB(p, v, m);
        ASSERT_TRUE(s) << s.message();
        for (int st = 0; st < p; ++st) {
          std::set<std::tuple<bool, int, int>> seen;
          for (const Pass &pass : s->orders[size_t(st)])
            EXPECT_TRUE(seen.insert({pass.forward(), pass.microBatch, pass.chunk}).second);
          EXPECT_EQ(seen.size(), size_t(2 * m * v));
        }
        std::vector<StageTimes> unit(size_t(p * v), StageTimes{1, 1, 0, 0});
        auto timed = timeSchedule(*s, unit);
        ASSERT_TRUE(timed) << p << " " << v << " " << m << ": " << timed.message();
        EXPECT_DOUBLE_EQ(timed->makespan, 2.0 * (v * m + p - 1)) << p << " " << v << " " << m;
      }
}

TEST(Schedule, InterleavedRefusals) {
  EXPECT_FALSE(interleavedOneFOneB(1, 2, 4));
  auto bad = interleavedOneFOneB(2, 2, 3);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.message().find("multiple of the stages (2), got 3"), std::string::npos)
      << bad.message();
  EXPECT_FALSE(interleavedOneFOneB(2, 0, 4));
  EXPECT_TRUE(interleavedOrder(2, 2, 0, 3).empty());
  auto named = scheduleNamed("interleaved-1f1b", 2, 4, 2);
  ASSERT_TRUE(named) << named.message();
  EXPECT_EQ(named->chunks, 2);
  EXPECT_FALSE(scheduleNamed("1f1b", 2, 4, 2));
  EXPECT_FALSE(scheduleNamed("gpipe", 2, 4));
}

TEST(Schedule, Refusals) {
  EXPECT_EQ(oneFOneB(0, 4).message(), "a pipeline schedule needs at least one stage, got 0");
  EXPECT_EQ(oneFOneB(2, 0).message(), "a pipeline schedule needs at least one micro-batch, got 0");
  EXPECT_TRUE(oneFOneBOrder(2, 2, 4).empty());
  EXPECT_TRUE(scheduleNamed("1f1b", 2, 2));
  EXPECT_EQ(scheduleNamed("gpipe", 2, 2).message(),
            "unknown pipeline schedule 'gpipe' (known: 1f1b, interleaved-1f1b)");
}

} // namespace
} // namespace apc::schedule
