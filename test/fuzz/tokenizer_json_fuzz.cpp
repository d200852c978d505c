// Fuzzes tokenizer::Tokenizer::fromJson: the input is a tokenizer.json. On success a few
// texts (ASCII, an added token, invalid UTF-8, emoji, the input's own bytes) are encoded
// with and without special tokens and decoded back; every id must be below vocabSize()
// and have a token, and decoding any ids (unknown ones included) must not fail.
#include "runtime/tokenizer/Tokenizer.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace apc;

namespace {

void checkIds(const tokenizer::Tokenizer &tok, const std::vector<int32_t> &ids) {
  for (int32_t id : ids) {
    APC_FUZZ_CHECK(id >= 0 && id < tok.vocabSize(), "id %d outside [0, %d)", id,
                   tok.vocabSize());
    APC_FUZZ_CHECK(tok.idToToken(id).has_value(), "id %d has no token", id);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = "tokenizer.json";
  std::string text = fuzz::asText(data, size);
  Result<tokenizer::Tokenizer> tok = tokenizer::Tokenizer::fromJson(text, path);
  fuzz::report(tok ? "accepted" : tok.status().message());
  if (!tok) {
    APC_FUZZ_CHECK(fuzz::namesFile(tok.status().message(), path), "message: %s",
                   tok.status().message().c_str());
    return 0;
  }
  APC_FUZZ_CHECK(tok->vocabSize() >= 0, "negative vocabSize");
  const std::string samples[] = {"", "Hello world, it's 2024!", "<|begin_of_text|>hi<s>",
                                 std::string("bad \xff\xfe utf-8 \xc3", 15),
                                 " \xf0\x9f\x99\x82  tabs\tand\nlines ",
                                 text.substr(0, 256)};
  for (const std::string &s : samples)
    for (bool special : {true, false}) {
      std::vector<int32_t> ids = tok->encode(s, special);
      checkIds(*tok, ids);
      (void)tok->decode(ids);
      (void)tok->decode(ids, /*skipSpecial=*/true);
    }
  (void)tok->decode({-1, 0, 1, tok->vocabSize(), tok->vocabSize() - 1, INT32_MAX});
  for (int32_t id = 0; id < tok->vocabSize() && id < 64; ++id)
    if (auto token = tok->idToToken(id))
      APC_FUZZ_CHECK(tok->tokenToId(*token).has_value(), "token of id %d has no id", id);
  return 0;
}
