// Loading and validating tokenizer.json: Tokenizer::load and Tokenizer::fromJson.
//
// The one place that reads the JSON. Each part of the file (model, normalizer,
// pre_tokenizer, post_processor, decoder, added_tokens) is checked against what the
// encoder supports and turned into the flat tables of Tokenizer::Impl (TokenizerImpl.h);
// anything else is refused here, with one message naming the file and the unsupported
// thing (docs/tokenizer.md lists them), so that encoding never has to.
#include "runtime/tokenizer/TokenizerImpl.h"
#include "runtime/tokenizer/Utf8.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace apc::tokenizer {

using json = nlohmann::json;
using namespace detail;

namespace {

// How far ids may run past the tokens there are (gaps: ids reserved or removed). Real
// vocabularies are dense; a larger gap is a damaged file, not a tokenizer.
constexpr int64_t kMaxIdGap = int64_t(1) << 20;

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
        // A present key read by find(): const operator[] on a missing one is undefined.
        const json &entry = specials->find(id).value();
        auto idsIt = entry.is_object() ? entry.find("ids") : entry.end();
        if (!entry.is_object() || idsIt == entry.end() || !idsIt->is_array())
          return fail("post_processor TemplateProcessing: special token '" + id +
                      "' has no 'ids' array");
        const json &ids = *idsIt;
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
      // Ids are positions in the vocabulary: one far past its size would make the id
      // table gigabytes (found by tokenizer_json_fuzz).
      if (int64_t(id) >= int64_t(vocab->size()) + kMaxIdGap)
        return fail("model: vocab entry '" + it.key() + "' has id " + std::to_string(id) +
                    ", far past the vocabulary's " + std::to_string(vocab->size()) +
                    " entries");
      impl.vocab[it.key()] = id;
      maxId = std::max<int64_t>(maxId, id);
    }
    impl.idToToken.assign(size_t(maxId + 1), std::string());
    std::vector<bool> taken(size_t(maxId + 1), false);
    for (const auto &[token, id] : impl.vocab) {
      // Two tokens with one id would decode that id as either: refuse, naming both.
      if (taken[size_t(id)]) {
        auto [first, second] = std::minmax(token, impl.idToToken[size_t(id)]);
        return fail("model: vocab entries '" + first + "' and '" + second +
                    "' have the same id " + std::to_string(id));
      }
      taken[size_t(id)] = true;
      impl.idToToken[id] = token;
    }

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
      if (id >= int64_t(impl.idToToken.size() + j.size()) + kMaxIdGap)
        return fail("added token '" + content + "' has id " + std::to_string(id) +
                    ", far past the vocabulary's " + std::to_string(impl.idToToken.size()) +
                    " ids and the " + std::to_string(j.size()) + " added tokens");
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
  std::vector<int32_t> templateIds = impl->prefix;
  templateIds.insert(templateIds.end(), impl->suffix.begin(), impl->suffix.end());
  Tokenizer tokenizer(std::move(impl));
  // Every id the template adds must be a token: past the last one or in a gap of the
  // vocabulary it is not (found by tokenizer_json_fuzz).
  for (int32_t id : templateIds)
    if (!tokenizer.idToToken(id))
      return loader.fail("post_processor: id " + std::to_string(id) + " is not a token");
  return tokenizer;
}

Result<Tokenizer> Tokenizer::load(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Result<Tokenizer>::error(path + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return fromJson(buffer.str(), path);
}

} // namespace apc::tokenizer
