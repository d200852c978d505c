// The arena planner (compiler/lowering/PlanMemory.h): buffers live at the same time never
// share bytes, offsets and the arena are 64-byte aligned, buffers live at different times
// share, and the offsets are exactly those of the quadratic greedy-by-size scan it
// replaced (kept below as the reference), on random interval sets and on planMemory's
// liveness (aliases, the loss kept to the end).
#include "compiler/lowering/PlanMemory.h"

#include "compiler/lowering/ExecProgram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace apc::lowering {
namespace {

// The planner before the segment tree: for each buffer, largest first, collect the placed
// buffers live at the same time, sort them by offset, take the first gap that fits.
ArenaLayout referencePlacement(const std::vector<LiveBuffer> &buffers) {
  std::vector<int> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return buffers[a].bytes > buffers[b].bytes; });
  struct Placed {
    uint64_t offset, size;
    int first, last;
  };
  std::vector<Placed> placed;
  ArenaLayout layout;
  layout.offsets.assign(buffers.size(), 0);
  for (int b : order) {
    uint64_t size = (buffers[b].bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    int f = std::max(buffers[b].first, 0), l = std::max(buffers[b].last, f);
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
    layout.offsets[b] = offset;
    placed.push_back({offset, size, f, l});
    layout.bytes = std::max(layout.bytes, offset + size);
  }
  return layout;
}

// Random buffers over `span` instructions: short-lived temporaries, long-lived
// activations, a few sizes repeated (as layers repeat), odd sizes, empty ones.
std::vector<LiveBuffer> randomBuffers(std::mt19937 &rng, int count, int span) {
  std::vector<LiveBuffer> out(count);
  for (LiveBuffer &b : out) {
    b.first = int(rng() % span);
    b.last = rng() % 4 == 0 ? b.first + int(rng() % span) : b.first + int(rng() % 3);
    switch (rng() % 5) {
    case 0: b.bytes = 0; break;
    case 1: b.bytes = 1 + rng() % 300; break;
    case 2: b.bytes = 64u << (rng() % 6); break;
    default: b.bytes = (1 + rng() % 8) * 4096; break;
    }
  }
  return out;
}

void expectNoSharedBytesWhileLive(const std::vector<LiveBuffer> &buffers,
                                  const ArenaLayout &layout) {
  for (size_t a = 0; a < buffers.size(); ++a) {
    uint64_t aEnd = layout.offsets[a] + buffers[a].bytes;
    EXPECT_LE(aEnd, layout.bytes);
    for (size_t b = a + 1; b < buffers.size(); ++b) {
      bool live = !(buffers[a].last < buffers[b].first || buffers[b].last < buffers[a].first);
      if (!live || buffers[a].bytes == 0 || buffers[b].bytes == 0)
        continue;
      uint64_t bEnd = layout.offsets[b] + buffers[b].bytes;
      EXPECT_TRUE(aEnd <= layout.offsets[b] || bEnd <= layout.offsets[a])
          << "buffers " << a << " and " << b << " share bytes while both live";
    }
  }
}

TEST(PlanMemory, LiveBuffersNeverShareBytes) {
  std::mt19937 rng(11);
  for (int round = 0; round < 50; ++round) {
    auto buffers = randomBuffers(rng, 200, 60);
    expectNoSharedBytesWhileLive(buffers, placeByLiveness(buffers));
  }
}

TEST(PlanMemory, OffsetsAndArenaAreAligned) {
  // Three 1-byte buffers live together: each takes 64 bytes.
  std::vector<LiveBuffer> buffers = {{1, 0, 2}, {1, 1, 3}, {1, 2, 4}};
  ArenaLayout layout = placeByLiveness(buffers);
  EXPECT_EQ(layout.offsets, (std::vector<uint64_t>{0, 64, 128}));
  EXPECT_EQ(layout.bytes, 192u);
  std::mt19937 rng(5);
  auto random = randomBuffers(rng, 300, 40);
  layout = placeByLiveness(random);
  for (uint64_t offset : layout.offsets)
    EXPECT_EQ(offset % kArenaAlign, 0u);
  EXPECT_EQ(layout.bytes % kArenaAlign, 0u);
}

TEST(PlanMemory, BuffersLiveAtDifferentTimesShare) {
  // a [0,1] and b [2,3] share offset 0; c [1,2] overlaps both and goes above the larger.
  std::vector<LiveBuffer> buffers = {{4096, 0, 1}, {1024, 2, 3}, {512, 1, 2}};
  ArenaLayout layout = placeByLiveness(buffers);
  EXPECT_EQ(layout.offsets, (std::vector<uint64_t>{0, 0, 4096}));
  EXPECT_EQ(layout.bytes, 4096u + 512u);
  // A gap between two placed buffers, free from instruction 5 on, is used when it fits.
  buffers = {{4096, 0, 9}, {4096, 0, 4}, {4096, 0, 9}, {2048, 5, 9}};
  layout = placeByLiveness(buffers);
  EXPECT_EQ(layout.offsets, (std::vector<uint64_t>{0, 4096, 8192, 4096}));
  EXPECT_EQ(layout.bytes, 12288u);
}

TEST(PlanMemory, SameOffsetsAsTheQuadraticScan) {
  std::mt19937 rng(3);
  for (int round = 0; round < 300; ++round) {
    int span = 1 + int(rng() % 80);
    auto buffers = randomBuffers(rng, int(rng() % 400), span);
    ArenaLayout layout = placeByLiveness(buffers), reference = referencePlacement(buffers);
    ASSERT_EQ(layout.offsets, reference.offsets) << "round " << round;
    ASSERT_EQ(layout.bytes, reference.bytes) << "round " << round;
  }
  // A training step's shape: layers of equal-sized activations kept for the backward
  // pass, temporaries inside each layer, the backward pass in reverse.
  std::vector<LiveBuffer> step;
  int layers = 24, perLayer = 12, forwardEnd = layers * perLayer;
  for (int l = 0; l < layers; ++l)
    for (int k = 0; k < perLayer; ++k) {
      int t = l * perLayer + k;
      if (k % 3 == 0) // kept for the backward pass of this layer
        step.push_back({1 << 20, t, 2 * forwardEnd - t});
      else
        step.push_back({uint64_t(k) << 16, t, t + 1});
      step.push_back({uint64_t(k + 1) << 15, 2 * forwardEnd - t - 1, 2 * forwardEnd - t});
    }
  ArenaLayout layout = placeByLiveness(step), reference = referencePlacement(step);
  EXPECT_EQ(layout.offsets, reference.offsets);
  EXPECT_EQ(layout.bytes, reference.bytes);
  expectNoSharedBytesWhileLive(step, layout);
}

TEST(PlanMemory, ProgramLivenessFollowsAliasesAndKeepsTheLoss) {
  // x = input; a = op(x); v = view(a); b = op(v); loss = op(b); c = op(x) after it.
  ExecProgram p;
  auto buffer = [&](BufferKind kind, int64_t elements, int aliasOf = -1) {
    ExecBuffer b;
    b.name = "%" + std::to_string(p.buffers.size());
    b.shape = {elements};
    b.kind = kind;
    b.aliasOf = aliasOf;
    p.buffers.push_back(b);
    return int(p.buffers.size()) - 1;
  };
  int x = buffer(BufferKind::Input, 16);
  int a = buffer(BufferKind::Arena, 64);
  int v = buffer(BufferKind::Alias, 64, a);
  int b = buffer(BufferKind::Arena, 64);
  int loss = buffer(BufferKind::Arena, 1);
  int c = buffer(BufferKind::Arena, 64);
  auto op = [&](std::vector<int> in, std::vector<int> out) {
    ExecInstruction i;
    i.kernel = "op";
    i.inputs = std::move(in);
    i.outputs = std::move(out);
    p.instructions.push_back(i);
  };
  op({x}, {a});    // 0
  op({v}, {b});    // 1: a lives through its view
  op({b}, {loss}); // 2
  op({x}, {c});    // 3: a and b are dead, the loss is not
  p.loss = loss;
  planMemory(p);
  EXPECT_EQ(p.buffers[x].offset, 0u); // not in the arena
  EXPECT_NE(p.buffers[a].offset, p.buffers[b].offset);
  EXPECT_EQ(p.buffers[c].offset, p.buffers[a].offset); // a's bytes, free again
  EXPECT_NE(p.buffers[loss].offset, p.buffers[c].offset);
  EXPECT_EQ(p.arenaBytes, 256u + 256u + 64u);
}

TEST(PlanMemory, BuffersPastTwoToTheSixtyTwoBytesAreMarkedUnplaceable) {
  // 2^18 live f32 buffers of 2^46 elements (256 TiB each) total 2^66 bytes: the offsets
  // would wrap uint64. The planner marks the arena as too large instead, for lowering to
  // refuse (issue 12, item 6).
  ExecProgram p;
  ExecInstruction write;
  write.kernel = "op";
  for (int i = 0; i < (1 << 18); ++i) {
    ExecBuffer b;
    b.shape = {int64_t(1) << 46};
    b.kind = BufferKind::Arena;
    p.buffers.push_back(b);
    write.outputs.push_back(i);
  }
  p.instructions.push_back(write);
  p.loss = 0;
  planMemory(p);
  EXPECT_EQ(p.arenaBytes, UINT64_MAX);
}

} // namespace
} // namespace apc::lowering
