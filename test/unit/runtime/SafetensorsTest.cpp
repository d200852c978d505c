// Tests of the safetensors reader and writer: round trips, a hand-built file that
// follows the format description independently of our writer, every validation error
// of `File::open`, and the atomicity of `write`.
#include "runtime/safetensors/Safetensors.h"

#include "runtime/support/HalfFloat.h"

#include "test/unit/TempDirTest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace apc::safetensors {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// ---- helpers ------------------------------------------------------------------------

class SafetensorsTest : public apc::testing::TempDirTest {
protected:
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    for (const auto &entry : fs::directory_iterator(dir_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

};

void writeRaw(const std::string &path, const Bytes &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

Bytes readRaw(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void appendU64LE(Bytes &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(uint8_t(v >> (8 * i)));
}

// An 8-byte little-endian length, the header text, then `data`.
Bytes fileBytes(const std::string &header, const Bytes &data = {}) {
  Bytes out;
  appendU64LE(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <typename T> Bytes toBytes(const std::vector<T> &values) {
  Bytes out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

TensorToWrite tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                     const std::vector<double> &values) {
  TensorToWrite t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = fromDoubles(values, dtype);
  return t;
}

Bytes viewBytes(const TensorView &view) {
  return Bytes(view.data, view.data + view.nbytes);
}

// ---- dtype helpers ------------------------------------------------------------------

TEST(SafetensorsDTypeTest, NamesSizesAndParsing) {
  const std::vector<std::pair<DType, size_t>> all = {
      {DType::F64, 8}, {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::I64, 8},
      {DType::I32, 4}, {DType::I16, 2}, {DType::I8, 1},  {DType::U8, 1},   {DType::BOOL, 1}};
  for (const auto &[dtype, size] : all) {
    EXPECT_EQ(dtypeSize(dtype), size) << dtypeName(dtype);
    std::optional<DType> parsed = parseDType(dtypeName(dtype));
    ASSERT_TRUE(parsed.has_value()) << dtypeName(dtype);
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_STREQ(dtypeName(DType::BF16), "BF16");
  EXPECT_STREQ(dtypeName(DType::BOOL), "BOOL");
  EXPECT_FALSE(parseDType("f32").has_value());
  EXPECT_FALSE(parseDType("F8_E4M3").has_value());
  EXPECT_FALSE(parseDType("").has_value());
}

TEST(SafetensorsDTypeTest, NumElements) {
  TensorView v;
  v.shape = {};
  EXPECT_EQ(v.numElements(), 1);
  v.shape = {2, 3, 4};
  EXPECT_EQ(v.numElements(), 24);
  v.shape = {5, 0, 7};
  EXPECT_EQ(v.numElements(), 0);
}

// ---- round trips --------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripSeveralDTypesAndShapes) {
  std::vector<TensorToWrite> tensors = {
      tensor("w.f32", DType::F32, {2, 3}, {1.5, -2.25, 0, 3e10, -1e-20, 7}),
      tensor("w.f64", DType::F64, {2}, {M_PI, -1e300}),
      tensor("w.bf16", DType::BF16, {4}, {1.0, -2.0, 0.5, 1.00390625}),
      tensor("w.f16", DType::F16, {2, 2}, {1.0, 65504, -0.25, std::ldexp(1.0, -24)}),
      tensor("empty", DType::F32, {0, 3}, {}),
      tensor("i64", DType::I64, {3}, {-5, 0, 1e15}),
      tensor("i32", DType::I32, {1, 1, 2}, {-2147483648.0, 2147483647.0}),
      tensor("i16", DType::I16, {2}, {-32768, 1234}),
      tensor("i8", DType::I8, {3}, {-128, 0, 127}),
      tensor("u8", DType::U8, {5}, {0, 1, 2, 254, 255}),
      tensor("mask", DType::BOOL, {4}, {1, 0, 0, 1}),
      tensor("scalar", DType::F64, {}, {42.5}),
  };
  const std::string file = path("model.safetensors");
  Status st = write(file, tensors);
  ASSERT_TRUE(st.isOk()) << st.message();

  Result<File> opened = File::open(file);
  ASSERT_TRUE(opened.isOk()) << opened.message();
  const File &f = *opened;
  EXPECT_EQ(f.path(), file);
  EXPECT_TRUE(f.metadata().empty());
  ASSERT_EQ(f.tensors().size(), tensors.size());
  // The writer lays the data out in the given order, and tensors() is in offset order.
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite &expected = tensors[i];
    const TensorView &view = f.tensors()[i];
    SCOPED_TRACE(expected.name);
    EXPECT_EQ(view.name, expected.name);
    EXPECT_EQ(view.dtype, expected.dtype);
    EXPECT_EQ(view.shape, expected.shape);
    EXPECT_EQ(view.nbytes, expected.bytes.size());
    EXPECT_EQ(viewBytes(view), expected.bytes);
    const TensorView *found = f.find(expected.name);
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found, &view);
  }
  EXPECT_EQ(f.find("missing"), nullptr);

  EXPECT_EQ(toDoubles(*f.find("w.f32")),
            (std::vector<double>{1.5, -2.25, 0, double(3e10f), double(-1e-20f), 7}));
  EXPECT_EQ(toDoubles(*f.find("w.f64")), (std::vector<double>{M_PI, -1e300}));
  EXPECT_EQ(toDoubles(*f.find("w.bf16")), (std::vector<double>{1.0, -2.0, 0.5, 1.0}));
  EXPECT_EQ(toDoubles(*f.find("w.f16")),
            (std::vector<double>{1.0, 65504, -0.25, std::ldexp(1.0, -24)}));
  EXPECT_TRUE(toDoubles(*f.find("empty")).empty());
  EXPECT_EQ(toDoubles(*f.find("i64")), (std::vector<double>{-5, 0, 1e15}));
  EXPECT_EQ(toDoubles(*f.find("i32")), (std::vector<double>{-2147483648.0, 2147483647.0}));
  EXPECT_EQ(toDoubles(*f.find("i16")), (std::vector<double>{-32768, 1234}));
  EXPECT_EQ(toDoubles(*f.find("i8")), (std::vector<double>{-128, 0, 127}));
  EXPECT_EQ(toDoubles(*f.find("u8")), (std::vector<double>{0, 1, 2, 254, 255}));
  EXPECT_EQ(toDoubles(*f.find("mask")), (std::vector<double>{1, 0, 0, 1}));
  const TensorView *scalar = f.find("scalar");
  EXPECT_EQ(scalar->numElements(), 1);
  EXPECT_EQ(scalar->nbytes, 8u);
  EXPECT_EQ(toDoubles(*scalar), std::vector<double>{42.5});
  EXPECT_EQ(f.find("empty")->numElements(), 0);
  EXPECT_EQ(f.find("empty")->nbytes, 0u);
}

TEST_F(SafetensorsTest, RoundTripMetadata) {
  std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"empty", ""}, {"unicode", "gr\xc3\xbc\xc3\x9f \"quoted\"\n"}};
  const std::string file = path("meta.safetensors");
  Status st = write(file, {tensor("x", DType::F32, {1}, {1})}, metadata);
  ASSERT_TRUE(st.isOk()) << st.message();
  Result<File> f = File::open(file);
  ASSERT_TRUE(f.isOk()) << f.message();
  EXPECT_EQ(f->metadata(), metadata);
  ASSERT_EQ(f->tensors().size(), 1u);

  // Metadata and no tensors at all.
  const std::string onlyMeta = path("only_meta.safetensors");
  st = write(onlyMeta, {}, {{"k", "v"}});
  ASSERT_TRUE(st.isOk()) << st.message();
  Result<File> g = File::open(onlyMeta);
  ASSERT_TRUE(g.isOk()) << g.message();
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->metadata(), (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST_F(SafetensorsTest, EmptyFileHasEmptyObjectHeader) {
  const std::string file = path("empty.safetensors");
  ASSERT_TRUE(write(file, {}).isOk());
  Result<File> f = File::open(file);
  ASSERT_TRUE(f.isOk()) << f.message();
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());
}

TEST_F(SafetensorsTest, HeaderIsPaddedWithSpacesToAMultipleOf8) {
  for (size_t nameLength = 1; nameLength <= 17; ++nameLength) {
    SCOPED_TRACE(nameLength);
    const std::string file = path("pad.safetensors");
    TensorToWrite t = tensor(std::string(nameLength, 'n'), DType::U8, {3}, {7, 8, 9});
    ASSERT_TRUE(write(file, {t}).isOk());
    Bytes raw = readRaw(file);
    ASSERT_GE(raw.size(), 8u);
    uint64_t headerLen = 0;
    for (int i = 7; i >= 0; --i)
      headerLen = (headerLen << 8) | raw[size_t(i)];
    EXPECT_EQ(headerLen % 8, 0u);
    ASSERT_EQ(raw.size(), 8 + headerLen + 3);
    std::string header(raw.begin() + 8, raw.begin() + 8 + long(headerLen));
    size_t closing = header.rfind('}');
    ASSERT_NE(closing, std::string::npos);
    EXPECT_LT(header.size() - closing - 1, 8u);
    for (size_t i = closing + 1; i < header.size(); ++i)
      EXPECT_EQ(header[i], ' ');
    EXPECT_EQ(Bytes(raw.end() - 3, raw.end()), (Bytes{7, 8, 9}));
    Result<File> f = File::open(file);
    ASSERT_TRUE(f.isOk()) << f.message();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->tensors()[0].data) % 8, 0u);
  }
}

// ---- byte-exact checks against hand-built files -------------------------------------

TEST_F(SafetensorsTest, WriterMatchesHandBuiltBytes) {
  // Built from the format description: u64 LE header size, compact JSON header with
  // "__metadata__" first and tensors in order (keys dtype, shape, data_offsets), spaces
  // up to a multiple of 8, then the little-endian data back to back.
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[8,10]}}";
  while (header.size() % 8 != 0)
    header += ' ';
  Bytes data = {0x00, 0x00, 0x80, 0x3f,  // 1.0f
                0x00, 0x00, 0x00, 0xc0,  // -2.0f
                0x80, 0x3f};             // bf16 1.0
  Bytes expected;
  for (int i = 0; i < 8; ++i)
    expected.push_back(uint8_t(uint64_t(header.size()) >> (8 * i)));
  expected.insert(expected.end(), header.begin(), header.end());
  expected.insert(expected.end(), data.begin(), data.end());

  const std::string file = path("exact.safetensors");
  Status st = write(file,
                    {tensor("b", DType::F32, {2}, {1.0, -2.0}),
                     tensor("a", DType::BF16, {1, 1}, {1.0})},
                    {{"format", "pt"}});
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(readRaw(file), expected);
}

TEST_F(SafetensorsTest, ReadsHandBuiltFile) {
  // Keys in an arbitrary order, data not in header order, whitespace in the JSON and
  // spaces after it, an 8-byte gap before the first tensor.
  std::string header = "{ \"second\": {\"data_offsets\": [16, 20], \"shape\": [2],"
                       " \"dtype\": \"I16\"},\n"
                       "  \"first\": {\"shape\": [], \"dtype\": \"F64\", "
                       "\"data_offsets\": [8, 16]},"
                       " \"__metadata__\": {\"a\": \"b\"} }   ";
  Bytes data(8, 0xee); // unused bytes
  double scalar = -0.125;
  Bytes s = toBytes(std::vector<double>{scalar});
  data.insert(data.end(), s.begin(), s.end());
  data.insert(data.end(), {0xff, 0xff, 0x02, 0x01}); // int16 -1, 0x0102
  const std::string file = path("hand.safetensors");
  writeRaw(file, fileBytes(header, data));

  Result<File> f = File::open(file);
  ASSERT_TRUE(f.isOk()) << f.message();
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "first"); // offset order
  EXPECT_EQ(f->tensors()[1].name, "second");
  EXPECT_EQ(f->tensors()[0].dtype, DType::F64);
  EXPECT_TRUE(f->tensors()[0].shape.empty());
  EXPECT_EQ(toDoubles(f->tensors()[0]), std::vector<double>{-0.125});
  EXPECT_EQ(f->tensors()[1].shape, std::vector<int64_t>{2});
  EXPECT_EQ(toDoubles(f->tensors()[1]), (std::vector<double>{-1, 0x0102}));
  EXPECT_EQ(f->metadata().at("a"), "b");
}

TEST_F(SafetensorsTest, EmptyTensorsDoNotOverlapOthers) {
  std::string header = "{\"big\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                       "\"none\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]}}";
  const std::string file = path("empties.safetensors");
  writeRaw(file, fileBytes(header, {1, 2, 3, 4}));
  Result<File> f = File::open(file);
  ASSERT_TRUE(f.isOk()) << f.message();
  EXPECT_EQ(f->tensors().size(), 2u);
}

TEST_F(SafetensorsTest, MoveKeepsTheMappingAlive) {
  const std::string file = path("move.safetensors");
  ASSERT_TRUE(write(file, {tensor("x", DType::I32, {2}, {5, 6})}).isOk());
  Result<File> opened = File::open(file);
  ASSERT_TRUE(opened.isOk()) << opened.message();
  File moved(std::move(*opened));
  EXPECT_EQ(toDoubles(moved.tensors()[0]), (std::vector<double>{5, 6}));

  ASSERT_TRUE(write(path("other.safetensors"), {tensor("y", DType::U8, {1}, {9})}).isOk());
  Result<File> other = File::open(path("other.safetensors"));
  ASSERT_TRUE(other.isOk());
  moved = std::move(*other);
  EXPECT_EQ(moved.tensors()[0].name, "y");
  EXPECT_EQ(toDoubles(moved.tensors()[0]), std::vector<double>{9});
}

// ---- open: errors -------------------------------------------------------------------

struct BadFile {
  const char *label;
  Bytes bytes;
  const char *expected; // a substring of the message after "<path>: "
};

std::vector<BadFile> badFiles() {
  const std::string ok = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
  auto one = [](const std::string &entry, size_t dataSize = 4) {
    return fileBytes("{\"a\":" + entry + "}", Bytes(dataSize, 0));
  };
  Bytes hugeHeader;
  appendU64LE(hugeHeader, 200'000'000);
  hugeHeader.insert(hugeHeader.end(), {'{', '}'});
  Bytes beyond;
  appendU64LE(beyond, 100);
  beyond.insert(beyond.end(), {'{', '}'});
  Bytes zero;
  appendU64LE(zero, 0);
  zero.insert(zero.end(), {'{', '}'});

  return {
      {"empty file", {}, "file is 0 bytes, shorter than the 8-byte header length"},
      {"short file", {1, 0, 0, 0, 0}, "file is 5 bytes, shorter than the 8-byte header length"},
      {"zero header", zero, "header length is 0"},
      {"huge header", hugeHeader, "header length 200000000 exceeds the limit of 100000000"},
      {"header beyond file", beyond, "header length 100 goes beyond the end of the file (10"},
      {"truncated json", fileBytes("{\"a\":"), "header is not valid JSON"},
      {"trailing garbage", fileBytes("{}x"), "header is not valid JSON"},
      {"nul padding", fileBytes(std::string("{}\0\0", 4)),
       "header contains a NUL byte at offset 2"},
      {"nul then garbage", fileBytes(std::string("{}\0{\"a\":5}", 10)),
       "header contains a NUL byte at offset 2"},
      {"not an object", fileBytes("[1,2]"), "header is a JSON array, not an object"},
      {"duplicate key",
       fileBytes("{\"a\":" + ok + ",\"a\":" + ok + "}", Bytes(4, 0)),
       "header has duplicate key 'a'"},
      {"entry not object", one("5"), "tensor 'a' is a JSON number, not an object"},
      {"missing dtype", one("{\"shape\":[1],\"data_offsets\":[0,4]}"), "tensor 'a' has no dtype"},
      {"dtype not string", one("{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}"),
       "tensor 'a' has a dtype that is a JSON number, not a string"},
      {"unknown dtype", one("{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}"),
       "tensor 'a' has unsupported dtype 'F8_E4M3'"},
      {"missing shape", one("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"),
       "tensor 'a' has no shape"},
      {"shape not array", one("{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}"),
       "tensor 'a' has a shape that is a JSON number, not an array"},
      {"negative dim", one("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}"),
       "tensor 'a' has shape [-1] with an entry that is not a non-negative integer"},
      {"fractional dim", one("{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}"),
       "tensor 'a' has shape [1.5] with an entry that is not a non-negative integer"},
      {"string dim", one("{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}"),
       "with an entry that is not a non-negative integer"},
      {"huge dim",
       one("{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,4]}"),
       "with an entry that is not a non-negative integer"},
      {"missing offsets", one("{\"dtype\":\"F32\",\"shape\":[1]}"),
       "tensor 'a' has no data_offsets"},
      {"offsets not array", one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":4}"),
       "tensor 'a' has data_offsets 4, not two non-negative integers"},
      {"three offsets", one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}"),
       "tensor 'a' has data_offsets [0,4,8], not two non-negative integers"},
      {"one offset", one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}"),
       "tensor 'a' has data_offsets [0], not two non-negative integers"},
      {"negative offset", one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}"),
       "tensor 'a' has data_offsets [-4,0], not two non-negative integers"},
      {"float offset", one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}"),
       "tensor 'a' has data_offsets [0,4.0], not two non-negative integers"},
      {"begin after end", one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}"),
       "tensor 'a' has data_offsets [4, 0] with begin after end"},
      {"end beyond data", one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 4),
       "tensor 'a' has data_offsets [0, 8] beyond the end of the data section (4 bytes)"},
      {"huge end",
       one("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}", 4),
       "beyond the end of the data section (4 bytes)"},
      {"size mismatch", one("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}", 16),
       "tensor 'a' has data_offsets [0, 12] but shape [4] of F32 needs 16 bytes"},
      {"scalar size mismatch", one("{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}"),
       "tensor 'a' has data_offsets [0, 4] but shape [] of I64 needs 8 bytes"},
      {"size overflow",
       one("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}"),
       "tensor 'a' has shape [4294967296, 4294967296, 4] of F32 whose byte size overflows"},
      {"element count overflow",
       one("{\"dtype\":\"U8\",\"shape\":[9223372036854775807,3],\"data_offsets\":[0,4]}"),
       "whose byte size overflows"},
      {"overlap",
       fileBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 Bytes(12, 0)),
       "tensor 'b' has data_offsets [4, 12] overlapping tensor 'a' at [0, 8]"},
      {"same range",
       fileBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                 Bytes(4, 0)),
       "tensor 'b' has data_offsets [0, 4] overlapping tensor 'a' at [0, 4]"},
      {"contained",
       fileBytes("{\"outer\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
                 "\"in1\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
                 "\"in2\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[5,6]}}",
                 Bytes(10, 0)),
       "tensor 'in1' has data_offsets [1, 2] overlapping tensor 'outer' at [0, 10]"},
      {"metadata not object", fileBytes("{\"__metadata__\":[\"a\"]}"),
       "__metadata__ is a JSON array, not an object"},
      {"metadata value not string", fileBytes("{\"__metadata__\":{\"step\":5}}"),
       "__metadata__ key 'step' has a number value, not a string"},
  };
}

TEST_F(SafetensorsTest, OpenReportsEveryProblem) {
  for (const BadFile &bad : badFiles()) {
    SCOPED_TRACE(bad.label);
    const std::string file = path("bad.safetensors");
    writeRaw(file, bad.bytes);
    Result<File> f = File::open(file);
    ASSERT_FALSE(f.isOk());
    const std::string &message = f.message();
    EXPECT_EQ(message.rfind(file + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(bad.expected), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    char first = message.size() > file.size() + 2 ? message[file.size() + 2] : '\0';
    EXPECT_FALSE(std::isupper(static_cast<unsigned char>(first))) << message;
  }
}

TEST_F(SafetensorsTest, OpenReportsMissingFileAndDirectory) {
  const std::string missing = path("nope.safetensors");
  Result<File> f = File::open(missing);
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.message().rfind(missing + ": cannot open: ", 0), 0u) << f.message();

  Result<File> d = File::open(dir_);
  ASSERT_FALSE(d.isOk());
  EXPECT_EQ(d.message(), dir_ + ": not a regular file");
}

TEST_F(SafetensorsTest, JsonErrorIsOneLine) {
  const std::string file = path("nl.safetensors");
  writeRaw(file, fileBytes("{\"a\":\n\n\x01}"));
  Result<File> f = File::open(file);
  ASSERT_FALSE(f.isOk());
  EXPECT_NE(f.message().find("header is not valid JSON"), std::string::npos);
  EXPECT_EQ(f.message().find('\n'), std::string::npos) << f.message();
}

TEST_F(SafetensorsTest, InvalidUtf8InHeaderIsAnError) {
  const std::string file = path("utf8.safetensors");
  writeRaw(file, fileBytes("{\"__metadata__\":{\"k\":\"\xff\"}}"));
  Result<File> f = File::open(file);
  ASSERT_FALSE(f.isOk());
  EXPECT_NE(f.message().find(file + ": header is not valid JSON"), std::string::npos)
      << f.message();
}

// ---- write: errors and atomicity ----------------------------------------------------

TEST_F(SafetensorsTest, WriteRejectsBadInputAndLeavesNothingBehind) {
  struct Case {
    const char *label;
    std::vector<TensorToWrite> tensors;
    std::map<std::string, std::string> metadata;
    const char *expected;
  };
  TensorToWrite shortBytes = tensor("a", DType::F32, {4}, {1, 2, 3});
  TensorToWrite negative = tensor("neg", DType::F32, {}, {1});
  negative.shape = {-1, 2};
  TensorToWrite overflow = tensor("big", DType::F32, {}, {1});
  overflow.shape = {int64_t(1) << 40, int64_t(1) << 40};
  std::vector<Case> cases = {
      {"duplicate", {tensor("a", DType::F32, {1}, {1}), tensor("a", DType::I8, {1}, {1})}, {},
       "tensor 'a' appears more than once"},
      {"byte size", {shortBytes}, {}, "tensor 'a' has 12 bytes but shape [4] of F32 needs 16 bytes"},
      {"scalar size", {[] { auto t = tensor("s", DType::I64, {}, {1}); t.bytes.pop_back(); return t; }()},
       {}, "tensor 's' has 7 bytes but shape [] of I64 needs 8 bytes"},
      {"negative dim", {negative}, {}, "tensor 'neg' has shape [-1, 2] with a negative dimension"},
      {"overflow", {overflow}, {}, "tensor 'big' has shape [1099511627776, 1099511627776] of F32 whose byte size overflows"},
      {"reserved name", {tensor("__metadata__", DType::U8, {1}, {1})}, {},
       "a tensor cannot be named '__metadata__'"},
      {"bad utf8 name", {tensor("\xff", DType::U8, {1}, {1})}, {},
       "has a name that is not valid UTF-8"},
      {"bad utf8 metadata", {}, {{"k", "\xc3"}},
       "__metadata__ key 'k' has a value that is not valid UTF-8"},
  };
  const std::string file = path("out.safetensors");
  for (const Case &c : cases) {
    SCOPED_TRACE(c.label);
    Status st = write(file, c.tensors, c.metadata);
    ASSERT_FALSE(st.isOk());
    EXPECT_EQ(st.message().rfind(file + ": ", 0), 0u) << st.message();
    EXPECT_NE(st.message().find(c.expected), std::string::npos) << st.message();
    EXPECT_TRUE(listDir().empty());
  }
}

TEST_F(SafetensorsTest, WriteIntoMissingDirectoryFails) {
  const std::string file = path("no/such/dir/out.safetensors");
  Status st = write(file, {tensor("a", DType::F32, {1}, {1})});
  ASSERT_FALSE(st.isOk());
  EXPECT_EQ(st.message().rfind(file + ": cannot create temporary file ", 0), 0u)
      << st.message();
  EXPECT_NE(st.message().find("No such file or directory"), std::string::npos);
  EXPECT_TRUE(listDir().empty());
}

TEST_F(SafetensorsTest, FailedRenameRemovesTheTemporaryFile) {
  // The target is a non-empty directory: the temporary file gets written, then the
  // rename fails, and the temporary file must be gone.
  const std::string target = path("target");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  writeRaw(target + "/keep", {1});
  Status st = write(target, {tensor("a", DType::F32, {1}, {1})});
  ASSERT_FALSE(st.isOk());
  EXPECT_EQ(st.message().rfind(target + ": cannot rename ", 0), 0u) << st.message();
  EXPECT_EQ(listDir(), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(target));
}

TEST_F(SafetensorsTest, WriteReplacesAnExistingFileAtomically) {
  const std::string file = path("model.safetensors");
  ASSERT_TRUE(write(file, {tensor("old", DType::F32, {3}, {1, 2, 3})}).isOk());
  struct stat before;
  ASSERT_EQ(::stat(file.c_str(), &before), 0);

  // A reader that has the old file open keeps seeing the old contents: the new file
  // is a new inode renamed over the old name, not the old file rewritten in place.
  Result<File> oldFile = File::open(file);
  ASSERT_TRUE(oldFile.isOk()) << oldFile.message();

  ASSERT_TRUE(write(file, {tensor("new", DType::I8, {2}, {-1, 1})}, {{"v", "2"}}).isOk());
  struct stat after;
  ASSERT_EQ(::stat(file.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);

  EXPECT_EQ(oldFile->tensors()[0].name, "old");
  EXPECT_EQ(toDoubles(oldFile->tensors()[0]), (std::vector<double>{1, 2, 3}));

  Result<File> newFile = File::open(file);
  ASSERT_TRUE(newFile.isOk()) << newFile.message();
  ASSERT_EQ(newFile->tensors().size(), 1u);
  EXPECT_EQ(newFile->tensors()[0].name, "new");
  EXPECT_EQ(toDoubles(newFile->tensors()[0]), (std::vector<double>{-1, 1}));
  EXPECT_EQ(newFile->metadata().at("v"), "2");
  EXPECT_EQ(listDir(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(SafetensorsTest, WriteToRelativePath) {
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  Status st = write("rel.safetensors", {tensor("a", DType::U8, {1}, {3})});
  Result<File> f = File::open("rel.safetensors");
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_TRUE(st.isOk()) << st.message();
  ASSERT_TRUE(f.isOk()) << f.message();
  EXPECT_EQ(listDir(), std::vector<std::string>{"rel.safetensors"});
}

// ---- conversions --------------------------------------------------------------------

TensorView viewOf(const Bytes &bytes, DType dtype) {
  TensorView v;
  v.name = "t";
  v.dtype = dtype;
  v.shape = {int64_t(bytes.size() / dtypeSize(dtype))};
  v.data = bytes.data();
  v.nbytes = bytes.size();
  return v;
}

TEST(SafetensorsConversionTest, IntegersTruncateAndSaturate) {
  std::vector<double> in = {2.9, -2.9, 1e30, -1e30, std::nan(""), 0.5, -0.5};
  EXPECT_EQ(toBytes(std::vector<int64_t>{2, -2, INT64_MAX, INT64_MIN, 0, 0, 0}),
            fromDoubles(in, DType::I64));
  EXPECT_EQ(toBytes(std::vector<int32_t>{2, -2, INT32_MAX, INT32_MIN, 0, 0, 0}),
            fromDoubles(in, DType::I32));
  EXPECT_EQ(toBytes(std::vector<int16_t>{2, -2, INT16_MAX, INT16_MIN, 0, 0, 0}),
            fromDoubles(in, DType::I16));
  EXPECT_EQ(toBytes(std::vector<int8_t>{2, -2, 127, -128, 0, 0, 0}),
            fromDoubles(in, DType::I8));
  EXPECT_EQ((Bytes{2, 0, 255, 0, 0, 0, 0}), fromDoubles(in, DType::U8));
  EXPECT_EQ((Bytes{1, 1, 1, 1, 1, 1, 1}), fromDoubles(in, DType::BOOL));
  EXPECT_EQ((Bytes{0, 1}), fromDoubles({0.0, -3}, DType::BOOL));
  // Boundaries.
  EXPECT_EQ(toBytes(std::vector<int64_t>{INT64_MAX, INT64_MIN}),
            fromDoubles({9223372036854775808.0, -9223372036854775808.0}, DType::I64));
  EXPECT_EQ(toBytes(std::vector<int32_t>{INT32_MAX, INT32_MIN}),
            fromDoubles({2147483647.9, -2147483648.9}, DType::I32));
  EXPECT_EQ((Bytes{255, 255}), fromDoubles({255.7, 256.0}, DType::U8));
}

TEST(SafetensorsConversionTest, BoolReadsNonZeroAsOne) {
  Bytes raw = {0, 1, 2, 255};
  EXPECT_EQ(toDoubles(viewOf(raw, DType::BOOL)), (std::vector<double>{0, 1, 1, 1}));
}

TEST(SafetensorsConversionTest, LittleEndianLayout) {
  EXPECT_EQ(fromDoubles({1.0}, DType::F32), (Bytes{0x00, 0x00, 0x80, 0x3f}));
  EXPECT_EQ(fromDoubles({1.0}, DType::BF16), (Bytes{0x80, 0x3f}));
  EXPECT_EQ(fromDoubles({1.0}, DType::F16), (Bytes{0x00, 0x3c}));
  EXPECT_EQ(fromDoubles({-2.0}, DType::F64),
            (Bytes{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0}));
  EXPECT_EQ(fromDoubles({258}, DType::I16), (Bytes{0x02, 0x01}));
  EXPECT_EQ(fromDoubles({-1}, DType::I32), (Bytes{0xff, 0xff, 0xff, 0xff}));
}

TEST(SafetensorsConversionTest, HalfFormatsRoundToNearestEven) {
  // Ties go to even.
  EXPECT_EQ(fromDoubles({1.00390625, 1.01171875}, DType::BF16),
            (Bytes{0x80, 0x3f, 0x82, 0x3f}));
  EXPECT_EQ(fromDoubles({1.0 + std::ldexp(1.0, -11)}, DType::F16), (Bytes{0x00, 0x3c}));
  // Just above a tie rounds up even when the excess is lost converting to float
  // (a naive double -> float -> bf16 would round twice and get 1.0).
  EXPECT_EQ(fromDoubles({1.00390625 + std::ldexp(1.0, -40)}, DType::BF16),
            (Bytes{0x81, 0x3f}));
  EXPECT_EQ(fromDoubles({1.00390625 - std::ldexp(1.0, -40)}, DType::BF16),
            (Bytes{0x80, 0x3f}));
  EXPECT_EQ(fromDoubles({1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)}, DType::F16),
            (Bytes{0x01, 0x3c}));
  EXPECT_EQ(fromDoubles({-(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40))}, DType::F16),
            (Bytes{0x01, 0xbc}));
  // Subnormal f16 tie plus a tiny excess.
  EXPECT_EQ(fromDoubles({std::ldexp(1.0, -25) + std::ldexp(1.0, -60)}, DType::F16),
            (Bytes{0x01, 0x00}));
  // Overflow, infinities, NaN, signed zero.
  Bytes f16 = fromDoubles({1e10, -1e300, HUGE_VAL, -0.0}, DType::F16);
  EXPECT_EQ(f16, (Bytes{0x00, 0x7c, 0x00, 0xfc, 0x00, 0x7c, 0x00, 0x80}));
  Bytes bf16 = fromDoubles({1e300, -HUGE_VAL, 1e-300, -1e-300}, DType::BF16);
  EXPECT_EQ(bf16, (Bytes{0x80, 0x7f, 0x80, 0xff, 0x00, 0x00, 0x00, 0x80}));
  std::vector<double> nan = {std::nan("")};
  EXPECT_TRUE(std::isnan(toDoubles(viewOf(fromDoubles(nan, DType::BF16), DType::BF16))[0]));
  EXPECT_TRUE(std::isnan(toDoubles(viewOf(fromDoubles(nan, DType::F16), DType::F16))[0]));
  EXPECT_TRUE(std::isnan(toDoubles(viewOf(fromDoubles(nan, DType::F32), DType::F32))[0]));
}

TEST(SafetensorsConversionTest, HalfFormatsMatchFloatPathWhenExact) {
  // For every value that is exactly a float, the double path equals HalfFloat.h's.
  for (uint32_t i = 0; i < 200000; ++i) {
    uint32_t bits = i * 21473u + 0x2f000000u; // a spread of magnitudes around 1
    float f = bitsToFloat(bits);
    if (!std::isfinite(f))
      continue;
    Bytes bf = fromDoubles({double(f)}, DType::BF16);
    Bytes h = fromDoubles({double(f)}, DType::F16);
    uint16_t b = uint16_t(bf[0] | (bf[1] << 8));
    uint16_t hh = uint16_t(h[0] | (h[1] << 8));
    ASSERT_EQ(b, floatToBf16(f)) << bits;
    ASSERT_EQ(hh, floatToF16(f)) << bits;
  }
}

TEST(SafetensorsConversionTest, WidensHalfFormatsExactly) {
  Bytes raw = {0x01, 0x00, 0xff, 0x7b}; // f16 2^-24, 65504
  EXPECT_EQ(toDoubles(viewOf(raw, DType::F16)),
            (std::vector<double>{std::ldexp(1.0, -24), 65504}));
  Bytes rawBf = {0x01, 0x00, 0x7f, 0x7f}; // bf16 2^-133, max
  EXPECT_EQ(toDoubles(viewOf(rawBf, DType::BF16)),
            (std::vector<double>{std::ldexp(1.0, -133),
                                 std::ldexp(2.0 - std::ldexp(1.0, -7), 127)}));
  EXPECT_TRUE(toDoubles(viewOf({}, DType::F32)).empty());
}

// ---- streaming writer ---------------------------------------------------------------

// Appending the data in pieces of any size gives the very file `write` writes.
TEST_F(SafetensorsTest, StreamedFileEqualsTheOneWrittenFromMemory) {
  std::vector<TensorToWrite> tensors = {tensor("b", DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6}),
                                        tensor("a", DType::BF16, {3}, {-1, 0.5, 2}),
                                        tensor("empty", DType::I8, {0}, {}),
                                        tensor("c", DType::I64, {1}, {7})};
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
  ASSERT_TRUE(write(path("whole.safetensors"), tensors, metadata).isOk());
  std::vector<TensorInfo> infos;
  Bytes data;
  for (const TensorToWrite &t : tensors) {
    infos.push_back({t.name, t.dtype, t.shape});
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  for (size_t piece : {size_t(1), size_t(5), data.size()}) {
    SCOPED_TRACE(piece);
    std::string file = path("streamed-" + std::to_string(piece) + ".safetensors");
    auto writer = Writer::create(file, infos, metadata);
    ASSERT_TRUE(writer.isOk()) << writer.message();
    EXPECT_EQ(writer->remaining(), data.size());
    EXPECT_FALSE(fs::exists(file)); // only the temporary file until commit
    for (size_t at = 0; at < data.size(); at += piece)
      ASSERT_TRUE(writer->append(data.data() + at, std::min(piece, data.size() - at)).isOk());
    Status st = writer->commit();
    ASSERT_TRUE(st.isOk()) << st.message();
    EXPECT_EQ(readRaw(file), readRaw(path("whole.safetensors")));
  }
}

TEST_F(SafetensorsTest, StreamedFileErrorsLeaveNothing) {
  const std::string file = path("out.safetensors");
  std::vector<TensorInfo> infos = {{"a", DType::F32, {2}}};
  float values[3] = {1, 2, 3};
  {
    auto writer = Writer::create(file, infos);
    ASSERT_TRUE(writer.isOk()) << writer.message();
    Status st = writer->append(values, sizeof values);
    ASSERT_FALSE(st.isOk());
    EXPECT_EQ(st.message(), file + ": appending 12 bytes where only 8 remain of the tensors' data");
    EXPECT_FALSE(writer->commit().isOk());
  }
  EXPECT_TRUE(listDir().empty());
  {
    auto writer = Writer::create(file, infos);
    ASSERT_TRUE(writer.isOk()) << writer.message();
    ASSERT_TRUE(writer->append(values, 4).isOk());
    Status st = writer->commit();
    ASSERT_FALSE(st.isOk());
    EXPECT_EQ(st.message(), file + ": 4 bytes of the tensors' data were not written");
  }
  EXPECT_TRUE(listDir().empty());
  {
    auto writer = Writer::create(file, infos);
    ASSERT_TRUE(writer.isOk()) << writer.message();
    ASSERT_TRUE(writer->append(values, 8).isOk());
    // Destroyed without commit: abandoned.
  }
  EXPECT_TRUE(listDir().empty());
  // The header's checks are `write`'s.
  auto duplicate = Writer::create(file, {{"a", DType::F32, {1}}, {"a", DType::F32, {1}}});
  ASSERT_FALSE(duplicate.isOk());
  EXPECT_EQ(duplicate.message(), file + ": tensor 'a' appears more than once");
  EXPECT_TRUE(listDir().empty());
}

} // namespace
} // namespace apc::safetensors
