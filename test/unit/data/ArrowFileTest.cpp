// Tests of the Arrow IPC reader against files written by pyarrow (the independent
// writer, run at test time by write_arrow_fixtures.py) and against streams built byte
// by byte here for what pyarrow cannot write (offsets not starting at 0, bad headers).
#include "runtime/data/ArrowFile.h"

#include "runtime/data/arrow/Message_generated.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <unistd.h>

namespace {

namespace fb = org::apache::arrow::flatbuf;
namespace fs = std::filesystem;
using apc::data::ArrowFile;
using apc::data::IntListColumn;
using apc::data::StringColumn;
using Bytes = std::vector<uint8_t>;
using nlohmann::json;

// ---- fixtures written by pyarrow ----------------------------------------------------

struct Fixtures {
  bool ok = false;
  std::string error;
  std::string dir;
  json expected;
  ~Fixtures() {
    if (!dir.empty()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }
};

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Fixtures &fixtures() {
  static Fixtures fx;
  static bool done = false;
  if (done)
    return fx;
  done = true;
  const std::string python = APC_TEST_PYTHON;
  if (::access(python.c_str(), X_OK) != 0) {
    fx.error = "the test python " + python +
               " does not exist; run tools/setup.sh to make the .venv with pyarrow";
    return fx;
  }
  std::string base = (fs::temp_directory_path() / "apc_arrow_XXXXXX").string();
  std::vector<char> name(base.begin(), base.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data())) {
    fx.error = "cannot make a temporary folder from " + base;
    return fx;
  }
  fx.dir = name.data();
  std::string log = fx.dir + "/writer.log";
  std::string command = "'" + python + "' '" + APC_ARROW_FIXTURE_SCRIPT + "' '" + fx.dir +
                        "' > '" + log + "' 2>&1";
  int rc = std::system(command.c_str());
  if (rc != 0) {
    fx.error = "the fixture writer failed (" + command + ", status " + std::to_string(rc) +
               "):\n" + readText(log);
    return fx;
  }
  try {
    fx.expected = json::parse(readText(fx.dir + "/expected.json"));
  } catch (const std::exception &e) {
    fx.error = std::string("cannot parse expected.json: ") + e.what();
    return fx;
  }
  fx.ok = true;
  return fx;
}

std::string fixture(const std::string &name) { return fixtures().dir + "/" + name; }
const json &expected(const std::string &name) { return fixtures().expected.at(name); }

Bytes readBytes(const std::string &path) {
  std::string s = readText(path);
  return Bytes(s.begin(), s.end());
}

std::string writeTemp(const std::string &name, const Bytes &bytes) {
  std::string path = fixtures().dir + "/tmp_" + name;
  // A fresh file each time: ext4 flushes a file that is truncated and rewritten
  // (auto_da_alloc), which makes thousands of rewrites slow.
  ::unlink(path.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

// Opens bytes written to a temporary file.
apc::Result<ArrowFile> openBytes(const Bytes &bytes, const std::string &name = "t.arrow") {
  return ArrowFile::open(writeTemp(name, bytes));
}

class ArrowFileTest : public ::testing::Test {
protected:
  void SetUp() override {
    const Fixtures &fx = fixtures();
    ASSERT_TRUE(fx.ok) << fx.error;
  }
};

#define ASSERT_OK(r) ASSERT_TRUE((r).isOk()) << (r).message()

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}
#define EXPECT_CONTAINS(text, part)                                                    \
  EXPECT_TRUE(contains((text), (part))) << "'" << (text) << "' lacks '" << (part) << "'"

// Every row of an int list column against pyarrow's rows (null rows as null).
void expectIntRows(const ArrowFile &file, const std::string &column, const json &rows) {
  auto c = file.intListColumn(column);
  ASSERT_OK(c);
  ASSERT_EQ(c->numRows(), int64_t(rows.size())) << column;
  std::vector<int64_t> out{42};
  int64_t total = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t row = int64_t(i);
    c->row(row, out);
    if (rows[i].is_null()) {
      EXPECT_TRUE(c->isNull(row)) << column << " row " << i;
      EXPECT_TRUE(out.empty()) << column << " row " << i;
      EXPECT_EQ(c->rowLength(row), 0);
    } else {
      auto want = rows[i].get<std::vector<int64_t>>();
      EXPECT_FALSE(c->isNull(row)) << column << " row " << i;
      EXPECT_EQ(out, want) << column << " row " << i;
      EXPECT_EQ(c->rowLength(row), int64_t(want.size())) << column << " row " << i;
      total += int64_t(want.size());
    }
  }
  EXPECT_EQ(c->numValues(), total) << column;
  c->row(-1, out);
  EXPECT_TRUE(out.empty());
  c->row(c->numRows(), out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(c->rowLength(c->numRows()), 0);
}

void expectStringRows(const ArrowFile &file, const std::string &column, const json &rows) {
  auto c = file.stringColumn(column);
  ASSERT_OK(c);
  ASSERT_EQ(c->numRows(), int64_t(rows.size())) << column;
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t row = int64_t(i);
    if (rows[i].is_null()) {
      EXPECT_TRUE(c->isNull(row)) << column << " row " << i;
      EXPECT_EQ(c->row(row), "") << column << " row " << i;
    } else {
      EXPECT_FALSE(c->isNull(row)) << column << " row " << i;
      EXPECT_EQ(c->row(row), rows[i].get<std::string>()) << column << " row " << i;
    }
  }
  EXPECT_EQ(c->row(c->numRows()), "");
}

// Reads everything a file offers through the typed accessors, for corrupt inputs: must
// not crash whatever it returns.
int64_t touchEverything(const ArrowFile &file) {
  int64_t sum = 0;
  std::vector<int64_t> out;
  for (const auto &col : file.columns()) {
    if (auto c = file.intListColumn(col.name)) {
      for (int64_t r = 0; r < c->numRows(); ++r) {
        c->row(r, out);
        for (int64_t v : out)
          sum += v;
        sum += c->rowLength(r);
      }
    }
    if (auto c = file.stringColumn(col.name)) {
      for (int64_t r = 0; r < c->numRows(); ++r)
        for (char ch : c->row(r))
          sum += ch;
    }
  }
  return sum;
}

// ---- pyarrow files ------------------------------------------------------------------

class TokenFiles : public ArrowFileTest, public ::testing::WithParamInterface<const char *> {};

TEST_P(TokenFiles, ReadsEveryColumnOfEveryBatch) {
  std::string name = GetParam();
  auto file = ArrowFile::open(fixture(name));
  ASSERT_OK(file);
  const json &want = expected(name);
  EXPECT_EQ(file->numRows(), want["rows"].get<int64_t>());
  EXPECT_EQ(file->numRows(), 20);
  EXPECT_EQ(file->numRecordBatches(), 5);
  bool isFile = contains(name, ".arrow");
  bool isLegacy = contains(name, "legacy");
  EXPECT_EQ(file->format(), isFile     ? ArrowFile::Format::File
                            : isLegacy ? ArrowFile::Format::LegacyStream
                                       : ArrowFile::Format::Stream);

  const auto &cols = file->columns();
  ASSERT_EQ(cols.size(), 6u);
  std::vector<std::pair<std::string, std::string>> types;
  for (const auto &c : cols)
    types.push_back({c.name, c.type});
  std::vector<std::pair<std::string, std::string>> wantTypes = {
      {"input_ids", "list<int32>"}, {"labels", "list<int64>"}, {"big", "large_list<int64>"},
      {"text", "utf8"},           {"ltext", "large_utf8"},   {"score", "float64"}};
  EXPECT_EQ(types, wantTypes);

  for (const char *c : {"input_ids", "labels", "big"})
    expectIntRows(*file, c, want["columns"][c]);
  for (const char *c : {"text", "ltext"})
    expectStringRows(*file, c, want["columns"][c]);
}

INSTANTIATE_TEST_SUITE_P(Pyarrow, TokenFiles,
                         ::testing::Values("tokens.stream", "tokens.arrow",
                                           "tokens_legacy.stream", "tokens_v4.stream",
                                           "tokens_v4.arrow"),
                         [](const auto &info) {
                           std::string n = info.param;
                           for (char &ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           return n;
                         });

TEST_F(ArrowFileTest, TokenRowsHaveNullsEmptyRowsAndWideValues) {
  // Guards the fixture itself: the cases the reader must handle are really there.
  const json &cols = expected("tokens.stream")["columns"];
  auto count = [&](const char *c, auto pred) {
    int n = 0;
    for (const json &r : cols[c])
      n += pred(r) ? 1 : 0;
    return n;
  };
  EXPECT_GT(count("input_ids", [](const json &r) { return r.is_null(); }), 0);
  EXPECT_GT(count("input_ids", [](const json &r) { return r.is_array() && r.empty(); }), 0);
  EXPECT_GT(count("big", [](const json &r) {
              for (const json &v : r)
                if (std::llabs(v.get<int64_t>()) > (int64_t(1) << 40))
                  return true;
              return false;
            }),
            0);
  EXPECT_GT(count("text", [](const json &r) { return r.is_string() && r.get<std::string>().empty(); }), 0);
  EXPECT_GT(count("text", [](const json &r) {
              return r.is_string() && contains(r.get<std::string>(), "日本語");
            }),
            0);
}

TEST_F(ArrowFileTest, SlicedTable) {
  for (const char *name : {"sliced.stream", "sliced.arrow"}) {
    auto file = ArrowFile::open(fixture(name));
    ASSERT_OK(file);
    const json &want = expected(name);
    EXPECT_EQ(file->numRows(), 12);
    for (const char *c : {"input_ids", "labels", "big"})
      expectIntRows(*file, c, want["columns"][c]);
    for (const char *c : {"text", "ltext"})
      expectStringRows(*file, c, want["columns"][c]);
    // The slice is rows 3..14 of the full table.
    const json &full = expected("tokens.stream")["columns"]["labels"];
    EXPECT_EQ(want["columns"]["labels"][0], full[3]);
  }
}

TEST_F(ArrowFileTest, ManyRecordBatches) {
  auto file = ArrowFile::open(fixture("many.stream"));
  ASSERT_OK(file);
  EXPECT_EQ(file->numRecordBatches(), 200);
  expectIntRows(*file, "input_ids", expected("many.stream")["columns"]["input_ids"]);
  // Random access in reverse order finds the right batch too.
  auto c = file->intListColumn("input_ids");
  ASSERT_OK(c);
  const json &rows = expected("many.stream")["columns"]["input_ids"];
  std::vector<int64_t> out;
  for (int64_t r = c->numRows() - 1; r >= 0; r -= 7) {
    c->row(r, out);
    EXPECT_EQ(out, rows[size_t(r)].get<std::vector<int64_t>>()) << r;
  }
}

TEST_F(ArrowFileTest, EveryTypeBeforeTheColumnRead) {
  for (const char *name : {"zoo.stream", "zoo.arrow"}) {
    auto file = ArrowFile::open(fixture(name));
    ASSERT_OK(file);
    EXPECT_EQ(file->numRows(), 5);
    std::vector<std::pair<std::string, std::string>> types;
    for (const auto &c : file->columns())
      types.push_back({c.name, c.type});
    auto wantTypes =
        expected("zoo.stream")["types"].get<std::vector<std::pair<std::string, std::string>>>();
    EXPECT_EQ(types, wantTypes);
    expectIntRows(*file, "input_ids", expected(name)["columns"]["input_ids"]);
    expectStringRows(*file, "text", expected(name)["columns"]["text"]);
    auto nested = file->intListColumn("nested");
    ASSERT_FALSE(nested);
    EXPECT_CONTAINS(nested.message(), "column 'nested' has type list<list<int64>>");
  }
}

TEST_F(ArrowFileTest, SchemaWithoutBatches) {
  for (const char *name : {"empty.stream", "empty.arrow"}) {
    auto file = ArrowFile::open(fixture(name));
    ASSERT_OK(file);
    EXPECT_EQ(file->numRows(), 0);
    EXPECT_EQ(file->numRecordBatches(), 0);
    ASSERT_EQ(file->columns().size(), 2u);
    auto c = file->intListColumn("input_ids");
    ASSERT_OK(c);
    EXPECT_EQ(c->numRows(), 0);
    std::vector<int64_t> out{1};
    c->row(0, out);
    EXPECT_TRUE(out.empty());
  }
}

TEST_F(ArrowFileTest, CompressedBodiesAreRefusedNamingTheCodec) {
  auto lz4 = ArrowFile::open(fixture("lz4.arrow"));
  ASSERT_FALSE(lz4);
  EXPECT_CONTAINS(lz4.message(), fixture("lz4.arrow") + ": ");
  EXPECT_CONTAINS(lz4.message(), "lz4");
  EXPECT_CONTAINS(lz4.message(), "without compression");
  auto zstd = ArrowFile::open(fixture("zstd.stream"));
  ASSERT_FALSE(zstd);
  EXPECT_CONTAINS(zstd.message(), "zstd");
  EXPECT_CONTAINS(zstd.message(), "without compression");
}

TEST_F(ArrowFileTest, DictionaryColumnIsRefusedOthersRead) {
  auto file = ArrowFile::open(fixture("dict.stream"));
  ASSERT_OK(file);
  EXPECT_EQ(file->columns()[0].type, "dictionary<values=utf8, indices=int32>");
  auto s = file->stringColumn("cat");
  ASSERT_FALSE(s);
  EXPECT_CONTAINS(s.message(), "column 'cat' is dictionary-encoded");
  auto l = file->intListColumn("cat");
  ASSERT_FALSE(l);
  EXPECT_CONTAINS(l.message(), "dictionary-encoded");
  expectIntRows(*file, "input_ids", expected("dict.stream")["columns"]["input_ids"]);
}

TEST_F(ArrowFileTest, MissingColumnListsTheAvailableOnes) {
  auto file = ArrowFile::open(fixture("tokens.stream"));
  ASSERT_OK(file);
  auto c = file->intListColumn("input_idz");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.message(), fixture("tokens.stream") +
                             ": no column 'input_idz'; the columns are 'input_ids' "
                             "(list<int32>), 'labels' (list<int64>), 'big' "
                             "(large_list<int64>), 'text' (utf8), 'ltext' (large_utf8), "
                             "'score' (float64)");
  EXPECT_FALSE(file->stringColumn("nope"));
}

TEST_F(ArrowFileTest, WrongColumnTypeSaysWhatItIsAndWhatIsExpected) {
  auto file = ArrowFile::open(fixture("tokens.stream"));
  ASSERT_OK(file);
  auto a = file->intListColumn("text");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.message(), fixture("tokens.stream") +
                             ": column 'text' has type utf8; expected list<int32>, "
                             "list<int64>, large_list<int32> or large_list<int64>");
  auto b = file->stringColumn("input_ids");
  ASSERT_FALSE(b);
  EXPECT_CONTAINS(b.message(), "column 'input_ids' has type list<int32>; expected utf8");
  EXPECT_FALSE(file->intListColumn("score"));

  auto other = ArrowFile::open(fixture("othertypes.stream"));
  ASSERT_OK(other);
  for (auto [col, type] : std::vector<std::pair<std::string, std::string>>{
           {"u16", "list<uint16>"},
           {"floats", "list<float32>"},
           {"nested", "list<list<int32>>"},
           {"bin", "binary"}}) {
    auto c = other->intListColumn(col);
    ASSERT_FALSE(c) << col;
    EXPECT_CONTAINS(c.message(), "column '" + col + "' has type " + type + "; expected");
  }
  EXPECT_FALSE(other->stringColumn("bin"));
}

TEST_F(ArrowFileTest, NullValueInsideAListIsRefused) {
  auto file = ArrowFile::open(fixture("nullvalue.stream"));
  ASSERT_OK(file);
  auto c = file->intListColumn("input_ids");
  ASSERT_FALSE(c);
  EXPECT_CONTAINS(c.message(), "column 'input_ids'");
  EXPECT_CONTAINS(c.message(), "null value at position 1 of row 1");
  // A null row is fine.
  expectIntRows(*file, "fine", expected("nullvalue.stream")["columns"]["fine"]);
}

TEST_F(ArrowFileTest, InconsistentPyarrowOutputIsRefused) {
  // pyarrow 17 writes ListArray.from_arrays([2, 4, 5], ...) with sliced values but the
  // offsets not rebased (and aborts when it reads the file back).
  auto file = ArrowFile::open(fixture("pyarrow_unrebased.stream"));
  ASSERT_OK(file);
  auto c = file->intListColumn("input_ids");
  ASSERT_FALSE(c);
  EXPECT_CONTAINS(c.message(), "column 'input_ids': record batch 0 (rows 0 to 1) has a last "
                               "offset of 5 beyond the end of its 3 values");
}

TEST_F(ArrowFileTest, HandCheckOfPyarrowTinyStreamBytes) {
  // pa.table({"x": [[1, 2], [3]]}) as list<int64>, stream format.
  Bytes b = readBytes(fixture("tiny.stream"));
  ASSERT_GE(b.size(), 64u);
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, &b[at], 4);
    return v;
  };
  auto i64 = [&](size_t at) {
    int64_t v;
    std::memcpy(&v, &b[at], 8);
    return v;
  };
  EXPECT_EQ(u32(0), 0xFFFFFFFFu); // continuation marker
  uint32_t schemaLength = u32(4);
  EXPECT_EQ(schemaLength % 8, 0u);
  size_t batchAt = 8 + schemaLength; // the schema message has no body
  EXPECT_EQ(u32(batchAt), 0xFFFFFFFFu);
  size_t bodyAt = batchAt + 8 + u32(batchAt + 4);
  // Body: list validity (absent), offsets int32 [0, 2, 3] + padding, values validity
  // (absent), values int64 [1, 2, 3]; then the end-of-stream marker.
  ASSERT_EQ(b.size(), bodyAt + 40 + 8);
  EXPECT_EQ(u32(bodyAt), 0u);
  EXPECT_EQ(u32(bodyAt + 4), 2u);
  EXPECT_EQ(u32(bodyAt + 8), 3u);
  EXPECT_EQ(i64(bodyAt + 16), 1);
  EXPECT_EQ(i64(bodyAt + 24), 2);
  EXPECT_EQ(i64(bodyAt + 32), 3);
  EXPECT_EQ(u32(bodyAt + 40), 0xFFFFFFFFu);
  EXPECT_EQ(u32(bodyAt + 44), 0u);

  auto file = ArrowFile::open(fixture("tiny.stream"));
  ASSERT_OK(file);
  EXPECT_EQ(file->columns()[0].type, "list<int64>");
  auto c = file->intListColumn("x");
  ASSERT_OK(c);
  std::vector<int64_t> out;
  c->row(0, out);
  EXPECT_EQ(out, (std::vector<int64_t>{1, 2}));
  c->row(1, out);
  EXPECT_EQ(out, (std::vector<int64_t>{3}));

  // The same bytes with the value 3 changed in place read back changed: zero-copy.
  Bytes changed = b;
  int64_t seven = 7;
  std::memcpy(&changed[bodyAt + 32], &seven, 8);
  auto f2 = openBytes(changed);
  ASSERT_OK(f2);
  auto c2 = f2->intListColumn("x");
  ASSERT_OK(c2);
  c2->row(1, out);
  EXPECT_EQ(out, (std::vector<int64_t>{7}));
}

// ---- corrupt and truncated files ----------------------------------------------------

// Position of `pattern` (little-endian integers) in `bytes`; fails the test if absent.
template <typename T> size_t findInts(const Bytes &bytes, const std::vector<T> &pattern) {
  Bytes needle(pattern.size() * sizeof(T));
  std::memcpy(needle.data(), pattern.data(), needle.size());
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end());
  return it == bytes.end() ? 0 : size_t(it - bytes.begin());
}

template <typename T> Bytes patched(Bytes bytes, size_t at, T value) {
  std::memcpy(&bytes[at], &value, sizeof value);
  return bytes;
}

TEST_F(ArrowFileTest, CorruptOffsetsAreRefusedNamingTheColumn) {
  for (const char *name : {"corrupt.stream", "corrupt.arrow"}) {
    SCOPED_TRACE(name);
    Bytes b = readBytes(fixture(name));
    {
      auto clean = openBytes(b);
      ASSERT_OK(clean);
      expectIntRows(*clean, "ids", expected(name)["columns"]["ids"]);
      expectStringRows(*clean, "s", expected(name)["columns"]["s"]);
    }
    size_t ids = findInts<int32_t>(b, {0, 3, 7, 12, 18});
    size_t s = findInts<int64_t>(b, {0, 5, 11, 18, 26});

    struct Case {
      Bytes bytes;
      const char *column;
      const char *problem;
    };
    std::vector<Case> cases = {
        {patched<int32_t>(b, ids + 8, 2), "ids", "not monotonic: row 1 ends at 2"},
        {patched<int32_t>(b, ids + 16, 1000), "ids", "last offset of 1000 beyond"},
        {patched<int32_t>(b, ids, -1), "ids", "negative first offset -1"},
        {patched<int32_t>(b, ids + 4, -3), "ids", "not monotonic"},
        {patched<int64_t>(b, s + 16, 4), "s", "not monotonic: row 1 ends at 4"},
        {patched<int64_t>(b, s + 32, 1000), "s", "last offset of 1000 beyond"},
        {patched<int64_t>(b, s + 32, int64_t(1) << 62), "s", "beyond"},
    };
    for (const Case &c : cases) {
      auto file = openBytes(c.bytes);
      ASSERT_OK(file); // the structure is fine; the column's values are not
      std::string message = std::string(c.column) == "ids"
                                ? file->intListColumn(c.column).message()
                                : file->stringColumn(c.column).message();
      EXPECT_CONTAINS(message, std::string("column '") + c.column + "'");
      EXPECT_CONTAINS(message, c.problem);
      // The other column still reads.
      if (std::string(c.column) == "ids")
        EXPECT_TRUE(file->stringColumn("s"));
      else
        EXPECT_TRUE(file->intListColumn("ids"));
    }
  }
}

TEST_F(ArrowFileTest, TruncatedFileFormatAlwaysFails) {
  for (const char *name : {"tiny.arrow", "tokens.arrow"}) {
    Bytes b = readBytes(fixture(name));
    for (size_t cut = 0; cut < b.size(); ++cut) {
      auto file = openBytes(Bytes(b.begin(), b.begin() + long(cut)));
      ASSERT_FALSE(file) << name << " cut at " << cut;
      EXPECT_FALSE(file.message().empty());
      EXPECT_EQ(file.message().find('\n'), std::string::npos);
    }
  }
  Bytes b = readBytes(fixture("tokens.arrow"));
  auto file = openBytes(Bytes(b.begin(), b.begin() + long(b.size() / 2)));
  EXPECT_CONTAINS(file.message(), "does not end with it: the file is truncated");
}

TEST_F(ArrowFileTest, TruncatedStreamFailsExceptAtMessageBoundaries) {
  for (const char *name : {"tiny.stream", "tokens.stream"}) {
    Bytes b = readBytes(fixture(name));
    const json &want = expected(name);
    std::string column = want["columns"].begin().key();
    const json &rows = want["columns"][column];
    int successes = 0;
    for (size_t cut = 1; cut < b.size(); ++cut) {
      auto file = openBytes(Bytes(b.begin(), b.begin() + long(cut)));
      if (!file) {
        EXPECT_EQ(file.message().find('\n'), std::string::npos);
        continue;
      }
      // Only a cut between messages leaves a valid (shorter) stream: its rows are a
      // prefix of the full rows.
      ++successes;
      auto c = file->intListColumn(column);
      ASSERT_OK(c);
      std::vector<int64_t> out;
      for (int64_t r = 0; r < c->numRows(); ++r) {
        c->row(r, out);
        if (rows[size_t(r)].is_null())
          EXPECT_TRUE(out.empty());
        else
          EXPECT_EQ(out, rows[size_t(r)].get<std::vector<int64_t>>());
      }
    }
    // Boundaries: after the schema, after each batch (the last one = no EOS marker).
    EXPECT_EQ(successes, 1 + want["batches"].get<int>()) << name;
  }
  Bytes b = readBytes(fixture("tokens.stream"));
  auto mid = openBytes(Bytes(b.begin(), b.begin() + long(b.size() / 2)));
  ASSERT_FALSE(mid);
  EXPECT_CONTAINS(mid.message(), "the file is truncated or corrupt");
  auto partialEos = openBytes(Bytes(b.begin(), b.end() - 4));
  ASSERT_FALSE(partialEos);
  EXPECT_CONTAINS(partialEos.message(), "cut off after its continuation marker");
}

TEST_F(ArrowFileTest, EveryCorruptedByteFailsCleanlyOrReads) {
  // Flip each byte of several files (two ways) and read whatever opens: no crash, no
  // out-of-bounds read (this test is also run under ASan/valgrind).
  int64_t sink = 0;
  int failures = 0, opened = 0;
  for (const char *name : {"tiny.stream", "tiny.arrow", "corrupt.stream", "corrupt.arrow",
                           "zoo.stream", "dict.stream"}) {
    Bytes b = readBytes(fixture(name));
    for (size_t at = 0; at < b.size(); ++at) {
      for (uint8_t mask : {uint8_t(0xFF), uint8_t(0x40)}) {
        Bytes bad = b;
        bad[at] ^= mask;
        auto file = openBytes(bad);
        if (!file) {
          ++failures;
          EXPECT_EQ(file.message().find('\n'), std::string::npos);
          continue;
        }
        ++opened;
        sink += touchEverything(*file);
      }
    }
  }
  EXPECT_GT(failures, 0);
  EXPECT_GT(opened, 0);
  (void)sink;
}

TEST_F(ArrowFileTest, NotArrowAtAll) {
  auto text = openBytes(Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
  ASSERT_FALSE(text);
  EXPECT_CONTAINS(text.message(), "not an Arrow IPC file or stream: it starts with bytes "
                                  "68 65 6c 6c 6f 20 77 6f");
  auto empty = openBytes(Bytes{});
  ASSERT_FALSE(empty);
  EXPECT_CONTAINS(empty.message(), "file is empty");
  auto missing = ArrowFile::open(fixtures().dir + "/does_not_exist.arrow");
  ASSERT_FALSE(missing);
  EXPECT_CONTAINS(missing.message(), "does_not_exist.arrow: cannot open");
  auto dir = ArrowFile::open(fixtures().dir);
  ASSERT_FALSE(dir);
  EXPECT_CONTAINS(dir.message(), "not a regular file");

  // File magic at the start, a bad footer.
  Bytes b = readBytes(fixture("tiny.arrow"));
  size_t footerLengthAt = b.size() - 10;
  auto hugeFooter = openBytes(patched<int32_t>(b, footerLengthAt, 1 << 30));
  ASSERT_FALSE(hugeFooter);
  EXPECT_CONTAINS(hugeFooter.message(), "footer length 1073741824");
  auto badFooter = openBytes(patched<int32_t>(b, footerLengthAt, 12));
  ASSERT_FALSE(badFooter);
  EXPECT_CONTAINS(badFooter.message(), "fails flatbuffer verification");
}

// ---- streams built byte by byte -----------------------------------------------------

struct Build {
  fb::MetadataVersion version = fb::MetadataVersion_V5;
  fb::Endianness endianness = fb::Endianness_Little;
  bool legacy = false;          // no continuation markers
  bool eos = true;              // end with the end-of-stream marker
  bool batchFirst = false;      // record batch before the schema
  int typeCode = -1;            // override of the "ids" column's Type union code
  int64_t bufferOffsetShift = 0; // added to the offset of the last buffer
  int64_t valuesBufferLength = -1; // override of the int64 values buffer length
  int64_t bodyLengthExtra = 0;  // added to the declared body length
  int dropNodes = 0;            // nodes left off the record batch
  bool compress = false;        // set BodyCompression (ZSTD)
  int64_t lastOffset = 7;       // offsets of "ids" are [2, 4, 4, lastOffset]
  bool misalignNodes = false;   // field nodes at 4 mod 8 (found by test/fuzz/arrow_fuzz)
};

void pad8(Bytes &out) {
  while (out.size() % 8)
    out.push_back(0);
}

void append(Bytes &out, const void *p, size_t n) {
  const uint8_t *b = static_cast<const uint8_t *>(p);
  out.insert(out.end(), b, b + n);
}

// Frames a finished Message flatbuffer and its body.
void frame(Bytes &out, const flatbuffers::FlatBufferBuilder &fbb, const Bytes &body,
           bool legacy) {
  Bytes meta(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  size_t prefix = legacy ? 4 : 8;
  while ((meta.size() + prefix) % 8)
    meta.push_back(0);
  if (!legacy) {
    uint32_t marker = 0xFFFFFFFFu;
    append(out, &marker, 4);
  }
  int32_t length = int32_t(meta.size());
  append(out, &length, 4);
  append(out, meta.data(), meta.size());
  append(out, body.data(), body.size());
}

Bytes buildStream(const Build &o) {
  Bytes out;
  // Schema: ids: list<int64> (nullable), s: utf8.
  flatbuffers::FlatBufferBuilder sb;
  {
    auto item = fb::CreateField(sb, sb.CreateString("item"), true, fb::Type_Int,
                                fb::CreateInt(sb, 64, true).Union());
    std::vector<flatbuffers::Offset<fb::Field>> children{item};
    auto listType = o.typeCode >= 0 ? fb::Type(o.typeCode) : fb::Type_List;
    auto ids = fb::CreateField(sb, sb.CreateString("ids"), true, listType,
                               fb::CreateList(sb).Union(), 0, sb.CreateVector(children));
    auto s = fb::CreateField(sb, sb.CreateString("s"), true, fb::Type_Utf8,
                             fb::CreateUtf8(sb).Union());
    std::vector<flatbuffers::Offset<fb::Field>> fields{ids, s};
    auto schema = fb::CreateSchema(sb, o.endianness, sb.CreateVector(fields));
    sb.Finish(fb::CreateMessage(sb, o.version, fb::MessageHeader_Schema, schema.Union(), 0));
  }

  // Record batch of 3 rows:
  //   ids: offsets [2, 4, 4, 7] over int64 [100, 101, 10, 11, 12, 13, 14], row 1 null
  //        -> [10, 11], null, [12, 13, 14]
  //   s:   offsets [1, 3, 3, 6] over "xabdef" -> "ab", "", "def"
  Bytes body;
  std::vector<fb::Buffer> buffers;
  auto addBuffer = [&](const void *p, size_t n) {
    pad8(body);
    buffers.emplace_back(int64_t(body.size()), int64_t(n));
    append(body, p, n);
  };
  uint8_t validity = 0b101;
  int32_t idOffsets[] = {2, 4, 4, int32_t(o.lastOffset)};
  int64_t values[] = {100, 101, 10, 11, 12, 13, 14};
  int32_t sOffsets[] = {1, 3, 3, 6};
  const char text[] = "xabdef";
  addBuffer(&validity, 1);
  addBuffer(idOffsets, sizeof idOffsets);
  addBuffer(nullptr, 0); // values validity (no nulls)
  addBuffer(values, sizeof values);
  addBuffer(nullptr, 0); // s validity
  addBuffer(sOffsets, sizeof sOffsets);
  addBuffer(text, 6);
  pad8(body);
  if (o.valuesBufferLength >= 0)
    buffers[3] = fb::Buffer(buffers[3].offset(), o.valuesBufferLength);
  buffers.back() = fb::Buffer(buffers.back().offset() + o.bufferOffsetShift,
                              buffers.back().length());
  std::vector<fb::FieldNode> nodes{{3, 1}, {7, 0}, {3, 0}};
  nodes.resize(nodes.size() - size_t(o.dropNodes));

  flatbuffers::FlatBufferBuilder bb;
  {
    auto n = bb.CreateVectorOfStructs(nodes);
    if (o.misalignNodes) {
      // The same structs as raw bytes, placed so that they start at 4 mod 8 in the
      // finished buffer (which the Verifier does not check): pad until the length
      // prefix, which ends the vector here, lands at 0 mod 8 from the buffer's end.
      size_t bytes = nodes.size() * sizeof(fb::FieldNode);
      while ((bb.GetSize() + bytes + 4) % 8 != 0)
        bb.PushElement<uint8_t>(0);
      bb.StartVector(bytes, 1);
      bb.PushBytes(reinterpret_cast<const uint8_t *>(nodes.data()), bytes);
      n = flatbuffers::Offset<flatbuffers::Vector<const fb::FieldNode *>>(
          bb.EndVector(nodes.size()));
    }
    auto b = bb.CreateVectorOfStructs(buffers);
    flatbuffers::Offset<fb::BodyCompression> compression;
    if (o.compress)
      compression = fb::CreateBodyCompression(bb, fb::CompressionType_ZSTD);
    auto rb = fb::CreateRecordBatch(bb, 3, n, b, compression);
    bb.Finish(fb::CreateMessage(bb, o.version, fb::MessageHeader_RecordBatch, rb.Union(),
                                int64_t(body.size()) + o.bodyLengthExtra));
  }

  if (o.batchFirst) {
    frame(out, bb, body, o.legacy);
    frame(out, sb, {}, o.legacy);
  } else {
    frame(out, sb, {}, o.legacy);
    frame(out, bb, body, o.legacy);
  }
  if (o.eos) {
    uint32_t marker = 0xFFFFFFFFu, zero = 0;
    if (!o.legacy)
      append(out, &marker, 4);
    append(out, &zero, 4);
  }
  return out;
}

void expectHandBuiltRows(const ArrowFile &file) {
  EXPECT_EQ(file.numRows(), 3);
  auto ids = file.intListColumn("ids");
  ASSERT_OK(ids);
  std::vector<int64_t> out;
  ids->row(0, out);
  EXPECT_EQ(out, (std::vector<int64_t>{10, 11}));
  ids->row(1, out);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(ids->isNull(1));
  ids->row(2, out);
  EXPECT_EQ(out, (std::vector<int64_t>{12, 13, 14}));
  EXPECT_EQ(ids->numValues(), 5);
  auto s = file.stringColumn("s");
  ASSERT_OK(s);
  EXPECT_EQ(s->row(0), "ab");
  EXPECT_EQ(s->row(1), "");
  EXPECT_FALSE(s->isNull(1));
  EXPECT_EQ(s->row(2), "def");
}

TEST_F(ArrowFileTest, HandBuiltStreamWithOffsetsNotStartingAtZero) {
  auto file = openBytes(buildStream({}));
  ASSERT_OK(file);
  EXPECT_EQ(file->format(), ArrowFile::Format::Stream);
  expectHandBuiltRows(*file);
}

TEST_F(ArrowFileTest, HandBuiltVariantsThatRead) {
  Build legacy;
  legacy.legacy = true;
  auto a = openBytes(buildStream(legacy));
  ASSERT_OK(a);
  EXPECT_EQ(a->format(), ArrowFile::Format::LegacyStream);
  expectHandBuiltRows(*a);

  Build v4;
  v4.version = fb::MetadataVersion_V4;
  auto b = openBytes(buildStream(v4));
  ASSERT_OK(b);
  expectHandBuiltRows(*b);

  Build noEos;
  noEos.eos = false;
  auto c = openBytes(buildStream(noEos));
  ASSERT_OK(c);
  expectHandBuiltRows(*c);

  Build legacyNoEos;
  legacyNoEos.legacy = true;
  legacyNoEos.eos = false;
  auto d = openBytes(buildStream(legacyNoEos));
  ASSERT_OK(d);
  expectHandBuiltRows(*d);
}

TEST_F(ArrowFileTest, HandBuiltRefusals) {
  struct Case {
    const char *what;
    Build build;
    const char *message; // part of the error of open()
  };
  std::vector<Case> cases;
  auto add = [&](const char *what, auto edit, const char *message) {
    Build b;
    edit(b);
    cases.push_back({what, b, message});
  };
  add("v3", [](Build &b) { b.version = fb::MetadataVersion_V3; },
      "message 0 at offset 0 has metadata version V3 (Arrow < 0.8); only V4 and V5 are "
      "supported");
  add("v1 legacy", [](Build &b) { b.version = fb::MetadataVersion_V1, b.legacy = true; },
      "metadata version V1");
  add("future version", [](Build &b) { b.version = fb::MetadataVersion(9); },
      "unknown metadata version #9");
  add("big endian", [](Build &b) { b.endianness = fb::Endianness_Big; },
      "declares big-endian data");
  add("batch first", [](Build &b) { b.batchFirst = true; },
      "is a record batch, but the first message of a stream must be the schema");
  add("buffer outside body", [](Build &b) { b.bufferOffsetShift = 8; },
      "has buffer 6 at [104, 104 + 6) outside the body of 104 bytes");
  add("body beyond file", [](Build &b) { b.bodyLengthExtra = 1000; },
      "goes beyond the end of the file");
  add("missing node", [](Build &b) { b.dropNodes = 1; },
      "has 2 field nodes but the schema needs 3");
  add("compressed", [](Build &b) { b.compress = true; },
      "has a body compressed with zstd (ZSTD)");
  add("unknown type", [](Build &b) { b.typeCode = 40; },
      "column 'ids' has an unknown type (Type union member 40)");
  add("no type", [](Build &b) { b.typeCode = 0; }, "column 'ids' has no type");
  add("values buffer too short", [](Build &b) { b.valuesBufferLength = 48; },
      "has a data buffer of 48 bytes for column 'ids' (a nested array of 7 values needs 56)");
  add("misaligned field nodes", [](Build &b) { b.misalignNodes = true; },
      "(record batch 0) has misaligned field nodes, buffers or variadic buffer counts: the "
      "file is corrupt");
  for (const Case &c : cases) {
    auto file = openBytes(buildStream(c.build));
    ASSERT_FALSE(file) << c.what;
    EXPECT_CONTAINS(file.message(), c.message);
    EXPECT_EQ(file.message().rfind(fixtures().dir, 0), 0u) << file.message();
  }
}

TEST_F(ArrowFileTest, HandBuiltOffsetsBeyondTheValues) {
  Build b;
  b.lastOffset = 8;
  auto file = openBytes(buildStream(b));
  ASSERT_OK(file);
  auto ids = file->intListColumn("ids");
  ASSERT_FALSE(ids);
  EXPECT_CONTAINS(ids.message(), ": column 'ids': record batch 0 (rows 0 to 2) has a last "
                                 "offset of 8 beyond the end of its 7 values");
  EXPECT_TRUE(file->stringColumn("s"));
}

TEST_F(ArrowFileTest, ColumnsOutliveTheFile) {
  std::optional<IntListColumn> ids;
  std::optional<StringColumn> s;
  {
    auto file = openBytes(buildStream({}));
    ASSERT_OK(file);
    ids = *file->intListColumn("ids");
    s = *file->stringColumn("s");
  }
  std::vector<int64_t> out;
  ids->row(2, out);
  EXPECT_EQ(out, (std::vector<int64_t>{12, 13, 14}));
  EXPECT_EQ(s->row(2), "def");
}

} // namespace
