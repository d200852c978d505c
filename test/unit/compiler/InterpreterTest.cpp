// Tests of the reference interpreter (compiler/interpreter): every `ap` op evaluated on
// small inputs and compared with values computed here, by hand or by the op's formula
// written out independently of ReferenceOps.cpp.
#include "compiler/interpreter/Interpreter.h"
#include "frontends/trace/Tracer.h"

#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace apc::interp {
namespace {

using trace::DType;
using trace::RopeParams;
using trace::Tensor;
using trace::Tracer;

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

DType dtypeOf(ElementType type) {
  switch (type) {
  case ElementType::F32: return DType::F32;
  case ElementType::BF16: return DType::BF16;
  case ElementType::F16: return DType::F16;
  case ElementType::I32: return DType::I32;
  case ElementType::I64: return DType::I64;
  }
  return DType::F32;
}

// Correct round-to-nearest-even of a double to bf16 (8 significant bits), written
// without the bit tricks of HalfFloat.h: normal range only, which is all we use.
double bf16(double x) {
  if (x == 0 || !std::isfinite(x))
    return x;
  int e;
  double m = std::frexp(x, &e); // x = m * 2^e, 0.5 <= |m| < 1
  return std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);
}

using Body = std::function<std::vector<Tensor>(Tracer &, const std::vector<Tensor> &)>;

// Traces `body` on inputs typed like `args` and runs it on `args`.
Result<std::vector<RefTensor>> traceAndRun(const std::vector<RefTensor> &args,
                                           const Body &body) {
  mlir::MLIRContext context;
  Tracer t(context, "f");
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < args.size(); ++i)
    inputs.push_back(t.input("arg" + std::to_string(i), args[i].shape, dtypeOf(args[i].type)));
  std::vector<Tensor> outputs = body(t, inputs);
  for (size_t i = 0; i < outputs.size(); ++i)
    t.output("out" + std::to_string(i), outputs[i]);
  auto module = t.finish();
  if (!module)
    return Result<std::vector<RefTensor>>::error("trace failed: " + module.message());
  auto fn = *module->get().getOps<mlir::func::FuncOp>().begin();
  return run(fn, args);
}

// The single result of `body`; a test failure (and an empty tensor) on error.
RefTensor runOne(const std::vector<RefTensor> &args, const Body &body) {
  auto results = traceAndRun(args, body);
  if (!results) {
    ADD_FAILURE() << results.message();
    return RefTensor();
  }
  if (results->size() != 1) {
    ADD_FAILURE() << "expected one result, got " << results->size();
    return RefTensor();
  }
  return results->front();
}

void expectNear(const RefTensor &actual, const std::vector<int64_t> &shape,
                const std::vector<double> &expected, double relTol = 1e-6) {
  ASSERT_EQ(actual.shape, shape);
  ASSERT_EQ(actual.data.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(actual.data[i], expected[i], relTol * std::max(1.0, std::fabs(expected[i])))
        << "at flat index " << i;
}

void expectExact(const RefTensor &actual, const std::vector<int64_t> &shape,
                 const std::vector<double> &expected) {
  ASSERT_EQ(actual.shape, shape);
  ASSERT_EQ(actual.data.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(actual.data[i], expected[i]) << "at flat index " << i;
}

// Deterministic "random" values in [-1, 1], bf16- and f32-representable.
std::vector<double> values(int64_t n, double seed) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = bf16(std::sin(seed + 0.7 * double(i)) * 0.9);
  return v;
}

// ---- embedding ----------------------------------------------------------------------

TEST(InterpreterTest, Embedding) {
  std::vector<double> w;
  for (int v = 0; v < 4; ++v)
    for (int h = 0; h < 3; ++h)
      w.push_back(10 * v + h);
  RefTensor out = runOne({tensor({4, 3}, w), tensor({2, 2}, {3, 0, 1, 3}, ElementType::I64)},
                         [](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.embedding(in[0], in[1])};
                         });
  expectExact(out, {2, 2, 3}, {30, 31, 32, 0, 1, 2, 10, 11, 12, 30, 31, 32});
  EXPECT_EQ(out.type, ElementType::F32);
}

TEST(InterpreterTest, EmbeddingIdOutOfRangeNamesPosition) {
  for (double bad : {4.0, -1.0}) {
    auto results = traceAndRun(
        {tensor({4, 3}, std::vector<double>(12, 1.0)),
         tensor({2, 2}, {0, 1, bad, 2}, ElementType::I64)},
        [](Tracer &t, const std::vector<Tensor> &in) {
          Tracer::Scope scope(t, "model.embed_tokens");
          return std::vector<Tensor>{t.embedding(in[0], in[1])};
        });
    ASSERT_FALSE(results.isOk());
    const std::string &msg = results.message();
    EXPECT_TRUE(Contains(msg, "ap.embedding"));
    EXPECT_TRUE(Contains(msg, "model.embed_tokens"));
    EXPECT_TRUE(Contains(msg, "token id " + std::to_string(int64_t(bad))));
    EXPECT_TRUE(Contains(msg, "ids[1, 0]"));
    EXPECT_TRUE(Contains(msg, "[0, 4)"));
  }
}

// ---- linear and matmul --------------------------------------------------------------

TEST(InterpreterTest, LinearUsesOutInLayout) {
  // x [2, 1, 3], weight [out=2, in=3]: y[..., o] = sum_i x[..., i] w[o, i].
  RefTensor out = runOne({tensor({2, 1, 3}, {1, 2, 3, 4, 5, 6}), tensor({2, 3}, {1, 0, -1, 0.5, 2, 1})},
                         [](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.linear(in[0], in[1])};
                         });
  expectExact(out, {2, 1, 2}, {1 - 3, 0.5 + 4 + 3, 4 - 6, 2 + 10 + 6});
}

TEST(InterpreterTest, MatmulTransposeFlagsByHand) {
  // A = [[1,2],[3,4]], B = [[5,6],[7,8]].
  RefTensor a = tensor({2, 2}, {1, 2, 3, 4}), b = tensor({2, 2}, {5, 6, 7, 8});
  struct Case {
    bool ta, tb;
    std::vector<double> expected;
  } cases[] = {
      {false, false, {19, 22, 43, 50}}, // A B
      {true, false, {26, 30, 38, 44}},  // A^T B
      {false, true, {17, 23, 39, 53}},  // A B^T
      {true, true, {23, 31, 34, 46}},   // A^T B^T = (B A)^T
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(::testing::Message() << "ta=" << c.ta << " tb=" << c.tb);
    RefTensor out = runOne({a, b}, [&](Tracer &t, const std::vector<Tensor> &in) {
      return std::vector<Tensor>{t.matmul(in[0], in[1], c.ta, c.tb)};
    });
    expectExact(out, {2, 2}, c.expected);
  }
}

TEST(InterpreterTest, MatmulBatchedNonSquareWithTransposes) {
  const int64_t P = 2, M = 2, K = 3, N = 4;
  std::vector<double> a = values(P * M * K, 0.1), b = values(P * K * N, 1.3);
  auto A = [&](int64_t p, int64_t i, int64_t k) { return a[(p * M + i) * K + k]; };
  auto B = [&](int64_t p, int64_t k, int64_t j) { return b[(p * K + k) * N + j]; };
  std::vector<double> expected;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += A(p, i, k) * B(p, k, j);
        expected.push_back(s);
      }
  // Stored transposed copies: aT [P, K, M], bT [P, N, K].
  std::vector<double> aT, bT;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < M; ++i)
        aT.push_back(A(p, i, k));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k)
        bT.push_back(B(p, k, j));
  for (int flags = 0; flags < 4; ++flags) {
    bool ta = flags & 1, tb = flags & 2;
    SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb);
    RefTensor lhs = ta ? tensor({P, K, M}, aT) : tensor({P, M, K}, a);
    RefTensor rhs = tb ? tensor({P, N, K}, bT) : tensor({P, K, N}, b);
    RefTensor out = runOne({lhs, rhs}, [&](Tracer &t, const std::vector<Tensor> &in) {
      return std::vector<Tensor>{t.matmul(in[0], in[1], ta, tb)};
    });
    expectNear(out, {P, M, N}, expected);
  }
}

// ---- rms_norm -----------------------------------------------------------------------

TEST(InterpreterTest, RmsNorm) {
  const double eps = 1e-5;
  std::vector<double> x = {1, 2, 3, 4, -0.5, 0.25, 0, 2}, w = {1, 0.5, 2, -1};
  std::vector<double> expected;
  for (int r = 0; r < 2; ++r) {
    double ms = 0;
    for (int i = 0; i < 4; ++i)
      ms += x[r * 4 + i] * x[r * 4 + i] / 4.0;
    for (int i = 0; i < 4; ++i)
      expected.push_back(w[i] * x[r * 4 + i] / std::sqrt(ms + eps));
  }
  // Row 0 by hand: mean square 7.5.
  EXPECT_NEAR(expected[0], 1.0 / std::sqrt(7.5 + eps), 1e-12);
  RefTensor out = runOne({tensor({2, 4}, x), tensor({4}, w)},
                         [&](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.rmsNorm(in[0], in[1], eps)};
                         });
  expectNear(out, {2, 4}, expected);
}

TEST(InterpreterTest, RmsNormBf16CastsBeforeWeight) {
  // transformers: weight * (x * rsqrt(mean(x^2) + eps)).to(bf16), then rounded again.
  const double eps = 1e-6;
  std::vector<double> x = {bf16(0.3), bf16(-1.7), bf16(2.2), bf16(0.9)};
  std::vector<double> w = {bf16(1.1), bf16(0.7), bf16(-1.3), bf16(3.1)};
  double ms = 0;
  for (double v : x)
    ms += v * v / 4.0;
  std::vector<double> expected;
  for (int i = 0; i < 4; ++i)
    expected.push_back(bf16(w[i] * bf16(x[i] / std::sqrt(ms + eps))));
  RefTensor out = runOne({tensor({1, 4}, x, ElementType::BF16), tensor({4}, w, ElementType::BF16)},
                         [&](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.rmsNorm(in[0], in[1], eps)};
                         });
  EXPECT_EQ(out.type, ElementType::BF16);
  expectExact(out, {1, 4}, expected);
}

// ---- rope ---------------------------------------------------------------------------

TEST(InterpreterTest, RopeDefaultRotatesHalvesByHand) {
  // [batch 1, seq 2, heads 1, head_dim 4], theta 100: inv_freq = {1, 100^(-1/2) = 0.1}.
  // Pairs are (0, 2) and (1, 3) (rotate_half), not (0, 1) and (2, 3).
  std::vector<double> x = {1, 2, 3, 4, 1, 2, 3, 4};
  RopeParams params;
  params.theta = 100.0;
  RefTensor out = runOne({tensor({1, 2, 1, 4}, x)}, [&](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.rope(in[0], params)};
  });
  double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.1), s2 = std::sin(0.1);
  expectNear(out, {1, 2, 1, 4},
             {// position 0: unchanged
              1, 2, 3, 4,
              // position 1
              1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2});
}

TEST(InterpreterTest, RopeDefaultSeveralHeadsAndBatches) {
  const int64_t B = 2, S = 3, H = 2, D = 6;
  const double theta = 10000.0;
  std::vector<double> x = values(B * S * H * D, 0.4), expected(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < D / 2; ++j) {
          int64_t base = ((b * S + s) * H + h) * D;
          double f = std::pow(theta, -2.0 * double(j) / double(D));
          double a = double(s) * f;
          expected[base + j] = x[base + j] * std::cos(a) - x[base + j + D / 2] * std::sin(a);
          expected[base + j + D / 2] =
              x[base + j + D / 2] * std::cos(a) + x[base + j] * std::sin(a);
        }
  RopeParams params;
  params.theta = theta;
  RefTensor out = runOne({tensor({B, S, H, D}, x)}, [&](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.rope(in[0], params)};
  });
  expectNear(out, {B, S, H, D}, expected);
}

TEST(InterpreterTest, RopeLlama3ScalesInverseFrequencies) {
  // head_dim 16 -> 8 frequencies, theta 10000: wavelengths 2*pi*10000^(j/8) are
  // about 6.3, 19.9, 62.8, 198.7, 628, 1987, 6283, 19869. With original context
  // 256, low 1, high 4: high-frequency band (wavelen < 64): j = 0, 1, 2; medium band
  // [64, 256]: j = 3; low-frequency band (> 256): j = 4..7.
  const int64_t D = 16, S = 4;
  const double theta = 10000.0, factor = 8.0, low = 1.0, high = 4.0, original = 256.0;
  std::vector<double> invFreq(D / 2);
  int bands[3] = {0, 0, 0};
  for (int64_t j = 0; j < D / 2; ++j) {
    double f = 1.0 / std::pow(theta, double(2 * j) / double(D));
    double wavelen = 2 * M_PI / f;
    if (wavelen < original / high) {
      invFreq[j] = f;
      ++bands[0];
    } else if (wavelen > original / low) {
      invFreq[j] = f / factor;
      ++bands[2];
    } else {
      double smooth = (original / wavelen - low) / (high - low);
      invFreq[j] = (1 - smooth) * f / factor + smooth * f;
      ++bands[1];
      EXPECT_GT(smooth, 0.0);
      EXPECT_LT(smooth, 1.0);
    }
  }
  ASSERT_EQ(bands[0], 3);
  ASSERT_EQ(bands[1], 1);
  ASSERT_EQ(bands[2], 4);

  // x[j] = 1, x[j + d] = 0 for every j: y[j] = cos(p f_j), y[j + d] = sin(p f_j).
  std::vector<double> x;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < D; ++i)
      x.push_back(i < D / 2 ? 1.0 : 0.0);
  std::vector<double> expected;
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t j = 0; j < D / 2; ++j)
      expected.push_back(std::cos(double(s) * invFreq[j]));
    for (int64_t j = 0; j < D / 2; ++j)
      expected.push_back(std::sin(double(s) * invFreq[j]));
  }
  RopeParams params;
  params.theta = theta;
  params.ropeType = "llama3";
  params.factor = factor;
  params.lowFreqFactor = low;
  params.highFreqFactor = high;
  params.originalMaxPositionEmbeddings = int64_t(original);
  RefTensor out = runOne({tensor({1, S, 1, D}, x)}, [&](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.rope(in[0], params)};
  });
  expectNear(out, {1, S, 1, D}, expected);

  // The same input under default rope differs exactly in the scaled bands.
  params = RopeParams();
  params.theta = theta;
  RefTensor plain = runOne({tensor({1, S, 1, D}, x)}, [&](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.rope(in[0], params)};
  });
  ASSERT_EQ(plain.data.size(), out.data.size());
  int64_t base = 3 * D; // position 3
  for (int64_t j = 0; j < 3; ++j)
    EXPECT_EQ(plain.data[base + D / 2 + j], out.data[base + D / 2 + j]) << j;
  for (int64_t j = 3; j < D / 2; ++j)
    EXPECT_NE(plain.data[base + D / 2 + j], out.data[base + D / 2 + j]) << j;
}

TEST(InterpreterTest, RopePositionOffsetFromParsedIr) {
  // position_offset shifts every position: input position 0 rotates as position 2.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<1x1x1x2xf32>) -> tensor<1x1x1x2xf32> {
      %0 = ap.rope %x {theta = 10000.0 : f64, position_offset = 2 : i64}
          : (tensor<1x1x1x2xf32>) -> tensor<1x1x1x2xf32>
      return %0 : tensor<1x1x1x2xf32>
    }
  )mlir";
  mlir::MLIRContext context;
  context.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(ir, &context);
  ASSERT_TRUE(module);
  auto fn = *module->getOps<mlir::func::FuncOp>().begin();
  auto results = run(fn, {tensor({1, 1, 1, 2}, {1, 0})});
  ASSERT_TRUE(results.isOk()) << results.message();
  // inv_freq[0] = 1, position 2: (cos 2, sin 2).
  expectNear(results->front(), {1, 1, 1, 2}, {std::cos(2.0), std::sin(2.0)});
}

// ---- attention ----------------------------------------------------------------------

// Naive attention, written out: scores, softmax over allowed keys, weighted sum.
std::vector<double> naiveAttention(const std::vector<double> &q, const std::vector<double> &k,
                                   const std::vector<double> &v, int64_t B, int64_t S,
                                   int64_t H, int64_t KVH, int64_t D, double scale,
                                   bool causal) {
  std::vector<double> out(size_t(B * S * H * D), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t kvh = h * KVH / H; // heads [g*kvh, g*(kvh+1)) share kv head kvh
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> weights(size_t(S), 0.0);
        double denominator = 0;
        for (int64_t j = 0; j < S; ++j) {
          if (causal && j > i)
            continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += q[((b * S + i) * H + h) * D + d] * k[((b * S + j) * KVH + kvh) * D + d];
          weights[j] = std::exp(scale * dot);
          denominator += weights[j];
        }
        for (int64_t d = 0; d < D; ++d) {
          double sum = 0;
          for (int64_t j = 0; j < S; ++j)
            sum += weights[j] / denominator * v[((b * S + j) * KVH + kvh) * D + d];
          out[((b * S + i) * H + h) * D + d] = sum;
        }
      }
    }
  return out;
}

TEST(InterpreterTest, AttentionGqaCausalAndNonCausal) {
  const int64_t B = 2, S = 3, H = 4, KVH = 2, D = 2;
  std::vector<double> q = values(B * S * H * D, 0.3), k = values(B * S * KVH * D, 2.1),
                      v = values(B * S * KVH * D, 4.7);
  for (double &x : q)
    x *= 3; // sharper softmax
  for (bool causal : {true, false}) {
    for (std::optional<double> scale : {std::optional<double>(), std::optional<double>(0.9)}) {
      SCOPED_TRACE(::testing::Message() << "causal=" << causal << " scale="
                                        << (scale ? *scale : -1.0));
      double effective = scale ? *scale : 1.0 / std::sqrt(double(D));
      std::vector<double> expected = naiveAttention(q, k, v, B, S, H, KVH, D, effective, causal);
      RefTensor out = runOne({tensor({B, S, H, D}, q), tensor({B, S, KVH, D}, k),
                              tensor({B, S, KVH, D}, v)},
                             [&](Tracer &t, const std::vector<Tensor> &in) {
                               return std::vector<Tensor>{
                                   t.attention(in[0], in[1], in[2], scale, causal)};
                             });
      expectNear(out, {B, S, H, D}, expected);
      if (causal && !out.data.empty()) {
        // Position 0 sees only key 0: the output is value 0 of its kv head.
        for (int64_t h = 0; h < H; ++h)
          for (int64_t d = 0; d < D; ++d)
            EXPECT_NEAR(out.data[h * D + d], v[(h / (H / KVH)) * D + d], 1e-7);
      }
    }
  }
}

TEST(InterpreterTest, AttentionTwoKeysByHand) {
  // One head, head_dim 1, scale 1: q = [0, 1], k = [0, ln 3], v = [10, 20].
  // Non-causal position 1: weights softmax(0, ln 3) = (1/4, 3/4) -> 17.5; position 0:
  // scores (0, 0) -> 15. Causal: position 0 -> 10, position 1 -> 17.5.
  std::vector<double> q = {0, 1}, k = {0, std::log(3.0)}, v = {10, 20};
  for (bool causal : {false, true}) {
    RefTensor out = runOne({tensor({1, 2, 1, 1}, q), tensor({1, 2, 1, 1}, k), tensor({1, 2, 1, 1}, v)},
                           [&](Tracer &t, const std::vector<Tensor> &in) {
                             return std::vector<Tensor>{
                                 t.attention(in[0], in[1], in[2], 1.0, causal)};
                           });
    expectNear(out, {1, 2, 1, 1}, {causal ? 10.0 : 15.0, 17.5});
  }
}

// ---- elementwise --------------------------------------------------------------------

TEST(InterpreterTest, Silu) {
  std::vector<double> x = {-2, 0, 1, 3.5};
  std::vector<double> expected;
  for (double v : x)
    expected.push_back(v / (1 + std::exp(-v)));
  EXPECT_EQ(expected[1], 0.0);
  RefTensor out = runOne({tensor({4}, x)}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.silu(in[0])};
  });
  expectNear(out, {4}, expected);
}

TEST(InterpreterTest, AddAndMul) {
  RefTensor a = tensor({2, 2}, {1, -2, 3.5, 0}), b = tensor({2, 2}, {0.5, 4, -1, 7});
  RefTensor sum = runOne({a, b}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.add(in[0], in[1])};
  });
  expectExact(sum, {2, 2}, {1.5, 2, 2.5, 7});
  RefTensor product = runOne({a, b}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.mul(in[0], in[1])};
  });
  expectExact(product, {2, 2}, {0.5, -8, -3.5, 0});
}

TEST(InterpreterTest, CastF32ToBf16RoundsToNearestEven) {
  std::vector<double> x = {
      1.00390625,            // 1 + 2^-8: tie between 1 (even) and 1 + 2^-7 -> 1
      1.01171875,            // 1 + 3 * 2^-8: tie between 1 + 2^-7 (odd) and 1 + 2^-6 -> up
      1.0 + 0x1p-8 + 0x1p-16, // just above the tie -> 1 + 2^-7
      1.005,                 // -> 1 + 2^-7 = 1.0078125
      -2.5,                  // exact
      3.14159265358979,      // pi -> 3.140625
  };
  for (double &v : x)
    v = double(float(v)); // f32 inputs
  RefTensor out = runOne({tensor({6}, x)}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.cast(in[0], DType::BF16)};
  });
  EXPECT_EQ(out.type, ElementType::BF16);
  expectExact(out, {6}, {1.0, 1.015625, 1.0078125, 1.0078125, -2.5, 3.140625});
}

TEST(InterpreterTest, CastF32ToI64Truncates) {
  RefTensor out = runOne({tensor({6}, {2.7, -2.7, 0.5, -0.5, 3.0, -7.999})},
                         [](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.cast(in[0], DType::I64)};
                         });
  EXPECT_EQ(out.type, ElementType::I64);
  expectExact(out, {6}, {2, -2, 0, 0, 3, -7});
}

TEST(InterpreterTest, CastI64ToF32AndBf16ToF32AreExact) {
  RefTensor f = runOne({tensor({3}, {5, -3, 16777216}, ElementType::I64)},
                       [](Tracer &t, const std::vector<Tensor> &in) {
                         return std::vector<Tensor>{t.cast(in[0], DType::F32)};
                       });
  expectExact(f, {3}, {5, -3, 16777216});
  RefTensor g = runOne({tensor({2}, {1.0078125, -3.140625}, ElementType::BF16)},
                       [](Tracer &t, const std::vector<Tensor> &in) {
                         return std::vector<Tensor>{t.cast(in[0], DType::F32)};
                       });
  expectExact(g, {2}, {1.0078125, -3.140625});
}

// ---- layout -------------------------------------------------------------------------

std::vector<double> iota3(int64_t I, int64_t J, int64_t K) {
  std::vector<double> x;
  for (int64_t i = 0; i < I; ++i)
    for (int64_t j = 0; j < J; ++j)
      for (int64_t k = 0; k < K; ++k)
        x.push_back(100 * i + 10 * j + k);
  return x;
}

TEST(InterpreterTest, ReshapeKeepsRowMajorOrder) {
  std::vector<double> x = iota3(2, 3, 4);
  RefTensor out = runOne({tensor({2, 3, 4}, x)}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.reshape(in[0], {4, -1})};
  });
  expectExact(out, {4, 6}, x);
}

TEST(InterpreterTest, Transpose3D) {
  std::vector<double> x = iota3(2, 3, 4); // x[i][j][k] = 100i + 10j + k
  // Permutation {2, 0, 1}: result[k][i][j] = x[i][j][k].
  RefTensor out = runOne({tensor({2, 3, 4}, x)}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.transpose(in[0], {2, 0, 1})};
  });
  std::vector<double> expected;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        expected.push_back(100 * i + 10 * j + k);
  expectExact(out, {4, 2, 3}, expected);

  // Permutation {1, 2, 0}: result[j][k][i] = x[i][j][k].
  RefTensor out2 = runOne({tensor({2, 3, 4}, x)}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.transpose(in[0], {1, 2, 0})};
  });
  expected.clear();
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 2; ++i)
        expected.push_back(100 * i + 10 * j + k);
  expectExact(out2, {3, 4, 2}, expected);
  // Spot check by hand: result[1][2][0] = x[0][1][2] = 12.
  EXPECT_EQ(out2.data[(1 * 4 + 2) * 2 + 0], 12);
}

TEST(InterpreterTest, ReduceSumSeveralDims) {
  std::vector<double> x = iota3(2, 3, 4); // x[i][j][k] = 100i + 10j + k
  struct Case {
    std::vector<int64_t> dims;
    bool keep;
    std::vector<int64_t> shape;
    std::vector<double> expected;
  };
  // dims {0, 2}: sum_i sum_k = 80j + 4*100 + 2*6 = 80j + 412.
  // dims {1}: sum_j = 300i + 3k + 30.
  // all dims: 1200 + 240 + 36 = 1476.
  std::vector<double> dim1;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k)
      dim1.push_back(300 * i + 3 * k + 30);
  Case cases[] = {
      {{0, 2}, false, {3}, {412, 492, 572}},
      {{0, 2}, true, {1, 3, 1}, {412, 492, 572}},
      {{2, 0}, false, {3}, {412, 492, 572}},
      {{1}, false, {2, 4}, dim1},
      {{1}, true, {2, 1, 4}, dim1},
      {{0, 1, 2}, false, {}, {1476}},
      {{0, 1, 2}, true, {1, 1, 1}, {1476}},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(::testing::Message() << "dims size " << c.dims.size() << " keep " << c.keep);
    RefTensor out = runOne({tensor({2, 3, 4}, x)}, [&](Tracer &t, const std::vector<Tensor> &in) {
      return std::vector<Tensor>{t.reduceSum(in[0], c.dims, c.keep)};
    });
    expectExact(out, c.shape, c.expected);
  }
}

// ---- loss ---------------------------------------------------------------------------

TEST(InterpreterTest, ShiftLabels) {
  RefTensor labels = tensor({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}, ElementType::I64);
  RefTensor out = runOne({labels}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.shiftLabels(in[0])};
  });
  EXPECT_EQ(out.type, ElementType::I64);
  expectExact(out, {2, 4}, {2, 3, 4, -100, 6, 7, 8, -100});
  RefTensor custom = runOne({labels}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.shiftLabels(in[0], -1)};
  });
  expectExact(custom, {2, 4}, {2, 3, 4, -1, 6, 7, 8, -1});
}

// Per-position loss written out: log(sum_v exp(logits[v])) - logits[label].
double positionLoss(const std::vector<double> &row, int64_t label) {
  double sum = 0;
  for (double v : row)
    sum += std::exp(v);
  return std::log(sum) - row[size_t(label)];
}

TEST(InterpreterTest, CrossEntropyMeanAndSumWithIgnoredPositions) {
  // logits [2, 2, 3]; labels [2, 2] with one position ignored (-100).
  std::vector<double> logits = {0, 0, 0, 1, 2, 3, -1, 0.5, 2, 4, -2, 0};
  std::vector<double> labels = {1, 2, -100, 0};
  double l0 = std::log(3.0);                           // uniform row, by hand
  double l1 = std::log(std::exp(1) + std::exp(2) + std::exp(3)) - 3;
  double l3 = positionLoss({4, -2, 0}, 0);
  EXPECT_NEAR(positionLoss({0, 0, 0}, 1), l0, 1e-15);
  EXPECT_NEAR(positionLoss({1, 2, 3}, 2), l1, 1e-15);
  for (const char *reduction : {"mean", "sum"}) {
    SCOPED_TRACE(reduction);
    RefTensor out = runOne({tensor({2, 2, 3}, logits), tensor({2, 2}, labels, ElementType::I64)},
                           [&](Tracer &t, const std::vector<Tensor> &in) {
                             return std::vector<Tensor>{
                                 t.crossEntropy(in[0], in[1], -100, reduction)};
                           });
    EXPECT_EQ(out.type, ElementType::F32);
    double total = l0 + l1 + l3;
    expectNear(out, {}, {std::string(reduction) == "mean" ? total / 3 : total});
  }
}

TEST(InterpreterTest, CrossEntropyCustomIgnoreIndex) {
  std::vector<double> logits = {0, 0, 0, 1, 2, 3};
  RefTensor out = runOne({tensor({2, 3}, logits), tensor({2}, {-1, 2}, ElementType::I64)},
                         [](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.crossEntropy(in[0], in[1], -1)};
                         });
  expectNear(out, {}, {positionLoss({1, 2, 3}, 2)});
}

TEST(InterpreterTest, CrossEntropyAllIgnoredMeanIsNaN) {
  RefTensor logits = tensor({2, 3}, {0, 1, 2, 3, 4, 5});
  RefTensor labels = tensor({2}, {-100, -100}, ElementType::I64);
  RefTensor mean = runOne({logits, labels}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.crossEntropy(in[0], in[1])};
  });
  ASSERT_EQ(mean.data.size(), 1u);
  EXPECT_TRUE(std::isnan(mean.data[0]));
  RefTensor sum = runOne({logits, labels}, [](Tracer &t, const std::vector<Tensor> &in) {
    return std::vector<Tensor>{t.crossEntropy(in[0], in[1], -100, "sum")};
  });
  ASSERT_EQ(sum.data.size(), 1u);
  EXPECT_EQ(sum.data[0], 0.0);
}

TEST(InterpreterTest, CrossEntropyLabelOutOfRange) {
  auto results = traceAndRun({tensor({2, 3}, {0, 1, 2, 3, 4, 5}),
                              tensor({2}, {0, 3}, ElementType::I64)},
                             [](Tracer &t, const std::vector<Tensor> &in) {
                               return std::vector<Tensor>{t.crossEntropy(in[0], in[1])};
                             });
  ASSERT_FALSE(results.isOk());
  EXPECT_TRUE(Contains(results.message(), "ap.cross_entropy"));
  EXPECT_TRUE(Contains(results.message(), "label 3"));
  EXPECT_TRUE(Contains(results.message(), "labels[1]"));
}

// ---- bf16 rounding ------------------------------------------------------------------

TEST(InterpreterTest, LinearBf16ResultsAreBf16Representable) {
  const int64_t N = 3, IN = 5, OUT = 4;
  std::vector<double> x = values(N * IN, 0.2), w = values(OUT * IN, 1.9);
  RefTensor out = runOne({tensor({N, IN}, x, ElementType::BF16),
                          tensor({OUT, IN}, w, ElementType::BF16)},
                         [](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.linear(in[0], in[1])};
                         });
  EXPECT_EQ(out.type, ElementType::BF16);
  ASSERT_EQ(out.shape, (std::vector<int64_t>{N, OUT}));
  int notExact = 0;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t o = 0; o < OUT; ++o) {
      double exact = 0;
      for (int64_t i = 0; i < IN; ++i)
        exact += x[r * IN + i] * w[o * IN + i];
      double got = out.data[r * OUT + o];
      EXPECT_EQ(got, bf16(got)) << "not bf16-representable: " << got;
      EXPECT_EQ(got, bf16(exact)) << "exact " << exact;
      notExact += got != exact;
    }
  EXPECT_GT(notExact, 0) << "the test should exercise rounding";
}

TEST(InterpreterTest, Bf16ResultRoundsOnceFromTheF64Value) {
  // The interpreter computes in f64 and rounds to the element type to nearest even.
  // 1 + 2^-8 + 2^-30 is just above the bf16 tie between 1 and 1 + 2^-7, so it rounds
  // to 1 + 2^-7. Rounding first to f32 (giving exactly the tie 1 + 2^-8) and then to
  // bf16 would give 1 (double rounding).
  std::vector<double> x = {1.0, 0x1p-8, 0x1p-30}, w = {1.0, 1.0, 1.0};
  RefTensor out = runOne({tensor({1, 3}, x, ElementType::BF16),
                          tensor({1, 3}, w, ElementType::BF16)},
                         [](Tracer &t, const std::vector<Tensor> &in) {
                           return std::vector<Tensor>{t.linear(in[0], in[1])};
                         });
  expectExact(out, {1, 1}, {1.0078125});
}

// ---- run() --------------------------------------------------------------------------

TEST(InterpreterTest, RunSeveralOps) {
  // y = silu(x @ w^T); z = reduce_sum(y * y, dims {1}); outputs (z, y).
  const int64_t N = 2, IN = 3, OUT = 4;
  std::vector<double> x = values(N * IN, 0.5), w = values(OUT * IN, 2.5);
  auto results = traceAndRun({tensor({N, IN}, x), tensor({OUT, IN}, w)},
                             [](Tracer &t, const std::vector<Tensor> &in) {
                               Tensor y = t.silu(t.linear(in[0], in[1]));
                               Tensor z = t.reduceSum(t.mul(y, y), {1});
                               return std::vector<Tensor>{z, y};
                             });
  ASSERT_TRUE(results.isOk()) << results.message();
  ASSERT_EQ(results->size(), 2u);
  std::vector<double> y, z(N, 0.0);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t o = 0; o < OUT; ++o) {
      double s = 0;
      for (int64_t i = 0; i < IN; ++i)
        s += x[r * IN + i] * w[o * IN + i];
      double v = s / (1 + std::exp(-s));
      y.push_back(v);
      z[r] += v * v;
    }
  expectNear((*results)[0], {N}, z, 1e-5);
  expectNear((*results)[1], {N, OUT}, y);
}

TEST(InterpreterTest, RunReturnsArgumentAndReusedValues) {
  // A value used twice (x + x) and an argument returned as is.
  auto results = traceAndRun({tensor({2}, {1.5, -2})}, [](Tracer &t, const std::vector<Tensor> &in) {
    Tensor d = t.add(in[0], in[0]);
    return std::vector<Tensor>{t.mul(d, d), in[0], d};
  });
  ASSERT_TRUE(results.isOk()) << results.message();
  ASSERT_EQ(results->size(), 3u);
  expectExact((*results)[0], {2}, {9, 16});
  expectExact((*results)[1], {2}, {1.5, -2});
  expectExact((*results)[2], {2}, {3, -4});
}

TEST(InterpreterTest, RunWithWrongArgumentCount) {
  mlir::MLIRContext context;
  Tracer t(context, "g");
  Tensor x = t.input("x", {2}, DType::F32);
  t.output("y", t.silu(x));
  auto module = t.finish();
  ASSERT_TRUE(module.isOk()) << module.message();
  auto fn = *module->get().getOps<mlir::func::FuncOp>().begin();
  auto results = run(fn, {});
  ASSERT_FALSE(results.isOk());
  EXPECT_TRUE(Contains(results.message(), "@g"));
}

TEST(InterpreterTest, OpWithoutReferenceSemantics) {
  const char *ir = R"mlir(
    func.func @h(%x: tensor<2xf32>) -> tensor<2xf32> {
      %0 = "foo.bar"(%x) : (tensor<2xf32>) -> tensor<2xf32>
      return %0 : tensor<2xf32>
    }
  )mlir";
  mlir::MLIRContext context;
  context.allowUnregisteredDialects();
  context.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(ir, &context);
  ASSERT_TRUE(module);
  auto fn = *module->getOps<mlir::func::FuncOp>().begin();
  auto results = run(fn, {tensor({2}, {1, 2})});
  ASSERT_FALSE(results.isOk());
  EXPECT_TRUE(Contains(results.message(), "foo.bar"));
  EXPECT_TRUE(Contains(results.message(), "no reference semantics"));
}

TEST(InterpreterTest, EvaluateSingleOp) {
  const char *ir = R"mlir(
    func.func @k(%a: tensor<3xf32>, %b: tensor<3xf32>) -> tensor<3xf32> {
      %0 = ap.mul %a, %b : tensor<3xf32>
      return %0 : tensor<3xf32>
    }
  )mlir";
  mlir::MLIRContext context;
  context.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(ir, &context);
  ASSERT_TRUE(module);
  auto fn = *module->getOps<mlir::func::FuncOp>().begin();
  mlir::Operation *op = &fn.getBody().front().front();
  RefTensor a = tensor({3}, {1, 2, 3}), b = tensor({3}, {0.5, 0.25, -3});
  auto result = evaluate(op, {&a, &b});
  ASSERT_TRUE(result.isOk()) << result.message();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_EQ(result->front().type, ElementType::F32);
  expectExact(result->front(), {3}, {0.5, 0.5, -9});
}

TEST(InterpreterTest, RoundTo) {
  EXPECT_EQ(roundTo(ElementType::F32, 0.1), double(0.1f));
  EXPECT_EQ(roundTo(ElementType::BF16, 1.00390625), 1.0);
  EXPECT_EQ(roundTo(ElementType::BF16, 1.01171875), 1.015625);
  EXPECT_EQ(roundTo(ElementType::F16, 1.0 + 0x1p-11), 1.0);          // tie -> even
  EXPECT_EQ(roundTo(ElementType::F16, 1.0 + 3 * 0x1p-11), 1.0 + 0x1p-9); // tie -> even
  EXPECT_EQ(roundTo(ElementType::I64, -3.9), -3.0);
  EXPECT_EQ(roundTo(ElementType::I32, 3.9), 3.0);
  EXPECT_STREQ(elementTypeName(ElementType::BF16), "bf16");
}

} // namespace
} // namespace apc::interp
