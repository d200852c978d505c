// Checked arithmetic for sizes, counts and byte totals, and the largest sizes APC takes.
//
// A size read from outside (a config, a flag, a hand-written program, a plan) can be
// anything up to 2^63; multiplying two of them silently wraps. Every product or sum of
// such sizes goes through these helpers, and callers refuse the input by name when one
// returns nothing or passes a limit below.
#pragma once

#include <cstdint>
#include <optional>

namespace apc {

// The largest tensor APC compiles: 256 TiB, far beyond any device's memory and far
// below int64 overflow, so that sums of a few thousand such tensors stay exact.
inline constexpr int64_t kMaxTensorBytes = int64_t(1) << 48;
// The largest arena a plan may ask of one device (1 PiB), checked by apc compile when
// it writes a plan and by the runtime when it loads one.
inline constexpr uint64_t kMaxArenaBytes = uint64_t(1) << 50;

inline std::optional<int64_t> checkedMul(int64_t a, int64_t b) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product))
    return std::nullopt;
  return product;
}

inline std::optional<int64_t> checkedAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum))
    return std::nullopt;
  return sum;
}

// The product of `factors` times `unit` (e.g. a shape and its element size), or
// nothing when it overflows int64.
template <typename Range>
std::optional<int64_t> checkedProduct(const Range &factors, int64_t unit = 1) {
  int64_t product = unit;
  for (auto factor : factors)
    if (__builtin_mul_overflow(product, int64_t(factor), &product))
      return std::nullopt;
  return product;
}

// The limits as messages print them.
inline constexpr char kMaxTensorBytesText[] = "256 TiB";
inline constexpr char kMaxArenaBytesText[] = "1 PiB";

} // namespace apc
