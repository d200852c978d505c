// Liveness-based arena planning.
//
// Each arena buffer gets an interval [first write, last read] in instruction order;
// two buffers may share bytes only if their intervals are disjoint. Placement is
// "greedy by size": the largest buffers are placed first at the lowest offset that
// conflicts with no already-placed buffer live at the same time. Simple, and within a
// few percent of optimal for the layer-after-layer shape of training steps.
#include "compiler/lowering/ExecProgram.h"

#include <algorithm>
#include <numeric>

namespace apc::lowering {

uint64_t ExecBuffer::bytes() const {
  uint64_t n = dtypeSize(dtype);
  for (int64_t d : shape)
    n *= uint64_t(d);
  return n;
}

void planMemory(ExecProgram &program) {
  constexpr uint64_t kAlign = 64;
  size_t n = program.buffers.size();
  const int kNever = -1;
  std::vector<int> first(n, kNever), last(n, kNever);
  auto root = [&](int b) {
    return program.buffers[b].kind == BufferKind::Alias ? program.buffers[b].aliasOf : b;
  };
  for (size_t k = 0; k < program.instructions.size(); ++k) {
    for (int b : program.instructions[k].outputs) {
      int r = root(b);
      if (first[r] == kNever)
        first[r] = int(k);
      last[r] = std::max(last[r], int(k));
    }
    for (int b : program.instructions[k].inputs)
      last[root(b)] = std::max(last[root(b)], int(k));
  }
  int end = int(program.instructions.size());
  for (int keep : {program.loss, program.gradNorm})
    if (keep >= 0)
      last[root(keep)] = end;

  std::vector<int> order;
  for (size_t b = 0; b < n; ++b)
    if (program.buffers[b].kind == BufferKind::Arena)
      order.push_back(int(b));
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return program.buffers[a].bytes() > program.buffers[b].bytes();
  });

  struct Placed {
    uint64_t offset, size;
    int first, last;
  };
  std::vector<Placed> placed;
  uint64_t arena = 0;
  for (int b : order) {
    uint64_t size = (program.buffers[b].bytes() + kAlign - 1) / kAlign * kAlign;
    int f = first[b] == kNever ? 0 : first[b];
    int l = std::max(last[b], f);
    // Offsets of live-overlapping buffers, sorted, then the first gap that fits.
    std::vector<Placed> conflicts;
    for (const Placed &p : placed)
      if (!(p.last < f || l < p.first))
        conflicts.push_back(p);
    std::sort(conflicts.begin(), conflicts.end(),
              [](const Placed &a, const Placed &b) { return a.offset < b.offset; });
    uint64_t offset = 0;
    for (const Placed &p : conflicts) {
      if (offset + size <= p.offset)
        break;
      offset = std::max(offset, p.offset + p.size);
    }
    program.buffers[b].offset = offset;
    placed.push_back({offset, size, f, l});
    arena = std::max(arena, offset + size);
  }
  program.arenaBytes = arena;
}

} // namespace apc::lowering
