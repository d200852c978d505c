#include "runtime/exec/Executor.h"

#include "runtime/comm/Communicator.h"
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
                                                   kernels::KernelContext context,
                                                   GroupLookup groups) {
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
    std::string where = "instruction " + std::to_string(k) + " ('" + inst->kernel()->str() + "')";
    if (inst->inputs())
      for (int b : *inst->inputs())
        p.inputs.push_back(exec->views_[b]);
    if (inst->outputs())
      for (int b : *inst->outputs())
        p.outputs.push_back(exec->views_[b]);
    p.attributes = convertAttributes(*inst);
    if (inst->kernel()->str() == "all_reduce") {
      std::vector<int64_t> axes = p.attributes.getInts("axes");
      p.group = groups ? groups(axes) : nullptr;
      if (!p.group)
        return R::error(where + ": a collective, but this run has no communicator for it "
                                "(launch the plan's devices with aprun --nproc N or torchrun)");
      if (p.inputs.size() != p.outputs.size() || p.inputs.empty())
        return R::error(where + ": needs as many outputs as inputs");
      for (size_t i = 0; i < p.inputs.size(); ++i)
        if (p.inputs[i].dtype != kernels::DType::F32 || p.outputs[i].dtype != kernels::DType::F32 ||
            p.inputs[i].numElements() != p.outputs[i].numElements())
          return R::error(where + ": operand " + std::to_string(i) +
                          " is not an f32 input/output pair of one size");
      exec->prepared_.push_back(std::move(p));
      continue;
    }
    p.kernel = backend.find(inst->kernel()->str());
    if (!p.kernel)
      return R::error("instruction " + std::to_string(k) + ": the " + backend.name +
                      " backend has no kernel '" + inst->kernel()->str() + "'");
    if (Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes); !s)
      return R::error(where + ": " + s.message());
    exec->prepared_.push_back(std::move(p));
  }
  return exec;
}

// One collective for the whole bucket: pack, reduce, unpack (a single input needs no
// packing: it is reduced in its output).
Status Executor::allReduce(const Prepared &p) {
  if (p.inputs.size() == 1) {
    size_t n = size_t(p.inputs[0].numElements());
    if (p.outputs[0].data != p.inputs[0].data)
      std::memcpy(p.outputs[0].data, p.inputs[0].data, n * sizeof(float));
    return p.group->allReduceSum(p.outputs[0].as<float>(), n);
  }
  size_t total = 0;
  for (const kernels::TensorView &t : p.inputs)
    total += size_t(t.numElements());
  staging_.resize(total);
  size_t at = 0;
  for (const kernels::TensorView &t : p.inputs) {
    std::memcpy(staging_.data() + at, t.data, size_t(t.numElements()) * sizeof(float));
    at += size_t(t.numElements());
  }
  APC_RETURN_IF_ERROR(p.group->allReduceSum(staging_.data(), total));
  at = 0;
  for (const kernels::TensorView &t : p.outputs) {
    std::memcpy(t.data, staging_.data() + at, size_t(t.numElements()) * sizeof(float));
    at += size_t(t.numElements());
  }
  return Status::ok();
}

Status Executor::setAttribute(std::string_view kernel, const kernels::Attribute &attr) {
  for (Prepared &p : prepared_)
    if (p.kernel && kernel == p.kernel->name) {
      p.attributes.set(attr);
      if (Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes); !s)
        return Status::error(std::string(kernel) + " with " + attr.name + ": " + s.message());
    }
  return Status::ok();
}

Status Executor::removeAttribute(std::string_view kernel, std::string_view name) {
  for (Prepared &p : prepared_)
    if (p.kernel && kernel == p.kernel->name) {
      p.attributes.erase(name);
      if (Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes); !s)
        return Status::error(std::string(kernel) + " without " + std::string(name) + ": " +
                             s.message());
    }
  return Status::ok();
}

Status Executor::step() {
  for (size_t k = 0; k < prepared_.size(); ++k) {
    const Prepared &p = prepared_[k];
    Status s = p.kernel ? p.kernel->run(context_, p.inputs, p.outputs, p.attributes)
                        : allReduce(p);
    if (!s)
      return Status::error("instruction " + std::to_string(k) + " ('" +
                           (p.kernel ? p.kernel->name : "all_reduce") + "'): " + s.message());
  }
  return Status::ok();
}

} // namespace apc::exec
