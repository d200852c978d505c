// The executor's send and recv instructions on meshes of ranks run as threads with
// in-process communicators: activations forward and gradients back along one axis,
// neighbours that both send first, any dtype, buffers reused across steps, failures at
// run time (a mismatched size, a silent peer) and the refusals at creation.
#include "runtime/exec/Executor.h"

#include "runtime/plan/PlanLoader.h"
#include "runtime/support/MeshCoordinates.h"
#include "test/unit/runtime/PlanBuilder.h"
#include "test/unit/runtime/ThreadCommunicator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <limits>

namespace apc::exec {
namespace {

using apc::testing::AttributeSpec;
using apc::testing::PlanSpec;
using apc::testing::ProgramSpec;
using apc::testing::runRanks;
using apc::testing::ThreadMesh;
using plan::DType;
using namespace std::chrono_literals;

// Buffers 0-4 are the standard inputs; a program's own buffers start here.
constexpr int kFirst = 5;

// One program per coordinate on mesh axis `ppAxis` (named "pp"; -1: one program for
// every device). `fill(device, program)` fills the program of a stage, given the stage's
// first device (coordinate 0 on every other axis).
std::string planWith(const std::vector<int64_t> &mesh,
                     const std::function<void(int device, ProgramSpec &)> &fill,
                     int ppAxis = -1) {
  PlanSpec spec;
  spec.mesh = mesh;
  spec.parameters = {{"w", {2}}};
  int stages = 1, stride = 1;
  if (ppAxis >= 0) {
    for (size_t a = 0; a < mesh.size(); ++a)
      spec.axisNames.push_back(int(a) == ppAxis ? "pp" : a == 0 ? "dp" : "axis" + std::to_string(a));
    stages = int(mesh[size_t(ppAxis)]);
    for (size_t a = size_t(ppAxis) + 1; a < mesh.size(); ++a)
      stride *= int(mesh[a]);
  }
  for (int stage = 0; stage < stages; ++stage) {
    ProgramSpec program;
    program.stage = stage;
    program.addStandardInputs(spec);
    fill(stage * stride, program);
    spec.programs.push_back(program);
  }
  return spec.build();
}

AttributeSpec axes(int64_t a) { return AttributeSpec::Ints("axes", {a}); }
AttributeSpec offset(int64_t k) { return AttributeSpec::Int("peer_offset", k); }
AttributeSpec tag(int64_t t) { return AttributeSpec::Int("tag", t); }

std::vector<std::vector<int64_t>> allAxisSets(size_t rank) {
  std::vector<std::vector<int64_t>> sets;
  for (size_t a = 0; a < rank; ++a)
    sets.push_back({int64_t(a)});
  return sets;
}

// Runs every device's executor on a thread: before(rank, exec), `steps` steps, then
// after(rank, exec).
void runPlan(const std::string &bytes, const std::vector<int64_t> &mesh,
             const std::function<void(int, Executor &, int step)> &before,
             const std::function<void(int, Executor &, int step)> &after, int steps = 1) {
  auto loaded = plan::LoadedPlan::fromBytes(bytes, "p2p.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  ThreadMesh threads(mesh, allAxisSets(mesh.size()));
  runRanks(threads.size(), [&](int rank) {
    auto exec = Executor::create(loaded->plan(), rank, cpuBackend(), {}, threads.lookup(rank));
    ASSERT_TRUE(exec.isOk()) << exec.message();
    for (int step = 0; step < steps; ++step) {
      before(rank, **exec, step);
      Status s = (*exec)->step();
      ASSERT_TRUE(s.isOk()) << "rank " << rank << ": " << s.message();
      after(rank, **exec, step);
    }
  });
}

float value(int rank, int step, int i, int which) {
  return float(rank * 1000 + step * 100 + i) + 0.25f * float(which);
}

// A pipeline along axis 1 of [2, 2]: coordinate 0 sends its activation forward (tag 0)
// and receives the gradient back (tag 1); coordinate 1 receives the activation, then
// sends a gradient of its own. Three steps reuse the buffers.
TEST(ExecutorSendRecv, ForwardAndBackAlongAnAxis) {
  const std::vector<int64_t> mesh = {2, 2};
  std::string bytes = planWith(mesh, [&](int device, ProgramSpec &p) {
    int x = p.arena("x", DType::F32, {2, 3}); // kFirst: sent (coordinate 0) or received
    int g = p.arena("g", DType::F32, {2, 3}); // kFirst + 1: received back or sent back
    if (coordinatesOf(device, mesh)[1] == 0) {
      p.call("send", {x}, {}, {axes(1), offset(+1)});
      p.call("recv", {}, {g}, {axes(1), offset(+1), tag(1)});
    } else {
      p.call("recv", {}, {x}, {axes(1), offset(-1), tag(0)});
      p.call("send", {g}, {}, {axes(1), offset(-1), tag(1)});
    }
  }, /*ppAxis=*/1);
  runPlan(
      bytes, mesh,
      [&](int rank, Executor &e, int step) {
        for (int i = 0; i < 6; ++i) {
          e.buffer(kFirst).as<float>()[i] = rank % 2 == 0 ? value(rank, step, i, 0) : -1.0f;
          e.buffer(kFirst + 1).as<float>()[i] = rank % 2 == 1 ? value(rank, step, i, 1) : -1.0f;
        }
      },
      [&](int rank, Executor &e, int step) {
        int peer = rank % 2 == 0 ? rank + 1 : rank - 1;
        for (int i = 0; i < 6; ++i) {
          if (rank % 2 == 0)
            ASSERT_EQ(e.buffer(kFirst + 1).as<float>()[i], value(peer, step, i, 1))
                << "rank " << rank << " step " << step << " gradient " << i;
          else
            ASSERT_EQ(e.buffer(kFirst).as<float>()[i], value(peer, step, i, 0))
                << "rank " << rank << " step " << step << " activation " << i;
        }
      },
      3);
}

// Along axis 0 of [2, 2], both neighbours send first (bf16 and i64), then receive.
TEST(ExecutorSendRecv, NeighboursBothSendFirst) {
  const std::vector<int64_t> mesh = {2, 2};
  std::string bytes = planWith(mesh, [&](int device, ProgramSpec &p) {
    int k = coordinatesOf(device, mesh)[0] == 0 ? +1 : -1;
    int a = p.arena("a", DType::BF16, {3, 5});
    int b = p.arena("b", DType::I64, {4});
    int ra = p.arena("ra", DType::BF16, {3, 5});
    int rb = p.arena("rb", DType::I64, {4});
    p.call("send", {a}, {}, {axes(0), offset(k), tag(7)});
    p.call("send", {b}, {}, {axes(0), offset(k), tag(8)});
    p.call("recv", {}, {rb}, {axes(0), offset(k), tag(8)});
    p.call("recv", {}, {ra}, {axes(0), offset(k), tag(7)});
  }, /*ppAxis=*/0);
  auto bf16 = [](int rank, int step, int i) { return uint16_t(rank * 977 + step * 31 + i); };
  auto i64 = [](int rank, int step, int i) { return (int64_t(rank) << 40) + step * 7 - i; };
  runPlan(
      bytes, mesh,
      [&](int rank, Executor &e, int step) {
        for (int i = 0; i < 15; ++i)
          e.buffer(kFirst).as<uint16_t>()[i] = bf16(rank, step, i);
        for (int i = 0; i < 4; ++i)
          e.buffer(kFirst + 1).as<int64_t>()[i] = i64(rank, step, i);
      },
      [&](int rank, Executor &e, int step) {
        int peer = rank < 2 ? rank + 2 : rank - 2;
        for (int i = 0; i < 15; ++i)
          ASSERT_EQ(e.buffer(kFirst + 2).as<uint16_t>()[i], bf16(peer, step, i)) << rank;
        for (int i = 0; i < 4; ++i)
          ASSERT_EQ(e.buffer(kFirst + 3).as<int64_t>()[i], i64(peer, step, i)) << rank;
      },
      2);
}

// A [1, 2] mesh: a one-device axis 0 and two stages on axis 1.
TEST(ExecutorSendRecv, OneByTwoMesh) {
  const std::vector<int64_t> mesh = {1, 2};
  std::string bytes = planWith(mesh, [&](int device, ProgramSpec &p) {
    int x = p.arena("x", DType::F32, {8});
    if (device == 0)
      p.call("send", {x}, {}, {axes(1), offset(1), tag(3)});
    else
      p.call("recv", {}, {x}, {axes(1), offset(-1), tag(3)});
  }, /*ppAxis=*/1);
  runPlan(
      bytes, mesh,
      [&](int rank, Executor &e, int) {
        for (int i = 0; i < 8; ++i)
          e.buffer(kFirst).as<float>()[i] = rank == 0 ? value(0, 0, i, 0) : 0.0f;
      },
      [&](int, Executor &e, int) {
        for (int i = 0; i < 8; ++i)
          EXPECT_EQ(e.buffer(kFirst).as<float>()[i], value(0, 0, i, 0));
      });
}

// ---- Failures while running ----

// Runs one step on the two devices of a [1, 2] mesh (communicator timeout 300 ms);
// returns device 1's error.
std::string stepError(const std::function<void(int device, ProgramSpec &)> &fill) {
  const std::vector<int64_t> mesh = {1, 2};
  auto loaded = plan::LoadedPlan::fromBytes(planWith(mesh, fill, /*ppAxis=*/1), "p2p.fb");
  EXPECT_TRUE(loaded.isOk()) << loaded.message();
  if (!loaded.isOk())
    return "";
  ThreadMesh threads(mesh, {{1}}, 300ms);
  std::string error;
  runRanks(2, [&](int rank) {
    auto exec = Executor::create(loaded->plan(), rank, cpuBackend(), {}, threads.lookup(rank));
    ASSERT_TRUE(exec.isOk()) << exec.message();
    Status s = (*exec)->step();
    if (rank == 1) {
      EXPECT_FALSE(s.isOk()) << "the step succeeded";
      error = s.message();
    }
  });
  return error;
}

TEST(ExecutorSendRecv, SizeMismatchFailsTheStep) {
  std::string error = stepError([](int device, ProgramSpec &p) {
    if (device == 0)
      p.call("send", {p.arena("x", DType::F32, {4})}, {}, {axes(1), offset(1)});
    else
      p.call("recv", {}, {p.arena("x", DType::F32, {3})}, {axes(1), offset(-1)});
  });
  EXPECT_NE(error.find("instruction 0 ('recv'): "), std::string::npos) << error;
  EXPECT_NE(error.find("rank 0 sent 16 bytes with tag 0 but this rank receives 12"),
            std::string::npos)
      << error;
}

TEST(ExecutorSendRecv, SilentPeerFailsTheStepWithinTheTimeout) {
  std::string error = stepError([](int device, ProgramSpec &p) {
    int x = p.arena("x", DType::F32, {4});
    if (device == 1)
      p.call("recv", {}, {x}, {axes(1), offset(-1), tag(2)});
    else // sends with another tag
      p.call("send", {x}, {}, {axes(1), offset(1), tag(1)});
  });
  EXPECT_NE(error.find("instruction 0 ('recv'): recv from rank 0 (tag 2)"), std::string::npos)
      << error;
  EXPECT_NE(error.find("rank 0 sent nothing within 300 ms"), std::string::npos) << error;
}

// ---- Refusals at creation ----

struct Call {
  std::string kernel;
  int inputs = 0, outputs = 0;
  std::vector<AttributeSpec> attributes;
};

// The instruction on every device of [2, 2]; the error creating `device`'s executor.
std::string refusal(const Call &call, int device = 0, bool withGroups = true) {
  const std::vector<int64_t> mesh = {2, 2};
  auto fill = [&](int, ProgramSpec &p) {
    std::vector<int> in, out;
    for (int i = 0; i < call.inputs; ++i)
      in.push_back(p.arena("in", DType::F32, {4}));
    for (int i = 0; i < call.outputs; ++i)
      out.push_back(p.arena("out", DType::F32, {4}));
    p.call(call.kernel, in, out, call.attributes);
  };
  auto loaded = plan::LoadedPlan::fromBytes(planWith(mesh, fill), "p2p.fb");
  EXPECT_TRUE(loaded.isOk()) << loaded.message();
  if (!loaded.isOk())
    return "";
  ThreadMesh threads(mesh, allAxisSets(2));
  auto exec = Executor::create(loaded->plan(), device, cpuBackend(), {},
                               withGroups ? threads.lookup(device) : GroupLookup());
  EXPECT_FALSE(exec.isOk()) << "accepted";
  return exec.isOk() ? "" : exec.message();
}

TEST(ExecutorSendRecvRefusals, PeerOffsetOutsideTheAxis) {
  // device 0 is at coordinate 0 on both axes, device 3 at coordinate 1.
  EXPECT_EQ(refusal({"send", 1, 0, {axes(1), offset(-1)}}, 0),
            "instruction 0 ('send'): peer_offset -1 from coordinate 0 on mesh axis 1 (of size 2) "
            "is outside the axis");
  EXPECT_EQ(refusal({"recv", 0, 1, {axes(0), offset(+1)}}, 3),
            "instruction 0 ('recv'): peer_offset +1 from coordinate 1 on mesh axis 0 (of size 2) "
            "is outside the axis");
  EXPECT_EQ(refusal({"send", 1, 0, {axes(0), offset(+2)}}, 0),
            "instruction 0 ('send'): peer_offset +2 from coordinate 0 on mesh axis 0 (of size 2) "
            "is outside the axis");
  EXPECT_NE(refusal({"send", 1, 0, {axes(0), offset(std::numeric_limits<int64_t>::min())}}, 3)
                .find("is outside the axis"),
            std::string::npos);
  EXPECT_NE(refusal({"send", 1, 0, {axes(0), offset(std::numeric_limits<int64_t>::max())}}, 0)
                .find("is outside the axis"),
            std::string::npos);
  EXPECT_EQ(refusal({"recv", 0, 1, {axes(1), offset(0)}}),
            "instruction 0 ('recv'): peer_offset 0 names this device itself");
}

TEST(ExecutorSendRecvRefusals, Attributes) {
  EXPECT_EQ(refusal({"send", 1, 0, {offset(1)}}),
            "instruction 0 ('send'): a collective needs an Ints attribute 'axes' naming its mesh "
            "axes");
  EXPECT_EQ(refusal({"recv", 0, 1, {AttributeSpec::Ints("axes", {0, 1}), offset(1)}}),
            "instruction 0 ('recv'): runs over exactly one mesh axis, but 'axes' is [0, 1]");
  const std::string noOffset = "needs an Int attribute 'peer_offset' (the peer's coordinate on "
                               "mesh axis 1 minus this device's)";
  EXPECT_EQ(refusal({"send", 1, 0, {axes(1)}}), "instruction 0 ('send'): " + noOffset);
  EXPECT_EQ(refusal({"send", 1, 0, {axes(1), AttributeSpec::Ints("peer_offset", {1})}}),
            "instruction 0 ('send'): " + noOffset);
  const std::string badTag = "instruction 0 ('recv'): attribute 'tag' must be an Int from 0 to "
                             "4294967295";
  EXPECT_EQ(refusal({"recv", 0, 1, {axes(1), offset(1), tag(-1)}}), badTag);
  EXPECT_EQ(refusal({"recv", 0, 1, {axes(1), offset(1), tag(int64_t(1) << 32)}}), badTag);
  EXPECT_EQ(refusal({"recv", 0, 1, {axes(1), offset(1), AttributeSpec::String("tag", "x")}}),
            badTag);
}

TEST(ExecutorSendRecvRefusals, OperandCounts) {
  EXPECT_EQ(refusal({"send", 0, 0, {axes(1), offset(1)}}),
            "instruction 0 ('send'): takes one input and no outputs, not 0 and 0");
  EXPECT_EQ(refusal({"send", 1, 1, {axes(1), offset(1)}}),
            "instruction 0 ('send'): takes one input and no outputs, not 1 and 1");
  EXPECT_EQ(refusal({"send", 2, 0, {axes(1), offset(1)}}),
            "instruction 0 ('send'): takes one input and no outputs, not 2 and 0");
  EXPECT_EQ(refusal({"recv", 1, 1, {axes(1), offset(1)}}),
            "instruction 0 ('recv'): takes no inputs and one output, not 1 and 1");
  EXPECT_EQ(refusal({"recv", 0, 0, {axes(1), offset(1)}}),
            "instruction 0 ('recv'): takes no inputs and one output, not 0 and 0");
  EXPECT_EQ(refusal({"recv", 0, 2, {axes(1), offset(1)}}),
            "instruction 0 ('recv'): takes no inputs and one output, not 0 and 2");
}

TEST(ExecutorSendRecvRefusals, NoCommunicator) {
  EXPECT_EQ(refusal({"send", 1, 0, {axes(1), offset(1)}}, 0, /*withGroups=*/false),
            "instruction 0 ('send'): a collective, but this run has no communicator for it "
            "(launch the plan's devices with aprun --nproc N or torchrun)");
}

TEST(ExecutorSendRecv, AreCollectivesOfTheExecutor) {
  for (const char *k : {"all_reduce", "all_gather", "reduce_scatter", "all_slice", "send", "recv"})
    EXPECT_TRUE(isCollectiveKernel(k)) << k;
  for (const char *k : {"add", "matmul", "sendrecv", ""})
    EXPECT_FALSE(isCollectiveKernel(k)) << k;
}

} // namespace
} // namespace apc::exec
