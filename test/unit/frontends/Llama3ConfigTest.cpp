// Tests of config.json parsing (frontends/llama3/Llama3Config) and of the traced
// train step's parameter list (Llama3Model), on the real Llama 3 configs.
#include "frontends/llama3/Llama3Config.h"
#include "frontends/llama3/Llama3Model.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#ifndef APC_SOURCE_DIR
#error "APC_SOURCE_DIR must be defined by CMake"
#endif

namespace apc::llama3 {
namespace {

std::string configPath(const std::string &name) {
  return std::string(APC_SOURCE_DIR) + "/frontends/llama3/configs/" + name + ".json";
}

::testing::AssertionResult Contains(const std::string &text, const std::string &part) {
  if (text.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not found in: " << text;
}

// ---- The real configs ----------------------------------------------------------------

struct Published {
  const char *name;
  int64_t parameters;
};

const Published kPublished[] = {
    {"Meta-Llama-3-8B", 8030261248LL},
    {"Llama-3.1-70B", 70553706496LL},
    {"Llama-3.1-405B", 405853388800LL},
    {"Llama-3.2-1B", 1235814400LL},
};

TEST(Llama3ConfigTest, Llama3_8BFields) {
  auto c = readConfig(configPath("Meta-Llama-3-8B"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->hiddenSize, 4096);
  EXPECT_EQ(c->intermediateSize, 14336);
  EXPECT_EQ(c->numHiddenLayers, 32);
  EXPECT_EQ(c->numAttentionHeads, 32);
  EXPECT_EQ(c->numKeyValueHeads, 8);
  EXPECT_EQ(c->headDim, 128);
  EXPECT_EQ(c->vocabSize, 128256);
  EXPECT_EQ(c->maxPositionEmbeddings, 8192);
  EXPECT_DOUBLE_EQ(c->ropeTheta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rmsNormEps, 1e-5);
  EXPECT_DOUBLE_EQ(c->initializerRange, 0.02);
  EXPECT_FALSE(c->tieWordEmbeddings);
  EXPECT_FALSE(c->ropeScaling.has_value()); // "rope_scaling": null
}

TEST(Llama3ConfigTest, Llama31_70BFields) {
  auto c = readConfig(configPath("Llama-3.1-70B"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->hiddenSize, 8192);
  EXPECT_EQ(c->intermediateSize, 28672);
  EXPECT_EQ(c->numHiddenLayers, 80);
  EXPECT_EQ(c->numAttentionHeads, 64);
  EXPECT_EQ(c->numKeyValueHeads, 8);
  EXPECT_EQ(c->headDim, 128);
  EXPECT_EQ(c->maxPositionEmbeddings, 131072);
  ASSERT_TRUE(c->ropeScaling.has_value());
  EXPECT_EQ(c->ropeScaling->ropeType, "llama3");
  EXPECT_DOUBLE_EQ(c->ropeScaling->factor, 8.0);
  EXPECT_DOUBLE_EQ(c->ropeScaling->lowFreqFactor, 1.0);
  EXPECT_DOUBLE_EQ(c->ropeScaling->highFreqFactor, 4.0);
  EXPECT_EQ(c->ropeScaling->originalMaxPositionEmbeddings, 8192);
}

TEST(Llama3ConfigTest, Llama31_405BFields) {
  auto c = readConfig(configPath("Llama-3.1-405B"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->hiddenSize, 16384);
  EXPECT_EQ(c->intermediateSize, 53248);
  EXPECT_EQ(c->numHiddenLayers, 126);
  EXPECT_EQ(c->numAttentionHeads, 128);
  EXPECT_EQ(c->numKeyValueHeads, 8);
  EXPECT_EQ(c->headDim, 128);
  EXPECT_FALSE(c->tieWordEmbeddings);
}

TEST(Llama3ConfigTest, Llama32_1BFields) {
  auto c = readConfig(configPath("Llama-3.2-1B"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->hiddenSize, 2048);
  EXPECT_EQ(c->intermediateSize, 8192);
  EXPECT_EQ(c->numHiddenLayers, 16);
  EXPECT_EQ(c->numAttentionHeads, 32);
  EXPECT_EQ(c->numKeyValueHeads, 8);
  EXPECT_EQ(c->headDim, 64);
  EXPECT_TRUE(c->tieWordEmbeddings);
  ASSERT_TRUE(c->ropeScaling.has_value());
  EXPECT_DOUBLE_EQ(c->ropeScaling->factor, 32.0);
}

TEST(Llama3ConfigTest, ParameterCountsMatchPublished) {
  for (const Published &p : kPublished) {
    auto c = readConfig(configPath(p.name));
    ASSERT_TRUE(c.isOk()) << c.message();
    EXPECT_EQ(c->parameterCount(), p.parameters) << p.name;
  }
}

struct ArgInfo {
  std::string name, role;
  int64_t elements;
};

std::vector<ArgInfo> arguments(mlir::ModuleOp module) {
  std::vector<ArgInfo> out;
  auto fn = *module.getOps<mlir::func::FuncOp>().begin();
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    ArgInfo a;
    if (auto s = fn.getArgAttrOfType<mlir::StringAttr>(i, "ap.name"))
      a.name = s.str();
    if (auto s = fn.getArgAttrOfType<mlir::StringAttr>(i, "ap.role"))
      a.role = s.str();
    a.elements =
        mlir::cast<mlir::RankedTensorType>(fn.getArgument(i).getType()).getNumElements();
    out.push_back(a);
  }
  return out;
}

TEST(Llama3ConfigTest, TrainStepParametersSumToPublishedCounts) {
  for (const Published &p : kPublished) {
    SCOPED_TRACE(p.name);
    auto c = readConfig(configPath(p.name));
    ASSERT_TRUE(c.isOk()) << c.message();
    mlir::MLIRContext context;
    ImportOptions options;
    options.batch = 2;
    options.seqLen = 8;
    options.dtype = trace::DType::BF16;
    auto start = std::chrono::steady_clock::now();
    auto module = buildTrainStep(context, *c, options);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(module.isOk()) << module.message();
    EXPECT_LT(seconds, 10.0) << "tracing took " << seconds << " s";
    EXPECT_TRUE(mlir::succeeded(mlir::verify(module->get())));

    std::vector<ArgInfo> args = arguments(module->get());
    int64_t total = 0, embedCount = 0, lmHeadCount = 0;
    for (const ArgInfo &a : args) {
      if (a.role == "parameter")
        total += a.elements;
      else
        EXPECT_EQ(a.role, "input") << a.name;
      embedCount += a.name == "model.embed_tokens.weight";
      lmHeadCount += a.name == "lm_head.weight";
    }
    EXPECT_EQ(total, p.parameters);
    EXPECT_EQ(total, c->parameterCount());
    EXPECT_EQ(embedCount, 1);
    EXPECT_EQ(lmHeadCount, c->tieWordEmbeddings ? 0 : 1);
    // 9 per layer + embed + final norm (+ lm_head) + input_ids + labels.
    EXPECT_EQ(int64_t(args.size()),
              9 * c->numHiddenLayers + 2 + (c->tieWordEmbeddings ? 0 : 1) + 2);
    ASSERT_GE(args.size(), 3u);
    EXPECT_EQ(args.front().name, "model.embed_tokens.weight");
    EXPECT_EQ(args.front().role, "parameter");
    EXPECT_EQ(args[args.size() - 2].name, "input_ids");
    EXPECT_EQ(args[args.size() - 2].role, "input");
    EXPECT_EQ(args.back().name, "labels");
    EXPECT_EQ(args.back().role, "input");
    EXPECT_EQ(args[args.size() - 3].name,
              c->tieWordEmbeddings ? "model.norm.weight" : "lm_head.weight");
    // named_parameters() order within the first layer.
    const char *layer0[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                            "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                            "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                            "mlp.down_proj.weight",    "input_layernorm.weight",
                            "post_attention_layernorm.weight"};
    for (size_t i = 0; i < 9; ++i)
      EXPECT_EQ(args[1 + i].name, std::string("model.layers.0.") + layer0[i]);
  }
}

TEST(Llama3ConfigTest, TinyTiedTrainStepHasNoLmHead) {
  auto c = readConfig(configPath("tiny-tied"));
  ASSERT_TRUE(c.isOk()) << c.message();
  mlir::MLIRContext context;
  auto module = buildTrainStep(context, *c, ImportOptions());
  ASSERT_TRUE(module.isOk()) << module.message();
  std::vector<ArgInfo> args = arguments(module->get());
  int64_t embeds = 0;
  for (const ArgInfo &a : args) {
    EXPECT_NE(a.name, "lm_head.weight");
    embeds += a.name == "model.embed_tokens.weight";
  }
  EXPECT_EQ(embeds, 1);
}

TEST(Llama3ConfigTest, BuildTrainStepRejectsBadOptions) {
  auto c = readConfig(configPath("tiny"));
  ASSERT_TRUE(c.isOk()) << c.message();
  mlir::MLIRContext context;
  ImportOptions options;
  options.batch = 0;
  EXPECT_FALSE(buildTrainStep(context, *c, options).isOk());
  options.batch = 1;
  options.dtype = trace::DType::I64;
  EXPECT_FALSE(buildTrainStep(context, *c, options).isOk());
}

// ---- parseConfig on hand-written JSON -------------------------------------------------

const char *kPath = "/some/dir/config.json";

llvm::json::Object baseConfig() {
  return llvm::json::Object{
      {"model_type", "llama"},       {"hidden_act", "silu"},
      {"hidden_size", 64},           {"intermediate_size", 160},
      {"num_hidden_layers", 2},      {"num_attention_heads", 4},
      {"num_key_value_heads", 2},    {"vocab_size", 256},
  };
}

std::string text(llvm::json::Object object) {
  return llvm::formatv("{0}", llvm::json::Value(std::move(object))).str();
}

Result<Config> parse(llvm::json::Object object) { return parseConfig(text(std::move(object)), kPath); }

// Expects parsing to fail with a message naming the file and every `parts`.
void expectError(llvm::json::Object object, std::vector<std::string> parts) {
  std::string json = text(std::move(object));
  auto c = parseConfig(json, kPath);
  ASSERT_FALSE(c.isOk()) << "accepted: " << json;
  EXPECT_TRUE(Contains(c.message(), kPath)) << json;
  for (const std::string &part : parts)
    EXPECT_TRUE(Contains(c.message(), part)) << json;
}

TEST(Llama3ConfigTest, MinimalConfigGetsDefaults) {
  llvm::json::Object o = baseConfig();
  o.erase("num_key_value_heads");
  o.erase("model_type");
  o.erase("hidden_act");
  auto c = parse(std::move(o));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->numKeyValueHeads, 4);
  EXPECT_EQ(c->headDim, 16);
  EXPECT_EQ(c->maxPositionEmbeddings, 2048);
  EXPECT_DOUBLE_EQ(c->ropeTheta, 10000.0);
  EXPECT_DOUBLE_EQ(c->rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(c->initializerRange, 0.02);
  EXPECT_FALSE(c->tieWordEmbeddings);
  EXPECT_FALSE(c->ropeScaling.has_value());
}

TEST(Llama3ConfigTest, IntegralFloatsAndExplicitHeadDimAccepted) {
  llvm::json::Object o = baseConfig();
  o["hidden_size"] = 64.0;
  o["head_dim"] = 8; // need not be hidden_size / heads
  auto c = parse(std::move(o));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->hiddenSize, 64);
  EXPECT_EQ(c->headDim, 8);
}

TEST(Llama3ConfigTest, RopeScalingDefaultAndOldTypeSpelling) {
  llvm::json::Object o = baseConfig();
  o["rope_scaling"] = llvm::json::Object{{"rope_type", "default"}};
  auto c = parse(std::move(o));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_FALSE(c->ropeScaling.has_value());

  llvm::json::Object old = baseConfig();
  old["rope_scaling"] = llvm::json::Object{{"type", "llama3"},
                                           {"factor", 8.0},
                                           {"low_freq_factor", 1.0},
                                           {"high_freq_factor", 4.0},
                                           {"original_max_position_embeddings", 8192}};
  auto c2 = parse(std::move(old));
  ASSERT_TRUE(c2.isOk()) << c2.message();
  ASSERT_TRUE(c2->ropeScaling.has_value());
  EXPECT_EQ(c2->ropeScaling->ropeType, "llama3");
}

TEST(Llama3ConfigTest, InvalidJson) {
  auto c = parseConfig("{\"hidden_size\": 64,", kPath);
  ASSERT_FALSE(c.isOk());
  EXPECT_TRUE(Contains(c.message(), kPath));
  EXPECT_TRUE(Contains(c.message(), "JSON"));
}

TEST(Llama3ConfigTest, TopLevelNotAnObject) {
  auto c = parseConfig("[1, 2, 3]", kPath);
  ASSERT_FALSE(c.isOk());
  EXPECT_TRUE(Contains(c.message(), kPath));
  EXPECT_TRUE(Contains(c.message(), "object"));
}

TEST(Llama3ConfigTest, EachRequiredFieldMissing) {
  for (const char *field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size"}) {
    SCOPED_TRACE(field);
    llvm::json::Object o = baseConfig();
    o.erase(field);
    expectError(std::move(o), {std::string("'") + field + "'", "missing"});
    llvm::json::Object n = baseConfig();
    n[field] = nullptr; // null counts as missing
    expectError(std::move(n), {std::string("'") + field + "'", "missing"});
  }
}

TEST(Llama3ConfigTest, NonIntegerFields) {
  for (const char *field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size", "num_key_value_heads",
                            "max_position_embeddings", "head_dim"}) {
    SCOPED_TRACE(field);
    llvm::json::Object s = baseConfig();
    s[field] = "64";
    expectError(std::move(s), {std::string("'") + field + "'", "integer"});
    llvm::json::Object f = baseConfig();
    f[field] = 64.5;
    expectError(std::move(f), {std::string("'") + field + "'", "integer"});
    llvm::json::Object b = baseConfig();
    b[field] = true;
    expectError(std::move(b), {std::string("'") + field + "'", "integer"});
  }
}

TEST(Llama3ConfigTest, NonPositiveFields) {
  for (const char *field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size", "num_key_value_heads",
                            "max_position_embeddings", "head_dim"}) {
    SCOPED_TRACE(field);
    llvm::json::Object z = baseConfig();
    z[field] = 0;
    expectError(std::move(z), {std::string("'") + field + "'", "positive"});
    llvm::json::Object n = baseConfig();
    n[field] = -4;
    expectError(std::move(n), {std::string("'") + field + "'", "positive"});
  }
  for (const char *field : {"rope_theta", "rms_norm_eps", "initializer_range"}) {
    SCOPED_TRACE(field);
    llvm::json::Object z = baseConfig();
    z[field] = 0.0;
    expectError(std::move(z), {std::string("'") + field + "'", "positive"});
    llvm::json::Object s = baseConfig();
    s[field] = "1e-5";
    expectError(std::move(s), {std::string("'") + field + "'", "number"});
  }
}

TEST(Llama3ConfigTest, HeadsDoNotDivideHiddenSize) {
  llvm::json::Object o = baseConfig();
  o["num_attention_heads"] = 6;
  o["num_key_value_heads"] = 2;
  expectError(std::move(o), {"'num_attention_heads'", "hidden_size", "(6)", "(64)"});
}

TEST(Llama3ConfigTest, KvHeadsDoNotDivideHeads) {
  llvm::json::Object o = baseConfig();
  o["num_key_value_heads"] = 3;
  expectError(std::move(o), {"'num_key_value_heads'", "(3)", "(4)"});
}

TEST(Llama3ConfigTest, OddHeadDim) {
  llvm::json::Object derived = baseConfig();
  derived["hidden_size"] = 12; // 12 / 4 heads = 3
  expectError(std::move(derived), {"'hidden_size'", "odd head_dim (3)"});
  llvm::json::Object explicitDim = baseConfig();
  explicitDim["head_dim"] = 7;
  expectError(std::move(explicitDim), {"'head_dim'", "odd head_dim (7)"});
}

llvm::json::Object llama3Scaling() {
  return llvm::json::Object{{"rope_type", "llama3"},
                            {"factor", 8.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}};
}

TEST(Llama3ConfigTest, UnknownRopeType) {
  llvm::json::Object o = baseConfig();
  llvm::json::Object scaling = llama3Scaling();
  scaling["rope_type"] = "yarn";
  o["rope_scaling"] = std::move(scaling);
  expectError(std::move(o), {"'rope_scaling.rope_type'", "yarn"});
}

TEST(Llama3ConfigTest, RopeScalingNotAnObjectOrWithoutType) {
  llvm::json::Object o = baseConfig();
  o["rope_scaling"] = 8.0;
  expectError(std::move(o), {"'rope_scaling'"});
  llvm::json::Object n = baseConfig();
  llvm::json::Object scaling = llama3Scaling();
  scaling.erase("rope_type");
  n["rope_scaling"] = std::move(scaling);
  expectError(std::move(n), {"'rope_scaling.rope_type'", "missing"});
}

TEST(Llama3ConfigTest, Llama3RopeScalingMissingFields) {
  for (const char *field : {"factor", "low_freq_factor", "high_freq_factor",
                            "original_max_position_embeddings"}) {
    SCOPED_TRACE(field);
    llvm::json::Object o = baseConfig();
    llvm::json::Object scaling = llama3Scaling();
    scaling.erase(field);
    o["rope_scaling"] = std::move(scaling);
    expectError(std::move(o), {std::string("'rope_scaling.") + field + "'", "missing"});
  }
}

TEST(Llama3ConfigTest, HighFreqFactorNotAboveLowFreqFactor) {
  for (double high : {1.0, 0.5}) {
    llvm::json::Object o = baseConfig();
    llvm::json::Object scaling = llama3Scaling();
    scaling["high_freq_factor"] = high;
    o["rope_scaling"] = std::move(scaling);
    expectError(std::move(o), {"'rope_scaling.high_freq_factor'", "low_freq_factor"});
  }
}

TEST(Llama3ConfigTest, HiddenActNotSilu) {
  llvm::json::Object o = baseConfig();
  o["hidden_act"] = "gelu";
  expectError(std::move(o), {"'hidden_act'", "gelu"});
}

TEST(Llama3ConfigTest, BiasesRefused) {
  for (const char *field : {"attention_bias", "mlp_bias"}) {
    llvm::json::Object o = baseConfig();
    o[field] = true;
    expectError(std::move(o), {std::string("'") + field + "'"});
    llvm::json::Object ok = baseConfig();
    ok[field] = false;
    EXPECT_TRUE(parse(std::move(ok)).isOk()) << field;
  }
}

TEST(Llama3ConfigTest, ModelTypeNotLlama) {
  llvm::json::Object o = baseConfig();
  o["model_type"] = "mistral";
  expectError(std::move(o), {"'model_type'", "mistral"});
}

TEST(Llama3ConfigTest, TieWordEmbeddingsNotBoolean) {
  llvm::json::Object o = baseConfig();
  o["tie_word_embeddings"] = "yes";
  expectError(std::move(o), {"'tie_word_embeddings'"});
}

TEST(Llama3ConfigTest, ReadConfigMissingFile) {
  std::string path = std::string(APC_SOURCE_DIR) + "/no/such/dir/config.json";
  auto c = readConfig(path);
  ASSERT_FALSE(c.isOk());
  EXPECT_TRUE(Contains(c.message(), path));
}

} // namespace
} // namespace apc::llama3
