// Byte-level BPE from tokenizer.json (see Tokenizer.h for the pipeline and the one idea).
//
// Load turns the file into flat tables: the byte-level alphabet as ids, merges as a hash
// of id pairs, the vocabulary keyed by raw bytes (for `ignore_merges` and the cache), the
// added tokens by first byte, and the compiled regexes. Encoding then never looks at the
// JSON again. PCRE2 match data and the JIT stack are per thread (thread_local), so encode
// is const and lock-free apart from the small word cache.
#include "runtime/tokenizer/Tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace apc::tokenizer {

using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------- UTF-8 helpers

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not valid (Unicode table 3-7).
// `maximal` receives the length of the maximal subpart to replace when invalid.
size_t validSequenceAt(std::string_view s, size_t i, size_t &maximal) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c = b(i);
  maximal = 1;
  if (c < 0x80)
    return 1;
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;
    if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size())
      return 0;
    uint8_t d = b(i + k);
    bool ok = k == 1 ? (d >= lo && d <= hi) : (d >= 0x80 && d <= 0xBF);
    if (!ok)
      return 0;
    maximal = k + 1;
  }
  return len;
}

// Decodes the (valid) code point at s[i] and advances i.
uint32_t nextCodePoint(std::string_view s, size_t &i) {
  uint8_t c = static_cast<uint8_t>(s[i]);
  int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len && i + k < s.size(); ++k)
    cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

size_t charLenAt(std::string_view s, size_t i) {
  uint8_t c = static_cast<uint8_t>(s[i]);
  size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  return std::min(len, s.size() - i);
}

// Rust's char::is_whitespace (Unicode White_Space), for lstrip/rstrip of added tokens.
bool isWhiteSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 on.
std::array<uint32_t, 256> byteToCodePoint() {
  std::array<uint32_t, 256> table{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b)
    direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b)
    direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b)
    direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b)
    table[b] = direct[b] ? uint32_t(b) : next++;
  return table;
}

// ---------------------------------------------------------------- PCRE2

struct PcreScratch {
  pcre2_match_data *data = nullptr;
  pcre2_match_context *context = nullptr;
  pcre2_jit_stack *stack = nullptr;
  PcreScratch() {
    data = pcre2_match_data_create(32, nullptr);
    context = pcre2_match_context_create(nullptr);
    // Long whitespace or letter runs backtrack deeply in `\s+(?!\S)`; the stack is
    // reserved, not committed, up front.
    stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~PcreScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

PcreScratch &scratch() {
  thread_local PcreScratch s;
  return s;
}

struct Regex {
  std::shared_ptr<pcre2_code> code;
};

// tokenizer.json regexes are Oniguruma's (HF `tokenizers` runs them on onig). Over every
// code point, the one difference with PCRE2 for the Llama 3 pattern is U+180E (Mongolian
// vowel separator): PCRE2's \s includes it (through \h), Oniguruma's \s is Unicode
// White_Space, which no longer does. So \s and \S are spelled out as White_Space here
// (inside and outside character classes; a \S inside a class is left as is).
constexpr const char *kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";
std::string onigurumaToPcre2(const std::string &pattern) {
  std::string out;
  bool inClass = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[i + 1];
      ++i;
      if (e == 's')
        out += inClass ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      else if (e == 'S' && !inClass)
        out += "[^" + std::string(kWhiteSpace) + "]";
      else
        out += {'\\', e};
      continue;
    }
    if (!inClass && c == '[') {
      inClass = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^')
        out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']')
        out += pattern[++i];
      continue;
    }
    if (inClass && c == ']')
      inClass = false;
    out += c;
  }
  return out;
}

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

uint64_t pairKey(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

} // namespace

// ---------------------------------------------------------------- the loaded tokenizer

struct Tokenizer::Impl {
  std::string name;
  // Model.
  std::unordered_map<std::string, int32_t> vocab;    // as spelled in the file
  std::unordered_map<std::string, int32_t> rawVocab; // by raw bytes (byte-level tokens)
  std::vector<std::string> idToToken;                // model and added tokens
  std::vector<bool> special;
  std::unordered_map<uint64_t, MergeValue> merges;
  std::array<int32_t, 256> byteId{}; // -1: the byte's character is not in the vocabulary
  std::optional<int32_t> unkId;
  bool fuseUnk = false;
  bool ignoreMerges = false;
  // Added tokens.
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> addedByContent;
  AddedMatcher rawMatcher, normalizedMatcher;
  // Pre-tokenizer splits, in order.
  std::vector<SplitStep> splits;
  // Post-processor template for a single sequence: ids before and after.
  std::vector<int32_t> prefix, suffix;
  // Decoder: ByteLevel, or none (tokens joined by spaces).
  bool byteLevelDecoder = false;
  std::unordered_map<uint32_t, uint8_t> charToByte;

  // Word cache (pre-token bytes -> ids) for words that need merging.
  mutable std::shared_mutex cacheMutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
  static constexpr size_t kCacheCapacity = 10000;

  void splitAdded(std::string_view text, const AddedMatcher &m, Piece piece,
                  std::vector<Piece> &out) const;
  void preTokenize(std::string_view text, size_t step, std::vector<std::string_view> &out) const;
  void bpe(std::string_view word, std::vector<int32_t> &out) const;
};

namespace {

// ---------------------------------------------------------------- loading

struct Loader {
  const std::string &name;
  Status fail(const std::string &what) const { return Status::error(name + ": " + what); }

  Result<Regex> compileRegex(const json &pattern, const std::string &where) const {
    if (!pattern.is_object())
      return fail(where + ": pattern must be an object {\"Regex\": ...} or {\"String\": ...}");
    std::string text;
    uint32_t options = PCRE2_UTF | PCRE2_UCP;
    std::string original;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      original = pattern["Regex"].get<std::string>();
      text = onigurumaToPcre2(original);
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      text = original = pattern["String"].get<std::string>();
      options = PCRE2_UTF | PCRE2_LITERAL;
    } else {
      return fail(where + ": pattern must be {\"Regex\": string} or {\"String\": string}");
    }
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                                     options, &error, &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      // The offset is into the pattern as given to PCRE2 (\s spelled out).
      return fail(where + ": regex '" + original + "' rejected by PCRE2 at offset " +
                  std::to_string(offset) + (text == original ? "" : " of '" + text + "'") +
                  ": " + reinterpret_cast<char *>(message));
    }
    // No JIT (a build without it) only costs speed: pcre2_match interprets.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    return Regex{std::shared_ptr<pcre2_code>(code, pcre2_code_free)};
  }

  static bool flag(const json &j, const char *key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  }
  static std::string typeOf(const json &j) {
    auto it = j.find("type");
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string("<no type>");
  }

  Status preTokenizer(const json &j, Tokenizer::Impl &impl, bool &byteLevel) const {
    if (!j.is_object())
      return fail("pre_tokenizer: expected an object");
    std::string type = typeOf(j);
    if (type == "Sequence") {
      auto it = j.find("pretokenizers");
      if (it == j.end() || !it->is_array())
        return fail("pre_tokenizer Sequence: 'pretokenizers' must be an array");
      for (const json &p : *it)
        APC_RETURN_IF_ERROR(preTokenizer(p, impl, byteLevel));
      return Status::ok();
    }
    if (byteLevel)
      return fail("pre_tokenizer: a " + type +
                  " after ByteLevel is not supported (ByteLevel must come last)");
    if (type == "Split") {
      std::string behavior = j.value("behavior", std::string());
      if (behavior != "Isolated" && behavior != "Removed")
        return fail("pre_tokenizer Split: behavior '" + behavior +
                    "' is not supported (Isolated, Removed)");
      if (flag(j, "invert"))
        return fail("pre_tokenizer Split: invert=true is not supported");
      auto pattern = j.find("pattern");
      if (pattern == j.end())
        return fail("pre_tokenizer Split: missing 'pattern'");
      auto regex = compileRegex(*pattern, "pre_tokenizer Split");
      if (!regex)
        return regex.status();
      impl.splits.push_back({*regex, behavior == "Removed"});
      return Status::ok();
    }
    if (type == "ByteLevel") {
      if (flag(j, "add_prefix_space"))
        return fail("pre_tokenizer ByteLevel: add_prefix_space=true is not supported");
      if (!j.contains("use_regex") || flag(j, "use_regex")) {
        // GPT-2's own split, as ByteLevel(use_regex=true) runs it.
        json gpt2 = {{"Regex", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
                               "\\s+(?!\\S)|\\s+"}};
        auto regex = compileRegex(gpt2, "pre_tokenizer ByteLevel");
        if (!regex)
          return regex.status();
        impl.splits.push_back({*regex, false});
      }
      byteLevel = true;
      return Status::ok();
    }
    return fail("pre_tokenizer type '" + type +
                "' is not supported (Sequence, Split, ByteLevel)");
  }

  Status postProcessor(const json &j, Tokenizer::Impl &impl) const {
    if (j.is_null())
      return Status::ok();
    if (!j.is_object())
      return fail("post_processor: expected an object or null");
    std::string type = typeOf(j);
    if (type == "ByteLevel") // offsets only; ids are unchanged
      return Status::ok();
    if (type == "Sequence") {
      auto it = j.find("processors");
      if (it == j.end() || !it->is_array())
        return fail("post_processor Sequence: 'processors' must be an array");
      for (const json &p : *it)
        APC_RETURN_IF_ERROR(postProcessor(p, impl));
      return Status::ok();
    }
    if (type != "TemplateProcessing")
      return fail("post_processor type '" + type +
                  "' is not supported (TemplateProcessing, ByteLevel, Sequence, null)");
    if (!impl.prefix.empty() || !impl.suffix.empty())
      return fail("post_processor: more than one TemplateProcessing is not supported");
    auto single = j.find("single");
    auto specials = j.find("special_tokens");
    if (single == j.end() || !single->is_array())
      return fail("post_processor TemplateProcessing: 'single' must be an array");
    bool seenSequence = false;
    for (const json &item : *single) {
      if (item.contains("Sequence")) {
        const json &seq = item["Sequence"];
        if (!seq.is_object() || seq.value("id", std::string()) != "A")
          return fail("post_processor TemplateProcessing: 'single' may only hold sequence A");
        if (seenSequence)
          return fail("post_processor TemplateProcessing: sequence A twice in 'single'");
        seenSequence = true;
      } else if (item.contains("SpecialToken")) {
        const json &st = item["SpecialToken"];
        std::string id = st.is_object() ? st.value("id", std::string()) : std::string();
        if (specials == j.end() || !specials->is_object() || !specials->contains(id))
          return fail("post_processor TemplateProcessing: special token '" + id +
                      "' is not in 'special_tokens'");
        const json &ids = (*specials)[id]["ids"];
        if (!ids.is_array())
          return fail("post_processor TemplateProcessing: special token '" + id +
                      "' has no 'ids' array");
        for (const json &v : ids) {
          if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
            return fail("post_processor TemplateProcessing: special token '" + id +
                        "' has a bad id");
          (seenSequence ? impl.suffix : impl.prefix).push_back(int32_t(v.get<int64_t>()));
        }
      } else {
        return fail("post_processor TemplateProcessing: unknown item in 'single'");
      }
    }
    if (!seenSequence)
      return fail("post_processor TemplateProcessing: 'single' lacks sequence A");
    return Status::ok();
  }

  Status decoder(const json &j, Tokenizer::Impl &impl) const {
    if (j.is_null())
      return Status::ok();
    std::string type = j.is_object() ? typeOf(j) : std::string("<not an object>");
    if (type != "ByteLevel")
      return fail("decoder type '" + type + "' is not supported (ByteLevel, null)");
    impl.byteLevelDecoder = true;
    return Status::ok();
  }

  Status model(const json &m, Tokenizer::Impl &impl) const {
    if (!m.is_object())
      return fail("missing 'model'");
    std::string type = m.contains("type") ? typeOf(m) : std::string("BPE");
    if (type != "BPE")
      return fail("model type '" + type + "' is not supported (only BPE)");
    if (m.contains("dropout") && !m["dropout"].is_null() &&
        !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
      return fail("model: BPE dropout is not supported");
    if (flag(m, "byte_fallback"))
      return fail("model: byte_fallback=true is not supported");
    for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(key) && !m[key].is_null() &&
          !(m[key].is_string() && m[key].get<std::string>().empty()))
        return fail(std::string("model: ") + key + " is not supported");
    impl.ignoreMerges = flag(m, "ignore_merges");
    impl.fuseUnk = flag(m, "fuse_unk");

    auto vocab = m.find("vocab");
    if (vocab == m.end() || !vocab->is_object())
      return fail("model: 'vocab' must be an object of token -> id");
    int64_t maxId = -1;
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
          it.value().get<int64_t>() >= INT32_MAX)
        return fail("model: vocab entry '" + it.key() + "' has a bad id");
      int32_t id = int32_t(it.value().get<int64_t>());
      impl.vocab[it.key()] = id;
      maxId = std::max<int64_t>(maxId, id);
    }
    impl.idToToken.assign(size_t(maxId + 1), std::string());
    for (const auto &[token, id] : impl.vocab)
      impl.idToToken[id] = token;

    // Byte-level spelling: each character of a token is one byte.
    std::array<uint32_t, 256> table = byteToCodePoint();
    for (int b = 0; b < 256; ++b)
      impl.charToByte[table[b]] = uint8_t(b);
    for (const auto &[token, id] : impl.vocab) {
      std::string raw;
      bool ok = true;
      for (size_t i = 0; i < token.size() && ok;) {
        auto c = impl.charToByte.find(nextCodePoint(token, i));
        ok = c != impl.charToByte.end();
        if (ok)
          raw += char(c->second);
      }
      if (ok)
        impl.rawVocab.emplace(std::move(raw), id);
    }
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      appendUtf8(ch, table[b]);
      auto it = impl.vocab.find(ch);
      impl.byteId[b] = it == impl.vocab.end() ? -1 : it->second;
    }
    if (m.contains("unk_token") && !m["unk_token"].is_null()) {
      if (!m["unk_token"].is_string() || !impl.vocab.count(m["unk_token"].get<std::string>()))
        return fail("model: unk_token is not in the vocabulary");
      impl.unkId = impl.vocab[m["unk_token"].get<std::string>()];
    }

    auto merges = m.find("merges");
    if (merges == m.end() || !merges->is_array())
      return fail("model: 'merges' must be an array");
    int32_t rank = 0;
    for (const json &merge : *merges) {
      std::string a, b;
      if (merge.is_string()) {
        const std::string &s = merge.get_ref<const std::string &>();
        size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          return fail("model: merge " + std::to_string(rank) + " '" + s +
                      "' is not two tokens separated by one space");
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                 merge[1].is_string()) {
        a = merge[0].get<std::string>();
        b = merge[1].get<std::string>();
      } else {
        return fail("model: merge " + std::to_string(rank) +
                    " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      auto ia = impl.vocab.find(a), ib = impl.vocab.find(b), iab = impl.vocab.find(a + b);
      for (auto [it, tok] : {std::pair{ia, &a}, std::pair{ib, &b}, std::pair{iab, (std::string *)nullptr}})
        if (it == impl.vocab.end())
          return fail("model: merge " + std::to_string(rank) + " ('" + a + "', '" + b +
                      "'): token '" + (tok ? *tok : a + b) + "' is not in the vocabulary");
      impl.merges[pairKey(ia->second, ib->second)] = {rank, iab->second};
      ++rank;
    }
    return Status::ok();
  }

  Status addedTokens(const json &j, Tokenizer::Impl &impl) const {
    if (j.is_null())
      return Status::ok();
    if (!j.is_array())
      return fail("'added_tokens' must be an array");
    for (const json &t : j) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string())
        return fail("added_tokens: each entry needs an integer 'id' and a string 'content'");
      int64_t id = t["id"].get<int64_t>();
      std::string content = t["content"].get<std::string>();
      if (id < 0 || id >= INT32_MAX)
        return fail("added token '" + content + "' has a bad id");
      if (content.empty())
        return fail("added token " + std::to_string(id) + " has empty content");
      if (flag(t, "single_word"))
        return fail("added token '" + content + "': single_word=true is not supported");
      impl.added.push_back({int32_t(id), content, flag(t, "lstrip"), flag(t, "rstrip"),
                            !t.contains("normalized") || flag(t, "normalized"),
                            flag(t, "special")});
    }
    return Status::ok();
  }
};

} // namespace

Result<Tokenizer> Tokenizer::fromJson(std::string_view text, const std::string &name) {
  Loader loader{name};
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const std::exception &e) {
    std::string what = e.what();
    size_t close = what.find("] ");
    return loader.fail("not valid JSON: " +
                       (close == std::string::npos ? what : what.substr(close + 2)));
  }
  if (!j.is_object())
    return loader.fail("expected a JSON object at the top level");
  auto impl = std::make_shared<Impl>();
  impl->name = name;
  try {
    if (!j.contains("model"))
      return loader.fail("missing 'model'");
    APC_RETURN_IF_ERROR(loader.model(j["model"], *impl));
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
      const json &n = j["normalizer"];
      bool emptySequence = n.is_object() && Loader::typeOf(n) == "Sequence" &&
                           n.contains("normalizers") && n["normalizers"].is_array() &&
                           n["normalizers"].empty();
      if (!emptySequence)
        return loader.fail("normalizer type '" + (n.is_object() ? Loader::typeOf(n) : "?") +
                           "' is not supported (only null)");
    }
    bool byteLevel = false;
    if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null())
      return loader.fail("pre_tokenizer is null: only byte-level BPE (a ByteLevel "
                         "pre-tokenizer) is supported");
    APC_RETURN_IF_ERROR(loader.preTokenizer(j["pre_tokenizer"], *impl, byteLevel));
    if (!byteLevel)
      return loader.fail("pre_tokenizer has no ByteLevel step: only byte-level BPE is "
                         "supported");
    APC_RETURN_IF_ERROR(loader.postProcessor(j.value("post_processor", json()), *impl));
    APC_RETURN_IF_ERROR(loader.decoder(j.value("decoder", json()), *impl));
    APC_RETURN_IF_ERROR(loader.addedTokens(j.value("added_tokens", json()), *impl));
  } catch (const std::exception &e) {
    return loader.fail(std::string("unexpected JSON shape: ") + e.what());
  }

  // Added tokens: ids, specials, matchers.
  int32_t maxId = int32_t(impl->idToToken.size()) - 1;
  for (const AddedToken &t : impl->added)
    maxId = std::max(maxId, t.id);
  impl->idToToken.resize(size_t(maxId + 1));
  impl->special.assign(size_t(maxId + 1), false);
  for (const AddedToken &t : impl->added) {
    impl->idToToken[t.id] = t.content;
    impl->special[t.id] = t.special;
    impl->addedByContent[t.content] = t.id;
  }
  for (const AddedToken &t : impl->added)
    (t.normalized ? impl->normalizedMatcher : impl->rawMatcher).add(&t);
  impl->rawMatcher.finish();
  impl->normalizedMatcher.finish();
  for (int32_t id : impl->prefix)
    if (id > maxId)
      return loader.fail("post_processor: id " + std::to_string(id) + " is not a token");
  for (int32_t id : impl->suffix)
    if (id > maxId)
      return loader.fail("post_processor: id " + std::to_string(id) + " is not a token");
  return Tokenizer(std::move(impl));
}

Result<Tokenizer> Tokenizer::load(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Result<Tokenizer>::error(path + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return fromJson(buffer.str(), path);
}

// ---------------------------------------------------------------- encoding

std::string replaceInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t maximal;
    size_t len = validSequenceAt(s, i, maximal);
    if (len) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal;
    }
  }
  return out;
}

namespace {
bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t maximal;
    size_t len = validSequenceAt(s, i, maximal);
    if (!len)
      return false;
    i += len;
  }
  return true;
}
} // namespace

// Cuts the added tokens of `m` out of `piece` (HF AddedVocabulary::find_matches).
void Tokenizer::Impl::splitAdded(std::string_view text, const AddedMatcher &m, Piece piece,
                                 std::vector<Piece> &out) const {
  if (piece.id >= 0 || m.empty) {
    out.push_back(piece);
    return;
  }
  size_t startOffset = piece.begin;
  for (size_t pos = piece.begin; pos < piece.end;) {
    const AddedToken *hit = nullptr;
    for (const AddedToken *t : m.byFirst[static_cast<uint8_t>(text[pos])])
      if (t->content.size() <= piece.end - pos &&
          text.compare(pos, t->content.size(), t->content) == 0) {
        hit = t;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    if (hit->lstrip) {
      size_t s = start;
      while (s > startOffset) {
        size_t p = s - 1;
        while (p > startOffset && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80)
          --p;
        size_t q = p;
        if (!isWhiteSpace(nextCodePoint(text, q)))
          break;
        s = p;
      }
      start = s;
    }
    if (hit->rstrip) {
      while (stop < piece.end) {
        size_t q = stop;
        if (!isWhiteSpace(nextCodePoint(text, q)))
          break;
        stop = q;
      }
    }
    if (startOffset < start)
      out.push_back({startOffset, start, -1});
    out.push_back({start, stop, hit->id});
    startOffset = stop;
    pos = stop;
  }
  if (startOffset < piece.end)
    out.push_back({startOffset, piece.end, -1});
}

// Splits `text` by the regexes of splits[step...] into pre-tokens (views into `text`).
void Tokenizer::Impl::preTokenize(std::string_view text, size_t step,
                                  std::vector<std::string_view> &out) const {
  if (text.empty())
    return;
  if (step == splits.size()) {
    out.push_back(text);
    return;
  }
  const SplitStep &split = splits[step];
  PcreScratch &s = scratch();
  const auto *subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t prev = 0, start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(split.regex.code.get(), subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                         s.data, s.context);
    if (rc < 0)
      break; // no match (or a resource limit: the rest stays one piece)
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s.data);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) { // an empty match splits nothing
      if (ms >= text.size())
        break;
      start = ms + charLenAt(text, ms);
      continue;
    }
    if (ms > prev)
      preTokenize(text.substr(prev, ms - prev), step + 1, out);
    if (!split.removed)
      preTokenize(text.substr(ms, me - ms), step + 1, out);
    prev = start = me;
  }
  if (prev < text.size())
    preTokenize(text.substr(prev), step + 1, out);
}

// BPE of one pre-token (HF's Word::merge_all: the lowest rank first, leftmost on ties).
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t> &out) const {
  if (ignoreMerges || word.size() == 1) {
    auto it = rawVocab.find(std::string(word));
    if (it != rawVocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::string key(word);
  bool cacheFull;
  {
    std::shared_lock lock(cacheMutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    cacheFull = cache.size() >= kCacheCapacity;
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  std::vector<int32_t> result;
  for (size_t i = 0; i < word.size();) {
    // One character (all its bytes) is the unit HF starts from; with byte-level input
    // every byte of it is a character of the alphabet, so bytes are the units.
    int32_t id = byteId[static_cast<uint8_t>(word[i])];
    ++i;
    if (id < 0) {
      if (!unkId)
        continue;
      if (fuseUnk && !symbols.empty() && symbols.back().id == *unkId)
        continue;
      id = *unkId;
    }
    int32_t n = int32_t(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0)
      symbols[n - 1].next = n;
  }
  struct Merge {
    int32_t rank, pos, id;
    bool operator>(const Merge &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  auto push = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0)
      return;
    auto it = merges.find(pairKey(symbols[pos].id, symbols[symbols[pos].next].id));
    if (it != merges.end())
      queue.push({it->second.rank, pos, it->second.id});
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i)
    push(i);
  while (!queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    Symbol &left = symbols[top.pos];
    if (!left.alive || left.next < 0)
      continue;
    Symbol &right = symbols[left.next];
    auto it = merges.find(pairKey(left.id, right.id));
    if (it == merges.end() || it->second.id != top.id)
      continue; // stale: a neighbour changed since it was queued
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0)
      symbols[right.next].prev = top.pos;
    push(left.prev);
    push(top.pos);
  }
  for (const Symbol &s : symbols)
    if (s.alive)
      result.push_back(s.id);
  out.insert(out.end(), result.begin(), result.end());
  if (cacheFull) // a full cache keeps what it has: no exclusive lock per word then
    return;
  std::unique_lock lock(cacheMutex);
  if (cache.size() < kCacheCapacity)
    cache.emplace(std::move(key), std::move(result));
}

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

// ---------------------------------------------------------------- decoding and lookups

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
  return impl_->idToToken[id];
}

int32_t Tokenizer::vocabSize() const { return int32_t(impl_->idToToken.size()); }

bool Tokenizer::isSpecial(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[id];
}

} // namespace apc::tokenizer
