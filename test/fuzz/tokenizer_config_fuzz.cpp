// Fuzzes data::padIdFromTokenizerConfigText: the input is a tokenizer_config.json next
// to a small fixed tokenizer (bytes and two added tokens). A pad id found must be a token of that tokenizer.
#include "runtime/data/TextDataset.h"
#include "runtime/tokenizer/Tokenizer.h"
#include "test/fuzz/FuzzSupport.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

using namespace apc;

namespace {

// GPT-2's byte-level alphabet as UTF-8: byte b's character (printable bytes are
// themselves, the others U+0100 on).
std::string byteChar(int b) {
  auto direct = [](int k) {
    return (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF);
  };
  int cp = b;
  if (!direct(b)) {
    cp = 256;
    for (int k = 0; k < b; ++k)
      cp += direct(k) ? 0 : 1;
  }
  if (cp < 0x80)
    return std::string(1, char(cp));
  return {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
}

// Bytes are ids 0..255, then the added tokens <pad>=256 and <|end_of_text|>=257.
const tokenizer::Tokenizer &smallTokenizer() {
  static const tokenizer::Tokenizer tok = [] {
    nlohmann::json vocab = nlohmann::json::object();
    for (int b = 0; b < 256; ++b)
      vocab[byteChar(b)] = b;
    nlohmann::json j = {
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false},
                           {"use_regex", true}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"added_tokens",
         {{{"id", 256}, {"content", "<pad>"}, {"special", true}},
          {{"id", 257}, {"content", "<|end_of_text|>"}, {"special", true}}}}};
    auto loaded = tokenizer::Tokenizer::fromJson(j.dump(), "small tokenizer.json");
    if (!loaded) {
      std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
      std::abort();
    }
    return *loaded;
  }();
  return tok;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = "tokenizer_config.json";
  const tokenizer::Tokenizer &tok = smallTokenizer();
  Result<int64_t> pad =
      data::padIdFromTokenizerConfigText(fuzz::asText(data, size), path, "tokenizer.json", tok);
  fuzz::report(pad ? "pad id " + std::to_string(*pad) : pad.status().message());
  if (!pad) {
    APC_FUZZ_CHECK(fuzz::namesFile(pad.status().message(), path), "message: %s",
                   pad.status().message().c_str());
    return 0;
  }
  APC_FUZZ_CHECK(*pad == -1 || (*pad >= 0 && *pad < tok.vocabSize() &&
                                tok.idToToken(int32_t(*pad)).has_value()),
                 "pad id %lld is not a token", (long long)*pad);
  return 0;
}
