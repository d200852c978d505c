// Tests of training checkpoints: the save/load round trip (bitwise), the layout on disk
// (transformers' names), overwriting a checkpoint of the same step, findCheckpoint's
// choice, loadCheckpoint's errors, and that a failed save leaves nothing behind.
#include "runtime/checkpoint/Checkpoint.h"

#include "runtime/safetensors/Safetensors.h"

#include "test/unit/TempDirTest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

namespace apc::checkpoint {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public apc::testing::TempDirTest {};

std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  for (const auto &entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string readText(const std::string &path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

bool bitwiseEqual(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// A tiny model's parameters and Adam moments with their storage.
struct Model {
  static constexpr const char *kNames[2] = {"model.embed_tokens.weight", "model.norm.weight"};
  std::vector<float> weights[2], avg[2], avgSq[2];

  explicit Model(float scale = 1.0f) {
    for (int p = 0; p < 2; ++p) {
      size_t n = p == 0 ? 12 : 3;
      for (size_t i = 0; i < n; ++i) {
        weights[p].push_back(scale * (0.1f * float(i) - 0.37f) * float(p + 1));
        avg[p].push_back(scale * 1e-3f * float(i + 1) * (p ? -1.0f : 1.0f));
        avgSq[p].push_back(scale * 1e-7f * float(i * i + 1));
      }
    }
    // Values whose bits are easy to lose: negative zero, a subnormal, extremes.
    weights[0][0] = -0.0f;
    weights[0][1] = std::numeric_limits<float>::denorm_min();
    weights[0][2] = std::numeric_limits<float>::max();
    weights[0][3] = -std::numeric_limits<float>::min();
    avgSq[1][0] = 1e-40f;
  }
  static Model zeros() {
    Model m;
    for (int p = 0; p < 2; ++p) {
      std::fill(m.weights[p].begin(), m.weights[p].end(), 0.0f);
      std::fill(m.avg[p].begin(), m.avg[p].end(), 0.0f);
      std::fill(m.avgSq[p].begin(), m.avgSq[p].end(), 0.0f);
    }
    return m;
  }
  static std::vector<int64_t> shape(int p) {
    return p == 0 ? std::vector<int64_t>{4, 3} : std::vector<int64_t>{3};
  }
  CheckpointContents contents(const TrainerState &state = {}) {
    CheckpointContents c;
    for (int p = 0; p < 2; ++p) {
      c.parameters.push_back({kNames[p], shape(p), weights[p].data(), p ? "ones" : "normal"});
      c.expAvg.push_back({kNames[p], shape(p), avg[p].data(), "normal"});
      c.expAvgSq.push_back({kNames[p], shape(p), avgSq[p].data(), "normal"});
    }
    c.configJson = "{\"model_type\": \"llama\", \"hidden_size\": 3}\n";
    c.state = state;
    return c;
  }
};

TrainerState sampleState(int64_t step = 7) {
  TrainerState s;
  s.step = step;
  s.epoch = 2;
  s.batchInEpoch = 3;
  s.seed = 0x9E3779B97F4A7C15ull; // above 2^63: must survive as an unsigned 64-bit value
  s.numRows = 1000;
  s.dataPath = "/data/tokens \"quoted\".arrow";
  return s;
}

void expectSameModel(const Model &a, const Model &b) {
  for (int p = 0; p < 2; ++p) {
    EXPECT_TRUE(bitwiseEqual(a.weights[p], b.weights[p])) << "weights " << p;
    EXPECT_TRUE(bitwiseEqual(a.avg[p], b.avg[p])) << "exp_avg " << p;
    EXPECT_TRUE(bitwiseEqual(a.avgSq[p], b.avgSq[p])) << "exp_avg_sq " << p;
  }
}

// ---- round trip and layout ------------------------------------------------------------

TEST_F(CheckpointTest, SaveThenLoadRoundTripsBitwise) {
  Model saved;
  auto written = saveCheckpoint(path("out"), saved.contents(sampleState()));
  ASSERT_TRUE(written) << written.message();
  EXPECT_EQ(*written, path("out/checkpoint-7"));

  Model loaded = Model::zeros();
  auto state = loadCheckpoint(*written, loaded.contents());
  ASSERT_TRUE(state) << state.message();
  expectSameModel(saved, loaded);
  TrainerState expected = sampleState();
  EXPECT_EQ(state->step, expected.step);
  EXPECT_EQ(state->epoch, expected.epoch);
  EXPECT_EQ(state->batchInEpoch, expected.batchInEpoch);
  EXPECT_EQ(state->seed, expected.seed);
  EXPECT_EQ(state->numRows, expected.numRows);
  EXPECT_EQ(state->dataPath, expected.dataPath);
}

TEST_F(CheckpointTest, LayoutUsesTransformersNames) {
  Model m;
  auto written = saveCheckpoint(path("out"), m.contents(sampleState()));
  ASSERT_TRUE(written) << written.message();
  EXPECT_EQ(listDir(path("out")), std::vector<std::string>{"checkpoint-7"});
  EXPECT_EQ(listDir(*written),
            (std::vector<std::string>{"config.json", "model.safetensors",
                                      "optimizer.safetensors", "trainer_state.json"}));
  EXPECT_EQ(readText(*written + "/config.json"), m.contents().configJson);

  auto model = safetensors::File::open(*written + "/model.safetensors");
  ASSERT_TRUE(model) << model.message();
  ASSERT_EQ(model->tensors().size(), 2u);
  for (int p = 0; p < 2; ++p) {
    const safetensors::TensorView *t = model->find(Model::kNames[p]);
    ASSERT_NE(t, nullptr) << Model::kNames[p];
    EXPECT_EQ(t->dtype, safetensors::DType::F32);
    EXPECT_EQ(t->shape, Model::shape(p));
  }
  ASSERT_TRUE(model->metadata().count("format"));
  EXPECT_EQ(model->metadata().at("format"), "pt");

  auto optimizer = safetensors::File::open(*written + "/optimizer.safetensors");
  ASSERT_TRUE(optimizer) << optimizer.message();
  std::vector<std::string> names;
  for (const auto &t : optimizer->tensors()) {
    names.push_back(t.name);
    EXPECT_EQ(t.dtype, safetensors::DType::F32) << t.name;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{
                       "exp_avg.model.embed_tokens.weight", "exp_avg.model.norm.weight",
                       "exp_avg_sq.model.embed_tokens.weight", "exp_avg_sq.model.norm.weight"}));
  const safetensors::TensorView *sq = optimizer->find("exp_avg_sq.model.embed_tokens.weight");
  ASSERT_NE(sq, nullptr);
  EXPECT_EQ(sq->shape, Model::shape(0));
  ASSERT_EQ(sq->nbytes, 12u * 4);
  EXPECT_EQ(std::memcmp(sq->data, m.avgSq[0].data(), sq->nbytes), 0);

  std::string state = readText(*written + "/trainer_state.json");
  EXPECT_NE(state.find("\"step\""), std::string::npos) << state;
  EXPECT_NE(state.find("\"batch_in_epoch\""), std::string::npos) << state;

  // The weights alone load as a Hugging Face folder.
  Model hf = Model::zeros();
  ASSERT_TRUE(loadWeights(*written, hf.contents().parameters));
  for (int p = 0; p < 2; ++p)
    EXPECT_TRUE(bitwiseEqual(hf.weights[p], m.weights[p])) << p;
}

TEST_F(CheckpointTest, SavingTheSameStepAgainReplacesIt) {
  Model first(1.0f), second(-3.0f);
  ASSERT_TRUE(saveCheckpoint(path("out"), first.contents(sampleState())));
  writeText(path("out/checkpoint-7/stale.txt"), "from the first run");
  TrainerState state = sampleState();
  state.epoch = 5;
  auto written = saveCheckpoint(path("out"), second.contents(state));
  ASSERT_TRUE(written) << written.message();
  EXPECT_EQ(listDir(path("out")), std::vector<std::string>{"checkpoint-7"}); // no temp left
  EXPECT_FALSE(fs::exists(*written + "/stale.txt"));
  Model loaded = Model::zeros();
  auto loadedState = loadCheckpoint(*written, loaded.contents());
  ASSERT_TRUE(loadedState) << loadedState.message();
  expectSameModel(second, loaded);
  EXPECT_EQ(loadedState->epoch, 5);
}

TEST_F(CheckpointTest, CheckpointsOfOtherStepsAreKept) {
  Model m;
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(5))));
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(10))));
  EXPECT_EQ(listDir(path("out")), (std::vector<std::string>{"checkpoint-10", "checkpoint-5"}));
}

// ---- findCheckpoint -------------------------------------------------------------------

TEST_F(CheckpointTest, FindPicksTheLargestCompleteCheckpoint) {
  Model m;
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(2))));
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(10)))); // "10" < "2" as text
  // Larger, but not complete or not checkpoints:
  fs::create_directory(path("out/checkpoint-100")); // no trainer_state.json
  for (const char *junk : {".checkpoint-500.tmp-123", "checkpoint-abc", "checkpoint-30x",
                           "checkpoint-", "checkpoint-+40", "checkpoint- 50", "checkpoint--60",
                           "checkpoints-70", "old-checkpoint-80"}) {
    fs::create_directory(path("out/") + junk);
    writeText(path("out/") + junk + "/trainer_state.json", "{}");
  }
  writeText(path("out/checkpoint-300"), "a file, not a folder");
  auto found = findCheckpoint(path("out"));
  ASSERT_TRUE(found) << found.message();
  EXPECT_EQ(fs::path(*found).filename().string(), "checkpoint-10");
  EXPECT_EQ(fs::path(*found).parent_path(), fs::path(path("out")));
}

TEST_F(CheckpointTest, FindAcceptsTheCheckpointFolderItself) {
  Model m;
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(2))));
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(4))));
  auto found = findCheckpoint(path("out/checkpoint-2"));
  ASSERT_TRUE(found) << found.message();
  EXPECT_EQ(*found, path("out/checkpoint-2"));
}

// A newer checkpoint that lacks a file is passed over, and said so (issue 12, item 7).
TEST_F(CheckpointTest, FindReportsNewerIncompleteCheckpoints) {
  Model m;
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(2))));
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(4))));
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(6))));
  fs::remove(path("out/checkpoint-6/optimizer.safetensors"));
  fs::remove(path("out/checkpoint-4/model.safetensors"));
  fs::remove(path("out/checkpoint-4/config.json"));
  std::vector<std::string> passedOver;
  auto found = findCheckpoint(path("out"), &passedOver);
  ASSERT_TRUE(found) << found.message();
  EXPECT_EQ(*found, path("out/checkpoint-2"));
  EXPECT_EQ(passedOver,
            (std::vector<std::string>{path("out/checkpoint-6") + " (no optimizer.safetensors)",
                                      path("out/checkpoint-4") +
                                          " (no model.safetensors, config.json)"}));
  // With none complete, the error names what is missing where.
  fs::remove(path("out/checkpoint-2/trainer_state.json"));
  found = findCheckpoint(path("out"));
  ASSERT_FALSE(found);
  EXPECT_NE(found.message().find("no complete checkpoint-<step> folder: " +
                                 path("out/checkpoint-6") + " (no optimizer.safetensors); "),
            std::string::npos)
      << found.message();
}

// A folder holding only what a save killed midway left (kill -9 during a save) says
// what that is, not only that no checkpoint was found (issue 17, item 11).
TEST_F(CheckpointTest, FindNamesTheLeftoversOfAKilledSave) {
  fs::create_directories(path("killed/.checkpoint-5.tmp-2147483646"));
  writeText(path("killed/.checkpoint-5.tmp-2147483646/model.safetensors"), "partial");
  auto found = findCheckpoint(path("killed"));
  ASSERT_FALSE(found);
  EXPECT_EQ(found.message(), path("killed") +
                                 ": no checkpoint-<step> folder with a trainer_state.json "
                                 "(.checkpoint-5.tmp-2147483646 is a save killed before it finished: "
                                 "not resumable, removed by the next save)");
  // The next save removes it (its pid, above any pid_max, is no live process).
  Model m;
  ASSERT_TRUE(saveCheckpoint(path("killed"), m.contents(sampleState(6))));
  EXPECT_FALSE(fs::exists(path("killed/.checkpoint-5.tmp-2147483646")));
}

TEST_F(CheckpointTest, FindFailsWithoutACheckpoint) {
  fs::create_directory(path("empty"));
  fs::create_directory(path("empty/checkpoint-3")); // incomplete
  auto found = findCheckpoint(path("empty"));
  ASSERT_FALSE(found);
  EXPECT_NE(found.message().find(path("empty")), std::string::npos) << found.message();
  found = findCheckpoint(path("does-not-exist"));
  ASSERT_FALSE(found);
  EXPECT_NE(found.message().find("does-not-exist"), std::string::npos) << found.message();
}

// ---- loadCheckpoint errors ------------------------------------------------------------

class CheckpointLoadErrorTest : public CheckpointTest {
protected:
  void SetUp() override {
    CheckpointTest::SetUp();
    auto written = saveCheckpoint(path("out"), saved_.contents(sampleState()));
    ASSERT_TRUE(written) << written.message();
    folder_ = *written;
  }
  Result<TrainerState> load() {
    loaded_ = Model::zeros();
    return loadCheckpoint(folder_, loaded_.contents());
  }
  Model saved_, loaded_;
  std::string folder_;
};

TEST_F(CheckpointLoadErrorTest, MalformedTrainerState) {
  writeText(folder_ + "/trainer_state.json", "{\"step\": 7, ");
  auto s = load();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("trainer_state.json"), std::string::npos) << s.message();
  writeText(folder_ + "/trainer_state.json", "[1, 2, 3]");
  s = load();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("trainer_state.json"), std::string::npos) << s.message();
}

TEST_F(CheckpointLoadErrorTest, MissingOrMistypedFields) {
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"step", "7"}, {"epoch", "2"}, {"batch_in_epoch", "3"}, {"seed", "1"}, {"num_rows", "10"}, {"batch", "4"}, {"seq_len", "8"}};
  auto object = [&](const std::string &without) {
    std::string text;
    for (const auto &[key, value] : fields)
      if (key != without)
        text += (text.empty() ? "" : ", ") + ("\"" + key + "\": " + value);
    return "{" + text + "}";
  };
  for (const auto &field : fields) {
    const std::string &missing = field.first;
    writeText(folder_ + "/trainer_state.json", object(missing));
    auto s = load();
    ASSERT_FALSE(s) << object(missing);
    EXPECT_NE(s.message().find("trainer_state.json"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("'" + missing + "'"), std::string::npos) << s.message();
  }
  writeText(folder_ + "/trainer_state.json",
            R"({"step": "seven", "epoch": 2, "batch_in_epoch": 3, "seed": 1, "num_rows": 10})");
  EXPECT_FALSE(load());
  writeText(folder_ + "/trainer_state.json",
            R"({"step": -1, "epoch": 2, "batch_in_epoch": 3, "seed": 1, "num_rows": 10})");
  EXPECT_FALSE(load());
  // The complete object loads (the data path is optional).
  writeText(folder_ + "/trainer_state.json", object(""));
  auto s = load();
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(s->seed, 1u);
  EXPECT_EQ(s->dataPath, "");
}

// Fields are JSON integers in range: a float (1e30 made get<int64_t> undefined
// behaviour, 1.5 was truncated), a negative seed (wrapped to 2^64-1) or a data path of
// another type are refused naming the field (found by trainer_state_fuzz).
TEST(TrainerState, FieldsMustBeIntegersInRange) {
  const std::string base = R"("step": 7, "epoch": 2, "batch_in_epoch": 3, "seed": 1, )"
                           R"("num_rows": 10, "batch": 4, "seq_len": 8)";
  const std::string path = "ckpt/trainer_state.json";
  auto ok = parseTrainerState("{" + base + ", \"seed\": 18446744073709551615}", path);
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_EQ(ok->seed, UINT64_MAX);
  for (const auto &[field, value] :
       std::vector<std::pair<std::string, std::string>>{{"epoch", "1e+30"},
                                                        {"step", "1.5"},
                                                        {"seed", "-1"},
                                                        {"num_rows", "9223372036854775808"},
                                                        {"batch", "true"}}) {
    auto s = parseTrainerState("{" + base + ", \"" + field + "\": " + value + "}", path);
    ASSERT_FALSE(s) << field << "=" << value;
    EXPECT_EQ(s.message(), path + ": '" + field + "' must be a non-negative integer, got " +
                               value);
  }
  auto s = parseTrainerState("{" + base + ", \"data\": 7}", path);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), path + ": 'data' must be a string, got 7");
}

TEST_F(CheckpointLoadErrorTest, MissingTrainerState) {
  fs::remove(folder_ + "/trainer_state.json");
  auto s = load();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("trainer_state.json"), std::string::npos) << s.message();
}

TEST_F(CheckpointLoadErrorTest, MissingOptimizerTensor) {
  // Rewrite optimizer.safetensors without exp_avg_sq of the norm weight.
  std::vector<safetensors::TensorToWrite> kept;
  {
    auto optimizer = safetensors::File::open(folder_ + "/optimizer.safetensors");
    ASSERT_TRUE(optimizer) << optimizer.message();
    for (const auto &t : optimizer->tensors()) {
      if (t.name == "exp_avg_sq.model.norm.weight")
        continue;
      kept.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    }
  }
  ASSERT_EQ(kept.size(), 3u);
  ASSERT_TRUE(safetensors::write(folder_ + "/optimizer.safetensors", kept));
  auto s = load();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("exp_avg_sq.model.norm.weight"), std::string::npos) << s.message();
}

TEST_F(CheckpointLoadErrorTest, MissingModelFile) {
  fs::remove(folder_ + "/model.safetensors");
  auto s = load();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("model.safetensors"), std::string::npos) << s.message();
}

// ---- failing saves --------------------------------------------------------------------

TEST_F(CheckpointTest, SaveIntoAFileFailsAndLeavesNoTempFolder) {
  writeText(path("not-a-folder"), "x");
  Model m;
  auto written = saveCheckpoint(path("not-a-folder"), m.contents(sampleState()));
  ASSERT_FALSE(written);
  EXPECT_NE(written.message().find("not-a-folder"), std::string::npos) << written.message();
  EXPECT_EQ(listDir(dir_), std::vector<std::string>{"not-a-folder"});
  EXPECT_EQ(readText(path("not-a-folder")), "x");
  // A folder below a file cannot be made either.
  written = saveCheckpoint(path("not-a-folder/sub"), m.contents(sampleState()));
  ASSERT_FALSE(written);
  EXPECT_EQ(listDir(dir_), std::vector<std::string>{"not-a-folder"});
}

TEST_F(CheckpointTest, SaveFailingHalfwayRemovesItsTempFolder) {
  // Two parameters of the same name: model.safetensors cannot be written, after the
  // temporary folder was made.
  Model m;
  ASSERT_TRUE(saveCheckpoint(path("out"), m.contents(sampleState(3))));
  CheckpointContents c = m.contents(sampleState(7));
  c.parameters[1].name = c.parameters[0].name;
  c.parameters[1].shape = c.parameters[0].shape;
  c.parameters[1].data = c.parameters[0].data;
  auto written = saveCheckpoint(path("out"), c);
  ASSERT_FALSE(written);
  EXPECT_NE(written.message().find(Model::kNames[0]), std::string::npos) << written.message();
  EXPECT_EQ(listDir(path("out")), std::vector<std::string>{"checkpoint-3"});
  auto found = findCheckpoint(path("out"));
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, path("out/checkpoint-3"));
}

} // namespace
} // namespace apc::checkpoint
