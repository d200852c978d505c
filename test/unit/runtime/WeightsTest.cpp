// Tests of loadWeights (one file, a folder, shards with an index; dtype conversion; the
// errors, each naming the tensor or file) and initWeights (determinism, statistics,
// independence of the parameters' streams).
#include "runtime/checkpoint/Weights.h"

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
#include <string>
#include <vector>

#include <unistd.h>

namespace apc::checkpoint {
namespace {

namespace fs = std::filesystem;
using safetensors::DType;
using safetensors::TensorToWrite;

class WeightsTest : public apc::testing::TempDirTest {};

TensorToWrite f32Tensor(std::string name, std::vector<int64_t> shape,
                        const std::vector<float> &values) {
  TensorToWrite t;
  t.name = std::move(name);
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

// A tensor of raw little-endian bytes built from values of type T.
template <typename T>
TensorToWrite rawTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                        const std::vector<T> &values) {
  TensorToWrite t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * sizeof(T));
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Two parameters, a [2, 3] matrix and a [4] vector, with their storage.
struct TwoParams {
  std::vector<float> a = std::vector<float>(6, -7.0f), b = std::vector<float>(4, -7.0f);
  std::vector<ParameterSlot> slots() {
    return {{"model.a.weight", {2, 3}, a.data(), "normal"},
            {"model.b.weight", {4}, b.data(), "ones"}};
  }
};

const std::vector<float> kA = {0.5f, -1.25f, 3.0f, 1e-3f, -0.0f, 42.0f};
const std::vector<float> kB = {1.0f, 2.0f, 3.0f, 4.0f};

std::vector<TensorToWrite> bothTensors() {
  return {f32Tensor("model.a.weight", {2, 3}, kA), f32Tensor("model.b.weight", {4}, kB)};
}

// ---- loadWeights: where the tensors are ------------------------------------------------

// Non-finite weights (a NaN in a bf16 file, an infinity in f32) are refused at load,
// naming the file, the tensor and the first bad element.
TEST_F(WeightsTest, RefusesNonFiniteWeightsNamingTheElement) {
  std::vector<float> a = kA;
  a[4] = std::nanf("");
  ASSERT_TRUE(safetensors::write(path("nan.safetensors"),
                                 {f32Tensor("model.a.weight", {2, 3}, a),
                                  f32Tensor("model.b.weight", {4}, kB)}));
  TwoParams p;
  Status s = loadWeights(path("nan.safetensors"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("nan.safetensors: tensor 'model.a.weight' holds a non-finite "
                             "value (NaN or infinity) at index [1, 1]"),
            std::string::npos)
      << s.message();
  std::vector<uint16_t> bf16 = {0x3f80, 0x7f80, 0x3f80, 0x3f80}; // 1, +inf, 1, 1
  ASSERT_TRUE(safetensors::write(path("inf.safetensors"),
                                 {f32Tensor("model.a.weight", {2, 3}, kA),
                                  rawTensor("model.b.weight", DType::BF16, {4}, bf16)}));
  s = loadWeights(path("inf.safetensors"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("tensor 'model.b.weight' holds a non-finite value (NaN or "
                             "infinity) at index [1]"),
            std::string::npos)
      << s.message();
}

TEST_F(WeightsTest, LoadsASingleSafetensorsFile) {
  ASSERT_TRUE(safetensors::write(path("w.safetensors"), bothTensors()));
  TwoParams p;
  std::vector<std::string> unused;
  Status s = loadWeights(path("w.safetensors"), p.slots(), &unused);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(p.a, kA);
  EXPECT_EQ(p.b, kB);
  EXPECT_TRUE(unused.empty());
  EXPECT_TRUE(std::signbit(p.a[4])); // -0.0 stays negative zero
}

TEST_F(WeightsTest, LoadsAFolderWithModelSafetensors) {
  fs::create_directory(path("model"));
  ASSERT_TRUE(safetensors::write(path("model/model.safetensors"), bothTensors()));
  TwoParams p;
  Status s = loadWeights(path("model"), p.slots());
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(p.a, kA);
  EXPECT_EQ(p.b, kB);
}

// Two shards and an index; shard 1 also holds a stale copy of model.b.weight that the
// index does not point to, which must not be the one loaded.
void writeShardedCheckpoint(const std::string &folder) {
  fs::create_directory(folder);
  const std::vector<float> stale = {-1.0f, -1.0f, -1.0f, -1.0f};
  ASSERT_TRUE(safetensors::write(folder + "/model-00001-of-00002.safetensors",
                                 {f32Tensor("model.a.weight", {2, 3}, kA),
                                  f32Tensor("model.b.weight", {4}, stale)}));
  ASSERT_TRUE(safetensors::write(folder + "/model-00002-of-00002.safetensors",
                                 {f32Tensor("model.b.weight", {4}, kB),
                                  f32Tensor("lm_head.extra", {1}, {9.0f})}));
  writeText(folder + "/model.safetensors.index.json",
            R"({"metadata": {"total_size": 60},
                "weight_map": {"model.a.weight": "model-00001-of-00002.safetensors",
                               "model.b.weight": "model-00002-of-00002.safetensors",
                               "lm_head.extra": "model-00002-of-00002.safetensors"}})");
}

TEST_F(WeightsTest, LoadsAShardedCheckpointFromItsFolder) {
  writeShardedCheckpoint(path("sharded"));
  TwoParams p;
  std::vector<std::string> unused;
  Status s = loadWeights(path("sharded"), p.slots(), &unused);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(p.a, kA);
  EXPECT_EQ(p.b, kB); // from shard 2, as the index says, not shard 1's stale copy
  EXPECT_EQ(unused, std::vector<std::string>{"lm_head.extra"});
}

TEST_F(WeightsTest, LoadsAShardedCheckpointFromTheIndexPath) {
  writeShardedCheckpoint(path("sharded"));
  TwoParams p;
  Status s = loadWeights(path("sharded/model.safetensors.index.json"), p.slots());
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(p.a, kA);
  EXPECT_EQ(p.b, kB);
}

TEST_F(WeightsTest, IndexTakesPrecedenceOverASingleFileInTheFolder) {
  writeShardedCheckpoint(path("sharded"));
  ASSERT_TRUE(safetensors::write(path("sharded/model.safetensors"),
                                 {f32Tensor("model.a.weight", {2, 3}, std::vector<float>(6, 0)),
                                  f32Tensor("model.b.weight", {4}, std::vector<float>(4, 0))}));
  TwoParams p;
  ASSERT_TRUE(loadWeights(path("sharded"), p.slots()));
  EXPECT_EQ(p.a, kA);
  EXPECT_EQ(p.b, kB);
}

TEST_F(WeightsTest, UnusedListsTheExtraTensors) {
  auto tensors = bothTensors();
  tensors.push_back(f32Tensor("lm_head.weight", {2}, {1.0f, 2.0f}));
  tensors.push_back(f32Tensor("model.rotary.inv_freq", {1}, {0.5f}));
  ASSERT_TRUE(safetensors::write(path("w.safetensors"), tensors));
  TwoParams p;
  std::vector<std::string> unused;
  ASSERT_TRUE(loadWeights(path("w.safetensors"), p.slots(), &unused));
  std::sort(unused.begin(), unused.end());
  EXPECT_EQ(unused, (std::vector<std::string>{"lm_head.weight", "model.rotary.inv_freq"}));
  EXPECT_EQ(p.a, kA);
  // Without an `unused` vector the extras are simply ignored.
  TwoParams q;
  EXPECT_TRUE(loadWeights(path("w.safetensors"), q.slots()));
}

// ---- loadWeights: dtype conversion ----------------------------------------------------

TEST_F(WeightsTest, ConvertsBf16F16AndF64) {
  // bf16 bit patterns and their exact values.
  const std::vector<uint16_t> bf16 = {0x3FC0, 0xC020, 0x3EAA, 0x0000, 0x8000, 0x7F7F};
  const std::vector<float> bf16Values = {1.5f, -2.5f, 0.33203125f, 0.0f, -0.0f,
                                         3.3895313892515355e38f};
  // f16 bit patterns: 1, -5, the largest finite, the smallest subnormal, ~1/3.
  const std::vector<uint16_t> f16 = {0x3C00, 0xC500, 0x7BFF, 0x0001, 0x3555};
  const std::vector<float> f16Values = {1.0f, -5.0f, 65504.0f, 5.9604644775390625e-8f,
                                        0.333251953125f};
  // f64 values round to the nearest float.
  const std::vector<double> f64 = {0.1, -1e-3, 1.0 / 3.0, 1e30};
  ASSERT_TRUE(safetensors::write(path("w.safetensors"),
                                 {rawTensor("bf", DType::BF16, {6}, bf16),
                                  rawTensor("half", DType::F16, {5}, f16),
                                  rawTensor("double", DType::F64, {2, 2}, f64)}));
  std::vector<float> a(6), b(5), c(4);
  std::vector<ParameterSlot> slots = {{"bf", {6}, a.data(), "normal"},
                                      {"half", {5}, b.data(), "normal"},
                                      {"double", {2, 2}, c.data(), "normal"}};
  Status s = loadWeights(path("w.safetensors"), slots);
  ASSERT_TRUE(s) << s.message();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i], bf16Values[i]) << "bf16 element " << i; // exact
    EXPECT_EQ(std::signbit(a[i]), std::signbit(bf16Values[i])) << i;
  }
  for (size_t i = 0; i < b.size(); ++i)
    EXPECT_EQ(b[i], f16Values[i]) << "f16 element " << i; // exact
  for (size_t i = 0; i < c.size(); ++i)
    EXPECT_EQ(c[i], float(f64[i])) << "f64 element " << i;
}

// ---- loadWeights: errors --------------------------------------------------------------

TEST_F(WeightsTest, MissingTensorIsAnErrorNamingIt) {
  ASSERT_TRUE(safetensors::write(path("w.safetensors"),
                                 {f32Tensor("model.a.weight", {2, 3}, kA)}));
  TwoParams p;
  Status s = loadWeights(path("w.safetensors"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'model.b.weight'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[4]"), std::string::npos) << s.message();
}

TEST_F(WeightsTest, ShapeMismatchIsAnErrorNamingTheTensorAndBothShapes) {
  ASSERT_TRUE(safetensors::write(path("w.safetensors"),
                                 {f32Tensor("model.a.weight", {3, 2}, kA),
                                  f32Tensor("model.b.weight", {4}, kB)}));
  TwoParams p;
  Status s = loadWeights(path("w.safetensors"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'model.a.weight'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[3, 2]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[2, 3]"), std::string::npos) << s.message();
}

TEST_F(WeightsTest, IntegerDtypeIsAnErrorNamingTheTensor) {
  ASSERT_TRUE(safetensors::write(
      path("w.safetensors"),
      {f32Tensor("model.a.weight", {2, 3}, kA),
       rawTensor<int32_t>("model.b.weight", DType::I32, {4}, {1, 2, 3, 4})}));
  TwoParams p;
  Status s = loadWeights(path("w.safetensors"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'model.b.weight'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("I32"), std::string::npos) << s.message();
}

TEST_F(WeightsTest, MalformedIndexIsAnError) {
  fs::create_directory(path("m"));
  writeText(path("m/model.safetensors.index.json"), "{\"weight_map\": {");
  TwoParams p;
  Status s = loadWeights(path("m"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("model.safetensors.index.json"), std::string::npos) << s.message();
  // The same through the index path.
  s = loadWeights(path("m/model.safetensors.index.json"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("model.safetensors.index.json"), std::string::npos) << s.message();
}

// A weight_map entry may not lead out of the index's folder: a real file outside it
// (here the single-file checkpoint beside the folder) is never read.
TEST_F(WeightsTest, IndexShardsOutsideTheFolderAreRefused) {
  ASSERT_TRUE(safetensors::write(path("outside.safetensors"), bothTensors()));
  fs::create_directory(path("m"));
  for (std::string shard : {std::string("../outside.safetensors"), path("outside.safetensors"),
                            std::string("sub/../../outside.safetensors")}) {
    writeText(path("m/model.safetensors.index.json"),
              R"({"weight_map": {"model.a.weight": ")" + shard +
                  R"(", "model.b.weight": ")" + shard + R"("}})");
    TwoParams p;
    Status s = loadWeights(path("m"), p.slots());
    ASSERT_FALSE(s) << shard;
    EXPECT_NE(s.message().find("shards must be files in the index's own folder"),
              std::string::npos)
        << s.message();
    EXPECT_EQ(p.a, std::vector<float>(6, -7.0f)); // nothing was read
  }
}

TEST_F(WeightsTest, IndexWithoutWeightMapIsAnError) {
  fs::create_directory(path("m"));
  writeText(path("m/model.safetensors.index.json"), R"({"metadata": {"total_size": 4}})");
  TwoParams p;
  Status s = loadWeights(path("m"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("weight_map"), std::string::npos) << s.message();
  // A weight_map that is not an object, and an entry that is not a file name.
  writeText(path("m/model.safetensors.index.json"), R"({"weight_map": []})");
  s = loadWeights(path("m"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("weight_map"), std::string::npos) << s.message();
  writeText(path("m/model.safetensors.index.json"), R"({"weight_map": {"model.a.weight": 3}})");
  s = loadWeights(path("m"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("model.a.weight"), std::string::npos) << s.message();
}

TEST_F(WeightsTest, IndexNamingAMissingShardIsAnErrorNamingTheShard) {
  writeShardedCheckpoint(path("sharded"));
  fs::remove(path("sharded/model-00002-of-00002.safetensors"));
  TwoParams p;
  Status s = loadWeights(path("sharded"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("model-00002-of-00002.safetensors"), std::string::npos)
      << s.message();
}

TEST_F(WeightsTest, TensorAbsentFromTheWeightMapIsMissing) {
  // The index is the authority: a tensor in a shard but not in weight_map is not loaded.
  writeShardedCheckpoint(path("sharded"));
  writeText(path("sharded/model.safetensors.index.json"),
            R"({"weight_map": {"model.a.weight": "model-00001-of-00002.safetensors"}})");
  TwoParams p;
  Status s = loadWeights(path("sharded"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'model.b.weight'"), std::string::npos) << s.message();
}

TEST_F(WeightsTest, FolderWithNeitherFileIsAnError) {
  fs::create_directory(path("empty"));
  TwoParams p;
  Status s = loadWeights(path("empty"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("model.safetensors"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(path("empty")), std::string::npos) << s.message();
}

TEST_F(WeightsTest, MissingFileIsAnError) {
  TwoParams p;
  Status s = loadWeights(path("nothing.safetensors"), p.slots());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("nothing.safetensors"), std::string::npos) << s.message();
}

// ---- initWeights ----------------------------------------------------------------------

std::vector<float> initOne(std::vector<int64_t> shape, double std, uint64_t seed,
                           size_t index = 0) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<float> data(size_t(n), 0.0f);
  std::vector<float> dummy(1);
  std::vector<ParameterSlot> slots;
  for (size_t i = 0; i < index; ++i)
    slots.push_back({"dummy" + std::to_string(i), {1}, dummy.data(), "normal"});
  slots.push_back({"w", shape, data.data(), "normal"});
  initWeights(slots, std, seed);
  return data;
}

size_t countDifferent(const std::vector<float> &x, const std::vector<float> &y) {
  size_t n = 0;
  for (size_t i = 0; i < x.size(); ++i)
    n += x[i] != y[i];
  return n;
}

TEST(InitWeightsTest, DeterministicForASeed) {
  EXPECT_EQ(initOne({64, 32}, 0.02, 1234), initOne({64, 32}, 0.02, 1234));
}

TEST(InitWeightsTest, DifferentSeedsGiveDifferentValues) {
  auto a = initOne({64, 32}, 0.02, 1234);
  EXPECT_EQ(countDifferent(a, initOne({64, 32}, 0.02, 1235)), a.size());
  // The seed's high 32 bits count too.
  EXPECT_EQ(countDifferent(a, initOne({64, 32}, 0.02, 1234 + (uint64_t(1) << 32))), a.size());
}

TEST(InitWeightsTest, OnesInitFillsOnes) {
  std::vector<float> norm(37, -3.0f);
  std::vector<ParameterSlot> slots = {{"model.norm.weight", {37}, norm.data(), "ones"}};
  initWeights(slots, 0.02, 7);
  EXPECT_EQ(norm, std::vector<float>(37, 1.0f));
}

// 65536 samples of normal(0, 0.02). Tolerances are 5 standard errors: the mean's is
// std/sqrt(n) = 7.8e-5, the sample std's ~ std/sqrt(2n) = 5.5e-5, and the fraction
// within one std (0.6827 for a normal)'s sqrt(p(1-p)/n) = 1.8e-3. A correct
// implementation fails one of them with probability ~1e-6 (and the seed is fixed).
TEST(InitWeightsTest, SampleMeanAndStdMatchTheNormal) {
  const double stdev = 0.02;
  auto w = initOne({256, 256}, stdev, 42);
  const double n = double(w.size());
  double sum = 0, sumSq = 0, within = 0;
  for (float x : w) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
  }
  double mean = sum / n;
  for (float x : w) {
    sumSq += (x - mean) * (x - mean);
    within += std::fabs(x) <= stdev;
  }
  double sampleStd = std::sqrt(sumSq / (n - 1));
  EXPECT_NEAR(mean, 0.0, 5 * stdev / std::sqrt(n));
  EXPECT_NEAR(sampleStd, stdev, 5 * stdev / std::sqrt(2 * n));
  EXPECT_NEAR(within / n, 0.682689, 5 * std::sqrt(0.682689 * 0.317311 / n));
}

TEST(InitWeightsTest, ScalesWithStd) {
  auto a = initOne({16, 16}, 0.02, 9), b = initOne({16, 16}, 0.5, 9);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(b[i], a[i] * 25.0f, 1e-6f * std::fabs(b[i]) + 1e-12f) << i;
}

TEST(InitWeightsTest, EachParameterHasItsOwnStream) {
  // Parameter 1's values do not depend on parameter 0's shape or init.
  std::vector<float> small(4), big(1000), w1(64), w2(64), ones(4);
  initWeights({{"p0", {4}, small.data(), "normal"}, {"p1", {8, 8}, w1.data(), "normal"}}, 0.02,
              5);
  initWeights({{"p0", {10, 100}, big.data(), "normal"}, {"p1", {8, 8}, w2.data(), "normal"}},
              0.02, 5);
  EXPECT_EQ(w1, w2);
  std::vector<float> w3(64);
  initWeights({{"p0", {4}, ones.data(), "ones"}, {"p1", {8, 8}, w3.data(), "normal"}}, 0.02, 5);
  EXPECT_EQ(w1, w3);
  // ... while another index gives another stream.
  EXPECT_EQ(countDifferent(w1, initOne({8, 8}, 0.02, 5, /*index=*/0)), w1.size());
  EXPECT_EQ(w1, initOne({8, 8}, 0.02, 5, /*index=*/1));
}

TEST(InitWeightsTest, OddSizesWriteExactlyTheirElements) {
  // Box-Muller makes values in pairs: an odd count must not write past the end.
  std::vector<float> buffer(8, 123.0f);
  initWeights({{"w", {7}, buffer.data(), "normal"}}, 0.02, 3);
  EXPECT_EQ(buffer[7], 123.0f);
  for (int i = 0; i < 7; ++i)
    EXPECT_NE(buffer[i], 123.0f) << i;
  // The first values are those of the even-sized tensor of the same stream.
  auto even = initOne({8}, 0.02, 3);
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(buffer[i], even[i]) << i;
}

} // namespace
} // namespace apc::checkpoint
