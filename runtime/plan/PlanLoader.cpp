#include "runtime/plan/PlanLoader.h"


#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanTypes.h"
#include "runtime/plan/PlanVersion.h"
#include "runtime/support/CheckedMath.h"

#include <cctype>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>
#include <sstream>

namespace apc::plan {
namespace {

template <typename E> bool inRange(E value, E max) { return uint8_t(value) <= uint8_t(max); }

// The flatbuffers Verifier checks the alignment of a vector's length but not of its
// elements (google/flatbuffers#8397): a damaged file can put a [long] at 4 mod 8, and
// reading it is undefined behaviour. The builder aligns non-empty vectors (empty ones
// need not be: nothing is read).
template <typename T> bool aligned(const flatbuffers::Vector<T> *v) {
  return !v || v->size() == 0 || reinterpret_cast<uintptr_t>(v->data()) % alignof(T) == 0;
}

std::string dimsText(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

template <typename T> std::vector<int64_t> dimsOf(const flatbuffers::Vector<T> *v) {
  return v ? std::vector<int64_t>(v->begin(), v->end()) : std::vector<int64_t>{};
}

// A parameter or optimizer-state buffer against its ParameterSpec: `dim_axes` (empty, or
// one mesh axis or -1 per dim, no axis twice) and a local shape that is the global shape
// divided by the axis sizes on split dims. The message continues "buffer N 'name' ...".
Status checkDimAxes(const Plan &plan, const Buffer &buffer, const ParameterSpec &spec) {
  std::vector<int64_t> local = dimsOf(buffer.shape()), global = dimsOf(spec.shape());
  std::vector<int64_t> mesh = dimsOf(plan.mesh_shape());
  std::vector<int64_t> axes = dimsOf(buffer.dim_axes());
  if (!axes.empty()) {
    if (axes.size() != local.size())
      return Status::error("has " + std::to_string(axes.size()) + " dim_axes " +
                           dimsText(axes) + " for a shape of rank " +
                           std::to_string(local.size()) + " " + dimsText(local));
    for (size_t d = 0; d < axes.size(); ++d) {
      if (axes[d] < -1 || axes[d] >= int64_t(mesh.size()))
        return Status::error("splits dim " + std::to_string(d) + " over mesh axis " +
                             std::to_string(axes[d]) + " but the mesh " + dimsText(mesh) +
                             " has " + std::to_string(mesh.size()) + " axes");
      for (size_t e = 0; e < d; ++e)
        if (axes[d] >= 0 && axes[e] == axes[d])
          return Status::error("splits dims " + std::to_string(e) + " and " +
                               std::to_string(d) + " over the same mesh axis " +
                               std::to_string(axes[d]) + " (dim_axes " + dimsText(axes) + ")");
    }
  }
  bool matches = local.size() == global.size();
  for (size_t d = 0; matches && d < local.size(); ++d) {
    int64_t parts = axes.empty() || axes[d] < 0 ? 1 : mesh[size_t(axes[d])];
    matches = global[d] % parts == 0 && global[d] / parts == local[d];
  }
  if (!matches)
    return Status::error("has shape " + dimsText(local) +
                         (axes.empty() ? std::string()
                                       : " split as " + dimsText(axes) + " over the mesh " +
                                             dimsText(mesh)) +
                         ", which does not match parameter '" + spec.name()->str() + "' " +
                         dimsText(global) +
                         (axes.empty() ? std::string()
                                       : " (a split dim holds the global size / the axis size)"));
  return Status::ok();
}

// An instruction's mesh axis attribute and its companion (vocab_shard_axis and _rows,
// seq_shard_axis and _parts), from which the runtime derives what differs per device:
// both or neither, both Int, the axis inside the mesh. Null pointers when neither.
struct ShardPair {
  const Attribute *axis = nullptr, *other = nullptr;
};
Status findShardPair(const Plan &plan, const Instruction &inst, const std::string &what,
                     const char *axisName, const char *otherName, const char *derives,
                     const char *splits, ShardPair &out) {
  out = {};
  if (inst.attributes())
    for (const Attribute *a : *inst.attributes()) {
      if (a->name()->str() == axisName)
        out.axis = a;
      if (a->name()->str() == otherName)
        out.other = a;
    }
  if (!out.axis && !out.other)
    return Status::ok();
  if (!out.axis || !out.other || out.axis->kind() != AttributeKind::Int ||
      out.other->kind() != AttributeKind::Int)
    return Status::error(what + "needs both Int attributes " + axisName + " and " + otherName +
                         " (the runtime computes " + derives + ")");
  int64_t axes = plan.mesh_shape() ? int64_t(plan.mesh_shape()->size()) : 0;
  if (out.axis->i() < 0 || out.axis->i() >= axes)
    return Status::error(what + "splits " + splits + " over mesh axis " +
                         std::to_string(out.axis->i()) + " but the mesh has " +
                         std::to_string(axes) + " axes");
  return Status::ok();
}

Status checkProgram(const Plan &plan, const Program &program, size_t index) {
  std::string where = "program " + std::to_string(index);
  if (!program.buffers() || !program.instructions())
    return Status::error(where + " has no buffers or no instructions");
  // Plan.programs is indexed by stage.
  if (program.stage() != int(index))
    return Status::error(where + " says it is stage " + std::to_string(program.stage()) +
                         " (programs are in stage order: program i runs stage i)");
  const auto &buffers = *program.buffers();
  int count = int(buffers.size());
  size_t numParameters = plan.parameters() ? plan.parameters()->size() : 0;
  for (int b = 0; b < count; ++b) {
    const Buffer *buffer = buffers.Get(b);
    std::string name = "buffer " + std::to_string(b) +
                       (buffer->name() ? " '" + buffer->name()->str() + "'" : "");
    if (!inRange(buffer->dtype(), DType::MAX) || !inRange(buffer->kind(), BufferKind::MAX) ||
        !inRange(buffer->binding(), Binding::MAX))
      return Status::error(where + ": " + name + " has an unknown dtype, kind or binding");
    if (!aligned(buffer->shape()) || !aligned(buffer->dim_axes()))
      return Status::error(where + ": " + name +
                           " has a misaligned shape or dim_axes (corrupt plan)");
    if (buffer->dim_axes() && buffer->dim_axes()->size() &&
        buffer->kind() != BufferKind::Parameter && buffer->kind() != BufferKind::OptimizerState)
      return Status::error(where + ": " + name + " has dim_axes but is a " +
                           EnumNameBufferKind(buffer->kind()) +
                           " buffer (only Parameter and OptimizerState buffers are split)");
    uint64_t bytes = dtypeSize(toDType(buffer->dtype()));
    if (buffer->shape())
      for (int64_t d : *buffer->shape()) {
        if (d < 0 || (d > 0 && bytes > (uint64_t(1) << 62) / uint64_t(d)))
          return Status::error(where + ": " + name + " has a bad dim " + std::to_string(d));
        bytes *= uint64_t(d);
      }
    if (bytes != buffer->bytes())
      return Status::error(where + ": " + name + " says " + std::to_string(buffer->bytes()) +
                           " bytes but its shape needs " + std::to_string(bytes));
    switch (buffer->kind()) {
    case BufferKind::Arena:
      if (buffer->offset() > program.arena_bytes() ||
          buffer->bytes() > program.arena_bytes() - buffer->offset())
        return Status::error(where + ": " + name + " lies outside the arena (" +
                             std::to_string(program.arena_bytes()) + " bytes)");
      break;
    case BufferKind::Alias: {
      int root = buffer->alias_of();
      if (root < 0 || root >= count || buffers.Get(root)->kind() == BufferKind::Alias ||
          buffers.Get(root)->bytes() != buffer->bytes())
        return Status::error(where + ": " + name + " aliases an invalid buffer " +
                             std::to_string(root));
      break;
    }
    case BufferKind::Parameter:
    case BufferKind::OptimizerState: {
      int p = buffer->parameter();
      if (p < 0 || size_t(p) >= numParameters)
        return Status::error(where + ": " + name + " refers to parameter " +
                             std::to_string(p) + " of " + std::to_string(numParameters));
      const ParameterSpec *spec = plan.parameters()->Get(p);
      if (Status s = checkDimAxes(plan, *buffer, *spec); !s)
        return Status::error(where + ": " + name + " " + s.message());
      if (buffer->dtype() != DType::F32)
        return Status::error(where + ": " + name + " does not match parameter '" +
                             spec->name()->str() + "' (its master copy is F32)");
      if (buffer->kind() == BufferKind::OptimizerState &&
          (!buffer->optimizer_slot() || (buffer->optimizer_slot()->str() != "exp_avg" &&
                                         buffer->optimizer_slot()->str() != "exp_avg_sq")))
        return Status::error(where + ": " + name + " has no valid optimizer_slot");
      break;
    }
    case BufferKind::Input:
      if (buffer->binding() == Binding::None)
        return Status::error(where + ": input " + name + " has no binding");
      break;
    }
  }
  const auto &instructions = *program.instructions();
  // At most one event is recorded per instruction: more is a damaged count.
  if (program.num_events() > instructions.size())
    return Status::error(where + " declares " + std::to_string(program.num_events()) +
                         " events for " + std::to_string(instructions.size()) +
                         " instructions (corrupt plan)");
  for (size_t k = 0; k < instructions.size(); ++k) {
    const Instruction *inst = instructions.Get(k);
    if (inst->attributes())
      for (const Attribute *a : *inst->attributes())
        if (!aligned(a->ints()))
          return Status::error(where + ": instruction " + std::to_string(k) +
                               " has a misaligned attribute '" + a->name()->str() +
                               "' (corrupt plan)");
    // What differs per device the runtime derives from the device's coordinates; a plan
    // that carries it would override that on every device (the kernels read the first).
    if (inst->attributes())
      for (const Attribute *a : *inst->attributes())
        if (a->name()->str() == "vocab_start" || a->name()->str() == "seq_shard_rank")
          return Status::error(where + ": instruction " + std::to_string(k) + " ('" +
                               inst->kernel()->str() + "') carries '" + a->name()->str() +
                               "', which the runtime derives from each device's mesh "
                               "coordinates (corrupt plan)");
    std::string what = where + ": instruction " + std::to_string(k) + " ('" +
                       inst->kernel()->str() + "') ";
    // A vocabulary block: the runtime computes vocab_start from the axis and the rows.
    ShardPair vocab;
    APC_RETURN_IF_ERROR(findShardPair(plan, *inst, what, "vocab_shard_axis", "vocab_shard_rows",
                                      "vocab_start from them", "the vocabulary", vocab));
    if (vocab.axis && vocab.other->i() < 1)
      return Status::error(what + "has vocab_shard_rows " + std::to_string(vocab.other->i()) +
                           " (at least 1)");
    // A part of the sequence (context parallelism): the runtime gives the kernel its
    // coordinate on the axis, whose size must be the parts the kernel was compiled for.
    ShardPair seq;
    APC_RETURN_IF_ERROR(findShardPair(plan, *inst, what, "seq_shard_axis", "seq_shard_parts",
                                      "seq_shard_rank", "the sequence", seq));
    if (seq.axis) {
      int64_t size = plan.mesh_shape()->Get(flatbuffers::uoffset_t(seq.axis->i()));
      if (seq.other->i() != size)
        return Status::error(what + "has seq_shard_parts " + std::to_string(seq.other->i()) +
                             " but mesh axis " + std::to_string(seq.axis->i()) + " has " +
                             std::to_string(size) + " devices");
    }
    // Streams and events (version 5): the executor checks their order at load
    // (runtime/exec/EventDiscipline.h); here only that they are in range.
    if (inst->stream() > 1)
      return Status::error(where + ": instruction " + std::to_string(k) + " ('" +
                           inst->kernel()->str() + "') is on stream " +
                           std::to_string(inst->stream()) + "; plans have streams 0 and 1");
    uint32_t events = program.num_events();
    if (inst->record_event() < -1 || (inst->record_event() >= 0 &&
                                      uint32_t(inst->record_event()) >= events))
      return Status::error(where + ": instruction " + std::to_string(k) + " records event " +
                           std::to_string(inst->record_event()) + " of " +
                           std::to_string(events));
    if (inst->wait_events())
      for (uint32_t e : *inst->wait_events())
        if (e >= events)
          return Status::error(where + ": instruction " + std::to_string(k) + " waits for event " +
                               std::to_string(e) + " of " + std::to_string(events));
    for (const auto *list : {inst->inputs(), inst->outputs()})
      if (list)
        for (int b : *list)
          if (b < 0 || b >= count)
            return Status::error(where + ": instruction " + std::to_string(k) + " ('" +
                                 inst->kernel()->str() + "') uses buffer " +
                                 std::to_string(b) + " of " + std::to_string(count));
  }
  if (program.arena_bytes() > kMaxArenaBytes)
    return Status::error(where + " asks for an arena of " + std::to_string(program.arena_bytes()) +
                         " bytes, more than the " + kMaxArenaBytesText + " APC allows");
  // The inputs the training loop writes: one of each, of the shapes the data spec says.
  int64_t dp = plan.mesh_shape() && plan.mesh_shape()->size() ? plan.mesh_shape()->Get(0) : 1;
  int64_t batchShare = plan.data()->batch() / dp, seqLen = plan.data()->seq_len();
  int seen[8] = {0};
  for (int b = 0; b < count; ++b) {
    const Buffer *buffer = buffers.Get(b);
    if (buffer->kind() != BufferKind::Input)
      continue;
    Binding binding = buffer->binding();
    ++seen[int(binding)];
    std::vector<int64_t> shape;
    if (buffer->shape())
      shape.assign(buffer->shape()->begin(), buffer->shape()->end());
    bool ok = true;
    if (binding == Binding::InputIds || binding == Binding::Labels)
      ok = buffer->dtype() == plan.data()->ids_dtype() &&
           shape == std::vector<int64_t>{batchShare, seqLen};
    else if (binding == Binding::Step)
      ok = buffer->dtype() == DType::I64 && shape.empty();
    else if (binding == Binding::LearningRate)
      ok = buffer->dtype() == DType::F32 && shape.empty();
    if (!ok)
      return Status::error(where + ": input '" + (buffer->name() ? buffer->name()->str() : "") +
                           "' does not match the data spec (batch " +
                           std::to_string(plan.data()->batch()) + " over " + std::to_string(dp) +
                           " data-parallel devices, seq_len " + std::to_string(seqLen) + ")");
  }
  // Under a pipeline, input_ids feed the stage with the embedding and labels the one with
  // the head; a middle stage has neither (the runtime still accepts one it does not need).
  bool needIds = true, needLabels = true;
  if (const PipelineSpec *pipeline = plan.pipeline();
      pipeline && pipeline->stages() && pipeline->stages()->size() > 0) {
    const StageSpec *stage = pipeline->stages()->Get(flatbuffers::uoffset_t(program.stage()));
    needIds = stage->embedding();
    needLabels = stage->head();
  }
  for (Binding b : {Binding::InputIds, Binding::Labels, Binding::Step, Binding::LearningRate}) {
    bool needed = b == Binding::InputIds ? needIds : b == Binding::Labels ? needLabels : true;
    if (seen[int(b)] != 1 && (needed || seen[int(b)] > 1))
      return Status::error(where + " needs " + (needed ? "exactly one " : "at most one ") +
                           EnumNameBinding(b) + " input, has " + std::to_string(seen[int(b)]));
  }
  int loss = program.loss();
  if (loss < 0 || loss >= count || buffers.Get(loss)->dtype() != DType::F32 ||
      (buffers.Get(loss)->shape() && buffers.Get(loss)->shape()->size() != 0))
    return Status::error(where + " has no scalar f32 loss buffer");
  if (program.grad_norm() >= count)
    return Status::error(where + " has an invalid grad_norm buffer");
  return Status::ok();
}

// Every device splits a parameter (and each of its moments) the same way: checkpoints
// gather blocks by the split, and each rank computes where every other rank's block lies.
Status checkSameSplitEverywhere(const Plan &plan) {
  struct First {
    std::vector<int64_t> axes;
    size_t program;
    int buffer;
  };
  std::map<std::pair<int, std::string>, First> seen;
  for (size_t i = 0; i < plan.programs()->size(); ++i) {
    const auto &buffers = *plan.programs()->Get(i)->buffers();
    for (int b = 0; b < int(buffers.size()); ++b) {
      const Buffer *buffer = buffers.Get(b);
      if (buffer->kind() != BufferKind::Parameter && buffer->kind() != BufferKind::OptimizerState)
        continue;
      std::vector<int64_t> axes = dimsOf(buffer->dim_axes());
      if (axes.empty())
        axes.assign(buffer->shape() ? buffer->shape()->size() : 0, -1);
      std::string slot = buffer->kind() == BufferKind::Parameter
                             ? std::string("parameter")
                             : buffer->optimizer_slot()->str();
      auto [it, inserted] = seen.emplace(std::pair{buffer->parameter(), slot}, First{axes, i, b});
      if (!inserted && it->second.axes != axes)
        return Status::error(
            "program " + std::to_string(i) + ": buffer " + std::to_string(b) + " '" +
            (buffer->name() ? buffer->name()->str() : "") + "' splits the " + slot + " of '" +
            plan.parameters()->Get(buffer->parameter())->name()->str() + "' as " +
            dimsText(axes) + " but program " + std::to_string(it->second.program) +
            " buffer " + std::to_string(it->second.buffer) + " splits it as " +
            dimsText(it->second.axes) + " (every device must split it the same way)");
    }
  }
  return Status::ok();
}

} // namespace

const Plan &LoadedPlan::plan() const { return *GetPlan(bytes_.data()); }

Result<LoadedPlan> LoadedPlan::fromBytes(std::string bytes, const std::string &name) {
  auto fail = [&](const std::string &what) {
    return Result<LoadedPlan>::error(name + ": " + what);
  };
  if (bytes.size() < 8)
    return fail("too short to be a plan (" + std::to_string(bytes.size()) + " bytes)");
  if (!PlanBufferHasIdentifier(bytes.data())) {
    std::string shown;
    for (char c : bytes.substr(4, 4)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", unsigned(uint8_t(c)));
      shown += std::isprint(uint8_t(c)) ? std::string(1, c) : std::string(hex);
    }
    return fail("not an APC plan (file identifier '" + shown +
                "', expected 'APCP'); make one with apc compile");
  }
  // Large programs hold many tables; a table takes at least 4 bytes, which bounds what a
  // real file can hold.
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(),
                                 /*max_depth=*/64,
                                 /*max_tables=*/flatbuffers::uoffset_t(
                                     std::min<size_t>(bytes.size() / 4 + 1000000, 0x7fffffff)));
  if (!VerifyPlanBuffer(verifier))
    return fail("corrupt plan: the flatbuffer does not verify (truncated or damaged file)");
  const Plan *plan = GetPlan(bytes.data());
  if (plan->version() != kPlanVersion)
    return fail("plan format version " + std::to_string(plan->version()) +
                ", this aprun reads version " + std::to_string(kPlanVersion) +
                "; recompile it with the matching apc");
  if (!plan->programs() || plan->programs()->size() == 0)
    return fail("the plan has no programs");
  if (!aligned(plan->mesh_shape()))
    return fail("corrupt plan: the mesh shape is misaligned");
  int64_t devices = 1;
  if (plan->mesh_shape())
    for (int64_t d : *plan->mesh_shape()) {
      if (d < 1 || d > 65536)
        return fail("the plan's mesh has a bad size " + std::to_string(d));
      devices *= d; // at most 65536 * 65536: cannot overflow
      if (devices > 65536)
        return fail("the plan's mesh has more than 65536 devices");
    }
  // One program per pipeline stage: as many as the "pp" axis is long (one without it),
  // and as many as the pipeline section has stages.
  int ppAxis = pipelineAxis(*plan);
  int64_t stages = ppAxis >= 0 ? plan->mesh_shape()->Get(flatbuffers::uoffset_t(ppAxis)) : 1;
  if (int64_t(plan->programs()->size()) != stages)
    return fail("the plan has " + std::to_string(plan->programs()->size()) +
                " programs but " +
                (ppAxis >= 0 ? "its mesh axis \"pp\" has " + std::to_string(stages) + " stages"
                             : std::string("no mesh axis \"pp\" (one program runs everywhere)")) +
                "; one program per pipeline stage");
  if (const PipelineSpec *pipeline = plan->pipeline();
      pipeline && pipeline->stages() && pipeline->stages()->size() > 0 &&
      int64_t(pipeline->stages()->size()) != stages)
    return fail("the plan's pipeline section has " +
                std::to_string(pipeline->stages()->size()) + " stages but it has " +
                std::to_string(stages) + " programs");
  if (!plan->model() || !plan->data() || !plan->optimizer() || !plan->parameters())
    return fail("the plan lacks its model, data, optimizer or parameter section");
  if (plan->data()->batch() <= 0 || plan->data()->seq_len() <= 0)
    return fail("the plan's data spec has no positive batch and seq_len");
  if (plan->mesh_shape() && plan->mesh_shape()->size() &&
      plan->data()->batch() % plan->mesh_shape()->Get(0) != 0)
    return fail("the plan's batch does not split over its data-parallel devices");
  if (plan->data()->ids_dtype() != DType::I32 && plan->data()->ids_dtype() != DType::I64)
    return fail("the plan's ids dtype must be I32 or I64");
  for (const ParameterSpec *p : *plan->parameters()) {
    if (!p->name() || !p->shape())
      return fail("a parameter has no name or shape");
    if (!aligned(p->shape()))
      return fail("corrupt plan: parameter '" + p->name()->str() + "' has a misaligned shape");
  }
  for (size_t i = 0; i < plan->programs()->size(); ++i)
    if (Status s = checkProgram(*plan, *plan->programs()->Get(i), i); !s)
      return fail(s.message());
  if (Status s = checkSameSplitEverywhere(*plan); !s)
    return fail(s.message());
  LoadedPlan loaded;
  loaded.path_ = name;
  loaded.bytes_ = std::move(bytes);
  return loaded;
}

Result<LoadedPlan> LoadedPlan::load(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) // an ifstream opens one and reads 0 bytes
    return Result<LoadedPlan>::error(path + ": is a folder, not a plan file (plan.fb from "
                                            "apc compile)");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno; // what the open said: no such file, permission denied, ...
    return Result<LoadedPlan>::error(path + ": cannot open: " + std::strerror(err));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  return fromBytes(contents.str(), path);
}

Status checkBackendBuilt(const Plan &plan, const std::string &path) {
  std::string backend = plan.backend() ? plan.backend()->str() : "cpu"; // older plans: cpu
  if (backend == "cpu")
    return Status::ok();
#ifdef APC_HAVE_CUDA
  if (backend == "cuda")
    return Status::ok(); // whether a GPU is visible is the executor's to say
#endif
  const Prediction *predicted = plan.predicted();
  std::string cluster = predicted && predicted->cluster() ? predicted->cluster()->str() : "?";
  return Status::error(path + ": this plan is for " + backend + " devices (" + cluster +
                       "); the " + (backend == "cuda" ? std::string("CUDA") : backend) +
                       " backend is not built (aprun runs plans compiled for --cluster cpu:N)");
}

} // namespace apc::plan
