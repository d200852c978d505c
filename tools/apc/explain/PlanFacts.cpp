#include "tools/apc/explain/PlanFacts.h"

#include "runtime/plan/DeviceProgram.h"
#include "runtime/schema/plan_generated.h"
#include "runtime/support/MeshCoordinates.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace apc::explain {
namespace {

std::string str(const flatbuffers::String *s, const std::string &otherwise = "") {
  return s ? s->str() : otherwise;
}

template <typename T> std::vector<int64_t> dimsOf(const flatbuffers::Vector<T> *v) {
  return v ? std::vector<int64_t>(v->begin(), v->end()) : std::vector<int64_t>{};
}

// "model.layers.12.mlp.up_proj.weight" -> layer 12, "model.layers.*.mlp.up_proj.weight".
void splitLayer(const std::string &name, int &layer, std::string &pattern) {
  layer = -1;
  pattern = name;
  const std::string key = "layers.";
  for (size_t at = name.find(key); at != std::string::npos; at = name.find(key, at + 1)) {
    if (at > 0 && name[at - 1] != '.')
      continue;
    size_t begin = at + key.size(), end = begin;
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end])))
      ++end;
    if (end == begin || end - begin > 9 || (end < name.size() && name[end] != '.'))
      continue;
    layer = std::stoi(name.substr(begin, end - begin));
    pattern = name.substr(0, begin) + "*" + name.substr(end);
    return;
  }
}

const plan::Attribute *attribute(const plan::Instruction &inst, const char *name) {
  if (inst.attributes())
    for (const plan::Attribute *a : *inst.attributes())
      if (a->name() && a->name()->str() == name)
        return a;
  return nullptr;
}

uint64_t bytesOf(const flatbuffers::Vector<int32_t> *list,
                 const flatbuffers::Vector<flatbuffers::Offset<plan::Buffer>> &buffers) {
  uint64_t total = 0;
  if (list)
    for (int b : *list)
      if (b >= 0 && b < int(buffers.size())) // the loader checked; kept for safety
        total += buffers.Get(flatbuffers::uoffset_t(b))->bytes();
  return total;
}

} // namespace

std::vector<int64_t> PlanFacts::coordinates(int64_t rank) const {
  return coordinatesOf(rank, meshShape);
}

const ProgramFacts &PlanFacts::programOf(int64_t rank) const {
  // gatherFacts checked that every device's stage has a program.
  return programs[ppAxis >= 0 ? size_t(coordinates(rank)[size_t(ppAxis)]) : 0];
}

std::string PlanFacts::axisName(int64_t axis) const {
  if (axis >= 0 && axis < int64_t(axisNames.size()))
    return axisNames[size_t(axis)];
  return "axis" + std::to_string(axis);
}

int64_t PlanFacts::axisSize(int64_t axis) const {
  return axis >= 0 && axis < int64_t(meshShape.size()) ? meshShape[size_t(axis)] : 1;
}

std::string humanBytes(uint64_t bytes) {
  static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024)
    return std::to_string(bytes) + " B";
  double v = double(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string dimsText(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string rangesText(const std::vector<int> &sorted) {
  std::string s;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1)
      ++j;
    if (!s.empty())
      s += ", ";
    s += std::to_string(sorted[i]);
    if (j > i)
      s += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return s;
}

std::string stageContents(const StageFacts &stage) {
  std::vector<std::string> parts;
  if (stage.embedding)
    parts.push_back("embedding");
  auto range = [](int first, int count) {
    return count == 1 ? std::to_string(first)
                      : std::to_string(first) + "-" + std::to_string(first + count - 1);
  };
  if (!stage.chunkLayers.empty()) { // interleaved: "layers 0-1 (chunk 0), 4-5 (chunk 1)"
    std::string chunks;
    for (size_t c = 0; c < stage.chunkLayers.size(); ++c)
      chunks += (c ? ", " : "") + range(stage.chunkLayers[c].first, stage.chunkLayers[c].second) +
                " (chunk " + std::to_string(c) + ")";
    parts.push_back("layers " + chunks);
  } else if (stage.numLayers == 1)
    parts.push_back("layer " + std::to_string(stage.firstLayer));
  else if (stage.numLayers > 1)
    parts.push_back("layers " + std::to_string(stage.firstLayer) + "-" +
                    std::to_string(stage.firstLayer + stage.numLayers - 1));
  if (stage.head)
    parts.push_back("norm + LM head + loss");
  if (parts.empty())
    return "nothing";
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i)
    s += (i ? ", " : "") + parts[i];
  return s;
}

Result<PlanFacts> gatherFacts(const plan::Plan &p, const std::string &path) {
  auto fail = [&](const std::string &what) {
    return Result<PlanFacts>::error(path + ": " + what);
  };
  PlanFacts f;
  f.path = path;
  f.producer = str(p.producer(), "?");
  f.version = p.version();
  const plan::ModelConfig &m = *p.model();
  f.architecture = str(m.architecture(), "?");
  f.layers = m.num_hidden_layers();
  f.hidden = m.hidden_size();
  f.intermediate = m.intermediate_size();
  f.heads = m.num_attention_heads();
  f.kvHeads = m.num_key_value_heads();
  f.headDim = m.head_dim();
  f.vocab = m.vocab_size();
  f.tied = m.tie_word_embeddings();
  f.batch = p.data()->batch();
  f.seqLen = p.data()->seq_len();
  if (const plan::SearchRecord *search = p.search()) {
    f.searched = true;
    f.searchRequest = str(search->request());
    f.searchEnumerated = search->enumerated();
    f.searchEstimated = search->estimated();
    f.searchCompiled = search->compiled();
    f.searchPruned = search->pruned_by_bound();
    f.searchDominated = search->dominated();
    f.searchDropped = search->dropped();
    f.searchSeconds = search->seconds();
    if (search->alternatives())
      for (const plan::Alternative *a : *search->alternatives()) {
        PlanFacts::Alternative alt{str(a->plan()), a->seconds_per_step(), a->bytes_per_device(),
                                   {}, a->estimated()};
        if (a->breakdown())
          for (const plan::PredictionTerm *t : *a->breakdown())
            alt.breakdown.push_back({str(t->name()), t->seconds()});
        f.alternatives.push_back(std::move(alt));
      }
  }
  f.precision = str(p.precision(), "?");
  f.parallelPlan = str(p.parallel_plan());
  if (const plan::Prediction *pr = p.predicted()) {
    f.predictedPresent = true;
    f.predictedFlops = pr->flops_per_step();
    f.predictedSeconds = pr->seconds_per_step();
    f.predictedBytes = pr->bytes_per_device();
    f.predictedCluster = str(pr->cluster());
    f.cluster = f.predictedCluster;
    f.predictedModel = pr->breakdown() != nullptr;
    f.predictedTokensPerSecondPerDevice = pr->tokens_per_second_per_device();
    f.predictedMfu = pr->mfu();
    f.predictedFits = pr->fits();
    f.predictedUsableBytes = pr->usable_bytes_per_device();
    if (pr->breakdown())
      for (const plan::PredictionTerm *t : *pr->breakdown())
        f.predictedBreakdown.push_back({str(t->name()), t->seconds()});
    if (pr->memory())
      for (const plan::MemoryTerm *t : *pr->memory())
        f.predictedMemory.push_back({str(t->name()), t->bytes()});
    if (pr->stages())
      for (const plan::StageTiming *t : *pr->stages()) {
        PredictedStageTimes st;
        st.times = {t->forward(), t->backward(), t->send_forward(), t->send_backward()};
        st.step = t->step();
        if (t->recompute().has_value()) {
          st.recompute = *t->recompute();
          st.recomputeKnown = true;
        }
        f.predictedStages.push_back(st);
      }
    if (pr->chunks())
      for (const plan::StageTiming *t : *pr->chunks())
        f.predictedChunks.push_back(
            {t->forward(), t->backward(), t->send_forward(), t->send_backward()});
  }

  // The mesh (the loader checked its sizes and that it has one program per device).
  f.meshShape = dimsOf(p.mesh_shape());
  for (size_t a = 0; a < f.meshShape.size(); ++a) {
    const flatbuffers::String *name =
        p.mesh_axes() && a < p.mesh_axes()->size() ? p.mesh_axes()->Get(flatbuffers::uoffset_t(a))
                                                   : nullptr;
    f.axisNames.push_back(name && name->size() ? name->str() : "axis" + std::to_string(a));
  }
  f.devices = plan::deviceCount(p);
  for (size_t a = 0; a < f.axisNames.size(); ++a)
    if (f.axisNames[a] == "pp" && f.ppAxis < 0)
      f.ppAxis = int64_t(a);

  // The pipeline.
  const plan::PipelineSpec *pipeline = p.pipeline();
  if (pipeline) {
    f.pipelinePresent = true;
    if (!pipeline->stages() || pipeline->stages()->size() == 0)
      return fail("the plan's pipeline section has no stages");
    if (pipeline->stages()->size() > 65536)
      return fail("the plan's pipeline has " + std::to_string(pipeline->stages()->size()) +
                  " stages");
    if (pipeline->micro_batches() < 1)
      return fail("the plan's pipeline has " + std::to_string(pipeline->micro_batches()) +
                  " micro-batches (at least 1)");
    f.microBatches = pipeline->micro_batches();
    f.schedule = str(pipeline->schedule(), "1f1b");
    f.recompute = str(pipeline->recompute(), "none");
    f.recomputeStages = pipeline->recompute_stages();
    if (f.schedule.empty())
      f.schedule = "1f1b";
    if (f.recompute.empty())
      f.recompute = "none";
    for (size_t s = 0; s < pipeline->stages()->size(); ++s) {
      const plan::StageSpec *spec = pipeline->stages()->Get(flatbuffers::uoffset_t(s));
      StageFacts stage;
      stage.firstLayer = spec->first_layer();
      stage.numLayers = spec->num_layers();
      stage.embedding = spec->embedding();
      stage.head = spec->head();
      if (stage.firstLayer < 0 || stage.numLayers < 0 ||
          int64_t(stage.firstLayer) + stage.numLayers > f.layers)
        return fail("pipeline stage " + std::to_string(s) + " holds " +
                    std::to_string(stage.numLayers) + " layers from layer " +
                    std::to_string(stage.firstLayer) + " but the model has " +
                    std::to_string(f.layers) + " layers");
      f.stages.push_back(stage);
    }
    // Interleaving: every chunk's layers, chunk c of stage s at c * stages + s.
    if (pipeline->chunks() > 1) {
      size_t stages = f.stages.size(), chunks = size_t(pipeline->chunks());
      const auto *chunkLayers = pipeline->chunk_layers();
      if (chunks > 4096 || !chunkLayers || chunkLayers->size() != stages * chunks)
        return fail("the plan's pipeline has " + std::to_string(chunks) +
                    " chunks per stage but lists the layers of " +
                    std::to_string(chunkLayers ? chunkLayers->size() : 0) + " chunks, not " +
                    std::to_string(stages * chunks));
      f.chunks = int(chunks);
      for (size_t v = 0; v < chunkLayers->size(); ++v) {
        const plan::StageSpec *spec = chunkLayers->Get(flatbuffers::uoffset_t(v));
        if (spec->first_layer() < 0 || spec->num_layers() < 1 ||
            int64_t(spec->first_layer()) + spec->num_layers() > f.layers)
          return fail("pipeline chunk " + std::to_string(v) + " holds " +
                      std::to_string(spec->num_layers()) + " layers from layer " +
                      std::to_string(spec->first_layer()) + " but the model has " +
                      std::to_string(f.layers) + " layers");
        f.stages[v % stages].chunkLayers.push_back({spec->first_layer(), spec->num_layers()});
      }
    }
  } else {
    StageFacts stage;
    stage.firstLayer = 0;
    stage.numLayers = int(std::max<int64_t>(0, std::min<int64_t>(f.layers, 1 << 30)));
    stage.embedding = stage.head = true;
    f.stages.push_back(stage);
  }

  // Programs: stage, memory, collectives.
  static const std::set<std::string> collectiveKernels = {
      "all_reduce", "all_gather", "reduce_scatter", "all_slice", "send", "recv"};
  // One program per stage (plan.fbs): its facts are gathered once and shared by every
  // device of the stage (its coordinate on "pp"); nothing here grows with the devices
  // but the stages' lists of ranks.
  if (p.programs()->size() != f.stages.size())
    return fail("the plan has " + std::to_string(p.programs()->size()) + " programs but " +
                std::to_string(f.stages.size()) + " pipeline stage" +
                (f.stages.size() == 1 ? "" : "s"));
  for (size_t i = 0; i < p.programs()->size(); ++i) {
    const plan::Program &program = *p.programs()->Get(flatbuffers::uoffset_t(i));
    ProgramFacts pf;
    pf.index = int(i);
    pf.stage = int(i);
    pf.ppCoordinate = f.ppAxis >= 0 ? int64_t(i) : -1;
    const auto &buffers = *program.buffers();
    for (const plan::Buffer *b : buffers) {
      switch (b->kind()) {
      case plan::BufferKind::Parameter:
        pf.parameterBytes += b->bytes();
        ++pf.parameterBuffers;
        break;
      case plan::BufferKind::OptimizerState:
        pf.optimizerBytes += b->bytes();
        ++pf.optimizerBuffers;
        break;
      case plan::BufferKind::Input:
        pf.inputBytes += b->bytes();
        ++pf.inputBuffers;
        pf.inputBindings.push_back(plan::EnumNameBinding(b->binding()));
        break;
      default:
        break;
      }
    }
    pf.arenaBytes = program.arena_bytes();
    const auto &instructions = *program.instructions();
    pf.instructions = int(instructions.size());
    bool flopsKnown = true;
    std::set<int> gradients;
    for (size_t k = 0; k < instructions.size(); ++k) {
      const plan::Instruction &inst = *instructions.Get(flatbuffers::uoffset_t(k));
      if (!std::isfinite(inst.flops()) || inst.flops() < 0)
        flopsKnown = false;
      else
        pf.flops += inst.flops();
      std::string kernel = inst.kernel()->str();
      if (kernel == "adamw" && inst.inputs() && inst.inputs()->size() > 1) {
        int grad = inst.inputs()->Get(1);
        if (grad >= 0 && grad < int(buffers.size()) && gradients.insert(grad).second) {
          pf.gradientBytes += buffers.Get(flatbuffers::uoffset_t(grad))->bytes();
          ++pf.gradientBuffers;
        }
      }
      if (!collectiveKernels.count(kernel))
        continue;
      CollectiveFacts c;
      c.instruction = int(k);
      c.kind = kernel;
      if (const plan::Attribute *a = attribute(inst, "axes"))
        c.axes = dimsOf(a->ints());
      if (const plan::Attribute *a = attribute(inst, "dim"))
        c.dim = a->i();
      if (kernel == "all_reduce") {
        const plan::Attribute *op = attribute(inst, "op");
        c.op = op && op->s() ? op->s()->str() : "sum";
      }
      if (kernel == "send" || kernel == "recv") {
        if (const plan::Attribute *a = attribute(inst, "peer_offset"))
          c.peerOffset = a->i();
        if (const plan::Attribute *a = attribute(inst, "tag"))
          c.tag = a->i();
        int64_t peer = int64_t(pf.stage) + c.peerOffset;
        if (c.peerOffset != 0 && peer >= 0 && peer < int64_t(f.stages.size()))
          c.peerStage = int(peer);
      }
      c.operands = inst.inputs() ? int(inst.inputs()->size()) : 0;
      if (kernel == "all_gather" || kernel == "recv")
        c.bytes = bytesOf(inst.outputs(), buffers);
      else if (kernel == "all_slice")
        c.communicates = false;
      else
        c.bytes = bytesOf(inst.inputs(), buffers);
      pf.collectives.push_back(std::move(c));
    }
    if (!flopsKnown)
      pf.flops = 0;
    // The pass order, from the instructions' pass and micro_batch (see ProgramFacts).
    for (const plan::Instruction *inst : instructions) {
      if ((inst->pass() != plan::Pass::Forward && inst->pass() != plan::Pass::Backward) ||
          inst->micro_batch() < 0)
        continue;
      // The chunk of an interleaved stage: the one holding the instruction's layer (the
      // embedding the first, the head the last); an instruction of no layer is passed over.
      // A receive is marked with the layer it receives from: the virtual stage after it
      // in the forward, before it in the backward.
      int chunk = 0;
      if (f.chunks > 1) {
        int stagesN = int(f.stages.size()), layer = inst->layer();
        int v = layer == -2 ? 0 : layer >= f.layers ? stagesN * f.chunks - 1 : -1;
        for (int s = 0; s < stagesN && v < 0 && layer >= 0; ++s)
          for (size_t c = 0; c < f.stages[size_t(s)].chunkLayers.size(); ++c) {
            auto [first, count] = f.stages[size_t(s)].chunkLayers[c];
            if (layer >= first && layer < first + count)
              v = int(c) * stagesN + s;
          }
        if (v >= 0 && v % stagesN != int(i))
          v += inst->pass() == plan::Pass::Forward ? 1 : -1;
        chunk = v >= 0 && v % stagesN == int(i) ? v / stagesN : -1;
        if (chunk < 0) // no layer (a slice of the batch): the pass shows in its neighbours
          continue;
      }
      std::tuple<bool, int, int> pass{inst->pass() == plan::Pass::Forward, inst->micro_batch(),
                                      chunk};
      if (pf.passes.empty() || pf.passes.back() != pass) {
        pf.passes.push_back(pass);
        pf.passOrder.push_back(std::get<0>(pass));
      }
    }
    StageFacts &stage = f.stages[i];
    stage.flops = pf.flops;
    // The plan's order, when it runs each micro-batch's forward and backward once (per
    // chunk).
    std::set<std::tuple<bool, int, int>> distinct(pf.passes.begin(), pf.passes.end());
    if (!pf.passes.empty() && distinct.size() == pf.passes.size() &&
        pf.passes.size() == size_t(2) * size_t(f.microBatches) * size_t(f.chunks)) {
      for (auto [forward, k, chunk] : pf.passes)
        stage.planOrder += (stage.planOrder.empty() ? "" : " ") +
                           std::string(forward ? "F" : "B") + std::to_string(k) +
                           (f.chunks > 1 ? "." + std::to_string(chunk) : std::string());
      stage.planOrderIs1F1B =
          pf.passes == scheduledOrder(int(f.stages.size()), f.chunks, int(i), f.microBatches);
    }
    f.programs.push_back(std::move(pf));
  }
  for (int64_t rank = 0; rank < f.devices; ++rank) {
    int stage = plan::stageOf(p, f.coordinates(rank));
    if (stage < 0 || size_t(stage) >= f.programs.size())
      return fail("device " + std::to_string(rank) + " is on stage " + std::to_string(stage) +
                  " but the plan has " + std::to_string(f.programs.size()) + " programs");
    f.stages[size_t(stage)].ranks.push_back(int(rank));
  }

  // Parameters and their layouts (the loader checked that every program splits a
  // parameter, and each moment, the same way: the first program holding it tells).
  for (const plan::ParameterSpec *spec : *p.parameters()) {
    ParameterFacts pf;
    pf.name = spec->name()->str();
    pf.shape = dimsOf(spec->shape());
    pf.dtype = plan::EnumNameDType(spec->dtype());
    if (pf.dtype.empty())
      pf.dtype = "?";
    splitLayer(pf.name, pf.layer, pf.pattern);
    f.parameters.push_back(std::move(pf));
  }
  // A layout's ranks are those of the stages whose programs hold it.
  std::map<Layout *, std::set<int>> layoutStages;
  for (size_t i = 0; i < p.programs()->size(); ++i) {
    const plan::Program &program = *p.programs()->Get(flatbuffers::uoffset_t(i));
    int stage = int(i);
    for (const plan::Buffer *b : *program.buffers()) {
      if (b->kind() != plan::BufferKind::Parameter &&
          b->kind() != plan::BufferKind::OptimizerState)
        continue;
      if (b->parameter() < 0 || b->parameter() >= int(f.parameters.size()))
        return fail("program " + std::to_string(i) + ": buffer '" + str(b->name()) +
                    "' names parameter " + std::to_string(b->parameter()) + " of " +
                    std::to_string(f.parameters.size()));
      ParameterFacts &pf = f.parameters[size_t(b->parameter())];
      Layout &layout = b->kind() == plan::BufferKind::Parameter ? pf.parameter
                       : str(b->optimizer_slot()) == "exp_avg"  ? pf.expAvg
                                                                : pf.expAvgSq;
      layoutStages[&layout].insert(stage);
      if (!layout.present) {
        layout.present = true;
        layout.localShape = dimsOf(b->shape());
        layout.dimAxes = dimsOf(b->dim_axes());
        if (layout.dimAxes.empty())
          layout.dimAxes.assign(layout.localShape.size(), -1);
        layout.bytesPerDevice = b->bytes();
      }
      if (std::find(pf.stages.begin(), pf.stages.end(), stage) == pf.stages.end())
        pf.stages.push_back(stage);
    }
  }
  for (auto &[layout, stages] : layoutStages) {
    for (int s : stages)
      layout->ranks.insert(layout->ranks.end(), f.stages[size_t(s)].ranks.begin(),
                           f.stages[size_t(s)].ranks.end());
    std::sort(layout->ranks.begin(), layout->ranks.end());
  }
  for (ParameterFacts &pf : f.parameters)
    std::sort(pf.stages.begin(), pf.stages.end());

  // The schedule with the plan's predicted stage times (the cost model's) when it has
  // them for every stage; else forward time per stage from its FLOPs.
  bool predicted = !f.predictedStages.empty() && f.predictedStages.size() == f.stages.size();
  bool usable = true;
  for (const PredictedStageTimes &st : f.predictedStages) {
    const schedule::StageTimes &t = st.times;
    for (double x : {t.sendForward, t.sendBackward, st.step, st.recompute})
      usable = usable && x >= 0 && std::isfinite(x);
    usable = usable && t.forward > 0 && t.backward > 0 && std::isfinite(t.forward) &&
             std::isfinite(t.backward);
  }
  predicted = predicted && usable;
  if (f.predictedModel && !predicted)
    f.predictedStagesUnused =
        f.predictedStages.empty() ? "the prediction has no stage times"
        : f.predictedStages.size() != f.stages.size()
            ? "the prediction times " + std::to_string(f.predictedStages.size()) +
                  (f.predictedStages.size() == 1 ? " stage" : " stages") +
                  " but the pipeline has " + std::to_string(f.stages.size())
            : "the prediction's stage times are not positive and finite";
  if (predicted &&
      int64_t(f.stages.size()) * f.microBatches <= kMaxScheduledMicroBatchStages) {
    // The chunks' own times when the prediction records them (the cost model's timeline).
    bool chunkTimes = f.chunks > 1 && f.predictedChunks.size() == f.stages.size() * size_t(f.chunks);
    auto timeline = schedulePredicted(f.predictedStages, f.microBatches, f.chunks,
                                      chunkTimes ? &f.predictedChunks : nullptr);
    if (!timeline)
      return fail(timeline.message());
    f.timeline = std::move(*timeline);
    f.stageTimesPredicted = true;
  } else if (int64_t(f.stages.size()) * f.microBatches <= kMaxScheduledMicroBatchStages) {
    std::vector<double> flops;
    for (const StageFacts &s : f.stages)
      flops.push_back(s.flops);
    f.stageTimesFromFlops = true;
    for (double x : flops)
      f.stageTimesFromFlops = f.stageTimesFromFlops && x > 0 && std::isfinite(x);
    auto timeline = scheduleOneFOneB(forwardTimesFromFlops(flops), f.microBatches, 2.0, f.chunks);
    if (!timeline)
      return fail(timeline.message());
    f.timeline = std::move(*timeline);
  }
  return f;
}

std::string whyNot(const PlanFacts &f, const PlanFacts::Alternative &a) {
  std::vector<std::pair<std::string, double>> worse;
  for (const auto &[name, seconds] : a.breakdown) {
    double mine = 0;
    for (const auto &e : f.predictedBreakdown)
      if (e.first == name)
        mine = e.second;
    if (seconds > mine)
      worse.push_back({name, seconds - mine});
  }
  std::sort(worse.begin(), worse.end(), [](auto &x, auto &y) { return x.second > y.second; });
  std::string text;
  for (size_t i = 0; i < worse.size() && i < 3; ++i) {
    char item[96];
    std::snprintf(item, sizeof item, "%s%s +%.3g ms", i ? ", " : "", worse[i].first.c_str(),
                  worse[i].second * 1e3);
    text += item;
  }
  return text.empty() ? "nothing by kind" : text;
}

} // namespace apc::explain
