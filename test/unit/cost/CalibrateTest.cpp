// apc calibrate's fit of the link to measured all-reduces (tools/calibrate).
#include "tools/calibrate/Measure.h"

#include <gtest/gtest.h>

using namespace apc;

namespace {

// A ring all-reduce over n ranks of B bytes: 2 (n-1)/n B / bw + 2 (n-1) alpha.
double ring(double n, double bytes, double bw, double alpha) {
  return 2 * (n - 1) / n * bytes / bw + 2 * (n - 1) * alpha;
}

TEST(CalibrateFit, RecoversTheLinkOfExactRingTimes) {
  for (int n : {2, 4}) {
    std::vector<cost::CollectiveSample> samples;
    for (int64_t bytes : {int64_t(4096), int64_t(1) << 20, int64_t(64) << 20})
      samples.push_back({"all_reduce", n, bytes, ring(n, double(bytes), 2e9, 5e-5)});
    samples.push_back({"send_recv", n, 4096, 1.0}); // other kinds do not count
    cost::Link link = calibrate::fitLink(samples);
    EXPECT_NEAR(link.bytesPerSecond, 2e9, 1e-3) << n;
    EXPECT_NEAR(link.latencySeconds, 5e-5, 1e-15) << n;
  }
}

TEST(CalibrateFit, TooFewSamplesFitNothing) {
  cost::Link link = calibrate::fitLink({{"all_reduce", 2, 4096, 1e-4}});
  EXPECT_EQ(link.bytesPerSecond, 0);
  EXPECT_EQ(link.latencySeconds, 0);
}

TEST(CalibrateFit, LatencyIsNeverNegative) {
  // Noise that makes the small message faster than the bandwidth line predicts.
  cost::Link link = calibrate::fitLink(
      {{"all_reduce", 2, 1 << 20, 1e-5}, {"all_reduce", 2, 2 << 20, 2e-3},
       {"all_reduce", 2, 4 << 20, 4e-3}});
  EXPECT_GT(link.bytesPerSecond, 0);
  EXPECT_EQ(link.latencySeconds, 0);
}

} // namespace
