// Apache Arrow IPC stream writing: one list<int32> column, atomically renamed into place.
#include "runtime/data/ArrowWriter.h"

#include "runtime/data/arrow/Message_generated.h"
#include "runtime/data/arrow/Schema_generated.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fcntl.h>
#include <unistd.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "Arrow buffers are written in host order; this code assumes little endian");

namespace fb = org::apache::arrow::flatbuf;

namespace apc::data {
namespace {

constexpr uint32_t kContinuation = 0xFFFFFFFFu;
constexpr int64_t kMaxOffset = std::numeric_limits<int32_t>::max();

size_t padTo8(size_t n) { return (n + 7) & ~size_t(7); }

std::string errnoText(int err) { return std::strerror(err); }

std::atomic<uint64_t> tmpCounter{0};

} // namespace

Result<TokenStreamWriter> TokenStreamWriter::create(const std::string &path,
                                                    std::string columnName,
                                                    int64_t rowsPerBatch) {
  Options options;
  options.columnName = std::move(columnName);
  options.rowsPerBatch = rowsPerBatch;
  return create(path, std::move(options));
}

Result<TokenStreamWriter> TokenStreamWriter::create(const std::string &path,
                                                    Options options) {
  if (path.empty())
    return Result<TokenStreamWriter>::error("Arrow writer: empty output path");
  if (options.rowsPerBatch <= 0)
    return Result<TokenStreamWriter>::error(path + ": rows per record batch must be "
                                            "positive, got " +
                                            std::to_string(options.rowsPerBatch));
  TokenStreamWriter w;
  w.path_ = path;
  w.rowsPerBatch_ = options.rowsPerBatch;
  w.tmpPath_ = path + ".tmp." + std::to_string(::getpid()) + "." +
               std::to_string(tmpCounter.fetch_add(1));
  w.fd_ = ::open(w.tmpPath_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (w.fd_ < 0) {
    int err = errno;
    w.tmpPath_.clear(); // nothing to remove
    return Result<TokenStreamWriter>::error(path + ": cannot create: " + errnoText(err));
  }
  if (Status s = w.writeSchema(options); !s)
    return s;
  return Result<TokenStreamWriter>(std::move(w));
}

TokenStreamWriter::TokenStreamWriter(TokenStreamWriter &&other) noexcept
    : path_(std::move(other.path_)), tmpPath_(std::move(other.tmpPath_)), fd_(other.fd_),
      rowsPerBatch_(other.rowsPerBatch_), finished_(other.finished_),
      error_(std::move(other.error_)), numRows_(other.numRows_),
      numValues_(other.numValues_), numBatches_(other.numBatches_),
      offsets_(std::move(other.offsets_)), values_(std::move(other.values_)) {
  other.fd_ = -1;
  other.tmpPath_.clear();
}

TokenStreamWriter &TokenStreamWriter::operator=(TokenStreamWriter &&other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    tmpPath_ = std::move(other.tmpPath_);
    fd_ = other.fd_;
    rowsPerBatch_ = other.rowsPerBatch_;
    finished_ = other.finished_;
    error_ = std::move(other.error_);
    numRows_ = other.numRows_;
    numValues_ = other.numValues_;
    numBatches_ = other.numBatches_;
    offsets_ = std::move(other.offsets_);
    values_ = std::move(other.values_);
    other.fd_ = -1;
    other.tmpPath_.clear();
  }
  return *this;
}

TokenStreamWriter::~TokenStreamWriter() { discard(); }

void TokenStreamWriter::discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tmpPath_.empty()) {
    ::unlink(tmpPath_.c_str());
    tmpPath_.clear();
  }
}

Status TokenStreamWriter::fail(const std::string &what) {
  discard();
  error_ = Status::error(path_ + ": " + what);
  return error_;
}

Status TokenStreamWriter::writeAll(const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail("write failed: " + errnoText(n < 0 ? errno : EIO));
    p += n;
    size -= size_t(n);
  }
  return Status::ok();
}

// One encapsulated message: continuation marker, metadata length (counting the padding
// that makes the body start at a multiple of 8), metadata, padding, body.
Status TokenStreamWriter::writeMessage(const uint8_t *meta, size_t metaSize,
                                       const std::vector<uint8_t> &body) {
  size_t paddedMeta = padTo8(8 + metaSize) - 8;
  if (paddedMeta > size_t(std::numeric_limits<int32_t>::max()))
    return fail("message metadata of " + std::to_string(metaSize) + " bytes is too large");
  std::vector<uint8_t> head(8 + paddedMeta, 0);
  uint32_t marker = kContinuation;
  int32_t length = int32_t(paddedMeta);
  std::memcpy(head.data(), &marker, 4);
  std::memcpy(head.data() + 4, &length, 4);
  std::memcpy(head.data() + 8, meta, metaSize);
  APC_RETURN_IF_ERROR(writeAll(head.data(), head.size()));
  if (!body.empty())
    APC_RETURN_IF_ERROR(writeAll(body.data(), body.size()));
  return Status::ok();
}

Status TokenStreamWriter::writeSchema(const Options &options) {
  flatbuffers::FlatBufferBuilder fbb(512);
  auto itemType = fb::CreateInt(fbb, 32, true);
  auto item = fb::CreateField(fbb, fbb.CreateString("item"), /*nullable=*/true, fb::Type_Int,
                              itemType.Union());
  auto children = fbb.CreateVector(&item, 1);
  auto listType = fb::CreateList(fbb);
  auto column = fb::CreateField(fbb, fbb.CreateString(options.columnName),
                                /*nullable=*/true, fb::Type_List, listType.Union(),
                                /*dictionary=*/0, children);
  auto fields = fbb.CreateVector(&column, 1);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::KeyValue>>> metadata = 0;
  if (!options.schemaMetadata.empty()) {
    std::vector<flatbuffers::Offset<fb::KeyValue>> kvs;
    for (const auto &[key, value] : options.schemaMetadata)
      kvs.push_back(fb::CreateKeyValue(fbb, fbb.CreateString(key), fbb.CreateString(value)));
    metadata = fbb.CreateVector(kvs);
  }
  auto schema = fb::CreateSchema(fbb, fb::Endianness_Little, fields, metadata);
  auto message = fb::CreateMessage(fbb, fb::MetadataVersion_V5, fb::MessageHeader_Schema,
                                   schema.Union(), /*bodyLength=*/0);
  fbb.Finish(message);
  return writeMessage(fbb.GetBufferPointer(), fbb.GetSize(), {});
}

Status TokenStreamWriter::append(const int32_t *ids, size_t n) {
  if (!error_.isOk())
    return error_;
  if (finished_)
    return Status::error(path_ + ": append after finish");
  if (n > 0 && !ids)
    return Status::error(path_ + ": append of " + std::to_string(n) + " ids from a null pointer");
  if (n > size_t(kMaxOffset))
    return fail("a row of " + std::to_string(n) +
                " tokens does not fit the int32 offsets of list<int32>");
  // Cut the batch early when this row would overflow its int32 offsets.
  if (int64_t(values_.size()) + int64_t(n) > kMaxOffset)
    APC_RETURN_IF_ERROR(flushBatch());
  values_.insert(values_.end(), ids, ids + n);
  offsets_.push_back(int32_t(values_.size()));
  ++numRows_;
  numValues_ += int64_t(n);
  if (int64_t(offsets_.size()) - 1 >= rowsPerBatch_)
    APC_RETURN_IF_ERROR(flushBatch());
  return Status::ok();
}

// Writes the gathered rows as one record batch. The body holds, 8-byte aligned, the
// buffers of the pre-order flattening: list validity (omitted), list offsets, item
// validity (omitted), item values.
Status TokenStreamWriter::flushBatch() {
  int64_t rows = int64_t(offsets_.size()) - 1;
  if (rows == 0)
    return Status::ok();
  int64_t numValues = int64_t(values_.size());
  size_t offsetsBytes = offsets_.size() * sizeof(int32_t);
  size_t valuesBytes = values_.size() * sizeof(int32_t);
  size_t offsetsAt = 0;
  size_t valuesAt = padTo8(offsetsBytes);
  size_t bodySize = valuesAt + padTo8(valuesBytes);

  std::vector<uint8_t> body(bodySize, 0);
  std::memcpy(body.data() + offsetsAt, offsets_.data(), offsetsBytes);
  if (valuesBytes)
    std::memcpy(body.data() + valuesAt, values_.data(), valuesBytes);

  flatbuffers::FlatBufferBuilder fbb(256);
  const fb::FieldNode nodes[] = {fb::FieldNode(rows, 0), fb::FieldNode(numValues, 0)};
  const fb::Buffer buffers[] = {
      fb::Buffer(int64_t(offsetsAt), 0),                 // list validity: none
      fb::Buffer(int64_t(offsetsAt), int64_t(offsetsBytes)), // list offsets
      fb::Buffer(int64_t(valuesAt), 0),                  // item validity: none
      fb::Buffer(int64_t(valuesAt), int64_t(valuesBytes)), // item values
  };
  auto nodesVec = fbb.CreateVectorOfStructs(nodes, 2);
  auto buffersVec = fbb.CreateVectorOfStructs(buffers, 4);
  auto batch = fb::CreateRecordBatch(fbb, rows, nodesVec, buffersVec);
  auto message = fb::CreateMessage(fbb, fb::MetadataVersion_V5,
                                   fb::MessageHeader_RecordBatch, batch.Union(),
                                   int64_t(bodySize));
  fbb.Finish(message);
  APC_RETURN_IF_ERROR(writeMessage(fbb.GetBufferPointer(), fbb.GetSize(), body));
  ++numBatches_;
  offsets_.assign(1, 0);
  values_.clear();
  return Status::ok();
}

Status TokenStreamWriter::finish() {
  if (!error_.isOk())
    return error_;
  if (finished_)
    return Status::error(path_ + ": finish called twice");
  APC_RETURN_IF_ERROR(flushBatch());
  const uint32_t eos[2] = {kContinuation, 0};
  APC_RETURN_IF_ERROR(writeAll(eos, sizeof eos));
  if (::fsync(fd_) != 0)
    return fail("write failed: " + errnoText(errno));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0)
    return fail("write failed: " + errnoText(errno));
  if (::rename(tmpPath_.c_str(), path_.c_str()) != 0)
    return fail("cannot rename into place: " + errnoText(errno));
  tmpPath_.clear();
  finished_ = true;
  // Free the batch buffers; the writer only reports its counts from now on.
  std::vector<int32_t>().swap(values_);
  std::vector<int32_t>(1, 0).swap(offsets_);
  return Status::ok();
}

} // namespace apc::data
