// Hand-built plans for runtime tests: a few lines per buffer and instruction instead of
// a compiled model, written with the same flatbuffers schema `apc compile` uses.
//
//   PlanSpec spec;
//   spec.mesh = {2, 2};
//   spec.parameters = {{"w", {4, 6}}};
//   ProgramSpec program;
//   program.addStandardInputs(spec);        // input_ids, labels, step, lr, loss
//   int w = program.parameter(0, {2, 6}, {1, -1});
//   ...
//   spec.programs = {program};              // one per pipeline stage
//   auto loaded = plan::LoadedPlan::fromBytes(spec.build(), "test.fb");
#pragma once

#include "runtime/plan/PlanVersion.h"
#include "runtime/schema/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::testing {

struct AttributeSpec {
  std::string name;
  plan::AttributeKind kind = plan::AttributeKind::Int;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<int64_t> ints;

  static AttributeSpec Int(std::string name, int64_t v) {
    AttributeSpec a;
    a.name = std::move(name);
    a.i = v;
    return a;
  }
  static AttributeSpec Ints(std::string name, std::vector<int64_t> v) {
    AttributeSpec a;
    a.name = std::move(name);
    a.kind = plan::AttributeKind::Ints;
    a.ints = std::move(v);
    return a;
  }
  static AttributeSpec Bool(std::string name, bool v) {
    AttributeSpec a;
    a.name = std::move(name);
    a.kind = plan::AttributeKind::Bool;
    a.b = v;
    return a;
  }
  static AttributeSpec String(std::string name, std::string v) {
    AttributeSpec a;
    a.name = std::move(name);
    a.kind = plan::AttributeKind::String;
    a.s = std::move(v);
    return a;
  }
};

struct BufferSpec {
  std::string name;
  plan::DType dtype = plan::DType::F32;
  std::vector<int64_t> shape;
  plan::BufferKind kind = plan::BufferKind::Arena;
  uint64_t offset = 0;
  int aliasOf = -1;
  int parameter = -1;
  std::string slot;
  plan::Binding binding = plan::Binding::None;
  std::vector<int32_t> dimAxes;

  uint64_t bytes() const {
    uint64_t n = dtype == plan::DType::F32 || dtype == plan::DType::I32 ? 4
                 : dtype == plan::DType::I64                            ? 8
                                                                        : 2;
    for (int64_t d : shape)
      n *= uint64_t(d);
    return n;
  }
};

struct InstructionSpec {
  std::string kernel;
  std::vector<int> inputs, outputs;
  std::vector<AttributeSpec> attributes;
};

struct PlanSpec;

// One stage's program: PlanSpec::programs holds one per pipeline stage, in stage order,
// and every device of the stage runs it (plan.fbs, version 4).
struct ProgramSpec {
  int stage = 0; // its pipeline stage (PlanSpec::stages), its index in PlanSpec::programs
  std::vector<BufferSpec> buffers;
  std::vector<InstructionSpec> instructions;
  uint64_t arenaBytes = 0;
  int loss = -1;
  uint32_t numEvents = 0; // Program.num_events (streams and events, version 5)

  // Adds a buffer; an Arena buffer gets the next 64-byte aligned offset.
  int add(BufferSpec b) {
    if (b.kind == plan::BufferKind::Arena) {
      b.offset = (arenaBytes + 63) / 64 * 64;
      arenaBytes = b.offset + b.bytes();
    }
    buffers.push_back(std::move(b));
    return int(buffers.size()) - 1;
  }
  int arena(std::string name, plan::DType dtype, std::vector<int64_t> shape) {
    BufferSpec b;
    b.name = std::move(name);
    b.dtype = dtype;
    b.shape = std::move(shape);
    return add(std::move(b));
  }
  // A Parameter buffer of parameter `p` (or, with `slot`, its OptimizerState).
  int parameter(int p, std::vector<int64_t> localShape, std::vector<int32_t> dimAxes = {},
                std::string slot = "") {
    BufferSpec b;
    b.name = (slot.empty() ? "" : slot + ".") + "p" + std::to_string(p);
    b.shape = std::move(localShape);
    b.kind = slot.empty() ? plan::BufferKind::Parameter : plan::BufferKind::OptimizerState;
    b.parameter = p;
    b.slot = std::move(slot);
    b.dimAxes = std::move(dimAxes);
    return add(std::move(b));
  }
  // input_ids and labels of the rank's batch share, step, lr, and a scalar loss. A
  // pipeline stage without the embedding (the head) has no input_ids (labels).
  inline void addStandardInputs(const PlanSpec &plan, bool ids = true, bool labels = true);
  void call(std::string kernel, std::vector<int> inputs, std::vector<int> outputs,
            std::vector<AttributeSpec> attributes = {}) {
    instructions.push_back({std::move(kernel), std::move(inputs), std::move(outputs),
                            std::move(attributes)});
  }
};

struct PlanSpec {
  struct Parameter {
    std::string name;
    std::vector<int64_t> shape;
    std::string init = "normal";
  };
  std::vector<int64_t> mesh;
  std::vector<std::string> axisNames; // empty: "dp", "axis1", ...
  std::vector<Parameter> parameters;
  struct Stage {
    int firstLayer = 0, numLayers = 1;
    bool embedding = false, head = false;
  };
  std::vector<Stage> stages; // empty: no pipeline section
  int64_t batch = 2, seqLen = 4;
  std::vector<ProgramSpec> programs;

  int64_t devices() const {
    int64_t n = 1;
    for (int64_t d : mesh)
      n *= d;
    return n;
  }

  // The plan.fb bytes.
  std::string build() const {
    namespace fb = plan;
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<fb::ParameterSpec>> params;
    for (const Parameter &p : parameters)
      params.push_back(fb::CreateParameterSpec(fbb, fbb.CreateString(p.name),
                                               fbb.CreateVector(p.shape), fb::DType::F32,
                                               fbb.CreateString(p.init)));
    std::vector<flatbuffers::Offset<fb::Program>> progs;
    for (const ProgramSpec &prog : programs) {
      std::vector<flatbuffers::Offset<fb::Buffer>> bufs;
      for (const BufferSpec &b : prog.buffers)
        bufs.push_back(fb::CreateBuffer(
            fbb, fbb.CreateString(b.name), b.dtype, fbb.CreateVector(b.shape), b.kind, b.offset,
            b.bytes(), b.aliasOf, b.parameter, b.slot.empty() ? 0 : fbb.CreateString(b.slot),
            b.binding, b.dimAxes.empty() ? 0 : fbb.CreateVector(b.dimAxes)));
      std::vector<flatbuffers::Offset<fb::Instruction>> insts;
      for (const InstructionSpec &inst : prog.instructions) {
        std::vector<flatbuffers::Offset<fb::Attribute>> attrs;
        for (const AttributeSpec &a : inst.attributes)
          attrs.push_back(fb::CreateAttribute(fbb, fbb.CreateString(a.name), a.kind, a.i, a.f,
                                              a.b, fbb.CreateString(a.s),
                                              fbb.CreateVector(a.ints)));
        insts.push_back(fb::CreateInstruction(fbb, fbb.CreateString(inst.kernel),
                                              fbb.CreateVector(inst.inputs),
                                              fbb.CreateVector(inst.outputs),
                                              fbb.CreateVector(attrs), 0.0));
      }
      progs.push_back(fb::CreateProgram(fbb, fbb.CreateVector(bufs),
                                        fbb.CreateVector(insts), prog.arenaBytes, prog.loss,
                                        -1, prog.stage, prog.numEvents));
    }
    auto model = fb::CreateModelConfig(fbb, fbb.CreateString("llama3"), 8, 16, 1, 2, 2, 4, 32,
                                       64, 10000.0, 1e-5, 0.02, false,
                                       fbb.CreateString("default"));
    auto data = fb::CreateDataSpec(fbb, batch, seqLen, -1, fb::DType::I64);
    auto optimizer = fb::CreateOptimizerSpec(fbb, fbb.CreateString("adamw"), 0.9, 0.999, 1e-8,
                                             0.0, 0.0);
    std::vector<flatbuffers::Offset<flatbuffers::String>> axes;
    for (size_t a = 0; a < mesh.size(); ++a)
      axes.push_back(fbb.CreateString(a < axisNames.size() ? axisNames[a]
                                      : a == 0             ? std::string("dp")
                                                           : "axis" + std::to_string(a)));
    flatbuffers::Offset<fb::PipelineSpec> pipeline = 0;
    if (!stages.empty()) {
      std::vector<flatbuffers::Offset<fb::StageSpec>> stageSpecs;
      for (const Stage &st : stages)
        stageSpecs.push_back(
            fb::CreateStageSpec(fbb, st.firstLayer, st.numLayers, st.embedding, st.head));
      pipeline = fb::CreatePipelineSpec(fbb, fbb.CreateVector(stageSpecs), 1,
                                        fbb.CreateString("1f1b"), fbb.CreateString("none"));
    }
    auto root = fb::CreatePlan(fbb, plan::kPlanVersion, fbb.CreateString("test"), model,
                               fbb.CreateVector(params), data, fbb.CreateString("fp32"),
                               optimizer, fbb.CreateVector(progs), 0, fbb.CreateVector(mesh),
                               fbb.CreateVector(axes), fbb.CreateString("test"), pipeline);
    fb::FinishPlanBuffer(fbb, root);
    return std::string(reinterpret_cast<const char *>(fbb.GetBufferPointer()), fbb.GetSize());
  }
};

inline void ProgramSpec::addStandardInputs(const PlanSpec &plan, bool ids, bool labels) {
  int64_t dp = plan.mesh.empty() ? 1 : plan.mesh[0];
  for (auto [name, binding] : {std::pair{"input_ids", plan::Binding::InputIds},
                               std::pair{"labels", plan::Binding::Labels}}) {
    if (!(binding == plan::Binding::InputIds ? ids : labels))
      continue;
    BufferSpec b;
    b.name = name;
    b.dtype = plan::DType::I64;
    b.shape = {plan.batch / dp, plan.seqLen};
    b.kind = plan::BufferKind::Input;
    b.binding = binding;
    add(b);
  }
  BufferSpec step;
  step.name = "step";
  step.dtype = plan::DType::I64;
  step.kind = plan::BufferKind::Input;
  step.binding = plan::Binding::Step;
  add(step);
  BufferSpec lr;
  lr.name = "lr";
  lr.kind = plan::BufferKind::Input;
  lr.binding = plan::Binding::LearningRate;
  add(lr);
  loss = arena("loss", plan::DType::F32, {});
}

} // namespace apc::testing
