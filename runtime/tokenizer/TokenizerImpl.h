// The loaded tokenizer's tables (Tokenizer::Impl), shared by the files of runtime/tokenizer.
//
// Private to the library: Tokenizer.h stays the only public header. Load (LoadJson.cpp)
// turns tokenizer.json into these flat tables once: the byte-level alphabet as ids,
// merges as a hash of id pairs, the vocabulary keyed by raw bytes (for `ignore_merges`
// and the cache), the added tokens by first byte, and the compiled regexes. Encoding
// then never looks at the JSON again; each encoding step lives in its own file
// (AddedTokens.cpp, PreTokenize.cpp, Bpe.cpp) and Tokenizer.cpp chains them.
#pragma once

#include "runtime/tokenizer/Tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace apc::tokenizer {

namespace detail {

struct Regex {
  std::shared_ptr<pcre2_code> code;
};

struct SplitStep {
  Regex regex;
  bool removed = false; // behavior "Removed" (else "Isolated")
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool lstrip, rstrip, normalized, special;
};

// Leftmost-longest matching of a set of added tokens (as HF's aho-corasick with
// MatchKind::LeftmostLongest): candidates by first byte, longest first.
struct AddedMatcher {
  std::array<std::vector<const AddedToken *>, 256> byFirst;
  bool empty = true;
  void add(const AddedToken *t) {
    byFirst[static_cast<uint8_t>(t->content[0])].push_back(t);
    empty = false;
  }
  void finish() {
    for (auto &v : byFirst)
      std::stable_sort(v.begin(), v.end(), [](const AddedToken *a, const AddedToken *b) {
        return a->content.size() > b->content.size();
      });
  }
};

struct Piece {
  size_t begin, end;
  int32_t id; // -1: text to pre-tokenize
};

struct MergeValue {
  int32_t rank;
  int32_t id;
};

inline uint64_t pairKey(int32_t a, int32_t b) {
  return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
}

// `pattern` (an Oniguruma regex from tokenizer.json) as PCRE2 spells it (PreTokenize.cpp).
std::string onigurumaToPcre2(const std::string &pattern);

} // namespace detail

struct Tokenizer::Impl {
  std::string name;
  // Model.
  std::unordered_map<std::string, int32_t> vocab;    // as spelled in the file
  std::unordered_map<std::string, int32_t> rawVocab; // by raw bytes (byte-level tokens)
  std::vector<std::string> idToToken;                // model and added tokens
  std::vector<bool> special;
  std::unordered_map<uint64_t, detail::MergeValue> merges;
  std::array<int32_t, 256> byteId{}; // -1: the byte's character is not in the vocabulary
  std::optional<int32_t> unkId;
  bool fuseUnk = false;
  bool ignoreMerges = false;
  // Added tokens.
  std::vector<detail::AddedToken> added;
  std::unordered_map<std::string, int32_t> addedByContent;
  detail::AddedMatcher rawMatcher, normalizedMatcher;
  // Pre-tokenizer splits, in order.
  std::vector<detail::SplitStep> splits;
  // Post-processor template for a single sequence: ids before and after.
  std::vector<int32_t> prefix, suffix;
  // Decoder: ByteLevel, or none (tokens joined by spaces).
  bool byteLevelDecoder = false;
  std::unordered_map<uint32_t, uint8_t> charToByte;

  // Word cache (pre-token bytes -> ids) for words that need merging.
  mutable std::shared_mutex cacheMutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
  static constexpr size_t kCacheCapacity = 10000;

  void splitAdded(std::string_view text, const detail::AddedMatcher &m, detail::Piece piece,
                  std::vector<detail::Piece> &out) const;
  void preTokenize(std::string_view text, size_t step, std::vector<std::string_view> &out) const;
  void bpe(std::string_view word, std::vector<int32_t> &out) const;
};

} // namespace apc::tokenizer
