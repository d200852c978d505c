// Fuzzes data::ArrowFile::open (file, stream and legacy stream framings): the input is
// the whole file. On success every column is asked for as an int-list column and as a
// string column; every column that reads is walked row by row, checking the promises
// of ArrowFile.h (row lengths add up to numValues, null rows read empty, rows outside
// the table read empty).
#include "runtime/data/ArrowFile.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace apc;

namespace {

void walkIntList(const data::IntListColumn &column) {
  std::vector<int64_t> row;
  int64_t total = 0;
  for (int64_t r = 0; r < column.numRows(); ++r) {
    column.row(r, row);
    int64_t length = column.rowLength(r);
    APC_FUZZ_CHECK(length >= 0 && size_t(length) == row.size(),
                   "row %lld: rowLength %lld but row() gave %zu values", (long long)r,
                   (long long)length, row.size());
    APC_FUZZ_CHECK(!column.isNull(r) || row.empty(), "null row %lld has values",
                   (long long)r);
    total += length;
  }
  APC_FUZZ_CHECK(total == column.numValues(), "rows hold %lld values, numValues says %lld",
                 (long long)total, (long long)column.numValues());
  for (int64_t r : {int64_t(-1), column.numRows()}) {
    column.row(r, row);
    APC_FUZZ_CHECK(row.empty() && column.rowLength(r) == 0 && !column.isNull(r),
                   "row %lld outside the column is not empty", (long long)r);
  }
}

void walkString(const data::StringColumn &column, size_t fileSize) {
  size_t total = 0;
  for (int64_t r = 0; r < column.numRows(); ++r) {
    std::string_view s = column.row(r);
    APC_FUZZ_CHECK(!column.isNull(r) || s.empty(), "null row %lld has a string",
                   (long long)r);
    APC_FUZZ_CHECK(s.size() <= fileSize, "row %lld: a string of %zu bytes in a %zu-byte file",
                   (long long)r, s.size(), fileSize);
    // Touch the bytes: ASan sees them (the mapping is a heap copy, see MmapAsHeap.cpp).
    for (char c : s)
      total += uint8_t(c);
  }
  for (int64_t r : {int64_t(-1), column.numRows()})
    APC_FUZZ_CHECK(column.row(r).empty() && !column.isNull(r),
                   "row %lld outside the column is not empty", (long long)r);
  (void)total;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz::InputFile input;
  const std::string &path = input.write(data, size);
  Result<data::ArrowFile> file = data::ArrowFile::open(path);
  fuzz::report(file ? "accepted" : file.status().message());
  if (!file) {
    APC_FUZZ_CHECK(fuzz::namesFile(file.status().message(), path), "message: %s",
                   file.status().message().c_str());
    return 0;
  }
  (void)data::formatName(file->format());
  APC_FUZZ_CHECK(file->numRows() >= 0 && file->numRecordBatches() >= 0, "negative counts");
  for (const data::ArrowColumnInfo &info : file->columns()) {
    if (Result<data::IntListColumn> c = file->intListColumn(info.name)) {
      APC_FUZZ_CHECK(c->numRows() == file->numRows(), "column rows differ from the file's");
      walkIntList(*c);
    } else {
      APC_FUZZ_CHECK(fuzz::namesFile(c.status().message(), path), "message: %s",
                     c.status().message().c_str());
    }
    if (Result<data::StringColumn> c = file->stringColumn(info.name)) {
      APC_FUZZ_CHECK(c->numRows() == file->numRows(), "column rows differ from the file's");
      walkString(*c, size);
    } else {
      APC_FUZZ_CHECK(fuzz::namesFile(c.status().message(), path), "message: %s",
                     c.status().message().c_str());
    }
  }
  return 0;
}
