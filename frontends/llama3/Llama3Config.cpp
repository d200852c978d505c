// Reading config.json: every error names the file and the field.
#include "frontends/llama3/Llama3Config.h"

#include "runtime/support/CheckedMath.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

namespace apc::llama3 {
namespace {

// The largest value of each size field: far above every published Llama (405B: hidden
// 16384, intermediate 53248, 126 layers, 128 heads, vocab 128256), low enough that no
// product of them overflows and that a typo cannot make the import build a program
// without bound. Products are checked as well (checkWeightSizes).
constexpr int64_t kMaxWidth = int64_t(1) << 20;      // hidden_size, head_dim
constexpr int64_t kMaxMlpWidth = int64_t(1) << 22;   // intermediate_size
constexpr int64_t kMaxLayers = 4096;                 // num_hidden_layers
constexpr int64_t kMaxHeads = int64_t(1) << 16;      // attention and key/value heads
constexpr int64_t kMaxVocab = (int64_t(1) << 31) - 1; // token ids are 32-bit
constexpr int64_t kMaxPositions = int64_t(1) << 30;  // max_position_embeddings

class FieldReader {
public:
  FieldReader(const llvm::json::Object &object, std::string path, std::string prefix)
      : object_(object), path_(std::move(path)), prefix_(std::move(prefix)) {}

  bool present(llvm::StringRef field) const {
    const llvm::json::Value *v = object_.get(field);
    return v && v->kind() != llvm::json::Value::Null;
  }

  // Reads a positive integer no larger than `max` (see kLimits).
  Status integer(llvm::StringRef field, int64_t &out, bool required, int64_t max) {
    const llvm::json::Value *v = object_.get(field);
    if (!v || v->kind() == llvm::json::Value::Null)
      return required ? error(field, "is missing") : Status::ok();
    std::optional<int64_t> i = v->getAsInteger();
    if (!i) {
      // Accept integral floats written as 4096.0, as Python's json may.
      std::optional<double> d = v->getAsNumber();
      if (d && std::floor(*d) == *d && std::fabs(*d) < 9e15)
        i = int64_t(*d);
    }
    if (!i)
      return error(field, "must be an integer");
    if (*i <= 0)
      return error(field, "must be positive, got " + std::to_string(*i));
    if (*i > max)
      return error(field, "is " + std::to_string(*i) + ", more than the " +
                              std::to_string(max) + " APC accepts");
    out = *i;
    return Status::ok();
  }

  Status number(llvm::StringRef field, double &out, bool required) {
    const llvm::json::Value *v = object_.get(field);
    if (!v || v->kind() == llvm::json::Value::Null)
      return required ? error(field, "is missing") : Status::ok();
    std::optional<double> d = v->getAsNumber();
    if (!d)
      return error(field, "must be a number");
    if (!(*d > 0.0) || !std::isfinite(*d))
      return error(field, "must be a positive finite number");
    out = *d;
    return Status::ok();
  }

  Status boolean(llvm::StringRef field, bool &out) {
    const llvm::json::Value *v = object_.get(field);
    if (!v || v->kind() == llvm::json::Value::Null)
      return Status::ok();
    std::optional<bool> b = v->getAsBoolean();
    if (!b)
      return error(field, "must be true or false");
    out = *b;
    return Status::ok();
  }

  Status string(llvm::StringRef field, std::optional<std::string> &out) {
    const llvm::json::Value *v = object_.get(field);
    if (!v || v->kind() == llvm::json::Value::Null)
      return Status::ok();
    std::optional<llvm::StringRef> s = v->getAsString();
    if (!s)
      return error(field, "must be a string");
    out = s->str();
    return Status::ok();
  }

  const std::string &path() const { return path_; }

  Status error(llvm::StringRef field, const std::string &what) const {
    return Status::error(path_ + ": field '" + prefix_ + field.str() + "' " + what);
  }

private:
  const llvm::json::Object &object_;
  std::string path_;
  std::string prefix_;
};

Status readRopeScaling(const llvm::json::Object &root, const std::string &path,
                       Config &config) {
  const llvm::json::Value *v = root.get("rope_scaling");
  if (!v || v->kind() == llvm::json::Value::Null)
    return Status::ok();
  const llvm::json::Object *object = v->getAsObject();
  if (!object)
    return Status::error(path + ": field 'rope_scaling' must be an object or null");
  FieldReader fields(*object, path, "rope_scaling.");
  std::optional<std::string> ropeType;
  APC_RETURN_IF_ERROR(fields.string("rope_type", ropeType));
  if (!ropeType) // transformers < 4.43 spelled it "type"
    APC_RETURN_IF_ERROR(fields.string("type", ropeType));
  if (!ropeType)
    return fields.error("rope_type", "is missing");
  if (*ropeType == "default")
    return Status::ok();
  if (*ropeType != "llama3")
    return fields.error("rope_type", "is \"" + *ropeType +
                                         "\", which is not supported (APC supports "
                                         "\"default\" and \"llama3\")");
  RopeScaling scaling;
  scaling.ropeType = *ropeType;
  APC_RETURN_IF_ERROR(fields.number("factor", scaling.factor, true));
  APC_RETURN_IF_ERROR(fields.number("low_freq_factor", scaling.lowFreqFactor, true));
  APC_RETURN_IF_ERROR(fields.number("high_freq_factor", scaling.highFreqFactor, true));
  APC_RETURN_IF_ERROR(fields.integer("original_max_position_embeddings",
                                     scaling.originalMaxPositionEmbeddings, true, kMaxPositions));
  if (!(scaling.highFreqFactor > scaling.lowFreqFactor))
    return fields.error("high_freq_factor", "must be greater than low_freq_factor");
  config.ropeScaling = scaling;
  return Status::ok();
}

// Each weight's bytes at f32 (the widest parameter type) must stay within
// kMaxTensorBytes; the message names the fields whose product is too large.
Status checkWeightSizes(const Config &c, FieldReader &fields) {
  struct Weight {
    const char *fields; // what the message blames
    int64_t rows, columns;
  };
  const Weight weights[] = {
      {"vocab_size x hidden_size (the embedding)", c.vocabSize, c.hiddenSize},
      {"intermediate_size x hidden_size (an MLP weight)", c.intermediateSize, c.hiddenSize},
      {"num_attention_heads x head_dim x hidden_size (q_proj)",
       c.numAttentionHeads * c.headDim, c.hiddenSize},
  };
  for (const Weight &w : weights) {
    std::optional<int64_t> bytes = checkedProduct(std::initializer_list<int64_t>{w.rows, w.columns}, 4);
    if (!bytes || *bytes > kMaxTensorBytes)
      return Status::error(fields.path() + ": " + w.fields +
                           " makes a weight larger than the " + kMaxTensorBytesText +
                           " APC addresses");
  }
  return Status::ok();
}

} // namespace

// parseConfig's limits keep every term far from overflow (at most about 2^56).
int64_t Config::parameterCount() const {
  int64_t qSize = numAttentionHeads * headDim, kvSize = numKeyValueHeads * headDim;
  int64_t perLayer = hiddenSize * qSize       // q_proj
                     + 2 * hiddenSize * kvSize // k_proj, v_proj
                     + qSize * hiddenSize       // o_proj
                     + 3 * hiddenSize * intermediateSize // gate, up, down
                     + 2 * hiddenSize;          // two norms
  int64_t embeddings = vocabSize * hiddenSize * (tieWordEmbeddings ? 1 : 2);
  return embeddings + numHiddenLayers * perLayer + hiddenSize;
}

Result<Config> parseConfig(const std::string &text, const std::string &path) {
  llvm::Expected<llvm::json::Value> parsed = llvm::json::parse(text);
  if (!parsed)
    return Result<Config>::error(path + ": not valid JSON: " +
                                 llvm::toString(parsed.takeError()));
  const llvm::json::Object *root = parsed->getAsObject();
  if (!root)
    return Result<Config>::error(path + ": expected a JSON object at the top level");

  Config c;
  FieldReader fields(*root, path, "");
  std::optional<std::string> modelType, hiddenAct;
  APC_RETURN_IF_ERROR(fields.string("model_type", modelType));
  if (modelType && *modelType != "llama")
    return fields.error("model_type", "is \"" + *modelType + "\", expected \"llama\"");
  APC_RETURN_IF_ERROR(fields.integer("hidden_size", c.hiddenSize, true, kMaxWidth));
  APC_RETURN_IF_ERROR(fields.integer("intermediate_size", c.intermediateSize, true, kMaxMlpWidth));
  APC_RETURN_IF_ERROR(fields.integer("num_hidden_layers", c.numHiddenLayers, true, kMaxLayers));
  APC_RETURN_IF_ERROR(fields.integer("num_attention_heads", c.numAttentionHeads, true, kMaxHeads));
  APC_RETURN_IF_ERROR(fields.integer("vocab_size", c.vocabSize, true, kMaxVocab));
  c.numKeyValueHeads = c.numAttentionHeads;
  APC_RETURN_IF_ERROR(fields.integer("num_key_value_heads", c.numKeyValueHeads, false, kMaxHeads));
  APC_RETURN_IF_ERROR(fields.integer("max_position_embeddings", c.maxPositionEmbeddings, false,
                                     kMaxPositions));
  APC_RETURN_IF_ERROR(fields.number("rope_theta", c.ropeTheta, false));
  APC_RETURN_IF_ERROR(fields.number("rms_norm_eps", c.rmsNormEps, false));
  APC_RETURN_IF_ERROR(fields.number("initializer_range", c.initializerRange, false));
  APC_RETURN_IF_ERROR(fields.boolean("tie_word_embeddings", c.tieWordEmbeddings));
  APC_RETURN_IF_ERROR(fields.string("hidden_act", hiddenAct));
  if (hiddenAct && *hiddenAct != "silu")
    return fields.error("hidden_act", "is \"" + *hiddenAct + "\", only \"silu\" is supported");
  for (const char *biasField : {"attention_bias", "mlp_bias"}) {
    bool bias = false;
    APC_RETURN_IF_ERROR(fields.boolean(biasField, bias));
    if (bias)
      return fields.error(biasField, "is true, but Llama 3 has no biases and APC does not support them");
  }

  if (fields.present("head_dim")) {
    APC_RETURN_IF_ERROR(fields.integer("head_dim", c.headDim, false, kMaxWidth));
  } else {
    if (c.hiddenSize % c.numAttentionHeads != 0)
      return fields.error("num_attention_heads",
                          "(" + std::to_string(c.numAttentionHeads) +
                              ") does not divide hidden_size (" +
                              std::to_string(c.hiddenSize) + ")");
    c.headDim = c.hiddenSize / c.numAttentionHeads;
  }
  if (c.numAttentionHeads % c.numKeyValueHeads != 0)
    return fields.error("num_key_value_heads",
                        "(" + std::to_string(c.numKeyValueHeads) +
                            ") does not divide num_attention_heads (" +
                            std::to_string(c.numAttentionHeads) + ")");
  if (c.headDim % 2 != 0)
    return fields.error(fields.present("head_dim") ? "head_dim" : "hidden_size",
                        "gives an odd head_dim (" + std::to_string(c.headDim) +
                            "), but rotary embeddings need an even one");
  APC_RETURN_IF_ERROR(readRopeScaling(*root, path, c));
  APC_RETURN_IF_ERROR(checkWeightSizes(c, fields));
  return c;
}

Result<Config> readConfig(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return Result<Config>::error(path + ": cannot read: " + buffer.getError().message());
  return parseConfig((*buffer)->getBuffer().str(), path);
}

} // namespace apc::llama3
