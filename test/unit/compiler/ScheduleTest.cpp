// The pipeline schedule (compiler/stages/Schedule.h), the one order of forward and
// backward passes that ap-pipeline compiles and `apc explain` draws: 1F1B's warm-up,
// steady state and cool-down, every pass exactly once, dependencies never inverted, and
// the in-flight bound p - s.
#include "compiler/stages/Schedule.h"

#include <gtest/gtest.h>

#include <set>

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

TEST(Schedule, Refusals) {
  EXPECT_EQ(oneFOneB(0, 4).message(), "a pipeline schedule needs at least one stage, got 0");
  EXPECT_EQ(oneFOneB(2, 0).message(), "a pipeline schedule needs at least one micro-batch, got 0");
  EXPECT_TRUE(oneFOneBOrder(2, 2, 4).empty());
  EXPECT_TRUE(scheduleNamed("1f1b", 2, 2));
  EXPECT_EQ(scheduleNamed("gpipe", 2, 2).message(),
            "unknown pipeline schedule 'gpipe' (known: 1f1b)");
}

} // namespace
} // namespace apc::schedule
