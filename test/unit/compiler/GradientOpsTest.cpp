// Tests of the reference semantics of the gradient, constant and optimizer ops.
//
// Every gradient op is checked against central finite differences of its FORWARD op,
// both evaluated by the interpreter in pure f64 (Options::roundFloats = false): with a
// fixed random R, L(x) = sum(forward(x) * R), and the gradient op given grad_output = R
// must return dL/dx, which must equal (L(x + h e_i) - L(x - h e_i)) / (2h) at every
// element i, h = 1e-6.
//
// Tolerance: |analytic - finite difference| <= 1e-6 * max(1, |analytic|). The central
// difference has truncation error O(h^2 |L'''|) ~ 1e-12 and cancellation error
// ~ 1e-16 |L| / h ~ 1e-10 |L| for the O(1..10) losses used here, far below 1e-6; a
// wrong formula (a missing term, a wrong sign or scale) is off by O(1e-2) or more.
//
// adamw is checked against the update written out by hand (in the textbook
// m_hat / (sqrt(v_hat) + eps) form, independent of the interpreter's torch form).
//
// The ops of partitioned programs are here too: embedding and embedding_grad on a
// vocabulary block (vocab_shard_axis), grad_norm's squared form, sqrt, and the
// vocabulary-parallel loss, whose chain max -> stats -> loss (-> loss_grad) must equal
// cross_entropy (and cross_entropy_grad) to 1e-12 in pure f64, besides hand-computed
// values.
#include "compiler/interpreter/Interpreter.h"

#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace apc::interp {
namespace {

const double kStep = 1e-6;         // finite-difference step h
const double kTolerance = 1e-6;    // relative to max(1, |analytic gradient|)

::testing::AssertionResult Contains(const std::string &text, const std::string &part) {
  if (text.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not found in: " << text;
}

RefTensor tensor(std::vector<int64_t> shape, std::vector<double> data,
                 ElementType type = ElementType::F32) {
  RefTensor t;
  t.shape = std::move(shape);
  t.type = type;
  t.data = std::move(data);
  EXPECT_EQ(int64_t(t.data.size()), t.numElements()) << "bad test tensor";
  return t;
}

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

// Deterministic pseudo-random values in [-scale, scale] (splitmix64; portable).
std::vector<double> randomValues(int64_t n, uint64_t seed, double scale = 1.0) {
  std::vector<double> v;
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    v.push_back(scale * (2.0 * double(z >> 11) / double(1ull << 53) - 1.0));
  }
  return v;
}

RefTensor randomTensor(std::vector<int64_t> shape, uint64_t seed, double scale = 1.0) {
  int64_t n = product(shape);
  return tensor(std::move(shape), randomValues(n, seed, scale));
}

// "tensor<2x3xf32>", "tensor<f32>".
std::string ty(const std::vector<int64_t> &shape, const std::string &element = "f32") {
  std::string s = "tensor<";
  for (int64_t d : shape)
    s += std::to_string(d) + "x";
  return s + element + ">";
}

// One parsed func.func, run as often as needed.
class Program {
public:
  explicit Program(const std::string &ir) {
    context_.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
    module_ = mlir::parseSourceString<mlir::ModuleOp>(ir, &context_);
    if (module_)
      function_ = *module_->getOps<mlir::func::FuncOp>().begin();
    else
      ADD_FAILURE() << "IR does not parse or verify:\n" << ir;
  }

  Result<std::vector<RefTensor>> tryRun(const std::vector<RefTensor> &args,
                                        bool roundFloats = false) {
    if (!function_)
      return Result<std::vector<RefTensor>>::error("no function");
    Options options;
    options.roundFloats = roundFloats;
    return run(function_, args, options);
  }

  // The results; a test failure (and no results) on error.
  std::vector<RefTensor> operator()(const std::vector<RefTensor> &args,
                                    bool roundFloats = false) {
    auto results = tryRun(args, roundFloats);
    if (!results) {
      ADD_FAILURE() << results.message();
      return {};
    }
    return *results;
  }

private:
  mlir::MLIRContext context_;
  mlir::OwningOpRef<mlir::ModuleOp> module_;
  mlir::func::FuncOp function_;
};

// L = sum(forward(args)[0] * weights), in f64.
double weightedLoss(Program &forward, const std::vector<RefTensor> &args,
                    const RefTensor &weights) {
  std::vector<RefTensor> out = forward(args);
  if (out.empty() || out[0].data.size() != weights.data.size()) {
    ADD_FAILURE() << "forward result does not match the weights";
    return 0;
  }
  double sum = 0;
  for (size_t i = 0; i < weights.data.size(); ++i)
    sum += out[0].data[i] * weights.data[i];
  return sum;
}

// Checks that `analytic` is dL/d args[index] for L = weightedLoss(forward, args, weights),
// element by element, against central differences.
void expectMatchesFiniteDifferences(Program &forward, std::vector<RefTensor> args,
                                    size_t index, const RefTensor &weights,
                                    const RefTensor &analytic) {
  ASSERT_EQ(analytic.shape, args[index].shape);
  int64_t checked = 0, nonZero = 0;
  for (size_t i = 0; i < args[index].data.size(); ++i) {
    double original = args[index].data[i];
    args[index].data[i] = original + kStep;
    double plus = weightedLoss(forward, args, weights);
    args[index].data[i] = original - kStep;
    double minus = weightedLoss(forward, args, weights);
    args[index].data[i] = original;
    double numeric = (plus - minus) / (2 * kStep);
    double g = analytic.data[i];
    EXPECT_NEAR(g, numeric, kTolerance * std::max(1.0, std::fabs(g)))
        << "argument " << index << ", flat index " << i;
    ++checked;
    nonZero += std::fabs(g) > 1e-3;
  }
  EXPECT_GT(checked, 0);
  EXPECT_GT(nonZero, 0) << "a test whose gradient is all zeros proves little";
}

// ---- embedding_grad -----------------------------------------------------------------

TEST(GradientOpsTest, EmbeddingGradMatchesFiniteDifferencesWithRepeatedIds) {
  // ids repeat 1 three times and 3 twice; 2 never occurs (its row gets no gradient).
  RefTensor w = randomTensor({5, 3}, 1);
  RefTensor ids = tensor({2, 3}, {1, 3, 1, 4, 1, 3}, ElementType::I64);
  RefTensor r = randomTensor({2, 3, 3}, 2);
  Program forward("func.func @f(%w: tensor<5x3xf32>, %ids: tensor<2x3xi64>) -> tensor<2x3x3xf32> {\n"
                  "  %0 = ap.embedding %w, %ids : (tensor<5x3xf32>, tensor<2x3xi64>) -> tensor<2x3x3xf32>\n"
                  "  return %0 : tensor<2x3x3xf32>\n}");
  Program grad("func.func @g(%ids: tensor<2x3xi64>, %dy: tensor<2x3x3xf32>) -> tensor<5x3xf32> {\n"
               "  %0 = ap.embedding_grad %ids, %dy : (tensor<2x3xi64>, tensor<2x3x3xf32>) -> tensor<5x3xf32>\n"
               "  return %0 : tensor<5x3xf32>\n}");
  std::vector<RefTensor> dw = grad({ids, r});
  ASSERT_EQ(dw.size(), 1u);
  expectMatchesFiniteDifferences(forward, {w, ids}, 0, r, dw[0]);
  // By hand: row 1 sums positions 0, 2 and 4; rows 0 and 2 are zero.
  for (int64_t h = 0; h < 3; ++h) {
    EXPECT_DOUBLE_EQ(dw[0].data[1 * 3 + h], r.data[0 * 3 + h] + r.data[2 * 3 + h] + r.data[4 * 3 + h]);
    EXPECT_EQ(dw[0].data[0 * 3 + h], 0.0);
    EXPECT_EQ(dw[0].data[2 * 3 + h], 0.0);
  }
}

TEST(GradientOpsTest, EmbeddingGradIdOutOfRangeNamesPosition) {
  Program grad("func.func @g(%ids: tensor<2x2xi32>, %dy: tensor<2x2x3xf32>) -> tensor<4x3xf32> {\n"
               "  %0 = ap.embedding_grad %ids, %dy : (tensor<2x2xi32>, tensor<2x2x3xf32>) -> tensor<4x3xf32>\n"
               "  return %0 : tensor<4x3xf32>\n}");
  for (double bad : {4.0, -1.0}) {
    auto results = grad.tryRun({tensor({2, 2}, {0, 1, 2, bad}, ElementType::I32),
                                randomTensor({2, 2, 3}, 3)});
    ASSERT_FALSE(results.isOk());
    EXPECT_TRUE(Contains(results.message(), "ap.embedding_grad"));
    EXPECT_TRUE(Contains(results.message(), "token id " + std::to_string(int64_t(bad))));
    EXPECT_TRUE(Contains(results.message(), "ids[1, 1]"));
    EXPECT_TRUE(Contains(results.message(), "[0, 4)"));
  }
}

// A vocabulary block is evaluated as the device at coordinate 0 of vocab_shard_axis:
// the block holds ids [0, rows) and any other id gives a zero row (embedding) or
// contributes nothing (embedding_grad), where the unpartitioned ops report an error.
TEST(GradientOpsTest, EmbeddingVocabBlockIsTheFirstBlock) {
  Program program(
      "func.func @f(%w: tensor<3x2xf32>, %ids: tensor<5xi64>, %dy: tensor<5x2xf32>) -> "
      "(tensor<5x2xf32>, tensor<3x2xf32>) {\n"
      "  %0 = ap.embedding %w, %ids {vocab_shard_axis = 0 : i64} : (tensor<3x2xf32>, "
      "tensor<5xi64>) -> tensor<5x2xf32>\n"
      "  %1 = ap.embedding_grad %ids, %dy {vocab_shard_axis = 1 : i64} : (tensor<5xi64>, "
      "tensor<5x2xf32>) -> tensor<3x2xf32>\n"
      "  return %0, %1 : tensor<5x2xf32>, tensor<3x2xf32>\n}");
  RefTensor w = tensor({3, 2}, {1, 2, 3, 4, 5, 6});
  RefTensor ids = tensor({5}, {2, 7, -1, 0, 2}, ElementType::I64); // 7 and -1: other blocks
  RefTensor dy = tensor({5, 2}, {1, 10, 100, 1000, 1e4, 1e5, 0.5, 0.25, 2, 20});
  for (bool roundFloats : {false, true}) {
    std::vector<RefTensor> out = program({w, ids, dy}, roundFloats);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].data, (std::vector<double>{5, 6, 0, 0, 0, 0, 1, 2, 5, 6}));
    // Row 0 gets position 3; row 1 nothing; row 2 positions 0 and 4.
    EXPECT_EQ(out[1].data, (std::vector<double>{0.5, 0.25, 0, 0, 3, 30}));
  }
}

// ---- rms_norm_grad ------------------------------------------------------------------

TEST(GradientOpsTest, RmsNormGradMatchesFiniteDifferences) {
  const std::string x = ty({2, 3, 5}), w = ty({5});
  for (double eps : {1e-5, 0.5}) { // a large epsilon makes its term visible
    SCOPED_TRACE(::testing::Message() << "epsilon " << eps);
    std::string attr = "{epsilon = " + std::to_string(eps) + " : f64}";
    Program forward("func.func @f(%x: " + x + ", %w: " + w + ") -> " + x + " {\n"
                    "  %0 = ap.rms_norm %x, %w " + attr + " : (" + x + ", " + w + ") -> " + x + "\n"
                    "  return %0 : " + x + "\n}");
    Program grad("func.func @g(%x: " + x + ", %w: " + w + ", %dy: " + x + ") -> (" + x + ", " + w + ") {\n"
                 "  %0:2 = ap.rms_norm_grad %x, %w, %dy " + attr + " : (" + x + ", " + w + ", " + x +
                 ") -> (" + x + ", " + w + ")\n"
                 "  return %0#0, %0#1 : " + x + ", " + w + "\n}");
    RefTensor input = randomTensor({2, 3, 5}, 4, 2.0), weight = randomTensor({5}, 5);
    RefTensor r = randomTensor({2, 3, 5}, 6);
    std::vector<RefTensor> grads = grad({input, weight, r});
    ASSERT_EQ(grads.size(), 2u);
    expectMatchesFiniteDifferences(forward, {input, weight}, 0, r, grads[0]);
    expectMatchesFiniteDifferences(forward, {input, weight}, 1, r, grads[1]);
  }
}

// ---- rope_grad ----------------------------------------------------------------------

void checkRopeGrad(const std::vector<int64_t> &shape, const std::string &attributes) {
  const std::string x = ty(shape);
  Program forward("func.func @f(%x: " + x + ") -> " + x + " {\n"
                  "  %0 = ap.rope %x " + attributes + " : (" + x + ") -> " + x + "\n"
                  "  return %0 : " + x + "\n}");
  Program grad("func.func @g(%dy: " + x + ") -> " + x + " {\n"
               "  %0 = ap.rope_grad %dy " + attributes + " : (" + x + ") -> " + x + "\n"
               "  return %0 : " + x + "\n}");
  RefTensor input = randomTensor(shape, 7), r = randomTensor(shape, 8);
  std::vector<RefTensor> dx = grad({r});
  ASSERT_EQ(dx.size(), 1u);
  expectMatchesFiniteDifferences(forward, {input}, 0, r, dx[0]);
}

TEST(GradientOpsTest, RopeGradDefaultMatchesFiniteDifferences) {
  checkRopeGrad({2, 3, 2, 6}, "{theta = 100.0 : f64}");
  checkRopeGrad({1, 4, 2, 6}, "{theta = 10000.0 : f64, position_offset = 5 : i64}");
}

TEST(GradientOpsTest, RopeGradLlama3MatchesFiniteDifferences) {
  // head_dim 16, theta 10000, original context 256, low 1, high 4: every band of the
  // llama3 rescaling is used (see InterpreterTest.RopeLlama3ScalesInverseFrequencies).
  checkRopeGrad({1, 3, 2, 16},
                "{theta = 10000.0 : f64, rope_type = \"llama3\", factor = 8.0 : f64, "
                "low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, "
                "original_max_position_embeddings = 256 : i64, position_offset = 7 : i64}");
}

TEST(GradientOpsTest, RopeGradIsTheInverseRotation) {
  // rope_grad(rope(x)) = x: the adjoint of a rotation is its inverse.
  const std::string x = ty({1, 3, 1, 4});
  const std::string attributes = "{theta = 10.0 : f64, position_offset = 2 : i64}";
  Program both("func.func @f(%x: " + x + ") -> " + x + " {\n"
               "  %0 = ap.rope %x " + attributes + " : (" + x + ") -> " + x + "\n"
               "  %1 = ap.rope_grad %0 " + attributes + " : (" + x + ") -> " + x + "\n"
               "  return %1 : " + x + "\n}");
  RefTensor input = randomTensor({1, 3, 1, 4}, 9);
  std::vector<RefTensor> out = both({input});
  ASSERT_EQ(out.size(), 1u);
  for (size_t i = 0; i < input.data.size(); ++i)
    EXPECT_NEAR(out[0].data[i], input.data[i], 1e-15) << i;
}

// ---- attention_grad -----------------------------------------------------------------

TEST(GradientOpsTest, AttentionGradGqaMatchesFiniteDifferences) {
  // 4 query heads over 2 kv heads: key/value gradients sum over the two query heads of
  // each group.
  const std::vector<int64_t> qShape = {2, 3, 4, 3}, kvShape = {2, 3, 2, 3};
  const std::string q = ty(qShape), kv = ty(kvShape);
  const char *variants[] = {"", "{causal = false}", "{scale = 0.7 : f64}",
                            "{causal = false, scale = 1.3 : f64}"};
  for (const char *attributes : variants) {
    SCOPED_TRACE(::testing::Message() << "attributes '" << attributes << "'");
    Program forward("func.func @f(%q: " + q + ", %k: " + kv + ", %v: " + kv + ") -> " + q + " {\n"
                    "  %0 = ap.attention %q, %k, %v " + attributes + " : (" + q + ", " + kv + ", " +
                    kv + ") -> " + q + "\n"
                    "  return %0 : " + q + "\n}");
    Program grad("func.func @g(%q: " + q + ", %k: " + kv + ", %v: " + kv + ", %dy: " + q + ") -> (" +
                 q + ", " + kv + ", " + kv + ") {\n"
                 "  %0:3 = ap.attention_grad %q, %k, %v, %dy " + attributes + " : (" + q + ", " +
                 kv + ", " + kv + ", " + q + ") -> (" + q + ", " + kv + ", " + kv + ")\n"
                 "  return %0#0, %0#1, %0#2 : " + q + ", " + kv + ", " + kv + "\n}");
    RefTensor query = randomTensor(qShape, 10, 2.0), key = randomTensor(kvShape, 11, 2.0);
    RefTensor value = randomTensor(kvShape, 12), r = randomTensor(qShape, 13);
    std::vector<RefTensor> grads = grad({query, key, value, r});
    ASSERT_EQ(grads.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      SCOPED_TRACE(::testing::Message() << "gradient of operand " << i);
      expectMatchesFiniteDifferences(forward, {query, key, value}, i, r, grads[i]);
    }
  }
}

TEST(GradientOpsTest, AttentionGradCausalFirstQueryOnlyReachesFirstKey) {
  // Causal, one query position sees only key 0 (probability 1): its gradient w.r.t. the
  // query is zero and dV of key 0 is its dO.
  const std::string x = ty({1, 1, 1, 2});
  Program grad("func.func @g(%q: " + x + ", %k: " + x + ", %v: " + x + ", %dy: " + x + ") -> (" +
               x + ", " + x + ", " + x + ") {\n"
               "  %0:3 = ap.attention_grad %q, %k, %v, %dy : (" + x + ", " + x + ", " + x + ", " + x +
               ") -> (" + x + ", " + x + ", " + x + ")\n"
               "  return %0#0, %0#1, %0#2 : " + x + ", " + x + ", " + x + "\n}");
  std::vector<RefTensor> grads =
      grad({tensor({1, 1, 1, 2}, {0.3, -1}), tensor({1, 1, 1, 2}, {2, 0.5}),
            tensor({1, 1, 1, 2}, {1, 2}), tensor({1, 1, 1, 2}, {0.25, -4})});
  ASSERT_EQ(grads.size(), 3u);
  EXPECT_EQ(grads[0].data, (std::vector<double>{0, 0}));
  EXPECT_EQ(grads[1].data, (std::vector<double>{0, 0}));
  EXPECT_EQ(grads[2].data, (std::vector<double>{0.25, -4}));
}

// ---- silu_grad ----------------------------------------------------------------------

TEST(GradientOpsTest, SiluGradMatchesFiniteDifferences) {
  const std::string x = ty({3, 4});
  Program forward("func.func @f(%x: " + x + ") -> " + x + " {\n"
                  "  %0 = ap.silu %x : " + x + "\n"
                  "  return %0 : " + x + "\n}");
  Program grad("func.func @g(%x: " + x + ", %dy: " + x + ") -> " + x + " {\n"
               "  %0 = ap.silu_grad %x, %dy : " + x + "\n"
               "  return %0 : " + x + "\n}");
  RefTensor input = randomTensor({3, 4}, 14, 4.0), r = randomTensor({3, 4}, 15);
  std::vector<RefTensor> dx = grad({input, r});
  ASSERT_EQ(dx.size(), 1u);
  expectMatchesFiniteDifferences(forward, {input}, 0, r, dx[0]);
  // By hand at x = 0: silu'(0) = 1/2.
  RefTensor zero = tensor({3, 4}, std::vector<double>(12, 0.0));
  EXPECT_EQ(grad({zero, r})[0].data[5], 0.5 * r.data[5]);
}

// ---- cross_entropy_grad -------------------------------------------------------------

TEST(GradientOpsTest, CrossEntropyGradMatchesFiniteDifferences) {
  const std::string logits = ty({2, 3, 5}), labels = ty({2, 3}, "i64"), scalar = ty({});
  struct Case {
    const char *attributes;
    double ignore;
  } cases[] = {
      {"", -100},
      {"{reduction = \"sum\"}", -100},
      {"{ignore_index = -1 : i64}", -1},
      {"{ignore_index = 3 : i64, reduction = \"sum\"}", 3},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(::testing::Message() << "attributes '" << c.attributes << "'");
    Program forward("func.func @f(%l: " + logits + ", %y: " + labels + ") -> " + scalar + " {\n"
                    "  %0 = ap.cross_entropy %l, %y " + c.attributes + " : (" + logits + ", " +
                    labels + ") -> " + scalar + "\n"
                    "  return %0 : " + scalar + "\n}");
    Program grad("func.func @g(%l: " + logits + ", %y: " + labels + ", %dl: " + scalar + ") -> " +
                 logits + " {\n"
                 "  %0 = ap.cross_entropy_grad %l, %y, %dl " + c.attributes + " : (" + logits +
                 ", " + labels + ", " + scalar + ") -> " + logits + "\n"
                 "  return %0 : " + logits + "\n}");
    // Positions 1 and 4 are ignored.
    RefTensor y = tensor({2, 3}, {2, c.ignore, 4, 0, c.ignore, 1}, ElementType::I64);
    RefTensor l = randomTensor({2, 3, 5}, 16, 3.0), r = tensor({}, {0.7});
    std::vector<RefTensor> dl = grad({l, y, r});
    ASSERT_EQ(dl.size(), 1u);
    expectMatchesFiniteDifferences(forward, {l, y}, 0, r, dl[0]);
    for (int64_t v = 0; v < 5; ++v) {
      EXPECT_EQ(dl[0].data[1 * 5 + v], 0.0);
      EXPECT_EQ(dl[0].data[4 * 5 + v], 0.0);
    }
  }
}

TEST(GradientOpsTest, CrossEntropyGradAllIgnoredIsZeroNotNaN) {
  const std::string logits = ty({2, 3}), labels = ty({2}, "i64"), scalar = ty({});
  for (const char *reduction : {"mean", "sum"}) {
    SCOPED_TRACE(reduction);
    Program grad("func.func @g(%l: " + logits + ", %y: " + labels + ", %dl: " + scalar + ") -> " +
                 logits + " {\n"
                 "  %0 = ap.cross_entropy_grad %l, %y, %dl {reduction = \"" + reduction +
                 "\"} : (" + logits + ", " + labels + ", " + scalar + ") -> " + logits + "\n"
                 "  return %0 : " + logits + "\n}");
    for (bool roundFloats : {false, true}) {
      std::vector<RefTensor> dl = grad({randomTensor({2, 3}, 17),
                                        tensor({2}, {-100, -100}, ElementType::I64),
                                        tensor({}, {1.0})},
                                       roundFloats);
      ASSERT_EQ(dl.size(), 1u);
      EXPECT_EQ(dl[0].data, std::vector<double>(6, 0.0));
    }
  }
}

TEST(GradientOpsTest, CrossEntropyGradLabelOutOfRange) {
  const std::string logits = ty({2, 3}), labels = ty({2}, "i64"), scalar = ty({});
  Program grad("func.func @g(%l: " + logits + ", %y: " + labels + ", %dl: " + scalar + ") -> " +
               logits + " {\n"
               "  %0 = ap.cross_entropy_grad %l, %y, %dl : (" + logits + ", " + labels + ", " +
               scalar + ") -> " + logits + "\n"
               "  return %0 : " + logits + "\n}");
  auto results = grad.tryRun({randomTensor({2, 3}, 18), tensor({2}, {1, 3}, ElementType::I64),
                              tensor({}, {1.0})});
  ASSERT_FALSE(results.isOk());
  EXPECT_TRUE(Contains(results.message(), "ap.cross_entropy_grad"));
  EXPECT_TRUE(Contains(results.message(), "label 3"));
  EXPECT_TRUE(Contains(results.message(), "labels[1]"));
}

// ---- grad_norm ----------------------------------------------------------------------

TEST(GradientOpsTest, GradNormOverSeveralTensors) {
  // sqrt(3^2 + 4^2 + 12^2) = 13, over an f32 and a bf16 operand.
  Program norm("func.func @n(%a: tensor<2xf32>, %b: tensor<1x1xbf16>) -> (tensor<f32>, tensor<f32>) {\n"
               "  %0 = ap.grad_norm %a, %b : (tensor<2xf32>, tensor<1x1xbf16>) -> tensor<f32>\n"
               "  %1 = ap.grad_norm %a, %a : (tensor<2xf32>, tensor<2xf32>) -> tensor<f32>\n"
               "  return %0, %1 : tensor<f32>, tensor<f32>\n}");
  std::vector<RefTensor> out =
      norm({tensor({2}, {3, -4}), tensor({1, 1}, {12}, ElementType::BF16)}, true);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape, std::vector<int64_t>{});
  EXPECT_EQ(out[0].type, ElementType::F32);
  EXPECT_EQ(out[0].data, std::vector<double>{13});
  EXPECT_EQ(out[1].data, std::vector<double>{double(float(std::sqrt(50.0)))});
}

TEST(GradientOpsTest, GradNormSquaredAndSqrt) {
  // The partitioned form: sum of squares (169), then sqrt (13); sqrt(-4) is NaN.
  Program norm("func.func @n(%a: tensor<2xf32>, %b: tensor<1x1xbf16>, %c: tensor<2xf32>) -> "
               "(tensor<f32>, tensor<f32>, tensor<2xf32>) {\n"
               "  %0 = ap.grad_norm %a, %b {squared = true} : (tensor<2xf32>, tensor<1x1xbf16>) "
               "-> tensor<f32>\n"
               "  %1 = ap.sqrt %0 : tensor<f32>\n"
               "  %2 = ap.sqrt %c : tensor<2xf32>\n"
               "  return %0, %1, %2 : tensor<f32>, tensor<f32>, tensor<2xf32>\n}");
  for (bool roundFloats : {false, true}) {
    std::vector<RefTensor> out = norm({tensor({2}, {3, -4}),
                                       tensor({1, 1}, {12}, ElementType::BF16),
                                       tensor({2}, {2.25, -4})},
                                      roundFloats);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].data, std::vector<double>{169});
    EXPECT_EQ(out[1].data, std::vector<double>{13});
    EXPECT_EQ(out[2].data[0], 1.5);
    EXPECT_TRUE(std::isnan(out[2].data[1]));
  }
}

// ---- vocabulary-parallel cross-entropy ----------------------------------------------

TEST(GradientOpsTest, VocabParallelOpsByHand) {
  // Two rows of 3 logits, the second ignored: row_max {2, 3}; sum_exp
  // {e^-2 + e^-1 + 1, 3}; target_logit {2, 0} (the ignored row has none).
  const std::string L = ty({2, 3}), Y = ty({2}, "i64"), R = ty({2}), S = ty({});
  Program program(
      "func.func @f(%l: " + L + ", %y: " + Y + ", %dl: " + S + ") -> (" + R + ", " + R + ", " +
      R + ", " + S + ", " + L + ") {\n"
      "  %m = ap.vocab_parallel_max %l : (" + L + ") -> " + R + "\n"
      "  %s:2 = ap.vocab_parallel_stats %l, %y, %m : (" + L + ", " + Y + ", " + R + ") -> (" + R +
      ", " + R + ")\n"
      "  %loss = ap.vocab_parallel_loss %m, %s#0, %s#1, %y : (" + R + ", " + R + ", " + R + ", " +
      Y + ") -> " + S + "\n"
      "  %g = ap.vocab_parallel_loss_grad %l, %y, %m, %s#0, %dl : (" + L + ", " + Y + ", " + R +
      ", " + R + ", " + S + ") -> " + L + "\n"
      "  return %m, %s#0, %s#1, %loss, %g : " + R + ", " + R + ", " + R + ", " + S + ", " + L +
      "\n}");
  std::vector<RefTensor> out = program({tensor({2, 3}, {0, 1, 2, 3, 3, 3}),
                                        tensor({2}, {2, -100}, ElementType::I64),
                                        tensor({}, {0.5})});
  ASSERT_EQ(out.size(), 5u);
  double z = std::exp(-2.0) + std::exp(-1.0) + 1.0;
  EXPECT_EQ(out[0].data, (std::vector<double>{2, 3}));
  EXPECT_NEAR(out[1].data[0], z, 1e-15);
  EXPECT_NEAR(out[1].data[1], 3.0, 1e-15);
  EXPECT_EQ(out[2].data, (std::vector<double>{2, 0}));
  EXPECT_NEAR(out[3].data[0], std::log(z), 1e-15); // log z + 2 - 2, one kept row
  // Kept row: 0.5 (softmax - onehot); ignored row: 0.
  std::vector<double> expected = {0.5 * std::exp(-2.0) / z, 0.5 * std::exp(-1.0) / z,
                                  0.5 * (1.0 / z - 1.0), 0, 0, 0};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(out[4].data[i], expected[i], 1e-15) << "at " << i;
}

TEST(GradientOpsTest, VocabParallelTargetOnlyForLabelsInTheBlock) {
  // Labels are not range-checked: a kept label outside the block [0, 3) has target 0
  // and still counts as kept; the ignore index (here -1) never does.
  const std::string L = ty({4, 3}), Y = ty({4}, "i32"), R = ty({4});
  Program program("func.func @f(%l: " + L + ", %y: " + Y + ", %m: " + R + ") -> (" + R + ", " +
                  R + ") {\n"
                  "  %s:2 = ap.vocab_parallel_stats %l, %y, %m {ignore_index = -1 : i64, "
                  "vocab_shard_axis = 0 : i64} : (" + L + ", " + Y + ", " + R + ") -> (" + R +
                  ", " + R + ")\n"
                  "  return %s#0, %s#1 : " + R + ", " + R + "\n}");
  std::vector<RefTensor> out =
      program({tensor({4, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}),
               tensor({4}, {1, 3, -1, -100}, ElementType::I32), tensor({4}, {0, 0, 0, 0})});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].data, (std::vector<double>{2, 0, 0, 0}));
  EXPECT_NEAR(out[0].data[0], std::exp(1.0) + std::exp(2.0) + std::exp(3.0), 1e-12);
}

// The chain on one device (the whole vocabulary, vocab_start = 0) is cross_entropy and
// cross_entropy_grad, for both reductions, with and without the global kept count, and
// with a custom ignore index; random logits, some labels ignored.
TEST(GradientOpsTest, VocabParallelChainEqualsCrossEntropy) {
  const std::string L = ty({3, 4, 7}), Y = ty({3, 4}, "i64"), R = ty({3, 4}), S = ty({});
  struct Case {
    const char *ignoreAttr; // the stats op's attributes
    const char *lossAttr;   // the loss ops' attributes
    double ignore;
  } cases[] = {
      {"", "", -100},
      {"", "{reduction = \"sum\"}", -100},
      {"{ignore_index = -1 : i64}", "{ignore_index = -1 : i64}", -1},
      {"{ignore_index = 5 : i64}", "{ignore_index = 5 : i64, reduction = \"sum\"}", 5},
  };
  for (const Case &c : cases)
    for (bool withCount : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "attributes '" << c.lossAttr << "', count "
                                        << withCount);
      std::string count = withCount ? " count %n" : "", countType = withCount ? ", " + S : "";
      Program program(
          "func.func @f(%l: " + L + ", %y: " + Y + ", %dl: " + S + ", %n: " + S + ") -> (" + S +
          ", " + S + ", " + L + ", " + L + ") {\n"
          "  %m = ap.vocab_parallel_max %l : (" + L + ") -> " + R + "\n"
          "  %s:2 = ap.vocab_parallel_stats %l, %y, %m " + c.ignoreAttr + " : (" + L + ", " + Y +
          ", " + R + ") -> (" + R + ", " + R + ")\n"
          "  %loss = ap.vocab_parallel_loss %m, %s#0, %s#1, %y" + count + " " + c.lossAttr +
          " : (" + R + ", " + R + ", " + R + ", " + Y + countType + ") -> " + S + "\n"
          "  %ref = ap.cross_entropy %l, %y" + count + " " + c.lossAttr + " : (" + L + ", " + Y +
          countType + ") -> " + S + "\n"
          "  %g = ap.vocab_parallel_loss_grad %l, %y, %m, %s#0, %dl" + count + " " + c.lossAttr +
          " : (" + L + ", " + Y + ", " + R + ", " + R + ", " + S + countType + ") -> " + L + "\n"
          "  %gref = ap.cross_entropy_grad %l, %y, %dl" + count + " " + c.lossAttr + " : (" + L +
          ", " + Y + ", " + S + countType + ") -> " + L + "\n"
          "  return %loss, %ref, %g, %gref : " + S + ", " + S + ", " + L + ", " + L + "\n}");
      // Labels in [0, 7), every third position ignored.
      std::vector<double> labels;
      for (double v : randomValues(12, 41))
        labels.push_back(labels.size() % 3 == 1 ? c.ignore : std::floor((v + 1) * 3.5));
      std::vector<RefTensor> out =
          program({randomTensor({3, 4, 7}, 40, 4.0), tensor({3, 4}, labels, ElementType::I64),
                   tensor({}, {0.7}), tensor({}, {11.0})});
      ASSERT_EQ(out.size(), 4u);
      EXPECT_NEAR(out[0].data[0], out[1].data[0], 1e-12 * std::fabs(out[1].data[0]));
      EXPECT_GT(std::fabs(out[1].data[0]), 0.1);
      for (size_t i = 0; i < out[3].data.size(); ++i)
        EXPECT_NEAR(out[2].data[i], out[3].data[i], 1e-12) << "at " << i;
    }
}

// ---- adamw --------------------------------------------------------------------------

struct AdamWHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
  std::optional<double> maxGradNorm;
};

// One AdamW update written out (Loshchilov & Hutter with torch's conventions: decoupled
// decay p *= 1 - lr wd first, bias-corrected moments, eps outside the square root).
void handAdamWStep(std::vector<double> &p, std::vector<double> &m, std::vector<double> &v,
                   std::vector<double> g, int t, double lr, const AdamWHyper &hp) {
  if (hp.maxGradNorm) {
    double norm = 0;
    for (double x : g)
      norm += x * x;
    norm = std::sqrt(norm);
    double coefficient = *hp.maxGradNorm / (norm + 1e-6);
    if (coefficient < 1)
      for (double &x : g)
        x *= coefficient;
  }
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] -= lr * hp.weightDecay * p[i];
    m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * g[i];
    v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * g[i] * g[i];
    double mHat = m[i] / (1 - std::pow(hp.beta1, t));
    double vHat = v[i] / (1 - std::pow(hp.beta2, t));
    p[i] -= lr * mHat / (std::sqrt(vHat) + hp.eps);
  }
}

// An adamw update of a [2, 3] parameter; with max_grad_norm, the norm comes from
// ap.grad_norm of the gradient in the same function (the optional operand).
std::string adamwProgram(const AdamWHyper &hp, bool defaults) {
  const std::string p = ty({2, 3}), step = ty({}, "i64"), scalar = ty({});
  std::string attributes;
  if (!defaults)
    attributes = "beta1 = " + std::to_string(hp.beta1) + " : f64, beta2 = " +
                 std::to_string(hp.beta2) + " : f64, epsilon = " + std::to_string(hp.eps) +
                 " : f64, weight_decay = " +
                 std::to_string(hp.weightDecay) + " : f64";
  std::string norm, normOperand, normType;
  if (hp.maxGradNorm) {
    attributes += std::string(attributes.empty() ? "" : ", ") + "max_grad_norm = " +
                  std::to_string(*hp.maxGradNorm) + " : f64";
    norm = "  %n = ap.grad_norm %g : (" + p + ") -> " + scalar + "\n";
    normOperand = ", %n";
    normType = ", " + scalar;
  }
  if (!attributes.empty())
    attributes = "{" + attributes + "}";
  return "func.func @step(%p: " + p + ", %g: " + p + ", %m: " + p + ", %v: " + p + ", %t: " + step +
         ", %lr: " + scalar + ") -> (" + p + ", " + p + ", " + p + ") {\n" + norm +
         "  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr" + normOperand + " " + attributes + " : (" +
         p + ", " + p + ", " + p + ", " + p + ", " + step + ", " + scalar + normType + ") -> (" +
         p + ", " + p + ", " + p + ")\n"
         "  return %0#0, %0#1, %0#2 : " + p + ", " + p + ", " + p + "\n}";
}

// Two steps of the op (its results fed back) against two hand-written steps.
std::vector<double> checkTwoAdamWSteps(const AdamWHyper &hp, bool defaults) {
  Program program(adamwProgram(hp, defaults));
  const double lr = 0.05;
  std::vector<double> p = randomValues(6, 19), m(6, 0.0), v(6, 0.0);
  std::vector<std::vector<double>> grads = {randomValues(6, 20, 3.0), randomValues(6, 21, 3.0)};
  RefTensor param = tensor({2, 3}, p), expAvg = tensor({2, 3}, m), expAvgSq = tensor({2, 3}, v);
  for (int t = 1; t <= 2; ++t) {
    SCOPED_TRACE(::testing::Message() << "step " << t);
    handAdamWStep(p, m, v, grads[t - 1], t, lr, hp);
    std::vector<RefTensor> out =
        program({param, tensor({2, 3}, grads[t - 1]), expAvg, expAvgSq,
                 tensor({}, {double(t)}, ElementType::I64), tensor({}, {lr})});
    if (out.size() != 3u) {
      ADD_FAILURE() << "expected 3 results";
      return {};
    }
    param = out[0], expAvg = out[1], expAvgSq = out[2];
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_NEAR(param.data[i], p[i], 1e-13) << i;
      EXPECT_NEAR(expAvg.data[i], m[i], 1e-13) << i;
      EXPECT_NEAR(expAvgSq.data[i], v[i], 1e-13) << i;
    }
  }
  return param.data;
}

TEST(GradientOpsTest, AdamWTwoStepsMatchTheFormula) {
  AdamWHyper defaults;
  std::vector<double> plain = checkTwoAdamWSteps(defaults, true);
  AdamWHyper custom;
  custom.beta1 = 0.8;
  custom.beta2 = 0.99;
  custom.eps = 1e-6;
  custom.weightDecay = 0.1;
  checkTwoAdamWSteps(custom, false);

  // The gradients have norms of about 4: max_grad_norm 1 clips them, 100 does not.
  AdamWHyper clipped = defaults;
  clipped.maxGradNorm = 1.0;
  std::vector<double> withClip = checkTwoAdamWSteps(clipped, true);
  AdamWHyper loose = defaults;
  loose.maxGradNorm = 100.0;
  std::vector<double> withoutClip = checkTwoAdamWSteps(loose, true);
  EXPECT_EQ(withoutClip, plain) << "a clip that does not trigger must change nothing";
  EXPECT_NE(withClip, plain) << "the clip should trigger";
}

TEST(GradientOpsTest, AdamWFirstStepByHand) {
  // Step 1 from zero moments: m_hat = g, v_hat = g^2, so p' = p (1 - lr wd) - lr g /
  // (|g| + eps): a sign step of size lr.
  Program program(adamwProgram(AdamWHyper(), true));
  std::vector<RefTensor> out =
      program({tensor({2, 3}, {1, 1, 1, -2, 0, 0.5}), tensor({2, 3}, {0.5, -3, 1e-3, 2, 1, -1}),
               tensor({2, 3}, std::vector<double>(6, 0.0)),
               tensor({2, 3}, std::vector<double>(6, 0.0)), tensor({}, {1}, ElementType::I64),
               tensor({}, {0.1})});
  ASSERT_EQ(out.size(), 3u);
  double decay = 1 - 0.1 * 0.01;
  std::vector<double> expected = {decay - 0.1, decay + 0.1,        decay - 0.1 * 1e-3 / (1e-3 + 1e-8),
                                  -2 * decay - 0.1, -0.1, 0.5 * decay + 0.1};
  for (size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(out[0].data[i], expected[i], 1e-8) << i;
}

TEST(GradientOpsTest, AdamWResultsAreF32AndStepZeroIsAnError) {
  Program program(adamwProgram(AdamWHyper(), true));
  std::vector<RefTensor> args = {randomTensor({2, 3}, 22), randomTensor({2, 3}, 23),
                                 randomTensor({2, 3}, 24, 0.1),
                                 tensor({2, 3}, std::vector<double>(6, 0.01)),
                                 tensor({}, {3}, ElementType::I64), tensor({}, {1e-3})};
  std::vector<RefTensor> rounded = program(args, /*roundFloats=*/true);
  ASSERT_EQ(rounded.size(), 3u);
  for (const RefTensor &t : rounded) {
    EXPECT_EQ(t.type, ElementType::F32);
    for (double x : t.data)
      EXPECT_EQ(x, double(float(x)));
  }
  args[4] = tensor({}, {0}, ElementType::I64);
  auto results = program.tryRun(args);
  ASSERT_FALSE(results.isOk());
  EXPECT_TRUE(Contains(results.message(), "ap.adamw"));
  EXPECT_TRUE(Contains(results.message(), "step must be at least 1"));
}

// ---- broadcast and fill -------------------------------------------------------------

TEST(GradientOpsTest, BroadcastCopiesAlongNewDims) {
  Program program("func.func @b(%x: tensor<3xf32>, %y: tensor<2x4xf32>) -> (tensor<2x3x4xf32>, tensor<2x3x4xf32>) {\n"
                  "  %0 = ap.broadcast %x {dims = array<i64: 0, 2>} : tensor<3xf32> to tensor<2x3x4xf32>\n"
                  "  %1 = ap.broadcast %y {dims = array<i64: 1>} : tensor<2x4xf32> to tensor<2x3x4xf32>\n"
                  "  return %0, %1 : tensor<2x3x4xf32>, tensor<2x3x4xf32>\n}");
  RefTensor x = tensor({3}, {1, 2, 3}), y = tensor({2, 4}, {10, 11, 12, 13, 20, 21, 22, 23});
  std::vector<RefTensor> out = program({x, y}, true);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].shape, (std::vector<int64_t>{2, 3, 4}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_EQ(out[0].data[(i * 3 + j) * 4 + k], x.data[j]);
        EXPECT_EQ(out[1].data[(i * 3 + j) * 4 + k], y.data[i * 4 + k]);
      }
}

TEST(GradientOpsTest, BroadcastIsTheAdjointOfReduceSum) {
  // sum(broadcast(x) * Y) = sum(x * reduce_sum(Y)) for the same dims.
  Program program("func.func @b(%x: tensor<3x2xf32>, %y: tensor<4x3x5x2xf32>) -> (tensor<4x3x5x2xf32>, tensor<3x2xf32>) {\n"
                  "  %0 = ap.broadcast %x {dims = array<i64: 0, 2>} : tensor<3x2xf32> to tensor<4x3x5x2xf32>\n"
                  "  %1 = ap.reduce_sum %y {dims = array<i64: 0, 2>} : tensor<4x3x5x2xf32> to tensor<3x2xf32>\n"
                  "  return %0, %1 : tensor<4x3x5x2xf32>, tensor<3x2xf32>\n}");
  RefTensor x = randomTensor({3, 2}, 25), y = randomTensor({4, 3, 5, 2}, 26);
  std::vector<RefTensor> out = program({x, y});
  ASSERT_EQ(out.size(), 2u);
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < y.data.size(); ++i)
    lhs += out[0].data[i] * y.data[i];
  for (size_t i = 0; i < x.data.size(); ++i)
    rhs += x.data[i] * out[1].data[i];
  EXPECT_NEAR(lhs, rhs, 1e-12);
}

TEST(GradientOpsTest, Fill) {
  Program program("func.func @f() -> (tensor<2x3xbf16>, tensor<f32>, tensor<2xbf16>) {\n"
                  "  %0 = ap.fill {value = 1.5 : f64} : tensor<2x3xbf16>\n"
                  "  %1 = ap.fill {value = 1.0 : f64} : tensor<f32>\n"
                  "  %2 = ap.fill {value = 0.1 : f64} : tensor<2xbf16>\n"
                  "  return %0, %1, %2 : tensor<2x3xbf16>, tensor<f32>, tensor<2xbf16>\n}");
  std::vector<RefTensor> out = program({}, /*roundFloats=*/true);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out[0].type, ElementType::BF16);
  EXPECT_EQ(out[0].data, std::vector<double>(6, 1.5));
  EXPECT_EQ(out[1].shape, std::vector<int64_t>{});
  EXPECT_EQ(out[1].data, std::vector<double>{1.0});
  EXPECT_EQ(out[2].data, std::vector<double>(2, 0.10009765625)); // 0.1 in bf16
  std::vector<RefTensor> exact = program({}, /*roundFloats=*/false);
  ASSERT_EQ(exact.size(), 3u);
  EXPECT_EQ(exact[2].data, std::vector<double>(2, 0.1));
}

// ---- options and several results ----------------------------------------------------

TEST(GradientOpsTest, RoundFloatsOffKeepsF64Values) {
  Program program("func.func @r(%a: tensor<2xf32>, %b: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xbf16>, tensor<2xi64>) {\n"
                  "  %0 = ap.add %a, %b : tensor<2xf32>\n"
                  "  %1 = ap.cast %0 : tensor<2xf32> to tensor<2xbf16>\n"
                  "  %2 = ap.cast %0 : tensor<2xf32> to tensor<2xi64>\n"
                  "  return %0, %1, %2 : tensor<2xf32>, tensor<2xbf16>, tensor<2xi64>\n}");
  std::vector<RefTensor> args = {tensor({2}, {1, -2}), tensor({2}, {1e-10, -0.1})};
  std::vector<RefTensor> rounded = program(args, true), exact = program(args, false);
  ASSERT_EQ(rounded.size(), 3u);
  ASSERT_EQ(exact.size(), 3u);
  const double sum1 = -2.0 + -0.1; // as the interpreter computes it, in f64
  EXPECT_EQ(rounded[0].data, (std::vector<double>{1.0, double(float(sum1))}));
  EXPECT_EQ(exact[0].data, (std::vector<double>{1 + 1e-10, sum1}));
  EXPECT_EQ(exact[1].data, (std::vector<double>{1 + 1e-10, sum1})); // no bf16 rounding
  EXPECT_EQ(exact[2].data, (std::vector<double>{1, -2})); // integers still truncate
  EXPECT_EQ(rounded[2].data, (std::vector<double>{1, -2}));
}

TEST(GradientOpsTest, RoundFloatsOffSkipsRmsNormIntermediateRounding) {
  // bf16 rms_norm: by default the normalised value is rounded to bf16 before the weight
  // multiplies it; in pure f64 it is not rounded at all.
  Program program("func.func @r(%x: tensor<1x3xbf16>, %w: tensor<3xbf16>) -> tensor<1x3xbf16> {\n"
                  "  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : (tensor<1x3xbf16>, tensor<3xbf16>) -> tensor<1x3xbf16>\n"
                  "  return %0 : tensor<1x3xbf16>\n}");
  std::vector<double> x = {0.3125, -1.75, 2.25}, w = {1.125, 0.6875, -1.3125};
  double inv = 1 / std::sqrt((x[0] * x[0] + x[1] * x[1] + x[2] * x[2]) / 3 + 1e-6);
  std::vector<RefTensor> out = program({tensor({1, 3}, x, ElementType::BF16),
                                        tensor({3}, w, ElementType::BF16)});
  ASSERT_EQ(out.size(), 1u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_NEAR(out[0].data[i], w[i] * x[i] * inv, 1e-15) << i;
}

TEST(GradientOpsTest, EvaluateReturnsOneTensorPerResult) {
  mlir::MLIRContext context;
  context.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(
      "func.func @e(%x: tensor<1x2xf32>, %w: tensor<2xf32>, %dy: tensor<1x2xf32>) -> tensor<2xf32> {\n"
      "  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-06 : f64} : (tensor<1x2xf32>, tensor<2xf32>, tensor<1x2xf32>) -> (tensor<1x2xf32>, tensor<2xf32>)\n"
      "  return %0#1 : tensor<2xf32>\n}",
      &context);
  ASSERT_TRUE(module);
  auto fn = *module->getOps<mlir::func::FuncOp>().begin();
  mlir::Operation *op = &fn.getBody().front().front();
  RefTensor x = tensor({1, 2}, {3, 4}), w = tensor({2}, {1, 1}), dy = tensor({1, 2}, {1, 0});
  auto results = evaluate(op, {&x, &w, &dy});
  ASSERT_TRUE(results.isOk()) << results.message();
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ((*results)[0].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ((*results)[1].shape, (std::vector<int64_t>{2}));
  // rms of (3, 4) is sqrt(12.5): grad_weight = dy * n = (3 / sqrt(12.5 + 1e-6), 0).
  EXPECT_NEAR((*results)[1].data[0], 3 / std::sqrt(12.5 + 1e-6), 1e-7);
  EXPECT_EQ((*results)[1].data[1], 0.0);
  // The function returns only the second result; the first is dropped by run().
  auto ran = run(fn, {x, w, dy});
  ASSERT_TRUE(ran.isOk()) << ran.message();
  ASSERT_EQ(ran->size(), 1u);
  EXPECT_EQ(ran->front().data, (*results)[1].data);
  // A wrong number of operand values is an error, not a crash.
  auto wrong = evaluate(op, {&x, &w});
  ASSERT_FALSE(wrong.isOk());
  EXPECT_TRUE(Contains(wrong.message(), "operand"));
}

} // namespace
} // namespace apc::interp
