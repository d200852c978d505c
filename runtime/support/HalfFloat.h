// bf16 and f16 <-> f32 conversions with round-to-nearest-even, as PyTorch does them.
//
// The runtime stores bf16/f16 as raw 16-bit patterns; these helpers are the one place
// that knows the bit layouts. NaN stays NaN (quiet), infinities and signed zeros are kept.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace apc {

inline float bitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline uint32_t floatToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

inline float bf16ToFloat(uint16_t h) { return bitsToFloat(uint32_t(h) << 16); }

inline uint16_t floatToBf16(float f) {
  uint32_t bits = floatToBits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) // NaN: keep it quiet and a NaN.
    return uint16_t((bits >> 16) | 0x0040u);
  uint32_t roundingBias = 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t((bits + roundingBias) >> 16);
}

// Rounds a float to the nearest bf16 value and returns it as a float.
inline float roundToBf16(float f) { return bf16ToFloat(floatToBf16(f)); }

inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) // inf or NaN
    return bitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0)
      return bitsToFloat(sign);
    // Subnormal: value = mantissa * 2^-24.
    float value = float(mantissa) * (1.0f / 16777216.0f);
    return sign ? -value : value;
  }
  return bitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

inline uint16_t floatToF16(float f) {
  uint32_t bits = floatToBits(f);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t absBits = bits & 0x7fffffffu;
  if (absBits > 0x7f800000u) // NaN
    return uint16_t(sign | 0x7e00u);
  if (absBits >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return uint16_t(sign | 0x7c00u);
  if (absBits < 0x38800000u) { // below the smallest normal f16 (2^-14)
    // Subnormal or zero: scale to units of 2^-24 and round to nearest even.
    float magnitude = bitsToFloat(absBits) * 16777216.0f;
    float rounded = magnitude;
    // nearbyint with the default rounding mode is round-half-even.
    rounded = __builtin_nearbyintf(magnitude);
    return uint16_t(sign | uint16_t(rounded));
  }
  uint32_t roundingBias = 0xfffu + ((absBits >> 13) & 1u);
  absBits += roundingBias;
  return uint16_t(sign | uint16_t((absBits - 0x38000000u) >> 13));
}

inline float roundToF16(float f) { return f16ToFloat(floatToF16(f)); }

// double -> float rounded to odd: truncate towards zero and set the last bit when the
// result is inexact. Rounding that float to bf16/f16 (to nearest even) then gives the
// same result as rounding the double directly, avoiding double-rounding errors.
inline float toFloatRoundToOdd(double v) {
  if (std::isnan(v))
    return float(v);
  float f = float(v);
  if (double(f) == v)
    return f;
  if (std::fabs(double(f)) > std::fabs(v))
    f = std::nextafter(f, 0.0f);
  return bitsToFloat(floatToBits(f) | 1u);
}

// A double rounded once, to nearest even, to bf16 / f16 (returned as a double).
inline double roundDoubleToBf16(double v) { return bf16ToFloat(floatToBf16(toFloatRoundToOdd(v))); }
inline double roundDoubleToF16(double v) { return f16ToFloat(floatToF16(toFloatRoundToOdd(v))); }

} // namespace apc
