#include "runtime/plan/PlanLoader.h"

#include "runtime/plan/PlanVersion.h"
#include "runtime/schema/plan_generated.h"

#include <cctype>
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <vector>
#include <sstream>

namespace apc::plan {
namespace {

size_t dtypeBytes(DType d) {
  switch (d) {
  case DType::F32: case DType::I32: return 4;
  case DType::BF16: case DType::F16: return 2;
  case DType::I64: return 8;
  }
  return 0;
}

template <typename E> bool inRange(E value, E max) { return uint8_t(value) <= uint8_t(max); }

// The flatbuffers Verifier checks the alignment of a vector's length but not of its
// elements (google/flatbuffers#8397): a damaged file can put a [long] at 4 mod 8, and
// reading it is undefined behaviour. The builder aligns non-empty vectors (empty ones
// need not be: nothing is read).
template <typename T> bool aligned(const flatbuffers::Vector<T> *v) {
  return !v || v->size() == 0 || reinterpret_cast<uintptr_t>(v->data()) % alignof(T) == 0;
}

Status checkProgram(const Plan &plan, const Program &program, size_t index) {
  std::string where = "program " + std::to_string(index);
  if (!program.buffers() || !program.instructions())
    return Status::error(where + " has no buffers or no instructions");
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
    if (!aligned(buffer->shape()))
      return Status::error(where + ": " + name + " has a misaligned shape (corrupt plan)");
    uint64_t bytes = dtypeBytes(buffer->dtype());
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
      bool sameShape = spec->shape() && buffer->shape() &&
                       spec->shape()->size() == buffer->shape()->size();
      for (size_t d = 0; sameShape && d < spec->shape()->size(); ++d)
        sameShape = spec->shape()->Get(d) == buffer->shape()->Get(d);
      if (!sameShape || buffer->dtype() != DType::F32)
        return Status::error(where + ": " + name + " does not match parameter '" +
                             spec->name()->str() + "'");
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
  for (size_t k = 0; k < instructions.size(); ++k) {
    const Instruction *inst = instructions.Get(k);
    if (inst->attributes())
      for (const Attribute *a : *inst->attributes())
        if (!aligned(a->ints()))
          return Status::error(where + ": instruction " + std::to_string(k) +
                               " has a misaligned attribute '" + a->name()->str() +
                               "' (corrupt plan)");
    for (const auto *list : {inst->inputs(), inst->outputs()})
      if (list)
        for (int b : *list)
          if (b < 0 || b >= count)
            return Status::error(where + ": instruction " + std::to_string(k) + " ('" +
                                 inst->kernel()->str() + "') uses buffer " +
                                 std::to_string(b) + " of " + std::to_string(count));
  }
  if (program.arena_bytes() > (uint64_t(1) << 50))
    return Status::error(where + " asks for an arena of " + std::to_string(program.arena_bytes()) +
                         " bytes");
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
  for (Binding b : {Binding::InputIds, Binding::Labels, Binding::Step, Binding::LearningRate})
    if (seen[int(b)] != 1)
      return Status::error(where + " needs exactly one " + EnumNameBinding(b) + " input, has " +
                           std::to_string(seen[int(b)]));
  int loss = program.loss();
  if (loss < 0 || loss >= count || buffers.Get(loss)->dtype() != DType::F32 ||
      (buffers.Get(loss)->shape() && buffers.Get(loss)->shape()->size() != 0))
    return Status::error(where + " has no scalar f32 loss buffer");
  if (program.grad_norm() >= count)
    return Status::error(where + " has an invalid grad_norm buffer");
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
  // Every device's program is walked separately, so big meshes hold many tables; a
  // table takes at least 4 bytes, which bounds what a real file can hold.
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
  if (devices > 65536 || int64_t(plan->programs()->size()) != devices)
    return fail("the plan's mesh has " + std::to_string(devices) + " devices but " +
                std::to_string(plan->programs()->size()) + " programs");
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
  LoadedPlan loaded;
  loaded.path_ = name;
  loaded.bytes_ = std::move(bytes);
  return loaded;
}

Result<LoadedPlan> LoadedPlan::load(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Result<LoadedPlan>::error(path + ": cannot open");
  std::ostringstream contents;
  contents << in.rdbuf();
  return fromBytes(contents.str(), path);
}

} // namespace apc::plan
