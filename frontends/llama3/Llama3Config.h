// The Hugging Face Llama 3 `config.json`, read and checked.
//
// Fields follow transformers' LlamaConfig. Required: hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, vocab_size. Optional, with LlamaConfig's
// defaults: num_key_value_heads (= num_attention_heads), head_dim (= hidden_size /
// num_attention_heads), rope_theta (10000), rms_norm_eps (1e-6), tie_word_embeddings
// (false), rope_scaling (null, or rope_type "default" / "llama3"),
// max_position_embeddings (2048), initializer_range (0.02). Features Llama 3 does not
// use and APC does not implement (attention_bias, mlp_bias, hidden_act other than
// silu, other rope types) are refused rather than silently ignored.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <optional>
#include <string>

namespace apc::llama3 {

struct RopeScaling {
  std::string ropeType; // "llama3"
  double factor = 0;
  double lowFreqFactor = 0;
  double highFreqFactor = 0;
  int64_t originalMaxPositionEmbeddings = 0;
};

struct Config {
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numHiddenLayers = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0;
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  int64_t maxPositionEmbeddings = 2048;
  double ropeTheta = 10000.0;
  double rmsNormEps = 1e-6;
  double initializerRange = 0.02;
  bool tieWordEmbeddings = false;
  std::optional<RopeScaling> ropeScaling;

  // Number of trained parameters (tied embeddings counted once).
  int64_t parameterCount() const;
};

// Parses `text` (the contents of `path`, used in messages) into a checked Config.
Result<Config> parseConfig(const std::string &text, const std::string &path);
// Reads and parses the file at `path`.
Result<Config> readConfig(const std::string &path);

} // namespace apc::llama3
