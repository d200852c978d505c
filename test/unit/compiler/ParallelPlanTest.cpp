// The parallel plan description: both spellings, canonical forms, and every refusal
// naming its field.
#include "compiler/partition/ParallelPlan.h"

#include <gtest/gtest.h>

using namespace apc::partition;
using apc::Status;

namespace {

PlanContext tinyContext(int64_t devices) {
  PlanContext c;
  c.devices = devices;
  c.cluster = "cpu:" + std::to_string(devices);
  c.batch = 8;
  c.seqLen = 16;
  c.heads = 4;
  c.kvHeads = 2;
  c.layers = 2;
  c.vocab = 256;
  c.ffn = 96;
  return c;
}

std::string refusal(const std::string &text, int64_t devices) {
  auto plan = parseParallelPlan(text);
  if (!plan)
    return plan.message();
  Status s = validate(*plan, tinyContext(devices));
  return s.isOk() ? "" : s.message();
}

TEST(ParallelPlanTest, ParsesEveryFieldInBothSpellings) {
  auto staged = parseParallelPlan("dp=2,pp=2,stages=1+1");
  ASSERT_TRUE(staged) << staged.message();
  EXPECT_EQ(staged->stages, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(stagesText(staged->stages), "1+1");
  EXPECT_FALSE(parseParallelPlan("pp=2,stages=1,1")); // the second "1" is not key=value
  EXPECT_NE(parseParallelPlan("pp=2,stages=1+").message().find("plan field 'stages'"),
            std::string::npos);
  auto plan = parseParallelPlan("dp=2,tp=2,pp=2,zero=1,sp=on,mb=4,recompute=selective");
  ASSERT_TRUE(plan) << plan.message();
  EXPECT_EQ(plan->dp, 2);
  EXPECT_EQ(plan->tp, 2);
  EXPECT_EQ(plan->pp, 2);
  EXPECT_EQ(plan->zero, 1);
  EXPECT_TRUE(plan->sp);
  EXPECT_EQ(plan->mb, 4);
  EXPECT_EQ(plan->recompute, "selective");
  EXPECT_EQ(plan->toString(), "dp=2,tp=2,pp=2,zero=1,sp=on,mb=4,recompute=selective");

  auto json = parseParallelPlan(R"({"dp": 2, "tp": 2, "pp": 2, "zero": 1, "sp": true,
                                    "mb": 4, "recompute": "selective"})");
  ASSERT_TRUE(json) << json.message();
  EXPECT_EQ(json->toString(), plan->toString());
  auto back = parseParallelPlan(plan->toJson());
  ASSERT_TRUE(back) << back.message();
  EXPECT_EQ(back->toString(), plan->toString());
}

TEST(ParallelPlanTest, DefaultsAreOneDevice) {
  auto plan = parseParallelPlan("");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->toString(), "dp=1,tp=1,pp=1,zero=0,sp=off,mb=1,recompute=none");
  EXPECT_EQ(refusal("", 1), "");
  EXPECT_EQ(refusal("dp=4", 4), "");
}

TEST(ParallelPlanTest, MalformedPlansNameTheField) {
  EXPECT_NE(refusal("dp=two", 2).find("plan field 'dp' must be a non-negative integer"),
            std::string::npos);
  EXPECT_NE(refusal("dp=0", 2).find("plan field 'dp' must be at least 1"), std::string::npos);
  EXPECT_NE(refusal("zero=4", 2).find("plan field 'zero' must be 0, 1, 2 or 3"),
            std::string::npos);
  EXPECT_NE(refusal("sp=maybe", 2).find("plan field 'sp' must be on or off"), std::string::npos);
  EXPECT_NE(refusal("recompute=some", 2).find("plan field 'recompute'"), std::string::npos);
  EXPECT_NE(refusal("ep=2", 2).find("unknown plan field 'ep'"), std::string::npos);
  EXPECT_NE(refusal("dp", 2).find("is not key=value"), std::string::npos);
  EXPECT_NE(refusal("dp=2,dp=4", 2).find("plan field 'dp' is given twice"), std::string::npos);
  EXPECT_NE(refusal("{\"dp\": [2]}", 2).find("plan field 'dp' has a value of the wrong type"),
            std::string::npos);
  EXPECT_NE(refusal("{\"dp\": 2", 2).find("not valid JSON"), std::string::npos);
}

// Degrees past kMaxPlanDegree are refused, so that dp * tp * pp cannot overflow; counts
// are digits only, so a NUL inside a JSON string does not cut the number short (both
// found by parallel_plan_fuzz).
TEST(ParallelPlanTest, DegreesAreBoundedAndCountsAreDigitsOnly) {
  auto plan = parseParallelPlan("dp=1048576,tp=1048576,pp=1048576");
  ASSERT_TRUE(plan) << plan.message();
  EXPECT_EQ(plan->devices(), int64_t(1) << 60);
  for (const char *text : {"dp=1048577", "tp=1444444444444444444", "pp=9999999999",
                           "mb=2000000", R"({"dp": 4611686018427387904})"}) {
    auto p = parseParallelPlan(text);
    ASSERT_FALSE(p) << text;
    EXPECT_NE(p.message().find("must be at most 1048576"), std::string::npos) << p.message();
  }
  for (std::string text : {std::string("dp= 2"), std::string("dp=+2"),
                           std::string("zero=1\0x", 8), std::string("{\"tp\": \"2\\u0000x\"}")}) {
    auto p = parseParallelPlan(text);
    ASSERT_FALSE(p) << text;
    EXPECT_NE(p.message().find("must be a non-negative integer"), std::string::npos)
        << p.message();
  }
}

TEST(ParallelPlanTest, InfeasiblePlansNameTheField) {
  EXPECT_NE(refusal("dp=2", 4).find("plan degrees dp=2 x tp=1 x pp=1 = 2 do not match the 4 "
                                    "devices of cluster cpu:4"),
            std::string::npos);
  EXPECT_NE(refusal("dp=3", 3).find("plan field 'dp' (3) does not divide the batch (8)"),
            std::string::npos);
  EXPECT_NE(refusal("dp=1,tp=4", 4).find("plan field 'tp' (4) must divide the attention heads "
                                         "(4) and the key/value heads (2)"),
            std::string::npos);
  EXPECT_NE(refusal("dp=2,sp=on", 2).find("plan field 'sp' needs tp > 1"), std::string::npos);
  EXPECT_NE(refusal("dp=1,zero=1", 1).find("plan field 'zero' shards over the data-parallel "
                                           "axis and needs dp > 1"),
            std::string::npos);
  EXPECT_NE(refusal("dp=1,pp=3", 3).find("plan field 'pp' (3) exceeds the 2 layers"),
            std::string::npos);
  EXPECT_NE(refusal("dp=2,mb=3", 2).find("plan field 'mb' (3) must divide the per-replica "
                                         "batch (4)"),
            std::string::npos);
}

TEST(ParallelPlanTest, StagesMustCoverTheLayersOncePerStage) {
  for (const char *plan : {"pp=2,stages=1+2", "pp=2,stages=2", "pp=2,stages=2+0",
                           "pp=2,stages=1+1+0", "pp=2,stages=999999999+1"}) {
    auto parsed = parseParallelPlan(plan);
    ASSERT_TRUE(parsed) << plan;
    std::string message = refusal(plan, parsed->devices());
    EXPECT_NE(message.find("plan field 'stages'"), std::string::npos) << plan << ": " << message;
    EXPECT_NE(message.find("2 layers in all"), std::string::npos) << plan << ": " << message;
  }
  EXPECT_EQ(refusal("pp=2,stages=1+1", 2), "");
  // Counts past any model's are refused as text, before they could overflow a sum.
  EXPECT_NE(parseParallelPlan("pp=2,stages=99999999999+1").message().find(
                "gives one stage 99999999999 layers"),
            std::string::npos);
}

TEST(ParallelPlanTest, ImplementedSplitsAreAccepted) {
  for (const char *plan : {"dp=1,tp=2", "dp=2,zero=1", "dp=2,zero=3", "dp=1,tp=2,sp=on",
                           "dp=2,tp=2,sp=on,zero=2", "dp=1,recompute=selective",
                           "dp=2,recompute=full", "dp=1,tp=2,sp=on,recompute=selective",
                           "dp=1,pp=2", "dp=2,mb=2", "dp=1,pp=2,stages=1+1",
                           "dp=1,pp=2,recompute=full", "dp=2,tp=2,pp=2,mb=4,zero=1,sp=on"}) {
    auto parsed = parseParallelPlan(plan);
    ASSERT_TRUE(parsed) << plan;
    EXPECT_TRUE(validate(*parsed, tinyContext(parsed->devices()))) << plan;
  }
}

TEST(ParallelPlanTest, TensorParallelDegreeMustDivideTheMlpWidth) {
  PlanContext c = tinyContext(2);
  c.ffn = 95;
  auto parsed = parseParallelPlan("tp=2");
  ASSERT_TRUE(parsed);
  Status s = validate(*parsed, c);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("'tp'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("intermediate_size (95)"), std::string::npos) << s.message();
}

} // namespace

// Context parallelism: its field in both spellings, the canonical text, the devices it
// counts, and the sequence cut into 2 x cp chunks or refused by name.
TEST(ParallelPlanTest, ContextParallelism) {
  auto plan = parseParallelPlan("dp=2,cp=2,tp=2,sp=on");
  ASSERT_TRUE(plan) << plan.message();
  EXPECT_EQ(plan->cp, 2);
  EXPECT_EQ(plan->devices(), 8);
  EXPECT_EQ(plan->toString(), "dp=2,tp=2,pp=1,cp=2,zero=0,sp=on,mb=1,recompute=none");
  auto back = parseParallelPlan(plan->toJson());
  ASSERT_TRUE(back) << back.message();
  EXPECT_EQ(back->toString(), plan->toString());
  EXPECT_EQ(parseParallelPlan("dp=2")->toString().find("cp="), std::string::npos);
  EXPECT_EQ(refusal("dp=2,cp=2,tp=2,sp=on", 8), ""); // seq 16: 4 per device, 2 per tp rank
  EXPECT_EQ(refusal("cp=8", 8), "");                  // 16 chunks of one token
  EXPECT_NE(refusal("cp=2", 4).find("plan degrees dp=1 x tp=1 x pp=1 x cp=2 = 2 do not "
                                    "match the 4 devices"),
            std::string::npos);
  EXPECT_NE(refusal("cp=3", 3).find("plan field 'cp' (3) must cut the sequence (16) into 2 x "
                                    "cp = 6 equal chunks"),
            std::string::npos);
  EXPECT_NE(refusal("cp=16", 16).find("plan field 'cp' (16)"), std::string::npos);
  EXPECT_EQ(refusal("cp=4,tp=2,sp=on", 8), ""); // 4 tokens a device, 2 a tp rank
  EXPECT_NE(refusal("cp=0", 1).find("plan field 'cp' must be at least 1"), std::string::npos);
}
