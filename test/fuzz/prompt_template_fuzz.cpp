// Fuzzes data::PromptTemplate::parse (the --template of aprun and apc): the input is
// the template as typed, parsed as is and after unescapeTemplate. On success the pieces
// must spell the template back (literals with braces doubled, placeholders as {name}),
// name at least one column, and every column must be used.
#include "runtime/data/TextDataset.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace apc;

namespace {

void check(const std::string &text) {
  auto t = data::PromptTemplate::parse(text);
  fuzz::report(t ? std::to_string(t->columns().size()) + " columns" : t.status().message());
  if (!t) {
    // The template is the input: messages start with "template '<text>'".
    APC_FUZZ_CHECK(t.status().message().rfind("template '", 0) == 0, "message: %s",
                   t.status().message().c_str());
    return;
  }
  APC_FUZZ_CHECK(!t->columns().empty(), "no column");
  std::string spelled;
  std::vector<bool> used(t->columns().size(), false);
  for (const data::PromptTemplate::Piece &p : t->pieces()) {
    if (p.column < 0) {
      APC_FUZZ_CHECK(!p.literal.empty(), "an empty literal piece");
      for (char c : p.literal)
        spelled += c == '{' ? "{{" : c == '}' ? "}}" : std::string(1, c);
      continue;
    }
    APC_FUZZ_CHECK(size_t(p.column) < t->columns().size(), "column %d out of range", p.column);
    used[size_t(p.column)] = true;
    spelled += "{" + t->columns()[size_t(p.column)] + "}";
  }
  APC_FUZZ_CHECK(spelled == text, "pieces spell '%s', not the template", spelled.c_str());
  for (size_t i = 0; i < used.size(); ++i)
    APC_FUZZ_CHECK(used[i], "column %zu is not used", i);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text = fuzz::asText(data, size);
  check(text);
  check(data::unescapeTemplate(text));
  return 0;
}
