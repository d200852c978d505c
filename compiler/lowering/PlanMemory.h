// The arena placement under planMemory (ExecProgram.h), on plain live intervals, so that
// it can be tested and timed without building a program.
#pragma once

#include <cstdint>
#include <vector>

namespace apc::lowering {

// One arena buffer: its size and the instructions [first, last] during which it lives.
struct LiveBuffer {
  uint64_t bytes = 0;
  int first = 0, last = 0;
};

struct ArenaLayout {
  std::vector<uint64_t> offsets; // per buffer, in the order given
  uint64_t bytes = 0;            // the arena: the end of the highest buffer
};

constexpr uint64_t kArenaAlign = 64;

// Greedy by size: buffers in decreasing size (ties in the order given), each at the
// lowest offset, a multiple of kArenaAlign, where it overlaps no buffer placed before it
// that is live at the same time. Each buffer takes its size rounded up to kArenaAlign.
// The result depends only on this rule, not on how the free space is searched.
ArenaLayout placeByLiveness(const std::vector<LiveBuffer> &buffers);

} // namespace apc::lowering
