// Tests of the Arrow IPC stream writer (TokenStreamWriter) and the sample dataset:
// round trips through our reader (ArrowFile) and through pyarrow, the independent
// oracle, run from the test .venv; atomic replacement of the output file; determinism
// and structure of the synthetic dataset.
#include "runtime/data/ArrowFile.h"
#include "runtime/data/ArrowWriter.h"
#include "runtime/data/SampleData.h"

#include "runtime/data/arrow/Message_generated.h"

#include "test/unit/TempDirTest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <unistd.h>

namespace {

namespace fb = org::apache::arrow::flatbuf;
namespace fs = std::filesystem;
using apc::data::ArrowFile;
using apc::data::TokenStreamWriter;
using nlohmann::json;
using Rows = std::vector<std::vector<int32_t>>;

#define ASSERT_OK(r) ASSERT_TRUE((r).isOk()) << (r).message()
#define EXPECT_OK(r) EXPECT_TRUE((r).isOk()) << (r).message()

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}
#define EXPECT_CONTAINS(text, part)                                                    \
  EXPECT_TRUE(contains((text), (part))) << "'" << (text) << "' lacks '" << (part) << "'"

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A fresh temporary folder per test, removed afterwards.
class ArrowWriterTest : public apc::testing::TempDirTest {
protected:
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    for (const auto &entry : fs::directory_iterator(dir_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// Writes `rows` with `rowsPerBatch` and checks the writer's counts.
void writeRows(const std::string &file, const Rows &rows, int64_t rowsPerBatch,
               TokenStreamWriter::Options options = {}) {
  options.rowsPerBatch = rowsPerBatch;
  auto w = TokenStreamWriter::create(file, options);
  ASSERT_OK(w);
  int64_t values = 0;
  for (const auto &row : rows) {
    ASSERT_OK(w->append(row.data(), row.size()));
    values += int64_t(row.size());
  }
  ASSERT_OK(w->finish());
  EXPECT_TRUE(w->finished());
  EXPECT_EQ(w->numRows(), int64_t(rows.size()));
  EXPECT_EQ(w->numValues(), values);
  EXPECT_EQ(w->numRecordBatches(),
            (int64_t(rows.size()) + rowsPerBatch - 1) / rowsPerBatch);
}

// Every row through our reader.
void expectReadBack(const std::string &file, const Rows &rows, int64_t batches,
                    const std::string &column = "input_ids") {
  auto f = ArrowFile::open(file);
  ASSERT_OK(f);
  EXPECT_EQ(f->format(), ArrowFile::Format::Stream);
  EXPECT_EQ(f->numRows(), int64_t(rows.size()));
  EXPECT_EQ(f->numRecordBatches(), batches);
  ASSERT_EQ(f->columns().size(), 1u);
  EXPECT_EQ(f->columns()[0].name, column);
  EXPECT_EQ(f->columns()[0].type, "list<int32>");
  EXPECT_TRUE(f->columns()[0].nullable);
  auto c = f->intListColumn(column);
  ASSERT_OK(c);
  ASSERT_EQ(c->numRows(), int64_t(rows.size()));
  std::vector<int64_t> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_FALSE(c->isNull(int64_t(i)));
    c->row(int64_t(i), out);
    std::vector<int64_t> want(rows[i].begin(), rows[i].end());
    ASSERT_EQ(out, want) << "row " << i;
  }
}

// Rows of varied lengths (every 5th empty) with values covering the int32 range.
Rows makeRows(int n) {
  Rows rows;
  uint32_t x = 12345;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> row;
    int len = i % 5 == 0 ? 0 : 1 + (i * 7) % 23;
    for (int k = 0; k < len; ++k) {
      x = x * 1664525u + 1013904223u;
      row.push_back(int32_t(x));
    }
    rows.push_back(row);
  }
  rows[1] = {INT32_MIN, -1, 0, 1, INT32_MAX};
  return rows;
}

// ---- round trips through ArrowFile ------------------------------------------------

TEST_F(ArrowWriterTest, RoundTripManyBatchesEmptyRowsPartialLastBatch) {
  Rows rows = makeRows(1003); // 1003 = 100 * 10 + 3: a partial last batch
  std::string file = path("many.arrow");
  writeRows(file, rows, 10);
  expectReadBack(file, rows, 101);
  EXPECT_EQ(listDir(), std::vector<std::string>{"many.arrow"});
}

TEST_F(ArrowWriterTest, RoundTripOneRowPerBatchAndAllEmptyRows) {
  Rows rows(7); // all empty
  writeRows(path("empty-rows.arrow"), rows, 1);
  expectReadBack(path("empty-rows.arrow"), rows, 7);
  Rows some = makeRows(4);
  writeRows(path("one.arrow"), some, 1);
  expectReadBack(path("one.arrow"), some, 4);
}

TEST_F(ArrowWriterTest, ZeroRowsIsSchemaAndEndOfStream) {
  writeRows(path("none.arrow"), {}, 1000);
  expectReadBack(path("none.arrow"), {}, 0);
  std::string bytes = readText(path("none.arrow"));
  ASSERT_GE(bytes.size(), 16u);
  EXPECT_EQ(bytes.size() % 8, 0u);
  EXPECT_EQ(bytes.substr(0, 4), std::string(4, '\xff'));
  EXPECT_EQ(bytes.substr(bytes.size() - 8), std::string("\xff\xff\xff\xff\0\0\0\0", 8));
}

// Walks the messages: 8-byte aligned framing, V5, no compression, validity buffers
// omitted (null_count 0, zero length), bodies padded to 8.
TEST_F(ArrowWriterTest, FramingLayoutAsPyarrowWritesIt) {
  Rows rows = makeRows(33);
  writeRows(path("a.arrow"), rows, 4);
  std::string bytes = readText(path("a.arrow"));
  ASSERT_EQ(bytes.size() % 8, 0u);
  size_t pos = 0, batches = 0;
  int64_t rowsSeen = 0;
  for (size_t messages = 0;; ++messages) {
    ASSERT_LE(pos + 8, bytes.size());
    uint32_t marker;
    int32_t length;
    std::memcpy(&marker, bytes.data() + pos, 4);
    std::memcpy(&length, bytes.data() + pos + 4, 4);
    ASSERT_EQ(marker, 0xFFFFFFFFu) << "at " << pos;
    if (length == 0) {
      EXPECT_EQ(pos + 8, bytes.size()) << "end-of-stream marker is not last";
      break;
    }
    ASSERT_EQ((8 + length) % 8, 0) << "message " << messages;
    const uint8_t *meta = reinterpret_cast<const uint8_t *>(bytes.data()) + pos + 8;
    flatbuffers::Verifier verifier(meta, size_t(length));
    ASSERT_TRUE(fb::VerifyMessageBuffer(verifier)) << "message " << messages;
    const fb::Message *msg = fb::GetMessage(meta);
    EXPECT_EQ(msg->version(), fb::MetadataVersion_V5);
    EXPECT_EQ(msg->bodyLength() % 8, 0);
    if (messages == 0) {
      ASSERT_EQ(msg->header_type(), fb::MessageHeader_Schema);
      EXPECT_EQ(msg->bodyLength(), 0);
      const fb::Schema *schema = msg->header_as_Schema();
      EXPECT_EQ(schema->endianness(), fb::Endianness_Little);
      ASSERT_EQ(schema->fields()->size(), 1u);
      const fb::Field *f = schema->fields()->Get(0);
      EXPECT_EQ(f->name()->str(), "input_ids");
      EXPECT_EQ(f->type_type(), fb::Type_List);
      ASSERT_EQ(f->children()->size(), 1u);
      const fb::Field *item = f->children()->Get(0);
      EXPECT_EQ(item->name()->str(), "item");
      EXPECT_TRUE(item->nullable());
      ASSERT_EQ(item->type_type(), fb::Type_Int);
      EXPECT_EQ(item->type_as_Int()->bitWidth(), 32);
      EXPECT_TRUE(item->type_as_Int()->is_signed());
    } else {
      ASSERT_EQ(msg->header_type(), fb::MessageHeader_RecordBatch);
      const fb::RecordBatch *rb = msg->header_as_RecordBatch();
      EXPECT_EQ(rb->compression(), nullptr);
      ASSERT_EQ(rb->nodes()->size(), 2u);
      ASSERT_EQ(rb->buffers()->size(), 4u);
      int64_t n = rb->length();
      EXPECT_EQ(n, std::min<int64_t>(4, 33 - rowsSeen));
      int64_t values = 0;
      for (int64_t r = rowsSeen; r < rowsSeen + n; ++r)
        values += int64_t(rows[size_t(r)].size());
      EXPECT_EQ(rb->nodes()->Get(0)->length(), n);
      EXPECT_EQ(rb->nodes()->Get(0)->null_count(), 0);
      EXPECT_EQ(rb->nodes()->Get(1)->length(), values);
      EXPECT_EQ(rb->nodes()->Get(1)->null_count(), 0);
      EXPECT_EQ(rb->buffers()->Get(0)->length(), 0); // validity omitted
      EXPECT_EQ(rb->buffers()->Get(1)->length(), 4 * (n + 1));
      EXPECT_EQ(rb->buffers()->Get(2)->length(), 0); // validity omitted
      EXPECT_EQ(rb->buffers()->Get(3)->length(), 4 * values);
      for (unsigned b = 0; b < 4; ++b) {
        EXPECT_EQ(rb->buffers()->Get(b)->offset() % 8, 0);
        EXPECT_LE(rb->buffers()->Get(b)->offset() + rb->buffers()->Get(b)->length(),
                  msg->bodyLength());
      }
      rowsSeen += n;
      ++batches;
    }
    pos += 8 + size_t(length) + size_t(msg->bodyLength());
  }
  EXPECT_EQ(batches, 9u);
  EXPECT_EQ(rowsSeen, 33);
}

TEST_F(ArrowWriterTest, CustomColumnNameAndSchemaMetadata) {
  TokenStreamWriter::Options options;
  options.columnName = "tokens";
  options.schemaMetadata = {{"huggingface", "{\"info\": 1}"}, {"k", "v"}};
  Rows rows = makeRows(12);
  writeRows(path("named.arrow"), rows, 5, options);
  expectReadBack(path("named.arrow"), rows, 3, "tokens");
  auto f = ArrowFile::open(path("named.arrow"));
  ASSERT_OK(f);
  auto missing = f->intListColumn("input_ids");
  ASSERT_FALSE(missing.isOk());
  EXPECT_CONTAINS(missing.message(), "no column 'input_ids'");
}

// ---- pyarrow as the oracle ----------------------------------------------------------

// Reads `file` with pyarrow.ipc.open_stream and compares it with `expected` (column,
// rows, batch lengths, schema metadata). Returns "" on success, else the failure.
std::string checkWithPyarrow(const std::string &dir, const std::string &file,
                             const json &expected) {
  const std::string python = APC_TEST_PYTHON;
  if (::access(python.c_str(), X_OK) != 0)
    return "the test python " + python +
           " does not exist; run tools/setup.sh to make the .venv with pyarrow";
  static const char *kScript = R"PY(
import json, sys
import pyarrow as pa
import pyarrow.ipc as ipc

path, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
reader = ipc.open_stream(path)
schema = reader.schema
name = expected["column"]
want_schema = pa.schema([pa.field(name, pa.list_(pa.field("item", pa.int32(), True)), True)])
assert schema.equals(want_schema), f"schema {schema} != {want_schema}"
assert schema.field(0).type.value_field.name == "item", schema.field(0).type.value_field
want_meta = {k.encode(): v.encode() for k, v in expected["metadata"]}
got_meta = schema.metadata or {}
assert got_meta == want_meta, f"metadata {got_meta} != {want_meta}"
batches = list(reader)
lengths = [b.num_rows for b in batches]
assert lengths == expected["batch_rows"], f"batch rows {lengths} != {expected['batch_rows']}"
for b in batches:
    b.validate(full=True)
    col = b.column(0)
    assert col.null_count == 0 and col.values.null_count == 0
    assert col.buffers()[0] is None, "list validity buffer should be omitted"
table = pa.Table.from_batches(batches, schema=schema)
rows = table.column(name).to_pylist()
want = expected["rows"]
assert len(rows) == len(want), f"{len(rows)} rows != {len(want)}"
for i, (got, w) in enumerate(zip(rows, want)):
    assert got == w, f"row {i}: {got} != {w}"
print("ok", len(rows), "rows in", len(batches), "batches")
)PY";
  std::string script = dir + "/check_stream.py";
  std::string expectedPath = dir + "/expected.json";
  std::string log = dir + "/check_stream.log";
  writeText(script, kScript);
  writeText(expectedPath, expected.dump());
  std::string command = "'" + python + "' '" + script + "' '" + file + "' '" + expectedPath +
                        "' > '" + log + "' 2>&1";
  int rc = std::system(command.c_str());
  if (rc != 0)
    return "pyarrow check failed (" + command + ", status " + std::to_string(rc) + "):\n" +
           readText(log);
  return "";
}

json expectation(const std::string &column, const Rows &rows, int64_t rowsPerBatch,
                 const std::vector<std::pair<std::string, std::string>> &metadata = {}) {
  json batchRows = json::array();
  for (int64_t left = int64_t(rows.size()); left > 0; left -= rowsPerBatch)
    batchRows.push_back(std::min(left, rowsPerBatch));
  json m = json::array();
  for (const auto &[k, v] : metadata)
    m.push_back({k, v});
  return {{"column", column}, {"rows", rows}, {"batch_rows", batchRows}, {"metadata", m}};
}

TEST_F(ArrowWriterTest, PyarrowReadsManyBatchesEmptyRowsPartialLastBatch) {
  Rows rows = makeRows(257);
  std::string file = path("py.arrow");
  writeRows(file, rows, 16);
  std::string failure = checkWithPyarrow(dir_, file, expectation("input_ids", rows, 16));
  EXPECT_TRUE(failure.empty()) << failure;
}

TEST_F(ArrowWriterTest, PyarrowReadsZeroRowsAndSingleBatch) {
  writeRows(path("none.arrow"), {}, 1000);
  std::string failure = checkWithPyarrow(dir_, path("none.arrow"), expectation("input_ids", {}, 1000));
  EXPECT_TRUE(failure.empty()) << failure;
  Rows rows = makeRows(40);
  writeRows(path("single.arrow"), rows, 1000);
  failure = checkWithPyarrow(dir_, path("single.arrow"), expectation("input_ids", rows, 1000));
  EXPECT_TRUE(failure.empty()) << failure;
}

TEST_F(ArrowWriterTest, PyarrowReadsColumnNameAndMetadata) {
  TokenStreamWriter::Options options;
  options.columnName = "ids";
  options.schemaMetadata = {{"huggingface", "{\"info\": {\"features\": {}}}"}};
  Rows rows = makeRows(9);
  writeRows(path("meta.arrow"), rows, 4, options);
  std::string failure = checkWithPyarrow(
      dir_, path("meta.arrow"), expectation("ids", rows, 4, options.schemaMetadata));
  EXPECT_TRUE(failure.empty()) << failure;
}

TEST_F(ArrowWriterTest, PyarrowReadsSampleDataset) {
  std::string file = path("sample.arrow");
  ASSERT_OK(apc::data::writeSampleDataset(file, 2100, 3, 40, 100, 5));
  auto rows = apc::data::sampleRows(2100, 3, 40, 100, 5);
  ASSERT_OK(rows);
  std::string failure = checkWithPyarrow(dir_, file, expectation("input_ids", *rows, 1000));
  EXPECT_TRUE(failure.empty()) << failure;
}

// ---- atomicity and errors -----------------------------------------------------------

TEST_F(ArrowWriterTest, DestructorWithoutFinishLeavesNoFile) {
  std::string file = path("abandoned.arrow");
  {
    auto w = TokenStreamWriter::create(file, "input_ids", 2);
    ASSERT_OK(w);
    Rows rows = makeRows(11); // some batches already written to the temporary file
    for (const auto &row : rows)
      ASSERT_OK(w->append(row));
    EXPECT_FALSE(fs::exists(file));
    EXPECT_EQ(listDir().size(), 1u); // the temporary file
  }
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(listDir().empty());
}

TEST_F(ArrowWriterTest, FinishReplacesExistingFileOnlyAtTheEnd) {
  std::string file = path("data.arrow");
  writeText(file, "old contents");
  auto w = TokenStreamWriter::create(file, "input_ids", 3);
  ASSERT_OK(w);
  Rows rows = makeRows(10);
  for (const auto &row : rows)
    ASSERT_OK(w->append(row));
  EXPECT_EQ(readText(file), "old contents");
  ASSERT_OK(w->finish());
  expectReadBack(file, rows, 4);
  EXPECT_EQ(listDir(), std::vector<std::string>{"data.arrow"});

  // An abandoned writer leaves the existing file alone.
  {
    auto again = TokenStreamWriter::create(file);
    ASSERT_OK(again);
    ASSERT_OK(again->append(rows[2]));
  }
  expectReadBack(file, rows, 4);
  EXPECT_EQ(listDir(), std::vector<std::string>{"data.arrow"});
}

TEST_F(ArrowWriterTest, MovedWriterKeepsTheFile) {
  std::string file = path("moved.arrow");
  Rows rows = makeRows(5);
  {
    auto w = TokenStreamWriter::create(file, "input_ids", 2);
    ASSERT_OK(w);
    TokenStreamWriter moved = std::move(*w);
    for (const auto &row : rows)
      ASSERT_OK(moved.append(row));
    TokenStreamWriter assigned = std::move(moved);
    ASSERT_OK(assigned.finish());
  }
  expectReadBack(file, rows, 3);
}

TEST_F(ArrowWriterTest, Errors) {
  auto noDir = TokenStreamWriter::create(path("no-such-dir/x.arrow"));
  ASSERT_FALSE(noDir.isOk());
  EXPECT_CONTAINS(noDir.message(), "no-such-dir/x.arrow: cannot create: No such file");

  auto zero = TokenStreamWriter::create(path("x.arrow"), "input_ids", 0);
  ASSERT_FALSE(zero.isOk());
  EXPECT_CONTAINS(zero.message(), "rows per record batch must be positive");
  EXPECT_TRUE(listDir().empty());

  auto w = TokenStreamWriter::create(path("x.arrow"));
  ASSERT_OK(w);
  apc::Status nullIds = w->append(nullptr, 3);
  EXPECT_FALSE(nullIds.isOk());
  EXPECT_OK(w->append(nullptr, 0)); // an empty row
  ASSERT_OK(w->finish());
  int32_t one = 1;
  apc::Status late = w->append(&one, 1);
  EXPECT_FALSE(late.isOk());
  EXPECT_CONTAINS(late.message(), "append after finish");
  EXPECT_FALSE(w->finish().isOk());
  expectReadBack(path("x.arrow"), Rows(1), 1);
}

// ---- the sample dataset -------------------------------------------------------------

TEST_F(ArrowWriterTest, SampleDatasetIsDeterministic) {
  ASSERT_OK(apc::data::writeSampleDataset(path("a.arrow"), 300, 16, 64, 256, 42));
  ASSERT_OK(apc::data::writeSampleDataset(path("b.arrow"), 300, 16, 64, 256, 42));
  ASSERT_OK(apc::data::writeSampleDataset(path("c.arrow"), 300, 16, 64, 256, 43));
  std::string a = readText(path("a.arrow"));
  EXPECT_EQ(a, readText(path("b.arrow")));
  EXPECT_NE(a, readText(path("c.arrow")));

  // Pinned: the generator is std::mt19937_64 with fixed reductions, so these values
  // are the same on every platform and standard library (they were checked against an
  // independent Python implementation of mt19937_64 and the draws of SampleData.cpp:
  // length, start, stride, each as (draw * n) >> 64).
  auto rows = apc::data::sampleRows(3, 4, 8, 50, 1);
  ASSERT_OK(rows);
  EXPECT_EQ(*rows, (Rows{{7, 9, 11, 13}, {18, 23, 28, 33}, {4, 7, 10, 13, 16, 19}}));
}

TEST_F(ArrowWriterTest, SampleDatasetRangeLengthsAndStructure) {
  const int64_t vocab = 256, minLen = 16, maxLen = 64;
  std::string file = path("s.arrow");
  apc::data::SampleStats stats;
  ASSERT_OK(apc::data::writeSampleDataset(file, 512, minLen, maxLen, vocab, 0, &stats));
  EXPECT_EQ(stats.rows, 512);
  EXPECT_EQ(stats.recordBatches, 1);
  auto f = ArrowFile::open(file);
  ASSERT_OK(f);
  auto c = f->intListColumn("input_ids");
  ASSERT_OK(c);
  ASSERT_EQ(c->numRows(), 512);
  EXPECT_EQ(c->numValues(), stats.tokens);
  std::set<int64_t> lengths, strides, tokens;
  std::vector<int64_t> row;
  for (int64_t r = 0; r < c->numRows(); ++r) {
    c->row(r, row);
    lengths.insert(int64_t(row.size()));
    ASSERT_GE(int64_t(row.size()), minLen);
    ASSERT_LE(int64_t(row.size()), maxLen);
    for (int64_t t : row) {
      ASSERT_GE(t, 1) << "row " << r; // 0 is the pad id
      ASSERT_LT(t, vocab) << "row " << r;
      tokens.insert(t);
    }
    // An arithmetic progression over 1 .. vocab-1 with one stride per row.
    int64_t stride = (row[1] - row[0] + (vocab - 1)) % (vocab - 1);
    strides.insert(stride);
    for (size_t k = 1; k < row.size(); ++k)
      ASSERT_EQ((row[k] - row[k - 1] + (vocab - 1)) % (vocab - 1), stride) << "row " << r;
  }
  EXPECT_EQ(*lengths.begin(), stats.shortest);
  EXPECT_EQ(*lengths.rbegin(), stats.longest);
  EXPECT_GT(lengths.size(), 30u); // lengths vary, so batches need padding
  EXPECT_EQ(strides, (std::set<int64_t>{1, 2, 3, 5}));
  EXPECT_EQ(tokens.size(), size_t(vocab - 1)); // every id but 0 appears

  auto rows = apc::data::sampleRows(512, minLen, maxLen, vocab, 0);
  ASSERT_OK(rows);
  for (int64_t r = 0; r < 512; ++r) {
    c->row(r, row);
    ASSERT_EQ(row, std::vector<int64_t>((*rows)[size_t(r)].begin(), (*rows)[size_t(r)].end()));
  }
}

TEST_F(ArrowWriterTest, SampleDatasetSmallVocabAndBadOptions) {
  auto two = apc::data::sampleRows(20, 1, 5, 2, 9);
  ASSERT_OK(two);
  for (const auto &row : *two)
    for (int32_t t : row)
      EXPECT_EQ(t, 1);

  using apc::data::checkSampleOptions;
  EXPECT_CONTAINS(checkSampleOptions(-1, 1, 2, 10).message(), "rows must be non-negative");
  EXPECT_CONTAINS(checkSampleOptions(1, 0, 2, 10).message(), "min-len must be");
  EXPECT_CONTAINS(checkSampleOptions(1, 5, 4, 10).message(), "max-len must be");
  EXPECT_CONTAINS(checkSampleOptions(1, 1, 2, 1).message(), "vocab must be");
  EXPECT_CONTAINS(checkSampleOptions(1, 1, 2, int64_t(INT32_MAX) + 2).message(),
                  "vocab must be");
  EXPECT_OK(checkSampleOptions(0, 1, 1, 2));
  // rows x max-len is checked, not wrapped (issue 12, item 6): 2^62 rows used to run until
  // the disk was full.
  EXPECT_CONTAINS(checkSampleOptions(int64_t(1) << 62, 16, 64, 256).message(),
                  "rows (4611686018427387904) x max-len (64) may make more than 2^36 tokens");
  EXPECT_CONTAINS(checkSampleOptions(INT64_MAX, 1, INT32_MAX, 256).message(), "x max-len");
  EXPECT_OK(checkSampleOptions(int64_t(1) << 30, 1, 64, 256));
  apc::Status bad = apc::data::writeSampleDataset(path("bad.arrow"), 1, 0, 2, 10, 0);
  EXPECT_CONTAINS(bad.message(), "bad.arrow: min-len must be");
  EXPECT_TRUE(listDir().empty());
}

} // namespace
