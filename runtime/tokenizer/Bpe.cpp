// The byte-level BPE merge loop: one pre-token's bytes to ids (Tokenizer::Impl::bpe).
//
// BPE runs on ids, not strings: byte b starts as the id of GPT-2's byte-to-unicode
// character for b, and merges are a hash of id pairs. A heap gives the lowest rank first,
// leftmost on ties (HF's Word::merge_all). Words already in the vocabulary (with
// `ignore_merges`) are one lookup; merged words go to a small cache behind a shared lock.
#include "runtime/tokenizer/TokenizerImpl.h"

#include <functional>
#include <mutex>
#include <queue>

namespace apc::tokenizer {

using namespace detail;

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

} // namespace apc::tokenizer
