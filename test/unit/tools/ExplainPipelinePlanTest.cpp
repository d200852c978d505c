// `apc explain` on a pipelined plan built here with the flatbuffers builder: mesh
// [dp 1, pp 2], two stages whose programs differ (their own parameters, optimizer state,
// inputs, arena and instructions), send/recv between them and 4 micro-batches in 1F1B
// order, each instruction marked with its pass and micro-batch. Checks the facts (tools/apc/explain/PlanFacts.h), the
// text, the JSON and the schedule SVG.
#include "tools/apc/explain/PlanFacts.h"

#include "runtime/plan/PlanVersion.h"
#include "runtime/schema/plan_generated.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <unistd.h>
#include <vector>

using namespace apc::explain;
namespace fb = apc::plan;

namespace {

// ---- A small plan builder (what test/unit/runtime/PlanBuilder.h does, plus stages,
// pipeline, axis names and FLOPs).

struct Attr {
  std::string name;
  fb::AttributeKind kind = fb::AttributeKind::Int;
  int64_t i = 0;
  std::vector<int64_t> ints;
};
Attr intAttr(std::string name, int64_t v) { return {std::move(name), fb::AttributeKind::Int, v, {}}; }
Attr intsAttr(std::string name, std::vector<int64_t> v) {
  return {std::move(name), fb::AttributeKind::Ints, 0, std::move(v)};
}

struct Buf {
  std::string name;
  fb::DType dtype = fb::DType::F32;
  std::vector<int64_t> shape;
  fb::BufferKind kind = fb::BufferKind::Arena;
  uint64_t offset = 0;
  int parameter = -1;
  std::string slot;
  fb::Binding binding = fb::Binding::None;
  uint64_t bytes() const {
    uint64_t n = dtype == fb::DType::I64 ? 8 : dtype == fb::DType::F32 ? 4 : 2;
    for (int64_t d : shape)
      n *= uint64_t(d);
    return n;
  }
};

struct Inst {
  std::string kernel;
  std::vector<int> inputs, outputs;
  std::vector<Attr> attributes;
  double flops = 0;
  int microBatch = -1; // plan.fbs Instruction.micro_batch, pass, layer
  fb::Pass pass = fb::Pass::Other;
  int layer = -1;
};

struct Prog {
  int stage = 0, loss = -1;
  // Marks of the instructions `call` adds (micro-batch, pass, layer).
  int microBatch = -1, layer = -1;
  fb::Pass pass = fb::Pass::Other;
  std::vector<Buf> buffers;
  std::vector<Inst> instructions;
  uint64_t arenaBytes = 0;

  int add(Buf b) {
    if (b.kind == fb::BufferKind::Arena) {
      b.offset = (arenaBytes + 63) / 64 * 64;
      arenaBytes = b.offset + b.bytes();
    }
    buffers.push_back(std::move(b));
    return int(buffers.size()) - 1;
  }
  int arena(std::string name, std::vector<int64_t> shape) {
    Buf b;
    b.name = std::move(name);
    b.shape = std::move(shape);
    return add(b);
  }
  int input(std::string name, fb::DType dtype, std::vector<int64_t> shape, fb::Binding binding) {
    Buf b;
    b.name = std::move(name);
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.kind = fb::BufferKind::Input;
    b.binding = binding;
    return add(b);
  }
  // The parameter and its two moments; returns the parameter's buffer.
  int parameter(int p, const std::vector<int64_t> &shape) {
    Buf b;
    b.name = "p" + std::to_string(p);
    b.shape = shape;
    b.kind = fb::BufferKind::Parameter;
    b.parameter = p;
    int param = add(b);
    for (const char *slot : {"exp_avg", "exp_avg_sq"}) {
      Buf m = b;
      m.name = std::string(slot) + ".p" + std::to_string(p);
      m.kind = fb::BufferKind::OptimizerState;
      m.slot = slot;
      add(m);
    }
    return param;
  }
  void call(std::string kernel, std::vector<int> in, std::vector<int> out,
            std::vector<Attr> attrs = {}, double flops = 0) {
    instructions.push_back({std::move(kernel), std::move(in), std::move(out), std::move(attrs),
                            flops, microBatch, pass, layer});
  }
};

struct PipelinePlan {
  struct Param {
    std::string name;
    std::vector<int64_t> shape;
  };
  std::vector<Param> parameters;
  std::vector<int64_t> mesh;
  std::vector<std::string> axes;
  struct Stage {
    int first, count;
    bool embedding, head;
  };
  std::vector<Stage> stages;
  int microBatches = 1;
  std::string schedule = "1f1b", recompute = "none";
  std::vector<Prog> programs;
  // plan.predicted with the cost model's figures and stage times, when `present`.
  struct Prediction {
    bool present = false;
    double seconds = 0, tokensPerSecondPerDevice = 0, mfu = 0;
    struct Stage {
      double forward, backward, step, sendForward, sendBackward;
      std::optional<double> recompute;
    };
    std::vector<Stage> stages;
  } predicted;
  int64_t layers = 4, batch = 4, seqLen = 8;
  bool tied = true;

  std::string build() const {
    flatbuffers::FlatBufferBuilder b;
    std::vector<flatbuffers::Offset<fb::ParameterSpec>> params;
    for (const Param &p : parameters)
      params.push_back(fb::CreateParameterSpec(b, b.CreateString(p.name), b.CreateVector(p.shape),
                                               fb::DType::F32, b.CreateString("normal")));
    std::vector<flatbuffers::Offset<fb::Program>> progs;
    for (const Prog &prog : programs) {
      std::vector<flatbuffers::Offset<fb::Buffer>> bufs;
      for (const Buf &x : prog.buffers)
        bufs.push_back(fb::CreateBuffer(b, b.CreateString(x.name), x.dtype, b.CreateVector(x.shape),
                                        x.kind, x.offset, x.bytes(), -1, x.parameter,
                                        x.slot.empty() ? 0 : b.CreateString(x.slot), x.binding));
      std::vector<flatbuffers::Offset<fb::Instruction>> insts;
      for (const Inst &inst : prog.instructions) {
        std::vector<flatbuffers::Offset<fb::Attribute>> attrs;
        for (const Attr &a : inst.attributes)
          attrs.push_back(fb::CreateAttribute(b, b.CreateString(a.name), a.kind, a.i, 0, false, 0,
                                              a.ints.empty() ? 0 : b.CreateVector(a.ints)));
        insts.push_back(fb::CreateInstruction(b, b.CreateString(inst.kernel),
                                              b.CreateVector(inst.inputs),
                                              b.CreateVector(inst.outputs),
                                              b.CreateVector(attrs), inst.flops,
                                              inst.microBatch, inst.pass, inst.layer));
      }
      progs.push_back(fb::CreateProgram(b, b.CreateVector(bufs), b.CreateVector(insts),
                                        prog.arenaBytes, prog.loss, -1, prog.stage));
    }
    auto model = fb::CreateModelConfig(b, b.CreateString("llama3"), 8, 16, layers, 2, 2, 4, 32,
                                       64, 10000.0, 1e-5, 0.02, tied, b.CreateString("default"));
    auto data = fb::CreateDataSpec(b, batch, seqLen, -1, fb::DType::I64);
    auto optimizer =
        fb::CreateOptimizerSpec(b, b.CreateString("adamw"), 0.9, 0.999, 1e-8, 0.0, 0.0);
    std::vector<flatbuffers::Offset<flatbuffers::String>> names;
    for (const std::string &a : axes)
      names.push_back(b.CreateString(a));
    std::vector<flatbuffers::Offset<fb::StageSpec>> specs;
    for (const Stage &s : stages)
      specs.push_back(fb::CreateStageSpec(b, s.first, s.count, s.embedding, s.head));
    auto pipeline = fb::CreatePipelineSpec(b, b.CreateVector(specs), microBatches,
                                           b.CreateString(schedule), b.CreateString(recompute));
    flatbuffers::Offset<fb::Prediction> prediction = 0;
    if (predicted.present) {
      std::vector<flatbuffers::Offset<fb::StageTiming>> timings;
      for (const Prediction::Stage &st : predicted.stages)
        timings.push_back(fb::CreateStageTiming(
            b, st.forward, st.backward, st.step, st.sendForward, st.sendBackward,
            st.recompute ? flatbuffers::Optional<double>(*st.recompute) : flatbuffers::nullopt));
      std::vector<flatbuffers::Offset<fb::PredictionTerm>> terms = {
          fb::CreatePredictionTerm(b, b.CreateString("compute"), predicted.seconds)};
      prediction = fb::CreatePrediction(
          b, 1e9, predicted.seconds, 1 << 20, b.CreateString("cpu:2"),
          predicted.tokensPerSecondPerDevice, predicted.mfu, true, 1e10, b.CreateVector(terms),
          b.CreateVector(std::vector<flatbuffers::Offset<fb::MemoryTerm>>{}),
          b.CreateVector(timings));
    }
    auto root = fb::CreatePlan(b, apc::plan::kPlanVersion, b.CreateString("test"), model, b.CreateVector(params), data,
                               b.CreateString("fp32"), optimizer, b.CreateVector(progs), prediction,
                               b.CreateVector(mesh), b.CreateVector(names),
                               b.CreateString("dp=1,pp=2,mb=4"), pipeline);
    fb::FinishPlanBuffer(b, root);
    return std::string(reinterpret_cast<const char *>(b.GetBufferPointer()), b.GetSize());
  }
};

// A tiny tied-embedding Llama of 4 layers (embedding, per layer: input_layernorm, q_proj,
// down_proj; final norm) on mesh [dp 1, pp 2]: stage 0 = embedding + layers 0-1, stage 1 =
// layers 2-3 + norm + LM head (the tied embedding) + loss. Each stage's program runs its
// micro-batches in `order` (1F1B unless given; each instruction marked with its pass,
// micro-batch and layer as the compiler marks them), a forward sending (or, on stage 1,
// receiving) an activation of [1, 8, 8] f32 = 256 bytes per micro-batch (tag 1), a
// backward receiving (sending) two gradients of 256 bytes (tags 2 and 3), as the compiler
// tags them: by transfer, not by micro-batch. The tied embedding's gradient is
// all-reduced over pp.
PipelinePlan twoStagePlan(int mb = 4,
                          std::vector<std::vector<std::pair<bool, int>>> orders = {}) {
  PipelinePlan plan;
  plan.mesh = {1, 2};
  plan.axes = {"dp", "pp"};
  plan.microBatches = mb;
  plan.stages = {{0, 2, true, false}, {2, 2, false, true}};
  plan.parameters.push_back({"model.embed_tokens.weight", {32, 8}}); // 0
  for (int l = 0; l < 4; ++l) {
    std::string prefix = "model.layers." + std::to_string(l) + ".";
    plan.parameters.push_back({prefix + "input_layernorm.weight", {8}});  // 1 + 3l
    plan.parameters.push_back({prefix + "self_attn.q_proj.weight", {8, 8}});
    plan.parameters.push_back({prefix + "mlp.down_proj.weight", {8, 16}});
  }
  plan.parameters.push_back({"model.norm.weight", {8}}); // 13
  for (int stage = 0; stage < 2; ++stage) {
    Prog prog;
    prog.stage = stage;
    std::vector<std::pair<int, int>> held; // (parameter index, buffer)
    auto hold = [&](int p) { held.push_back({p, prog.parameter(p, plan.parameters[size_t(p)].shape)}); };
    hold(0); // the embedding: stage 0 looks tokens up, stage 1 is the tied LM head
    for (int l = 2 * stage; l < 2 * stage + 2; ++l)
      for (int k = 0; k < 3; ++k)
        hold(1 + 3 * l + k);
    if (stage == 1)
      hold(13);
    if (stage == 0)
      prog.input("input_ids", fb::DType::I64, {4, 8}, fb::Binding::InputIds);
    else
      prog.input("labels", fb::DType::I64, {4, 8}, fb::Binding::Labels);
    int step = prog.input("step", fb::DType::I64, {}, fb::Binding::Step);
    int lr = prog.input("lr", fb::DType::F32, {}, fb::Binding::LearningRate);
    int act = prog.arena("act", {1, 8, 8});
    int grad = prog.arena("grad_act", {1, 8, 8});
    prog.loss = prog.arena("loss", {}); // the plan loader wants one on every stage
    if (stage == 1)
      prog.arena("logits", {1, 8, 32});
    std::vector<int> grads;
    for (auto [p, buffer] : held)
      grads.push_back(prog.arena("grad.p" + std::to_string(p), plan.parameters[size_t(p)].shape));
    double f = stage == 0 ? 1000 : 3000; // stage 1 costs 3x
    auto order = orders.empty() ? oneFOneBOrder(2, stage, mb) : orders[size_t(stage)];
    for (auto [forward, k] : order) {
      prog.microBatch = k;
      prog.pass = forward ? fb::Pass::Forward : fb::Pass::Backward;
      prog.layer = 2 * stage;
      if (forward) {
        if (stage == 0) {
          prog.call("embedding", {held[0].second, 3}, {act}, {}, f);
          prog.call("send", {act}, {},
                    {intsAttr("axes", {1}), intAttr("peer_offset", 1), intAttr("tag", 1)});
        } else {
          prog.call("recv", {}, {act},
                    {intsAttr("axes", {1}), intAttr("peer_offset", -1), intAttr("tag", 1)});
          prog.call("gemm", {act, held[2].second}, {act}, {}, f);
        }
      } else {
        if (stage == 0) {
          for (int64_t tag : {2, 3})
            prog.call("recv", {}, {grad},
                      {intsAttr("axes", {1}), intAttr("peer_offset", 1), intAttr("tag", tag)});
          prog.call("gemm", {grad, held[2].second}, {grads[2]}, {}, 2 * f);
        } else {
          prog.call("gemm", {act, held[2].second}, {grad}, {}, 2 * f);
          for (int64_t tag : {3, 2})
            prog.call("send", {grad}, {},
                      {intsAttr("axes", {1}), intAttr("peer_offset", -1), intAttr("tag", tag)});
        }
      }
    }
    // The tied embedding's gradient, summed over the two stages that hold it.
    prog.microBatch = prog.layer = -1;
    prog.pass = fb::Pass::Step;
    prog.call("all_reduce", {grads[0]}, {grads[0]}, {intsAttr("axes", {1})});
    for (size_t i = 0; i < held.size(); ++i) {
      int p = held[i].second;
      prog.call("adamw", {p, grads[i], p + 1, p + 2, step, lr}, {p, p + 1, p + 2});
    }
    plan.programs.push_back(std::move(prog));
  }
  return plan;
}

struct Loaded {
  std::string bytes;
  PlanFacts facts;
};

Loaded gather(const PipelinePlan &plan) {
  Loaded l;
  l.bytes = plan.build();
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t *>(l.bytes.data()), l.bytes.size());
  EXPECT_TRUE(fb::VerifyPlanBuffer(verifier));
  auto facts = gatherFacts(*fb::GetPlan(l.bytes.data()), "pp2.fb");
  EXPECT_TRUE(bool(facts)) << facts.message();
  if (facts)
    l.facts = std::move(*facts);
  return l;
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

int countOf(const std::string &text, const std::string &part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
    ++n;
  return n;
}

// Bytes of a parameter and its two moments.
uint64_t f32(std::vector<int64_t> shape) {
  uint64_t n = 4;
  for (int64_t d : shape)
    n *= uint64_t(d);
  return n;
}

} // namespace

TEST(ExplainPipelinePlan, StagesAndRanks) {
  Loaded l = gather(twoStagePlan());
  const PlanFacts &f = l.facts;
  ASSERT_EQ(f.stages.size(), 2u);
  EXPECT_EQ(f.microBatches, 4);
  EXPECT_EQ(f.ppAxis, 1);
  EXPECT_EQ(stageContents(f.stages[0]), "embedding, layers 0-1");
  EXPECT_EQ(stageContents(f.stages[1]), "layers 2-3, norm + LM head + loss");
  EXPECT_EQ(f.stages[0].ranks, std::vector<int>{0});
  EXPECT_EQ(f.stages[1].ranks, std::vector<int>{1});
  EXPECT_TRUE(f.warnings.empty());
  ASSERT_EQ(f.programs.size(), 2u);
  EXPECT_EQ(f.programs[0].ppCoordinate, 0);
  EXPECT_EQ(f.programs[1].ppCoordinate, 1);
  // The plan's order, read from the instructions' marks, is the 1F1B order drawn.
  EXPECT_EQ(f.stages[0].planOrder, "F0 F1 B0 F2 B1 F3 B2 B3");
  EXPECT_EQ(f.stages[1].planOrder, "F0 B0 F1 B1 F2 B2 F3 B3");
  EXPECT_TRUE(f.stages[0].planOrderIs1F1B);
  EXPECT_TRUE(f.stages[1].planOrderIs1F1B);
}

TEST(ExplainPipelinePlan, ParametersLiveOnTheirStages) {
  Loaded l = gather(twoStagePlan());
  const PlanFacts &f = l.facts;
  ASSERT_EQ(f.parameters.size(), 14u);
  EXPECT_EQ(f.parameters[0].stages, (std::vector<int>{0, 1})); // tied: first and last
  EXPECT_EQ(f.parameters[0].parameter.ranks, (std::vector<int>{0, 1}));
  EXPECT_EQ(f.parameters[1].stages, std::vector<int>{0});        // layer 0
  EXPECT_EQ(f.parameters[1].parameter.ranks, std::vector<int>{0});
  EXPECT_EQ(f.parameters[7].stages, std::vector<int>{1});        // layer 2
  EXPECT_EQ(f.parameters[13].stages, std::vector<int>{1});       // norm
  EXPECT_EQ(f.parameters[13].expAvgSq.ranks, std::vector<int>{1});
  EXPECT_EQ(layoutText(f, f.parameters[13].parameter), "whole: [8] on rank 1");
  EXPECT_EQ(layoutText(f, f.parameters[0].parameter), "replicated: [32, 8] on every device");
  std::string text = renderText(f);
  // Layers grouped per stage, not across the pipeline.
  EXPECT_TRUE(contains(text, "  model.layers.*.self_attn.q_proj.weight [8, 8], layers 0-1 "
                             "(stage 0)\n    parameter  whole: [8, 8] on rank 0\n"))
      << text;
  EXPECT_TRUE(contains(text, "  model.layers.*.self_attn.q_proj.weight [8, 8], layers 2-3 "
                             "(stage 1)\n    parameter  whole: [8, 8] on rank 1\n"))
      << text;
  EXPECT_TRUE(contains(text, "  model.embed_tokens.weight [32, 8] (stages 0-1)\n")) << text;
}

TEST(ExplainPipelinePlan, MemoryPerRankFromItsOwnProgram) {
  Loaded l = gather(twoStagePlan());
  const PlanFacts &f = l.facts;
  const ProgramFacts &p0 = f.programs[0], &p1 = f.programs[1];
  uint64_t layer = f32({8}) + f32({8, 8}) + f32({8, 16}), embed = f32({32, 8});
  EXPECT_EQ(p0.parameterBytes, embed + 2 * layer);
  EXPECT_EQ(p1.parameterBytes, embed + 2 * layer + f32({8}));
  EXPECT_EQ(p0.optimizerBytes, 2 * p0.parameterBytes);
  EXPECT_EQ(p1.optimizerBytes, 2 * p1.parameterBytes);
  EXPECT_EQ(p0.gradientBytes, p0.parameterBytes);
  EXPECT_EQ(p1.gradientBytes, p1.parameterBytes);
  EXPECT_EQ(p0.parameterBuffers, 7);
  EXPECT_EQ(p1.parameterBuffers, 8);
  EXPECT_EQ(p0.inputBindings, (std::vector<std::string>{"InputIds", "Step", "LearningRate"}));
  EXPECT_EQ(p1.inputBindings, (std::vector<std::string>{"Labels", "Step", "LearningRate"}));
  EXPECT_NE(p0.arenaBytes, p1.arenaBytes);
  EXPECT_NE(p0.totalBytes(), p1.totalBytes());
  std::string text = renderText(f);
  std::string memory = text.substr(text.find("memory per device"));
  EXPECT_TRUE(contains(memory, "  device 0 (stage 0):\n    parameters   " )) << memory;
  EXPECT_TRUE(contains(memory, "  device 1 (stage 1):\n")) << memory;
  EXPECT_TRUE(contains(memory, "3 buffers (ids, step, lr)")) << memory;
  EXPECT_TRUE(contains(memory, "3 buffers (labels, step, lr)")) << memory;
  EXPECT_TRUE(contains(memory, humanBytes(p0.totalBytes()))) << memory;
  EXPECT_TRUE(contains(memory, humanBytes(p1.totalBytes()))) << memory;
  EXPECT_TRUE(contains(memory, "liveness-planned (gradients " + humanBytes(p0.gradientBytes) +
                                   " in 7 buffers)\n"))
      << memory;
  EXPECT_TRUE(contains(memory, "liveness-planned (gradients " + humanBytes(p1.gradientBytes) +
                                   " in 8 buffers)\n"))
      << memory;
}

TEST(ExplainPipelinePlan, SendRecvPerStage) {
  Loaded l = gather(twoStagePlan());
  const PlanFacts &f = l.facts;
  auto rows0 = summarizeCollectives(f.programs[0]);
  ASSERT_EQ(rows0.size(), 3u);
  EXPECT_EQ(rows0[0].kind, "all_reduce");
  EXPECT_EQ(rows0[1].kind, "send");
  EXPECT_EQ(rows0[1].count, 4);
  EXPECT_EQ(rows0[1].bytes, 4u * 256);
  EXPECT_EQ(rows0[1].peerOffset, 1);
  EXPECT_EQ(rows0[1].peerStage, 1);
  EXPECT_EQ(rows0[2].kind, "recv");
  EXPECT_EQ(rows0[2].count, 8);
  EXPECT_EQ(rows0[2].bytes, 8u * 256);
  auto rows1 = summarizeCollectives(f.programs[1]);
  ASSERT_EQ(rows1.size(), 3u);
  EXPECT_EQ(rows1[1].kind, "send");
  EXPECT_EQ(rows1[1].count, 8);
  EXPECT_EQ(rows1[1].peerOffset, -1);
  EXPECT_EQ(rows1[1].peerStage, 0);
  std::string text = renderText(f);
  std::string coll = text.substr(text.find("collectives per step"));
  coll = coll.substr(0, coll.find("memory per device"));
  EXPECT_TRUE(contains(coll, "  device 0 (stage 0): 13 collectives, 4.0 KiB moved")) << coll;
  EXPECT_TRUE(contains(coll, "  device 1 (stage 1): 13 collectives, 4.0 KiB moved")) << coll;
  EXPECT_TRUE(contains(coll, "    send               pp            4      1.0 KiB  to stage 1 "
                             "(peer_offset +1)\n"))
      << coll;
  EXPECT_TRUE(contains(coll, "    recv               pp            8      2.0 KiB  from stage 1 "
                             "(peer_offset +1)\n"))
      << coll;
  EXPECT_TRUE(contains(coll, "    send               pp            8      2.0 KiB  to stage 0 "
                             "(peer_offset -1)\n"))
      << coll;
  EXPECT_TRUE(contains(coll, "    recv               pp            4      1.0 KiB  from stage 0 "
                             "(peer_offset -1)\n"))
      << coll;
  EXPECT_TRUE(contains(text, "  stage 0 (rank 0): embedding, layers 0-1\n")) << text;
  EXPECT_TRUE(contains(text, "  stage 1 (rank 1): layers 2-3, norm + LM head + loss (tied: holds "
                             "the embedding for the LM head)\n"))
      << text;
  EXPECT_TRUE(contains(text, "pass order read from each stage's instructions: 1F1B, as drawn"))
      << text;
}

TEST(ExplainPipelinePlan, JsonAgreesWithText) {
  Loaded l = gather(twoStagePlan());
  auto j = nlohmann::json::parse(renderJson(l.facts, "pp2.svg"));
  EXPECT_EQ(j["pipeline"]["micro_batches"], 4);
  EXPECT_EQ(j["pipeline"]["pp_axis"], "pp");
  EXPECT_EQ(j["pipeline"]["stages"][0]["contents"], "embedding, layers 0-1");
  EXPECT_EQ(j["pipeline"]["stages"][1]["ranks"], nlohmann::json::array({1}));
  EXPECT_EQ(j["pipeline"]["stages"][0]["plan_order"], "F0 F1 B0 F2 B1 F3 B2 B3");
  ASSERT_EQ(j["pipeline"]["timeline"]["stages"].size(), 2u);
  for (int s = 0; s < 2; ++s) {
    std::string row;
    for (auto &op : j["pipeline"]["timeline"]["stages"][s])
      row += (row.empty() ? "" : " ") + op["op"].get<std::string>();
    EXPECT_EQ(row, j["pipeline"]["stages"][s]["plan_order"].get<std::string>());
  }
  EXPECT_EQ(j["programs"][0]["memory"]["total"], l.facts.programs[0].totalBytes());
  EXPECT_EQ(j["programs"][1]["memory"]["total"], l.facts.programs[1].totalBytes());
  EXPECT_EQ(j["programs"][0]["pass_order"], "FFBFBFBB");
  EXPECT_EQ(j["parameters"][13]["layout"]["ranks"], nlohmann::json::array({1}));
  int sends = 0;
  for (auto &c : j["programs"][1]["collectives"]["instructions"])
    if (c["kind"] == "send") {
      EXPECT_EQ(c["peer_offset"], -1);
      EXPECT_EQ(c["peer_stage"], 0);
      EXPECT_EQ(c["bytes"], 256);
      EXPECT_EQ(c["tag"], sends % 2 ? 2 : 3);
      ++sends;
    }
  EXPECT_EQ(sends, 8);
}

TEST(ExplainPipelinePlan, SvgNamesEveryStageAndDrawsTwoBoxesPerMicroBatch) {
  for (int mb : {1, 2, 4, 7}) {
    Loaded l = gather(twoStagePlan(mb));
    ASSERT_TRUE(l.facts.timeline);
    std::string svg = renderScheduleSvg(l.facts);
    EXPECT_TRUE(contains(svg, ">stage 0 (rank 0)</text>")) << svg;
    EXPECT_TRUE(contains(svg, ">stage 1 (rank 1)</text>")) << svg;
    EXPECT_TRUE(contains(svg, ">embedding, layers 0-1</text>")) << svg;
    EXPECT_TRUE(contains(svg, ">layers 2-3, norm + LM head + loss</text>")) << svg;
    EXPECT_EQ(countOf(svg, "<rect class=\"box "), 2 * 2 * mb);
    for (int s = 0; s < 2; ++s) {
      EXPECT_EQ(countOf(svg, " on stage " + std::to_string(s) + ": "), 2 * mb);
      for (int k = 0; k < mb; ++k) {
        EXPECT_EQ(countOf(svg, "<title>F" + std::to_string(k) + " on stage " + std::to_string(s) +
                                   ":"),
                  1);
        EXPECT_EQ(countOf(svg, "<title>B" + std::to_string(k) + " on stage " + std::to_string(s) +
                                   ":"),
                  1);
      }
    }
    std::string text = renderText(l.facts, "pp2.svg");
    EXPECT_TRUE(contains(text, "(2 stages x " + std::to_string(mb) +
                                   (mb == 1 ? " micro-batch, " : " micro-batches, ") +
                                   std::to_string(4 * mb) + " boxes"))
        << text;
  }
}

// The two-stage plan with a prediction (pp=2, mb=4), in milliseconds: stage 0 forward 1,
// backward 2 (recompute 0.5), activation transfer 0.25, step 1.5; stage 1 forward 1.5,
// backward 3 (recompute 0), gradient transfer 0.5, step 1. The step ends at 23.25 ms, when
// stage 0's step ends (ExpectedPasses).
PipelinePlan predictedTwoStagePlan() {
  PipelinePlan plan = twoStagePlan(4);
  plan.recompute = "selective";
  plan.predicted.present = true;
  plan.predicted.seconds = 23.25e-3;
  plan.predicted.tokensPerSecondPerDevice = 1234.5;
  plan.predicted.mfu = 0.1234;
  plan.predicted.stages = {{1e-3, 2e-3, 1.5e-3, 0.25e-3, 0, 0.5e-3},
                           {1.5e-3, 3e-3, 1e-3, 0, 0.5e-3, 0.0}};
  return plan;
}

// Each pass's (start, end) in ms, by stage, in 1F1B order, worked out by hand: F k on
// stage 1 after F k on stage 0 + 0.25, B k on stage 0 after B k on stage 1 + 0.5.
const std::vector<std::vector<std::tuple<std::string, double, double>>> kExpectedPasses = {
    {{"F0", 0, 1}, {"F1", 1, 2}, {"B0", 6.25, 8.25}, {"F2", 8.25, 9.25},
     {"B1", 10.75, 12.75}, {"F3", 12.75, 13.75}, {"B2", 15.25, 17.25}, {"B3", 19.75, 21.75}},
    {{"F0", 1.25, 2.75}, {"B0", 2.75, 5.75}, {"F1", 5.75, 7.25}, {"B1", 7.25, 10.25},
     {"F2", 10.25, 11.75}, {"B2", 11.75, 14.75}, {"F3", 14.75, 16.25}, {"B3", 16.25, 19.25}}};

// The SVG's rect, line and text elements with their attributes (and a rect's <title>, a
// text's content), in document order.
struct SvgElement {
  std::string tag, body;
  std::map<std::string, std::string> attrs;
  std::string cls() const { return attrs.count("class") ? attrs.at("class") : ""; }
  double num(const std::string &name) const {
    return attrs.count(name) ? std::strtod(attrs.at(name).c_str(), nullptr) : std::nan("");
  }
};
std::vector<SvgElement> svgElements(const std::string &svg) {
  std::vector<SvgElement> out;
  static const std::regex element(R"re(<(rect|line|text)((?:\s+[\w:-]+="[^"]*")*)\s*(/?)>)re");
  static const std::regex attribute(R"re(([\w:-]+)="([^"]*)")re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), element); it != std::sregex_iterator();
       ++it) {
    SvgElement e;
    e.tag = (*it)[1];
    std::string attrs = (*it)[2];
    for (auto a = std::sregex_iterator(attrs.begin(), attrs.end(), attribute);
         a != std::sregex_iterator(); ++a)
      e.attrs[(*a)[1]] = (*a)[2];
    if ((*it)[3] != "/") {
      size_t from = size_t(it->position() + it->length());
      std::string close = "</" + e.tag + ">";
      size_t to = svg.find(close, from);
      e.body = svg.substr(from, to == std::string::npos ? 0 : to - from);
      if (e.tag == "text") // the XML entities escape() writes
        for (auto [entity, c] : std::vector<std::pair<std::string, std::string>>{
                 {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}})
          for (size_t at = e.body.find(entity); at != std::string::npos;
               at = e.body.find(entity, at + 1))
            e.body.replace(at, entity.size(), c);
    }
    out.push_back(e);
  }
  return out;
}
std::vector<SvgElement> ofClass(const std::vector<SvgElement> &all, const std::string &tag,
                                const std::string &cls) {
  std::vector<SvgElement> out;
  for (const SvgElement &e : all)
    if (e.tag == tag && (e.cls() == cls || e.cls().rfind(cls + " ", 0) == 0))
      out.push_back(e);
  return out;
}
std::string textOf(const std::vector<SvgElement> &all, const std::string &cls) {
  auto found = ofClass(all, "text", cls);
  return found.empty() ? "" : found.front().body;
}

// With the plan's prediction the picture is in seconds: every pass at its predicted start
// and end, x proportional to the time on an axis whose ticks carry units and whose last
// tick is at or past the step's end; each backward's recomputed share, each stage's step,
// the transfer waits; the title gives the predicted step time, tokens/s and MFU.
TEST(ExplainPipelinePlan, SvgDrawsThePredictionInSeconds) {
  Loaded l = gather(predictedTwoStagePlan());
  ASSERT_TRUE(l.facts.stageTimesPredicted) << l.facts.predictedStagesUnused;
  std::string svg = renderScheduleSvg(l.facts);
  auto all = svgElements(svg);
  // The axis: ticks every 5 ms from 0 to 25 ms (>= the 23.25 ms step), labelled with units.
  auto ticks = ofClass(all, "line", "tick");
  auto tickTexts = ofClass(all, "text", "tick");
  ASSERT_EQ(ticks.size(), 6u) << svg;
  ASSERT_EQ(tickTexts.size(), 6u);
  const char *labels[] = {"0", "5 ms", "10 ms", "15 ms", "20 ms", "25 ms"};
  for (size_t i = 0; i < ticks.size(); ++i) {
    EXPECT_NEAR(ticks[i].num("data-seconds"), 5e-3 * double(i), 1e-15);
    EXPECT_EQ(tickTexts[i].body, labels[i]);
  }
  EXPECT_GE(ticks.back().num("data-seconds"), l.facts.predictedSeconds);
  EXPECT_GE(ticks.back().num("data-seconds"), l.facts.timeline->end);
  double x0 = ticks.front().num("x1"), perSecond = (ticks.back().num("x1") - x0) / 25e-3;
  for (size_t i = 0; i < ticks.size(); ++i) // evenly spaced
    EXPECT_NEAR(ticks[i].num("x1"), x0 + perSecond * 5e-3 * double(i), 0.01);
  EXPECT_EQ(textOf(all, "axis"), "time since the step's start (ms)");
  auto placedAt = [&](const SvgElement &e, double start, double end) {
    EXPECT_NEAR(e.num("data-start"), start, 1e-12) << e.body;
    EXPECT_NEAR(e.num("data-end"), end, 1e-12) << e.body;
    EXPECT_NEAR(e.num("x"), x0 + start * perSecond, 0.011) << e.body;
    EXPECT_NEAR(e.num("width"), std::max(0.5, (end - start) * perSecond), 0.011) << e.body;
  };
  // Every pass where the prediction puts it, one row per stage.
  auto boxes = ofClass(all, "rect", "box");
  ASSERT_EQ(boxes.size(), 16u);
  std::vector<double> rowY;
  for (int s = 0; s < 2; ++s)
    for (size_t i = 0; i < 8; ++i) {
      const SvgElement &box = boxes[size_t(s) * 8 + i];
      auto [name, start, end] = kExpectedPasses[size_t(s)][i];
      EXPECT_EQ(box.body.rfind("<title>" + name + " on stage " + std::to_string(s) + ": ", 0),
                0u)
          << box.body;
      placedAt(box, start * 1e-3, end * 1e-3);
      EXPECT_EQ(box.cls(), name[0] == 'F' ? "box fwd" : "box bwd");
      if (i == 0)
        rowY.push_back(box.num("y"));
      EXPECT_EQ(box.num("y"), rowY[size_t(s)]);
    }
  ASSERT_LT(rowY[0], rowY[1]);
  // Stage 0's backwards begin with their 0.5 ms of recompute; stage 1 recomputes nothing.
  auto recompute = ofClass(all, "rect", "recompute");
  ASSERT_EQ(recompute.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    double start = std::get<1>(kExpectedPasses[0][std::vector<size_t>{2, 4, 6, 7}[i]]) * 1e-3;
    placedAt(recompute[i], start, start + 0.5e-3);
    EXPECT_EQ(recompute[i].num("y"), rowY[0]);
  }
  // Each stage's step after its last backward; stage 0's ends the step at 23.25 ms.
  auto steps = ofClass(all, "rect", "step");
  ASSERT_EQ(steps.size(), 2u);
  placedAt(steps[0], 21.75e-3, 23.25e-3);
  placedAt(steps[1], 19.25e-3, 20.25e-3);
  EXPECT_EQ(steps[0].num("y"), rowY[0]);
  EXPECT_EQ(steps[1].num("y"), rowY[1]);
  auto stepEnd = ofClass(all, "line", "step-end");
  ASSERT_EQ(stepEnd.size(), 1u);
  EXPECT_NEAR(stepEnd[0].num("x1"), x0 + 23.25e-3 * perSecond, 0.011);
  // Transfer waits: stage 1's F0 (the activation leaves at 1 ms, arrives at 1.25 ms) and
  // stage 0's backwards whose gradient was in flight while the stage was free.
  auto waits = ofClass(all, "rect", "p2p");
  std::vector<std::pair<double, double>> want = {
      {5.75, 6.25}, {10.25, 10.75}, {14.75, 15.25}, {19.25, 19.75}, {1, 1.25}};
  ASSERT_EQ(waits.size(), want.size()) << svg;
  for (size_t i = 0; i < want.size(); ++i)
    placedAt(waits[i], want[i].first * 1e-3, want[i].second * 1e-3);
  // The title line: the predicted step time, tokens/s per device and MFU; no note.
  std::string title = textOf(all, "title");
  EXPECT_EQ(title.rfind("Pipeline schedule: dp=1,pp=2,mb=4 \xE2\x80\x94 predicted 23.", 0), 0u)
      << title;
  EXPECT_TRUE(contains(title, " ms per step, 1,235 tokens/s per device, MFU 12.34%")) << title;
  EXPECT_TRUE(contains(textOf(all, "subtitle"), "bubble ")) << svg;
  EXPECT_EQ(textOf(all, "note"), "");
  for (const char *label : {">forward<", ">backward<", ">recompute (part of the backward)<",
                            ">step (update and reductions)<", ">waiting for a transfer (p2p)<",
                            ">idle (bubble)<"})
    EXPECT_TRUE(contains(svg, label)) << label;
}

// Without usable predicted stage times the picture is today's relative one and says why.
TEST(ExplainPipelinePlan, SvgWithoutPredictionSaysSo) {
  auto check = [](const PipelinePlan &plan, const std::string &why) {
    Loaded l = gather(plan);
    EXPECT_FALSE(l.facts.stageTimesPredicted);
    std::string svg = renderScheduleSvg(l.facts);
    auto all = svgElements(svg);
    EXPECT_EQ(textOf(all, "note"), "No predicted times in this plan (" + why +
                                       "): the time axis is relative, not seconds; steps and "
                                       "transfers are not drawn.");
    EXPECT_EQ(textOf(all, "title"), "Pipeline schedule: dp=1,pp=2,mb=4");
    EXPECT_EQ(textOf(all, "axis"), "time (relative)");
    EXPECT_EQ(ofClass(all, "rect", "box").size(), 16u);
    for (const char *cls : {"step", "p2p", "recompute"})
      EXPECT_TRUE(ofClass(all, "rect", cls).empty()) << cls;
    EXPECT_FALSE(contains(svg, "data-seconds")) << svg;
    EXPECT_FALSE(contains(svg, " ms<")) << svg;
    // Relative units: backward = 2 x forward, stage 1 three times stage 0 (its FLOPs).
    auto boxes = ofClass(all, "rect", "box");
    EXPECT_NEAR(boxes[0].num("data-end") - boxes[0].num("data-start"), 1.0 / 3.0, 1e-9);
    EXPECT_NEAR(boxes[8].num("data-end") - boxes[8].num("data-start"), 1.0, 1e-9);
  };
  check(twoStagePlan(4), "the plan has no prediction");
  PipelinePlan one = predictedTwoStagePlan();
  one.predicted.stages.pop_back(); // an edited plan: the prediction timed another pipeline
  check(one, "the prediction times 1 stage but the pipeline has 2");
  PipelinePlan zero = predictedTwoStagePlan();
  zero.predicted.stages[1].forward = 0;
  check(zero, "the prediction's stage times are not positive and finite");
  // A plan that does not record the backwards' recomputed share (written before
  // StageTiming.recompute) is drawn in seconds with whole backwards, and says so.
  PipelinePlan older = predictedTwoStagePlan();
  for (auto &st : older.predicted.stages)
    st.recompute.reset();
  Loaded l = gather(older);
  ASSERT_TRUE(l.facts.stageTimesPredicted);
  auto all = svgElements(renderScheduleSvg(l.facts));
  EXPECT_TRUE(ofClass(all, "rect", "recompute").empty());
  EXPECT_EQ(ofClass(all, "rect", "step").size(), 2u);
  EXPECT_EQ(textOf(all, "note"), "This plan does not record the recomputed share of the "
                                 "backwards (an older plan): backwards drawn whole.");
}

// Extreme but valid predicted times (denormal, huge) still give a bounded axis whose last
// tick is at or past the step.
TEST(ExplainPipelinePlan, SvgAxisOfExtremeTimes) {
  for (double unit : {5e-324, 1e-300, 1e-9, 1e300}) {
    PipelinePlan plan = predictedTwoStagePlan();
    plan.predicted.seconds = 23.25 * unit;
    for (auto &st : plan.predicted.stages)
      for (double *x : {&st.forward, &st.backward, &st.step, &st.sendForward, &st.sendBackward})
        *x = *x * 1e3 * unit;
    plan.predicted.stages[0].recompute = 0.5 * unit;
    Loaded l = gather(plan);
    if (!l.facts.stageTimesPredicted) // denormals may round to zero: the relative picture
      continue;
    auto all = svgElements(renderScheduleSvg(l.facts));
    auto ticks = ofClass(all, "line", "tick");
    ASSERT_FALSE(ticks.empty()) << unit;
    EXPECT_LE(ticks.size(), 1001u) << unit;
    EXPECT_GE(ticks.back().num("data-seconds"), l.facts.timeline->end * (1 - 1e-12)) << unit;
    EXPECT_EQ(ofClass(all, "rect", "box").size(), 16u);
  }
}

// The SVG is well-formed XML (python3's xml.etree, when there is a python3), with and
// without a prediction.
TEST(ExplainPipelinePlan, SvgParsesAsXml) {
  if (std::system("python3 -c 'import xml.etree.ElementTree' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no python3";
  for (bool predicted : {false, true}) {
    Loaded l = gather(predicted ? predictedTwoStagePlan() : twoStagePlan());
    std::string path = ::testing::TempDir() + "explain-pp2-" + std::to_string(getpid()) + ".svg";
    std::ofstream(path) << renderScheduleSvg(l.facts);
    std::string script =
        "import sys, xml.etree.ElementTree as ET; ns='{http://www.w3.org/2000/svg}'; "
        "root=ET.parse(sys.argv[1]).getroot(); assert root.tag==ns+'svg'; "
        "boxes=[r for r in root.iter(ns+'rect') if 'box' in r.get('class','').split()]; "
        "assert len(boxes)==16, len(boxes); "
        "names=[t.text for t in root.iter(ns+'text') if (t.text or '').startswith('stage ')]; "
        "assert names==['stage 0 (rank 0)','stage 1 (rank 1)'], names; "
        "steps=[r for r in root.iter(ns+'rect') if r.get('class')=='step']; "
        "assert len(steps)==" + std::string(predicted ? "2" : "0") + ", len(steps)";
    int rc = std::system(("python3 -c \"" + script + "\" " + path).c_str());
    std::remove(path.c_str());
    EXPECT_EQ(rc, 0) << (predicted ? "with" : "without") << " a prediction";
  }
}

// An order that is not 1F1B (GPipe: every forward, then every backward) is reported.
TEST(ExplainPipelinePlan, ReportsOtherOrders) {
  std::vector<std::pair<bool, int>> gpipe;
  for (int k = 0; k < 4; ++k)
    gpipe.push_back({true, k});
  for (int k = 0; k < 4; ++k)
    gpipe.push_back({false, k});
  PipelinePlan plan = twoStagePlan(4, {gpipe, oneFOneBOrder(2, 1, 4)});
  Loaded l = gather(plan);
  EXPECT_EQ(l.facts.stages[0].planOrder, "F0 F1 F2 F3 B0 B1 B2 B3");
  EXPECT_FALSE(l.facts.stages[0].planOrderIs1F1B);
  std::string text = renderText(l.facts);
  EXPECT_TRUE(contains(text, "  stage 0 order from its instructions: F0 F1 F2 F3 B0 B1 B2 B3 "
                             "(not the 1F1B drawn)\n"))
      << text;
  EXPECT_TRUE(contains(text, "  stage 1 order from its instructions: F0 B0 F1 B1 F2 B2 F3 B3 "
                             "(1F1B)\n"))
      << text;
}

// The order comes from the marks, micro-batch numbers included: a stage that runs its
// micro-batches out of order shows them as they run.
TEST(ExplainPipelinePlan, OrderComesFromTheMarks) {
  std::vector<std::pair<bool, int>> reversed = {{true, 1}, {true, 0}, {false, 1}, {false, 0}};
  Loaded l = gather(twoStagePlan(2, {reversed, oneFOneBOrder(2, 1, 2)}));
  EXPECT_EQ(l.facts.stages[0].planOrder, "F1 F0 B1 B0");
  EXPECT_FALSE(l.facts.stages[0].planOrderIs1F1B);
  EXPECT_EQ(l.facts.stages[1].planOrder, "F0 B0 F1 B1");
  // Without marks there is no order to show.
  PipelinePlan unmarked = twoStagePlan(2);
  for (Prog &prog : unmarked.programs)
    for (Inst &inst : prog.instructions)
      inst.pass = fb::Pass::Other;
  Loaded m = gather(unmarked);
  EXPECT_EQ(m.facts.stages[0].planOrder, "");
  EXPECT_TRUE(m.facts.programs[0].passes.empty());
}

// Every device of a stage gets the stage's facts, kept once per stage: mesh [dp 2, pp 2]
// with two programs; a device's program follows from its coordinate on pp.
TEST(ExplainPipelinePlan, DevicesOfAStageShareItsProgram) {
  PipelinePlan plan = twoStagePlan();
  plan.mesh = {2, 2};
  plan.batch = 8;
  Loaded l = gather(plan);
  ASSERT_EQ(l.facts.programs.size(), 2u);
  EXPECT_EQ(l.facts.stages[0].ranks, (std::vector<int>{0, 2}));
  EXPECT_EQ(l.facts.stages[1].ranks, (std::vector<int>{1, 3}));
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(&l.facts.programOf(r), &l.facts.programs[size_t(r % 2)]);
    EXPECT_EQ(l.facts.programOf(r).stage, r % 2);
    EXPECT_EQ(l.facts.programOf(r).ppCoordinate, r % 2);
  }
  EXPECT_EQ(l.facts.parameters[13].parameter.ranks, (std::vector<int>{1, 3}));
  // The text names each stage's devices once, the JSON each stage's program with them.
  std::string text = renderText(l.facts);
  EXPECT_NE(text.find("  devices 0, 2 (stage 0): "), std::string::npos) << text;
  EXPECT_NE(text.find("  devices 1, 3 (stage 1): "), std::string::npos) << text;
  nlohmann::json j = nlohmann::json::parse(renderJson(l.facts));
  ASSERT_EQ(j["programs"].size(), 2u);
  EXPECT_EQ(j["programs"][1]["ranks"], (std::vector<int>{1, 3}));
  EXPECT_EQ(j["programs"][1]["pp_coordinate"], 1);
}

// The example of docs/tools/apc-explain.md: the two-stage plan's explanation renders and
// names both stages. APC_EXPLAIN_PRINT=1 prints it (APC_EXPLAIN_SVG=F writes the picture);
// APC_EXPLAIN_WRITE_PLAN=F writes the plan for test/tools/apc/explain-stages.test.
TEST(ExplainPipelinePlan, RendersTheDocsExample) {
  if (const char *path = std::getenv("APC_EXPLAIN_WRITE_PLAN")) {
    std::ofstream(path, std::ios::binary) << twoStagePlan().build();
    return;
  }
  Loaded l = gather(twoStagePlan());
  std::string text = renderText(l.facts, "pp2.svg");
  EXPECT_NE(text.find("stage 0"), std::string::npos) << text;
  EXPECT_NE(text.find("stage 1"), std::string::npos) << text;
  if (std::getenv("APC_EXPLAIN_PRINT"))
    std::printf("%s", text.c_str());
  if (const char *svg = std::getenv("APC_EXPLAIN_SVG"))
    std::ofstream(svg) << renderScheduleSvg(l.facts);
}
