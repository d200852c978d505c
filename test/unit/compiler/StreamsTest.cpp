// Streams and events (compiler/lowering/Streams.h): which collectives go on the
// communication stream, the events that order their accesses, the spans within which
// they may run, and planMemory keeping their buffers apart from concurrent ones. Every
// program is also checked by the runtime's own event check (EventDiscipline.h) with the
// arena offsets planMemory gave, so the two sides agree.
#include "compiler/lowering/Streams.h"

#include "compiler/lowering/PlanMemory.h"
#include "runtime/exec/EventDiscipline.h"

#include <gtest/gtest.h>

#include <vector>

namespace apc::lowering {
namespace {

// A [dp 2, tp 2] program of f32[1024] arena buffers b0.. and instructions given by kernel,
// inputs, outputs, pass and mesh axes (collectives).
struct Builder {
  ExecProgram p;
  explicit Builder(int buffers) {
    p.meshShape = {2, 2};
    p.meshAxes = {"dp", "tp"};
    for (int b = 0; b < buffers; ++b) {
      ExecBuffer buffer;
      buffer.name = "b" + std::to_string(b);
      buffer.shape = {1024};
      p.buffers.push_back(buffer);
    }
  }
  int add(const char *kernel, std::vector<int> in, std::vector<int> out, Pass pass,
          std::vector<int64_t> axes = {}) {
    ExecInstruction inst;
    inst.kernel = kernel;
    inst.inputs = std::move(in);
    inst.outputs = std::move(out);
    inst.pass = pass;
    if (!axes.empty()) {
      ExecAttribute a;
      a.name = "axes";
      a.kind = ExecAttribute::Kind::Ints;
      a.ints = std::move(axes);
      inst.attributes.push_back(a);
    }
    p.instructions.push_back(inst);
    return int(p.instructions.size()) - 1;
  }
};

// The runtime's check on the program as planMemory laid it out (arena offsets as
// addresses: buffers that share bytes overlap).
Status runtimeCheck(const ExecProgram &p) {
  std::vector<exec::StreamedInstruction> streamed;
  for (const ExecInstruction &inst : p.instructions) {
    exec::StreamedInstruction s;
    s.kernel = inst.kernel;
    s.stream = inst.stream;
    s.waits = inst.waits;
    s.records = inst.records;
    for (int pass = 0; pass < 2; ++pass)
      for (int b : pass == 0 ? inst.inputs : inst.outputs) {
        kernels::TensorView v;
        v.data = reinterpret_cast<void *>(uintptr_t(0x10000) + p.buffers[size_t(b)].offset);
        v.dtype = p.buffers[size_t(b)].dtype;
        v.shape = p.buffers[size_t(b)].shape;
        (pass == 0 ? s.reads : s.writes).push_back(v);
        (pass == 0 ? s.readNames : s.writeNames).push_back(p.buffers[size_t(b)].name);
      }
    streamed.push_back(s);
  }
  return exec::checkEventDiscipline(streamed, p.numEvents);
}

TEST(Streams, DataParallelCollectivesOverlapTheComputeAfterThem) {
  Builder b(8);
  int g = b.add("gemm", {0}, {1}, Pass::Backward);               // a gradient
  int r = b.add("all_reduce", {1}, {2}, Pass::Backward, {0});    // its dp reduction
  int other = b.add("gemm", {3}, {4}, Pass::Backward);           // independent compute
  int tp = b.add("all_reduce", {4}, {5}, Pass::Backward, {1});   // a tp reduction
  int update = b.add("adamw", {2}, {6}, Pass::Step);             // reads the reduced gradient
  assignStreams(b.p);
  const auto &in = b.p.instructions;
  EXPECT_EQ(in[size_t(g)].stream, kComputeStream);
  EXPECT_EQ(in[size_t(r)].stream, kCommunicationStream);
  EXPECT_EQ(in[size_t(tp)].stream, kComputeStream) << "tensor-parallel reductions never hide";
  // The reduction waits for the gemm that made its input; the update waits for it; the
  // independent gemm and the tp reduction wait for nothing.
  ASSERT_EQ(in[size_t(r)].waits.size(), 1u);
  EXPECT_EQ(in[size_t(r)].waits[0], in[size_t(g)].records);
  EXPECT_TRUE(in[size_t(other)].waits.empty());
  EXPECT_TRUE(in[size_t(tp)].waits.empty());
  ASSERT_EQ(in[size_t(update)].waits.size(), 1u);
  EXPECT_EQ(in[size_t(update)].waits[0], in[size_t(r)].records);
  EXPECT_EQ(b.p.numEvents, 2);
  // The reduction may run from the gemm it waited for to the update that waits for it.
  std::vector<RunSpan> spans = runSpans(b.p);
  EXPECT_EQ(spans[size_t(r)].from, g);
  EXPECT_EQ(spans[size_t(r)].to, update);
  EXPECT_EQ(spans[size_t(other)].from, other);
  EXPECT_EQ(spans[size_t(other)].to, other);
  // So its buffers share no bytes with the gemm and tp reduction running beside it.
  planMemory(b.p);
  auto overlaps = [&](int x, int y) {
    uint64_t a = b.p.buffers[size_t(x)].offset, c = b.p.buffers[size_t(y)].offset;
    return a < c + 4096 && c < a + 4096;
  };
  for (int concurrent : {3, 4, 5})
    for (int mine : {1, 2})
      EXPECT_FALSE(overlaps(mine, concurrent)) << "b" << mine << " and b" << concurrent;
  EXPECT_TRUE(runtimeCheck(b.p)) << runtimeCheck(b.p).message();
}

TEST(Streams, AtMostTwoCollectivesAreInFlight) {
  // Three gradient buckets reduce-scattered as the backward completes them; nothing reads
  // the shards before the update. Compute past the second bucket's issue waits for the
  // first, so the first bucket's full-size input dies there, not at the update.
  Builder b(12);
  int g0 = b.add("gemm", {0}, {1}, Pass::Backward);
  int r0 = b.add("reduce_scatter", {1}, {2}, Pass::Backward, {0});
  b.add("gemm", {3}, {4}, Pass::Backward);
  int r1 = b.add("reduce_scatter", {4}, {5}, Pass::Backward, {0});
  int after1 = b.add("gemm", {6}, {7}, Pass::Backward);
  int r2 = b.add("reduce_scatter", {7}, {8}, Pass::Backward, {0});
  int after2 = b.add("gemm", {9}, {10}, Pass::Backward);
  b.add("adamw", {2, 5, 8}, {11}, Pass::Step);
  assignStreams(b.p);
  const auto &in = b.p.instructions;
  for (int r : {r0, r1, r2})
    EXPECT_EQ(in[size_t(r)].stream, kCommunicationStream);
  ASSERT_EQ(in[size_t(after1)].waits.size(), 1u);
  EXPECT_EQ(in[size_t(after1)].waits[0], in[size_t(r0)].records);
  ASSERT_EQ(in[size_t(after2)].waits.size(), 1u);
  EXPECT_EQ(in[size_t(after2)].waits[0], in[size_t(r1)].records);
  std::vector<RunSpan> spans = runSpans(b.p);
  EXPECT_EQ(spans[size_t(r0)].from, g0);
  EXPECT_EQ(spans[size_t(r0)].to, after1);
  EXPECT_EQ(spans[size_t(r1)].to, after2);
  planMemory(b.p);
  EXPECT_TRUE(runtimeCheck(b.p)) << runtimeCheck(b.p).message();
}

TEST(Streams, GathersAfterTheUpdatesFirstKernelStayOnTheComputeStream) {
  Builder b(6);
  int before = b.add("all_reduce", {0}, {1}, Pass::Step, {0});
  b.add("grad_norm", {1}, {2}, Pass::Step);
  int after = b.add("all_gather", {3}, {4}, Pass::Step, {0});
  assignStreams(b.p);
  EXPECT_EQ(b.p.instructions[size_t(before)].stream, kCommunicationStream);
  EXPECT_EQ(b.p.instructions[size_t(after)].stream, kComputeStream);
}

TEST(Streams, WritesWaitForReadersOnTheOtherStream) {
  // The communication stream reads b1; a later compute instruction overwrites b1 in place:
  // it must wait for the read (write after read), and a later read of the collective's
  // output by compute waits too, with one wait covering both.
  Builder b(4);
  b.add("gemm", {0}, {1}, Pass::Backward);
  int r = b.add("all_reduce", {1}, {2}, Pass::Backward, {0});
  int overwrite = b.add("mul", {3}, {1}, Pass::Backward);
  int read = b.add("add", {2, 1}, {3}, Pass::Backward);
  assignStreams(b.p);
  const auto &in = b.p.instructions;
  ASSERT_EQ(in[size_t(overwrite)].waits.size(), 1u);
  EXPECT_EQ(in[size_t(overwrite)].waits[0], in[size_t(r)].records);
  EXPECT_TRUE(in[size_t(read)].waits.empty()) << "already ordered after the reduction";
  planMemory(b.p);
  EXPECT_TRUE(runtimeCheck(b.p)) << runtimeCheck(b.p).message();
  // Without the wait the runtime's check finds the race.
  b.p.instructions[size_t(overwrite)].waits.clear();
  Status race = runtimeCheck(b.p);
  ASSERT_FALSE(race);
  EXPECT_NE(race.message().find("instruction 2 ('mul', stream 0) writes 'b1' while instruction 1 "
                                "('all_reduce', stream 1) reads 'b1'"),
            std::string::npos)
      << race.message();
}

} // namespace
} // namespace apc::lowering
