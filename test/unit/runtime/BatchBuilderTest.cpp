// Tests of BatchBuilder on an Arrow file written by TokenStreamWriter: truncation,
// right padding with the pad id, labels -100 exactly at padded positions, both id
// dtypes, and the errors.
#include "runtime/train/BatchBuilder.h"

#include "runtime/data/ArrowFile.h"
#include "runtime/data/ArrowWriter.h"
#include "runtime/data/TextDataset.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace apc::train {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSeqLen = 4;
constexpr int64_t kPad = 0;
constexpr int64_t kVocab = 50;

// Rows: longer than seq_len, equal, shorter, empty, shorter with real tokens equal to the
// pad id, a token id >= vocab, a negative token id.
const std::vector<std::vector<int32_t>> kRows = {
    {1, 2, 3, 4, 5, 6}, {7, 8, 9, 10}, {11, 12}, {}, {0, 5, 0}, {3, 99, 4, 5}, {2, -1},
    {49, 48, 47, 46}};

class BatchBuilderTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/')
      base += '/';
    std::string pattern = base + "batch_builder_test_XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    ASSERT_NE(::mkdtemp(buffer.data()), nullptr) << std::strerror(errno);
    dir_ = buffer.data();

    // Three rows per record batch, so rows span several batches.
    auto writer = data::TokenStreamWriter::create(dir_ + "/data.arrow", "input_ids", 3);
    ASSERT_TRUE(writer) << writer.message();
    for (const auto &row : kRows)
      ASSERT_TRUE(writer->append(row));
    Status finished = writer->finish();
    ASSERT_TRUE(finished) << finished.message();

    auto file = data::ArrowFile::open(dir_ + "/data.arrow");
    ASSERT_TRUE(file) << file.message();
    ASSERT_EQ(file->numRows(), int64_t(kRows.size()));
    auto column = file->intListColumn("input_ids");
    ASSERT_TRUE(column) << column.message();
    column_ = std::make_unique<data::IntListColumn>(std::move(*column));
  }
  void TearDown() override {
    column_.reset();
    std::error_code ec;
    if (!dir_.empty())
      fs::remove_all(dir_, ec);
  }

  std::string dir_;
  std::unique_ptr<data::IntListColumn> column_;
};

template <typename T> struct Buffers {
  explicit Buffers(size_t rows)
      : ids(rows * kSeqLen, T(-7777)), labels(rows * kSeqLen, T(-7777)) {}
  kernels::TensorView idsView(kernels::DType dtype, size_t rows) {
    return {ids.data(), dtype, {int64_t(rows), kSeqLen}};
  }
  kernels::TensorView labelsView(kernels::DType dtype, size_t rows) {
    return {labels.data(), dtype, {int64_t(rows), kSeqLen}};
  }
  std::vector<T> ids, labels;
};

TEST_F(BatchBuilderTest, FillsI64TruncatingAndPadding) {
  BatchBuilder builder(*column_, kSeqLen, kPad, kVocab);
  const std::vector<int64_t> rows = {0, 1, 2, 3, 4, 7};
  Buffers<int64_t> b(rows.size());
  Status s = builder.fill(rows, b.idsView(kernels::DType::I64, rows.size()),
                          b.labelsView(kernels::DType::I64, rows.size()));
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(b.ids, (std::vector<int64_t>{
                       1, 2, 3, 4,    // row 0 truncated
                       7, 8, 9, 10,   // row 1 as is
                       11, 12, 0, 0,  // row 2 padded
                       0, 0, 0, 0,    // row 3 (empty) all padding
                       0, 5, 0, 0,    // row 4: real zeros, then one pad
                       49, 48, 47, 46 // row 7: the largest ids of the vocabulary
                   }));
  EXPECT_EQ(b.labels, (std::vector<int64_t>{
                          1, 2, 3, 4,       //
                          7, 8, 9, 10,      //
                          11, 12, -100, -100, //
                          -100, -100, -100, -100, //
                          0, 5, 0, -100,    // real tokens equal to the pad id keep their label
                          49, 48, 47, 46    //
                      }));
}

TEST_F(BatchBuilderTest, FillsI32InAnyRowOrder) {
  BatchBuilder builder(*column_, kSeqLen, kPad, kVocab);
  const std::vector<int64_t> rows = {4, 2, 0, 2};
  Buffers<int32_t> b(rows.size());
  Status s = builder.fill(rows, b.idsView(kernels::DType::I32, rows.size()),
                          b.labelsView(kernels::DType::I32, rows.size()));
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(b.ids, (std::vector<int32_t>{0, 5, 0, 0, 11, 12, 0, 0, 1, 2, 3, 4, 11, 12, 0, 0}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{0, 5, 0, -100, 11, 12, -100, -100, 1, 2, 3, 4, 11,
                                            12, -100, -100}));
}

TEST_F(BatchBuilderTest, PadsWithTheGivenPadId) {
  BatchBuilder builder(*column_, kSeqLen, /*padId=*/49, kVocab);
  const std::vector<int64_t> rows = {2, 3};
  Buffers<int64_t> b(rows.size());
  ASSERT_TRUE(builder.fill(rows, b.idsView(kernels::DType::I64, 2),
                           b.labelsView(kernels::DType::I64, 2)));
  EXPECT_EQ(b.ids, (std::vector<int64_t>{11, 12, 49, 49, 49, 49, 49, 49}));
  EXPECT_EQ(b.labels, (std::vector<int64_t>{11, 12, -100, -100, -100, -100, -100, -100}));
}

TEST_F(BatchBuilderTest, LongerSeqLenPadsEveryRow) {
  BatchBuilder builder(*column_, 8, kPad, kVocab);
  std::vector<int64_t> ids(8, -1), labels(8, -1);
  ASSERT_TRUE(builder.fill({0}, {ids.data(), kernels::DType::I64, {1, 8}},
                           {labels.data(), kernels::DType::I64, {1, 8}}));
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 0, 0}));
  EXPECT_EQ(labels, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, -100, -100}));
}

TEST_F(BatchBuilderTest, NoPadIdNeededForFullRows) {
  BatchBuilder builder(*column_, kSeqLen, std::nullopt, kVocab);
  const std::vector<int64_t> rows = {0, 1};
  Buffers<int64_t> b(rows.size());
  Status s = builder.fill(rows, b.idsView(kernels::DType::I64, 2),
                          b.labelsView(kernels::DType::I64, 2));
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(b.ids, (std::vector<int64_t>{1, 2, 3, 4, 7, 8, 9, 10}));
  EXPECT_EQ(b.labels, b.ids);
}

TEST_F(BatchBuilderTest, ShortRowWithoutPadIdIsAnError) {
  BatchBuilder builder(*column_, kSeqLen, std::nullopt, kVocab);
  for (int64_t row : {2, 3}) {
    const std::vector<int64_t> rows = {1, row};
    Buffers<int64_t> b(rows.size());
    Status s = builder.fill(rows, b.idsView(kernels::DType::I64, 2),
                            b.labelsView(kernels::DType::I64, 2));
    ASSERT_FALSE(s) << row;
    EXPECT_NE(s.message().find("row " + std::to_string(row) + " "), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("--pad-id"), std::string::npos) << s.message();
  }
}

TEST_F(BatchBuilderTest, TokenOutsideTheVocabularyIsAnErrorNamingRowAndPosition) {
  BatchBuilder builder(*column_, kSeqLen, kPad, kVocab);
  {
    const std::vector<int64_t> rows = {0, 5};
    Buffers<int64_t> b(rows.size());
    Status s = builder.fill(rows, b.idsView(kernels::DType::I64, 2),
                            b.labelsView(kernels::DType::I64, 2));
    ASSERT_FALSE(s);
    EXPECT_NE(s.message().find("row 5 position 1"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("99"), std::string::npos) << s.message();
  }
  {
    const std::vector<int64_t> rows = {6};
    Buffers<int32_t> b(rows.size());
    Status s = builder.fill(rows, b.idsView(kernels::DType::I32, 1),
                            b.labelsView(kernels::DType::I32, 1));
    ASSERT_FALSE(s);
    EXPECT_NE(s.message().find("row 6 position 1"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("-1"), std::string::npos) << s.message();
  }
  // Exactly vocab_size is outside too.
  BatchBuilder small(*column_, kSeqLen, kPad, /*vocabSize=*/49);
  Buffers<int64_t> b(1);
  Status s = small.fill({7}, b.idsView(kernels::DType::I64, 1), b.labelsView(kernels::DType::I64, 1));
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("row 7 position 0"), std::string::npos) << s.message();
}

TEST_F(BatchBuilderTest, PadIdOutsideTheVocabularyIsAnError) {
  BatchBuilder builder(*column_, kSeqLen, /*padId=*/kVocab, kVocab);
  Buffers<int64_t> b(1);
  Status s = builder.fill({2}, b.idsView(kernels::DType::I64, 1), b.labelsView(kernels::DType::I64, 1));
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("row 2 position 2"), std::string::npos) << s.message();
}

} // namespace
} // namespace apc::train

namespace apc::train {
namespace {

// --mask-pad-id-tokens: the tutorial's mask_pads, labels[input_ids == pad_id] = -100, so
// real tokens equal to the pad id lose their label too; by default only padding does.
TEST_F(BatchBuilderTest, MaskPadIdTokensMasksEveryTokenEqualToThePadIdAsTheTutorial) {
  const std::vector<int64_t> rows = {4, 2, 0};
  Buffers<int64_t> position(rows.size()), tutorial(rows.size());
  BatchBuilder byPosition(*column_, kSeqLen, kPad, kVocab);
  BatchBuilder byId(*column_, kSeqLen, kPad, kVocab, /*maskPadIdTokens=*/true);
  ASSERT_TRUE(byPosition.fill(rows, position.idsView(kernels::DType::I64, 3),
                              position.labelsView(kernels::DType::I64, 3)));
  ASSERT_TRUE(byId.fill(rows, tutorial.idsView(kernels::DType::I64, 3),
                        tutorial.labelsView(kernels::DType::I64, 3)));
  EXPECT_EQ(tutorial.ids, position.ids);
  EXPECT_EQ(position.labels, (std::vector<int64_t>{0, 5, 0, -100, 11, 12, -100, -100, 1, 2, 3, 4}));
  EXPECT_EQ(tutorial.labels,
            (std::vector<int64_t>{-100, 5, -100, -100, 11, 12, -100, -100, 1, 2, 3, 4}));
  // The tutorial's rule, computed independently from the ids.
  for (size_t k = 0; k < tutorial.ids.size(); ++k)
    EXPECT_EQ(tutorial.labels[k], tutorial.ids[k] == kPad ? -100 : tutorial.ids[k]) << k;
  // With another pad id only that id is masked.
  BatchBuilder byId49(*column_, kSeqLen, 49, kVocab, true);
  Buffers<int32_t> b(1);
  ASSERT_TRUE(byId49.fill({7}, b.idsView(kernels::DType::I32, 1),
                          b.labelsView(kernels::DType::I32, 1)));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{-100, 48, 47, 46}));
}

// keptLabels counts what the loss keeps after the causal shift: the labels of positions
// 1..seq_len-1 that fill writes as other than -100 (checked against fill itself).
TEST_F(BatchBuilderTest, KeptLabelsAreTheShiftedLabelsFillKeeps) {
  auto keptByFill = [&](BatchBuilder &builder, const std::vector<int64_t> &rows) {
    Buffers<int64_t> b(rows.size());
    EXPECT_TRUE(builder.fill(rows, b.idsView(kernels::DType::I64, rows.size()),
                             b.labelsView(kernels::DType::I64, rows.size())));
    int64_t kept = 0;
    for (size_t k = 0; k < b.labels.size(); ++k)
      kept += k % kSeqLen != 0 && b.labels[k] != -100;
    return kept;
  };
  BatchBuilder byPosition(*column_, kSeqLen, kPad, kVocab);
  BatchBuilder byId(*column_, kSeqLen, kPad, kVocab, /*maskPadIdTokens=*/true);
  for (const std::vector<int64_t> &rows :
       {std::vector<int64_t>{0}, {1, 2}, {3}, {4}, {3, 3}, {4, 2, 0, 7}}) {
    EXPECT_EQ(byPosition.keptLabels(rows), keptByFill(byPosition, rows));
    EXPECT_EQ(byId.keptLabels(rows), keptByFill(byId, rows));
  }
  EXPECT_EQ(byPosition.keptLabels({0, 2}), 3 + 1); // truncated to 4; two real tokens
  EXPECT_EQ(byPosition.keptLabels({3, 3}), 0);     // empty rows: the loss would be 0 / 0
  EXPECT_EQ(byPosition.keptLabels({4}), 2);        // {0, 5, 0}: real tokens, pad id or not
  EXPECT_EQ(byId.keptLabels({4}), 1);              // the tutorial masks the 0s
}

TEST(BatchBuilderTokenRowsTest, FillsFromTokenRows) {
  data::TokenRows rows;
  for (const auto &row : kRows) {
    rows.ids.insert(rows.ids.end(), row.begin(), row.end());
    rows.offsets.push_back(int64_t(rows.ids.size()));
  }
  BatchBuilder builder(rows, kSeqLen, kPad, kVocab);
  Buffers<int64_t> b(3);
  ASSERT_TRUE(builder.fill({0, 2, 4}, b.idsView(kernels::DType::I64, 3),
                           b.labelsView(kernels::DType::I64, 3)));
  EXPECT_EQ(b.ids, (std::vector<int64_t>{1, 2, 3, 4, 11, 12, 0, 0, 0, 5, 0, 0}));
  EXPECT_EQ(b.labels,
            (std::vector<int64_t>{1, 2, 3, 4, 11, 12, -100, -100, 0, 5, 0, -100}));
}

} // namespace
} // namespace apc::train
