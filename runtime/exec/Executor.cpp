#include "runtime/exec/Executor.h"

#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/schema/plan_generated.h"

#include <cstdlib>
#include <cstring>

namespace apc::exec {

const Backend &cpuBackend() {
  static const Backend backend{"cpu", &kernels::findCpuKernel};
  return backend;
}

namespace {

void *allocateZeroed(uint64_t bytes) {
  constexpr uint64_t kAlign = 64;
  uint64_t rounded = (std::max<uint64_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  void *p = std::aligned_alloc(kAlign, rounded);
  if (p)
    std::memset(p, 0, rounded);
  return p;
}

kernels::Attributes convertAttributes(const plan::Instruction &inst) {
  std::vector<kernels::Attribute> attrs;
  if (inst.attributes())
    for (const plan::Attribute *a : *inst.attributes()) {
      kernels::Attribute k;
      k.name = a->name()->str();
      k.kind = kernels::Attribute::Kind(uint8_t(a->kind()));
      k.i = a->i();
      k.f = a->f();
      k.b = a->b();
      if (a->s())
        k.s = a->s()->str();
      if (a->ints())
        k.ints.assign(a->ints()->begin(), a->ints()->end());
      attrs.push_back(std::move(k));
    }
  return kernels::Attributes(std::move(attrs));
}

} // namespace

Executor::~Executor() {
  for (void *p : allocations_)
    std::free(p);
}

Result<std::unique_ptr<Executor>> Executor::create(const plan::Plan &plan, int device,
                                                   const Backend &backend,
                                                   kernels::KernelContext context) {
  using R = Result<std::unique_ptr<Executor>>;
  const plan::Program *program = nullptr;
  for (const plan::Program *p : *plan.programs())
    if (p->device() == device)
      program = p;
  if (!program)
    return R::error("the plan has no program for device " + std::to_string(device));
  std::unique_ptr<Executor> exec(new Executor(*program, context));

  const auto &buffers = *program->buffers();
  exec->arenaBytes_ = program->arena_bytes();
  auto *arena = static_cast<uint8_t *>(allocateZeroed(exec->arenaBytes_));
  if (!arena)
    return R::error("cannot allocate the " + std::to_string(exec->arenaBytes_) +
                    "-byte arena");
  exec->allocations_.push_back(arena);
  exec->views_.resize(buffers.size());
  for (size_t b = 0; b < buffers.size(); ++b) {
    const plan::Buffer *buffer = buffers.Get(b);
    kernels::TensorView &view = exec->views_[b];
    view.dtype = kernels::DType(uint8_t(buffer->dtype()));
    if (buffer->shape())
      view.shape.assign(buffer->shape()->begin(), buffer->shape()->end());
    switch (buffer->kind()) {
    case plan::BufferKind::Arena:
      view.data = arena + buffer->offset();
      break;
    case plan::BufferKind::Alias:
      break; // after all roots have memory
    default:
      view.data = allocateZeroed(buffer->bytes());
      if (!view.data)
        return R::error("cannot allocate " + std::to_string(buffer->bytes()) + " bytes for '" +
                        buffer->name()->str() + "'");
      exec->allocations_.push_back(view.data);
    }
  }
  for (size_t b = 0; b < buffers.size(); ++b)
    if (buffers.Get(b)->kind() == plan::BufferKind::Alias)
      exec->views_[b].data = exec->views_[buffers.Get(b)->alias_of()].data;

  for (size_t k = 0; k < program->instructions()->size(); ++k) {
    const plan::Instruction *inst = program->instructions()->Get(k);
    Prepared p;
    p.kernel = backend.find(inst->kernel()->str());
    if (!p.kernel)
      return R::error("instruction " + std::to_string(k) + ": the " + backend.name +
                      " backend has no kernel '" + inst->kernel()->str() + "'");
    if (inst->inputs())
      for (int b : *inst->inputs())
        p.inputs.push_back(exec->views_[b]);
    if (inst->outputs())
      for (int b : *inst->outputs())
        p.outputs.push_back(exec->views_[b]);
    p.attributes = convertAttributes(*inst);
    if (Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes); !s)
      return R::error("instruction " + std::to_string(k) + " ('" + inst->kernel()->str() +
                      "'): " + s.message());
    exec->prepared_.push_back(std::move(p));
  }
  return exec;
}

Status Executor::setAttribute(std::string_view kernel, const kernels::Attribute &attr) {
  for (Prepared &p : prepared_)
    if (kernel == p.kernel->name) {
      p.attributes.set(attr);
      if (Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes); !s)
        return Status::error(std::string(kernel) + " with " + attr.name + ": " + s.message());
    }
  return Status::ok();
}

Status Executor::step() {
  for (size_t k = 0; k < prepared_.size(); ++k) {
    const Prepared &p = prepared_[k];
    if (Status s = p.kernel->run(context_, p.inputs, p.outputs, p.attributes); !s)
      return Status::error("instruction " + std::to_string(k) + " ('" + p.kernel->name +
                           "'): " + s.message());
  }
  return Status::ok();
}

} // namespace apc::exec
