// runtime/tokenizer on small hand-written tokenizer.json files: merges in both spellings,
// ignore_merges, added tokens, the template, decoding, invalid UTF-8 and one error per
// unsupported or malformed case. Conformance with Hugging Face on the real Llama 3 file
// is test/e2e/check_tokenizer_vs_hf.py.
#include "runtime/tokenizer/Tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <thread>
#include <unistd.h>

using apc::tokenizer::replaceInvalidUtf8;
using apc::tokenizer::Tokenizer;
using json = nlohmann::json;

namespace {

// GPT-2's byte-to-unicode character of byte b.
std::string byteChar(int b) {
  bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!direct) {
    int n = 0;
    for (int k = 0; k < b; ++k)
      if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF)))
        ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// Bytes are ids 0..255; then he=256 ll=257 hell=258 hello=259 lo=260 (no merge makes "lo").
json smallTokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    vocab[byteChar(b)] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab["lo"] = 260;
  json merges = json::array({"h e", json::array({"l", "l"}), json::array({"he", "ll"}), "hell o"});
  return {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"},
                       {"pattern", {{"Regex", " ?\\p{L}+|\\p{N}{1,3}|\\s+(?!\\S)|\\s+|."}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false},
                       {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array()},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {300}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       json::array({{{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                    {{"id", 301}, {"content", "<s>>"}, {"special", false}, {"normalized", false}},
                    {{"id", 302},
                     {"content", "[M]"},
                     {"special", false},
                     {"lstrip", true},
                     {"rstrip", true},
                     {"normalized", true}}})},
      {"model",
       {{"type", "BPE"}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}}}};
}

class TempFile {
public:
  explicit TempFile(const std::string &text) {
    char name[] = "/tmp/apc_tokenizer_testXXXXXX";
    int fd = mkstemp(name);
    path_ = name;
    ssize_t written = write(fd, text.data(), text.size());
    (void)written;
    close(fd);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

Tokenizer load(const json &j) {
  TempFile file(j.dump());
  auto tok = Tokenizer::load(file.path());
  EXPECT_TRUE(tok.isOk()) << tok.message();
  return *tok;
}

std::vector<int32_t> bytesOf(const std::string &s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s)
    ids.push_back(c);
  return ids;
}

} // namespace

// Found by tokenizer_json_fuzz: an id no token has read as the token "" (which has no id).
TEST(Tokenizer, IdsInAGapOfTheVocabularyHaveNoToken) {
  json j = smallTokenizer();
  j["model"]["vocab"]["zz"] = 310; // 303..309: no token
  Tokenizer tok = load(j);
  EXPECT_EQ(tok.vocabSize(), 311);
  EXPECT_EQ(tok.idToToken(310), std::optional<std::string>("zz"));
  EXPECT_EQ(tok.idToToken(305), std::nullopt);
  EXPECT_EQ(tok.idToToken(300), std::optional<std::string>("<s>"));
  EXPECT_EQ(tok.decode({305, 310}), tok.decode({310})); // a gap decodes to nothing
  for (int32_t id = 0; id < tok.vocabSize(); ++id)
    if (auto token = tok.idToToken(id))
      EXPECT_EQ(tok.tokenToId(*token), id) << *token;
}

TEST(Tokenizer, MergesInBothSpellings) {
  Tokenizer tok = load(smallTokenizer());
  EXPECT_EQ(tok.encode("hello", false), std::vector<int32_t>({259}));
  EXPECT_EQ(tok.encode("hell", false), std::vector<int32_t>({258}));
  // " hello" is one pre-token; "Ġ" never merges here.
  EXPECT_EQ(tok.encode(" hello", false), std::vector<int32_t>({32, 259}));
  EXPECT_EQ(tok.encode("hellohello", false), std::vector<int32_t>({259, 259}));
  EXPECT_EQ(tok.encode("lo", false), bytesOf("lo"));
  EXPECT_EQ(tok.tokenToId("hell"), 258);
  EXPECT_EQ(tok.tokenToId("Ġ"), 32);
  EXPECT_EQ(tok.tokenToId("<s>"), 300);
  EXPECT_FALSE(tok.tokenToId("nope").has_value());
  EXPECT_EQ(tok.vocabSize(), 303);
}

TEST(Tokenizer, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  json j = smallTokenizer();
  j["model"]["ignore_merges"] = true;
  Tokenizer tok = load(j);
  EXPECT_EQ(tok.encode("lo", false), std::vector<int32_t>({260}));
  EXPECT_EQ(tok.encode("hello", false), std::vector<int32_t>({259}));
  EXPECT_EQ(tok.encode("hellohello", false), std::vector<int32_t>({259, 259}));
}

TEST(Tokenizer, TemplateAddsTheSpecialTokenUnlessAskedNotTo) {
  Tokenizer tok = load(smallTokenizer());
  EXPECT_EQ(tok.encode("hello"), std::vector<int32_t>({300, 259}));
  EXPECT_EQ(tok.encode(""), std::vector<int32_t>({300}));
  EXPECT_EQ(tok.encode("", false), std::vector<int32_t>());
  json j = smallTokenizer();
  j["post_processor"] = nullptr;
  EXPECT_EQ(load(j).encode("hello"), std::vector<int32_t>({259}));
}

TEST(Tokenizer, AddedTokensAreMatchedFirstLongestAndStripped) {
  Tokenizer tok = load(smallTokenizer());
  // "<s>>" is longer than "<s>" at the same place.
  std::vector<int32_t> expected = {97, 301, 98};
  EXPECT_EQ(tok.encode("a<s>>b", false), expected);
  expected = {97, 300, 300, 98};
  EXPECT_EQ(tok.encode("a<s><s>b", false), expected);
  // [M] has lstrip and rstrip: the spaces around it go with it.
  expected = {97, 302, 98};
  EXPECT_EQ(tok.encode("a  [M]  b", false), expected);
  EXPECT_TRUE(tok.isSpecial(300));
  EXPECT_FALSE(tok.isSpecial(301));
}

TEST(Tokenizer, DecodeRoundTripsAndSkipsSpecialTokens) {
  Tokenizer tok = load(smallTokenizer());
  for (std::string text : {"hello world", " a\r\n\tb ", "café 日本 😀", "x<s>>z", ""}) {
    std::vector<int32_t> ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), "<s>" + text);
    EXPECT_EQ(tok.decode(ids, true), text);
  }
  EXPECT_EQ(tok.decode({259, 9999, -1, 32, 259}), "hello hello"); // unknown ids skipped
  // A lone continuation byte's id decodes to U+FFFD.
  EXPECT_EQ(tok.decode({0x80}), "\xEF\xBF\xBD");
}

TEST(Tokenizer, InvalidUtf8IsReplacedLikePythonErrorsReplace) {
  EXPECT_EQ(replaceInvalidUtf8("abc"), "abc");
  EXPECT_EQ(replaceInvalidUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(replaceInvalidUtf8("\xE2\x82" "a"), "\xEF\xBF\xBD" "a"); // truncated: one
  EXPECT_EQ(replaceInvalidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(replaceInvalidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD"); // overlong
  EXPECT_EQ(replaceInvalidUtf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(replaceInvalidUtf8("\xF4\x90\x80\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  Tokenizer tok = load(smallTokenizer());
  EXPECT_EQ(tok.encode("a\xFF" "b"), tok.encode("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(tok.decode(tok.encode("a\xFF" "b", false)), "a\xEF\xBF\xBD" "b");
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  Tokenizer tok = load(smallTokenizer());
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "hello hellohello lo  x" + std::to_string(i) + " ";
  std::vector<int32_t> expected = tok.encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r)
        ok[t] += tok.encode(text) == expected;
    });
  for (auto &th : threads)
    th.join();
  for (int t = 0; t < 4; ++t)
    EXPECT_EQ(ok[t], 20);
}

TEST(Tokenizer, LongRunsDoNotExhaustTheRegexStack) {
  Tokenizer tok = load(smallTokenizer());
  std::string spaces(200000, ' ');
  std::string text = spaces + "hello";
  EXPECT_EQ(tok.decode(tok.encode(text, false)), text);
  std::string word(100000, 'h');
  EXPECT_EQ(tok.encode(word, false).size(), 100000u);
}

// ---- errors: one message that names the file and the unsupported thing ----

void expectError(const std::string &text, const std::string &needle) {
  TempFile file(text);
  auto tok = Tokenizer::load(file.path());
  ASSERT_FALSE(tok.isOk()) << "expected an error containing: " << needle;
  EXPECT_NE(tok.message().find(file.path() + ": "), std::string::npos) << tok.message();
  EXPECT_NE(tok.message().find(needle), std::string::npos) << tok.message();
}

void expectError(const json &j, const std::string &needle) { expectError(j.dump(), needle); }

TEST(TokenizerErrors, MissingFile) {
  auto tok = Tokenizer::load("/nonexistent/tokenizer.json");
  ASSERT_FALSE(tok.isOk());
  EXPECT_EQ(tok.message(), "/nonexistent/tokenizer.json: cannot open");
}

TEST(TokenizerErrors, NotJson) { expectError(std::string("{\"model\": "), "not valid JSON"); }

TEST(TokenizerErrors, MissingModel) {
  json j = smallTokenizer();
  j.erase("model");
  expectError(j, "missing 'model'");
}

TEST(TokenizerErrors, ModelNotBpe) {
  json j = smallTokenizer();
  j["model"]["type"] = "WordPiece";
  expectError(j, "model type 'WordPiece' is not supported");
}

TEST(TokenizerErrors, UnsupportedPieces) {
  json j = smallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Metaspace"}};
  expectError(j, "pre_tokenizer type 'Metaspace' is not supported");
  j = smallTokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Isolated"}};
  expectError(j, "no ByteLevel");
  j = smallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithNext";
  expectError(j, "behavior 'MergedWithNext' is not supported");
  j = smallTokenizer();
  j["normalizer"] = {{"type", "NFC"}};
  expectError(j, "normalizer type 'NFC' is not supported");
  j = smallTokenizer();
  j["post_processor"] = {{"type", "BertProcessing"}};
  expectError(j, "post_processor type 'BertProcessing' is not supported");
  j = smallTokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  expectError(j, "decoder type 'WordPiece' is not supported");
  j = smallTokenizer();
  j["model"]["byte_fallback"] = true;
  expectError(j, "byte_fallback=true is not supported");
  j = smallTokenizer();
  j["added_tokens"][0]["single_word"] = true;
  expectError(j, "single_word=true is not supported");
}

TEST(TokenizerErrors, BadMerges) {
  json j = smallTokenizer();
  j["model"]["merges"].push_back("a b c");
  expectError(j, "merge 4 'a b c' is not two tokens");
  j = smallTokenizer();
  j["model"]["merges"].push_back(json::array({"x", "y"}));
  expectError(j, "token 'xy' is not in the vocabulary");
  j = smallTokenizer();
  j["model"]["merges"].push_back(42);
  expectError(j, "merge 4 is neither");
}

// Found by tokenizer_json_fuzz: two tokens with one id were accepted, and that id decoded
// as whichever the map kept.
TEST(TokenizerErrors, TwoTokensWithOneId) {
  json j = smallTokenizer();
  auto &vocab = j["model"]["vocab"];
  std::string someToken = vocab.begin().key();
  int64_t id = vocab.begin().value().get<int64_t>();
  const std::string duplicate = "zz-duplicate";
  vocab[duplicate] = id;
  // minmax returns references: both strings must outlive them (ASan caught a temporary).
  auto [first, second] = std::minmax(someToken, duplicate);
  expectError(j, "model: vocab entries '" + first + "' and '" + second + "' have the same id " +
                     std::to_string(id));
}

// Found by tokenizer_json_fuzz: a template id in a gap of the vocabulary (below the
// largest id, but no token's) was accepted, and encode then gave an id with no token.
TEST(TokenizerErrors, TemplateIdInAGapIsNotAToken) {
  json j = smallTokenizer();
  j["added_tokens"][1]["id"] = 602; // 303..601: no token
  j["post_processor"]["special_tokens"]["<s>"]["ids"] = {600};
  expectError(j, "post_processor: id 600 is not a token");
}

// Found by tokenizer_json_fuzz: an id far past the vocabulary sized the id table by it
// (tens of gigabytes).
TEST(TokenizerErrors, IdsFarPastTheVocabulary) {
  json j = smallTokenizer();
  j["model"]["vocab"]["zz"] = 2000000000;
  expectError(j, "model: vocab entry 'zz' has id 2000000000, far past the vocabulary's");
  j = smallTokenizer();
  j["added_tokens"][0]["id"] = 2000000000;
  expectError(j, "added token '<s>' has id 2000000000, far past the vocabulary's");
}

TEST(TokenizerErrors, RegexRejectedByPcre2) {
  json j = smallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expectError(j, "regex '(unclosed' rejected by PCRE2");
}

TEST(Tokenizer, WhiteSpaceIsOnigurumasNotPcre2s) {
  // U+180E is \s for PCRE2 (through \h) but not for Oniguruma, which HF runs: with
  // `\s+|\S+`, "a\u180Eb c" is three pre-tokens as in HF, not five.
  json j = smallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+|\\S+";
  j["model"]["ignore_merges"] = true;
  // "a", U+180E's three bytes, "b" as one token.
  std::string spelled = "a" + byteChar(0xE1) + byteChar(0xA0) + byteChar(0x8E) + "b";
  j["model"]["vocab"][spelled] = 400;
  Tokenizer tok = load(j);
  EXPECT_EQ(tok.encode("a\xE1\xA0\x8E" "b c", false), std::vector<int32_t>({400, 32, 99}));
}

// A post-processor special token without "ids" (or not an object) is refused, not read
// past the JSON value (the const operator[] of a missing key is undefined behaviour).
TEST(TokenizerErrors, SpecialTokenWithoutIds) {
  json j = smallTokenizer();
  j["post_processor"]["special_tokens"]["<s>"].erase("ids");
  expectError(j, "special token '<s>' has no 'ids' array");
  j["post_processor"]["special_tokens"]["<s>"] = 7;
  expectError(j, "special token '<s>' has no 'ids' array");
}
