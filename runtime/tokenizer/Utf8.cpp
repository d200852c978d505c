// replaceInvalidUtf8, the public face of Utf8.h: invalid input is made valid before
// tokenizing (one U+FFFD per maximal invalid subpart), and callers may want the same text.
#include "runtime/tokenizer/Tokenizer.h"
#include "runtime/tokenizer/Utf8.h"

namespace apc::tokenizer {

using namespace detail;

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

} // namespace apc::tokenizer
