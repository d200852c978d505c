// Hugging Face safetensors reading (mmap + validation) and atomic writing.
#include "runtime/safetensors/Safetensors.h"

#include "runtime/support/HalfFloat.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <unordered_set>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this code assumes a little-endian host");

namespace apc::safetensors {
namespace {

// The official implementation's limit on the JSON header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char *kMetadataKey = "__metadata__";

std::string errnoText(int err) { return std::strerror(err); }

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

// Byte size of a tensor of `shape` and `dtype`, or nullopt on a negative dimension or
// on overflow of size_t.
std::optional<size_t> byteSize(const std::vector<int64_t> &shape, DType dtype) {
  uint64_t bytes = dtypeSize(dtype);
  for (int64_t dim : shape) {
    if (dim < 0)
      return std::nullopt;
    if (__builtin_mul_overflow(bytes, uint64_t(dim), &bytes))
      return std::nullopt;
  }
  if (bytes > std::numeric_limits<size_t>::max())
    return std::nullopt;
  return size_t(bytes);
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; keep the rest and
// make sure it is one line.
std::string jsonErrorText(const std::exception &e) {
  std::string text = e.what();
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find("] ");
    if (close != std::string::npos)
      text = text.substr(close + 2);
  }
  for (char &c : text)
    if (c == '\n' || c == '\r')
      c = ' ';
  return text;
}

std::string jsonTypeName(const nlohmann::json &j) { return j.type_name(); }

bool isValidUtf8(const std::string &s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const std::exception &) {
    return false;
  }
}

struct Range {
  uint64_t begin, end;
  size_t index;
};

} // namespace

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::BOOL:
    return 1;
  }
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F64:
    return "F64";
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::I64:
    return "I64";
  case DType::I32:
    return "I32";
  case DType::I16:
    return "I16";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  case DType::BOOL:
    return "BOOL";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view name) {
  static const std::pair<const char *, DType> kAll[] = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (const auto &[text, dtype] : kAll)
    if (name == text)
      return dtype;
  return std::nullopt;
}

DType fileDType(apc::DType dtype) {
  switch (dtype) {
  case apc::DType::F32: return DType::F32;
  case apc::DType::BF16: return DType::BF16;
  case apc::DType::F16: return DType::F16;
  case apc::DType::I32: return DType::I32;
  case apc::DType::I64: return DType::I64;
  }
  return DType::F32;
}

int64_t TensorView::numElements() const {
  int64_t n = 1;
  for (int64_t dim : shape)
    n *= dim;
  return n;
}

// ---- File ---------------------------------------------------------------------------

const TensorView *File::find(std::string_view name) const {
  for (const TensorView &t : tensors_)
    if (t.name == name)
      return &t;
  return nullptr;
}

Result<File> File::open(const std::string &path) {
  auto fail = [&](const std::string &what) { return Result<File>::error(path + ": " + what); };

  auto mapped = MappedFile::open(path);
  if (!mapped)
    return mapped.status();
  uint64_t fileSize = uint64_t((*mapped)->size());
  if (fileSize < 8)
    return fail("file is " + std::to_string(fileSize) +
                " bytes, shorter than the 8-byte header length");
  File file;
  file.path_ = path;
  file.mapping_ = *mapped;
  const uint8_t *base = file.mapping_->data();

  uint64_t headerLen = 0;
  std::memcpy(&headerLen, base, 8); // little-endian host
  if (headerLen == 0)
    return fail("header length is 0");
  if (headerLen > kMaxHeaderBytes)
    return fail("header length " + std::to_string(headerLen) + " exceeds the limit of " +
                std::to_string(kMaxHeaderBytes) + " bytes");
  if (headerLen > fileSize - 8)
    return fail("header length " + std::to_string(headerLen) +
                " goes beyond the end of the file (" + std::to_string(fileSize) +
                " bytes)");
  const char *headerBegin = reinterpret_cast<const char *>(base + 8);
  const uint8_t *data = base + 8 + headerLen;
  uint64_t dataSize = fileSize - 8 - headerLen;

  // nlohmann's lexer takes a NUL byte for the end of the input and would ignore
  // whatever follows it; the format allows only spaces after the JSON.
  if (const void *nul = std::memchr(headerBegin, 0, size_t(headerLen)))
    return fail("header contains a NUL byte at offset " +
                std::to_string(static_cast<const char *>(nul) - headerBegin));

  // Parse; nlohmann silently keeps the last of duplicate keys, so record them.
  nlohmann::json header;
  std::optional<std::string> duplicateKey;
  try {
    std::vector<std::set<std::string>> keysPerObject;
    nlohmann::json::parser_callback_t callback =
        [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json &parsed) {
          using E = nlohmann::json::parse_event_t;
          if (event == E::object_start) {
            keysPerObject.emplace_back();
          } else if (event == E::object_end) {
            if (!keysPerObject.empty())
              keysPerObject.pop_back();
          } else if (event == E::key && !keysPerObject.empty()) {
            const std::string &key = parsed.get_ref<const std::string &>();
            if (!keysPerObject.back().insert(key).second && !duplicateKey)
              duplicateKey = key;
          }
          return true;
        };
    header = nlohmann::json::parse(headerBegin, headerBegin + headerLen, callback);
  } catch (const std::exception &e) {
    return fail("header is not valid JSON: " + jsonErrorText(e));
  }
  if (!header.is_object())
    return fail("header is a JSON " + jsonTypeName(header) + ", not an object");
  if (duplicateKey)
    return fail("header has duplicate key " + quote(*duplicateKey));

  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const nlohmann::json &entry = it.value();
    if (name == kMetadataKey) {
      if (!entry.is_object())
        return fail("__metadata__ is a JSON " + jsonTypeName(entry) + ", not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          return fail("__metadata__ key " + quote(m.key()) + " has a " +
                      jsonTypeName(m.value()) + " value, not a string");
        file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string what = "tensor " + quote(name);
    if (!entry.is_object())
      return fail(what + " is a JSON " + jsonTypeName(entry) + ", not an object");

    auto dtypeIt = entry.find("dtype");
    if (dtypeIt == entry.end())
      return fail(what + " has no dtype");
    if (!dtypeIt->is_string())
      return fail(what + " has a dtype that is a JSON " + jsonTypeName(*dtypeIt) +
                  ", not a string");
    const std::string &dtypeText = dtypeIt->get_ref<const std::string &>();
    std::optional<DType> dtype = parseDType(dtypeText);
    if (!dtype)
      return fail(what + " has unsupported dtype " + quote(dtypeText));

    auto shapeIt = entry.find("shape");
    if (shapeIt == entry.end())
      return fail(what + " has no shape");
    if (!shapeIt->is_array())
      return fail(what + " has a shape that is a JSON " + jsonTypeName(*shapeIt) +
                  ", not an array");
    std::vector<int64_t> shape;
    for (const nlohmann::json &dim : *shapeIt) {
      bool ok = dim.is_number_unsigned() ||
                (dim.is_number_integer() && dim.get<int64_t>() >= 0);
      if (ok && dim.is_number_unsigned() &&
          dim.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        ok = false;
      if (!ok)
        return fail(what + " has shape " + shapeIt->dump() +
                    " with an entry that is not a non-negative integer");
      shape.push_back(dim.get<int64_t>());
    }

    auto offsetsIt = entry.find("data_offsets");
    if (offsetsIt == entry.end())
      return fail(what + " has no data_offsets");
    const nlohmann::json &offsets = *offsetsIt;
    bool offsetsOk = offsets.is_array() && offsets.size() == 2;
    if (offsetsOk)
      for (const nlohmann::json &o : offsets)
        offsetsOk = offsetsOk && (o.is_number_unsigned() ||
                                  (o.is_number_integer() && o.get<int64_t>() >= 0));
    if (!offsetsOk)
      return fail(what + " has data_offsets " + offsets.dump() +
                  ", not two non-negative integers");
    uint64_t begin = offsets[0].get<uint64_t>();
    uint64_t end = offsets[1].get<uint64_t>();
    std::string offsetsText = "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin > end)
      return fail(what + " has data_offsets " + offsetsText + " with begin after end");
    if (end > dataSize)
      return fail(what + " has data_offsets " + offsetsText +
                  " beyond the end of the data section (" + std::to_string(dataSize) +
                  " bytes)");
    std::optional<size_t> needed = byteSize(shape, *dtype);
    if (!needed)
      return fail(what + " has shape " + shapeText(shape) + " of " + dtypeName(*dtype) +
                  " whose byte size overflows");
    if (end - begin != *needed)
      return fail(what + " has data_offsets " + offsetsText + " but shape " +
                  shapeText(shape) + " of " + dtypeName(*dtype) + " needs " +
                  std::to_string(*needed) + " bytes");

    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    view.shape = std::move(shape);
    view.data = data + begin;
    view.nbytes = size_t(end - begin);
    ranges.push_back({begin, end, file.tensors_.size()});
    file.tensors_.push_back(std::move(view));
  }

  // Order by data offset; empty tensors occupy no bytes and overlap nothing.
  std::sort(ranges.begin(), ranges.end(), [&](const Range &a, const Range &b) {
    if (a.begin != b.begin)
      return a.begin < b.begin;
    if (a.end != b.end)
      return a.end < b.end;
    return file.tensors_[a.index].name < file.tensors_[b.index].name;
  });
  const Range *previous = nullptr;
  for (const Range &r : ranges) {
    if (r.begin == r.end)
      continue;
    if (previous && previous->end > r.begin) {
      auto rangeText = [](const Range &x) {
        return "[" + std::to_string(x.begin) + ", " + std::to_string(x.end) + "]";
      };
      return fail("tensor " + quote(file.tensors_[r.index].name) + " has data_offsets " +
                  rangeText(r) + " overlapping tensor " +
                  quote(file.tensors_[previous->index].name) + " at " +
                  rangeText(*previous));
    }
    if (!previous || r.end > previous->end)
      previous = &r;
  }
  std::vector<TensorView> ordered;
  ordered.reserve(ranges.size());
  for (const Range &r : ranges)
    ordered.push_back(std::move(file.tensors_[r.index]));
  file.tensors_ = std::move(ordered);
  return Result<File>(std::move(file));
}

// ---- write --------------------------------------------------------------------------

namespace {

Status writeAll(int fd, const void *buffer, size_t size) {
  const char *p = static_cast<const char *>(buffer);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Status::error(errnoText(errno));
    }
    p += n;
    size -= size_t(n);
  }
  return Status::ok();
}

// `bytes`, when given, holds each tensor's byte count, checked against its shape.
Result<std::string> buildHeader(const std::string &path, const std::vector<TensorInfo> &tensors,
                                const std::vector<size_t> *bytes,
                                const std::map<std::string, std::string> &metadata,
                                uint64_t *dataBytes) {
  auto fail = [&](const std::string &what) {
    return Result<std::string>::error(path + ": " + what);
  };
  std::unordered_set<std::string> names;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto &[key, value] : metadata) {
      if (!isValidUtf8(key))
        return fail("__metadata__ key " + quote(key) + " is not valid UTF-8");
      if (!isValidUtf8(value))
        return fail("__metadata__ key " + quote(key) + " has a value that is not valid UTF-8");
      meta[key] = value;
    }
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo &t = tensors[i];
    std::string what = "tensor " + quote(t.name);
    if (t.name == kMetadataKey)
      return fail("a tensor cannot be named '__metadata__'");
    if (!isValidUtf8(t.name))
      return fail(what + " has a name that is not valid UTF-8");
    if (!names.insert(t.name).second)
      return fail(what + " appears more than once");
    if (dtypeSize(t.dtype) == 0)
      return fail(what + " has an invalid dtype");
    for (int64_t dim : t.shape)
      if (dim < 0)
        return fail(what + " has shape " + shapeText(t.shape) + " with a negative dimension");
    std::optional<size_t> needed = byteSize(t.shape, t.dtype);
    if (!needed)
      return fail(what + " has shape " + shapeText(t.shape) + " of " + dtypeName(t.dtype) +
                  " whose byte size overflows");
    if (bytes && (*bytes)[i] != *needed)
      return fail(what + " has " + std::to_string((*bytes)[i]) + " bytes but shape " +
                  shapeText(t.shape) + " of " + dtypeName(t.dtype) + " needs " +
                  std::to_string(*needed) + " bytes");
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = dtypeName(t.dtype);
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + *needed};
    header[t.name] = std::move(entry);
    offset += *needed;
  }
  *dataBytes = offset;
  std::string text;
  try {
    text = header.dump();
  } catch (const std::exception &e) {
    return fail("cannot encode the header: " + jsonErrorText(e));
  }
  // Pad with spaces so that the data section starts at a multiple of 8.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes)
    return fail("header of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                std::to_string(kMaxHeaderBytes) + " bytes");
  return text;
}

std::string parentDirectory(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

} // namespace

// Validates, opens the temporary file and writes the header and its length.
Result<Writer> Writer::start(const std::string &path, const std::vector<TensorInfo> &tensors,
                             const std::vector<size_t> *bytes,
                             const std::map<std::string, std::string> &metadata) {
  uint64_t dataBytes = 0;
  Result<std::string> header = buildHeader(path, tensors, bytes, metadata, &dataBytes);
  if (!header)
    return header.status();
  Writer w;
  w.path_ = path;
  w.remaining_ = dataBytes;
  std::string tempPath = path + ".tmp." + std::to_string(::getpid());
  w.fd_ = ::open(tempPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd_ < 0)
    return Status::error(path + ": cannot create temporary file " + tempPath + ": " +
                         errnoText(errno));
  w.tempPath_ = tempPath;
  uint64_t headerLen = header->size();
  Status st = writeAll(w.fd_, &headerLen, 8);
  if (st)
    st = writeAll(w.fd_, header->data(), header->size());
  if (!st)
    return w.abandon("cannot write " + tempPath + ": " + st.message());
  return Result<Writer>(std::move(w));
}

Result<Writer> Writer::create(const std::string &path, const std::vector<TensorInfo> &tensors,
                              const std::map<std::string, std::string> &metadata) {
  return Writer::start(path, tensors, nullptr, metadata);
}

Writer::Writer(Writer &&other) noexcept
    : path_(std::move(other.path_)), tempPath_(std::move(other.tempPath_)), fd_(other.fd_),
      remaining_(other.remaining_) {
  other.fd_ = -1;
  other.tempPath_.clear();
}

Writer &Writer::operator=(Writer &&other) noexcept {
  if (this != &other) {
    (void)abandon("");
    path_ = std::move(other.path_);
    tempPath_ = std::move(other.tempPath_);
    fd_ = other.fd_;
    remaining_ = other.remaining_;
    other.fd_ = -1;
    other.tempPath_.clear();
  }
  return *this;
}

Writer::~Writer() { (void)abandon(""); }

// Closes and removes the temporary file (if still there); returns `what` as the error.
Status Writer::abandon(const std::string &what) {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  if (!tempPath_.empty())
    ::unlink(tempPath_.c_str());
  tempPath_.clear();
  return Status::error(path_ + ": " + what);
}

Status Writer::append(const void *data, size_t bytes) {
  if (fd_ < 0)
    return Status::error(path_ + ": append to a writer that is closed");
  if (bytes > remaining_)
    return abandon("appending " + std::to_string(bytes) + " bytes where only " +
                   std::to_string(remaining_) + " remain of the tensors' data");
  if (Status st = writeAll(fd_, data, bytes); !st)
    return abandon("cannot write " + tempPath_ + ": " + st.message());
  remaining_ -= bytes;
  return Status::ok();
}

Status Writer::commit() {
  if (fd_ < 0)
    return Status::error(path_ + ": commit of a writer that is closed");
  if (remaining_ != 0)
    return abandon(std::to_string(remaining_) + " bytes of the tensors' data were not written");
  if (::fsync(fd_) != 0)
    return abandon("cannot fsync " + tempPath_ + ": " + errnoText(errno));
  int closeResult = ::close(fd_);
  fd_ = -1;
  if (closeResult != 0)
    return abandon("cannot close " + tempPath_ + ": " + errnoText(errno));
  if (::rename(tempPath_.c_str(), path_.c_str()) != 0)
    return abandon("cannot rename " + tempPath_ + " to the target: " + errnoText(errno));
  tempPath_.clear();

  // Make the rename durable; failing to sync the folder does not undo the write.
  int dirFd = ::open(parentDirectory(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    (void)::fsync(dirFd);
    ::close(dirFd);
  }
  return Status::ok();
}

Status write(const std::string &path, const std::vector<TensorToWrite> &tensors,
             const std::map<std::string, std::string> &metadata) {
  std::vector<TensorInfo> infos;
  std::vector<size_t> bytes;
  infos.reserve(tensors.size());
  bytes.reserve(tensors.size());
  for (const TensorToWrite &t : tensors) {
    infos.push_back({t.name, t.dtype, t.shape});
    bytes.push_back(t.bytes.size());
  }
  auto writer = Writer::start(path, infos, &bytes, metadata);
  if (!writer)
    return writer.status();
  for (const TensorToWrite &t : tensors)
    APC_RETURN_IF_ERROR(writer->append(t.bytes.data(), t.bytes.size()));
  return writer->commit();
}

// ---- conversions --------------------------------------------------------------------

namespace {

template <typename T> T load(const uint8_t *p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

template <typename T> void store(uint8_t *p, T value) { std::memcpy(p, &value, sizeof value); }

// Truncates towards zero and saturates; NaN becomes 0.
template <typename T> T toInteger(double v) {
  if (std::isnan(v))
    return 0;
  constexpr double lo = double(std::numeric_limits<T>::min());
  // max + 1 is a power of two and exact as a double.
  constexpr double hiExclusive = double(std::numeric_limits<T>::max() / 2 + 1) * 2.0;
  if (v >= hiExclusive)
    return std::numeric_limits<T>::max();
  if (v <= lo)
    return std::numeric_limits<T>::min();
  return T(std::trunc(v));
}

} // namespace

std::vector<double> toDoubles(const TensorView &tensor) {
  size_t size = dtypeSize(tensor.dtype);
  size_t n = size ? tensor.nbytes / size : 0;
  std::vector<double> out(n);
  const uint8_t *p = tensor.data;
  for (size_t i = 0; i < n; ++i, p += size) {
    double v = 0;
    switch (tensor.dtype) {
    case DType::F64:
      v = load<double>(p);
      break;
    case DType::F32:
      v = load<float>(p);
      break;
    case DType::F16:
      v = f16ToFloat(load<uint16_t>(p));
      break;
    case DType::BF16:
      v = bf16ToFloat(load<uint16_t>(p));
      break;
    case DType::I64:
      v = double(load<int64_t>(p));
      break;
    case DType::I32:
      v = load<int32_t>(p);
      break;
    case DType::I16:
      v = load<int16_t>(p);
      break;
    case DType::I8:
      v = load<int8_t>(p);
      break;
    case DType::U8:
      v = load<uint8_t>(p);
      break;
    case DType::BOOL:
      v = load<uint8_t>(p) != 0 ? 1.0 : 0.0;
      break;
    }
    out[i] = v;
  }
  return out;
}

std::vector<uint8_t> fromDoubles(const std::vector<double> &values, DType dtype) {
  size_t size = dtypeSize(dtype);
  std::vector<uint8_t> out(values.size() * size);
  uint8_t *p = out.data();
  for (double v : values) {
    switch (dtype) {
    case DType::F64:
      store<double>(p, v);
      break;
    case DType::F32:
      store<float>(p, float(v));
      break;
    case DType::F16:
      store<uint16_t>(p, floatToF16(toFloatRoundToOdd(v)));
      break;
    case DType::BF16:
      store<uint16_t>(p, floatToBf16(toFloatRoundToOdd(v)));
      break;
    case DType::I64:
      store<int64_t>(p, toInteger<int64_t>(v));
      break;
    case DType::I32:
      store<int32_t>(p, toInteger<int32_t>(v));
      break;
    case DType::I16:
      store<int16_t>(p, toInteger<int16_t>(v));
      break;
    case DType::I8:
      store<int8_t>(p, toInteger<int8_t>(v));
      break;
    case DType::U8:
      store<uint8_t>(p, toInteger<uint8_t>(v));
      break;
    case DType::BOOL:
      store<uint8_t>(p, v != 0.0 ? 1 : 0);
      break;
    }
    p += size;
  }
  return out;
}

} // namespace apc::safetensors
