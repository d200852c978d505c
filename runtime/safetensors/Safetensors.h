// Hugging Face safetensors files: reading (memory-mapped, validated) and atomic writing.
//
// Format: 8-byte little-endian header length N, then N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"k": "v"}}, then the data section. Offsets are relative to the data
// section. `open` checks everything a later reader relies on (header size, JSON shape,
// dtype names, offsets inside the file and matching the shape, no overlaps) so that
// callers can trust a `File` once it exists. `write` writes to a temporary name in the
// same folder and renames it, so a crash never leaves a half-written file.
#pragma once

#include "runtime/support/DType.h"
#include "runtime/support/MappedFile.h"
#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apc::safetensors {

// The file format's element types: more than a plan's (apc::DType, a subset of these).
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtypeSize(DType dtype);
const char *dtypeName(DType dtype); // "F32", "BF16", ...
std::optional<DType> parseDType(std::string_view name);
// The file's type for a tensor of a plan's, kernel's or the interpreter's element type.
DType fileDType(apc::DType dtype);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr; // points into the mapped file
  size_t nbytes = 0;
  int64_t numElements() const;
};

class File {
public:
  static Result<File> open(const std::string &path);

  const std::string &path() const { return path_; }
  // Tensors in the order of their data offsets.
  const std::vector<TensorView> &tensors() const { return tensors_; }
  const TensorView *find(std::string_view name) const;
  const std::map<std::string, std::string> &metadata() const { return metadata_; }

private:
  File() = default;
  std::string path_;
  std::shared_ptr<const MappedFile> mapping_; // the bytes TensorView::data points into
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes; // little-endian, row-major, dtypeSize * numElements
};

// Writes atomically (temporary file + rename). Names must be unique and bytes must
// match shape and dtype; otherwise nothing is written and an error names the tensor.
Status write(const std::string &path, const std::vector<TensorToWrite> &tensors,
             const std::map<std::string, std::string> &metadata = {});

// A tensor's header entry without its bytes, for `Writer`.
struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

// The streaming form of `write`, for tensors too large to hold in memory together: the
// header (every name, dtype, shape and offset) is computed from `tensors` and written
// first, then the data is appended in the same order, in pieces of any size, straight to
// the file (nothing is buffered). `commit` checks that every byte came, syncs and renames
// the temporary file into place; a writer destroyed before a successful commit, or after
// any error, removes its temporary file. With the same tensors, bytes and metadata the
// file is byte for byte the one `write` writes (`write` is built on it).
class Writer {
public:
  // Validates the tensors as `write` does (except the bytes) and writes the header.
  static Result<Writer> create(const std::string &path, const std::vector<TensorInfo> &tensors,
                               const std::map<std::string, std::string> &metadata = {});
  Writer(Writer &&other) noexcept;
  Writer &operator=(Writer &&other) noexcept;
  Writer(const Writer &) = delete;
  Writer &operator=(const Writer &) = delete;
  ~Writer();

  // The next `bytes` of the data section. More than the tensors hold is an error.
  Status append(const void *data, size_t bytes);
  // Bytes of the data section still to append.
  uint64_t remaining() const { return remaining_; }
  Status commit();

private:
  friend Status write(const std::string &path, const std::vector<TensorToWrite> &tensors,
                      const std::map<std::string, std::string> &metadata);
  Writer() = default;
  // `bytes`, when given: each tensor's byte count, checked against its shape (`write`).
  static Result<Writer> start(const std::string &path, const std::vector<TensorInfo> &tensors,
                              const std::vector<size_t> *bytes,
                              const std::map<std::string, std::string> &metadata);
  Status abandon(const std::string &what);
  std::string path_, tempPath_;
  int fd_ = -1;
  uint64_t remaining_ = 0;
};

// Converts any floating or integer tensor to doubles (bf16/f16 widened exactly).
std::vector<double> toDoubles(const TensorView &tensor);
// Encodes doubles as `dtype` (floats rounded to nearest even, integers truncated).
std::vector<uint8_t> fromDoubles(const std::vector<double> &values, DType dtype);

} // namespace apc::safetensors
