// The pre-tokenizer split: each piece of text between added tokens is cut into pre-tokens
// by the Split regexes of tokenizer.json, in order (Tokenizer::Impl::preTokenize).
//
// The regexes run on PCRE2 with JIT. They are written for Oniguruma (what HF runs), so
// onigurumaToPcre2 respells the one construct where the two differ. PCRE2 match data and
// the JIT stack are per thread (thread_local), so encode is const and lock-free here.
#include "runtime/tokenizer/TokenizerImpl.h"
#include "runtime/tokenizer/Utf8.h"

namespace apc::tokenizer {

using namespace detail;

namespace {

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

} // namespace

namespace detail {

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

} // namespace detail

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

} // namespace apc::tokenizer
