// Apache Arrow IPC reading (memory-mapped, validated, zero-copy) for training data.
//
// Reads both IPC framings: the random-access file format ("ARROW1\0\0" ... footer
// ... "ARROW1", record batches found through the footer's blocks) and the stream
// format that Hugging Face `datasets` writes (a sequence of encapsulated messages:
// 0xFFFFFFFF continuation marker, int32 metadata length, Message flatbuffer, body;
// ending with an end-of-stream marker or at the end of the file; the legacy pre-0.15
// framing without the continuation marker is accepted too). Schema flatbuffers are from
// runtime/data/arrow/*.fbs, and every flatbuffer is verified before it is read.
//
// `open` validates the framing, the schema and the structure of every record batch
// (field nodes and buffers match the schema, buffers lie inside their body, buffers are
// large enough for their lengths), and refuses what this reader does not handle
// (compressed bodies, big-endian data, metadata versions before V4). The typed column
// accessors then validate the values of one column across all record batches once
// (offsets monotonic and inside the values, no null values inside lists), after which
// reading a row does no checks and no allocation. Columns share ownership of the
// mapping, so they stay valid after the ArrowFile is gone.
//
// Rows are numbered globally across record batches. A null list row reads as an empty
// row and a null string as an empty string (`isNull` tells them apart).
#pragma once

#include "runtime/support/MappedFile.h"
#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apc::data {

struct ArrowColumnInfo {
  std::string name;
  std::string type; // "list<int64>", "large_utf8", "struct<a: int32, b: utf8>", ...
  bool nullable = true;
};

namespace arrow_detail {
struct Batch;
struct FieldInfo;

// The part of one record batch that a typed column reads.
struct Chunk {
  int64_t firstRow = 0;                // global row number of the chunk's first row
  int64_t length = 0;                  // rows
  const uint8_t *validity = nullptr;   // nullptr when the chunk has no null rows
  const uint8_t *offsets = nullptr;    // length + 1 offsets (int32 or int64)
  const uint8_t *values = nullptr;     // list values (int32 or int64) or string bytes
};
} // namespace arrow_detail

// A list<int32>, list<int64>, large_list<int32> or large_list<int64> column, such as
// the `input_ids` of a tokenized dataset.
class IntListColumn {
public:
  const std::string &name() const { return name_; }
  const std::string &type() const { return type_; }
  int64_t numRows() const { return numRows_; }
  // Sum of the lengths of all rows.
  int64_t numValues() const { return numValues_; }
  // Row length; 0 for a null row and for a row outside [0, numRows()).
  int64_t rowLength(int64_t row) const;
  bool isNull(int64_t row) const;
  // How many rows are null, and in `firstNull` the first of them (-1: none).
  int64_t nullCount(int64_t *firstNull = nullptr) const;
  // Replaces `out` with the values of `row` (empty for a null row and for a row
  // outside [0, numRows())). Allocates only when `out` must grow.
  void row(int64_t row, std::vector<int64_t> &out) const;

private:
  friend class ArrowFile;
  const arrow_detail::Chunk *find(int64_t row, int64_t &local) const;
  std::shared_ptr<const MappedFile> mapping_;
  std::string name_, type_;
  bool offsets64_ = false, values64_ = false;
  int64_t numRows_ = 0, numValues_ = 0;
  std::vector<arrow_detail::Chunk> chunks_; // non-empty record batches, in order
};

// A utf8 (string) or large_utf8 (large_string) column. The bytes are not checked to be
// valid UTF-8.
class StringColumn {
public:
  const std::string &name() const { return name_; }
  const std::string &type() const { return type_; }
  int64_t numRows() const { return numRows_; }
  bool isNull(int64_t row) const;
  // How many rows are null, and in `firstNull` the first of them (-1: none).
  int64_t nullCount(int64_t *firstNull = nullptr) const;
  // The string of `row`, pointing into the mapping; empty for a null row and for a row
  // outside [0, numRows()).
  std::string_view row(int64_t row) const;

private:
  friend class ArrowFile;
  const arrow_detail::Chunk *find(int64_t row, int64_t &local) const;
  std::shared_ptr<const MappedFile> mapping_;
  std::string name_, type_;
  bool offsets64_ = false;
  int64_t numRows_ = 0;
  std::vector<arrow_detail::Chunk> chunks_;
};

// "<path>: column 'c' has N null rows (the first is row R): ..." — training data has no
// missing rows; say which instead of reading them as empty.
std::string nullRowsMessage(const std::string &path, const std::string &column, int64_t nulls,
                            int64_t firstNull);

class ArrowFile {
public:
  enum class Format { File, Stream, LegacyStream };

  static Result<ArrowFile> open(const std::string &path);
  ArrowFile(ArrowFile &&) noexcept;
  ArrowFile &operator=(ArrowFile &&) noexcept;
  ~ArrowFile();

  const std::string &path() const { return path_; }
  Format format() const { return format_; }
  int64_t numRows() const { return numRows_; }
  int64_t numRecordBatches() const;
  // Top-level columns in schema order.
  const std::vector<ArrowColumnInfo> &columns() const { return columns_; }

  Result<IntListColumn> intListColumn(const std::string &name) const;
  Result<StringColumn> stringColumn(const std::string &name) const;
  // The value of the schema's custom_metadata key (Hugging Face's "huggingface", APC's
  // "apc.pad_id"), if the file has it.
  std::optional<std::string> schemaMetadata(const std::string &key) const;

private:
  ArrowFile();
  Result<size_t> findColumn(const std::string &name) const;
  std::string fail(const std::string &what) const;

  std::string path_;
  Format format_ = Format::Stream;
  std::shared_ptr<const MappedFile> mapping_;
  std::vector<arrow_detail::FieldInfo> fields_; // top-level fields
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<ArrowColumnInfo> columns_;
  std::vector<arrow_detail::Batch> batches_;
  int64_t numRows_ = 0;
};

const char *formatName(ArrowFile::Format format); // "file", "stream", "legacy stream"

} // namespace apc::data
