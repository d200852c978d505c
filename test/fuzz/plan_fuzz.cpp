// Fuzzes plan::LoadedPlan::fromBytes: the input is a plan.fb. On success the plan is
// walked the way aprun reads it (every table, string and vector, optional fields only
// where present) and the promises of PlanLoader.h are checked: operands, aliases and
// parameter indices in range, arena buffers inside the arena, sizes equal to shapes,
// one scalar f32 loss.
#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanLoader.h"
#include "runtime/schema/plan_generated.h"
#include "runtime/support/MeshCoordinates.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>

using namespace apc;
using namespace apc::plan;

namespace {

size_t touch(const flatbuffers::String *s) {
  size_t sum = 0;
  if (s)
    for (char c : s->string_view())
      sum += uint8_t(c);
  return sum;
}

template <typename T> size_t touch(const flatbuffers::Vector<T> *v) {
  size_t sum = 0;
  if (v)
    for (T x : *v)
      sum += size_t(x);
  return sum;
}

size_t elementBytes(DType d) {
  switch (d) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::I64:
    return 8;
  }
  return 0;
}

size_t walkProgram(const Plan &plan, const Program &program) {
  size_t sum = size_t(program.stage()) + size_t(program.arena_bytes());
  APC_FUZZ_CHECK(program.buffers() && program.instructions(), "program without buffers");
  const auto &buffers = *program.buffers();
  int64_t count = int64_t(buffers.size());
  size_t numParameters = plan.parameters()->size();
  for (const Buffer *b : buffers) {
    sum += touch(b->name()) + touch(b->shape()) + touch(b->optimizer_slot());
    APC_FUZZ_CHECK(elementBytes(b->dtype()) > 0, "buffer with an unknown dtype");
    uint64_t bytes = elementBytes(b->dtype());
    if (b->shape())
      for (int64_t d : *b->shape()) {
        APC_FUZZ_CHECK(d >= 0, "negative dim");
        bytes *= uint64_t(d);
      }
    APC_FUZZ_CHECK(bytes == b->bytes(), "buffer of %llu bytes for a shape of %llu",
                   (unsigned long long)b->bytes(), (unsigned long long)bytes);
    switch (b->kind()) {
    case BufferKind::Arena:
      APC_FUZZ_CHECK(b->offset() + b->bytes() <= program.arena_bytes() &&
                         b->offset() + b->bytes() >= b->offset(),
                     "arena buffer outside the arena");
      break;
    case BufferKind::Alias:
      APC_FUZZ_CHECK(b->alias_of() >= 0 && b->alias_of() < count &&
                         buffers.Get(flatbuffers::uoffset_t(b->alias_of()))->kind() !=
                             BufferKind::Alias,
                     "alias of buffer %d", b->alias_of());
      break;
    case BufferKind::Parameter:
    case BufferKind::OptimizerState:
      APC_FUZZ_CHECK(b->parameter() >= 0 && size_t(b->parameter()) < numParameters,
                     "parameter %d of %zu", b->parameter(), numParameters);
      break;
    case BufferKind::Input:
      APC_FUZZ_CHECK(b->binding() != Binding::None, "input without binding");
      break;
    default:
      APC_FUZZ_CHECK(false, "unknown buffer kind %d", int(b->kind()));
    }
  }
  for (const Instruction *inst : *program.instructions()) {
    sum += touch(inst->kernel()) + (inst->flops() > 0);
    for (const auto *list : {inst->inputs(), inst->outputs()})
      if (list)
        for (int32_t index : *list)
          APC_FUZZ_CHECK(index >= 0 && index < count, "operand %d of %lld", index,
                         (long long)count);
    if (inst->attributes())
      for (const Attribute *a : *inst->attributes())
        sum += touch(a->name()) + touch(a->s()) + touch(a->ints()) + size_t(a->i()) +
               size_t(a->b()) + size_t(a->kind()) + (a->f() > 0);
  }
  int loss = program.loss();
  APC_FUZZ_CHECK(loss >= 0 && loss < count, "loss buffer %d of %lld", loss, (long long)count);
  const Buffer *lossBuffer = buffers.Get(flatbuffers::uoffset_t(loss));
  APC_FUZZ_CHECK(lossBuffer->dtype() == DType::F32 &&
                     (!lossBuffer->shape() || lossBuffer->shape()->size() == 0),
                 "loss is not a scalar f32");
  APC_FUZZ_CHECK(program.grad_norm() < count, "grad_norm buffer %d", program.grad_norm());
  return sum;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string name = "fuzz.fb";
  Result<LoadedPlan> loaded =
      LoadedPlan::fromBytes(std::string(reinterpret_cast<const char *>(data), size), name);
  fuzz::report(loaded ? "accepted" : loaded.status().message());
  if (!loaded) {
    APC_FUZZ_CHECK(fuzz::namesFile(loaded.status().message(), name), "message: %s",
                   loaded.status().message().c_str());
    return 0;
  }
  const Plan &plan = loaded->plan();
  size_t sum = touch(plan.producer()) + touch(plan.precision()) + touch(plan.parallel_plan()) +
               touch(plan.mesh_shape());
  if (plan.mesh_axes())
    for (const flatbuffers::String *axis : *plan.mesh_axes())
      sum += touch(axis);
  APC_FUZZ_CHECK(plan.model() && plan.data() && plan.optimizer() && plan.parameters(),
                 "a section is missing");
  sum += touch(plan.model()->architecture()) + touch(plan.model()->rope_type()) +
         size_t(plan.model()->hidden_size());
  sum += touch(plan.optimizer()->name());
  if (plan.predicted())
    sum += touch(plan.predicted()->cluster());
  APC_FUZZ_CHECK(plan.data()->batch() > 0 && plan.data()->seq_len() > 0, "empty data spec");
  for (const ParameterSpec *p : *plan.parameters())
    sum += touch(p->name()) + touch(p->shape()) + touch(p->init());
  // One program per stage; every device finds its own (DeviceProgram.h).
  int64_t devices = deviceCount(plan);
  for (int64_t rank = 0; rank < devices; ++rank) {
    const Program *program = programOf(plan, rank);
    APC_FUZZ_CHECK(program != nullptr, "no program for device %lld", (long long)rank);
    APC_FUZZ_CHECK(program->stage() == stageOf(plan, coordinatesOf(rank, meshShapeOf(plan))),
                   "device %lld runs a program of another stage", (long long)rank);
  }
  for (const Program *program : *plan.programs())
    sum += walkProgram(plan, *program);
  (void)sum;
  return 0;
}
