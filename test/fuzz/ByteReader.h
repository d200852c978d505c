// Reads the fuzzer's input as a stream of choices (a small FuzzedDataProvider that also
// builds without Clang's headers, for the plain-main replay of the regression inputs).
// Past the end every choice is 0, so a short input still means something.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace apc::fuzz {

class ByteReader {
public:
  ByteReader(const uint8_t *data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v = (v << 8) | byte();
    return v;
  }
  bool flag() { return byte() & 1; }
  // A number in [0, n); n > 0. One byte when n <= 256, else four.
  size_t below(size_t n) { return n <= 256 ? byte() % n : u32() % n; }
  template <typename T> T pick(std::initializer_list<T> choices) {
    return choices.begin()[below(choices.size())];
  }
  template <typename T> const T &pick(const std::vector<T> &choices) {
    return choices[below(choices.size())];
  }

private:
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
};

} // namespace apc::fuzz
