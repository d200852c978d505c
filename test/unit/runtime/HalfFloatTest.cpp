// Bit-exact tests of the bf16/f16 conversions in runtime/support/HalfFloat.h.
#include "runtime/support/HalfFloat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace apc {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- bf16 ---------------------------------------------------------------------------

TEST(HalfFloatTest, Bf16KnownValues) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBf16(-2.0f), 0xc000);
  EXPECT_EQ(floatToBf16(0.5f), 0x3f00);
  EXPECT_EQ(floatToBf16(0.0f), 0x0000);
  EXPECT_EQ(floatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(floatToBf16(kInf), 0x7f80);
  EXPECT_EQ(floatToBf16(-kInf), 0xff80);
  EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(bf16ToFloat(0x7f80), kInf);
  EXPECT_TRUE(std::signbit(bf16ToFloat(0x8000)));
  // Largest finite bf16: (2 - 2^-7) * 2^127.
  EXPECT_EQ(bf16ToFloat(0x7f7f), std::ldexp(2.0f - std::ldexp(1.0f, -7), 127));
  // Smallest bf16 subnormal: 2^-133.
  EXPECT_EQ(bf16ToFloat(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(floatToBf16(std::ldexp(1.0f, -133)), 0x0001);
}

TEST(HalfFloatTest, Bf16RoundsHalfToEven) {
  // 1 + 2^-8 is halfway between 1.0 (even) and 1 + 2^-7: rounds down to 1.0.
  EXPECT_EQ(floatToBf16(1.00390625f), 0x3f80);
  EXPECT_EQ(roundToBf16(1.00390625f), 1.0f);
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(floatToBf16(1.01171875f), 0x3f82);
  EXPECT_EQ(roundToBf16(1.01171875f), 1.015625f);
  // Just above halfway rounds up; just below rounds down.
  EXPECT_EQ(floatToBf16(std::nextafter(1.00390625f, 2.0f)), 0x3f81);
  EXPECT_EQ(floatToBf16(std::nextafter(1.01171875f, 0.0f)), 0x3f81);
  // Negative values round symmetrically.
  EXPECT_EQ(floatToBf16(-1.00390625f), 0xbf80);
  EXPECT_EQ(floatToBf16(-1.01171875f), 0xbf82);
}

TEST(HalfFloatTest, Bf16OverflowAndNaN) {
  // The largest float rounds up past the largest bf16 to infinity.
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(floatToBf16(-std::numeric_limits<float>::max()), 0xff80);
  // A NaN whose payload lives only in the low 16 bits must not become infinity.
  uint16_t h = floatToBf16(bitsToFloat(0x7f800001u));
  EXPECT_TRUE(std::isnan(bf16ToFloat(h)));
  EXPECT_EQ(h & 0x0040u, 0x0040u); // quiet
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(-std::nanf("")))));
  EXPECT_TRUE(std::isnan(roundToBf16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(HalfFloatTest, Bf16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = bf16ToFloat(uint16_t(h));
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(f)))) << h;
    else
      EXPECT_EQ(floatToBf16(f), h) << h;
  }
}

// ---- f16 ----------------------------------------------------------------------------

TEST(HalfFloatTest, F16KnownValues) {
  EXPECT_EQ(floatToF16(1.0f), 0x3c00);
  EXPECT_EQ(floatToF16(-2.0f), 0xc000);
  EXPECT_EQ(floatToF16(0.5f), 0x3800);
  EXPECT_EQ(floatToF16(0.0f), 0x0000);
  EXPECT_EQ(floatToF16(-0.0f), 0x8000);
  EXPECT_EQ(floatToF16(65504.0f), 0x7bff);
  EXPECT_EQ(floatToF16(kInf), 0x7c00);
  EXPECT_EQ(floatToF16(-kInf), 0xfc00);
  EXPECT_EQ(f16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(f16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(f16ToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(f16ToFloat(0xfbff), -65504.0f);
  EXPECT_EQ(f16ToFloat(0x7c00), kInf);
  EXPECT_EQ(f16ToFloat(0xfc00), -kInf);
  EXPECT_TRUE(std::signbit(f16ToFloat(0x8000)));
  // 1/3 in f16 is 0x3555 (0.333251953125).
  EXPECT_EQ(floatToF16(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(f16ToFloat(0x3555), 0.333251953125f);
}

TEST(HalfFloatTest, F16Subnormals) {
  const float smallest = std::ldexp(1.0f, -24);
  EXPECT_EQ(floatToF16(smallest), 0x0001);
  EXPECT_EQ(f16ToFloat(0x0001), smallest);
  EXPECT_EQ(floatToF16(-smallest), 0x8001);
  EXPECT_EQ(f16ToFloat(0x8001), -smallest);
  // Largest subnormal: 1023 * 2^-24; smallest normal: 2^-14.
  EXPECT_EQ(f16ToFloat(0x03ff), 1023.0f * smallest);
  EXPECT_EQ(floatToF16(1023.0f * smallest), 0x03ff);
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f16ToFloat(0x0400), std::ldexp(1.0f, -14));
  // Halfway between 0 and the smallest subnormal rounds to zero (even) ...
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -25)), 0x0000);
  // ... slightly above halfway rounds up.
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -25) * 1.0001f), 0x0001);
  // 1.5 * 2^-24 is halfway between 1 (odd) and 2 (even) units: rounds to 2.
  EXPECT_EQ(floatToF16(1.5f * smallest), 0x0002);
  // 2.5 units rounds to 2 (even).
  EXPECT_EQ(floatToF16(2.5f * smallest), 0x0002);
  // Halfway between the largest subnormal and the smallest normal rounds up to it.
  EXPECT_EQ(floatToF16(1023.5f * smallest), 0x0400);
  // Tiny floats, including float subnormals, flush to a signed zero.
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -40)), 0x0000);
  EXPECT_EQ(floatToF16(-std::numeric_limits<float>::denorm_min()), 0x8000);
}

TEST(HalfFloatTest, F16RoundsHalfToEven) {
  // f16 has 10 mantissa bits: 1 + 2^-11 is halfway between 1.0 and 1 + 2^-10.
  EXPECT_EQ(floatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(floatToF16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  // Rounding that carries into the exponent: 2 - 2^-11 rounds to 2.0.
  EXPECT_EQ(floatToF16(2.0f - std::ldexp(1.0f, -11)), 0x4000);
  EXPECT_EQ(roundToF16(2049.0f), 2048.0f); // halfway, 2048 is even
  EXPECT_EQ(roundToF16(2051.0f), 2052.0f); // halfway, 2052 is even
}

TEST(HalfFloatTest, F16OverflowToInfinity) {
  // Halfway between 65504 and 65536 (65520) rounds to even, which is infinity.
  EXPECT_EQ(floatToF16(65519.0f), 0x7bff);
  EXPECT_EQ(floatToF16(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(floatToF16(65520.0f), 0x7c00);
  EXPECT_EQ(floatToF16(-65520.0f), 0xfc00);
  EXPECT_EQ(floatToF16(1e6f), 0x7c00);
  EXPECT_EQ(floatToF16(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(roundToF16(70000.0f), kInf);
}

TEST(HalfFloatTest, F16NaN) {
  EXPECT_TRUE(std::isnan(f16ToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(f16ToFloat(0x7c01)));
  EXPECT_TRUE(std::isnan(f16ToFloat(0xfe00)));
  uint16_t h = floatToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(h & 0x7c00u, 0x7c00u);
  EXPECT_NE(h & 0x03ffu, 0u);
  // A NaN with only low payload bits must not turn into infinity.
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(bitsToFloat(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(bitsToFloat(0xffc00000u)))));
  EXPECT_TRUE(std::isnan(roundToF16(std::nanf(""))));
}

TEST(HalfFloatTest, F16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = f16ToFloat(uint16_t(h));
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(f)))) << h;
    else
      EXPECT_EQ(floatToF16(f), h) << h;
  }
}

// Every f16 value is exactly a float and every float between two adjacent f16 values
// rounds to the nearer one (ties to even); check against a double-precision reference
// on a sweep of the midpoints.
TEST(HalfFloatTest, F16MidpointsMatchReference) {
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    double lo = f16ToFloat(uint16_t(h));
    double hi = f16ToFloat(uint16_t(h + 1));
    float mid = float((lo + hi) / 2); // exact: f16 midpoints fit in a float
    ASSERT_EQ(double(mid), (lo + hi) / 2);
    uint16_t expected = (h % 2 == 0) ? uint16_t(h) : uint16_t(h + 1);
    EXPECT_EQ(floatToF16(mid), expected) << h;
    EXPECT_EQ(floatToF16(std::nextafter(mid, 0.0f)), h) << h;
    EXPECT_EQ(floatToF16(std::nextafter(mid, kInf)), h + 1) << h;
  }
}

} // namespace
} // namespace apc
