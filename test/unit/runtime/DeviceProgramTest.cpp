// Which program a device runs and what in it is the device's own
// (runtime/plan/DeviceProgram.h): the program of its "pp" coordinate, and the first id of
// its vocabulary block, which the executor gives the vocabulary-parallel kernels as
// `vocab_start` (the kernels themselves are unchanged).
#include "runtime/plan/DeviceProgram.h"

#include "runtime/exec/Executor.h"
#include "runtime/plan/PlanLoader.h"
#include "test/unit/runtime/PlanBuilder.h"

#include <gtest/gtest.h>

namespace apc::plan {
namespace {

using apc::testing::AttributeSpec;
using apc::testing::PlanSpec;
using apc::testing::ProgramSpec;

// [dp 2, pp 3, tp 2]: rank r runs program (r / 2) % 3.
TEST(DeviceProgram, EachDeviceRunsItsStagesProgram) {
  PlanSpec spec;
  spec.mesh = {2, 3, 2};
  spec.axisNames = {"dp", "pp", "tp"};
  spec.batch = 4;
  spec.parameters = {{"w", {2}}};
  for (int s = 0; s < 3; ++s) {
    ProgramSpec p;
    p.stage = s;
    p.addStandardInputs(spec);
    p.parameter(0, {2});
    spec.programs.push_back(p);
  }
  auto loaded = LoadedPlan::fromBytes(spec.build(), "pp.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  const Plan &plan = loaded->plan();
  EXPECT_EQ(pipelineAxis(plan), 1);
  EXPECT_EQ(deviceCount(plan), 12);
  for (int r = 0; r < 12; ++r)
    EXPECT_EQ(programOf(plan, r), plan.programs()->Get(flatbuffers::uoffset_t((r / 2) % 3))) << r;
  EXPECT_EQ(programOf(plan, 12), nullptr);
  EXPECT_EQ(programOf(plan, -1), nullptr);
  // rank = (dp * 3 + pp) * 2 + tp: stage s is run by ranks 2s, 2s+1, 6+2s, 7+2s.
  std::vector<std::vector<int64_t>> expected = {{0, 1, 6, 7}, {2, 3, 8, 9}, {4, 5, 10, 11}};
  EXPECT_EQ(stageRanks(plan), expected);
}

// Mesh [dp 2, tp 2], an embedding table of 8 rows split over tp (4 a device): every
// device runs the one program, and the executor gives rank r the block starting at
// (r % 2) * 4. Ids 1 and 6: rank 0 and 2 look up 1 (row 1), ranks 1 and 3 look up 6
// (row 2); an id outside the block gives zeros.
TEST(DeviceProgram, TheExecutorGivesEachDeviceItsVocabularyBlock) {
  PlanSpec spec;
  spec.mesh = {2, 2};
  spec.axisNames = {"dp", "tp"};
  spec.batch = 2;
  spec.seqLen = 2;
  spec.parameters = {{"model.embed_tokens.weight", {8, 3}}};
  ProgramSpec p;
  p.addStandardInputs(spec);
  int table = p.parameter(0, {4, 3}, {1, -1});
  int out = p.arena("x", DType::F32, {1, 2, 3});
  p.call("embedding", {table, 0}, {out},
         {AttributeSpec::Int("vocab_shard_axis", 1), AttributeSpec::Int("vocab_shard_rows", 4)});
  spec.programs = {p};
  auto loaded = LoadedPlan::fromBytes(spec.build(), "vocab.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  for (int rank = 0; rank < 4; ++rank) {
    auto exec = exec::Executor::create(loaded->plan(), rank, exec::cpuBackend(), {});
    ASSERT_TRUE(exec.isOk()) << exec.message();
    exec::Executor &e = **exec;
    int64_t *ids = e.buffer(0).as<int64_t>();
    ids[0] = 1;
    ids[1] = 6;
    float *rows = e.buffer(table).as<float>();
    for (int i = 0; i < 12; ++i)
      rows[i] = float(100 * rank + i);
    ASSERT_TRUE(e.step().isOk());
    const float *x = e.buffer(out).as<float>();
    int start = (rank % 2) * 4;
    for (int t = 0; t < 2; ++t) {
      int64_t id = ids[t];
      bool mine = id >= start && id < start + 4;
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(x[t * 3 + c], mine ? rows[(id - start) * 3 + c] : 0.0f)
            << "rank " << rank << " token " << t;
    }
  }
}

} // namespace
} // namespace apc::plan
