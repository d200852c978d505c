// Liveness-based arena planning.
//
// Each arena buffer gets an interval [first write, last read] in instruction order;
// two buffers may share bytes only if their intervals are disjoint. Placement is
// "greedy by size": the largest buffers are placed first at the lowest offset that
// conflicts with no already-placed buffer live at the same time. Simple, and within a
// few percent of optimal for the layer-after-layer shape of training steps.
//
// The search for that offset is what costs: a pipeline stage of a large model has tens
// of thousands of buffers, a thousand of them live at once. Comparing each buffer with
// every placed one and sorting the conflicts is quadratic (seconds per stage). Instead
// a segment tree over instructions keeps, per node, the byte ranges already taken as
// merged intervals: `whole` those of buffers live through the node's entire span,
// `some` those of buffers live anywhere in it. The bytes taken during [first, last] are
// then the union of `some` over the nodes that tile [first, last] and `whole` over the
// nodes above them: a few dozen sorted lists, where adjacent buffers have merged into
// one range. The lowest fitting offset is found by raising a candidate past whatever
// range blocks it, list after list, until no list blocks it. Only the search changed:
// the offsets are those of the quadratic scan (PlanMemoryTest checks this).
#include "compiler/lowering/PlanMemory.h"

#include "compiler/lowering/ExecProgram.h"
#include "compiler/lowering/Streams.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace apc::lowering {

namespace {

// Byte ranges [begin, end), sorted, disjoint and not touching (touching ones merge:
// a buffer fits beside a range or it does not, wherever the range's parts came from).
class ByteRanges {
public:
  void add(uint64_t begin, uint64_t end) {
    auto after = std::upper_bound(ranges_.begin(), ranges_.end(), begin, startsAfter);
    auto lo = after;
    if (lo != ranges_.begin() && std::prev(lo)->second >= begin)
      --lo;
    auto hi = after;
    while (hi != ranges_.end() && hi->first <= end)
      ++hi;
    if (lo == hi) {
      ranges_.insert(lo, {begin, end});
      return;
    }
    *lo = {std::min(begin, lo->first), std::max(end, std::prev(hi)->second)};
    ranges_.erase(lo + 1, hi);
  }

  // The lowest offset >= `offset` where `size` bytes miss every range.
  uint64_t fit(uint64_t offset, uint64_t size) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), offset, startsAfter);
    if (it != ranges_.begin() && std::prev(it)->second > offset)
      offset = std::prev(it)->second;
    for (; it != ranges_.end() && it->first < offset + size; ++it)
      offset = std::max(offset, it->second);
    return offset;
  }

private:
  static bool startsAfter(uint64_t offset, const std::pair<uint64_t, uint64_t> &range) {
    return offset < range.first;
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

} // namespace

ArenaLayout placeByLiveness(const std::vector<LiveBuffer> &buffers) {
  ArenaLayout layout;
  layout.offsets.assign(buffers.size(), 0);
  std::vector<int> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return buffers[a].bytes > buffers[b].bytes; });

  // Leaves are instructions 0 .. leaves-1; node k has children 2k and 2k+1.
  int span = 1;
  for (const LiveBuffer &b : buffers)
    span = std::max(span, std::max(b.first, b.last) + 1);
  int leaves = 1;
  while (leaves < span)
    leaves *= 2;
  std::vector<ByteRanges> whole(2 * leaves), some(2 * leaves);

  std::vector<int> tiles, above;
  std::vector<const ByteRanges *> taken;
  for (int b : order) {
    uint64_t size = (buffers[b].bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    if (size == 0)
      continue; // takes no bytes: offset 0 (and the largest first: none comes after)
    int first = std::max(buffers[b].first, 0), last = std::max(buffers[b].last, first);
    tiles.clear();
    above.clear();
    for (int lo = first + leaves, hi = last + leaves + 1; lo < hi; lo /= 2, hi /= 2) {
      if (lo & 1)
        tiles.push_back(lo++);
      if (hi & 1)
        tiles.push_back(--hi);
    }
    // The ancestors of the two end leaves: every node that covers part of the interval
    // without lying inside it is one of them.
    int l = (first + leaves) / 2, r = (last + leaves) / 2;
    for (; l != r; l /= 2, r /= 2) {
      above.push_back(l);
      above.push_back(r);
    }
    for (; l >= 1; l /= 2)
      above.push_back(l);

    taken.clear();
    for (int k : tiles)
      taken.push_back(&some[k]);
    for (int k : above)
      taken.push_back(&whole[k]);
    uint64_t offset = 0;
    for (bool moved = true; moved;) {
      moved = false;
      for (const ByteRanges *ranges : taken) {
        uint64_t next = ranges->fit(offset, size);
        moved = moved || next != offset;
        offset = next;
      }
    }

    layout.offsets[b] = offset;
    layout.bytes = std::max(layout.bytes, offset + size);
    for (int k : tiles) {
      whole[k].add(offset, offset + size);
      some[k].add(offset, offset + size);
    }
    for (int k : above)
      some[k].add(offset, offset + size);
  }
  return layout;
}

void planMemory(ExecProgram &program) {
  size_t n = program.buffers.size();
  const int kNever = -1;
  std::vector<int> first(n, kNever), last(n, kNever);
  auto root = [&](int b) {
    return program.buffers[b].kind == BufferKind::Alias ? program.buffers[b].aliasOf : b;
  };
  // An instruction may run anywhere in its span (Streams.h): what it touches lives
  // through all of it.
  std::vector<RunSpan> spans = runSpans(program);
  for (size_t k = 0; k < program.instructions.size(); ++k) {
    const RunSpan &span = spans[k];
    for (int b : program.instructions[k].outputs) {
      int r = root(b);
      if (first[r] == kNever || span.from < first[r])
        first[r] = span.from;
      last[r] = std::max(last[r], span.to);
    }
    for (int b : program.instructions[k].inputs)
      last[root(b)] = std::max(last[root(b)], span.to);
  }
  int end = int(program.instructions.size());
  for (int keep : {program.loss, program.gradNorm})
    if (keep >= 0)
      last[root(keep)] = end;

  std::vector<int> arena;
  std::vector<LiveBuffer> live;
  for (size_t b = 0; b < n; ++b)
    if (program.buffers[b].kind == BufferKind::Arena) {
      arena.push_back(int(b));
      // Never written: live from the start (never read: only at its writer).
      int f = first[b] == kNever ? 0 : first[b];
      live.push_back({program.buffers[b].bytes(), f, std::max(last[b], f)});
    }
  // Offsets stay below the sum of the sizes: with the sum under 2^62, no sum of an
  // offset and a size overflows. A larger total is marked unplaceable (the most bytes
  // there are), which the lowering refuses as too large an arena.
  uint64_t total = 0;
  for (const LiveBuffer &buffer : live)
    if (__builtin_add_overflow(total, buffer.bytes + kArenaAlign, &total) ||
        total > (uint64_t(1) << 62)) {
      program.arenaBytes = UINT64_MAX;
      return;
    }
  ArenaLayout layout = placeByLiveness(live);
  for (size_t i = 0; i < arena.size(); ++i)
    program.buffers[arena[i]].offset = layout.offsets[i];
  program.arenaBytes = layout.bytes;
}

} // namespace apc::lowering
