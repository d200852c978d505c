// Checks ap-autodiff's gradient rules against central finite differences, with the
// reference interpreter in f64 (Options::roundFloats = false): per op, through small
// functions, and for the whole tiny Llama 3 (untied and tied embeddings).
//
// Tolerance: with h = 1e-5 in f64 the central difference has truncation error
// O(h^2 |f'''|) ~ 1e-10 and cancellation error ~ 1e-16 / h ~ 1e-11 for these O(1)
// functions, so |analytic - numeric| <= 1e-6 * max(1, |analytic|) leaves a wide margin
// while any wrong rule (a missing transpose, a dropped term) is off by O(1e-2) or more.
#include "compiler/Passes.h"
#include "compiler/interpreter/Interpreter.h"
#include "compiler/support/EntryFunction.h"
#include "dialects/ap/IR/ApDialect.h"
#include "frontends/llama3/Llama3Model.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace apc;

namespace {

constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;

interp::ElementType elementTypeOf(mlir::Type type) {
  mlir::Type e = mlir::cast<mlir::RankedTensorType>(type).getElementType();
  if (e.isSignlessInteger(64)) return interp::ElementType::I64;
  if (e.isSignlessInteger(32)) return interp::ElementType::I32;
  return interp::ElementType::F32;
}

class AutodiffTest : public ::testing::Test {
protected:
  void SetUp() override {
    context_.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
  }

  mlir::OwningOpRef<mlir::ModuleOp> parse(const std::string &text) {
    auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &context_);
    EXPECT_TRUE(module) << "cannot parse:\n" << text;
    return module;
  }

  // Random arguments: floats N(0, 0.5) (norm weights around 1), integer inputs from
  // `integerInputs` by name.
  std::vector<interp::RefTensor>
  randomArguments(mlir::func::FuncOp fn,
                  const std::map<std::string, std::vector<double>> &integerInputs) {
    std::mt19937 rng(1234);
    std::normal_distribution<double> normal(0.0, 0.5);
    std::vector<interp::RefTensor> args;
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      auto type = mlir::cast<mlir::RankedTensorType>(fn.getArgument(i).getType());
      interp::RefTensor t;
      t.shape.assign(type.getShape().begin(), type.getShape().end());
      t.type = elementTypeOf(type);
      std::string name = argName(fn, i);
      if (t.type == interp::ElementType::F32) {
        bool isNorm = name.find("norm") != std::string::npos;
        for (int64_t k = 0; k < t.numElements(); ++k)
          t.data.push_back((isNorm ? 1.0 : 0.0) + normal(rng));
      } else {
        auto it = integerInputs.find(name);
        EXPECT_NE(it, integerInputs.end()) << "no values for integer argument " << name;
        if (it != integerInputs.end())
          t.data = it->second;
      }
      args.push_back(std::move(t));
    }
    return args;
  }

  double loss(mlir::func::FuncOp forward, const std::vector<interp::RefTensor> &args) {
    interp::Options exact;
    exact.roundFloats = false;
    auto results = interp::run(forward, args, exact);
    EXPECT_TRUE(results) << results.message();
    return results ? (*results)[0].data[0] : NAN;
  }

  // Differentiates a copy of `module` and compares every gradient (all entries, or
  // `samplesPerParameter` random ones) with central differences of the original.
  void checkGradients(mlir::ModuleOp module,
                      const std::map<std::string, std::vector<double>> &integerInputs,
                      int samplesPerParameter = -1) {
    mlir::OwningOpRef<mlir::ModuleOp> differentiated = module.clone();
    mlir::PassManager pm(&context_);
    pm.addPass(createApAutodiffPass());
    ASSERT_TRUE(mlir::succeeded(pm.run(*differentiated)));
    auto forward = *findEntryFunction(module);
    auto backward = *findEntryFunction(*differentiated);

    std::vector<interp::RefTensor> args = randomArguments(forward, integerInputs);
    interp::Options exact;
    exact.roundFloats = false;
    auto results = interp::run(backward, args, exact);
    ASSERT_TRUE(results) << results.message();
    ASSERT_NEAR((*results)[0].data[0], loss(forward, args), 1e-12);

    std::mt19937 rng(99);
    unsigned resultIndex = 1;
    for (unsigned i = 0; i < forward.getNumArguments(); ++i) {
      if (argRole(forward, i) != "parameter")
        continue;
      std::string name = argName(forward, i);
      ASSERT_EQ(resultName(backward, resultIndex), "grad." + name);
      const interp::RefTensor &grad = (*results)[resultIndex++];
      ASSERT_EQ(grad.shape, args[i].shape) << name;
      std::vector<int64_t> entries;
      int64_t n = args[i].numElements();
      if (samplesPerParameter < 0 || n <= samplesPerParameter) {
        for (int64_t k = 0; k < n; ++k)
          entries.push_back(k);
      } else {
        std::uniform_int_distribution<int64_t> pick(0, n - 1);
        for (int s = 0; s < samplesPerParameter; ++s)
          entries.push_back(pick(rng));
      }
      for (int64_t k : entries) {
        double saved = args[i].data[k];
        args[i].data[k] = saved + kStep;
        double up = loss(forward, args);
        args[i].data[k] = saved - kStep;
        double down = loss(forward, args);
        args[i].data[k] = saved;
        double numeric = (up - down) / (2 * kStep);
        double analytic = grad.data[k];
        EXPECT_NEAR(analytic, numeric, kTolerance * std::max(1.0, std::fabs(analytic)))
            << "d loss / d " << name << "[" << k << "]";
      }
    }
  }

  mlir::MLIRContext context_;
};

// A function `train_step(params) -> reduce_sum(body * weights)`: the random weights
// make every output element matter differently.
std::string lossOf(const std::string &params, const std::string &body,
                   const std::string &resultType, const std::string &dims) {
  return "func.func @train_step(" + params + ", %r: " + resultType +
         " {ap.name = \"r\", ap.role = \"input_float\"}) -> tensor<f32> {\n" + body +
         "  %weighted = ap.mul %out, %r : " + resultType + "\n" +
         "  %loss = ap.reduce_sum %weighted {dims = array<i64: " + dims + ">} : " +
         resultType + " to tensor<f32>\n  return %loss : tensor<f32>\n}\n";
}

std::string param(const std::string &name, const std::string &type) {
  return "%" + name + ": " + type + " {ap.name = \"" + name + "\", ap.role = \"parameter\"}";
}

TEST_F(AutodiffTest, Linear) {
  auto m = parse(lossOf(param("x", "tensor<2x3x4xf32>") + ", " + param("w", "tensor<5x4xf32>"),
                        "  %out = ap.linear %x, %w : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> "
                        "tensor<2x3x5xf32>\n",
                        "tensor<2x3x5xf32>", "0, 1, 2"));
  checkGradients(*m, {});
}

class MatmulTransposes : public AutodiffTest,
                         public ::testing::WithParamInterface<std::pair<bool, bool>> {};

TEST_P(MatmulTransposes, AllLayouts) {
  auto [ta, tb] = GetParam();
  std::string a = ta ? "tensor<2x4x3xf32>" : "tensor<2x3x4xf32>";
  std::string b = tb ? "tensor<2x5x4xf32>" : "tensor<2x4x5xf32>";
  std::string attrs = std::string("{transpose_lhs = ") + (ta ? "true" : "false") +
                      ", transpose_rhs = " + (tb ? "true" : "false") + "}";
  auto m = parse(lossOf(param("a", a) + ", " + param("b", b),
                        "  %out = ap.matmul %a, %b " + attrs + " : (" + a + ", " + b +
                            ") -> tensor<2x3x5xf32>\n",
                        "tensor<2x3x5xf32>", "0, 1, 2"));
  checkGradients(*m, {});
}

INSTANTIATE_TEST_SUITE_P(Layouts, MatmulTransposes,
                         ::testing::Values(std::make_pair(false, false),
                                           std::make_pair(true, false),
                                           std::make_pair(false, true),
                                           std::make_pair(true, true)));

TEST_F(AutodiffTest, ElementwiseAndLayoutOps) {
  // silu, mul, add (a value used three times), transpose, reshape, cast round trip.
  auto m = parse(lossOf(param("x", "tensor<2x3x4xf32>") + ", " + param("y", "tensor<2x3x4xf32>"),
                        "  %s = ap.silu %x : tensor<2x3x4xf32>\n"
                        "  %p = ap.mul %s, %y : tensor<2x3x4xf32>\n"
                        "  %q = ap.add %p, %x : tensor<2x3x4xf32>\n"
                        "  %t = ap.transpose %q {permutation = array<i64: 2, 0, 1>} : "
                        "tensor<2x3x4xf32> to tensor<4x2x3xf32>\n"
                        "  %c = ap.cast %t : tensor<4x2x3xf32> to tensor<4x2x3xf32>\n"
                        "  %out = ap.reshape %c : tensor<4x2x3xf32> to tensor<8x3xf32>\n",
                        "tensor<8x3xf32>", "0, 1"));
  checkGradients(*m, {});
}

TEST_F(AutodiffTest, ReduceSumAndBroadcast) {
  auto m = parse(lossOf(param("x", "tensor<2x3x4xf32>") + ", " + param("v", "tensor<3xf32>"),
                        "  %s = ap.reduce_sum %x {dims = array<i64: 2>, keep_dims = true} : "
                        "tensor<2x3x4xf32> to tensor<2x3x1xf32>\n"
                        "  %f = ap.reshape %s : tensor<2x3x1xf32> to tensor<2x3xf32>\n"
                        "  %b = ap.broadcast %v {dims = array<i64: 0>} : tensor<3xf32> to "
                        "tensor<2x3xf32>\n"
                        "  %out = ap.mul %f, %b : tensor<2x3xf32>\n",
                        "tensor<2x3xf32>", "0, 1"));
  checkGradients(*m, {});
}

TEST_F(AutodiffTest, EmbeddingRmsNormRopeAttention) {
  // Repeated ids, llama3 rope with an offset, GQA attention (4 query heads, 2 kv).
  std::string rope = "{theta = 100.0 : f64, rope_type = \"llama3\", factor = 4.0 : f64, "
                     "low_freq_factor = 1.0 : f64, high_freq_factor = 2.0 : f64, "
                     "original_max_position_embeddings = 8 : i64, position_offset = 3 : i64}";
  auto m = parse(
      "func.func @train_step(" + param("emb", "tensor<7x16xf32>") + ", " +
      param("norm", "tensor<16xf32>") + ", " + param("wk", "tensor<8x16xf32>") +
      ", %ids: tensor<1x5xi64> {ap.name = \"input_ids\", ap.role = \"input\"}, %r: "
      "tensor<1x5x4x4xf32> {ap.name = \"r\", ap.role = \"input_float\"}) -> tensor<f32> {\n"
      "  %e = ap.embedding %emb, %ids : (tensor<7x16xf32>, tensor<1x5xi64>) -> tensor<1x5x16xf32>\n"
      "  %n = ap.rms_norm %e, %norm {epsilon = 1.0e-05 : f64} : (tensor<1x5x16xf32>, "
      "tensor<16xf32>) -> tensor<1x5x16xf32>\n"
      "  %q = ap.reshape %n : tensor<1x5x16xf32> to tensor<1x5x4x4xf32>\n"
      "  %k0 = ap.linear %n, %wk : (tensor<1x5x16xf32>, tensor<8x16xf32>) -> tensor<1x5x8xf32>\n"
      "  %k = ap.reshape %k0 : tensor<1x5x8xf32> to tensor<1x5x2x4xf32>\n"
      "  %qr = ap.rope %q " + rope + " : (tensor<1x5x4x4xf32>) -> tensor<1x5x4x4xf32>\n"
      "  %kr = ap.rope %k " + rope + " : (tensor<1x5x2x4xf32>) -> tensor<1x5x2x4xf32>\n"
      "  %out = ap.attention %qr, %kr, %k : (tensor<1x5x4x4xf32>, tensor<1x5x2x4xf32>, "
      "tensor<1x5x2x4xf32>) -> tensor<1x5x4x4xf32>\n"
      "  %weighted = ap.mul %out, %r : tensor<1x5x4x4xf32>\n"
      "  %loss = ap.reduce_sum %weighted {dims = array<i64: 0, 1, 2, 3>} : "
      "tensor<1x5x4x4xf32> to tensor<f32>\n  return %loss : tensor<f32>\n}\n");
  checkGradients(*m, {{"input_ids", {3, 1, 3, 6, 1}}});
}

TEST_F(AutodiffTest, ShiftedCrossEntropyWithIgnoredLabels) {
  auto m = parse("func.func @train_step(" + param("logits", "tensor<2x4x6xf32>") +
                 ", %labels: tensor<2x4xi64> {ap.name = \"labels\", ap.role = \"input\"}) -> "
                 "tensor<f32> {\n"
                 "  %t = ap.shift_labels %labels : tensor<2x4xi64>\n"
                 "  %loss = ap.cross_entropy %logits, %t : (tensor<2x4x6xf32>, tensor<2x4xi64>) "
                 "-> tensor<f32>\n  return %loss : tensor<f32>\n}\n");
  checkGradients(*m, {{"labels", {1, 5, 0, -100, 2, 2, 4, 3}}});
}

// The whole model: every parameter tensor, 12 sampled entries each (all entries of
// the small ones), llama3 rope scaling on.
TEST_F(AutodiffTest, WholeTinyLlamaUntiedAndTied) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    llama3::Config c;
    c.hiddenSize = 16;
    c.intermediateSize = 24;
    c.numHiddenLayers = 2;
    c.numAttentionHeads = 4;
    c.numKeyValueHeads = 2;
    c.headDim = 4;
    c.vocabSize = 11;
    c.ropeTheta = 100.0;
    c.rmsNormEps = 1e-5;
    c.tieWordEmbeddings = tied;
    c.ropeScaling = llama3::RopeScaling{"llama3", 4.0, 1.0, 2.0, 8};
    llama3::ImportOptions options;
    options.batch = 2;
    options.seqLen = 5;
    auto module = llama3::buildTrainStep(context_, c, options);
    ASSERT_TRUE(module) << module.message();
    // Uneven padding: the second row ends with two ignored labels.
    checkGradients(**module,
                   {{"input_ids", {1, 4, 4, 9, 0, 10, 2, 7, 3, 3}},
                    {"labels", {1, 4, 4, 9, 0, 10, 2, 7, -100, -100}}},
                   /*samplesPerParameter=*/12);
  }
}

} // namespace
