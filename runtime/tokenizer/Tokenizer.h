// Hugging Face `tokenizer.json` files of the byte-level BPE kind (Llama 3, GPT-2), in C++.
//
// The one idea: encoding is the same pipeline as Hugging Face `tokenizers`, step by step,
// so that ids are identical: (1) invalid UTF-8 is replaced by U+FFFD, one per maximal
// invalid subpart, as Python's `bytes.decode("utf-8", errors="replace")` does; (2) added
// tokens are cut out first (leftmost-longest; the `normalized: false` ones first, then the
// others in the remaining gaps, as HF's AddedVocabulary does); (3) each remaining piece is
// split by the pre-tokenizer's regex (PCRE2 with JIT, UTF + UCP); (4) each pre-token's bytes
// go through BPE by merge rank (a pre-token that is itself in the vocabulary is one id when
// `ignore_merges` is set); (5) the post-processor's template adds the special tokens.
// BPE runs on ids: byte b starts as the id of GPT-2's byte-to-unicode character for b.
//
// Everything that is not supported is refused at load with one message naming the file
// and the unsupported thing (docs/tokenizer.md lists what is supported). A loaded
// Tokenizer is immutable; encode and decode may run concurrently from many threads.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apc::tokenizer {

class Tokenizer {
public:
  // Reads and validates `path` (a tokenizer.json).
  static Result<Tokenizer> load(const std::string &path);
  // The same from the file's text; `name` is used in error messages.
  static Result<Tokenizer> fromJson(std::string_view json, const std::string &name);

  // Ids of `text` (any bytes: invalid UTF-8 is replaced first, see above). With
  // addSpecialTokens the post-processor's template (e.g. <|begin_of_text|>) is applied.
  std::vector<int32_t> encode(std::string_view text, bool addSpecialTokens = true) const;
  // Text of `ids` through the decoder (ByteLevel: bytes back, invalid UTF-8 replaced by
  // U+FFFD); unknown ids are skipped; skipSpecial drops added tokens marked special.
  std::string decode(const std::vector<int32_t> &ids, bool skipSpecial = false) const;

  // The id of a token as spelled in the file ("Ġthe", "<|begin_of_text|>").
  std::optional<int32_t> tokenToId(std::string_view token) const;
  // The token of an id as spelled in the file; nullopt when out of range or no token has
  // that id (a gap in the vocabulary).
  std::optional<std::string> idToToken(int32_t id) const;
  // One more than the largest id (model vocabulary and added tokens).
  int32_t vocabSize() const;
  bool isSpecial(int32_t id) const;

  struct Impl;

private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// `bytes` with every maximal invalid UTF-8 subpart (Unicode 15, section 3.9, "U+FFFD
// substitution of maximal subparts") replaced by U+FFFD, as Python's errors="replace" and
// Rust's from_utf8_lossy do. Valid input comes back unchanged.
std::string replaceInvalidUtf8(std::string_view bytes);

} // namespace apc::tokenizer
