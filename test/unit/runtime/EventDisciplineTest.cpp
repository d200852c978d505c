// The executor's check of streams and events (runtime/exec/EventDiscipline.h) on
// hand-made programs: accesses to the same bytes from two streams must be ordered by a
// chain of events (direct or through other instructions), whichever buffers name those
// bytes; waits need an earlier record.
#include "runtime/exec/EventDiscipline.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace apc::exec {
namespace {

// A view of `floats` floats at byte `offset` of a pretend address space.
kernels::TensorView at(uint64_t offset, int64_t floats) {
  kernels::TensorView v;
  v.data = reinterpret_cast<void *>(uintptr_t(0x100000) + offset);
  v.dtype = DType::F32;
  v.shape = {floats};
  return v;
}

StreamedInstruction inst(const char *kernel, int stream, std::vector<kernels::TensorView> reads,
                         std::vector<kernels::TensorView> writes, std::vector<int> waits = {},
                         int records = -1) {
  StreamedInstruction s;
  s.kernel = kernel;
  s.stream = stream;
  s.reads = std::move(reads);
  s.writes = std::move(writes);
  for (size_t i = 0; i < s.reads.size(); ++i)
    s.readNames.push_back("r" + std::to_string(i));
  for (size_t i = 0; i < s.writes.size(); ++i)
    s.writeNames.push_back("w" + std::to_string(i));
  s.waits = std::move(waits);
  s.records = records;
  return s;
}

TEST(EventDiscipline, OrderedAccessesPass) {
  // compute writes A, records e0; comm waits e0, reads A, writes B, records e1; compute
  // waits e1 and reads B.
  std::vector<StreamedInstruction> p = {
      inst("gemm", 0, {}, {at(0, 16)}, {}, 0),
      inst("all_reduce", 1, {at(0, 16)}, {at(64, 16)}, {0}, 1),
      inst("adamw", 0, {at(64, 16)}, {at(128, 16)}, {1}),
  };
  EXPECT_TRUE(checkEventDiscipline(p, 2));
}

TEST(EventDiscipline, AReadOfMemoryTheOtherStreamWritesIsARace) {
  std::vector<StreamedInstruction> p = {
      inst("gemm", 0, {}, {at(0, 16)}, {}, 0),
      inst("all_reduce", 1, {at(0, 16)}, {at(64, 16)}, {0}, 1),
      inst("adamw", 0, {at(64, 16)}, {at(128, 16)}), // forgot to wait for e1
  };
  Status s = checkEventDiscipline(p, 2);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("instruction 2 ('adamw', stream 0) reads 'r0' while instruction 1 "
                             "('all_reduce', stream 1) writes 'w0' (the same bytes) with no "
                             "event between them"),
            std::string::npos)
      << s.message();
}

TEST(EventDiscipline, OverlappingBytesOfDifferentBuffersConflict) {
  // The arena gave a compute temporary bytes [32, 96) that overlap the collective's input
  // [0, 64): reusing them before the collective is known to be done is a race.
  std::vector<StreamedInstruction> p = {
      inst("gemm", 0, {}, {at(0, 16)}, {}, 0),
      inst("all_reduce", 1, {at(0, 16)}, {at(256, 16)}, {0}),
      inst("silu", 0, {}, {at(32, 16)}),
  };
  EXPECT_FALSE(checkEventDiscipline(p, 1));
  p[2].writes = {at(64, 16)}; // adjacent, not overlapping
  EXPECT_TRUE(checkEventDiscipline(p, 1));
  // Two reads never conflict.
  p[2] = inst("silu", 0, {at(0, 16)}, {at(512, 16)});
  EXPECT_TRUE(checkEventDiscipline(p, 1));
}

TEST(EventDiscipline, OrderingIsTransitive) {
  // comm c0 writes A (records e0); compute k waits e0 (records e1); comm c1 waits e1 and
  // then compute k2 waits for c1's e2: k2 may touch A, ordered after c0 through e2's chain.
  std::vector<StreamedInstruction> p = {
      inst("all_gather", 1, {}, {at(0, 16)}, {}, 0),
      inst("cast", 0, {at(0, 16)}, {at(64, 16)}, {0}, 1),
      inst("all_gather", 1, {}, {at(128, 16)}, {1}, 2),
      inst("add", 0, {at(128, 16)}, {at(0, 16)}, {2}),
  };
  EXPECT_TRUE(checkEventDiscipline(p, 3));
}

TEST(EventDiscipline, RefusesWaitsForEventsNotYetRecordedAndBadRecords) {
  std::vector<StreamedInstruction> p = {inst("gemm", 0, {}, {at(0, 4)}, {0}),
                                        inst("all_reduce", 1, {}, {at(64, 4)}, {}, 0)};
  Status s = checkEventDiscipline(p, 1);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("instruction 0 ('gemm', stream 0) waits for event 0, which no "
                             "earlier instruction records"),
            std::string::npos)
      << s.message();
  p = {inst("gemm", 0, {}, {at(0, 4)}, {}, 0), inst("gemm", 0, {}, {at(64, 4)}, {}, 0)};
  EXPECT_FALSE(checkEventDiscipline(p, 1));
  p = {inst("gemm", 2, {}, {at(0, 4)})};
  EXPECT_FALSE(checkEventDiscipline(p, 0));
}

} // namespace
} // namespace apc::exec
