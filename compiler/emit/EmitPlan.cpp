// plan.fb writer: a direct translation of ExecProgram into the flatbuffers schema
// (runtime/schema/plan.fbs), plus the model, data and optimizer descriptions.
#include "compiler/emit/EmitPlan.h"

#include "compiler/partition/ParallelPlan.h"
#include "compiler/support/Mesh.h"
#include "dialects/ap/IR/ApOps.h"
#include "runtime/plan/PlanVersion.h"
#include "runtime/schema/plan_generated.h"

#include <map>

namespace apc::emit {
namespace {

namespace fb = apc::plan;
using namespace mlir;

int64_t getInt(DictionaryAttr d, StringRef key) {
  auto a = d ? d.getAs<IntegerAttr>(key) : IntegerAttr();
  return a ? a.getInt() : 0;
}
double getFloat(DictionaryAttr d, StringRef key) {
  auto a = d ? d.getAs<FloatAttr>(key) : FloatAttr();
  return a ? a.getValueAsDouble() : 0.0;
}
std::string getString(DictionaryAttr d, StringRef key) {
  auto a = d ? d.getAs<StringAttr>(key) : StringAttr();
  return a ? a.getValue().str() : "";
}

} // namespace

FailureOr<std::string> emitPlan(const std::vector<lowering::ExecProgram> &stages,
                                func::FuncOp step, const PlanInfo &info) {
  auto model = step->getAttrOfType<DictionaryAttr>("ap.model");
  if (!model)
    return step.emitError() << "emit: @" << step.getSymName()
                            << " has no ap.model (was it made by apc import?)";
  ap::AdamWOp adam;
  step.walk([&](ap::AdamWOp op) {
    if (!adam)
      adam = op;
  });
  if (!adam)
    return step.emitError() << "emit: @" << step.getSymName()
                            << " has no ap.adamw: compile to the optimizer phase first";
  const lowering::ExecProgram &first = stages.front();
  int64_t batch = 0, seqLen = 0;
  lowering::DType idsType = lowering::DType::I64;
  for (const lowering::ExecBuffer &b : first.buffers)
    if (b.binding == lowering::Binding::InputIds && b.shape.size() == 2) {
      batch = b.shape[0];
      seqLen = b.shape[1];
      idsType = b.dtype;
    }
  // The program's input_ids hold one data-parallel share; the plan records the global batch.
  if (!first.meshShape.empty())
    batch *= first.meshShape[0];
  if (batch == 0)
    return step.emitError() << "emit: @" << step.getSymName()
                            << " has no [batch, seq] input_ids argument";

  flatbuffers::FlatBufferBuilder fbb(1 << 16);
  auto modelConfig = fb::CreateModelConfig(
      fbb, fbb.CreateString(getString(model, "architecture")), getInt(model, "hidden_size"),
      getInt(model, "intermediate_size"), getInt(model, "num_hidden_layers"),
      getInt(model, "num_attention_heads"), getInt(model, "num_key_value_heads"),
      getInt(model, "head_dim"), getInt(model, "vocab_size"),
      getInt(model, "max_position_embeddings"), getFloat(model, "rope_theta"),
      getFloat(model, "rms_norm_eps"), getFloat(model, "initializer_range"),
      model.getAs<BoolAttr>("tie_word_embeddings") &&
          model.getAs<BoolAttr>("tie_word_embeddings").getValue(),
      fbb.CreateString(getString(model, "rope_type")), getFloat(model, "rope_factor"),
      getFloat(model, "rope_low_freq_factor"), getFloat(model, "rope_high_freq_factor"),
      getInt(model, "rope_original_max_position_embeddings"));

  // The plan's parameters: every stage's, in stage order (the model's named_parameters()
  // order: embedding, layers, norm, head), each once (a tied embedding is on two stages).
  std::vector<lowering::ExecParameter> allParameters;
  std::map<std::string, int> parameterIndex;
  std::vector<std::vector<int>> globalIndex(stages.size());
  for (size_t s = 0; s < stages.size(); ++s)
    for (const lowering::ExecParameter &p : stages[s].parameters) {
      auto [it, added] = parameterIndex.try_emplace(p.name, int(allParameters.size()));
      if (added)
        allParameters.push_back(p);
      globalIndex[s].push_back(it->second);
    }
  std::vector<flatbuffers::Offset<fb::ParameterSpec>> parameters;
  for (const lowering::ExecParameter &p : allParameters)
    parameters.push_back(fb::CreateParameterSpec(fbb, fbb.CreateString(p.name),
                                                 fbb.CreateVector(p.shape), fb::DType::F32,
                                                 fbb.CreateString(p.init)));

  uint64_t bytesPerDevice = 0;
  double flops = 0;
  std::vector<flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Buffer>>>>
      stageBuffers;
  for (size_t s = 0; s < stages.size(); ++s) {
    uint64_t persistentBytes = 0;
    std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
    for (const lowering::ExecBuffer &b : stages[s].buffers) {
      if (b.kind != lowering::BufferKind::Arena && b.kind != lowering::BufferKind::Alias)
        persistentBytes += b.bytes();
      buffers.push_back(fb::CreateBuffer(
          fbb, fbb.CreateString(b.name), fb::DType(b.dtype), fbb.CreateVector(b.shape),
          fb::BufferKind(b.kind), b.offset, b.bytes(), b.aliasOf,
          b.parameter >= 0 ? globalIndex[s][b.parameter] : -1,
          b.optimizerSlot.empty() ? 0 : fbb.CreateString(b.optimizerSlot),
          fb::Binding(b.binding), b.dimAxes.empty() ? 0 : fbb.CreateVector(b.dimAxes)));
    }
    stageBuffers.push_back(fbb.CreateVector(buffers));
    bytesPerDevice = std::max(bytesPerDevice, persistentBytes + stages[s].arenaBytes);
    double stageFlops = 0;
    for (const lowering::ExecInstruction &inst : stages[s].instructions)
      stageFlops += inst.flops;
    flops = std::max(flops, stageFlops); // the slowest stage sets the pace
  }
  // One program per device: its stage's (the mesh axis "pp" when pipelined). They share
  // the buffers; the instructions differ only where an op holds a block of the
  // vocabulary (vocab_shard_axis): each device gets the first id of its block as
  // `vocab_start`.
  const std::vector<int64_t> &mesh = first.meshShape;
  int64_t devices = 1;
  for (int64_t d : mesh)
    devices *= d;
  int ppAxis = -1;
  for (size_t a = 0; a < first.meshAxes.size(); ++a)
    if (first.meshAxes[a] == "pp")
      ppAxis = int(a);
  auto coordsOf = [&](int64_t device) {
    std::vector<int64_t> coords(mesh.size());
    for (int64_t d = int64_t(coords.size()) - 1, r = device; d >= 0; --d) {
      coords[d] = r % mesh[d];
      r /= mesh[d];
    }
    return coords;
  };
  auto emitInstructions = [&](const lowering::ExecProgram &program,
                              const std::vector<int64_t> &coords) {
    std::vector<flatbuffers::Offset<fb::Instruction>> instructions;
    for (const lowering::ExecInstruction &inst : program.instructions) {
      std::vector<flatbuffers::Offset<fb::Attribute>> attrs;
      int64_t shardAxis = -1, shardRows = 0;
      for (const lowering::ExecAttribute &a : inst.attributes) {
        if (a.name == "vocab_shard_axis") {
          shardAxis = a.i;
          continue;
        }
        if (a.name == "vocab_shard_rows") {
          shardRows = a.i;
          continue;
        }
        attrs.push_back(fb::CreateAttribute(
            fbb, fbb.CreateString(a.name), fb::AttributeKind(a.kind), a.i, a.f, a.b,
            a.kind == lowering::ExecAttribute::Kind::String ? fbb.CreateString(a.s) : 0,
            a.kind == lowering::ExecAttribute::Kind::Ints ? fbb.CreateVector(a.ints) : 0));
      }
      if (shardAxis >= 0 && size_t(shardAxis) < coords.size())
        attrs.push_back(fb::CreateAttribute(fbb, fbb.CreateString("vocab_start"),
                                            fb::AttributeKind::Int,
                                            coords[shardAxis] * shardRows));
      instructions.push_back(fb::CreateInstruction(
          fbb, fbb.CreateString(inst.kernel), fbb.CreateVector(inst.inputs),
          fbb.CreateVector(inst.outputs), fbb.CreateVector(attrs), inst.flops));
    }
    return fbb.CreateVector(instructions);
  };
  std::vector<bool> perDevice(stages.size(), false);
  std::vector<flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Instruction>>>>
      shared(stages.size());
  std::vector<flatbuffers::Offset<fb::Program>> programs;
  for (int64_t device = 0; device < devices; ++device) {
    std::vector<int64_t> coords = coordsOf(device);
    size_t s = ppAxis >= 0 ? size_t(coords[ppAxis]) : 0;
    if (s >= stages.size())
      return step.emitError() << "emit: device " << device << " is on stage " << s << " but "
                              << stages.size() << " stage programs were lowered";
    const lowering::ExecProgram &program = stages[s];
    if (shared[s].IsNull()) {
      for (const lowering::ExecInstruction &inst : program.instructions)
        for (const lowering::ExecAttribute &a : inst.attributes)
          perDevice[s] = perDevice[s] || a.name == "vocab_shard_axis";
      shared[s] = emitInstructions(program, coords);
    }
    auto instructions = perDevice[s] ? emitInstructions(program, coords) : shared[s];
    programs.push_back(fb::CreateProgram(fbb, int32_t(device), stageBuffers[s], instructions,
                                         program.arenaBytes, program.loss, program.gradNorm,
                                         int32_t(s)));
  }

  auto data = fb::CreateDataSpec(fbb, batch, seqLen, info.padId, fb::DType(idsType));
  auto optimizer = fb::CreateOptimizerSpec(
      fbb, fbb.CreateString("adamw"), adam.getBeta1().convertToDouble(),
      adam.getBeta2().convertToDouble(), adam.getEpsilon().convertToDouble(),
      adam.getWeightDecay().convertToDouble(),
      adam.getMaxGradNorm() ? adam.getMaxGradNorm()->convertToDouble() : 0.0);
  auto predicted = fb::CreatePrediction(fbb, flops, flops / info.clusterFlopsPerSecond,
                                        bytesPerDevice, fbb.CreateString(info.cluster));
  auto precision = step->getAttrOfType<StringAttr>("ap.precision");
  std::string precisionName =
      precision && precision.getValue() != "f32" ? precision.getValue().str() : "fp32";
  // The pipeline section: the stages' layers as ap-pipeline recorded them (one stage
  // holding every layer without it), the micro-batches and the recompute mode.
  auto module = step->getParentOfType<ModuleOp>();
  partition::ParallelPlan parallel = partition::fromAttr(parallelPlanOf(module));
  int64_t layers = getInt(model, "num_hidden_layers");
  std::vector<int64_t> stageLayers = {0, layers};
  if (auto pipelined = module->getAttrOfType<DictionaryAttr>("ap.pipeline"))
    if (auto recorded = pipelined.getAs<DenseI64ArrayAttr>("stage_layers"))
      stageLayers.assign(recorded.asArrayRef().begin(), recorded.asArrayRef().end());
  if (stageLayers.size() != 2 * stages.size())
    return step.emitError() << "emit: " << stages.size() << " stage programs but "
                            << stageLayers.size() / 2 << " stages recorded in ap.pipeline";
  std::vector<flatbuffers::Offset<fb::StageSpec>> stageSpecs;
  for (size_t s = 0; s < stages.size(); ++s)
    stageSpecs.push_back(fb::CreateStageSpec(fbb, int32_t(stageLayers[2 * s]),
                                             int32_t(stageLayers[2 * s + 1]), s == 0,
                                             s + 1 == stages.size()));
  auto pipeline = fb::CreatePipelineSpec(
      fbb, fbb.CreateVector(stageSpecs), int32_t(parallel.mb), fbb.CreateString("1f1b"),
      fbb.CreateString(parallel.recompute));
  auto plan = fb::CreatePlan(fbb, plan::kPlanVersion, fbb.CreateString("apc 0.1"),
                             modelConfig, fbb.CreateVector(parameters), data,
                             fbb.CreateString(precisionName), optimizer,
                             fbb.CreateVector(programs), predicted,
                             fbb.CreateVector(first.meshShape),
                             fbb.CreateVectorOfStrings(first.meshAxes),
                             fbb.CreateString(first.parallelPlan), pipeline);
  fb::FinishPlanBuffer(fbb, plan);
  return std::string(reinterpret_cast<const char *>(fbb.GetBufferPointer()), fbb.GetSize());
}

} // namespace apc::emit
