// plan.fb writer: a direct translation of ExecProgram into the flatbuffers schema
// (runtime/schema/plan.fbs), plus the model, data and optimizer descriptions.
//
// A plan grows with the pipeline stages, not the devices: one program per stage, names
// and small vectors stored once, and a refusal rather than a corrupt file past
// flatbuffers' 2 GiB.
#include "compiler/emit/EmitPlan.h"

#include "compiler/partition/ParallelPlan.h"
#include "compiler/support/Mesh.h"
#include "dialects/ap/IR/ApOps.h"
#include "runtime/plan/PlanVersion.h"

#include <algorithm>
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

// The Prediction table: the cost model's figures when the driver ran it.
flatbuffers::Offset<fb::Prediction> writePrediction(flatbuffers::FlatBufferBuilder &fbb,
                                                    const PlanInfo &info, double flops,
                                                    uint64_t bytesPerDevice) {
  auto cluster = fbb.CreateString(info.cluster);
  const cost::Prediction *p = info.prediction;
  if (!p)
    return fb::CreatePrediction(fbb, flops, 0.0, bytesPerDevice, cluster);
  std::vector<flatbuffers::Offset<fb::PredictionTerm>> terms;
  for (const auto &[name, seconds] : p->breakdown)
    terms.push_back(fb::CreatePredictionTerm(fbb, fbb.CreateString(name), seconds));
  // The largest stage's memory by kind (the one bytes_per_device is).
  cost::MemoryUse largest;
  for (const cost::StagePrediction &s : p->stages)
    if (s.memory.total() > largest.total())
      largest = s.memory;
  std::vector<flatbuffers::Offset<fb::MemoryTerm>> memory;
  for (const auto &[name, bytes] : cost::memoryTerms(largest))
    memory.push_back(fb::CreateMemoryTerm(fbb, fbb.CreateString(name), bytes));
  std::vector<flatbuffers::Offset<fb::StageTiming>> stages;
  for (const cost::StagePrediction &s : p->stages)
    stages.push_back(fb::CreateStageTiming(fbb, s.forward, s.backward, s.step, s.sendForward,
                                           s.sendBackward, s.recompute));
  std::vector<flatbuffers::Offset<fb::StageTiming>> chunks;
  for (const schedule::StageTimes &c : p->chunkTimes)
    chunks.push_back(fb::CreateStageTiming(fbb, c.forward, c.backward, 0, c.sendForward,
                                           c.sendBackward, 0.0));
  return fb::CreatePrediction(fbb, flops, p->secondsPerStep, bytesPerDevice, cluster,
                              p->tokensPerSecondPerDevice, p->mfu, p->fits,
                              p->usableBytesPerDevice, fbb.CreateVector(terms),
                              fbb.CreateVector(memory), fbb.CreateVector(stages),
                              chunks.empty() ? 0 : fbb.CreateVector(chunks));
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
  DType idsType = DType::I64;
  for (const lowering::ExecBuffer &b : first.buffers)
    if (b.binding == lowering::Binding::InputIds && b.shape.size() == 2) {
      batch = b.shape[0];
      seqLen = b.shape[1];
      idsType = b.dtype;
    }
  // The program's input_ids hold one data-parallel share; the plan records the global batch.
  for (size_t a = 0; a < first.meshAxes.size() && a < first.meshShape.size(); ++a)
    if (first.meshAxes[a] == "dp")
      batch *= first.meshShape[a];
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

  // What would pass flatbuffers' 32-bit offsets is refused before it is written: the
  // builder itself does not check in release builds and would write a corrupt file.
  // Checked after every buffer and instruction, none of which comes near the margin.
  uint64_t limit = std::min<uint64_t>(info.maxPlanBytes, FLATBUFFERS_MAX_BUFFER_SIZE);
  const uint64_t kMargin = std::min<uint64_t>(uint64_t(1) << 20, limit / 64);
  auto tooLarge = [&](const std::string &where) -> FailureOr<std::string> {
    return step.emitError() << "emit: the plan passes " << limit
                            << " bytes (flatbuffers' limit is 2 GiB) while writing " << where
                            << "; a plan holds one program per pipeline stage: more stages "
                               "(pp) or fewer micro-batches (mb) make each program smaller";
  };
  // `extra`: the bytes about to be written in one piece (a vector of offsets).
  auto over = [&](uint64_t extra = 0) {
    return uint64_t(fbb.GetSize()) + extra + kMargin > limit;
  };
  if (over())
    return tooLarge("the parameters");

  // Names and small vectors repeat across instructions and buffers (kernel and attribute
  // names, shapes, `axes = [0]`): each is stored once and shared.
  std::map<std::vector<int64_t>, flatbuffers::Offset<flatbuffers::Vector<int64_t>>> longs;
  auto sharedLongs = [&](const std::vector<int64_t> &v) {
    auto [it, added] = longs.try_emplace(v);
    if (added)
      it->second = fbb.CreateVector(v);
    return it->second;
  };
  std::map<std::string, flatbuffers::Offset<fb::Attribute>> attributeTables;
  std::map<std::vector<uint32_t>, flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Attribute>>>>
      attributeLists;
  auto sharedAttribute = [&](const lowering::ExecAttribute &a) {
    using Kind = lowering::ExecAttribute::Kind;
    std::string key = a.name + '\0' + char('0' + int(a.kind)) + '\0';
    switch (a.kind) {
    case Kind::Int: key += std::to_string(a.i); break;
    case Kind::Float: key.append(reinterpret_cast<const char *>(&a.f), sizeof a.f); break;
    case Kind::Bool: key += a.b ? '1' : '0'; break;
    case Kind::String: key += a.s; break;
    case Kind::Ints:
      for (int64_t x : a.ints)
        key += std::to_string(x) + ',';
      break;
    }
    auto [it, added] = attributeTables.try_emplace(key);
    if (added)
      it->second = fb::CreateAttribute(
          fbb, fbb.CreateSharedString(a.name), a.kind, a.i, a.f, a.b,
          a.kind == Kind::String ? fbb.CreateSharedString(a.s) : 0,
          a.kind == Kind::Ints ? sharedLongs(a.ints) : 0);
    return it->second;
  };

  uint64_t bytesPerDevice = 0;
  double flops = 0;
  // One program per pipeline stage, in stage order: every device runs its stage's. What
  // differs per device (the first id of a vocabulary block) the runtime derives from the
  // device's coordinates and the instructions' vocab_shard_axis / vocab_shard_rows.
  std::vector<flatbuffers::Offset<fb::Program>> programs;
  for (size_t s = 0; s < stages.size(); ++s) {
    const lowering::ExecProgram &program = stages[s];
    std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
    buffers.reserve(program.buffers.size());
    for (const lowering::ExecBuffer &b : program.buffers) {
      buffers.push_back(fb::CreateBuffer(
          fbb, fbb.CreateSharedString(b.name), fb::toPlanDType(b.dtype), sharedLongs(b.shape),
          b.kind, b.offset, b.bytes(), b.aliasOf,
          b.parameter >= 0 ? globalIndex[s][b.parameter] : -1,
          b.optimizerSlot.empty() ? 0 : fbb.CreateSharedString(b.optimizerSlot),
          b.binding, b.dimAxes.empty() ? 0 : fbb.CreateVector(b.dimAxes)));
      if (over())
        return tooLarge("the buffers of stage " + std::to_string(s));
    }
    if (over(4 * uint64_t(buffers.size())))
      return tooLarge("the buffers of stage " + std::to_string(s));
    auto bufferVector = fbb.CreateVector(buffers);
    // What aprun allocates per device (the cost model's memory, compiler/cost/Memory.h).
    bytesPerDevice = std::max(bytesPerDevice, cost::memoryOf(program).total());
    double stageFlops = 0;
    std::vector<flatbuffers::Offset<fb::Instruction>> instructions;
    instructions.reserve(program.instructions.size());
    for (const lowering::ExecInstruction &inst : program.instructions) {
      stageFlops += inst.flops;
      std::vector<uint32_t> attrs;
      for (const lowering::ExecAttribute &a : inst.attributes)
        attrs.push_back(sharedAttribute(a).o);
      auto [list, added] = attributeLists.try_emplace(attrs);
      if (added) {
        std::vector<flatbuffers::Offset<fb::Attribute>> offsets(attrs.begin(), attrs.end());
        list->second = fbb.CreateVector(offsets);
      }
      flatbuffers::Offset<flatbuffers::Vector<uint32_t>> waits;
      if (!inst.waits.empty()) {
        std::vector<uint32_t> ids(inst.waits.begin(), inst.waits.end());
        waits = fbb.CreateVector(ids);
      }
      instructions.push_back(fb::CreateInstruction(
          fbb, fbb.CreateSharedString(inst.kernel), fbb.CreateVector(inst.inputs),
          fbb.CreateVector(inst.outputs), list->second, inst.flops, inst.microBatch,
          inst.pass, inst.layer, uint8_t(inst.stream), waits, inst.records));
      if (over())
        return tooLarge("the instructions of stage " + std::to_string(s));
    }
    flops = std::max(flops, stageFlops); // the slowest stage sets the pace
    if (over(4 * uint64_t(instructions.size())))
      return tooLarge("the instructions of stage " + std::to_string(s));
    programs.push_back(fb::CreateProgram(fbb, bufferVector, fbb.CreateVector(instructions),
                                         program.arenaBytes, program.loss, program.gradNorm,
                                         int32_t(s), uint32_t(program.numEvents)));
    if (over())
      return tooLarge("the program of stage " + std::to_string(s));
  }
  // Every device is on a stage: the mesh axis "pp" is as long as there are stages.
  const std::vector<int64_t> &mesh = first.meshShape;
  int64_t stagesOnMesh = 1;
  for (size_t a = 0; a < first.meshAxes.size() && a < mesh.size(); ++a)
    if (first.meshAxes[a] == "pp")
      stagesOnMesh = mesh[a];
  if (stagesOnMesh != int64_t(stages.size()))
    return step.emitError() << "emit: the mesh has " << stagesOnMesh << " pipeline stage"
                            << (stagesOnMesh == 1 ? "" : "s") << " but " << stages.size()
                            << " stage programs were lowered";

  auto data = fb::CreateDataSpec(fbb, batch, seqLen, info.padId, fb::toPlanDType(idsType));
  auto optimizer = fb::CreateOptimizerSpec(
      fbb, fbb.CreateString("adamw"), adam.getBeta1().convertToDouble(),
      adam.getBeta2().convertToDouble(), adam.getEpsilon().convertToDouble(),
      adam.getWeightDecay().convertToDouble(),
      adam.getMaxGradNorm() ? adam.getMaxGradNorm()->convertToDouble() : 0.0);
  auto predicted = writePrediction(fbb, info, flops, bytesPerDevice);
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
  // With interleaving, one entry per model chunk (chunk c of stage s at c * stages + s).
  size_t chunks = size_t(std::max<int64_t>(parallel.vp, 1));
  if (stageLayers.size() != 2 * stages.size() * chunks)
    return step.emitError() << "emit: " << stages.size() << " stage programs of " << chunks
                            << " chunk" << (chunks == 1 ? "" : "s") << " but "
                            << stageLayers.size() / 2 << " recorded in ap.pipeline";
  std::vector<flatbuffers::Offset<fb::StageSpec>> stageSpecs, chunkSpecs;
  for (size_t s = 0; s < stages.size(); ++s)
    stageSpecs.push_back(fb::CreateStageSpec(fbb, int32_t(stageLayers[2 * s]),
                                             int32_t(stageLayers[2 * s + 1]), s == 0,
                                             s + 1 == stages.size()));
  if (chunks > 1)
    for (size_t v = 0; v < stages.size() * chunks; ++v)
      chunkSpecs.push_back(fb::CreateStageSpec(fbb, int32_t(stageLayers[2 * v]),
                                               int32_t(stageLayers[2 * v + 1]), v == 0,
                                               v + 1 == stages.size() * chunks));
  auto pipeline = fb::CreatePipelineSpec(
      fbb, fbb.CreateVector(stageSpecs), int32_t(parallel.mb),
      fbb.CreateString(chunks > 1 ? "interleaved-1f1b" : "1f1b"),
      fbb.CreateString(parallel.recompute), int32_t(parallel.recomputeStages), int32_t(chunks),
      chunks > 1 ? fbb.CreateVector(chunkSpecs) : 0);
  flatbuffers::Offset<fb::SearchRecord> searchRecord = 0;
  if (const SearchInfo *search = info.search) {
    std::vector<flatbuffers::Offset<fb::Alternative>> alternatives;
    for (const SearchInfo::Alternative &a : search->alternatives) {
      std::vector<flatbuffers::Offset<fb::PredictionTerm>> terms;
      for (const auto &[name, seconds] : a.breakdown)
        terms.push_back(fb::CreatePredictionTerm(fbb, fbb.CreateString(name), seconds));
      alternatives.push_back(fb::CreateAlternative(fbb, fbb.CreateString(a.plan), a.secondsPerStep,
                                                   a.bytesPerDevice, fbb.CreateVector(terms),
                                                   a.estimated));
    }
    searchRecord = fb::CreateSearchRecord(
        fbb, fbb.CreateString(search->request), search->enumerated, search->estimated,
        search->compiled, search->prunedByBound, search->dominated, search->dropped,
        search->seconds, fbb.CreateVector(alternatives));
  }
  auto plan = fb::CreatePlan(fbb, plan::kPlanVersion, fbb.CreateString("apc 0.1"),
                             modelConfig, fbb.CreateVector(parameters), data,
                             fbb.CreateString(precisionName), optimizer,
                             fbb.CreateVector(programs), predicted,
                             fbb.CreateVector(first.meshShape),
                             fbb.CreateVectorOfStrings(first.meshAxes),
                             fbb.CreateString(first.parallelPlan), pipeline,
                             fbb.CreateString(info.backend), searchRecord);
  fb::FinishPlanBuffer(fbb, plan);
  if (uint64_t(fbb.GetSize()) > limit)
    return tooLarge("the plan's last sections");
  return std::string(reinterpret_cast<const char *>(fbb.GetBufferPointer()), fbb.GetSize());
}

} // namespace apc::emit
