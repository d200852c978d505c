// Row-major index arithmetic for tests that check collectives and sharded blocks element
// by element, written independently of the runtime's own (runtime/checkpoint/Sharding).
#pragma once

#include <cstdint>
#include <vector>

namespace apc::testing {

inline int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

// The multi-index of element `flat` of a row-major tensor of `shape`.
inline std::vector<int64_t> unravel(int64_t flat, const std::vector<int64_t> &shape) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

// The flat position of `index` in a row-major tensor of `shape`.
inline int64_t ravel(const std::vector<int64_t> &index, const std::vector<int64_t> &shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

} // namespace apc::testing
