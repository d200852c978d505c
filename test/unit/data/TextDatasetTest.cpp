// Tests of text datasets (runtime/data/TextDataset) on files written by pyarrow in the
// layout of Hugging Face `datasets` (write_text_fixtures.py, run at test time): stream
// files of many record batches, string and large_string columns, empty strings, shard
// sets, globs, save_to_disk folders, and the refusals.
#include "runtime/data/TextDataset.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using namespace apc;
using namespace apc::data;
using nlohmann::json;

struct Fixtures {
  std::string error, dir;
  json expected;
  ~Fixtures() {
    std::error_code ec;
    if (!dir.empty())
      fs::remove_all(dir, ec);
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
    fx.error = "the test python " + python + " does not exist; run tools/setup.sh";
    return fx;
  }
  std::string base = (fs::temp_directory_path() / "apc_text_XXXXXX").string();
  std::vector<char> name(base.begin(), base.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data())) {
    fx.error = "cannot make a temporary folder";
    return fx;
  }
  fx.dir = name.data();
  std::string command = "'" + python + "' '" + APC_TEXT_FIXTURE_SCRIPT + "' '" + fx.dir +
                        "' > '" + fx.dir + "/writer.log' 2>&1";
  if (int rc = std::system(command.c_str()); rc != 0) {
    fx.error = "the fixture writer failed (" + command + "):\n" + readText(fx.dir + "/writer.log");
    return fx;
  }
  fx.expected = json::parse(readText(fx.dir + "/expected.json"));
  return fx;
}

class TextDatasetTest : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_EQ(fixtures().error, ""); }
  static std::string path(const std::string &name) { return fixtures().dir + "/" + name; }
  static PromptTemplate defaultTemplate() {
    auto t = PromptTemplate::parse(kDefaultTemplate);
    EXPECT_TRUE(t) << t.message();
    return *t;
  }
  // Opens `name` as --data does and checks every prompt against pyarrow's.
  static void expectPrompts(const std::string &name) {
    auto files = resolveDataFiles(path(name));
    ASSERT_TRUE(files) << files.message();
    auto dataset = TextDataset::open(*files, defaultTemplate());
    ASSERT_TRUE(dataset) << dataset.message();
    const json &want = fixtures().expected.at(name);
    ASSERT_EQ(dataset->numRows(), int64_t(want.size())) << name;
    std::string text;
    for (size_t r = 0; r < want.size(); ++r) {
      dataset->render(int64_t(r), text);
      EXPECT_EQ(text, want[r].get<std::string>()) << name << " row " << r;
    }
  }
};

TEST_F(TextDatasetTest, ReadsManyRecordBatchesWithEmptyStrings) { expectPrompts("multi.arrow"); }
TEST_F(TextDatasetTest, ReadsLargeStringColumns) { expectPrompts("large.arrow"); }

TEST_F(TextDatasetTest, OneShardReadsTheWholeSetInOrder) {
  auto files = resolveDataFiles(path("shards/cnn_dailymail-train-00001-of-00003.arrow"));
  ASSERT_TRUE(files) << files.message();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0], path("shards/cnn_dailymail-train-00000-of-00003.arrow"));
  EXPECT_EQ((*files)[2], path("shards/cnn_dailymail-train-00002-of-00003.arrow"));
  expectPrompts("shards/cnn_dailymail-train-00001-of-00003.arrow");
}

TEST_F(TextDatasetTest, GlobReadsMatchesSorted) { expectPrompts("shards/cnn_dailymail-train-*.arrow"); }

TEST_F(TextDatasetTest, SaveToDiskFolderFollowsStateJson) {
  auto files = resolveDataFiles(path("saved"));
  ASSERT_TRUE(files) << files.message();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0], path("saved/data-00001-of-00002.arrow"));
  expectPrompts("saved");
}

TEST_F(TextDatasetTest, MissingShardIsRefusedByName) {
  auto files = resolveDataFiles(path("broken/cnn_dailymail-train-00000-of-00002.arrow"));
  ASSERT_FALSE(files);
  EXPECT_NE(files.message().find("shard 1 of 00002"), std::string::npos) << files.message();
  EXPECT_NE(files.message().find("cnn_dailymail-train-00001-of-00002.arrow"), std::string::npos);
}

TEST_F(TextDatasetTest, NoMatchesAndNoFilesAreRefused) {
  EXPECT_NE(resolveDataFiles(path("nothing-*.arrow")).message().find("matches no file"),
            std::string::npos);
  EXPECT_NE(resolveDataFiles(path("absent.arrow")).message().find("no such file"),
            std::string::npos);
  fs::create_directory(path("emptydir"));
  EXPECT_NE(resolveDataFiles(path("emptydir")).message().find("no *.arrow"), std::string::npos);
}

TEST_F(TextDatasetTest, FileWithoutTheNamedColumnsIsRefusedByName) {
  auto dataset = TextDataset::open({path("other.arrow")}, defaultTemplate());
  ASSERT_FALSE(dataset);
  const std::string &m = dataset.message();
  EXPECT_NE(m.find(path("other.arrow")), std::string::npos) << m;
  EXPECT_NE(m.find("no column 'article'"), std::string::npos) << m;
  EXPECT_NE(m.find("'text' (utf8)"), std::string::npos) << m;
  EXPECT_NE(m.find("'summary' (utf8)"), std::string::npos) << m;
  // Another template reads it.
  auto t = PromptTemplate::parse("{text}|{{x}}|{summary}");
  ASSERT_TRUE(t) << t.message();
  auto other = TextDataset::open({path("other.arrow")}, *t);
  ASSERT_TRUE(other) << other.message();
  std::string text;
  other->render(0, text);
  EXPECT_EQ(text, "a|{x}|b");
}

TEST_F(TextDatasetTest, NullRowsAreRefusedNamingTheColumnAndTheFirst) {
  auto dataset = TextDataset::open({path("nulls.arrow")}, defaultTemplate());
  ASSERT_FALSE(dataset);
  EXPECT_NE(dataset.message().find(path("nulls.arrow") +
                                   ": column 'highlights' has 2 null rows (the first is row 9)"),
            std::string::npos)
      << dataset.message();
}

TEST(PromptTemplateTest, ParsesPlaceholdersAndRefusesMalformedOnes) {
  auto t = PromptTemplate::parse(kDefaultTemplate);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->columns(), (std::vector<std::string>{"article", "highlights"}));
  for (const char *bad : {"{article", "x}", "{}", "no columns"})
    EXPECT_FALSE(PromptTemplate::parse(bad)) << bad;
  EXPECT_EQ(unescapeTemplate("a\\nb\\\\n\\tc\\q"), "a\nb\\n\tc\\q");
}

} // namespace
