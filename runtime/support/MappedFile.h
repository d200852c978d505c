// A whole file mapped read-only: the one place the runtime's readers (safetensors,
// Arrow) open, check and mmap a file. Shared ownership lets views into the bytes (Arrow
// columns) outlive the reader that made them.
#pragma once

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace apc {

class MappedFile {
public:
  // Errors name the path: "x.arrow: cannot open: No such file or directory", "...: not a
  // regular file". An empty file maps to size() == 0; readers say what they expected.
  static Result<std::shared_ptr<const MappedFile>> open(const std::string &path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  const uint8_t *data() const { return static_cast<const uint8_t *>(data_); }
  size_t size() const { return size_; }

private:
  MappedFile() = default;
  void *data_ = nullptr;
  size_t size_ = 0;
};

} // namespace apc
