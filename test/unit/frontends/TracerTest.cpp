// Tests of the tracer (frontends/trace): the module it builds, and the shape errors it
// reports at trace time (first error only, naming the op, the scope and the shapes).
#include "frontends/trace/Tracer.h"

#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace apc::trace {
namespace {

// Substring check with a readable failure message (gtest without gmock).
::testing::AssertionResult Contains(const std::string &text, const std::string &part) {
  if (text.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not found in:\n" << text;
}
::testing::AssertionResult Lacks(const std::string &text, const std::string &part) {
  if (text.find(part) == std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' unexpectedly found in:\n"
                                       << text;
}

std::string print(mlir::ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  return text;
}

size_t count(const std::string &haystack, const std::string &needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size()))
    ++n;
  return n;
}

mlir::func::FuncOp onlyFunction(mlir::ModuleOp module) {
  auto functions = module.getOps<mlir::func::FuncOp>();
  EXPECT_EQ(std::distance(functions.begin(), functions.end()), 1);
  return *functions.begin();
}

// ---- A well-formed function -------------------------------------------------------

TEST(TracerTest, SmallFunctionVerifiesAndPrintsExpectedOps) {
  mlir::MLIRContext context;
  Tracer t(context, "step");
  const int64_t B = 2, S = 4, H = 8, heads = 2, kvHeads = 1, hd = 4, V = 16;
  Tensor embed = t.parameter("embed", {V, H}, DType::F32);
  Tensor norm = t.parameter("norm", {H}, DType::F32);
  Tensor wq = t.parameter("wq", {heads * hd, H}, DType::F32);
  Tensor wk = t.parameter("wk", {kvHeads * hd, H}, DType::F32);
  Tensor ids = t.input("ids", {B, S}, DType::I64);
  Tensor labels = t.input("labels", {B, S}, DType::I64);
  ASSERT_TRUE(embed.valid() && norm.valid() && wq.valid() && wk.valid() && ids.valid() &&
              labels.valid());

  Tensor x;
  {
    Tracer::Scope scope(t, "model.embed_tokens");
    x = t.embedding(embed, ids);
  }
  EXPECT_EQ(x.shape(), (std::vector<int64_t>{B, S, H}));
  EXPECT_EQ(x.dtype(), DType::F32);
  Tensor h = t.rmsNorm(x, norm, 1e-5);
  Tensor q = t.reshape(t.linear(h, wq), {B, S, heads, -1});
  EXPECT_EQ(q.shape(), (std::vector<int64_t>{B, S, heads, hd}));
  Tensor k = t.reshape(t.linear(h, wk), {B, S, kvHeads, hd});
  RopeParams rope;
  rope.theta = 500000.0;
  q = t.rope(q, rope);
  RopeParams llama3;
  llama3.ropeType = "llama3";
  llama3.factor = 8;
  llama3.lowFreqFactor = 1;
  llama3.highFreqFactor = 4;
  llama3.originalMaxPositionEmbeddings = 64;
  k = t.rope(k, llama3);
  Tensor a = t.attention(q, k, k);
  EXPECT_EQ(a.shape(), (std::vector<int64_t>{B, S, heads, hd}));
  Tensor at = t.transpose(a, {0, 2, 1, 3});
  EXPECT_EQ(at.shape(), (std::vector<int64_t>{B, heads, S, hd}));
  Tensor summed = t.reduceSum(at, {1, 3});
  EXPECT_EQ(summed.shape(), (std::vector<int64_t>{B, S}));
  Tensor kept = t.reduceSum(at, {1}, /*keepDims=*/true);
  EXPECT_EQ(kept.shape(), (std::vector<int64_t>{B, 1, S, hd}));
  Tensor logits = t.linear(t.reshape(a, {B, S, H}), embed);
  EXPECT_EQ(logits.shape(), (std::vector<int64_t>{B, S, V}));
  Tensor loss = t.crossEntropy(logits, t.shiftLabels(labels));
  EXPECT_EQ(loss.shape(), std::vector<int64_t>{});
  EXPECT_EQ(loss.dtype(), DType::F32);
  t.output("loss", loss);
  t.output("summed", summed);
  ASSERT_FALSE(t.error().has_value()) << *t.error();

  auto module = t.finish();
  ASSERT_TRUE(module.isOk()) << module.message();
  mlir::ModuleOp m = module->get();
  EXPECT_TRUE(mlir::succeeded(mlir::verify(m)));
  mlir::func::FuncOp fn = onlyFunction(m);
  EXPECT_EQ(fn.getSymName(), "step");
  EXPECT_EQ(fn.getNumArguments(), 6u);
  EXPECT_EQ(fn.getNumResults(), 2u);

  std::string ir = print(m);
  for (const char *op : {"ap.embedding", "ap.rms_norm", "ap.linear", "ap.reshape",
                         "ap.rope", "ap.attention", "ap.transpose", "ap.reduce_sum",
                         "ap.shift_labels", "ap.cross_entropy", "func.func @step",
                         "return"})
    EXPECT_TRUE(Contains(ir, op));
  EXPECT_EQ(count(ir, "ap.linear "), 3u) << ir;
  EXPECT_EQ(count(ir, "ap.rope "), 2u) << ir;
  EXPECT_TRUE(Contains(ir, "rope_type = \"llama3\""));
  for (const char *name : {"embed", "norm", "wq", "wk"})
    EXPECT_TRUE(Contains(ir, "ap.name = \"" + std::string(name) +
                              "\", ap.role = \"parameter\""));
  for (const char *name : {"ids", "labels"})
    EXPECT_TRUE(Contains(ir, "ap.name = \"" + std::string(name) +
                              "\", ap.role = \"input\""));
  EXPECT_TRUE(Contains(ir, "ap.name = \"loss\""));
  EXPECT_TRUE(Contains(ir, "ap.name = \"summed\""));
  // The function type lists argument and result types in order.
  EXPECT_TRUE(Contains(ir, "tensor<16x8xf32>"));
  EXPECT_TRUE(Contains(ir, "-> (tensor<f32> {ap.name = \"loss\"}"));
}

TEST(TracerTest, ElementwiseCastMatmulAndFunctionAttr) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor a = t.input("a", {2, 3}, DType::BF16);
  Tensor b = t.input("b", {2, 3}, DType::BF16);
  Tensor c = t.mul(t.silu(t.add(a, b)), b);
  EXPECT_EQ(c.dtype(), DType::BF16);
  Tensor f = t.cast(c, DType::F32);
  EXPECT_EQ(f.dtype(), DType::F32);
  EXPECT_EQ(f.shape(), (std::vector<int64_t>{2, 3}));
  Tensor m = t.matmul(f, f, /*transposeLhs=*/false, /*transposeRhs=*/true);
  EXPECT_EQ(m.shape(), (std::vector<int64_t>{2, 2}));
  Tensor m2 = t.matmul(f, f, /*transposeLhs=*/true, /*transposeRhs=*/false);
  EXPECT_EQ(m2.shape(), (std::vector<int64_t>{3, 3}));
  Tensor i = t.cast(f, DType::I64);
  EXPECT_EQ(i.dtype(), DType::I64);
  EXPECT_EQ(f.dim(-1), 3);
  EXPECT_EQ(f.dim(0), 2);
  EXPECT_EQ(f.rank(), 2);
  t.output("m", m);
  t.output("m2", m2);
  t.output("i", i);
  mlir::Builder b0(&context);
  t.setFunctionAttr("ap.test", b0.getI64IntegerAttr(7));
  auto module = t.finish();
  ASSERT_TRUE(module.isOk()) << module.message();
  EXPECT_TRUE(mlir::succeeded(mlir::verify(module->get())));
  std::string ir = print(module->get());
  for (const char *op : {"ap.add", "ap.silu", "ap.mul", "ap.cast", "ap.matmul",
                         "transpose_rhs = true", "transpose_lhs = true",
                         "tensor<2x3xbf16> to tensor<2x3xf32>",
                         "tensor<2x3xf32> to tensor<2x3xi64>", "ap.test = 7"})
    EXPECT_TRUE(Contains(ir, op));
}

TEST(TracerTest, ScopesNameOpLocations) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 4}, DType::F32);
  Tensor w = t.parameter("w", {3, 4}, DType::F32);
  Tensor y;
  {
    Tracer::Scope outer(t, "model.layers.0");
    Tracer::Scope inner(t, "mlp");
    y = t.linear(x, w);
  }
  t.output("y", y);
  auto module = t.finish();
  ASSERT_TRUE(module.isOk()) << module.message();
  std::string text;
  llvm::raw_string_ostream os(text);
  module->get().print(os, mlir::OpPrintingFlags().enableDebugInfo());
  EXPECT_TRUE(Contains(text, "\"model.layers.0.mlp\""));
}

TEST(TracerTest, FinishTwiceIsAnError) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  t.output("x", t.input("x", {2}, DType::F32));
  auto first = t.finish();
  ASSERT_TRUE(first.isOk()) << first.message();
  auto second = t.finish();
  EXPECT_FALSE(second.isOk());
}

// ---- Shape errors -------------------------------------------------------------------

TEST(TracerTest, LinearInFeatureMismatchNamesOpScopeAndShapes) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 4}, DType::F32);
  Tensor w = t.parameter("w", {3, 5}, DType::F32);
  Tensor y;
  {
    Tracer::Scope layer(t, "model.layers.0");
    Tracer::Scope mlp(t, "mlp");
    y = t.linear(x, w);
  }
  EXPECT_FALSE(y.valid());
  ASSERT_TRUE(t.error().has_value());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  const std::string &msg = module.message();
  EXPECT_EQ(msg, *t.error());
  EXPECT_TRUE(Contains(msg, "'ap.linear'"));
  EXPECT_TRUE(Contains(msg, "model.layers.0.mlp"));
  EXPECT_TRUE(Contains(msg, "tensor<2x4xf32>"));
  EXPECT_TRUE(Contains(msg, "tensor<3x5xf32>"));
}

TEST(TracerTest, LinearElementTypeMismatch) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 4}, DType::F32);
  Tensor w = t.parameter("w", {3, 4}, DType::BF16);
  EXPECT_FALSE(t.linear(x, w).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.linear'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x4xf32>"));
  EXPECT_TRUE(Contains(module.message(), "tensor<3x4xbf16>"));
}

TEST(TracerTest, AttentionHeadsNotMultipleOfKvHeads) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor q = t.input("q", {1, 2, 3, 4}, DType::F32);
  Tensor kv = t.input("kv", {1, 2, 2, 4}, DType::F32);
  Tensor a;
  {
    Tracer::Scope scope(t, "model.layers.1.self_attn");
    a = t.attention(q, kv, kv);
  }
  EXPECT_FALSE(a.valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.attention'"));
  EXPECT_TRUE(Contains(module.message(), "model.layers.1.self_attn"));
  EXPECT_TRUE(Contains(module.message(), "(3)"));
  EXPECT_TRUE(Contains(module.message(), "(2)"));
}

TEST(TracerTest, AttentionSequenceMismatch) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor q = t.input("q", {1, 2, 4, 4}, DType::F32);
  Tensor kv = t.input("kv", {1, 3, 2, 4}, DType::F32);
  EXPECT_FALSE(t.attention(q, kv, kv).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.attention'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<1x2x4x4xf32>"));
  EXPECT_TRUE(Contains(module.message(), "tensor<1x3x2x4xf32>"));
}

TEST(TracerTest, ReshapeToWrongElementCount) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 4}, DType::F32);
  Tensor y;
  {
    Tracer::Scope scope(t, "blk");
    y = t.reshape(x, {3, 3});
  }
  EXPECT_FALSE(y.valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.reshape'"));
  EXPECT_TRUE(Contains(module.message(), "blk"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x4xf32>"));
  EXPECT_TRUE(Contains(module.message(), "tensor<3x3xf32>"));
}

TEST(TracerTest, ReshapeInfersMinusOne) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 3, 4}, DType::F32);
  EXPECT_EQ(t.reshape(x, {-1, 4}).shape(), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(t.reshape(x, {2, -1}).shape(), (std::vector<int64_t>{2, 12}));
  EXPECT_EQ(t.reshape(x, {4, -1, 2}).shape(), (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(t.reshape(x, {-1}).shape(), (std::vector<int64_t>{24}));
  EXPECT_FALSE(t.error().has_value()) << *t.error();
}

TEST(TracerTest, ReshapeMinusOneThatDoesNotDivideIsAnError) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 3, 4}, DType::F32);
  EXPECT_FALSE(t.reshape(x, {5, -1}).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.reshape'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x3x4xf32>"));
}

TEST(TracerTest, ReshapeWithTwoMinusOnesIsAnError) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 3, 4}, DType::F32);
  EXPECT_FALSE(t.reshape(x, {-1, -1}).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.reshape'"));
}

TEST(TracerTest, TransposeWithBadPermutation) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 3, 4}, DType::F32);
  EXPECT_FALSE(t.transpose(x, {0, 0, 1}).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.transpose'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x3x4xf32>"));
}

TEST(TracerTest, ReduceSumWithOutOfRangeDim) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 3}, DType::F32);
  EXPECT_FALSE(t.reduceSum(x, {2}).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.reduce_sum'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x3xf32>"));
}

TEST(TracerTest, CrossEntropyLabelShapeMismatch) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor logits = t.input("logits", {2, 3, 5}, DType::F32);
  Tensor labels = t.input("labels", {2, 4}, DType::I64);
  Tensor loss;
  {
    Tracer::Scope scope(t, "loss");
    loss = t.crossEntropy(logits, labels);
  }
  EXPECT_FALSE(loss.valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.cross_entropy'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x3x5xf32>"));
  EXPECT_TRUE(Contains(module.message(), "tensor<2x4xi64>"));
}

TEST(TracerTest, RopeOddHeadDim) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {1, 2, 2, 3}, DType::F32);
  EXPECT_FALSE(t.rope(x, RopeParams()).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ap.rope'"));
  EXPECT_TRUE(Contains(module.message(), "tensor<1x2x2x3xf32>"));
}

TEST(TracerTest, FirstErrorWinsAndLaterOpsDoNotCrash) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor x = t.input("x", {2, 4}, DType::F32);
  Tensor w = t.parameter("w", {3, 5}, DType::F32);
  Tensor y;
  {
    Tracer::Scope scope(t, "first");
    y = t.linear(x, w); // error 1
  }
  EXPECT_FALSE(y.valid());
  std::string first = *t.error();
  Tensor z;
  {
    Tracer::Scope scope(t, "second");
    z = t.reshape(x, {7}); // would be error 2, on valid inputs
  }
  EXPECT_FALSE(z.valid());
  // Every op on a poisoned (or even a valid) tensor after the error: no crash,
  // poisoned result, error unchanged.
  Tensor p;
  EXPECT_FALSE(p.valid());
  EXPECT_EQ(y.shape(), std::vector<int64_t>{});
  EXPECT_EQ(y.rank(), 0);
  EXPECT_EQ(y.dim(0), 0);
  EXPECT_FALSE(t.embedding(y, y).valid());
  EXPECT_FALSE(t.linear(y, w).valid());
  EXPECT_FALSE(t.matmul(y, y, true, true).valid());
  EXPECT_FALSE(t.rmsNorm(y, w, 1e-5).valid());
  EXPECT_FALSE(t.rope(y, RopeParams()).valid());
  EXPECT_FALSE(t.attention(y, y, y, 0.5, false).valid());
  EXPECT_FALSE(t.silu(y).valid());
  EXPECT_FALSE(t.add(y, x).valid());
  EXPECT_FALSE(t.mul(x, y).valid());
  EXPECT_FALSE(t.cast(y, DType::BF16).valid());
  EXPECT_FALSE(t.reshape(y, {-1}).valid());
  EXPECT_FALSE(t.transpose(y, {1, 0}).valid());
  EXPECT_FALSE(t.reduceSum(y, {0}).valid());
  EXPECT_FALSE(t.shiftLabels(y).valid());
  EXPECT_FALSE(t.crossEntropy(y, y).valid());
  EXPECT_FALSE(t.silu(x).valid()); // valid input, but tracing stopped
  t.output("y", y);
  t.output("x", x);
  EXPECT_EQ(*t.error(), first);
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_EQ(module.message(), first);
  EXPECT_TRUE(Contains(module.message(), "'ap.linear'"));
  EXPECT_TRUE(Contains(module.message(), "first"));
  EXPECT_TRUE(Lacks(module.message(), "second"));
  EXPECT_TRUE(Lacks(module.message(), "ap.reshape"));
}

TEST(TracerTest, EmptyTensorIsAnError) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor empty;
  EXPECT_FALSE(t.silu(empty).valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "empty Tensor"));
}

TEST(TracerTest, ParameterWithZeroDimIsRefused) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor w = t.parameter("model.layers.0.mlp.up_proj.weight", {4, 0}, DType::F32);
  EXPECT_FALSE(w.valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "model.layers.0.mlp.up_proj.weight"));
  EXPECT_TRUE(Contains(module.message(), "[4, 0]"));
}

TEST(TracerTest, InputWithNegativeDimIsRefused) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  Tensor w = t.input("ids", {-1, 4}, DType::I64);
  EXPECT_FALSE(w.valid());
  auto module = t.finish();
  ASSERT_FALSE(module.isOk());
  EXPECT_TRUE(Contains(module.message(), "'ids'"));
}

} // namespace
} // namespace apc::trace
