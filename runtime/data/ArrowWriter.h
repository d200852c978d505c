// Apache Arrow IPC stream writing for tokenized training data.
//
// Writes the stream format that Hugging Face `datasets` writes and ArrowFile reads:
// encapsulated messages (0xFFFFFFFF continuation marker, int32 metadata length, Message
// flatbuffer padded so the body starts at a multiple of 8, body padded to 8), the schema
// message first, then the record batches, then the end-of-stream marker 0xFFFFFFFF
// 0x00000000. Metadata version V5, little endian, no compression, no dictionaries.
//
// TokenStreamWriter writes one column of type list<int32> (child field "item", both
// nullable as pyarrow declares them) with no null rows or values, so every validity
// buffer is omitted (null_count 0, zero-length buffer), as pyarrow does. Rows are
// gathered into record batches of `rowsPerBatch` rows; a batch is cut early when its
// int32 offsets would overflow.
//
// The file is written under a temporary name in the same folder (`<path>.tmp.<pid>.<n>`)
// and renamed over `path` by finish(), after an fsync, so readers see either no file
// (or the previous file) or the complete new one. Destroying a writer that was not
// finished removes the temporary file. After any error the writer is failed: further
// calls return the first error and the temporary file is already gone.
#pragma once

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace apc::data {

class TokenStreamWriter {
public:
  struct Options {
    std::string columnName = "input_ids";
    int64_t rowsPerBatch = 1000; // > 0
    // Key/value pairs stored in the schema's custom_metadata, in order (for instance
    // Hugging Face's "huggingface" features JSON). Empty: no custom_metadata.
    std::vector<std::pair<std::string, std::string>> schemaMetadata;
  };

  // Creates the temporary file and writes the schema message.
  static Result<TokenStreamWriter> create(const std::string &path,
                                          std::string columnName = "input_ids",
                                          int64_t rowsPerBatch = 1000);
  static Result<TokenStreamWriter> create(const std::string &path, Options options);

  TokenStreamWriter(TokenStreamWriter &&other) noexcept;
  TokenStreamWriter &operator=(TokenStreamWriter &&other) noexcept;
  TokenStreamWriter(const TokenStreamWriter &) = delete;
  TokenStreamWriter &operator=(const TokenStreamWriter &) = delete;
  // Without a successful finish(): closes and removes the temporary file.
  ~TokenStreamWriter();

  // Appends one row of `n` token ids (n may be 0; `ids` may be null when n is 0).
  Status append(const int32_t *ids, size_t n);
  Status append(const std::vector<int32_t> &ids) { return append(ids.data(), ids.size()); }
  // Writes the last (partial) batch and the end-of-stream marker, syncs, and renames
  // the temporary file to the final path (replacing an existing file).
  Status finish();

  const std::string &path() const { return path_; }
  int64_t numRows() const { return numRows_; }       // rows appended so far
  int64_t numValues() const { return numValues_; }   // token ids appended so far
  int64_t numRecordBatches() const { return numBatches_; } // batches written so far
  bool finished() const { return finished_; }

private:
  TokenStreamWriter() = default;
  Status writeSchema(const Options &options);
  Status flushBatch();
  Status writeMessage(const uint8_t *meta, size_t metaSize, const std::vector<uint8_t> &body);
  Status writeAll(const void *data, size_t size);
  Status fail(const std::string &what); // records the error, removes the temp file
  void discard();                       // closes and unlinks the temp file

  std::string path_, tmpPath_;
  int fd_ = -1;
  int64_t rowsPerBatch_ = 1000;
  bool finished_ = false;
  Status error_; // first error; once set every call returns it
  int64_t numRows_ = 0, numValues_ = 0, numBatches_ = 0;
  std::vector<int32_t> offsets_{0}; // current batch: rows + 1 offsets
  std::vector<int32_t> values_;     // current batch: the ids of its rows
};

} // namespace apc::data
