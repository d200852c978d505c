// Apache Arrow IPC reading: file and stream formats, memory-mapped and validated.
#include "runtime/data/ArrowFile.h"

#include "runtime/data/arrow/File_generated.h"
#include "runtime/data/arrow/Message_generated.h"
#include "runtime/data/arrow/Schema_generated.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "Arrow data is read in place; this code assumes a little-endian host");

namespace fb = org::apache::arrow::flatbuf;

static_assert(sizeof(fb::Block) == 24, "Block must match the official layout");
static_assert(sizeof(fb::FieldNode) == 16, "FieldNode must match the official layout");
static_assert(sizeof(fb::Buffer) == 16, "Buffer must match the official layout");

namespace apc::data {
namespace arrow_detail {

// A field of the schema, with what the layout and the accessors need.
struct FieldInfo {
  std::string name;
  bool nullable = true;
  fb::Type type = fb::Type_NONE;
  int64_t bitWidth = 0; // bits per value of fixed-width types (also Int)
  bool isSigned = false;
  int listSize = 0;          // FixedSizeList
  bool denseUnion = false;   // Union
  bool dictionary = false;   // dictionary-encoded: the batch holds integer indices
  int indexBitWidth = 32;
  bool indexSigned = true;
  int nodeIndex = -1;        // pre-order position among the record batch's field nodes
  std::string description;   // "list<int64>"
  std::vector<FieldInfo> children;
};

struct BufferRef {
  const uint8_t *data = nullptr;
  int64_t size = 0;
};

struct Node {
  int64_t length = 0;
  int64_t nullCount = 0;
  int32_t firstBuffer = 0;
  int32_t numBuffers = 0;
};

struct Batch {
  int64_t firstRow = 0;
  int64_t length = 0;
  std::vector<Node> nodes;         // pre-order, one per field node
  std::vector<BufferRef> buffers;  // all buffers of the batch, in order
  const BufferRef &buffer(const Node &node, int i) const {
    return buffers[size_t(node.firstBuffer + i)];
  }
};

} // namespace arrow_detail

using arrow_detail::Batch;
using arrow_detail::BufferRef;
using arrow_detail::Chunk;
using arrow_detail::FieldInfo;
using arrow_detail::Node;

namespace {

constexpr uint32_t kContinuation = 0xFFFFFFFFu;
constexpr char kMagic[6] = {'A', 'R', 'R', 'O', 'W', '1'};
constexpr size_t kFileHeaderSize = 8;  // magic + 2 padding bytes
constexpr size_t kFileTrailerSize = 10; // int32 footer length + magic

std::string errnoText(int err) { return std::strerror(err); }
std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }
std::string num(int64_t v) { return std::to_string(v); }

template <typename T> T load(const uint8_t *p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

int64_t loadOffset(const uint8_t *offsets, bool is64, int64_t i) {
  return is64 ? load<int64_t>(offsets + 8 * i) : int64_t(load<int32_t>(offsets + 4 * i));
}

bool bitSet(const uint8_t *bitmap, int64_t i) { return (bitmap[i >> 3] >> (i & 7)) & 1; }

// The flatbuffers Verifier checks the alignment of a vector's length but not of its
// elements (google/flatbuffers#8397): a corrupt file can put the 8-byte Block,
// FieldNode, Buffer and int64 elements at 4 mod 8, and reading them is undefined
// behaviour. Writers align non-empty vectors (empty ones need not be: nothing is read).
template <typename T> bool aligned8(const flatbuffers::Vector<T> *v) {
  return !v || v->size() == 0 || reinterpret_cast<uintptr_t>(v->Data()) % 8 == 0;
}

// Bytes needed for `length` values of `bits` bits, or -1 on overflow.
int64_t bytesFor(int64_t length, int64_t bits) {
  if (length < 0 || bits < 0)
    return -1;
  if (bits > 0 && length > (std::numeric_limits<int64_t>::max() - 7) / bits)
    return -1;
  return (length * bits + 7) / 8;
}

std::string versionName(fb::MetadataVersion v) {
  const char *name = fb::EnumNameMetadataVersion(v);
  if (name && *name)
    return name;
  return "#" + std::to_string(int(v));
}

std::string typeName(fb::Type t) {
  const char *name = fb::EnumNameType(t);
  if (name && *name)
    return name;
  return "#" + std::to_string(int(t));
}

std::string headerName(fb::MessageHeader h) {
  switch (h) {
  case fb::MessageHeader_NONE:
    return "an empty message";
  case fb::MessageHeader_Schema:
    return "a schema";
  case fb::MessageHeader_DictionaryBatch:
    return "a dictionary batch";
  case fb::MessageHeader_RecordBatch:
    return "a record batch";
  case fb::MessageHeader_Tensor:
    return "a tensor";
  case fb::MessageHeader_SparseTensor:
    return "a sparse tensor";
  }
  return "an unknown message (header type " + std::to_string(int(h)) + ")";
}

std::string codecName(fb::CompressionType c) {
  switch (c) {
  case fb::CompressionType_LZ4_FRAME:
    return "lz4 (LZ4_FRAME)";
  case fb::CompressionType_ZSTD:
    return "zstd (ZSTD)";
  }
  return "an unknown codec (#" + std::to_string(int(c)) + ")";
}

Status checkVersion(fb::MetadataVersion v, const std::string &what) {
  if (v == fb::MetadataVersion_V4 || v == fb::MetadataVersion_V5)
    return Status::ok();
  if (v >= fb::MetadataVersion_V1 && v < fb::MetadataVersion_V4)
    return Status::error(what + " has metadata version " + versionName(v) +
                         " (Arrow < 0.8); only V4 and V5 are supported");
  return Status::error(what + " has unknown metadata version " + versionName(v) +
                       "; only V4 and V5 are supported");
}

// A flatbuffer inside the mapping, copied to 8-byte aligned memory when it is not
// aligned there (the legacy framing puts metadata at 4 mod 8).
class FlatBytes {
public:
  FlatBytes(const uint8_t *p, size_t size) : data_(p), size_(size) {
    if (reinterpret_cast<uintptr_t>(p) % 8 != 0) {
      copy_.resize((size + 7) / 8);
      std::memcpy(copy_.data(), p, size);
      data_ = reinterpret_cast<const uint8_t *>(copy_.data());
    }
  }
  FlatBytes(const FlatBytes &) = delete;
  FlatBytes &operator=(const FlatBytes &) = delete;
  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

private:
  const uint8_t *data_;
  size_t size_;
  std::vector<uint64_t> copy_;
};

// ---- schema -------------------------------------------------------------------------

std::string intName(int bits, bool isSigned) {
  return std::string(isSigned ? "int" : "uint") + std::to_string(bits);
}

std::string timeUnitName(fb::TimeUnit u) {
  switch (u) {
  case fb::TimeUnit_SECOND:
    return "s";
  case fb::TimeUnit_MILLISECOND:
    return "ms";
  case fb::TimeUnit_MICROSECOND:
    return "us";
  case fb::TimeUnit_NANOSECOND:
    return "ns";
  }
  return "?";
}

std::string childList(const std::vector<FieldInfo> &children) {
  std::string out;
  for (size_t i = 0; i < children.size(); ++i) {
    if (i)
      out += ", ";
    out += children[i].name + ": " + children[i].description;
  }
  return out;
}

class SchemaParser {
public:
  int numNodes() const { return nodes_; }

  // `top` names the top-level column in messages; `countNodes` is false below a
  // dictionary-encoded field (its children live in the dictionary batches).
  Status parse(const fb::Field *f, const std::string &top, bool countNodes, int depth,
               FieldInfo &out) {
    std::string what = "column " + quote(top);
    if (!f)
      return Status::error(what + " has an empty field entry in the schema");
    if (depth > 64)
      return Status::error(what + " is nested more than 64 levels deep");
    out.name = f->name() ? f->name()->str() : std::string();
    out.nullable = f->nullable();
    out.type = f->type_type();
    if (const fb::DictionaryEncoding *dict = f->dictionary()) {
      out.dictionary = true;
      if (const fb::Int *index = dict->indexType()) {
        out.indexBitWidth = index->bitWidth();
        out.indexSigned = index->is_signed();
        int b = out.indexBitWidth;
        if (b != 8 && b != 16 && b != 32 && b != 64)
          return Status::error(what + " has dictionary indices of " + std::to_string(b) +
                               " bits; expected 8, 16, 32 or 64");
      }
    }
    if (countNodes)
      out.nodeIndex = nodes_++;

    const auto *children = f->children();
    size_t numChildren = children ? children->size() : 0;
    out.children.resize(numChildren);
    for (size_t i = 0; i < numChildren; ++i)
      APC_RETURN_IF_ERROR(parse(children->Get(flatbuffers::uoffset_t(i)), top,
                                countNodes && !out.dictionary, depth + 1,
                                out.children[i]));

    auto expectChildren = [&](size_t n) -> Status {
      if (numChildren == n)
        return Status::ok();
      return Status::error(what + (depth ? " has a nested field of type " : " of type ") +
                           typeName(out.type) + " with " + std::to_string(numChildren) +
                           " child fields; expected " + std::to_string(n));
    };
    auto missing = [&]() {
      return Status::error(what + " has type " + typeName(out.type) +
                           " without its parameters");
    };
    const std::vector<FieldInfo> &kids = out.children;
    std::string &desc = out.description;
    switch (out.type) {
    case fb::Type_NONE:
      return Status::error(what + " has no type");
    case fb::Type_Null:
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "null";
      break;
    case fb::Type_Int: {
      const fb::Int *t = f->type_as_Int();
      if (!t)
        return missing();
      out.bitWidth = t->bitWidth();
      out.isSigned = t->is_signed();
      if (out.bitWidth != 8 && out.bitWidth != 16 && out.bitWidth != 32 && out.bitWidth != 64)
        return Status::error(what + " has an integer type of " +
                             std::to_string(out.bitWidth) + " bits; expected 8, 16, 32 or 64");
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = intName(out.bitWidth, out.isSigned);
      break;
    }
    case fb::Type_FloatingPoint: {
      const fb::FloatingPoint *t = f->type_as_FloatingPoint();
      fb::Precision p = t ? t->precision() : fb::Precision_HALF;
      if (p == fb::Precision_HALF)
        out.bitWidth = 16;
      else if (p == fb::Precision_SINGLE)
        out.bitWidth = 32;
      else if (p == fb::Precision_DOUBLE)
        out.bitWidth = 64;
      else
        return Status::error(what + " has an unknown floating point precision " +
                             std::to_string(int(p)));
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "float" + std::to_string(out.bitWidth);
      break;
    }
    case fb::Type_Binary:
    case fb::Type_Utf8:
    case fb::Type_LargeBinary:
    case fb::Type_LargeUtf8:
    case fb::Type_BinaryView:
    case fb::Type_Utf8View:
    case fb::Type_Bool:
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = out.type == fb::Type_Binary        ? "binary"
             : out.type == fb::Type_Utf8        ? "utf8"
             : out.type == fb::Type_LargeBinary ? "large_binary"
             : out.type == fb::Type_LargeUtf8   ? "large_utf8"
             : out.type == fb::Type_BinaryView  ? "binary_view"
             : out.type == fb::Type_Utf8View    ? "utf8_view"
                                                : "bool";
      out.bitWidth = out.type == fb::Type_Bool ? 1 : 0;
      break;
    case fb::Type_Decimal: {
      const fb::Decimal *t = f->type_as_Decimal();
      if (!t)
        return missing();
      out.bitWidth = t->bitWidth();
      if (out.bitWidth != 32 && out.bitWidth != 64 && out.bitWidth != 128 &&
          out.bitWidth != 256)
        return Status::error(what + " has a decimal type of " +
                             std::to_string(out.bitWidth) + " bits");
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "decimal" + std::to_string(out.bitWidth) + "(" +
             std::to_string(t->precision()) + ", " + std::to_string(t->scale()) + ")";
      break;
    }
    case fb::Type_Date: {
      const fb::Date *t = f->type_as_Date();
      bool days = t && t->unit() == fb::DateUnit_DAY;
      out.bitWidth = days ? 32 : 64;
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = days ? "date32" : "date64";
      break;
    }
    case fb::Type_Time: {
      const fb::Time *t = f->type_as_Time();
      out.bitWidth = t ? t->bitWidth() : 32;
      if (out.bitWidth != 32 && out.bitWidth != 64)
        return Status::error(what + " has a time type of " + std::to_string(out.bitWidth) +
                             " bits; expected 32 or 64");
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "time" + std::to_string(out.bitWidth) + "[" +
             timeUnitName(t ? t->unit() : fb::TimeUnit_MILLISECOND) + "]";
      break;
    }
    case fb::Type_Timestamp: {
      const fb::Timestamp *t = f->type_as_Timestamp();
      out.bitWidth = 64;
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "timestamp[" + timeUnitName(t ? t->unit() : fb::TimeUnit_SECOND);
      if (t && t->timezone() && t->timezone()->size())
        desc += ", tz=" + t->timezone()->str();
      desc += "]";
      break;
    }
    case fb::Type_Interval: {
      const fb::Interval *t = f->type_as_Interval();
      fb::IntervalUnit u = t ? t->unit() : fb::IntervalUnit_YEAR_MONTH;
      if (u == fb::IntervalUnit_YEAR_MONTH)
        out.bitWidth = 32, desc = "interval[year_month]";
      else if (u == fb::IntervalUnit_DAY_TIME)
        out.bitWidth = 64, desc = "interval[day_time]";
      else if (u == fb::IntervalUnit_MONTH_DAY_NANO)
        out.bitWidth = 128, desc = "interval[month_day_nano]";
      else
        return Status::error(what + " has an unknown interval unit " +
                             std::to_string(int(u)));
      APC_RETURN_IF_ERROR(expectChildren(0));
      break;
    }
    case fb::Type_Duration: {
      const fb::Duration *t = f->type_as_Duration();
      out.bitWidth = 64;
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "duration[" + timeUnitName(t ? t->unit() : fb::TimeUnit_MILLISECOND) + "]";
      break;
    }
    case fb::Type_FixedSizeBinary: {
      const fb::FixedSizeBinary *t = f->type_as_FixedSizeBinary();
      if (!t)
        return missing();
      if (t->byteWidth() < 0)
        return Status::error(what + " has a negative fixed_size_binary width " +
                             std::to_string(t->byteWidth()));
      out.bitWidth = int64_t(t->byteWidth()) * 8;
      APC_RETURN_IF_ERROR(expectChildren(0));
      desc = "fixed_size_binary[" + std::to_string(t->byteWidth()) + "]";
      break;
    }
    case fb::Type_List:
    case fb::Type_LargeList:
    case fb::Type_ListView:
    case fb::Type_LargeListView:
      APC_RETURN_IF_ERROR(expectChildren(1));
      desc = std::string(out.type == fb::Type_List        ? "list"
                         : out.type == fb::Type_LargeList ? "large_list"
                         : out.type == fb::Type_ListView  ? "list_view"
                                                          : "large_list_view") +
             "<" + kids[0].description + ">";
      break;
    case fb::Type_FixedSizeList: {
      const fb::FixedSizeList *t = f->type_as_FixedSizeList();
      if (!t)
        return missing();
      if (t->listSize() < 0)
        return Status::error(what + " has a negative fixed_size_list size " +
                             std::to_string(t->listSize()));
      out.listSize = t->listSize();
      APC_RETURN_IF_ERROR(expectChildren(1));
      desc = "fixed_size_list<" + kids[0].description + ">[" +
             std::to_string(out.listSize) + "]";
      break;
    }
    case fb::Type_Map:
      APC_RETURN_IF_ERROR(expectChildren(1));
      if (kids[0].children.size() == 2)
        desc = "map<" + kids[0].children[0].description + ", " +
               kids[0].children[1].description + ">";
      else
        desc = "map<" + kids[0].description + ">";
      break;
    case fb::Type_Struct_:
      desc = "struct<" + childList(kids) + ">";
      break;
    case fb::Type_Union: {
      const fb::Union *t = f->type_as_Union();
      out.denseUnion = t && t->mode() == fb::UnionMode_Dense;
      desc = std::string(out.denseUnion ? "dense_union" : "sparse_union") + "<" +
             childList(kids) + ">";
      break;
    }
    case fb::Type_RunEndEncoded:
      APC_RETURN_IF_ERROR(expectChildren(2));
      desc = "run_end_encoded<" + kids[0].description + ", " + kids[1].description + ">";
      break;
    default:
      return Status::error(what + " has an unknown type (Type union member " +
                           std::to_string(int(out.type)) +
                           "); this reader knows the types of Arrow format 1.4");
    }
    if (out.dictionary) {
      desc = "dictionary<values=" + desc + ", indices=" +
             intName(out.indexBitWidth, out.indexSigned) + ">";
      out.bitWidth = out.indexBitWidth; // the batch holds the indices
    }
    return Status::ok();
  }

private:
  int nodes_ = 0;
};

// ---- record batches -----------------------------------------------------------------

class BatchParser {
public:
  BatchParser(const fb::RecordBatch *rb, const uint8_t *body, int64_t bodyLength,
              fb::MetadataVersion version, Batch &out)
      : rb_(rb), body_(body), bodyLength_(bodyLength), version_(version), out_(out) {}

  Status run(const std::vector<FieldInfo> &fields, int numNodes) {
    const auto *nodes = rb_->nodes();
    const auto *buffers = rb_->buffers();
    size_t nNodes = nodes ? nodes->size() : 0;
    size_t nBuffers = buffers ? buffers->size() : 0;
    if (rb_->length() < 0)
      return Status::error("has negative length " + num(rb_->length()));
    if (nNodes != size_t(numNodes))
      return Status::error("has " + std::to_string(nNodes) +
                           " field nodes but the schema needs " + std::to_string(numNodes));
    if (!aligned8(nodes) || !aligned8(buffers) || !aligned8(rb_->variadicBufferCounts()))
      return Status::error("has misaligned field nodes, buffers or variadic buffer counts: "
                           "the file is corrupt");
    out_.length = rb_->length();
    out_.nodes.resize(nNodes);
    out_.buffers.resize(nBuffers);
    for (size_t i = 0; i < nBuffers; ++i) {
      const fb::Buffer *b = buffers->Get(flatbuffers::uoffset_t(i));
      int64_t offset = b->offset(), length = b->length();
      int64_t end = 0;
      if (offset < 0 || length < 0 || __builtin_add_overflow(offset, length, &end) ||
          end > bodyLength_)
        return Status::error("has buffer " + std::to_string(i) + " at [" + num(offset) +
                             ", " + num(offset) + " + " + num(length) +
                             ") outside the body of " + num(bodyLength_) + " bytes");
      out_.buffers[i] = {body_ + offset, length};
    }
    for (const FieldInfo &f : fields) {
      APC_RETURN_IF_ERROR(walk(f, f.name, 0));
      const Node &node = out_.nodes[size_t(f.nodeIndex)];
      if (node.length != out_.length)
        return Status::error("has " + num(out_.length) + " rows but column " +
                             quote(f.name) + " has " + num(node.length));
    }
    if (nextBuffer_ != nBuffers)
      return Status::error("has " + std::to_string(nBuffers) +
                           " buffers but the schema needs " + std::to_string(nextBuffer_));
    const auto *variadic = rb_->variadicBufferCounts();
    size_t nVariadic = variadic ? variadic->size() : 0;
    if (nextVariadic_ != nVariadic)
      return Status::error("has " + std::to_string(nVariadic) +
                           " variadic buffer counts but the schema needs " +
                           std::to_string(nextVariadic_));
    return Status::ok();
  }

private:
  Status walk(const FieldInfo &f, const std::string &top, int depth) {
    std::string what = "column " + quote(top);
    Node &node = out_.nodes[size_t(f.nodeIndex)];
    const fb::FieldNode *fn = rb_->nodes()->Get(flatbuffers::uoffset_t(f.nodeIndex));
    node.length = fn->length();
    node.nullCount = fn->null_count();
    if (node.length < 0 || node.nullCount < 0 || node.nullCount > node.length)
      return Status::error("has field node " + std::to_string(f.nodeIndex) + " (" + what +
                           ") with length " + num(node.length) + " and null count " +
                           num(node.nullCount));

    int64_t numBuffers = 0;
    bool hasValidity = true;
    fb::Type t = f.dictionary ? fb::Type_Int : f.type;
    switch (t) {
    case fb::Type_Null:
      numBuffers = 0, hasValidity = false;
      break;
    case fb::Type_Struct_:
    case fb::Type_FixedSizeList:
      numBuffers = 1;
      break;
    case fb::Type_Binary:
    case fb::Type_Utf8:
    case fb::Type_LargeBinary:
    case fb::Type_LargeUtf8:
    case fb::Type_ListView:
    case fb::Type_LargeListView:
      numBuffers = 3;
      break;
    case fb::Type_BinaryView:
    case fb::Type_Utf8View: {
      const auto *variadic = rb_->variadicBufferCounts();
      if (!variadic || nextVariadic_ >= variadic->size())
        return Status::error("lacks the variadic buffer count of " + what);
      int64_t count = variadic->Get(flatbuffers::uoffset_t(nextVariadic_++));
      if (count < 0 || count > int64_t(1) << 30)
        return Status::error("has variadic buffer count " + num(count) + " for " + what);
      numBuffers = 2 + count;
      break;
    }
    case fb::Type_Union:
      // V5 unions have no validity bitmap; V4 ones have one (which must be absent).
      hasValidity = version_ < fb::MetadataVersion_V5;
      numBuffers = (f.denseUnion ? 2 : 1) + (hasValidity ? 1 : 0);
      break;
    case fb::Type_RunEndEncoded:
      numBuffers = 0, hasValidity = false;
      break;
    default: // fixed width, bool, list, large_list, map
      numBuffers = 2;
      break;
    }
    size_t available = out_.buffers.size() - nextBuffer_;
    if (uint64_t(numBuffers) > available)
      return Status::error("has too few buffers: " + what + " needs " + num(numBuffers) +
                           " more but only " + std::to_string(available) + " are left");
    node.firstBuffer = int32_t(nextBuffer_);
    node.numBuffers = int32_t(numBuffers);
    nextBuffer_ += size_t(numBuffers);

    auto buf = [&](int i) -> const BufferRef & { return out_.buffer(node, i); };
    auto tooSmall = [&](const char *which, int i, int64_t needed) {
      return Status::error("has a " + std::string(which) + " buffer of " +
                           num(buf(i).size) + " bytes for " + what + " (" +
                           (depth ? "a nested array" : "the column") + " of " +
                           num(node.length) + " values needs " +
                           (needed < 0 ? std::string("more than 2^63") : num(needed)) + ")");
    };
    auto need = [&](const char *which, int i, int64_t length, int64_t bits) -> Status {
      int64_t needed = bytesFor(length, bits);
      if (needed < 0 || buf(i).size < needed)
        return tooSmall(which, i, needed);
      return Status::ok();
    };
    auto needOffsets = [&](int i, int64_t width) -> Status {
      if (node.length == 0)
        return Status::ok(); // an empty array may omit its single offset
      if (node.length == std::numeric_limits<int64_t>::max())
        return tooSmall("offsets", i, -1);
      return need("offsets", i, node.length + 1, width * 8);
    };
    int64_t L = node.length;
    if (hasValidity && node.nullCount > 0)
      APC_RETURN_IF_ERROR(need("validity", 0, L, 1));
    switch (t) {
    case fb::Type_Binary:
    case fb::Type_Utf8:
    case fb::Type_List:
    case fb::Type_Map:
      APC_RETURN_IF_ERROR(needOffsets(1, 4));
      break;
    case fb::Type_LargeBinary:
    case fb::Type_LargeUtf8:
    case fb::Type_LargeList:
      APC_RETURN_IF_ERROR(needOffsets(1, 8));
      break;
    case fb::Type_ListView:
      APC_RETURN_IF_ERROR(need("offsets", 1, L, 32));
      APC_RETURN_IF_ERROR(need("sizes", 2, L, 32));
      break;
    case fb::Type_LargeListView:
      APC_RETURN_IF_ERROR(need("offsets", 1, L, 64));
      APC_RETURN_IF_ERROR(need("sizes", 2, L, 64));
      break;
    case fb::Type_BinaryView:
    case fb::Type_Utf8View:
      APC_RETURN_IF_ERROR(need("views", 1, L, 128));
      break;
    case fb::Type_Union: {
      int first = hasValidity ? 1 : 0;
      APC_RETURN_IF_ERROR(need("type ids", first, L, 8));
      if (f.denseUnion)
        APC_RETURN_IF_ERROR(need("offsets", first + 1, L, 32));
      break;
    }
    case fb::Type_Null:
    case fb::Type_Struct_:
    case fb::Type_FixedSizeList:
    case fb::Type_RunEndEncoded:
      break;
    default: // fixed width (dictionary indices included) and bool
      APC_RETURN_IF_ERROR(need("data", 1, L, f.bitWidth));
      break;
    }
    if (!f.dictionary)
      for (const FieldInfo &child : f.children)
        APC_RETURN_IF_ERROR(walk(child, top, depth + 1));
    return Status::ok();
  }

  const fb::RecordBatch *rb_;
  const uint8_t *body_;
  int64_t bodyLength_;
  fb::MetadataVersion version_;
  Batch &out_;
  size_t nextBuffer_ = 0;
  size_t nextVariadic_ = 0;
};

// One encapsulated message: prefix, Message flatbuffer, body.
struct RawMessage {
  size_t prefix = 0;      // 8 (continuation + length) or 4 (legacy length)
  int64_t metaLength = 0; // flatbuffer bytes including padding; 0 for end of stream
  const uint8_t *meta = nullptr;
};

// Reads the prefix of the message at `pos`; `limit` is where the message must end.
Result<RawMessage> readPrefix(const uint8_t *base, size_t pos, size_t limit,
                              const std::string &what, const char *limitName) {
  RawMessage m;
  size_t remaining = limit - pos;
  if (remaining < 4)
    return Result<RawMessage>::error(what + " is cut off: " + std::to_string(remaining) +
                                     " bytes left, too few for a message length");
  uint32_t first = load<uint32_t>(base + pos);
  int32_t length;
  if (first == kContinuation) {
    if (remaining < 8)
      return Result<RawMessage>::error(
          what + " is cut off after its continuation marker: " +
          std::to_string(remaining) + " bytes left, too few for a message length");
    length = load<int32_t>(base + pos + 4);
    m.prefix = 8;
  } else {
    length = int32_t(first);
    m.prefix = 4;
  }
  if (length < 0)
    return Result<RawMessage>::error(what + " has negative metadata length " +
                                     std::to_string(length));
  if (uint64_t(length) > remaining - m.prefix)
    return Result<RawMessage>::error(what + " has metadata of " + std::to_string(length) +
                                     " bytes that goes beyond " + limitName + " (" +
                                     std::to_string(remaining - m.prefix) +
                                     " bytes left): the file is truncated or corrupt");
  m.metaLength = length;
  m.meta = base + pos + m.prefix;
  return m;
}

} // namespace

// ---- columns ------------------------------------------------------------------------

namespace {
template <typename Column>
const Chunk *findChunk(const std::vector<Chunk> &chunks, int64_t numRows, int64_t row,
                       int64_t &local) {
  if (row < 0 || row >= numRows)
    return nullptr;
  auto it = std::upper_bound(chunks.begin(), chunks.end(), row,
                             [](int64_t r, const Chunk &c) { return r < c.firstRow; });
  const Chunk *chunk = &*(it - 1);
  local = row - chunk->firstRow;
  return chunk;
}
} // namespace

const Chunk *IntListColumn::find(int64_t row, int64_t &local) const {
  return findChunk<IntListColumn>(chunks_, numRows_, row, local);
}

namespace {
int64_t countNullRows(const std::vector<Chunk> &chunks, int64_t *firstNull) {
  int64_t count = 0, first = -1;
  for (const Chunk &c : chunks)
    if (c.validity)
      for (int64_t i = 0; i < c.length; ++i)
        if (!bitSet(c.validity, i) && count++ == 0)
          first = c.firstRow + i;
  if (firstNull)
    *firstNull = first;
  return count;
}
} // namespace

std::string nullRowsMessage(const std::string &path, const std::string &column, int64_t nulls,
                            int64_t firstNull) {
  return path + ": column '" + column + "' has " + std::to_string(nulls) + " null row" +
         (nulls == 1 ? "" : "s") + " (the first is row " + std::to_string(firstNull) +
         "); drop or fill them first, e.g. with datasets: "
         "ds.filter(lambda r: r['" + column + "'] is not None)";
}

int64_t IntListColumn::nullCount(int64_t *firstNull) const {
  return countNullRows(chunks_, firstNull);
}

int64_t StringColumn::nullCount(int64_t *firstNull) const {
  return countNullRows(chunks_, firstNull);
}

bool IntListColumn::isNull(int64_t row) const {
  int64_t i;
  const Chunk *c = find(row, i);
  return c && c->validity && !bitSet(c->validity, i);
}

int64_t IntListColumn::rowLength(int64_t row) const {
  int64_t i;
  const Chunk *c = find(row, i);
  if (!c || (c->validity && !bitSet(c->validity, i)))
    return 0;
  return loadOffset(c->offsets, offsets64_, i + 1) - loadOffset(c->offsets, offsets64_, i);
}

void IntListColumn::row(int64_t row, std::vector<int64_t> &out) const {
  int64_t i;
  const Chunk *c = find(row, i);
  if (!c || (c->validity && !bitSet(c->validity, i))) {
    out.clear();
    return;
  }
  int64_t begin = loadOffset(c->offsets, offsets64_, i);
  int64_t n = loadOffset(c->offsets, offsets64_, i + 1) - begin;
  out.resize(size_t(n));
  if (n == 0)
    return;
  if (values64_) {
    std::memcpy(out.data(), c->values + 8 * begin, size_t(n) * 8);
  } else {
    const uint8_t *p = c->values + 4 * begin;
    int64_t *dst = out.data();
    for (int64_t k = 0; k < n; ++k)
      dst[k] = load<int32_t>(p + 4 * k);
  }
}

const Chunk *StringColumn::find(int64_t row, int64_t &local) const {
  return findChunk<StringColumn>(chunks_, numRows_, row, local);
}

bool StringColumn::isNull(int64_t row) const {
  int64_t i;
  const Chunk *c = find(row, i);
  return c && c->validity && !bitSet(c->validity, i);
}

std::string_view StringColumn::row(int64_t row) const {
  int64_t i;
  const Chunk *c = find(row, i);
  if (!c || (c->validity && !bitSet(c->validity, i)))
    return {};
  int64_t begin = loadOffset(c->offsets, offsets64_, i);
  int64_t end = loadOffset(c->offsets, offsets64_, i + 1);
  return std::string_view(reinterpret_cast<const char *>(c->values) + begin,
                          size_t(end - begin));
}

// ---- ArrowFile ----------------------------------------------------------------------

const char *formatName(ArrowFile::Format format) {
  switch (format) {
  case ArrowFile::Format::File:
    return "file";
  case ArrowFile::Format::Stream:
    return "stream";
  case ArrowFile::Format::LegacyStream:
    return "legacy stream";
  }
  return "?";
}

ArrowFile::ArrowFile() = default;
ArrowFile::ArrowFile(ArrowFile &&) noexcept = default;
ArrowFile &ArrowFile::operator=(ArrowFile &&) noexcept = default;
ArrowFile::~ArrowFile() = default;

int64_t ArrowFile::numRecordBatches() const { return int64_t(batches_.size()); }

std::string ArrowFile::fail(const std::string &what) const { return path_ + ": " + what; }

namespace {

// State of `open` while it reads the messages.
class Loader {
public:
  Loader(const uint8_t *base, size_t size) : base_(base), size_(size) {}

  std::vector<FieldInfo> fields;
  std::vector<std::pair<std::string, std::string>> metadata; // the schema's custom_metadata
  std::vector<Batch> batches;
  int numNodes = 0;
  int64_t numRows = 0;
  bool haveSchema = false;

  Status schema(const fb::Schema *s, const std::string &where) {
    if (!s)
      return Status::error(where + " has no schema");
    if (s->endianness() != fb::Endianness_Little)
      return Status::error(where + " declares big-endian data; only little-endian Arrow "
                                   "data is supported");
    metadata.clear();
    if (const auto *kvs = s->custom_metadata())
      for (const fb::KeyValue *kv : *kvs)
        if (kv && kv->key())
          metadata.emplace_back(kv->key()->str(), kv->value() ? kv->value()->str() : "");
    SchemaParser parser;
    const auto *fs = s->fields();
    size_t n = fs ? fs->size() : 0;
    fields.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const fb::Field *f = fs->Get(flatbuffers::uoffset_t(i));
      std::string top = f && f->name() ? f->name()->str() : std::string();
      APC_RETURN_IF_ERROR(parser.parse(f, top, true, 0, fields[i]));
    }
    numNodes = parser.numNodes();
    haveSchema = true;
    return Status::ok();
  }

  Status recordBatch(const fb::Message *msg, const uint8_t *body, int64_t bodyLength,
                     const std::string &where) {
    const fb::RecordBatch *rb = msg->header_as_RecordBatch();
    if (!rb)
      return Status::error(where + " is a record batch without contents");
    if (const fb::BodyCompression *c = rb->compression())
      return Status::error(where + " has a body compressed with " + codecName(c->codec()) +
                           "; this reader needs uncompressed data: write the file without "
                           "compression (pyarrow: IpcWriteOptions(compression=None))");
    Batch batch;
    Status st = BatchParser(rb, body, bodyLength, msg->version(), batch).run(fields, numNodes);
    if (!st)
      return Status::error(where + " " + st.message());
    batch.firstRow = numRows;
    if (__builtin_add_overflow(numRows, batch.length, &numRows))
      return Status::error(where + " makes the row count overflow");
    batches.push_back(std::move(batch));
    return Status::ok();
  }

  // The stream format, from `pos` (0 for a stream file).
  Status stream(size_t pos, bool &legacy) {
    for (int index = 0;; ++index) {
      if (pos == size_) // end of file without an end-of-stream marker
        break;
      std::string where = "message " + std::to_string(index) + " at offset " +
                          std::to_string(pos);
      Result<RawMessage> raw = readPrefix(base_, pos, size_, where, "the end of the file");
      if (!raw)
        return raw.status();
      if (raw->prefix == 4)
        legacy = true;
      if (raw->metaLength == 0) // end-of-stream marker
        break;
      FlatBytes meta(raw->meta, size_t(raw->metaLength));
      flatbuffers::Verifier verifier(meta.data(), meta.size());
      if (!fb::VerifyMessageBuffer(verifier))
        return Status::error(where + " fails flatbuffer verification: the file is corrupt "
                                     "or not an Arrow IPC stream");
      const fb::Message *msg = fb::GetMessage(meta.data());
      size_t bodyPos = pos + raw->prefix + size_t(raw->metaLength);
      int64_t bodyLength = msg->bodyLength();
      if (bodyLength < 0 || uint64_t(bodyLength) > size_ - bodyPos)
        return Status::error(where + " has a body of " + num(bodyLength) +
                             " bytes that goes beyond the end of the file (" +
                             std::to_string(size_ - bodyPos) +
                             " bytes left): the file is truncated or corrupt");
      APC_RETURN_IF_ERROR(message(msg, base_ + bodyPos, bodyLength, where));
      pos = bodyPos + size_t(bodyLength);
    }
    if (!haveSchema)
      return Status::error("the stream ends before its schema message");
    return Status::ok();
  }

  // The file format: footer, then the record batches its blocks point at.
  Status file() {
    if (size_ < kFileHeaderSize + kFileTrailerSize)
      return Status::error("file of " + std::to_string(size_) +
                           " bytes starts with the 'ARROW1' magic but is too short for "
                           "the Arrow file format: truncated");
    if (std::memcmp(base_ + size_ - 6, kMagic, 6) != 0)
      return Status::error("starts with the 'ARROW1' magic of the Arrow file format but "
                           "does not end with it: the file is truncated or corrupt");
    int32_t footerLength = load<int32_t>(base_ + size_ - kFileTrailerSize);
    size_t footerEnd = size_ - kFileTrailerSize;
    if (footerLength <= 0 || size_t(footerLength) > footerEnd - kFileHeaderSize)
      return Status::error("has footer length " + std::to_string(footerLength) +
                           ", which does not fit between the magic at the start and the "
                           "end of the file (" + std::to_string(size_) + " bytes)");
    size_t footerPos = footerEnd - size_t(footerLength);
    FlatBytes meta(base_ + footerPos, size_t(footerLength));
    flatbuffers::Verifier verifier(meta.data(), meta.size());
    if (!fb::VerifyFooterBuffer(verifier))
      return Status::error("footer at offset " + std::to_string(footerPos) +
                           " fails flatbuffer verification: the file is corrupt");
    const fb::Footer *footer = fb::GetFooter(meta.data());
    APC_RETURN_IF_ERROR(checkVersion(footer->version(), "the footer"));
    APC_RETURN_IF_ERROR(schema(footer->schema(), "the footer"));
    const auto *blocks = footer->recordBatches();
    if (!aligned8(blocks))
      return Status::error("footer at offset " + std::to_string(footerPos) +
                           " has misaligned record batch blocks: the file is corrupt");
    size_t n = blocks ? blocks->size() : 0;
    for (size_t i = 0; i < n; ++i) {
      const fb::Block *b = blocks->Get(flatbuffers::uoffset_t(i));
      std::string where = "record batch " + std::to_string(i) + " (block at offset " +
                          num(b->offset()) + ")";
      int64_t end = 0;
      if (b->offset() < int64_t(kFileHeaderSize) || b->metaDataLength() <= 0 ||
          b->bodyLength() < 0 ||
          __builtin_add_overflow(b->offset(), int64_t(b->metaDataLength()), &end) ||
          __builtin_add_overflow(end, b->bodyLength(), &end) || end > int64_t(footerPos))
        return Status::error(where + " has metadata length " +
                             std::to_string(b->metaDataLength()) + " and body length " +
                             num(b->bodyLength()) +
                             ", which do not fit between the start magic and the footer at "
                             "offset " + std::to_string(footerPos));
      size_t pos = size_t(b->offset());
      size_t metaEnd = pos + size_t(b->metaDataLength());
      Result<RawMessage> raw = readPrefix(base_, pos, metaEnd, where, "the metadata length in the footer");
      if (!raw)
        return raw.status();
      if (raw->prefix + size_t(raw->metaLength) != size_t(b->metaDataLength()))
        return Status::error(where + " has a message of " +
                             std::to_string(raw->prefix + size_t(raw->metaLength)) +
                             " metadata bytes but the footer says " +
                             std::to_string(b->metaDataLength()));
      FlatBytes m(raw->meta, size_t(raw->metaLength));
      flatbuffers::Verifier v(m.data(), m.size());
      if (!fb::VerifyMessageBuffer(v))
        return Status::error(where + " fails flatbuffer verification: the file is corrupt");
      const fb::Message *msg = fb::GetMessage(m.data());
      APC_RETURN_IF_ERROR(checkVersion(msg->version(), where));
      if (msg->header_type() != fb::MessageHeader_RecordBatch)
        return Status::error(where + " is " + headerName(msg->header_type()) +
                             ", not a record batch");
      if (msg->bodyLength() != b->bodyLength())
        return Status::error(where + " has a body of " + num(msg->bodyLength()) +
                             " bytes but the footer says " + num(b->bodyLength()));
      APC_RETURN_IF_ERROR(recordBatch(msg, base_ + metaEnd, b->bodyLength(), where));
    }
    return Status::ok();
  }

private:
  Status message(const fb::Message *msg, const uint8_t *body, int64_t bodyLength,
                 const std::string &where) {
    APC_RETURN_IF_ERROR(checkVersion(msg->version(), where));
    switch (msg->header_type()) {
    case fb::MessageHeader_Schema:
      if (haveSchema)
        return Status::error(where + " is a second schema; a stream has exactly one");
      return schema(msg->header_as_Schema(), where);
    case fb::MessageHeader_RecordBatch:
      if (!haveSchema)
        return Status::error(where + " is a record batch, but the first message of a "
                                     "stream must be the schema");
      return recordBatch(msg, body, bodyLength,
                         where + " (record batch " + std::to_string(batches.size()) + ")");
    case fb::MessageHeader_DictionaryBatch:
      // Dictionary-encoded columns are refused when they are asked for.
      if (!haveSchema)
        return Status::error(where + " is a dictionary batch, but the first message of a "
                                     "stream must be the schema");
      return Status::ok();
    default:
      return Status::error(where + " is " + headerName(msg->header_type()) +
                           ", which an Arrow table stream cannot contain");
    }
  }

  const uint8_t *base_;
  size_t size_;
};

void addColumns(const std::vector<FieldInfo> &fields, std::vector<ArrowColumnInfo> &out) {
  for (const FieldInfo &f : fields)
    out.push_back({f.name, f.description, f.nullable});
}

} // namespace

Result<ArrowFile> ArrowFile::open(const std::string &path) {
  auto fail = [&](const std::string &what) {
    return Result<ArrowFile>::error(path + ": " + what);
  };
  auto mapped = MappedFile::open(path);
  if (!mapped)
    return mapped.status();
  std::shared_ptr<const MappedFile> mapping = *mapped;
  size_t size = mapping->size();
  if (size == 0)
    return fail("file is empty, not an Arrow IPC file or stream");
  const uint8_t *base = mapping->data();

  ArrowFile file;
  file.path_ = path;
  file.mapping_ = mapping;
  Loader loader(base, size);
  Status status;
  if (size >= 6 && std::memcmp(base, kMagic, 6) == 0) {
    file.format_ = Format::File;
    status = loader.file();
  } else {
    bool continuation = size >= 4 && load<uint32_t>(base) == kContinuation;
    if (!continuation) {
      // Either the legacy stream framing (a bare int32 length, then a schema message)
      // or not Arrow at all: tell the two apart before blaming the contents.
      bool legacySchema = false;
      if (size >= 4) {
        int32_t length = load<int32_t>(base);
        if (length > 0 && uint64_t(length) <= size - 4) {
          FlatBytes meta(base + 4, size_t(length));
          flatbuffers::Verifier verifier(meta.data(), meta.size());
          legacySchema = fb::VerifyMessageBuffer(verifier);
        }
      }
      if (!legacySchema) {
        std::string head;
        static const char kHex[] = "0123456789abcdef";
        for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
          if (i)
            head += ' ';
          head += kHex[base[i] >> 4];
          head += kHex[base[i] & 15];
        }
        return fail("not an Arrow IPC file or stream: it starts with bytes " + head +
                    ", not the 'ARROW1' magic of the file format nor the ff ff ff ff "
                    "continuation marker of the stream format");
      }
    }
    bool legacy = false;
    status = loader.stream(0, legacy);
    file.format_ = legacy ? Format::LegacyStream : Format::Stream;
  }
  if (!status)
    return fail(status.message());
  file.fields_ = std::move(loader.fields);
  file.metadata_ = std::move(loader.metadata);
  file.batches_ = std::move(loader.batches);
  file.numRows_ = loader.numRows;
  addColumns(file.fields_, file.columns_);
  return Result<ArrowFile>(std::move(file));
}

std::optional<std::string> ArrowFile::schemaMetadata(const std::string &key) const {
  for (const auto &[k, v] : metadata_)
    if (k == key)
      return v;
  return std::nullopt;
}

Result<size_t> ArrowFile::findColumn(const std::string &name) const {
  size_t found = fields_.size();
  int count = 0;
  for (size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].name == name) {
      if (!count)
        found = i;
      ++count;
    }
  if (count == 1)
    return found;
  if (count > 1)
    return Result<size_t>::error(fail("column " + quote(name) + " appears " +
                                      std::to_string(count) +
                                      " times in the schema; cannot tell which to read"));
  std::string list;
  for (const ArrowColumnInfo &c : columns_) {
    if (!list.empty())
      list += ", ";
    list += quote(c.name) + " (" + c.type + ")";
  }
  return Result<size_t>::error(
      fail("no column " + quote(name) + "; " +
           (list.empty() ? std::string("the schema has no columns")
                         : "the columns are " + list)));
}

namespace {

// Checks the offsets of a list or string array of one record batch (inside their
// buffer, non-negative, monotonic, at most `valuesLength`) and sets the offsets and
// validity of `chunk`.
Status checkOffsets(const Batch &batch, const Node &node, bool offsets64,
                    int64_t valuesLength, Chunk &chunk) {
  int64_t L = node.length;
  int64_t width = offsets64 ? 8 : 4;
  const BufferRef &offsets = batch.buffer(node, 1);
  if (offsets.size / width < L + 1)
    return Status::error("has an offsets buffer of " + num(offsets.size) + " bytes for " +
                         num(L) + " rows");
  chunk.offsets = offsets.data;
  if (node.nullCount > 0)
    chunk.validity = batch.buffer(node, 0).data;
  int64_t previous = loadOffset(offsets.data, offsets64, 0);
  if (previous < 0)
    return Status::error("has a negative first offset " + num(previous));
  for (int64_t i = 1; i <= L; ++i) {
    int64_t o = loadOffset(offsets.data, offsets64, i);
    if (o < previous)
      return Status::error("has offsets that are not monotonic: row " +
                           num(batch.firstRow + i - 1) + " ends at " + num(o) +
                           " before it starts at " + num(previous));
    previous = o;
  }
  if (previous > valuesLength)
    return Status::error("has a last offset of " + num(previous) +
                         " beyond the end of its " + num(valuesLength) + " values");
  return Status::ok();
}

std::string batchText(size_t index, const Batch &batch) {
  return "record batch " + std::to_string(index) + " (rows " + num(batch.firstRow) + " to " +
         num(batch.firstRow + batch.length - 1) + ")";
}

} // namespace

Result<IntListColumn> ArrowFile::intListColumn(const std::string &name) const {
  Result<size_t> index = findColumn(name);
  if (!index)
    return index.status();
  const FieldInfo &f = fields_[*index];
  std::string what = "column " + quote(name);
  bool isList = f.type == fb::Type_List || f.type == fb::Type_LargeList;
  const char *expected = "list<int32>, list<int64>, large_list<int32> or large_list<int64>";
  if (f.dictionary)
    return Result<IntListColumn>::error(
        fail(what + " is dictionary-encoded (" + f.description +
             "), which is not supported: write it without dictionary encoding as " +
             expected));
  if (!isList || f.children.size() != 1 || f.children[0].dictionary ||
      f.children[0].type != fb::Type_Int || !f.children[0].isSigned ||
      (f.children[0].bitWidth != 32 && f.children[0].bitWidth != 64))
    return Result<IntListColumn>::error(
        fail(what + " has type " + f.description + "; expected " + expected));
  const FieldInfo &child = f.children[0];

  IntListColumn column;
  column.mapping_ = mapping_;
  column.name_ = name;
  column.type_ = f.description;
  column.offsets64_ = f.type == fb::Type_LargeList;
  column.values64_ = child.bitWidth == 64;
  column.numRows_ = numRows_;
  int64_t valueWidth = column.values64_ ? 8 : 4;
  for (size_t b = 0; b < batches_.size(); ++b) {
    const Batch &batch = batches_[b];
    if (batch.length == 0)
      continue;
    const Node &node = batch.nodes[size_t(f.nodeIndex)];
    const Node &values = batch.nodes[size_t(child.nodeIndex)];
    auto bad = [&](const std::string &problem) {
      return Result<IntListColumn>::error(fail(what + ": " + batchText(b, batch) + " " + problem));
    };
    Chunk chunk;
    chunk.firstRow = batch.firstRow;
    chunk.length = batch.length;
    Status st = checkOffsets(batch, node, column.offsets64_, values.length, chunk);
    if (!st)
      return bad(st.message());
    const BufferRef &data = batch.buffer(values, 1);
    if (data.size / valueWidth < values.length) // also checked by open
      return bad("has a values buffer of " + num(data.size) + " bytes for " +
                 num(values.length) + " values");
    chunk.values = data.data;
    // Count the values of the rows and refuse null values inside non-null rows.
    const uint8_t *valueValidity = values.nullCount > 0 ? batch.buffer(values, 0).data : nullptr;
    for (int64_t i = 0; i < batch.length; ++i) {
      if (chunk.validity && !bitSet(chunk.validity, i))
        continue;
      int64_t begin = loadOffset(chunk.offsets, column.offsets64_, i);
      int64_t end = loadOffset(chunk.offsets, column.offsets64_, i + 1);
      column.numValues_ += end - begin;
      if (valueValidity)
        for (int64_t k = begin; k < end; ++k)
          if (!bitSet(valueValidity, k))
            return bad("has a null value at position " + num(k - begin) + " of row " +
                       num(batch.firstRow + i) +
                       "; null values inside lists are not supported");
    }
    column.chunks_.push_back(chunk);
  }
  return column;
}

Result<StringColumn> ArrowFile::stringColumn(const std::string &name) const {
  Result<size_t> index = findColumn(name);
  if (!index)
    return index.status();
  const FieldInfo &f = fields_[*index];
  std::string what = "column " + quote(name);
  const char *expected = "utf8 (string) or large_utf8 (large_string)";
  if (f.dictionary)
    return Result<StringColumn>::error(
        fail(what + " is dictionary-encoded (" + f.description +
             "), which is not supported: write it without dictionary encoding as " +
             expected));
  if (f.type != fb::Type_Utf8 && f.type != fb::Type_LargeUtf8)
    return Result<StringColumn>::error(
        fail(what + " has type " + f.description + "; expected " + expected));

  StringColumn column;
  column.mapping_ = mapping_;
  column.name_ = name;
  column.type_ = f.description;
  column.offsets64_ = f.type == fb::Type_LargeUtf8;
  column.numRows_ = numRows_;
  for (size_t b = 0; b < batches_.size(); ++b) {
    const Batch &batch = batches_[b];
    if (batch.length == 0)
      continue;
    const Node &node = batch.nodes[size_t(f.nodeIndex)];
    const BufferRef &data = batch.buffer(node, 2);
    Chunk chunk;
    chunk.firstRow = batch.firstRow;
    chunk.length = batch.length;
    Status st = checkOffsets(batch, node, column.offsets64_, data.size, chunk);
    if (!st)
      return Result<StringColumn>::error(
          fail(what + ": " + batchText(b, batch) + " " + st.message()));
    chunk.values = data.data;
    column.chunks_.push_back(chunk);
  }
  return column;
}

} // namespace apc::data
