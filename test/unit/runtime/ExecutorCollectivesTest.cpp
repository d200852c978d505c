// The executor's collectives (all_reduce sum/max, all_gather, reduce_scatter,
// all_slice) on a [2, 2] mesh of ranks run as threads with in-process communicators:
// results against values computed independently from each rank's inputs, dims other
// than the first, bf16 and i64 data, and the refusals at creation.
#include "runtime/exec/Executor.h"

#include "runtime/plan/PlanLoader.h"
#include "test/unit/runtime/PlanBuilder.h"
#include "test/unit/runtime/TensorIndex.h"
#include "test/unit/runtime/ThreadCommunicator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

namespace apc::exec {
namespace {

using apc::testing::AttributeSpec;
using apc::testing::PlanSpec;
using apc::testing::ProgramSpec;
using apc::testing::runRanks;
using apc::testing::ThreadMesh;
using plan::DType;

const std::vector<int64_t> kMesh = {2, 2}; // [dp, tp]: rank = dp * 2 + tp

int64_t coord(int rank, int64_t axis) { return axis == 0 ? rank / 2 : rank % 2; }
// The ranks of `rank`'s group over `axis`, in group-rank order.
std::vector<int> groupOf(int rank, int64_t axis) {
  return axis == 0 ? std::vector<int>{rank % 2, rank % 2 + 2}
                   : std::vector<int>{rank / 2 * 2, rank / 2 * 2 + 1};
}

using apc::testing::product;
using apc::testing::ravel;
using apc::testing::unravel;

size_t elementSize(DType t) {
  return t == DType::I64 ? 8 : t == DType::F32 || t == DType::I32 ? 4 : 2;
}

// The input element `i` of `rank`, as raw bits of the dtype (floats: exact small values).
uint64_t inputBits(DType t, int rank, int64_t i) {
  switch (t) {
  case DType::F32: {
    float f = float(rank * 1000 + i) * 0.5f;
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  }
  case DType::I64:
    return uint64_t(int64_t(rank) << 40 | i) * 3 + 1;
  default:
    return uint64_t((rank * 977 + i * 13) & 0xffff);
  }
}
// The f32 input element `i` of `rank` (inputBits as a float).
float inputF32(int rank, int64_t i) {
  uint32_t bits = uint32_t(inputBits(DType::F32, rank, i));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
// What a sum over `group` gives for element `i`, added in the group's order.
float groupSum(const std::vector<int> &group, int64_t i) {
  float sum = 0;
  for (int source : group)
    sum += inputF32(source, i);
  return sum;
}
void writeBits(void *base, DType t, int64_t i, uint64_t bits) {
  std::memcpy(static_cast<uint8_t *>(base) + size_t(i) * elementSize(t), &bits, elementSize(t));
}
uint64_t readBits(const void *base, DType t, int64_t i) {
  uint64_t bits = 0;
  std::memcpy(&bits, static_cast<const uint8_t *>(base) + size_t(i) * elementSize(t),
              elementSize(t));
  return bits;
}

// One instruction on every rank: input buffer 5, output buffer 6 (kinds as given).
struct OneCall {
  std::string kernel;
  DType dtype = DType::F32;
  std::vector<int64_t> inShape, outShape;
  std::vector<AttributeSpec> attributes;
  plan::BufferKind outKind = plan::BufferKind::Arena;
};

PlanSpec planFor(const OneCall &call) {
  PlanSpec spec;
  spec.mesh = kMesh;
  spec.parameters = {{"w", call.outShape}};
  {
    ProgramSpec program; // every device runs it
    program.addStandardInputs(spec);
    int in = program.arena("in", call.dtype, call.inShape);
    int out = call.outKind == plan::BufferKind::Parameter
                  ? program.parameter(0, call.outShape)
                  : program.arena("out", call.dtype, call.outShape);
    program.call(call.kernel, {in}, {out}, call.attributes);
    spec.programs.push_back(program);
  }
  return spec;
}

// Runs the call on 4 threads; check(rank, output view) on each.
void runOnMesh(const OneCall &call,
               const std::function<void(int, const kernels::TensorView &)> &check) {
  auto loaded = plan::LoadedPlan::fromBytes(planFor(call).build(), "collective.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  ThreadMesh mesh(kMesh, {{0}, {1}, {0, 1}});
  runRanks(4, [&](int rank) {
    auto exec = Executor::create(loaded->plan(), rank, cpuBackend(), {}, mesh.lookup(rank));
    ASSERT_TRUE(exec.isOk()) << exec.message();
    const kernels::TensorView &in = (*exec)->buffer(5);
    for (int64_t i = 0; i < in.numElements(); ++i)
      writeBits(in.data, call.dtype, i, inputBits(call.dtype, rank, i));
    Status s = (*exec)->step();
    ASSERT_TRUE(s.isOk()) << s.message();
    check(rank, (*exec)->buffer(6));
  });
}

// all_gather over `axis` on `dim`: output element at index x comes from group member
// x[dim] / local, its element with x[dim] % local.
void checkAllGather(DType dtype, std::vector<int64_t> inShape, int64_t axis, int64_t dim,
                    plan::BufferKind outKind = plan::BufferKind::Arena) {
  OneCall call{"all_gather", dtype, inShape, inShape,
               {AttributeSpec::Ints("axes", {axis}), AttributeSpec::Int("dim", dim)}, outKind};
  call.outShape[size_t(dim)] *= 2;
  runOnMesh(call, [&](int rank, const kernels::TensorView &out) {
    EXPECT_EQ(out.shape, call.outShape);
    std::vector<int> group = groupOf(rank, axis);
    for (int64_t i = 0; i < product(call.outShape); ++i) {
      std::vector<int64_t> x = unravel(i, call.outShape);
      int source = group[size_t(x[size_t(dim)] / inShape[size_t(dim)])];
      x[size_t(dim)] %= inShape[size_t(dim)];
      ASSERT_EQ(readBits(out.data, dtype, i), inputBits(dtype, source, ravel(x, inShape)))
          << "rank " << rank << " element " << i;
    }
  });
}

TEST(ExecutorCollectives, AllGatherFirstDim) { checkAllGather(DType::F32, {2, 3}, 1, 0); }
TEST(ExecutorCollectives, AllGatherInnerDimBf16) { checkAllGather(DType::BF16, {2, 3}, 0, 1); }
TEST(ExecutorCollectives, AllGatherMiddleDimI64) { checkAllGather(DType::I64, {2, 3, 5}, 1, 1); }
TEST(ExecutorCollectives, AllGatherLastDimF32OverDp) {
  checkAllGather(DType::F32, {3, 2, 4}, 0, 2);
}
TEST(ExecutorCollectives, AllGatherIntoAParameterBuffer) {
  checkAllGather(DType::F32, {2, 6}, 0, 0, plan::BufferKind::Parameter);
}

// reduce_scatter over `axis` on `dim`: output element x = sum over the group of their
// input element with x[dim] + groupRank * local.
void checkReduceScatter(std::vector<int64_t> inShape, int64_t axis, int64_t dim) {
  OneCall call{"reduce_scatter", DType::F32, inShape, inShape,
               {AttributeSpec::Ints("axes", {axis}), AttributeSpec::Int("dim", dim)}};
  call.outShape[size_t(dim)] /= 2;
  runOnMesh(call, [&](int rank, const kernels::TensorView &out) {
    std::vector<int> group = groupOf(rank, axis);
    int64_t me = coord(rank, axis);
    for (int64_t i = 0; i < product(call.outShape); ++i) {
      std::vector<int64_t> x = unravel(i, call.outShape);
      x[size_t(dim)] += me * call.outShape[size_t(dim)];
      float want = groupSum(group, ravel(x, inShape));
      ASSERT_EQ(out.as<float>()[i], want) << "rank " << rank << " element " << i;
    }
  });
}

TEST(ExecutorCollectives, ReduceScatterFirstDim) { checkReduceScatter({4, 3}, 1, 0); }
TEST(ExecutorCollectives, ReduceScatterInnerDim) { checkReduceScatter({3, 4}, 0, 1); }
TEST(ExecutorCollectives, ReduceScatterMiddleDim) { checkReduceScatter({2, 6, 3}, 1, 1); }

// all_slice: output element x = own input element with x[dim] + groupRank * local.
void checkAllSlice(DType dtype, std::vector<int64_t> inShape, int64_t axis, int64_t dim) {
  OneCall call{"all_slice", dtype, inShape, inShape,
               {AttributeSpec::Ints("axes", {axis}), AttributeSpec::Int("dim", dim)}};
  call.outShape[size_t(dim)] /= 2;
  runOnMesh(call, [&](int rank, const kernels::TensorView &out) {
    int64_t me = coord(rank, axis);
    for (int64_t i = 0; i < product(call.outShape); ++i) {
      std::vector<int64_t> x = unravel(i, call.outShape);
      x[size_t(dim)] += me * call.outShape[size_t(dim)];
      ASSERT_EQ(readBits(out.data, dtype, i), inputBits(dtype, rank, ravel(x, inShape)))
          << "rank " << rank << " element " << i;
    }
  });
}

TEST(ExecutorCollectives, AllSliceFirstDimF32) { checkAllSlice(DType::F32, {4, 3}, 0, 0); }
TEST(ExecutorCollectives, AllSliceInnerDimBf16) { checkAllSlice(DType::BF16, {3, 4}, 1, 1); }
TEST(ExecutorCollectives, AllSliceLastDimI64) { checkAllSlice(DType::I64, {2, 3, 4}, 0, 2); }

// Context parallelism (`balanced`): dim holds 2n chunks of c rows, group member q's part
// being chunks q and 2n-1-q. The whole index of row `local` of member q's part:
int64_t balancedRow(int64_t local, int64_t q, int64_t c, int64_t n = 2) {
  int64_t chunk = local < c ? q : 2 * n - 1 - q;
  return chunk * c + local % c;
}

void checkBalanced(const char *kernel, DType dtype, std::vector<int64_t> inShape, int64_t axis,
                   int64_t dim) {
  OneCall call{kernel, dtype, inShape, inShape,
               {AttributeSpec::Ints("axes", {axis}), AttributeSpec::Int("dim", dim),
                AttributeSpec::Bool("balanced", true)}};
  bool gather = std::string(kernel) == "all_gather";
  gather ? call.outShape[size_t(dim)] *= 2 : call.outShape[size_t(dim)] /= 2;
  const std::vector<int64_t> &partShape = gather ? inShape : call.outShape;
  int64_t c = partShape[size_t(dim)] / 2; // rows of a chunk
  runOnMesh(call, [&](int rank, const kernels::TensorView &out) {
    std::vector<int> group = groupOf(rank, axis);
    int64_t me = coord(rank, axis);
    for (int64_t i = 0; i < product(call.outShape); ++i) {
      std::vector<int64_t> x = unravel(i, call.outShape);
      if (gather) { // whole row x[dim]: chunk g, held by member q as its half j
        int64_t g = x[size_t(dim)] / c, q = g < 2 ? g : 3 - g, j = g < 2 ? 0 : 1;
        x[size_t(dim)] = j * c + x[size_t(dim)] % c;
        ASSERT_EQ(readBits(out.data, dtype, i), inputBits(dtype, group[size_t(q)], ravel(x, inShape)))
            << kernel << " rank " << rank << " element " << i;
        continue;
      }
      x[size_t(dim)] = balancedRow(x[size_t(dim)], me, c);
      if (std::string(kernel) == "all_slice") {
        ASSERT_EQ(readBits(out.data, dtype, i), inputBits(dtype, rank, ravel(x, inShape)))
            << kernel << " rank " << rank << " element " << i;
        continue;
      }
      float want = groupSum(group, ravel(x, inShape));
      ASSERT_EQ(out.as<float>()[i], want) << kernel << " rank " << rank << " element " << i;
    }
  });
}

TEST(ExecutorCollectives, BalancedAllGatherPutsEachHalfInItsChunk) {
  checkBalanced("all_gather", DType::F32, {2, 4, 3}, 1, 1);
  checkBalanced("all_gather", DType::I64, {6, 2}, 0, 0);
}
TEST(ExecutorCollectives, BalancedReduceScatterKeepsTwoChunks) {
  checkBalanced("reduce_scatter", DType::F32, {2, 8, 3}, 1, 1);
  checkBalanced("reduce_scatter", DType::F32, {12}, 0, 0);
}
TEST(ExecutorCollectives, BalancedAllSliceTakesTwoChunks) {
  checkBalanced("all_slice", DType::I64, {3, 8}, 1, 1);
  checkBalanced("all_slice", DType::BF16, {4, 2, 5}, 0, 0);
}

TEST(ExecutorCollectives, AllReduceMax) {
  OneCall call{"all_reduce", DType::F32, {5}, {5},
               {AttributeSpec::Ints("axes", {0, 1}), AttributeSpec::String("op", "max")}};
  runOnMesh(call, [&](int rank, const kernels::TensorView &out) {
    for (int64_t i = 0; i < 5; ++i) {
      float want = -INFINITY;
      for (int q = 0; q < 4; ++q)
        want = std::max(want, inputF32(q, i));
      EXPECT_EQ(out.as<float>()[i], want) << "rank " << rank;
    }
  });
}

TEST(ExecutorCollectives, AllReduceSumByNameAndByDefault) {
  for (bool named : {false, true}) {
    OneCall call{"all_reduce", DType::F32, {3}, {3}, {AttributeSpec::Ints("axes", {1})}};
    if (named)
      call.attributes.push_back(AttributeSpec::String("op", "sum"));
    runOnMesh(call, [&](int rank, const kernels::TensorView &out) {
      for (int64_t i = 0; i < 3; ++i) {
        float want = 0;
        for (int q : groupOf(rank, 1))
          want += float(q * 1000 + i) * 0.5f;
        EXPECT_EQ(out.as<float>()[i], want) << "rank " << rank;
      }
    });
  }
}

// A bucket of two gradients and a max in one program, so staging is shared.
TEST(ExecutorCollectives, BucketedSumThenGatherShareStaging) {
  PlanSpec spec;
  spec.mesh = kMesh;
  spec.parameters = {{"w", {2}}};
  {
    ProgramSpec p; // every device runs it
    p.addStandardInputs(spec);
    int a = p.arena("a", DType::F32, {3}), b = p.arena("b", DType::F32, {2, 2});
    int g = p.arena("g", DType::F32, {2, 4});
    p.call("all_reduce", {a, b}, {a, b}, {AttributeSpec::Ints("axes", {0})});
    p.call("all_gather", {b}, {g}, {AttributeSpec::Ints("axes", {1}), AttributeSpec::Int("dim", 1)});
    spec.programs.push_back(p);
  }
  auto loaded = plan::LoadedPlan::fromBytes(spec.build(), "bucket.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  ThreadMesh mesh(kMesh, {{0}, {1}});
  runRanks(4, [&](int rank) {
    auto exec = Executor::create(loaded->plan(), rank, cpuBackend(), {}, mesh.lookup(rank));
    ASSERT_TRUE(exec.isOk()) << exec.message();
    Executor &e = **exec;
    for (int i = 0; i < 3; ++i)
      e.buffer(5).as<float>()[i] = float(rank + i);
    for (int i = 0; i < 4; ++i)
      e.buffer(6).as<float>()[i] = float(10 * rank + i);
    ASSERT_TRUE(e.step().isOk());
    int other = rank < 2 ? rank + 2 : rank - 2;
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(e.buffer(5).as<float>()[i], float(rank + other + 2 * i));
    // b after the sum: 10 (rank + other) + 2i; gathered over tp along dim 1.
    int dp = rank / 2;
    for (int row = 0; row < 2; ++row)
      for (int col = 0; col < 4; ++col) {
        int tp = col / 2, source = dp * 2 + tp, peer = source < 2 ? source + 2 : source - 2;
        EXPECT_EQ(e.buffer(7).as<float>()[row * 4 + col],
                  float(10 * (source + peer) + 2 * (row * 2 + col % 2)))
            << "rank " << rank << " [" << row << ", " << col << "]";
      }
  });
}

// ---- Refusals at creation ----

std::string refusal(const OneCall &call, bool withGroups = true) {
  auto loaded = plan::LoadedPlan::fromBytes(planFor(call).build(), "collective.fb");
  EXPECT_TRUE(loaded.isOk()) << loaded.message();
  if (!loaded.isOk())
    return "";
  ThreadMesh mesh(kMesh, {{0}, {1}});
  auto exec = Executor::create(loaded->plan(), 0, cpuBackend(), {},
                               withGroups ? mesh.lookup(0) : GroupLookup());
  EXPECT_FALSE(exec.isOk()) << "accepted";
  return exec.isOk() ? "" : exec.message();
}

OneCall gather(std::vector<int64_t> in, std::vector<int64_t> out, int64_t dim = 0) {
  return {"all_gather", DType::F32, in, out,
          {AttributeSpec::Ints("axes", {1}), AttributeSpec::Int("dim", dim)}};
}

TEST(ExecutorCollectiveRefusals, AxesAndDim) {
  OneCall call = gather({2}, {4});
  call.attributes = {AttributeSpec::Int("dim", 0)};
  EXPECT_EQ(refusal(call), "instruction 0 ('all_gather'): a collective needs an Ints attribute "
                           "'axes' naming its mesh axes");
  call.attributes = {AttributeSpec::Ints("axes", {0, 1}), AttributeSpec::Int("dim", 0)};
  EXPECT_EQ(refusal(call), "instruction 0 ('all_gather'): runs over exactly one mesh axis, but "
                           "'axes' is [0, 1]");
  call.attributes = {AttributeSpec::Ints("axes", {1})};
  EXPECT_EQ(refusal(call), "instruction 0 ('all_gather'): needs an Int attribute 'dim'");
  call = gather({2}, {4}, 1);
  EXPECT_EQ(refusal(call), "instruction 0 ('all_gather'): dim 1 with input [2] and output [4] "
                           "(input and output must have one rank, with dim inside it)");
}

TEST(ExecutorCollectiveRefusals, NoCommunicator) {
  EXPECT_EQ(refusal(gather({2}, {4}), /*withGroups=*/false),
            "instruction 0 ('all_gather'): a collective, but this run has no communicator for "
            "it (launch the plan's devices with aprun --nproc N or torchrun)");
}

TEST(ExecutorCollectiveRefusals, Shapes) {
  EXPECT_EQ(refusal(gather({2, 3}, {4, 4})),
            "instruction 0 ('all_gather'): output [4, 4] and input [2, 3] do not match: dim 0 of "
            "the output must be 2 times the input's (the 2 devices of mesh axes [1]), every "
            "other dim equal");
  OneCall scatter{"reduce_scatter", DType::F32, {4, 3}, {4, 3},
                  {AttributeSpec::Ints("axes", {0}), AttributeSpec::Int("dim", 1)}};
  EXPECT_EQ(refusal(scatter),
            "instruction 0 ('reduce_scatter'): input [4, 3] and output [4, 3] do not match: dim "
            "1 of the input must be 2 times the output's (the 2 devices of mesh axes [0]), every "
            "other dim equal");
  OneCall slice{"all_slice", DType::I64, {4, 3}, {2, 2},
                {AttributeSpec::Ints("axes", {0}), AttributeSpec::Int("dim", 0)}};
  EXPECT_NE(refusal(slice).find("('all_slice'): input [4, 3] and output [2, 2] do not match"),
            std::string::npos);
}

TEST(ExecutorCollectiveRefusals, Dtypes) {
  OneCall scatter{"reduce_scatter", DType::BF16, {4}, {2},
                  {AttributeSpec::Ints("axes", {0}), AttributeSpec::Int("dim", 0)}};
  EXPECT_EQ(refusal(scatter), "instruction 0 ('reduce_scatter'): sums f32 values, not bf16");
  OneCall max{"all_reduce", DType::BF16, {4}, {4},
              {AttributeSpec::Ints("axes", {0}), AttributeSpec::String("op", "max")}};
  EXPECT_EQ(refusal(max), "instruction 0 ('all_reduce'): operand 0 is not an f32 input/output "
                          "pair of one size");
}

TEST(ExecutorCollectiveRefusals, ReduceOps) {
  OneCall call{"all_reduce", DType::F32, {4}, {4},
               {AttributeSpec::Ints("axes", {0}), AttributeSpec::String("op", "min")}};
  EXPECT_EQ(refusal(call),
            "instruction 0 ('all_reduce'): attribute 'op' must be the string \"sum\" or \"max\"");
  call.attributes[1] = AttributeSpec::Int("op", 1);
  EXPECT_NE(refusal(call).find("attribute 'op' must be the string"), std::string::npos);
}

TEST(ExecutorCollectiveRefusals, MaxTakesOneOperand) {
  PlanSpec spec;
  spec.mesh = kMesh;
  spec.parameters = {{"w", {2}}};
  {
    ProgramSpec p; // every device runs it
    p.addStandardInputs(spec);
    int a = p.arena("a", DType::F32, {3}), b = p.arena("b", DType::F32, {3});
    p.call("all_reduce", {a, b}, {a, b},
           {AttributeSpec::Ints("axes", {0}), AttributeSpec::String("op", "max")});
    spec.programs.push_back(p);
  }
  auto loaded = plan::LoadedPlan::fromBytes(spec.build(), "max.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  ThreadMesh mesh(kMesh, {{0}});
  auto exec = Executor::create(loaded->plan(), 0, cpuBackend(), {}, mesh.lookup(0));
  ASSERT_FALSE(exec.isOk());
  EXPECT_EQ(exec.message(), "instruction 0 ('all_reduce'): op \"max\" takes one input and one "
                            "output, not 2");
}

// Arena buffers whose bytes overlap (the compiler's liveness planning must keep a
// collective's input alive while it writes its output).
TEST(ExecutorCollectiveRefusals, InputAndOutputMustNotOverlap) {
  PlanSpec spec;
  spec.mesh = kMesh;
  spec.parameters = {{"w", {2}}};
  {
    ProgramSpec p; // every device runs it
    p.addStandardInputs(spec);
    int in = p.arena("in", DType::F32, {2});
    int out = p.arena("out", DType::F32, {4});
    p.buffers[size_t(out)].offset = p.buffers[size_t(in)].offset + 4;
    p.call("all_gather", {in}, {out},
           {AttributeSpec::Ints("axes", {0}), AttributeSpec::Int("dim", 0)});
    spec.programs.push_back(p);
  }
  auto loaded = plan::LoadedPlan::fromBytes(spec.build(), "overlap.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  ThreadMesh mesh(kMesh, {{0}});
  auto exec = Executor::create(loaded->plan(), 0, cpuBackend(), {}, mesh.lookup(0));
  ASSERT_FALSE(exec.isOk());
  EXPECT_EQ(exec.message(), "instruction 0 ('all_gather'): input and output overlap");
}

} // namespace
} // namespace apc::exec

namespace apc::exec {
namespace {

TEST(ExecutorCollectiveRefusals, BalancedNeedsTwoEqualChunks) {
  OneCall call = gather({3, 2}, {6, 2});
  call.attributes.push_back(AttributeSpec::Bool("balanced", true));
  EXPECT_EQ(refusal(call), "instruction 0 ('all_gather'): is balanced (each device holds two "
                           "chunks of dim 0) but its part [3, 2] has an odd number of rows there");
  call = gather({2}, {4});
  call.attributes.push_back(AttributeSpec::Int("balanced", 1));
  EXPECT_EQ(refusal(call), "instruction 0 ('all_gather'): attribute 'balanced' must be a Bool");
}

} // namespace
} // namespace apc::exec
