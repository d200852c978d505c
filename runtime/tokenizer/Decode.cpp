// Decoding: ids back to text through the decoder of tokenizer.json (Tokenizer::decode).
//
// ByteLevel maps each character of a token back to its byte, then replaces invalid UTF-8
// as encode does; with no decoder, tokens are joined by spaces, as HF does.
#include "runtime/tokenizer/TokenizerImpl.h"
#include "runtime/tokenizer/Utf8.h"

namespace apc::tokenizer {

using namespace detail;

std::string Tokenizer::decode(const std::vector<int32_t> &ids, bool skipSpecial) const {
  const Impl &impl = *impl_;
  std::string out;
  bool firstToken = true;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= impl.idToToken.size())
      continue;
    const std::string &token = impl.idToToken[id];
    if (token.empty() && !impl.addedByContent.count(token) && !impl.vocab.count(token))
      continue; // a gap in the ids
    if (skipSpecial && impl.special[id])
      continue;
    if (!impl.byteLevelDecoder) {
      if (!firstToken)
        out += ' ';
      out += token;
      firstToken = false;
      continue;
    }
    // ByteLevel: each character back to its byte; a token with a character outside the
    // alphabet (an added token such as "a b") is taken as its own UTF-8 bytes.
    std::string bytes;
    bool mapped = true;
    for (size_t i = 0; i < token.size() && mapped;) {
      auto c = impl.charToByte.find(nextCodePoint(token, i));
      mapped = c != impl.charToByte.end();
      if (mapped)
        bytes += char(c->second);
    }
    out += mapped ? bytes : token;
  }
  return impl.byteLevelDecoder ? replaceInvalidUtf8(out) : out;
}

} // namespace apc::tokenizer
