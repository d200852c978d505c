// PlanLoader's checks of split parameters and optimizer state (Buffer.dim_axes): what a
// good split looks like, and every refusal with a message naming the buffer.
#include "runtime/plan/PlanLoader.h"

#include "test/unit/runtime/PlanBuilder.h"

#include <gtest/gtest.h>

#include <functional>

namespace apc::plan {
namespace {

using apc::testing::PlanSpec;
using apc::testing::ProgramSpec;

// A [dp, tp] = [2, 2] mesh; "w" [4, 6] split over tp on dim 0 (each device holds [2, 6]),
// its moments split over dp on dim 1 and tp on dim 0 ([2, 3]), "n" [6] whole.
// One program, which every device runs; with `stages` = 2 the first axis is named "pp"
// and each of its coordinates runs a program of its own (the same buffers).
// `edit(program index, program)` changes programs before the plan is built.
PlanSpec splitPlan(const std::function<void(int, ProgramSpec &)> &edit = nullptr,
                   int stages = 1) {
  PlanSpec spec;
  spec.mesh = {2, 2};
  if (stages == 2)
    spec.axisNames = {"pp", "tp"};
  spec.parameters = {{"w", {4, 6}}, {"n", {6}, "ones"}};
  for (int stage = 0; stage < stages; ++stage) {
    ProgramSpec program;
    program.stage = stage;
    program.addStandardInputs(spec);
    program.parameter(0, {2, 6}, {1, -1});
    program.parameter(0, {2, 3}, {1, 0}, "exp_avg");
    program.parameter(0, {2, 3}, {1, 0}, "exp_avg_sq");
    program.parameter(1, {6});
    program.parameter(1, {6}, {-1}, "exp_avg");
    program.parameter(1, {6}, {}, "exp_avg_sq");
    if (edit)
      edit(stage, program);
    spec.programs.push_back(program);
  }
  return spec;
}

std::string refusal(const PlanSpec &spec) {
  auto loaded = LoadedPlan::fromBytes(spec.build(), "split.fb");
  EXPECT_FALSE(loaded.isOk()) << "the plan was accepted";
  return loaded.isOk() ? "" : loaded.message();
}

// The buffer index of the first parameter buffer after the standard inputs.
constexpr int kW = 5, kWAvg = 6, kWAvgSq = 7, kN = 8;

TEST(PlanLoaderDimAxes, AcceptsAConsistentSplit) {
  auto loaded = LoadedPlan::fromBytes(splitPlan().build(), "split.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  const Buffer *w = loaded->plan().programs()->Get(0)->buffers()->Get(kW);
  ASSERT_NE(w->dim_axes(), nullptr);
  EXPECT_EQ(w->dim_axes()->Get(0), 1);
}

TEST(PlanLoaderDimAxes, RefusedOnOtherBufferKinds) {
  std::string m =
      refusal(splitPlan([](int, ProgramSpec &p) { p.buffers[0].dimAxes = {0, -1}; }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 0 'input_ids' has dim_axes but is a Input buffer "
               "(only Parameter and OptimizerState buffers are split)");
}

TEST(PlanLoaderDimAxes, OneAxisPerDim) {
  std::string m = refusal(splitPlan([](int, ProgramSpec &p) { p.buffers[kW].dimAxes = {1}; }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 5 'p0' has 1 dim_axes [1] for a shape of rank 2 "
               "[2, 6]");
}

TEST(PlanLoaderDimAxes, AxesInsideTheMesh) {
  std::string m =
      refusal(splitPlan([](int, ProgramSpec &p) { p.buffers[kW].dimAxes = {2, -1}; }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 5 'p0' splits dim 0 over mesh axis 2 but the mesh "
               "[2, 2] has 2 axes");
  m = refusal(splitPlan([](int, ProgramSpec &p) { p.buffers[kW].dimAxes = {-2, -1}; }));
  EXPECT_NE(m.find("splits dim 0 over mesh axis -2"), std::string::npos) << m;
}

TEST(PlanLoaderDimAxes, NoAxisTwice) {
  std::string m =
      refusal(splitPlan([](int, ProgramSpec &p) { p.buffers[kWAvg].dimAxes = {1, 1}; }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 6 'exp_avg.p0' splits dims 0 and 1 over the same "
               "mesh axis 1 (dim_axes [1, 1])");
}

TEST(PlanLoaderDimAxes, SplitDimsHoldTheGlobalSizeOverTheAxisSize) {
  // The parameter keeps its global shape on a split dim.
  std::string m = refusal(splitPlan([](int, ProgramSpec &p) {
    p.buffers[kW].shape = {4, 6};
  }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 5 'p0' has shape [4, 6] split as [1, -1] over the "
               "mesh [2, 2], which does not match parameter 'w' [4, 6] (a split dim holds the "
               "global size / the axis size)");
  // A moment whose unsplit dim is not whole.
  m = refusal(splitPlan([](int, ProgramSpec &p) {
    p.buffers[kWAvgSq].shape = {2, 3};
    p.buffers[kWAvgSq].dimAxes = {1, -1};
  }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 7 'exp_avg_sq.p0' has shape [2, 3] split as [1, -1] "
               "over the mesh [2, 2], which does not match parameter 'w' [4, 6] (a split dim "
               "holds the global size / the axis size)");
  // A dim that the axis does not divide.
  PlanSpec odd = splitPlan();
  odd.parameters[0].shape = {5, 6};
  m = refusal(odd);
  EXPECT_NE(m.find("buffer 5 'p0' has shape [2, 6] split as [1, -1]"), std::string::npos) << m;
}

TEST(PlanLoaderDimAxes, WholeBuffersKeepTheGlobalShape) {
  std::string m = refusal(splitPlan([](int, ProgramSpec &p) { p.buffers[kN].shape = {3}; }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 8 'p1' has shape [3], which does not match "
               "parameter 'n' [6]");
}

TEST(PlanLoaderDimAxes, EveryDeviceSplitsAParameterTheSameWay) {
  std::string m = refusal(splitPlan(
      [](int stage, ProgramSpec &p) {
        if (stage == 1)
          p.buffers[kWAvg].dimAxes = {0, 1};
      },
      2));
  EXPECT_EQ(m, "split.fb: program 1: buffer 6 'exp_avg.p0' splits the exp_avg of 'w' as [0, 1] "
               "but program 0 buffer 6 splits it as [1, 0] (every device must split it the same "
               "way)");
  // Empty dim_axes and all -1 are the same split.
  auto loaded = LoadedPlan::fromBytes(splitPlan(
                                          [](int stage, ProgramSpec &p) {
                                            if (stage == 1)
                                              p.buffers[kN].dimAxes = {-1};
                                          },
                                          2)
                                          .build(),
                                      "split.fb");
  EXPECT_TRUE(loaded.isOk()) << loaded.message();
}

// Plans hold one program per pipeline stage: as many as the "pp" axis is long (one
// without it), each at its stage's index.
TEST(PlanLoaderStages, OneProgramPerStage) {
  PlanSpec two = splitPlan();
  two.programs.push_back(two.programs[0]);
  two.programs[1].stage = 1;
  EXPECT_EQ(refusal(two), "split.fb: the plan has 2 programs but no mesh axis \"pp\" (one "
                          "program runs everywhere); one program per pipeline stage");
  PlanSpec one = splitPlan(nullptr, 2);
  one.programs.pop_back();
  EXPECT_EQ(refusal(one), "split.fb: the plan has 1 programs but its mesh axis \"pp\" has 2 "
                          "stages; one program per pipeline stage");
  PlanSpec swapped = splitPlan(nullptr, 2);
  std::swap(swapped.programs[0], swapped.programs[1]);
  EXPECT_EQ(refusal(swapped), "split.fb: program 0 says it is stage 1 (programs are in stage "
                              "order: program i runs stage i)");
}

// A vocabulary block's instruction names its mesh axis and its rows; the runtime derives
// vocab_start from them.
TEST(PlanLoaderStages, VocabularyBlocksNameAnAxisAndRows) {
  using apc::testing::AttributeSpec;
  auto withAttrs = [](std::vector<AttributeSpec> attrs) {
    return splitPlan([attrs](int, ProgramSpec &p) {
      int out = p.arena("x", DType::F32, {2});
      p.call("embedding", {kW}, {out}, attrs);
    });
  };
  EXPECT_TRUE(LoadedPlan::fromBytes(withAttrs({AttributeSpec::Int("vocab_shard_axis", 1),
                                               AttributeSpec::Int("vocab_shard_rows", 2)})
                                        .build(),
                                    "split.fb")
                  .isOk());
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("vocab_shard_axis", 1)})),
            "split.fb: program 0: instruction 0 ('embedding') needs both Int attributes "
            "vocab_shard_axis and vocab_shard_rows (the runtime computes vocab_start from them)");
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("vocab_shard_axis", 2),
                               AttributeSpec::Int("vocab_shard_rows", 2)})),
            "split.fb: program 0: instruction 0 ('embedding') splits the vocabulary over mesh "
            "axis 2 but the mesh has 2 axes");
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("vocab_shard_axis", 0),
                               AttributeSpec::Int("vocab_shard_rows", 0)})),
            "split.fb: program 0: instruction 0 ('embedding') has vocab_shard_rows 0 (at least 1)");
}

// A part of the sequence (context parallelism) names its mesh axis and the parts, which
// must be that axis's devices; the runtime derives seq_shard_rank from the axis.
TEST(PlanLoaderStages, SequencePartsNameAnAxisOfThatSize) {
  using apc::testing::AttributeSpec;
  auto withAttrs = [](std::vector<AttributeSpec> attrs) {
    return splitPlan([attrs](int, ProgramSpec &p) {
      int out = p.arena("x", DType::F32, {2});
      p.call("rope", {kW}, {out}, attrs);
    });
  };
  EXPECT_TRUE(LoadedPlan::fromBytes(withAttrs({AttributeSpec::Int("seq_shard_axis", 1),
                                               AttributeSpec::Int("seq_shard_parts", 2)})
                                        .build(),
                                    "split.fb")
                  .isOk());
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("seq_shard_parts", 2)})),
            "split.fb: program 0: instruction 0 ('rope') needs both Int attributes "
            "seq_shard_axis and seq_shard_parts (the runtime computes seq_shard_rank)");
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("seq_shard_axis", 2),
                               AttributeSpec::Int("seq_shard_parts", 2)})),
            "split.fb: program 0: instruction 0 ('rope') splits the sequence over mesh axis 2 "
            "but the mesh has 2 axes");
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("seq_shard_axis", 1),
                               AttributeSpec::Int("seq_shard_parts", 4)})),
            "split.fb: program 0: instruction 0 ('rope') has seq_shard_parts 4 but mesh axis 1 "
            "has 2 devices");
  EXPECT_EQ(refusal(withAttrs({AttributeSpec::Int("seq_shard_axis", 1),
                               AttributeSpec::Int("seq_shard_parts", 2),
                               AttributeSpec::Int("seq_shard_rank", 0)})),
            "split.fb: program 0: instruction 0 ('rope') carries 'seq_shard_rank', which the "
            "runtime derives from each device's mesh coordinates (corrupt plan)");
}

TEST(PlanLoaderDimAxes, ParametersStayF32) {
  std::string m = refusal(splitPlan([](int, ProgramSpec &p) {
    p.buffers[kN].dtype = DType::BF16;
  }));
  EXPECT_EQ(m, "split.fb: program 0: buffer 8 'p1' does not match parameter 'n' (its master "
               "copy is F32)");
}

// A pipeline plan: input_ids on the stage with the embedding, labels on the one with the
// head, neither on a middle stage; every stage has step and lr; stages in range.
PlanSpec pipelinePlan(const std::function<void(int, ProgramSpec &)> &edit = nullptr) {
  PlanSpec spec;
  spec.mesh = {1, 3};
  spec.axisNames = {"dp", "pp"};
  spec.parameters = {{"w", {4}}};
  spec.stages = {{0, 1, true, false}, {1, 1, false, false}, {2, 1, false, true}};
  for (int device = 0; device < 3; ++device) {
    ProgramSpec program;
    program.stage = device;
    program.addStandardInputs(spec, device == 0, device == 2);
    if (device == 1) {
      program.parameter(0, {4});
      program.parameter(0, {4}, {}, "exp_avg");
      program.parameter(0, {4}, {}, "exp_avg_sq");
    }
    if (edit)
      edit(device, program);
    spec.programs.push_back(program);
  }
  return spec;
}

TEST(PlanLoaderPipeline, InputsFollowTheStages) {
  auto loaded = LoadedPlan::fromBytes(pipelinePlan().build(), "pp.fb");
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  EXPECT_EQ(refusal(pipelinePlan([](int d, ProgramSpec &p) {
              if (d == 0)
                p.buffers.erase(p.buffers.begin()); // input_ids
            })),
            "split.fb: program 0 needs exactly one InputIds input, has 0");
  EXPECT_EQ(refusal(pipelinePlan([](int d, ProgramSpec &p) {
              if (d == 1)
                p.stage = 3;
            })),
            "split.fb: program 1 says it is stage 3 (programs are in stage order: program i "
            "runs stage i)");
  // Without a pipeline section every program needs both.
  PlanSpec flat = pipelinePlan();
  flat.stages.clear();
  EXPECT_EQ(refusal(flat), "split.fb: program 0 needs exactly one Labels input, has 0");
}

} // namespace
} // namespace apc::plan

namespace apc::plan {
namespace {

// A damaged event count is refused at load with a message, not a giant allocation in the
// executor's event check.
TEST(PlanLoaderStreams, RefusesMoreEventsThanInstructions) {
  std::string message = refusal(splitPlan([](int, apc::testing::ProgramSpec &p) {
    p.numEvents = 2147483647u;
  }));
  EXPECT_NE(message.find("declares 2147483647 events for"), std::string::npos) << message;
  EXPECT_NE(message.find("(corrupt plan)"), std::string::npos) << message;
}

} // namespace
} // namespace apc::plan
