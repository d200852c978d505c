// Tests of the learning-rate schedules against transformers' formulas, written out
// here by hand. transformers' schedules are LambdaLR multipliers of the current step s;
// the lr of update t (1-based) is base * lambda(s) with s = t - 1.
#include "runtime/train/Schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace apc::train {
namespace {

// transformers.get_constant_schedule_with_warmup
double constantLambda(double s, double warmup) {
  if (s < warmup)
    return s / std::max(1.0, warmup);
  return 1.0;
}

// transformers.get_linear_schedule_with_warmup
double linearLambda(double s, double warmup, double total) {
  if (s < warmup)
    return s / std::max(1.0, warmup);
  return std::max(0.0, (total - s) / std::max(1.0, total - warmup));
}

// transformers.get_cosine_schedule_with_warmup (num_cycles 0.5), and
// get_cosine_with_min_lr_schedule_with_warmup: factor * (1 - rate) + rate, where
// rate = min_lr / lr.
double cosineLambda(double s, double warmup, double total, double minLrRate = 0.0) {
  if (s < warmup)
    return s / std::max(1.0, warmup);
  double progress = (s - warmup) / std::max(1.0, total - warmup);
  double factor = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 0.5 * 2.0 * progress)));
  return factor * (1.0 - minLrRate) + minLrRate;
}

Schedule make(const char *kind, double lr, int64_t warmup, int64_t total, double minLr = 0) {
  Schedule s;
  s.kind = kind;
  s.lr = lr;
  s.warmup = warmup;
  s.totalSteps = total;
  s.minLr = minLr;
  return s;
}

// Relative tolerance: the formulas are the same up to rounding.
void expectLr(double actual, double expected, int64_t t) {
  EXPECT_NEAR(actual, expected, 1e-12 * std::fabs(expected) + 1e-300) << "update " << t;
}

TEST(ScheduleTest, ConstantWithWarmup) {
  Schedule s = make("constant", 1e-3, /*warmup=*/4, /*total=*/100);
  ASSERT_TRUE(s.validate());
  EXPECT_EQ(s.at(1), 0.0); // update 1 has lr 0, as in transformers
  expectLr(s.at(2), 0.25e-3, 2);
  expectLr(s.at(3), 0.5e-3, 3);
  expectLr(s.at(4), 0.75e-3, 4);
  for (int64_t t : {5, 6, 50, 100, 1000})
    expectLr(s.at(t), 1e-3, t);
  for (int64_t t = 1; t <= 10; ++t)
    expectLr(s.at(t), 1e-3 * constantLambda(double(t - 1), 4), t);
}

TEST(ScheduleTest, ConstantWithoutWarmup) {
  Schedule s = make("constant", 3e-4, 0, 10);
  ASSERT_TRUE(s.validate());
  for (int64_t t : {1, 2, 10, 11})
    EXPECT_EQ(s.at(t), 3e-4) << t;
}

TEST(ScheduleTest, LinearDecayToZero) {
  const double lr = 5e-4;
  const int64_t warmup = 3, total = 20;
  Schedule s = make("linear", lr, warmup, total);
  ASSERT_TRUE(s.validate());
  for (int64_t t = 1; t <= total + 3; ++t)
    expectLr(s.at(t), lr * linearLambda(double(t - 1), warmup, total), t);
  EXPECT_EQ(s.at(1), 0.0);
  expectLr(s.at(warmup + 1), lr, warmup + 1); // the peak: s == warmup
  EXPECT_NEAR(s.at(total + 1), 0.0, 1e-18);   // s == total
  EXPECT_NEAR(s.at(total + 5), 0.0, 1e-18);   // stays at 0
}

TEST(ScheduleTest, LinearWithoutWarmup) {
  Schedule s = make("linear", 1.0, 0, 4);
  expectLr(s.at(1), 1.0, 1);
  expectLr(s.at(2), 0.75, 2);
  expectLr(s.at(3), 0.5, 3);
  expectLr(s.at(4), 0.25, 4);
  EXPECT_NEAR(s.at(5), 0.0, 1e-18);
}

TEST(ScheduleTest, Cosine) {
  const double lr = 2e-4;
  const int64_t warmup = 5, total = 50;
  Schedule s = make("cosine", lr, warmup, total);
  ASSERT_TRUE(s.validate());
  for (int64_t t = 1; t <= total + 1; ++t)
    expectLr(s.at(t), lr * cosineLambda(double(t - 1), warmup, total), t);
  expectLr(s.at(warmup + 1), lr, warmup + 1);
  // 22 of the 45 decay steps done.
  expectLr(s.at(warmup + 1 + (total - warmup) / 2), lr * 0.5 * (1 + std::cos(M_PI * 22.0 / 45.0)),
           0);
  EXPECT_NEAR(s.at(total + 1), 0.0, 1e-18);
}

TEST(ScheduleTest, CosineStaysAtTheFloorAfterTheLastStep) {
  // transformers' cosine would rise again past num_training_steps (cos of progress > 1);
  // this runtime ends the decay at min_lr. Only reachable by training past total_steps.
  Schedule s = make("cosine", 1e-3, 0, 10, 1e-5);
  for (int64_t t : {11, 12, 15, 21, 100})
    expectLr(s.at(t), 1e-5, t);
}

TEST(ScheduleTest, MinLrFloor) {
  const double lr = 1e-3, minLr = 1e-4;
  const int64_t warmup = 2, total = 12;
  Schedule cosine = make("cosine", lr, warmup, total, minLr);
  ASSERT_TRUE(cosine.validate());
  for (int64_t t = 1; t <= total + 1; ++t)
    expectLr(cosine.at(t), lr * cosineLambda(double(t - 1), warmup, total, minLr / lr), t);
  expectLr(cosine.at(total + 1), minLr, total + 1);

  Schedule linear = make("linear", lr, warmup, total, minLr);
  ASSERT_TRUE(linear.validate());
  for (int64_t t = warmup + 1; t <= total + 4; ++t) {
    double factor = linearLambda(double(t - 1), warmup, total);
    expectLr(linear.at(t), minLr + (lr - minLr) * factor, t);
    EXPECT_GE(linear.at(t), minLr * (1 - 1e-12)) << t;
  }
  expectLr(linear.at(total + 1), minLr, total + 1);

  // Warmup starts from 0, not from min_lr (as in transformers).
  EXPECT_EQ(cosine.at(1), 0.0);
  expectLr(cosine.at(2), lr * 0.5, 2);
  // A constant schedule ignores min_lr after warmup.
  Schedule constant = make("constant", lr, warmup, total, minLr);
  expectLr(constant.at(total + 5), lr, total + 5);
}

TEST(ScheduleTest, WarmupLongerThanTotal) {
  // total - warmup <= 0: transformers divides by max(1, total - warmup); no NaN. Every
  // update the trainer makes (t <= total) is in warmup. Past the end the runtime and
  // transformers' linear formula differ (transformers: 0, the runtime: lr), but the
  // trainer never asks for t > total; only finiteness and the range are checked there.
  for (const char *kind : {"linear", "cosine"}) {
    Schedule s = make(kind, 1e-3, 10, 5);
    for (int64_t t = 1; t <= 5; ++t)
      expectLr(s.at(t), 1e-3 * linearLambda(double(t - 1), 10, 5), t);
    for (int64_t t = 6; t <= 15; ++t) {
      double v = s.at(t);
      EXPECT_TRUE(std::isfinite(v)) << kind << " " << t;
      EXPECT_GE(v, 0.0) << kind << " " << t;
      EXPECT_LE(v, 1e-3) << kind << " " << t;
    }
  }
}

TEST(ScheduleTest, ValidateAcceptsTheDefaultsAndEveryKind) {
  EXPECT_TRUE(Schedule{}.validate());
  for (const char *kind : {"constant", "linear", "cosine"})
    EXPECT_TRUE(make(kind, 1e-3, 0, 1, 1e-3).validate()) << kind; // min_lr == lr is allowed
}

TEST(ScheduleTest, ValidateErrors) {
  Status s = make("step", 1e-3, 0, 10).validate();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'step'"), std::string::npos) << s.message();
  EXPECT_FALSE(make("", 1e-3, 0, 10).validate());
  EXPECT_FALSE(make("Linear", 1e-3, 0, 10).validate());

  for (double lr : {0.0, -1e-3, std::numeric_limits<double>::quiet_NaN()}) {
    s = make("linear", lr, 0, 10).validate();
    ASSERT_FALSE(s) << lr;
    EXPECT_NE(s.message().find("--lr"), std::string::npos) << s.message();
  }
  s = make("linear", 1e-3, 0, 10, -1e-6).validate();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("--min-lr"), std::string::npos) << s.message();
  s = make("linear", 1e-3, 0, 10, 2e-3).validate();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("--min-lr"), std::string::npos) << s.message();
  s = make("linear", 1e-3, 0, 10, std::numeric_limits<double>::quiet_NaN()).validate();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("--min-lr"), std::string::npos) << s.message();
  s = make("linear", 1e-3, -1, 10).validate();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("--warmup"), std::string::npos) << s.message();
}

} // namespace
} // namespace apc::train
