// Tests of the CPU kernels (runtime/kernels/cpu) against the reference interpreter.
//
// Each case is a one-op MLIR function (parsed and verified, so the case itself is a
// valid ap op), run once by the f64 reference interpreter (which rounds each result to
// its element type) and then by the kernel of the same name (prepare, then run) on the
// same seeded random inputs: valid ids and labels, some labels ignored. Every case runs
// the kernel with 1, 2 and 3 threads; the sizes are chosen so that the parallel paths
// are taken (work above kMinParallelWork).
//
// Tolerances, per output tensor with M = max |expected|:
//   f32:      |got - expected| <= 1e-5 M. The kernels compute in f32 (reductions in
//             double), the reference in f64 rounded once: the difference is a few f32
//             rounding errors, ~1e-7 M, so 1e-5 leaves room without hiding a wrong
//             formula (which is off by far more).
//   bf16/f16: |got - expected| <= 2^-7 max(|expected|, |got|) + 2^-13 M. The first
//             term is one bf16 ulp at the value's magnitude: f32 compute can land on
//             the other side of a rounding boundary than f64 compute. The second
//             absorbs f32 accumulation noise in values that are near zero after
//             cancellation, where a relative bound is meaningless.
//   integers: exact. NaN matches NaN only.
// Thread counts: 2 and 3 threads must give bit-identical outputs to 1 thread for every
// kernel but gemm (OpenBLAS may split the work differently), which is held to the
// reference tolerance at every thread count instead.
#include "runtime/kernels/cpu/CpuKernels.h"

#include "compiler/interpreter/Interpreter.h"
#include "dialects/ap/IR/ApDialect.h"
#include "runtime/support/HalfFloat.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace apc::kernels {
namespace {

using interp::ElementType;
using interp::RefTensor;

// ---- Random inputs ------------------------------------------------------------------

// Deterministic pseudo-random numbers (splitmix64).
class Random {
public:
  explicit Random(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull + 12345) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) / double(1ull << 53); } // [0, 1)

private:
  uint64_t state_;
};

// How the values of one operand are drawn.
struct Gen {
  enum Kind { Uniform, Positive, Ints, Labels, Scalar } kind = Uniform;
  double scale = 1.0;          // Uniform: [-scale, scale]; Positive: [0, scale]
  int64_t lo = 0, hi = 0;      // Ints: [lo, hi); Labels: [0, hi)
  double ignoreFraction = 0.0; // Labels: this share is ignoreIndex
  int64_t ignoreIndex = -100;
  double value = 0.0;          // Scalar: every element
};
Gen uniform(double scale = 1.0) { return {Gen::Uniform, scale}; }
Gen positive(double scale = 1.0) { return {Gen::Positive, scale}; }
Gen ints(int64_t lo, int64_t hi) {
  Gen g;
  g.kind = Gen::Ints;
  g.lo = lo;
  g.hi = hi;
  return g;
}
Gen ids(int64_t vocab) { return ints(0, vocab); }
Gen labels(int64_t vocab, double ignoreFraction, int64_t ignoreIndex = -100) {
  Gen g;
  g.kind = Gen::Labels;
  g.hi = vocab;
  g.ignoreFraction = ignoreFraction;
  g.ignoreIndex = ignoreIndex;
  return g;
}
Gen scalar(double value) {
  Gen g;
  g.kind = Gen::Scalar;
  g.value = value;
  return g;
}

ElementType elementTypeOf(mlir::Type type) {
  mlir::Type e = mlir::cast<mlir::RankedTensorType>(type).getElementType();
  if (e.isBF16())
    return ElementType::BF16;
  if (e.isF16())
    return ElementType::F16;
  if (e.isSignlessInteger(32))
    return ElementType::I32;
  if (e.isSignlessInteger(64))
    return ElementType::I64;
  return ElementType::F32;
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

bool isFloatType(ElementType type) {
  return type == ElementType::F32 || type == ElementType::BF16 || type == ElementType::F16;
}

RefTensor generate(mlir::Type type, const Gen &gen, uint64_t seed) {
  auto tensorType = mlir::cast<mlir::RankedTensorType>(type);
  RefTensor t;
  t.shape.assign(tensorType.getShape().begin(), tensorType.getShape().end());
  t.type = elementTypeOf(type);
  Random random(seed);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    double v = 0;
    switch (gen.kind) {
    case Gen::Uniform: v = gen.scale * (2 * random.uniform() - 1); break;
    case Gen::Positive: v = gen.scale * random.uniform(); break;
    case Gen::Ints: v = double(gen.lo + int64_t(random.uniform() * double(gen.hi - gen.lo))); break;
    case Gen::Labels:
      v = random.uniform() < gen.ignoreFraction ? double(gen.ignoreIndex)
                                                : std::floor(random.uniform() * double(gen.hi));
      break;
    case Gen::Scalar: v = gen.value; break;
    }
    t.data.push_back(interp::roundTo(t.type, v));
  }
  return t;
}

// ---- Kernel buffers -----------------------------------------------------------------

// A kernel-side tensor: 8-byte aligned storage and a view of it.
struct Buffer {
  std::vector<uint64_t> storage;
  TensorView view;

  Buffer() = default;
  Buffer(const Buffer &other) : storage(other.storage), view(other.view) {
    view.data = storage.data(); // the copy's view points at the copy
  }
  Buffer &operator=(const Buffer &other) {
    storage = other.storage;
    view = other.view;
    view.data = storage.data();
    return *this;
  }
  Buffer(Buffer &&) noexcept = default; // a moved vector keeps its memory
  Buffer &operator=(Buffer &&) noexcept = default;
};

Buffer allocate(DType dtype, const std::vector<int64_t> &shape) {
  Buffer b;
  b.view.dtype = dtype;
  b.view.shape = shape;
  size_t bytes = size_t(b.view.numElements()) * dtypeSize(dtype);
  b.storage.assign((bytes + 7) / 8 + 1, ~0ull); // NaN / -1 pattern: unwritten shows
  b.view.data = b.storage.data();
  return b;
}

Buffer toBuffer(const RefTensor &t) {
  Buffer b = allocate(dtypeOf(t.type), t.shape);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    double v = t.data[i];
    switch (b.view.dtype) {
    case DType::F32: b.view.as<float>()[i] = float(v); break;
    case DType::BF16: b.view.as<uint16_t>()[i] = floatToBf16(float(v)); break;
    case DType::F16: b.view.as<uint16_t>()[i] = floatToF16(float(v)); break;
    case DType::I32: b.view.as<int32_t>()[i] = int32_t(v); break;
    case DType::I64: b.view.as<int64_t>()[i] = int64_t(v); break;
    }
  }
  return b;
}

std::vector<double> readBack(const TensorView &view) {
  std::vector<double> values;
  for (int64_t i = 0; i < view.numElements(); ++i) {
    switch (view.dtype) {
    case DType::F32: values.push_back(view.as<float>()[i]); break;
    case DType::BF16: values.push_back(bf16ToFloat(view.as<uint16_t>()[i])); break;
    case DType::F16: values.push_back(f16ToFloat(view.as<uint16_t>()[i])); break;
    case DType::I32: values.push_back(double(view.as<int32_t>()[i])); break;
    case DType::I64: values.push_back(double(view.as<int64_t>()[i])); break;
    }
  }
  return values;
}

std::vector<uint8_t> bytesOf(const TensorView &view) {
  const uint8_t *p = static_cast<const uint8_t *>(view.data);
  return std::vector<uint8_t>(p, p + size_t(view.numElements()) * dtypeSize(view.dtype));
}

// Compares a kernel output with the reference result under the tolerances above.
::testing::AssertionResult matches(const RefTensor &expected, const std::vector<double> &got) {
  if (got.size() != expected.data.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << expected.data.size();
  double maxAbs = 0;
  for (double v : expected.data)
    if (std::isfinite(v))
      maxAbs = std::max(maxAbs, std::fabs(v));
  int failures = 0;
  ::testing::AssertionResult result = ::testing::AssertionFailure();
  for (size_t i = 0; i < got.size(); ++i) {
    double e = expected.data[i], g = got[i];
    bool ok;
    double tolerance = 0;
    if (std::isnan(e) || std::isnan(g)) {
      ok = std::isnan(e) && std::isnan(g);
    } else if (!isFloatType(expected.type)) {
      ok = e == g;
    } else if (expected.type == ElementType::F32) {
      tolerance = 1e-5 * maxAbs;
      ok = std::fabs(g - e) <= tolerance;
    } else {
      tolerance = std::ldexp(std::max(std::fabs(e), std::fabs(g)), -7) + std::ldexp(maxAbs, -13);
      ok = std::fabs(g - e) <= tolerance;
    }
    if (!ok && failures++ < 8)
      result << "\n  [" << i << "] expected " << e << " got " << g << " (tolerance "
             << tolerance << ")";
  }
  if (failures == 0)
    return ::testing::AssertionSuccess();
  return result << "\n  " << failures << " of " << got.size() << " elements differ (max |expected| "
                << maxAbs << ")";
}

// ---- Cases --------------------------------------------------------------------------

Attribute floatAttr(const std::string &name, double v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Float;
  a.f = v;
  return a;
}
Attribute intAttr(const std::string &name, int64_t v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Int;
  a.i = v;
  return a;
}
Attribute boolAttr(const std::string &name, bool v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Bool;
  a.b = v;
  return a;
}
Attribute stringAttr(const std::string &name, const std::string &v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::String;
  a.s = v;
  return a;
}
Attribute intsAttr(const std::string &name, std::vector<int64_t> v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}

// The op's attributes as kernel attributes (same names and kinds as a plan carries).
Attributes kernelAttributes(mlir::Operation *op,
                            const std::vector<std::pair<std::string, std::string>> &renames,
                            const std::vector<Attribute> &extra) {
  std::vector<Attribute> attrs;
  for (mlir::NamedAttribute named : op->getAttrs()) {
    Attribute a;
    a.name = named.getName().str();
    for (const auto &[from, to] : renames)
      if (a.name == from)
        a.name = to;
    mlir::Attribute value = named.getValue();
    if (auto b = mlir::dyn_cast<mlir::BoolAttr>(value)) {
      a.kind = Attribute::Kind::Bool;
      a.b = b.getValue();
    } else if (auto i = mlir::dyn_cast<mlir::IntegerAttr>(value)) {
      a.kind = Attribute::Kind::Int;
      a.i = i.getInt();
    } else if (auto f = mlir::dyn_cast<mlir::FloatAttr>(value)) {
      a.kind = Attribute::Kind::Float;
      a.f = f.getValueAsDouble();
    } else if (auto s = mlir::dyn_cast<mlir::StringAttr>(value)) {
      a.kind = Attribute::Kind::String;
      a.s = s.str();
    } else if (auto array = mlir::dyn_cast<mlir::DenseI64ArrayAttr>(value)) {
      a.kind = Attribute::Kind::Ints;
      a.ints.assign(array.asArrayRef().begin(), array.asArrayRef().end());
    } else {
      ADD_FAILURE() << "unsupported attribute " << a.name;
      continue;
    }
    attrs.push_back(std::move(a));
  }
  for (const Attribute &a : extra)
    attrs.push_back(a);
  return Attributes(std::move(attrs));
}

struct Case {
  std::string kernel;                 // the kernel's name
  std::string op;                     // the ap op, "ap.rms_norm"
  std::vector<std::string> operands;  // MLIR types of the operands
  std::vector<std::string> results;   // MLIR types of the results
  std::string properties;             // the op's attributes, "epsilon = 1.0e-05 : f64"
  std::vector<Gen> gens;              // per operand (default uniform)
  std::vector<std::pair<std::string, std::string>> renames; // op attr -> kernel attr
  std::vector<Attribute> extra;       // kernel attributes the op does not carry
  std::vector<int> aliases;           // per output: the input it is written into, or -1
  bool deterministic = true;          // bit-identical for any thread count
  uint64_t seed = 1;
};

std::string functionText(const Case &c) {
  std::string args, operandTypes, resultTypes, operands, returned;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    std::string sep = i ? ", " : "";
    args += sep + "%a" + std::to_string(i) + ": " + c.operands[i];
    operandTypes += sep + c.operands[i];
    operands += sep + "%a" + std::to_string(i);
  }
  for (size_t i = 0; i < c.results.size(); ++i) {
    std::string sep = i ? ", " : "";
    resultTypes += sep + c.results[i];
    returned += sep + "%r#" + std::to_string(i);
  }
  std::string props = c.properties.empty() ? "" : " <{" + c.properties + "}>";
  return "func.func @f(" + args + ") -> (" + resultTypes + ") {\n  %r:" +
         std::to_string(c.results.size()) + " = \"" + c.op + "\"(" + operands + ")" + props +
         " : (" + operandTypes + ") -> (" + resultTypes + ")\n  return " + returned + " : " +
         resultTypes + "\n}\n";
}

// Runs the case through the reference and through the kernel at 1, 2 and 3 threads.
void check(const Case &c) {
  SCOPED_TRACE(c.kernel + " / " + c.op + " <{" + c.properties + "}>");
  mlir::MLIRContext context;
  context.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
  std::string text = functionText(c);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceString<mlir::ModuleOp>(text, &context);
  ASSERT_TRUE(module) << "case does not parse or verify:\n" << text;
  mlir::func::FuncOp function = *module->getOps<mlir::func::FuncOp>().begin();
  mlir::Operation *op = &function.getBody().front().front();

  std::vector<RefTensor> inputs;
  for (size_t i = 0; i < c.operands.size(); ++i)
    inputs.push_back(generate(function.getArgument(unsigned(i)).getType(),
                              i < c.gens.size() ? c.gens[i] : uniform(), c.seed * 101 + i));
  auto expected = interp::run(function, inputs);
  ASSERT_TRUE(expected.isOk()) << expected.message();
  ASSERT_EQ(expected->size(), c.results.size());

  Attributes attrs = kernelAttributes(op, c.renames, c.extra);
  const KernelInfo *info = findCpuKernel(c.kernel);
  ASSERT_NE(info, nullptr) << "no kernel " << c.kernel;

  std::vector<std::vector<uint8_t>> firstBytes;
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    std::vector<Buffer> in, out;
    for (const RefTensor &t : inputs)
      in.push_back(toBuffer(t));
    std::vector<TensorView> inViews, outViews;
    for (Buffer &b : in)
      inViews.push_back(b.view);
    for (size_t i = 0; i < c.results.size(); ++i) {
      int alias = i < c.aliases.size() ? c.aliases[i] : -1;
      if (alias >= 0) {
        outViews.push_back(in[size_t(alias)].view);
      } else {
        out.push_back(allocate(dtypeOf((*expected)[i].type), (*expected)[i].shape));
        outViews.push_back(out.back().view);
      }
    }
    Status prepared = info->prepare(inViews, outViews, attrs);
    ASSERT_TRUE(prepared.isOk()) << prepared.message();
    KernelContext kernelContext;
    kernelContext.threads = threads;
    Status ran = info->run(kernelContext, inViews, outViews, attrs);
    ASSERT_TRUE(ran.isOk()) << ran.message();
    for (size_t i = 0; i < outViews.size(); ++i) {
      SCOPED_TRACE("output " + std::to_string(i));
      if (threads == 1 || !c.deterministic) {
        EXPECT_TRUE(matches((*expected)[i], readBack(outViews[i])));
      }
      if (threads == 1)
        firstBytes.push_back(bytesOf(outViews[i]));
      else if (c.deterministic)
        EXPECT_TRUE(firstBytes[i] == bytesOf(outViews[i]))
            << "result differs from the 1-thread result";
    }
  }
}

// "tensor<2x3xf32>", "tensor<f32>".
std::string ty(const std::vector<int64_t> &shape, const std::string &element = "f32") {
  std::string s = "tensor<";
  for (int64_t d : shape)
    s += std::to_string(d) + "x";
  return s + element + ">";
}

// ---- Registry -----------------------------------------------------------------------

TEST(CpuKernelsTest, RegistryHasEveryKernel) {
  for (const char *name :
       {"gemm", "embedding", "rms_norm", "rope", "attention", "silu", "add", "mul", "cast",
        "transpose", "reshape", "reduce_sum", "broadcast", "shift_labels", "cross_entropy",
        "fill", "embedding_grad", "rms_norm_grad", "rope_grad", "attention_grad", "silu_grad",
        "cross_entropy_grad", "grad_norm", "adamw", "count_kept", "sqrt", "vocab_parallel_max",
        "vocab_parallel_stats", "vocab_parallel_loss", "vocab_parallel_loss_grad", "slice"}) {
    const KernelInfo *info = findCpuKernel(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_STREQ(info->name, name);
    EXPECT_NE(info->run, nullptr);
    EXPECT_NE(info->prepare, nullptr);
  }
  EXPECT_EQ(findCpuKernel("no_such_kernel"), nullptr);
  EXPECT_EQ(cpuKernels().size(), 31u);
}

// ---- gemm ---------------------------------------------------------------------------

// ap.matmul [batch, M, K] x [batch, K, N] in every transpose combination.
void checkMatmul(const std::string &element, bool ta, bool tb, std::vector<int64_t> batch,
                 int64_t m, int64_t k, int64_t n) {
  std::vector<int64_t> a = batch, b = batch, c = batch;
  a.push_back(ta ? k : m);
  a.push_back(ta ? m : k);
  b.push_back(tb ? n : k);
  b.push_back(tb ? k : n);
  c.push_back(m);
  c.push_back(n);
  Case cs{"gemm", "ap.matmul", {ty(a, element), ty(b, element)}, {ty(c, element)}};
  cs.properties = std::string("transpose_lhs = ") + (ta ? "true" : "false") +
                  ", transpose_rhs = " + (tb ? "true" : "false");
  cs.renames = {{"transpose_lhs", "transpose_a"}, {"transpose_rhs", "transpose_b"}};
  cs.deterministic = false;
  check(cs);
}

TEST(CpuKernelsTest, GemmF32AllTransposes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      checkMatmul("f32", ta, tb, {}, 5, 7, 6);
      checkMatmul("f32", ta, tb, {3}, 9, 17, 11);
      checkMatmul("f32", ta, tb, {2, 3}, 4, 5, 3);
    }
}

TEST(CpuKernelsTest, GemmBf16AllTransposes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      checkMatmul("bf16", ta, tb, {2}, 9, 33, 10);
}

TEST(CpuKernelsTest, GemmF16) { checkMatmul("f16", false, true, {2}, 9, 33, 10); }

TEST(CpuKernelsTest, GemmLargeF32) { checkMatmul("f32", false, false, {}, 96, 80, 112); }

// ap.linear x [B, S, in] w [out, in] is gemm with transpose_b and a flattened M.
TEST(CpuKernelsTest, GemmLinearForm) {
  for (std::string element : {"f32", "bf16"}) {
    Case c{"gemm", "ap.linear", {ty({2, 3, 8}, element), ty({5, 8}, element)},
           {ty({2, 3, 5}, element)}};
    c.extra = {boolAttr("transpose_b", true)};
    c.deterministic = false;
    check(c);
  }
  Case c{"gemm", "ap.linear", {ty({4, 16, 64}), ty({48, 64})}, {ty({4, 16, 48})}};
  c.extra = {boolAttr("transpose_b", true)};
  c.deterministic = false;
  check(c);
}

// ---- embedding, embedding_grad ------------------------------------------------------

TEST(CpuKernelsTest, Embedding) {
  for (std::string element : {"f32", "bf16", "f16"})
    for (std::string idType : {"i32", "i64"}) {
      Case c{"embedding", "ap.embedding", {ty({50, 288}, element), ty({8, 64}, idType)},
             {ty({8, 64, 288}, element)}};
      c.gens = {uniform(), ids(50)};
      check(c);
    }
}

TEST(CpuKernelsTest, EmbeddingGrad) {
  for (std::string element : {"f32", "bf16"})
    for (std::string idType : {"i32", "i64"}) {
      // 160 positions drawn from [0, 250) (repeats, and rows no id hits), in a
      // vocabulary of 300 whose last 50 rows are never hit.
      Case c{"embedding_grad", "ap.embedding_grad",
             {ty({4, 40}, idType), ty({4, 40, 160}, element)}, {ty({300, 160}, element)}};
      c.gens = {ids(250), uniform()};
      check(c);
    }
}

// A vocabulary block starting at 0 (the interpreter's reading of vocab_shard_axis):
// ids beyond the block, and negative ones, are other blocks' (zero rows, no gradient).
TEST(CpuKernelsTest, EmbeddingVocabBlock) {
  for (std::string element : {"f32", "bf16"})
    for (std::string idType : {"i32", "i64"}) {
      Case c{"embedding", "ap.embedding", {ty({50, 288}, element), ty({8, 64}, idType)},
             {ty({8, 64, 288}, element)}};
      c.properties = "vocab_shard_axis = 0 : i64";
      c.gens = {uniform(), ints(-30, 120)};
      c.extra = {intAttr("vocab_start", 0)};
      check(c);
      Case g{"embedding_grad", "ap.embedding_grad",
             {ty({4, 40}, idType), ty({4, 40, 160}, element)}, {ty({300, 160}, element)}};
      g.properties = "vocab_shard_axis = 1 : i64";
      g.gens = {ints(-100, 500), uniform()};
      g.extra = {intAttr("vocab_start", 0)};
      check(g);
    }
}

// ---- rms_norm, rms_norm_grad --------------------------------------------------------

TEST(CpuKernelsTest, RmsNorm) {
  for (std::string element : {"f32", "bf16", "f16"}) {
    Case c{"rms_norm", "ap.rms_norm", {ty({4, 33, 96}, element), ty({96}, element)},
           {ty({4, 33, 96}, element)}};
    c.properties = "epsilon = 1.0e-05 : f64";
    c.gens = {uniform(3.0), uniform(2.0)};
    check(c);
  }
  Case c{"rms_norm", "ap.rms_norm", {ty({40}), ty({40})}, {ty({40})}};
  c.properties = "epsilon = 1.0e-06 : f64";
  check(c);
}

TEST(CpuKernelsTest, RmsNormGrad) {
  for (std::string element : {"f32", "bf16"}) {
    std::string x = ty({4, 33, 96}, element), w = ty({96}, element);
    Case c{"rms_norm_grad", "ap.rms_norm_grad", {x, w, x}, {x, w}};
    c.properties = "epsilon = 1.0e-05 : f64";
    c.gens = {uniform(3.0), uniform(2.0), uniform()};
    check(c);
  }
  Case c{"rms_norm_grad", "ap.rms_norm_grad", {ty({40}), ty({40}), ty({40})}, {ty({40}), ty({40})}};
  c.properties = "epsilon = 1.0e-06 : f64";
  check(c);
}

// ---- rope, rope_grad ----------------------------------------------------------------

const char *kLlama3Rope =
    "theta = 500000.0 : f64, rope_type = \"llama3\", factor = 8.0 : f64, "
    "low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, "
    "original_max_position_embeddings = 64 : i64, position_offset = 7 : i64";

TEST(CpuKernelsTest, Rope) {
  for (std::string element : {"f32", "bf16"}) {
    std::string x = ty({2, 33, 8, 32}, element);
    Case c{"rope", "ap.rope", {x}, {x}};
    c.properties = "theta = 10000.0 : f64";
    check(c);
    c.properties = "theta = 10000.0 : f64, position_offset = 4000 : i64";
    check(c);
    c.properties = kLlama3Rope;
    check(c);
  }
}

TEST(CpuKernelsTest, RopeGrad) {
  std::string x = ty({2, 33, 8, 32});
  Case c{"rope_grad", "ap.rope_grad", {x}, {x}};
  c.properties = "theta = 10000.0 : f64, position_offset = 3 : i64";
  check(c);
  c.properties = kLlama3Rope;
  check(c);
}

TEST(CpuKernelsTest, RopeInPlace) {
  std::string x = ty({2, 33, 8, 32});
  Case c{"rope", "ap.rope", {x}, {x}};
  c.properties = "theta = 10000.0 : f64, position_offset = 2 : i64";
  c.aliases = {0};
  check(c);
}

// ---- attention, attention_grad ------------------------------------------------------

Case attentionCase(const std::string &element, int64_t heads, int64_t kvHeads,
                   const std::string &properties, bool grad) {
  std::string q = ty({2, 19, heads, 16}, element), kv = ty({2, 19, kvHeads, 16}, element);
  Case c;
  if (grad) {
    c = Case{"attention_grad", "ap.attention_grad", {q, kv, kv, q}, {q, kv, kv}};
  } else {
    c = Case{"attention", "ap.attention", {q, kv, kv}, {q}};
  }
  c.properties = properties;
  c.gens = {uniform(2.0), uniform(2.0), uniform(), uniform()};
  return c;
}

TEST(CpuKernelsTest, Attention) {
  for (std::string element : {"f32", "bf16"})
    for (auto [heads, kvHeads] : {std::pair<int64_t, int64_t>{4, 2}, {4, 4}, {4, 1}})
      for (std::string props : {"", "causal = true", "causal = false",
                                "causal = false, scale = 0.5 : f64"})
        check(attentionCase(element, heads, kvHeads, props, false));
}

TEST(CpuKernelsTest, AttentionGrad) {
  for (auto [heads, kvHeads] : {std::pair<int64_t, int64_t>{4, 2}, {4, 4}, {4, 1}})
    for (std::string props : {"", "causal = false", "causal = true, scale = 0.3 : f64"})
      check(attentionCase("f32", heads, kvHeads, props, true));
  check(attentionCase("bf16", 4, 2, "", true));
}

// ---- elementwise --------------------------------------------------------------------

TEST(CpuKernelsTest, SiluAndSiluGrad) {
  for (std::string element : {"f32", "bf16", "f16"}) {
    std::string x = ty({37, 129}, element);
    Case silu{"silu", "ap.silu", {x}, {x}};
    silu.gens = {uniform(8.0)};
    check(silu);
    Case grad{"silu_grad", "ap.silu_grad", {x, x}, {x}};
    grad.gens = {uniform(8.0), uniform()};
    check(grad);
  }
}

TEST(CpuKernelsTest, Sqrt) {
  for (std::string element : {"f32", "bf16", "f16"}) {
    std::string x = ty({37, 129}, element);
    Case c{"sqrt", "ap.sqrt", {x}, {x}};
    c.gens = {positive(100.0)};
    check(c);
    c.aliases = {0}; // in place
    check(c);
  }
  Case scalar{"sqrt", "ap.sqrt", {ty({})}, {ty({})}};
  scalar.gens = {positive(1e6)};
  check(scalar);
  Case negative{"sqrt", "ap.sqrt", {ty({3, 5})}, {ty({3, 5})}}; // NaN, as the reference
  negative.gens = {uniform()};
  check(negative);
}

TEST(CpuKernelsTest, AddAndMul) {
  for (std::string element : {"f32", "bf16", "f16"})
    for (std::string kernel : {"add", "mul"}) {
      std::string x = ty({129, 257}, element);
      Case c{kernel, "ap." + kernel, {x, x}, {x}};
      c.gens = {uniform(4.0), uniform(4.0)};
      check(c);
    }
}

TEST(CpuKernelsTest, ElementwiseInPlace) {
  std::string x = ty({37, 129}, "bf16");
  Case add{"add", "ap.add", {x, x}, {x}};
  add.aliases = {1}; // result written over rhs
  check(add);
  Case silu{"silu", "ap.silu", {x}, {x}};
  silu.aliases = {0};
  check(silu);
  Case grad{"silu_grad", "ap.silu_grad", {x, x}, {x}};
  grad.aliases = {1};
  check(grad);
}

TEST(CpuKernelsTest, CastEveryPair) {
  const std::vector<std::string> types = {"f32", "bf16", "f16", "i32", "i64"};
  for (const std::string &from : types)
    for (const std::string &to : types) {
      Case c{"cast", "ap.cast", {ty({33, 65}, from)}, {ty({33, 65}, to)}};
      c.gens = {from[0] == 'i' ? ints(-3000, 3000) : uniform(300.0)};
      check(c);
    }
  // Wide integers (beyond f32's 24 bits) rounded once to bf16 and f32, and a large one.
  for (std::string to : {"bf16", "f16", "f32"}) {
    Case c{"cast", "ap.cast", {ty({256, 257}, "i64")}, {ty({256, 257}, to)}};
    c.gens = {to == "f16" ? ints(-60000, 60000) : ints(-(int64_t(1) << 40), int64_t(1) << 40)};
    check(c);
  }
  Case c{"cast", "ap.cast", {ty({256, 257}, "f32")}, {ty({256, 257}, "bf16")}};
  check(c);
}

TEST(CpuKernelsTest, Fill) {
  for (std::string element : {"f32", "bf16", "f16"}) {
    Case c{"fill", "ap.fill", {}, {ty({400, 330}, element)}};
    c.properties = "value = 0.1 : f64";
    check(c);
    c.properties = "value = -2.5 : f64";
    check(c);
  }
}

// ---- layout -------------------------------------------------------------------------

TEST(CpuKernelsTest, Transpose) {
  for (std::string element : {"f32", "bf16", "i64", "i32"}) {
    Case c{"transpose", "ap.transpose", {ty({3, 4, 5, 6}, element)}, {ty({3, 5, 4, 6}, element)}};
    c.properties = "permutation = array<i64: 0, 2, 1, 3>";
    if (element[0] == 'i')
      c.gens = {ints(-100, 100)};
    check(c);
    c.results = {ty({5, 3, 6, 4}, element)};
    c.properties = "permutation = array<i64: 2, 0, 3, 1>";
    check(c);
  }
  Case c{"transpose", "ap.transpose", {ty({64, 48, 40})}, {ty({40, 64, 48})}};
  c.properties = "permutation = array<i64: 2, 0, 1>";
  check(c);
  c.operands = {ty({})};
  c.results = {ty({})};
  c.properties = "permutation = array<i64>";
  check(c);
}

TEST(CpuKernelsTest, Reshape) {
  Case c{"reshape", "ap.reshape", {ty({4, 6}, "bf16")}, {ty({2, 12}, "bf16")}};
  check(c);
}

TEST(CpuKernelsTest, SliceOfEachDim) {
  // A micro-batch's rows (dim 0), and blocks of inner dims, against the interpreter.
  for (auto [dim, offset, result] :
       std::vector<std::tuple<int, int, std::vector<int64_t>>>{
           {0, 2, {2, 6, 5}}, {0, 0, {1, 6, 5}}, {1, 3, {4, 3, 5}}, {2, 1, {4, 6, 4}}})
    for (std::string element : {"f32", "bf16", "i64"}) {
      Case c{"slice", "ap.slice", {ty({4, 6, 5}, element)}, {ty(result, element)}};
      c.properties = "dim = " + std::to_string(dim) + " : i64, offset = " +
                     std::to_string(offset) + " : i64";
      check(c);
    }
}

TEST(CpuKernelsTest, ReduceSum) {
  struct Shape {
    std::string dims;
    std::vector<int64_t> result;
    bool keep;
  };
  std::vector<int64_t> input = {8, 24, 200};
  for (const Shape &s : std::vector<Shape>{{"2", {8, 24}, false},
                                           {"0, 1", {200}, false},
                                           {"1", {8, 1, 200}, true},
                                           {"0, 2", {24}, false},
                                           {"", {8, 24, 200}, false},
                                           {"0, 1, 2", {}, false},
                                           {"0, 1, 2", {1, 1, 1}, true}})
    for (std::string element : {"f32", "bf16"}) {
      Case c{"reduce_sum", "ap.reduce_sum", {ty(input, element)}, {ty(s.result, element)}};
      c.properties = "dims = array<i64" + (s.dims.empty() ? "" : ": " + s.dims) + ">" +
                     (s.keep ? ", keep_dims = true" : "");
      check(c);
    }
  // Dims of size 1 among the reduced and kept ones.
  Case c{"reduce_sum", "ap.reduce_sum", {ty({1, 30, 1, 40, 50})}, {ty({1, 50})}};
  c.properties = "dims = array<i64: 1, 2, 3>";
  check(c);
}

TEST(CpuKernelsTest, Broadcast) {
  struct Shape {
    std::vector<int64_t> input;
    std::string dims;
  };
  std::vector<int64_t> result = {8, 24, 200};
  for (const Shape &s : std::vector<Shape>{{{24, 200}, "0"},
                                           {{8, 200}, "1"},
                                           {{8, 24}, "2"},
                                           {{24}, "0, 2"},
                                           {{}, "0, 1, 2"}})
    for (std::string element : {"f32", "bf16"}) {
      Case c{"broadcast", "ap.broadcast", {ty(s.input, element)}, {ty(result, element)}};
      c.properties = "dims = array<i64: " + s.dims + ">";
      check(c);
    }
}

// ---- loss ---------------------------------------------------------------------------

TEST(CpuKernelsTest, ShiftLabels) {
  for (std::string idType : {"i32", "i64"}) {
    Case c{"shift_labels", "ap.shift_labels", {ty({3, 17}, idType)}, {ty({3, 17}, idType)}};
    c.gens = {labels(1000, 0.2)};
    check(c);
    c.properties = "ignore_index = -1 : i64";
    check(c);
  }
}

TEST(CpuKernelsTest, CrossEntropy) {
  for (std::string element : {"f32", "bf16"})
    for (std::string idType : {"i32", "i64"})
      for (std::string reduction : {"mean", "sum"}) {
        Case c{"cross_entropy", "ap.cross_entropy", {ty({3, 11, 300}, element), ty({3, 11}, idType)},
               {ty({})}};
        c.properties = "reduction = \"" + reduction + "\"";
        c.gens = {uniform(5.0), labels(300, 0.3)};
        check(c);
      }
  // A custom ignore index.
  Case c{"cross_entropy", "ap.cross_entropy", {ty({4, 300}), ty({4}, "i64")}, {ty({})}};
  c.properties = "ignore_index = -1 : i64";
  c.gens = {uniform(5.0), labels(300, 0.5, -1)};
  check(c);
}

TEST(CpuKernelsTest, CrossEntropyAllIgnored) {
  for (std::string reduction : {"mean", "sum"}) { // mean: NaN (as torch); sum: 0
    Case c{"cross_entropy", "ap.cross_entropy", {ty({3, 11, 300}), ty({3, 11}, "i64")}, {ty({})}};
    c.properties = "reduction = \"" + reduction + "\"";
    c.gens = {uniform(5.0), labels(300, 1.0)};
    check(c);
  }
}

TEST(CpuKernelsTest, CrossEntropyGrad) {
  for (std::string element : {"f32", "bf16"})
    for (std::string reduction : {"mean", "sum"}) {
      Case c{"cross_entropy_grad", "ap.cross_entropy_grad",
             {ty({3, 11, 300}, element), ty({3, 11}, "i64"), ty({})}, {ty({3, 11, 300}, element)}};
      c.properties = "reduction = \"" + reduction + "\"";
      c.gens = {uniform(5.0), labels(300, 0.3), scalar(1.7)};
      check(c);
    }
  Case c{"cross_entropy_grad", "ap.cross_entropy_grad",
         {ty({3, 11, 300}), ty({3, 11}, "i32"), ty({})}, {ty({3, 11, 300})}};
  c.gens = {uniform(5.0), labels(300, 1.0), scalar(1.0)}; // all ignored: zeros
  check(c);
}

// The data-parallel forms: the mean divides by a given (global) kept count.
TEST(CpuKernelsTest, LossWithGlobalKeptCount) {
  Case forward{"cross_entropy", "ap.cross_entropy",
               {ty({3, 11, 300}), ty({3, 11}, "i64"), ty({})}, {ty({})}};
  forward.gens = {uniform(5.0), labels(300, 0.3), scalar(57.0)};
  check(forward);
  Case backward{"cross_entropy_grad", "ap.cross_entropy_grad",
                {ty({3, 11, 300}, "bf16"), ty({3, 11}, "i32"), ty({}), ty({})},
                {ty({3, 11, 300}, "bf16")}};
  backward.gens = {uniform(5.0), labels(300, 0.3), scalar(1.3), scalar(57.0)};
  check(backward);
  for (std::string idType : {"i32", "i64"}) {
    Case count{"count_kept", "ap.count_kept", {ty({5, 13}, idType)}, {ty({})}};
    count.gens = {labels(300, 0.4)};
    check(count);
  }
}

// The vocabulary-parallel kernels against the reference, each on its own inputs (the
// interpreter reads vocab_shard_axis as the block starting at 0). Their equality with
// cross_entropy, whole and split, is tested below (VocabParallel*).
TEST(CpuKernelsTest, VocabParallelKernels) {
  for (std::string element : {"f32", "bf16", "f16"}) {
    Case max{"vocab_parallel_max", "ap.vocab_parallel_max", {ty({3, 11, 300}, element)},
             {ty({3, 11})}};
    max.gens = {uniform(5.0)};
    check(max);
  }
  for (std::string element : {"f32", "bf16"})
    for (std::string idType : {"i32", "i64"}) {
      // Labels in [0, 400) over a block of 300 columns; row_max as a combined max.
      Case stats{"vocab_parallel_stats", "ap.vocab_parallel_stats",
                 {ty({3, 11, 300}, element), ty({3, 11}, idType), ty({3, 11})},
                 {ty({3, 11}), ty({3, 11})}};
      stats.gens = {uniform(5.0), labels(400, 0.3), uniform(1.0)};
      check(stats);
      stats.properties = "ignore_index = 7 : i64, vocab_shard_axis = 0 : i64";
      stats.gens[1] = labels(10, 0.3, 7);
      stats.extra = {intAttr("vocab_start", 0)};
      check(stats);
    }
  for (std::string reduction : {"mean", "sum"})
    for (bool withCount : {false, true}) {
      std::string rows = ty({3, 11});
      Case loss{"vocab_parallel_loss", "ap.vocab_parallel_loss",
                {rows, rows, rows, ty({3, 11}, "i64")}, {ty({})}};
      loss.properties = "reduction = \"" + reduction + "\"";
      loss.gens = {uniform(5.0), positive(50.0), uniform(5.0), labels(300, 0.3)};
      if (withCount) {
        loss.operands.push_back(ty({}));
        loss.gens.push_back(scalar(57.0));
      }
      check(loss);
      Case grad{"vocab_parallel_loss_grad", "ap.vocab_parallel_loss_grad",
                {ty({3, 11, 300}, "bf16"), ty({3, 11}, "i32"), rows, rows, ty({})},
                {ty({3, 11, 300}, "bf16")}};
      grad.properties = "reduction = \"" + reduction + "\"";
      grad.gens = {uniform(5.0), labels(400, 0.3), uniform(1.0), positive(300.0), scalar(1.7)};
      if (withCount) {
        grad.operands.push_back(ty({}));
        grad.gens.push_back(scalar(57.0));
      }
      check(grad);
    }
  // All ignored: the mean is NaN and the gradient zero, as cross_entropy.
  std::string rows = ty({2, 5});
  Case loss{"vocab_parallel_loss", "ap.vocab_parallel_loss", {rows, rows, rows, ty({2, 5}, "i64")},
            {ty({})}};
  loss.gens = {uniform(), positive(), uniform(), labels(10, 1.0)};
  check(loss);
  Case grad{"vocab_parallel_loss_grad", "ap.vocab_parallel_loss_grad",
            {ty({2, 5, 10}), ty({2, 5}, "i64"), rows, rows, ty({})}, {ty({2, 5, 10})}};
  grad.properties = "vocab_shard_axis = 2 : i64";
  grad.gens = {uniform(), labels(10, 1.0), uniform(), positive(), scalar(1.0)};
  grad.extra = {intAttr("vocab_start", 0)};
  check(grad);
}

// ---- optimizer ----------------------------------------------------------------------

TEST(CpuKernelsTest, GradNorm) {
  Case c{"grad_norm", "ap.grad_norm", {ty({300, 200}), ty({1000}, "bf16"), ty({7}, "f16")},
         {ty({})}};
  check(c);
  Case one{"grad_norm", "ap.grad_norm", {ty({5})}, {ty({})}};
  check(one);
  // The sum of squares of a sharded program, and the explicit default.
  c.properties = "squared = true";
  check(c);
  c.properties = "squared = false";
  check(c);
}

Case adamwCase(const std::string &gradElement, const std::string &properties, bool withNorm,
               double norm, const std::string &stepType = "i64") {
  std::string p = ty({64, 65});
  Case c{"adamw", "ap.adamw", {p, ty({64, 65}, gradElement), p, p, ty({}, stepType), ty({})},
         {p, p, p}};
  c.gens = {uniform(), uniform(), uniform(0.1), positive(0.01), scalar(3), scalar(1e-3)};
  if (withNorm) {
    c.operands.push_back(ty({}));
    c.gens.push_back(scalar(norm));
  }
  c.properties = properties;
  return c;
}

TEST(CpuKernelsTest, AdamW) {
  check(adamwCase("f32", "", false, 0));
  check(adamwCase("bf16", "", false, 0));
  check(adamwCase("f32", "", false, 0, "i32"));
  check(adamwCase("f32", "beta1 = 0.8 : f64, beta2 = 0.95 : f64, epsilon = 1.0e-06 : f64, "
                         "weight_decay = 0.1 : f64", false, 0));
  // grad_norm present but no max_grad_norm: no clipping.
  check(adamwCase("f32", "", true, 5.0));
}

TEST(CpuKernelsTest, AdamWWithClipping) {
  check(adamwCase("f32", "max_grad_norm = 1.0 : f64", true, 5.0));  // clipped by 1/5
  check(adamwCase("bf16", "max_grad_norm = 1.0 : f64", true, 5.0));
  check(adamwCase("f32", "max_grad_norm = 1.0 : f64", true, 0.5)); // below the limit
}

TEST(CpuKernelsTest, AdamWInPlace) {
  for (std::string props : {"", "max_grad_norm = 1.0 : f64"}) {
    Case c = adamwCase("f32", props, true, 5.0);
    c.aliases = {0, 2, 3}; // new_param over param, new_exp_avg over exp_avg, ...
    check(c);
  }
}

// ---- prepare's refusals -------------------------------------------------------------

TensorView view(DType dtype, std::vector<int64_t> shape) {
  TensorView v;
  v.dtype = dtype;
  v.shape = std::move(shape);
  return v;
}

::testing::AssertionResult refuses(const char *kernel, const std::vector<TensorView> &in,
                                   const std::vector<TensorView> &out, const Attributes &attrs,
                                   const std::string &part) {
  const KernelInfo *info = findCpuKernel(kernel);
  if (!info)
    return ::testing::AssertionFailure() << "no kernel " << kernel;
  Status status = info->prepare(in, out, attrs);
  if (status.isOk())
    return ::testing::AssertionFailure() << kernel << " accepted the instruction";
  if (status.message().find(part) == std::string::npos ||
      status.message().rfind(std::string(kernel) + ": ", 0) != 0)
    return ::testing::AssertionFailure() << "'" << part << "' not in: " << status.message();
  return ::testing::AssertionSuccess();
}

constexpr DType F32 = DType::F32, BF16 = DType::BF16, I32 = DType::I32, I64 = DType::I64;

TEST(CpuKernelsTest, PrepareRefusesWrongDtypes) {
  Attributes eps({floatAttr("epsilon", 1e-5)});
  EXPECT_TRUE(refuses("rms_norm", {view(I32, {2, 4}), view(I32, {4})}, {view(I32, {2, 4})}, eps,
                      "input must have element type f32, bf16 or f16, got i32[2, 4]"));
  EXPECT_TRUE(refuses("rms_norm", {view(F32, {2, 4}), view(BF16, {4})}, {view(F32, {2, 4})}, eps,
                      "must have the same element type"));
  EXPECT_TRUE(refuses("rms_norm", {view(F32, {2, 4}), view(F32, {4})}, {view(BF16, {2, 4})}, eps,
                      "result bf16[2, 4] must have the type of input f32[2, 4]"));
  EXPECT_TRUE(refuses("embedding", {view(F32, {10, 4}), view(F32, {3})}, {view(F32, {3, 4})}, {},
                      "ids must have element type i32 or i64"));
  EXPECT_TRUE(refuses("gemm", {view(F32, {2, 4}), view(BF16, {4, 3})}, {view(F32, {2, 3})}, {},
                      "same element type"));
  Attributes none;
  std::vector<TensorView> adamIn = {view(BF16, {4}), view(F32, {4}), view(BF16, {4}),
                                    view(BF16, {4}), view(I64, {}), view(F32, {})};
  EXPECT_TRUE(refuses("adamw", adamIn, {view(BF16, {4}), view(BF16, {4}), view(BF16, {4})}, none,
                      "must be f32"));
  EXPECT_TRUE(refuses("cross_entropy", {view(F32, {3, 10}), view(I64, {3})}, {view(BF16, {})},
                      none, "result must be f32"));
  EXPECT_TRUE(refuses("cast", {view(F32, {3})}, {view(I32, {4})}, none, "shape of input"));
}

TEST(CpuKernelsTest, PrepareRefusesWrongShapes) {
  Attributes eps({floatAttr("epsilon", 1e-5)});
  EXPECT_TRUE(refuses("rms_norm", {view(F32, {2, 4}), view(F32, {5})}, {view(F32, {2, 4})}, eps,
                      "weight f32[5] must match the last dim of input f32[2, 4]"));
  EXPECT_TRUE(refuses("gemm", {view(F32, {2, 4}), view(F32, {5, 3})}, {view(F32, {2, 3})}, {},
                      "contraction size of a f32[2, 4] (4) differs from b f32[5, 3] (5)"));
  EXPECT_TRUE(refuses("gemm", {view(F32, {2, 3, 4}), view(F32, {4, 6})}, {view(F32, {2, 3, 5})},
                      {}, "c must have shape [2, 3, 6]"));
  EXPECT_TRUE(refuses("gemm", {view(F32, {2, 4, 3}), view(F32, {4, 6})}, {view(F32, {2, 3, 6})},
                      Attributes({boolAttr("transpose_a", true)}), "transpose_a is not supported"));
  EXPECT_TRUE(refuses("gemm", {view(F32, {2, 3, 4}), view(F32, {3, 4, 6})},
                      {view(F32, {2, 3, 6})}, {}, "batch dim 0"));
  EXPECT_TRUE(refuses("attention", {view(F32, {1, 8, 3, 16}), view(F32, {1, 8, 2, 16}),
                                    view(F32, {1, 8, 2, 16})},
                      {view(F32, {1, 8, 3, 16})}, {}, "must be a multiple of key/value heads"));
  EXPECT_TRUE(refuses("attention", {view(F32, {1, 8, 4, 16}), view(F32, {1, 8, 2, 16}),
                                    view(F32, {1, 8, 1, 16})},
                      {view(F32, {1, 8, 4, 16})}, {}, "must have the same shape"));
  EXPECT_TRUE(refuses("rope", {view(F32, {1, 8, 2, 15})}, {view(F32, {1, 8, 2, 15})},
                      Attributes({floatAttr("theta", 1e4)}), "must be even and positive"));
  EXPECT_TRUE(refuses("cross_entropy", {view(F32, {3, 10}), view(I64, {4})}, {view(F32, {})}, {},
                      "labels i64[4] must have the shape of logits without its last dim"));
  EXPECT_TRUE(refuses("embedding_grad", {view(I64, {3}), view(F32, {3, 4})}, {view(F32, {10, 5})},
                      {}, "plus the hidden dim"));
  EXPECT_TRUE(refuses("reduce_sum", {view(F32, {3, 4})}, {view(F32, {3, 4})},
                      Attributes({intsAttr("dims", {1})}), "result must have shape [3]"));
  EXPECT_TRUE(refuses("broadcast", {view(F32, {3})}, {view(F32, {4, 5})},
                      Attributes({intsAttr("dims", {0})}), "must be result"));
  EXPECT_TRUE(refuses("silu", {view(F32, {3})}, {view(F32, {3}), view(F32, {3})}, {},
                      "expects 1 outputs, got 2"));
  EXPECT_TRUE(refuses("add", {view(F32, {3})}, {view(F32, {3})}, {}, "expects 2 inputs, got 1"));
}

TEST(CpuKernelsTest, PrepareRefusesBadAttributes) {
  EXPECT_TRUE(refuses("rms_norm", {view(F32, {2, 4}), view(F32, {4})}, {view(F32, {2, 4})}, {},
                      "missing attribute 'epsilon'"));
  EXPECT_TRUE(refuses("rms_norm", {view(F32, {2, 4}), view(F32, {4})}, {view(F32, {2, 4})},
                      Attributes({floatAttr("epsilon", 0.0)}), "epsilon must be positive"));
  EXPECT_TRUE(refuses("fill", {}, {view(F32, {2})}, {}, "missing attribute 'value'"));
  EXPECT_TRUE(refuses("transpose", {view(F32, {2, 3})}, {view(F32, {3, 2})}, {},
                      "missing attribute 'permutation'"));
  EXPECT_TRUE(refuses("transpose", {view(F32, {2, 3})}, {view(F32, {3, 2})},
                      Attributes({intsAttr("permutation", {1, 1})}), "is not a permutation"));
  EXPECT_TRUE(refuses("reduce_sum", {view(F32, {2, 3})}, {view(F32, {2})},
                      Attributes({intsAttr("dims", {2})}), "must be distinct dims"));
  TensorView x = view(F32, {1, 4, 2, 8});
  EXPECT_TRUE(refuses("rope", {x}, {x}, {}, "missing attribute 'theta'"));
  EXPECT_TRUE(refuses("rope", {x}, {x},
                      Attributes({floatAttr("theta", 1e4), stringAttr("rope_type", "yarn")}),
                      "expected one of \"default\", \"llama3\""));
  EXPECT_TRUE(refuses("rope", {x}, {x},
                      Attributes({floatAttr("theta", 1e4), stringAttr("rope_type", "llama3")}),
                      "missing attribute 'factor'"));
  EXPECT_TRUE(refuses("rope_grad", {x}, {x},
                      Attributes({floatAttr("theta", 1e4), floatAttr("factor", 8)}),
                      "takes no scaling attributes"));
  EXPECT_TRUE(refuses("rope", {x}, {x},
                      Attributes({floatAttr("theta", 1e4), stringAttr("position_offset", "3")}),
                      "'position_offset' must be an integer"));
  EXPECT_TRUE(refuses("cross_entropy", {view(F32, {3, 10}), view(I64, {3})}, {view(F32, {})},
                      Attributes({stringAttr("reduction", "avg")}), "expected one of"));
  EXPECT_TRUE(refuses("attention", {x, x, x}, {x}, Attributes({floatAttr("scale", -1)}),
                      "scale must be positive"));
  std::vector<TensorView> adamIn = {view(F32, {4}), view(F32, {4}), view(F32, {4}),
                                    view(F32, {4}), view(I64, {}), view(F32, {})};
  std::vector<TensorView> adamOut = {view(F32, {4}), view(F32, {4}), view(F32, {4})};
  EXPECT_TRUE(refuses("adamw", adamIn, adamOut, Attributes({floatAttr("max_grad_norm", 1.0)}),
                      "max_grad_norm needs the grad_norm input"));
  EXPECT_TRUE(refuses("adamw", adamIn, adamOut, Attributes({floatAttr("beta1", 1.0)}),
                      "beta1 and beta2 must be in [0, 1)"));
  EXPECT_TRUE(findCpuKernel("adamw")->prepare(adamIn, adamOut, {}).isOk());
}

// ---- Data errors --------------------------------------------------------------------

// Runs `kernel` (prepare must accept it) and returns the run's status.
Status runKernel(const char *kernel, std::vector<Buffer> &in, std::vector<Buffer> &out,
                 const Attributes &attrs) {
  std::vector<TensorView> inViews, outViews;
  for (Buffer &b : in)
    inViews.push_back(b.view);
  for (Buffer &b : out)
    outViews.push_back(b.view);
  const KernelInfo *info = findCpuKernel(kernel);
  Status prepared = info->prepare(inViews, outViews, attrs);
  EXPECT_TRUE(prepared.isOk()) << prepared.message();
  KernelContext context;
  context.threads = 2;
  return info->run(context, inViews, outViews, attrs);
}

RefTensor values(std::vector<int64_t> shape, std::vector<double> data, ElementType type) {
  RefTensor t;
  t.shape = std::move(shape);
  t.type = type;
  t.data = std::move(data);
  return t;
}

::testing::AssertionResult failsWith(const Status &status, const std::vector<std::string> &parts) {
  if (status.isOk())
    return ::testing::AssertionFailure() << "no error";
  for (const std::string &part : parts)
    if (status.message().find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << part << "' not in: " << status.message();
  return ::testing::AssertionSuccess();
}

TEST(CpuKernelsTest, EmbeddingIdOutOfRangeNamesValueAndPosition) {
  std::vector<Buffer> in = {allocate(F32, {11, 4}),
                            toBuffer(values({2, 3}, {0, 1, 2, 3, 4, 11}, ElementType::I32))};
  std::vector<Buffer> out = {allocate(F32, {2, 3, 4})};
  EXPECT_TRUE(failsWith(runKernel("embedding", in, out, {}),
                        {"embedding: token id 11 at ids[1, 2]", "outside the vocabulary [0, 11)"}));
  in[1] = toBuffer(values({2, 3}, {0, 1, -1, 3, 4, 5}, ElementType::I64));
  EXPECT_TRUE(failsWith(runKernel("embedding", in, out, {}), {"token id -1 at ids[0, 2]"}));
  std::vector<Buffer> gradIn = {toBuffer(values({3}, {0, 12, 1}, ElementType::I64)),
                                allocate(F32, {3, 4})};
  std::vector<Buffer> gradOut = {allocate(F32, {11, 4})};
  EXPECT_TRUE(failsWith(runKernel("embedding_grad", gradIn, gradOut, {}),
                        {"embedding_grad: token id 12 at ids[1]"}));
}

TEST(CpuKernelsTest, LabelOutOfRangeNamesValueAndPosition) {
  std::vector<Buffer> in = {toBuffer(values({3, 5}, std::vector<double>(15, 0.5), ElementType::F32)),
                            toBuffer(values({3}, {-100, 5, 1}, ElementType::I64))};
  std::vector<Buffer> out = {allocate(F32, {})};
  EXPECT_TRUE(failsWith(runKernel("cross_entropy", in, out, {}),
                        {"cross_entropy: label 5 at labels[1]", "outside [0, 5)"}));
  // -100 is only ignored as the ignore index; with another one it is out of range.
  EXPECT_TRUE(failsWith(runKernel("cross_entropy", in, out,
                                  Attributes({intAttr("ignore_index", -1)})),
                        {"label -100 at labels[0]"}));
  in.push_back(toBuffer(values({}, {1.0}, ElementType::F32)));
  out = {allocate(F32, {3, 5})};
  EXPECT_TRUE(failsWith(runKernel("cross_entropy_grad", in, out, {}),
                        {"cross_entropy_grad: label 5 at labels[1]"}));
}

TEST(CpuKernelsTest, AdamWStepZeroIsAnError) {
  std::vector<Buffer> in = {allocate(F32, {4}), allocate(F32, {4}), allocate(F32, {4}),
                            allocate(F32, {4}), toBuffer(values({}, {0}, ElementType::I64)),
                            toBuffer(values({}, {1e-3}, ElementType::F32))};
  std::vector<Buffer> out = {allocate(F32, {4}), allocate(F32, {4}), allocate(F32, {4})};
  EXPECT_TRUE(failsWith(runKernel("adamw", in, out, {}), {"step must be at least 1"}));
}

// ---- Vocabulary parallelism: blocks against the unsplit kernels -----------------------
//
// The vocabulary-parallel kernels run on the whole vocabulary, or on blocks combined the
// way the partitioner's collectives combine them (max of the row maxes; sums of sum_exp
// and target_logit), must give what cross_entropy, cross_entropy_grad, embedding and
// embedding_grad give on the whole vocabulary: to 1e-6 relative in f32 for the loss
// (sum_exp is rounded to f32 between the kernels, ~1e-7), exactly for the embedding.

RefTensor randomTensor(std::vector<int64_t> shape, double scale, uint64_t seed) {
  RefTensor t = values(std::move(shape), {}, ElementType::F32);
  Random random(seed);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.data.push_back(double(float(scale * (2 * random.uniform() - 1))));
  return t;
}

// Labels in [0, vocab), `ignoreFraction` of them -100.
RefTensor randomLabels(std::vector<int64_t> shape, int64_t vocab, double ignoreFraction,
                       uint64_t seed, ElementType type = ElementType::I64) {
  RefTensor t = values(std::move(shape), {}, type);
  Random random(seed);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.data.push_back(random.uniform() < ignoreFraction
                         ? -100.0
                         : std::floor(random.uniform() * double(vocab)));
  return t;
}

// Columns [begin, end) of the last dim.
RefTensor sliceLastDim(const RefTensor &t, int64_t begin, int64_t end) {
  int64_t n = t.shape.back(), rows = t.numElements() / n;
  RefTensor s = t;
  s.shape.back() = end - begin;
  s.data.clear();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = begin; c < end; ++c)
      s.data.push_back(t.data[r * n + c]);
  return s;
}

// Rows [begin, end) of the first dim.
RefTensor sliceFirstDim(const RefTensor &t, int64_t begin, int64_t end) {
  int64_t rowSize = t.numElements() / t.shape[0];
  RefTensor s = t;
  s.shape[0] = end - begin;
  s.data.assign(t.data.begin() + begin * rowSize, t.data.begin() + end * rowSize);
  return s;
}

// Runs `kernel` (2 threads) and returns its outputs read back.
std::vector<std::vector<double>> runOutputs(const char *kernel, std::vector<Buffer> in,
                                            std::vector<Buffer> out, const Attributes &attrs) {
  Status status = runKernel(kernel, in, out, attrs);
  EXPECT_TRUE(status.isOk()) << kernel << ": " << status.message();
  std::vector<std::vector<double>> results;
  for (Buffer &b : out)
    results.push_back(readBack(b.view));
  return results;
}

::testing::AssertionResult allNear(const std::vector<double> &got,
                                   const std::vector<double> &expected, double relative) {
  if (got.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << expected.size();
  double maxAbs = 0;
  for (double v : expected)
    maxAbs = std::max(maxAbs, std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - expected[i]) <= relative * maxAbs))
      return ::testing::AssertionFailure() << "[" << i << "] expected " << expected[i] << " got "
                                           << got[i] << " (max |expected| " << maxAbs << ")";
  return ::testing::AssertionSuccess();
}

// The loss and gradient of the vocabulary-parallel chain on `blocks` of the logits'
// last dim (block b starts at blocks[b]; one block: the whole vocabulary).
struct ChainResult {
  double loss = 0;              // every block's loss (they must agree)
  std::vector<double> gradient; // the blocks' gradients, concatenated along the vocab
};

ChainResult runChain(const RefTensor &logits, const RefTensor &labels,
                     const std::vector<int64_t> &blocks, const std::string &reduction,
                     const RefTensor *keptCount, double gradLoss, bool withStartAttr) {
  int64_t vocab = logits.shape.back();
  std::vector<int64_t> rowShape = labels.shape;
  int64_t rows = labels.numElements();
  std::vector<RefTensor> parts;
  for (size_t b = 0; b < blocks.size(); ++b)
    parts.push_back(sliceLastDim(logits, blocks[b], b + 1 < blocks.size() ? blocks[b + 1] : vocab));
  auto attrsOf = [&](size_t b) {
    std::vector<Attribute> a = {stringAttr("reduction", reduction)};
    if (withStartAttr)
      a.push_back(intAttr("vocab_start", blocks[b]));
    return Attributes(a);
  };
  // all_reduce max of the row maxes.
  std::vector<double> rowMax(size_t(rows), -INFINITY);
  for (size_t b = 0; b < parts.size(); ++b) {
    auto m = runOutputs("vocab_parallel_max", {toBuffer(parts[b])}, {allocate(F32, rowShape)}, {});
    for (int64_t r = 0; r < rows; ++r)
      rowMax[r] = std::max(rowMax[r], m[0][r]);
  }
  RefTensor m = values(rowShape, rowMax, ElementType::F32);
  // all_reduce sum (in f32, as the collective) of sum_exp and target_logit.
  std::vector<float> sumExp(size_t(rows), 0.0f), target(size_t(rows), 0.0f);
  for (size_t b = 0; b < parts.size(); ++b) {
    auto st = runOutputs("vocab_parallel_stats", {toBuffer(parts[b]), toBuffer(labels), toBuffer(m)},
                         {allocate(F32, rowShape), allocate(F32, rowShape)}, attrsOf(b));
    for (int64_t r = 0; r < rows; ++r) {
      sumExp[r] += float(st[0][r]);
      target[r] += float(st[1][r]);
    }
  }
  RefTensor s = values(rowShape, std::vector<double>(sumExp.begin(), sumExp.end()), ElementType::F32);
  RefTensor t = values(rowShape, std::vector<double>(target.begin(), target.end()), ElementType::F32);
  RefTensor dl = values({}, {gradLoss}, ElementType::F32);
  ChainResult result;
  std::vector<std::vector<double>> grads;
  for (size_t b = 0; b < parts.size(); ++b) {
    std::vector<Buffer> lossIn = {toBuffer(m), toBuffer(s), toBuffer(t), toBuffer(labels)};
    std::vector<Buffer> gradIn = {toBuffer(parts[b]), toBuffer(labels), toBuffer(m), toBuffer(s),
                                  toBuffer(dl)};
    if (keptCount) {
      lossIn.push_back(toBuffer(*keptCount));
      gradIn.push_back(toBuffer(*keptCount));
    }
    auto loss = runOutputs("vocab_parallel_loss", lossIn, {allocate(F32, {})}, attrsOf(b));
    if (b == 0)
      result.loss = loss[0][0];
    else
      EXPECT_EQ(loss[0][0], result.loss) << "block " << b << " disagrees";
    grads.push_back(runOutputs("vocab_parallel_loss_grad", gradIn,
                               {allocate(F32, parts[b].shape)}, attrsOf(b))[0]);
  }
  for (int64_t r = 0; r < rows; ++r)
    for (size_t b = 0; b < parts.size(); ++b) {
      int64_t width = parts[b].shape.back();
      result.gradient.insert(result.gradient.end(), grads[b].begin() + r * width,
                             grads[b].begin() + (r + 1) * width);
    }
  return result;
}

// cross_entropy and cross_entropy_grad on the whole logits.
ChainResult runCrossEntropy(const RefTensor &logits, const RefTensor &labels,
                            const std::string &reduction, const RefTensor *keptCount,
                            double gradLoss) {
  Attributes attrs({stringAttr("reduction", reduction)});
  std::vector<Buffer> lossIn = {toBuffer(logits), toBuffer(labels)};
  std::vector<Buffer> gradIn = {toBuffer(logits), toBuffer(labels),
                                toBuffer(values({}, {gradLoss}, ElementType::F32))};
  if (keptCount) {
    lossIn.push_back(toBuffer(*keptCount));
    gradIn.push_back(toBuffer(*keptCount));
  }
  ChainResult result;
  result.loss = runOutputs("cross_entropy", lossIn, {allocate(F32, {})}, attrs)[0][0];
  result.gradient =
      runOutputs("cross_entropy_grad", gradIn, {allocate(F32, logits.shape)}, attrs)[0];
  return result;
}

void expectChainEqualsCrossEntropy(const RefTensor &logits, const RefTensor &labels,
                                   const std::vector<int64_t> &blocks, bool withStartAttr) {
  const RefTensor count = values({}, {57.0}, ElementType::F32);
  for (std::string reduction : {"mean", "sum"})
    for (const RefTensor *keptCount : {static_cast<const RefTensor *>(nullptr), &count}) {
      SCOPED_TRACE(reduction + (keptCount ? " with kept_count" : ""));
      ChainResult expected = runCrossEntropy(logits, labels, reduction, keptCount, 1.3);
      ChainResult got = runChain(logits, labels, blocks, reduction, keptCount, 1.3, withStartAttr);
      EXPECT_NEAR(got.loss, expected.loss, 1e-6 * std::fabs(expected.loss));
      EXPECT_GT(std::fabs(expected.loss), 0.1);
      EXPECT_TRUE(allNear(got.gradient, expected.gradient, 1e-6));
    }
}

TEST(CpuKernelsTest, VocabParallelChainEqualsCrossEntropy) {
  // The whole vocabulary in one block, without and with an explicit vocab_start 0.
  RefTensor logits = randomTensor({3, 11, 300}, 5.0, 7);
  for (ElementType idType : {ElementType::I32, ElementType::I64}) {
    RefTensor labels = randomLabels({3, 11}, 300, 0.3, 8, idType);
    expectChainEqualsCrossEntropy(logits, labels, {0}, false);
    expectChainEqualsCrossEntropy(logits, labels, {0}, true);
  }
}

TEST(CpuKernelsTest, VocabParallelSplitEqualsCrossEntropy) {
  // [4, 6, 10] in two blocks of 5 (vocab_start 0 and 5), then uneven blocks.
  RefTensor logits = randomTensor({4, 6, 10}, 5.0, 9);
  RefTensor labels = randomLabels({4, 6}, 10, 0.25, 10);
  expectChainEqualsCrossEntropy(logits, labels, {0, 5}, true);
  expectChainEqualsCrossEntropy(logits, labels, {0, 3}, true);
  expectChainEqualsCrossEntropy(logits, labels, {0, 1, 7, 9}, true);
}

TEST(CpuKernelsTest, VocabParallelEmbeddingSplitEqualsEmbedding) {
  RefTensor weight = randomTensor({10, 16}, 1.0, 11);
  RefTensor ids = randomLabels({4, 6}, 10, 0.0, 12);
  RefTensor dy = randomTensor({4, 6, 16}, 1.0, 13);
  std::vector<double> whole =
      runOutputs("embedding", {toBuffer(weight), toBuffer(ids)}, {allocate(F32, {4, 6, 16})}, {})[0];
  std::vector<double> wholeGrad =
      runOutputs("embedding_grad", {toBuffer(ids), toBuffer(dy)}, {allocate(F32, {10, 16})}, {})[0];
  for (std::vector<int64_t> blocks : {std::vector<int64_t>{0, 5}, {0, 3, 4, 8}}) {
    std::vector<double> sum(whole.size(), 0.0), grad;
    for (size_t b = 0; b < blocks.size(); ++b) {
      int64_t end = b + 1 < blocks.size() ? blocks[b + 1] : 10;
      RefTensor block = sliceFirstDim(weight, blocks[b], end);
      Attributes attrs({intAttr("vocab_start", blocks[b])});
      std::vector<double> out = runOutputs("embedding", {toBuffer(block), toBuffer(ids)},
                                           {allocate(F32, {4, 6, 16})}, attrs)[0];
      for (size_t i = 0; i < out.size(); ++i)
        sum[i] += out[i];
      std::vector<double> g = runOutputs("embedding_grad", {toBuffer(ids), toBuffer(dy)},
                                         {allocate(F32, {end - blocks[b], 16})}, attrs)[0];
      grad.insert(grad.end(), g.begin(), g.end());
    }
    EXPECT_EQ(sum, whole);
    EXPECT_EQ(grad, wholeGrad);
  }
}

TEST(CpuKernelsTest, VocabBlockIdsOfOtherBlocksAreNotErrors) {
  // With vocab_start, any id outside the block, however absurd, is another block's.
  RefTensor weight = values({3, 2}, {1, 2, 3, 4, 5, 6}, ElementType::F32);
  std::vector<double> idValues = {-9.2e18, -1, 4, 5, 6, 7, 9.2e18};
  std::vector<Buffer> in = {toBuffer(weight), toBuffer(values({7}, idValues, ElementType::I64))};
  in[1].view.as<int64_t>()[0] = std::numeric_limits<int64_t>::min();
  in[1].view.as<int64_t>()[6] = std::numeric_limits<int64_t>::max();
  Attributes attrs({intAttr("vocab_start", 4)});
  std::vector<Buffer> out = {allocate(F32, {7, 2})};
  ASSERT_TRUE(runKernel("embedding", in, out, attrs).isOk());
  EXPECT_EQ(readBack(out[0].view),
            (std::vector<double>{0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0}));
  std::vector<Buffer> gradIn = {in[1], toBuffer(values({7, 2}, std::vector<double>(14, 1.0),
                                                       ElementType::F32))};
  std::vector<Buffer> gradOut = {allocate(F32, {3, 2})};
  ASSERT_TRUE(runKernel("embedding_grad", gradIn, gradOut, attrs).isOk());
  EXPECT_EQ(readBack(gradOut[0].view), (std::vector<double>{1, 1, 1, 1, 1, 1}));
  // Labels likewise in stats and loss_grad: no error, no one-hot outside the block.
  RefTensor logits = values({3, 2}, {0, 0, 0, 0, 0, 0}, ElementType::F32);
  RefTensor labels = values({3}, {0, 5, 2}, ElementType::I32);
  RefTensor rows = values({3}, {0, 0, 0}, ElementType::F32);
  auto st = runOutputs("vocab_parallel_stats", {toBuffer(logits), toBuffer(labels), toBuffer(rows)},
                       {allocate(F32, {3}), allocate(F32, {3})}, attrs);
  EXPECT_EQ(st[0], (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(st[1], (std::vector<double>{0, 0, 0}));
  RefTensor two = values({3}, {2, 2, 2}, ElementType::F32);
  auto g = runOutputs("vocab_parallel_loss_grad",
                      {toBuffer(logits), toBuffer(labels), toBuffer(rows), toBuffer(two),
                       toBuffer(values({}, {3.0}, ElementType::F32))},
                      {allocate(F32, {3, 2})}, Attributes({intAttr("vocab_start", 4),
                                                           stringAttr("reduction", "sum")}));
  EXPECT_EQ(g[0], (std::vector<double>{1.5, 1.5, 1.5, -1.5, 1.5, 1.5}));
}

TEST(CpuKernelsTest, PrepareRefusesBadVocabParallelInstructions) {
  Attributes axisOnly({intAttr("vocab_shard_axis", 0)});
  EXPECT_TRUE(refuses("embedding", {view(F32, {10, 4}), view(I64, {3})}, {view(F32, {3, 4})},
                      axisOnly, "vocab_shard_axis without vocab_start"));
  EXPECT_TRUE(refuses("embedding_grad", {view(I64, {3}), view(F32, {3, 4})}, {view(F32, {10, 4})},
                      Attributes({intAttr("vocab_start", -1)}), "vocab_start must be non-negative"));
  EXPECT_TRUE(refuses("embedding", {view(F32, {10, 4}), view(I64, {3})}, {view(F32, {3, 4})},
                      Attributes({floatAttr("vocab_start", 2.0)}),
                      "'vocab_start' must be an integer"));
  EXPECT_TRUE(findCpuKernel("embedding")
                  ->prepare({view(F32, {10, 4}), view(I64, {3})}, {view(F32, {3, 4})},
                            Attributes({intAttr("vocab_shard_axis", 0), intAttr("vocab_start", 10)}))
                  .isOk());
  EXPECT_TRUE(refuses("vocab_parallel_max", {view(F32, {3, 10})}, {view(BF16, {3})}, {},
                      "row_max must be f32"));
  EXPECT_TRUE(refuses("vocab_parallel_max", {view(F32, {3, 10})}, {view(F32, {3, 10})}, {},
                      "row_max must have shape [3]"));
  EXPECT_TRUE(refuses("vocab_parallel_stats",
                      {view(F32, {3, 10}), view(I64, {4}), view(F32, {3})},
                      {view(F32, {3}), view(F32, {3})}, {},
                      "labels i64[4] must have the shape of logits without its last dim"));
  EXPECT_TRUE(refuses("vocab_parallel_stats",
                      {view(F32, {3, 10}), view(I64, {3}), view(BF16, {3})},
                      {view(F32, {3}), view(F32, {3})}, {}, "row_max must be f32"));
  EXPECT_TRUE(refuses("vocab_parallel_stats",
                      {view(F32, {3, 10}), view(I64, {3}), view(F32, {3})},
                      {view(F32, {3}), view(F32, {3, 1})}, {}, "target_logit must have shape [3]"));
  EXPECT_TRUE(refuses("vocab_parallel_stats",
                      {view(F32, {3, 10}), view(I64, {3}), view(F32, {3})},
                      {view(F32, {3}), view(F32, {3})}, axisOnly, "without vocab_start"));
  std::vector<TensorView> lossIn = {view(F32, {3}), view(F32, {3}), view(F32, {3}), view(I32, {3})};
  EXPECT_TRUE(refuses("vocab_parallel_loss", lossIn, {view(F32, {})},
                      Attributes({stringAttr("reduction", "avg")}), "expected one of"));
  EXPECT_TRUE(refuses("vocab_parallel_loss", lossIn, {view(F32, {3})}, {},
                      "result must have shape []"));
  lossIn[1] = view(F32, {4});
  EXPECT_TRUE(refuses("vocab_parallel_loss", lossIn, {view(F32, {})}, {},
                      "sum_exp must have shape [3]"));
  lossIn[1] = view(F32, {3});
  lossIn.push_back(view(F32, {1}));
  EXPECT_TRUE(refuses("vocab_parallel_loss", lossIn, {view(F32, {})}, {},
                      "kept_count must have shape []"));
  std::vector<TensorView> gradIn = {view(BF16, {3, 10}), view(I64, {3}), view(F32, {3}),
                                    view(F32, {3}), view(F32, {})};
  EXPECT_TRUE(findCpuKernel("vocab_parallel_loss_grad")
                  ->prepare(gradIn, {view(BF16, {3, 10})}, Attributes({intAttr("vocab_start", 20)}))
                  .isOk());
  EXPECT_TRUE(refuses("vocab_parallel_loss_grad", gradIn, {view(F32, {3, 10})}, {},
                      "grad_logits f32[3, 10] must have the type of logits bf16[3, 10]"));
  EXPECT_TRUE(refuses("vocab_parallel_loss_grad", gradIn, {view(BF16, {3, 10})}, axisOnly,
                      "without vocab_start"));
  gradIn[4] = view(BF16, {});
  EXPECT_TRUE(refuses("vocab_parallel_loss_grad", gradIn, {view(BF16, {3, 10})}, {},
                      "grad_loss must be f32"));
  EXPECT_TRUE(refuses("sqrt", {view(I32, {3})}, {view(I32, {3})}, {},
                      "input must have element type f32, bf16 or f16"));
  EXPECT_TRUE(refuses("grad_norm", {view(F32, {3})}, {view(F32, {})},
                      Attributes({stringAttr("squared", "yes")}), "'squared' must be a bool"));
}

// aprun --skip-non-finite-steps: with skip_non_finite and a non-finite norm, the outputs
// are the inputs bit for bit (in place or not); with a finite norm the attribute changes
// nothing (the same bits as without it).
TEST(CpuKernelsTest, AdamWSkipsNonFiniteNorms) {
  RefTensor param = randomTensor({37}, 1.0, 1), grad = randomTensor({37}, 1.0, 2),
            expAvg = randomTensor({37}, 0.1, 3), expAvgSq = randomTensor({37}, 0.01, 4);
  for (double &v : expAvgSq.data)
    v = std::fabs(v);
  auto inputs = [&](double norm) {
    return std::vector<Buffer>{toBuffer(param), toBuffer(grad), toBuffer(expAvg),
                               toBuffer(expAvgSq), toBuffer(values({}, {3}, ElementType::I64)),
                               toBuffer(values({}, {1e-3}, ElementType::F32)),
                               toBuffer(values({}, {norm}, ElementType::F32))};
  };
  auto outputs = [] {
    return std::vector<Buffer>{allocate(F32, {37}), allocate(F32, {37}), allocate(F32, {37})};
  };
  auto sameBits = [](const Buffer &a, const Buffer &b) {
    return std::memcmp(a.view.data, b.view.data, 37 * sizeof(float)) == 0;
  };
  Attributes skip({boolAttr("skip_non_finite", true)});
  for (double norm : {double(NAN), double(INFINITY)}) {
    std::vector<Buffer> in = inputs(norm), out = outputs();
    ASSERT_TRUE(runKernel("adamw", in, out, skip).isOk());
    EXPECT_TRUE(sameBits(out[0], in[0]) && sameBits(out[1], in[2]) && sameBits(out[2], in[3]));
    // In place: the buffers stay as they were.
    std::vector<Buffer> inPlace = inputs(norm);
    std::vector<Buffer> before = inPlace;
    std::vector<TensorView> inViews, outViews;
    for (Buffer &b : inPlace)
      inViews.push_back(b.view);
    outViews = {inViews[0], inViews[2], inViews[3]};
    KernelContext context;
    ASSERT_TRUE(findCpuKernel("adamw")->run(context, inViews, outViews, skip).isOk());
    for (int k : {0, 2, 3})
      EXPECT_TRUE(sameBits(inPlace[k], before[k])) << "input " << k;
    // Without the attribute the step updates (aprun then stops on the norm by default).
    std::vector<Buffer> plain = inputs(norm), plainOut = outputs();
    Attributes clip({floatAttr("max_grad_norm", 1.0)});
    ASSERT_TRUE(runKernel("adamw", plain, plainOut, clip).isOk());
    EXPECT_TRUE(std::isnan(plainOut[0].view.as<float>()[0]) ||
                plainOut[0].view.as<float>()[0] != param.data[0]);
  }
  std::vector<Buffer> in = inputs(5.0), out = outputs(), plainOut = outputs();
  ASSERT_TRUE(runKernel("adamw", in, out, skip).isOk());
  ASSERT_TRUE(runKernel("adamw", in, plainOut, {}).isOk());
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(sameBits(out[k], plainOut[k])) << "output " << k;
  EXPECT_FALSE(sameBits(out[0], in[0])); // it did update
  // Without the grad_norm input there is nothing to decide on: refused at prepare.
  std::vector<TensorView> noNorm;
  for (Buffer &b : in)
    noNorm.push_back(b.view);
  noNorm.pop_back();
  std::vector<TensorView> outViews = {out[0].view, out[1].view, out[2].view};
  EXPECT_TRUE(refuses("adamw", noNorm, outViews, skip, "skip_non_finite needs the grad_norm"));
}

} // namespace
} // namespace apc::kernels
