// Added and special tokens: cutting them out of the text before anything else is split
// (Tokenizer::Impl::splitAdded, as HF's AddedVocabulary::find_matches).
//
// Encode runs it twice, the `normalized: false` tokens first and then the others in the
// remaining gaps, as HF does; matching is leftmost-longest through AddedMatcher
// (TokenizerImpl.h), with the tokens' lstrip/rstrip taking neighbouring White_Space along.
#include "runtime/tokenizer/TokenizerImpl.h"
#include "runtime/tokenizer/Utf8.h"

namespace apc::tokenizer {

using namespace detail;

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

} // namespace apc::tokenizer
