// Encoding and lookups: Tokenizer::encode chains the steps of Tokenizer.h's pipeline.
//
// The steps live in their own files: UTF-8 replacement (Utf8.h), added tokens
// (AddedTokens.cpp), the regex split (PreTokenize.cpp), BPE (Bpe.cpp); the post-processor
// template is applied here. Loading is LoadJson.cpp, decoding Decode.cpp, the shared
// tables TokenizerImpl.h.
#include "runtime/tokenizer/TokenizerImpl.h"
#include "runtime/tokenizer/Utf8.h"

namespace apc::tokenizer {

using namespace detail;

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool addSpecialTokens) const {
  const Impl &impl = *impl_;
  std::string replaced;
  std::string_view text = input;
  if (!isValidUtf8(input)) {
    replaced = replaceInvalidUtf8(input);
    text = replaced;
  }
  std::vector<Piece> first, pieces;
  impl.splitAdded(text, impl.rawMatcher, {0, text.size(), -1}, first);
  for (const Piece &p : first)
    impl.splitAdded(text, impl.normalizedMatcher, p, pieces);

  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + impl.prefix.size() + impl.suffix.size() + 1);
  if (addSpecialTokens)
    ids.insert(ids.end(), impl.prefix.begin(), impl.prefix.end());
  std::vector<std::string_view> words;
  for (const Piece &p : pieces) {
    if (p.id >= 0) {
      ids.push_back(p.id);
      continue;
    }
    words.clear();
    impl.preTokenize(text.substr(p.begin, p.end - p.begin), 0, words);
    for (std::string_view w : words)
      impl.bpe(w, ids);
  }
  if (addSpecialTokens)
    ids.insert(ids.end(), impl.suffix.begin(), impl.suffix.end());
  return ids;
}

// ---------------------------------------------------------------- lookups

std::optional<int32_t> Tokenizer::tokenToId(std::string_view token) const {
  std::string key(token);
  auto a = impl_->addedByContent.find(key);
  if (a != impl_->addedByContent.end())
    return a->second;
  auto v = impl_->vocab.find(key);
  if (v != impl_->vocab.end())
    return v->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::idToToken(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->idToToken.size())
    return std::nullopt;
  // An id no token has (a gap in the vocabulary) reads as an empty slot: none, as HF's
  // id_to_token gives None, unless the empty string really is that id's token.
  const std::string &token = impl_->idToToken[id];
  if (token.empty() && tokenToId(token) != id)
    return std::nullopt;
  return token;
}

int32_t Tokenizer::vocabSize() const { return int32_t(impl_->idToToken.size()); }

bool Tokenizer::isSpecial(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[id];
}

} // namespace apc::tokenizer
