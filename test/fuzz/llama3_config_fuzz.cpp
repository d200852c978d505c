// Fuzzes llama3::parseConfig: the input is a config.json. On success the promises of
// Llama3Config.h are checked: sizes positive, heads divide as the model needs, an even
// head_dim, finite positive floats, llama3 rope scaling with high > low frequency factor.
#include "frontends/llama3/Llama3Config.h"
#include "test/fuzz/FuzzSupport.h"

#include <cmath>
#include <cstdint>
#include <string>

using namespace apc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = "config.json";
  Result<llama3::Config> config =
      llama3::parseConfig(std::string(reinterpret_cast<const char *>(data), size), path);
  fuzz::report(config ? "accepted" : config.status().message());
  if (!config) {
    APC_FUZZ_CHECK(fuzz::namesFile(config.status().message(), path), "message: %s",
                   config.status().message().c_str());
    return 0;
  }
  const llama3::Config &c = *config;
  APC_FUZZ_CHECK(c.hiddenSize > 0 && c.intermediateSize > 0 && c.numHiddenLayers > 0 &&
                     c.numAttentionHeads > 0 && c.numKeyValueHeads > 0 && c.headDim > 0 &&
                     c.vocabSize > 0 && c.maxPositionEmbeddings > 0,
                 "a size is not positive");
  APC_FUZZ_CHECK(c.numAttentionHeads % c.numKeyValueHeads == 0, "kv heads do not divide heads");
  APC_FUZZ_CHECK(c.headDim % 2 == 0, "odd head_dim %lld", (long long)c.headDim);
  for (double x : {c.ropeTheta, c.rmsNormEps, c.initializerRange})
    APC_FUZZ_CHECK(std::isfinite(x) && x > 0, "a float field is %g", x);
  if (c.ropeScaling) {
    const llama3::RopeScaling &r = *c.ropeScaling;
    APC_FUZZ_CHECK(r.ropeType == "llama3", "rope type %s", r.ropeType.c_str());
    APC_FUZZ_CHECK(r.highFreqFactor > r.lowFreqFactor && r.factor > 0 &&
                       r.originalMaxPositionEmbeddings > 0,
                   "bad rope scaling");
  }
  return 0;
}
