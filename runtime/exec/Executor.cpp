#include "runtime/exec/Executor.h"
#include "runtime/exec/EventDiscipline.h"

#include "runtime/comm/Communicator.h"
#include "runtime/kernels/cpu/CpuKernels.h"
#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanTypes.h"
#include "runtime/support/MeshCoordinates.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace apc::exec {

namespace {
Result<std::unique_ptr<device::Device>> hostDevice() { return device::cpuDevice(); }
Result<std::unique_ptr<device::Device>> detachedHostDevice() {
  return device::detachedCpuDevice();
}
} // namespace

const Backend &cpuBackend() {
  static const Backend backend{"cpu", &kernels::findCpuKernel, &hostDevice};
  return backend;
}

const Backend &detachedCpuBackend() {
  static const Backend backend{"cpu", &kernels::findCpuKernel, &detachedHostDevice};
  return backend;
}

#ifndef APC_HAVE_CUDA
const Backend *cudaBackend() { return nullptr; }
#endif

namespace {

// The instruction's attributes, plus `vocab_start` for this device's vocabulary block and
// `seq_shard_rank` for its chunks of the sequence (DeviceProgram.h).
kernels::Attributes convertAttributes(const plan::Instruction &inst,
                                      std::optional<int64_t> vocabStart,
                                      std::optional<int64_t> seqShardRank) {
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
  for (auto [name, value] : {std::pair{"vocab_start", vocabStart}, {"seq_shard_rank", seqShardRank}})
    if (value) {
      kernels::Attribute k;
      k.name = name;
      k.kind = kernels::Attribute::Kind::Int;
      k.i = *value;
      attrs.push_back(std::move(k));
    }
  return kernels::Attributes(std::move(attrs));
}

std::string dimsText(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// A tensor cut along `dim`: `outer` rows (the product of the dims before it) of
// `rowBytes` contiguous bytes each (the dims from `dim` on).
struct Blocks {
  size_t outer = 1, rowBytes = 0;
};
Blocks blocksOf(const kernels::TensorView &t, int64_t dim) {
  Blocks b;
  b.rowBytes = kernels::dtypeSize(t.dtype);
  for (size_t d = 0; d < t.shape.size(); ++d)
    (int64_t(d) < dim ? b.outer : b.rowBytes) *= size_t(t.shape[d]);
  return b;
}

// Under context parallelism (`balanced`) the dim holds 2n chunks: half `j` of device q's
// part is chunk q (j = 0) or chunk 2n-1-q (j = 1).
size_t balancedChunk(size_t q, size_t j, size_t n) { return j == 0 ? q : 2 * n - 1 - q; }

} // namespace

bool isCollectiveKernel(std::string_view name) {
  return name == "all_reduce" || name == "all_gather" || name == "reduce_scatter" ||
         name == "all_slice" || name == "send" || name == "recv";
}

Executor::~Executor() {
  // The device releases what it allocated; the host copies are the executor's.
  for (const auto &entry : hostCopies_)
    device_->releaseHost(entry.second);
}

Result<std::unique_ptr<Executor>> Executor::create(const plan::Plan &plan, int device,
                                                   const Backend &backend,
                                                   kernels::KernelContext context,
                                                   GroupLookup groups) {
  using R = Result<std::unique_ptr<Executor>>;
  // The program of the device's pipeline stage; its vocabulary blocks start where its
  // coordinates say (DeviceProgram.h).
  const plan::Program *program = plan::programOf(plan, device);
  if (!program)
    return R::error("the plan has no program for device " + std::to_string(device));
  std::vector<int64_t> coordinates = coordinatesOf(device, plan::meshShapeOf(plan));
  auto made = backend.makeDevice();
  if (!made)
    return R::error(made.message());
  (*made)->bindContext(context);
  std::unique_ptr<Executor> exec(new Executor(*program, context, std::move(*made)));
  device::Device &memory = *exec->device_;

  const auto &buffers = *program->buffers();
  exec->arenaBytes_ = program->arena_bytes();
  auto arenaMemory = memory.allocate(exec->arenaBytes_);
  if (!arenaMemory)
    return R::error("the " + std::to_string(exec->arenaBytes_) + "-byte arena: " +
                    arenaMemory.message());
  auto *arena = static_cast<uint8_t *>(*arenaMemory);
  exec->views_.resize(buffers.size());
  for (size_t b = 0; b < buffers.size(); ++b) {
    const plan::Buffer *buffer = buffers.Get(b);
    kernels::TensorView &view = exec->views_[b];
    view.dtype = plan::toDType(buffer->dtype());
    if (buffer->shape())
      view.shape.assign(buffer->shape()->begin(), buffer->shape()->end());
    switch (buffer->kind()) {
    case plan::BufferKind::Arena:
      view.data = arena + buffer->offset();
      break;
    case plan::BufferKind::Alias:
      break; // after all roots have memory
    default:
      auto persistent = memory.allocate(buffer->bytes());
      if (!persistent)
        return R::error("buffer '" + buffer->name()->str() + "': " + persistent.message());
      view.data = *persistent;
      exec->persistentBytes_ += buffer->bytes();
    }
  }
  for (size_t b = 0; b < buffers.size(); ++b)
    if (buffers.Get(b)->kind() == plan::BufferKind::Alias)
      exec->views_[b].data = exec->views_[buffers.Get(b)->alias_of()].data;

  size_t stagingBytes = 0;
  for (size_t k = 0; k < program->instructions()->size(); ++k) {
    const plan::Instruction *inst = program->instructions()->Get(k);
    Prepared p;
    p.name = inst->kernel()->str();
    std::string where = "instruction " + std::to_string(k) + " ('" + p.name + "')";
    if (inst->inputs())
      for (int b : *inst->inputs())
        p.inputs.push_back(exec->views_[b]);
    if (inst->outputs())
      for (int b : *inst->outputs())
        p.outputs.push_back(exec->views_[b]);
    p.attributes = convertAttributes(*inst, plan::vocabStart(*inst, coordinates),
                                     plan::seqShardRank(*inst, coordinates));
    if (isCollectiveKernel(p.name)) {
      // The executor's collectives (Gloo) move host memory.
      if (!backend.hostCollectives)
        return R::error(where + ": collectives on the " + std::string(backend.name) +
                        " backend need NCCL, which is not built yet: run a one-device plan");
      if (Status s = prepareCollective(p, groups); !s)
        return R::error(where + ": " + s.message());
      size_t need = 0;
      if (p.op == Op::AllReduceSum && p.inputs.size() > 1)
        for (const kernels::TensorView &t : p.inputs)
          need += size_t(t.numElements()) * sizeof(float);
      if (p.op == Op::AllGather && (p.balanced || blocksOf(p.inputs[0], p.dim).outer > 1))
        need = size_t(p.outputs[0].numElements()) * kernels::dtypeSize(p.outputs[0].dtype);
      if (p.op == Op::ReduceScatter && (p.balanced || blocksOf(p.outputs[0], p.dim).outer > 1))
        need = size_t(p.inputs[0].numElements()) * sizeof(float);
      stagingBytes = std::max(stagingBytes, need);
      exec->prepared_.push_back(std::move(p));
      continue;
    }
    p.kernel = backend.find(p.name);
    if (!p.kernel)
      return R::error("instruction " + std::to_string(k) + ": the " + backend.name +
                      " backend has no kernel '" + p.name + "'");
    if (Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes); !s)
      return R::error(where + ": " + s.message());
    if (p.kernel->workspace)
      exec->workspaceBytes_ = std::max(exec->workspaceBytes_,
                                       p.kernel->workspace(p.inputs, p.outputs, p.attributes));
    exec->prepared_.push_back(std::move(p));
  }
  exec->staging_.resize((stagingBytes + 7) / 8);
  if (Status s = exec->checkStreams(); !s)
    return R::error(s.message());
  // Host copies of what the training loop reads and writes (inputs, parameters, optimizer
  // state, loss, norm), made at load where the host cannot reach the device's memory.
  if (!memory.hostAccessible())
    for (size_t b = 0; b < buffers.size(); ++b) {
      const plan::Buffer *buffer = buffers.Get(flatbuffers::uoffset_t(b));
      bool loopSide = buffer->kind() != plan::BufferKind::Arena &&
                      buffer->kind() != plan::BufferKind::Alias;
      if (!loopSide && int(b) != program->loss() && int(b) != program->grad_norm())
        continue;
      const kernels::TensorView &view = exec->views_[b];
      auto host = memory.allocateHost(uint64_t(view.numElements()) *
                                      kernels::dtypeSize(view.dtype));
      if (!host)
        return R::error("buffer '" + buffer->name()->str() + "': " + host.message());
      exec->hostCopies_.emplace(int(b), *host);
    }
  // One scratch area of the device for every kernel that asks for one (they run one at a
  // time), reserved here so that nothing is allocated while steps run.
  if (exec->workspaceBytes_ > 0) {
    auto workspace = memory.allocate(exec->workspaceBytes_);
    if (!workspace)
      return R::error("the kernels' " + std::to_string(exec->workspaceBytes_) +
                      "-byte workspace: " + workspace.message());
    exec->context_.workspace = *workspace;
    exec->context_.workspaceBytes = exec->workspaceBytes_;
  }
  return exec;
}

Status Executor::prepareCollective(Prepared &p, const GroupLookup &groups) {
  using kernels::Attribute;
  const Attribute *axesAttr = p.attributes.find("axes");
  if (!axesAttr || axesAttr->kind != Attribute::Kind::Ints || axesAttr->ints.empty())
    return Status::error("a collective needs an Ints attribute 'axes' naming its mesh axes");
  const std::vector<int64_t> &axes = axesAttr->ints;
  bool allReduce = p.name == "all_reduce";
  if (!allReduce && axes.size() != 1)
    return Status::error("runs over exactly one mesh axis, but 'axes' is " + dimsText(axes));
  p.group = groups ? groups(axes) : nullptr;
  if (!p.group)
    return Status::error("a collective, but this run has no communicator for it "
                         "(launch the plan's devices with aprun --nproc N or torchrun)");
  std::string over = "the " + std::to_string(p.group->size()) + " devices of mesh axes " +
                     dimsText(axes);
  if (p.name == "send" || p.name == "recv")
    return preparePointToPoint(p, axes[0]);

  if (allReduce) {
    std::string op = "sum";
    if (const Attribute *a = p.attributes.find("op")) {
      if (a->kind != Attribute::Kind::String || (a->s != "sum" && a->s != "max"))
        return Status::error("attribute 'op' must be the string \"sum\" or \"max\"");
      op = a->s;
    }
    if (p.inputs.size() != p.outputs.size() || p.inputs.empty())
      return Status::error("needs as many outputs as inputs");
    if (op == "max" && p.inputs.size() != 1)
      return Status::error("op \"max\" takes one input and one output, not " +
                           std::to_string(p.inputs.size()));
    for (size_t i = 0; i < p.inputs.size(); ++i)
      if (p.inputs[i].dtype != kernels::DType::F32 || p.outputs[i].dtype != kernels::DType::F32 ||
          p.inputs[i].numElements() != p.outputs[i].numElements())
        return Status::error("operand " + std::to_string(i) +
                             " is not an f32 input/output pair of one size");
    p.op = op == "max" ? Op::AllReduceMax : Op::AllReduceSum;
    return Status::ok();
  }

  p.op = p.name == "all_gather" ? Op::AllGather
         : p.name == "reduce_scatter" ? Op::ReduceScatter
                                      : Op::AllSlice;
  const Attribute *dimAttr = p.attributes.find("dim");
  if (!dimAttr || dimAttr->kind != Attribute::Kind::Int)
    return Status::error("needs an Int attribute 'dim'");
  if (p.inputs.size() != 1 || p.outputs.size() != 1)
    return Status::error("takes one input and one output, not " +
                         std::to_string(p.inputs.size()) + " and " +
                         std::to_string(p.outputs.size()));
  const kernels::TensorView &in = p.inputs[0], &out = p.outputs[0];
  p.dim = dimAttr->i;
  if (in.shape.size() != out.shape.size() || p.dim < 0 || p.dim >= int64_t(in.shape.size()))
    return Status::error("dim " + std::to_string(p.dim) + " with input " + dimsText(in.shape) +
                         " and output " + dimsText(out.shape) +
                         " (input and output must have one rank, with dim inside it)");
  if (in.dtype != out.dtype)
    return Status::error(std::string("input is ") + kernels::dtypeName(in.dtype) +
                         " but output is " + kernels::dtypeName(out.dtype));
  if (p.op == Op::ReduceScatter && in.dtype != kernels::DType::F32)
    return Status::error(std::string("sums f32 values, not ") + kernels::dtypeName(in.dtype));
  if (const Attribute *b = p.attributes.find("balanced")) {
    if (b->kind != Attribute::Kind::Bool)
      return Status::error("attribute 'balanced' must be a Bool");
    p.balanced = b->b;
  }
  const kernels::TensorView &partView = p.op == Op::AllGather ? in : out;
  if (p.balanced && partView.shape[size_t(p.dim)] % 2 != 0)
    return Status::error("is balanced (each device holds two chunks of dim " +
                         std::to_string(p.dim) + ") but its part " + dimsText(partView.shape) +
                         " has an odd number of rows there");
  // all_gather: the output is the larger; reduce_scatter and all_slice: the input.
  int64_t n = p.group->size();
  const kernels::TensorView &whole = p.op == Op::AllGather ? out : in;
  const kernels::TensorView &part = p.op == Op::AllGather ? in : out;
  for (size_t d = 0; d < in.shape.size(); ++d) {
    int64_t want = int64_t(d) == p.dim ? part.shape[d] * n : part.shape[d];
    if (whole.shape[d] != want)
      return Status::error(std::string(p.op == Op::AllGather ? "output" : "input") + " " +
                           dimsText(whole.shape) + " and " +
                           (p.op == Op::AllGather ? "input" : "output") + " " +
                           dimsText(part.shape) + " do not match: dim " + std::to_string(p.dim) +
                           " of the " + (p.op == Op::AllGather ? "output" : "input") +
                           " must be " + std::to_string(n) + " times the " +
                           (p.op == Op::AllGather ? "input" : "output") +
                           "'s (" + over + "), every other dim equal");
  }
  auto *inBegin = static_cast<const uint8_t *>(in.data);
  auto *outBegin = static_cast<const uint8_t *>(out.data);
  size_t inBytes = size_t(in.numElements()) * kernels::dtypeSize(in.dtype);
  size_t outBytes = size_t(out.numElements()) * kernels::dtypeSize(out.dtype);
  if (inBytes > 0 && outBytes > 0 && inBegin < outBegin + outBytes && outBegin < inBegin + inBytes)
    return Status::error("input and output overlap");
  return Status::ok();
}

Status Executor::preparePointToPoint(Prepared &p, int64_t axis) {
  using kernels::Attribute;
  const bool send = p.name == "send";
  if (send ? p.inputs.size() != 1 || !p.outputs.empty()
           : !p.inputs.empty() || p.outputs.size() != 1)
    return Status::error(std::string(send ? "takes one input and no outputs"
                                          : "takes no inputs and one output") +
                         ", not " + std::to_string(p.inputs.size()) + " and " +
                         std::to_string(p.outputs.size()));
  const Attribute *offsetAttr = p.attributes.find("peer_offset");
  if (!offsetAttr || offsetAttr->kind != Attribute::Kind::Int)
    return Status::error("needs an Int attribute 'peer_offset' (the peer's coordinate on mesh "
                         "axis " + std::to_string(axis) + " minus this device's)");
  int64_t tag = 0;
  if (const Attribute *tagAttr = p.attributes.find("tag")) {
    if (tagAttr->kind != Attribute::Kind::Int || tagAttr->i < 0 || tagAttr->i > int64_t(UINT32_MAX))
      return Status::error("attribute 'tag' must be an Int from 0 to " +
                           std::to_string(UINT32_MAX));
    tag = tagAttr->i;
  }
  const int64_t offset = offsetAttr->i, me = p.group->rank(), n = p.group->size();
  if (offset == 0)
    return Status::error("peer_offset 0 names this device itself");
  // offset is any int64: compare without overflowing.
  if (offset < -me || offset >= n - me)
    return Status::error("peer_offset " + std::string(offset > 0 ? "+" : "") +
                         std::to_string(offset) + " from coordinate " + std::to_string(me) +
                         " on mesh axis " + std::to_string(axis) + " (of size " +
                         std::to_string(n) + ") is outside the axis");
  p.op = send ? Op::Send : Op::Recv;
  p.peer = int(me + offset);
  p.tag = uint32_t(tag);
  return Status::ok();
}

Status Executor::runCollective(const Prepared &p) {
  switch (p.op) {
  case Op::AllReduceSum: return allReduce(p);
  case Op::AllReduceMax: {
    size_t n = size_t(p.inputs[0].numElements());
    if (p.outputs[0].data != p.inputs[0].data)
      std::memmove(p.outputs[0].data, p.inputs[0].data, n * sizeof(float));
    return p.group->allReduceMax(p.outputs[0].as<float>(), n);
  }
  case Op::AllGather: return allGather(p);
  case Op::ReduceScatter: return reduceScatter(p);
  case Op::AllSlice: return allSlice(p);
  case Op::Send: {
    const kernels::TensorView &in = p.inputs[0];
    return p.group->send(in.data, size_t(in.numElements()) * kernels::dtypeSize(in.dtype),
                         p.peer, p.tag);
  }
  case Op::Recv: {
    const kernels::TensorView &out = p.outputs[0];
    return p.group->recv(out.data, size_t(out.numElements()) * kernels::dtypeSize(out.dtype),
                         p.peer, p.tag);
  }
  case Op::Kernel: break;
  }
  return Status::error("not a collective");
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
  auto *staging = reinterpret_cast<float *>(staging_.data());
  size_t total = 0;
  for (const kernels::TensorView &t : p.inputs) {
    std::memcpy(staging + total, t.data, size_t(t.numElements()) * sizeof(float));
    total += size_t(t.numElements());
  }
  APC_RETURN_IF_ERROR(p.group->allReduceSum(staging, total));
  size_t at = 0;
  for (const kernels::TensorView &t : p.outputs) {
    std::memcpy(t.data, staging + at, size_t(t.numElements()) * sizeof(float));
    at += size_t(t.numElements());
  }
  return Status::ok();
}

// Blocks along `dim`: `outer` rows (the dims before it), each holding one contiguous
// block of `rowBytes` per rank (the dims from `dim` on, of the per-rank part).
Status Executor::allGather(const Prepared &p) {
  const kernels::TensorView &in = p.inputs[0];
  Blocks b = blocksOf(in, p.dim);
  size_t n = size_t(p.group->size());
  if (b.outer <= 1 && !p.balanced) // rank q's block is already the q-th slice of the output
    return p.group->allGather(in.data, p.outputs[0].data, b.outer * b.rowBytes);
  auto *staging = reinterpret_cast<uint8_t *>(staging_.data());
  size_t perRank = b.outer * b.rowBytes;
  APC_RETURN_IF_ERROR(p.group->allGather(in.data, staging, perRank));
  auto *out = p.outputs[0].as<uint8_t>();
  if (p.balanced) { // each rank's two halves go to their chunks
    size_t half = b.rowBytes / 2;
    for (size_t o = 0; o < b.outer; ++o)
      for (size_t q = 0; q < n; ++q)
        for (size_t j = 0; j < 2; ++j)
          std::memcpy(out + o * n * b.rowBytes + balancedChunk(q, j, n) * half,
                      staging + q * perRank + o * b.rowBytes + j * half, half);
    return Status::ok();
  }
  for (size_t o = 0; o < b.outer; ++o)
    for (size_t q = 0; q < n; ++q)
      std::memcpy(out + (o * n + q) * b.rowBytes, staging + q * perRank + o * b.rowBytes,
                  b.rowBytes);
  return Status::ok();
}

Status Executor::reduceScatter(const Prepared &p) {
  const kernels::TensorView &out = p.outputs[0];
  Blocks b = blocksOf(out, p.dim);
  size_t n = size_t(p.group->size());
  size_t perRank = b.outer * b.rowBytes / sizeof(float);
  if (b.outer <= 1 && !p.balanced)
    return p.group->reduceScatterSum(p.inputs[0].as<float>(), out.as<float>(), perRank);
  // Pack each rank's block contiguously: staging holds block 0, block 1, ...
  auto *staging = reinterpret_cast<uint8_t *>(staging_.data());
  auto *in = p.inputs[0].as<const uint8_t>();
  size_t half = b.rowBytes / 2;
  for (size_t o = 0; o < b.outer; ++o)
    for (size_t q = 0; q < n; ++q) {
      uint8_t *to = staging + q * perRank * sizeof(float) + o * b.rowBytes;
      if (!p.balanced) {
        std::memcpy(to, in + (o * n + q) * b.rowBytes, b.rowBytes);
        continue;
      }
      for (size_t j = 0; j < 2; ++j)
        std::memcpy(to + j * half, in + o * n * b.rowBytes + balancedChunk(q, j, n) * half, half);
    }
  return p.group->reduceScatterSum(reinterpret_cast<const float *>(staging), out.as<float>(),
                                   perRank);
}

Status Executor::allSlice(const Prepared &p) {
  const kernels::TensorView &out = p.outputs[0];
  Blocks b = blocksOf(out, p.dim);
  size_t n = size_t(p.group->size()), r = size_t(p.group->rank());
  auto *in = p.inputs[0].as<const uint8_t>();
  size_t half = b.rowBytes / 2;
  for (size_t o = 0; o < b.outer; ++o) {
    if (!p.balanced) {
      std::memcpy(out.as<uint8_t>() + o * b.rowBytes, in + (o * n + r) * b.rowBytes, b.rowBytes);
      continue;
    }
    for (size_t j = 0; j < 2; ++j)
      std::memcpy(out.as<uint8_t>() + o * b.rowBytes + j * half,
                  in + o * n * b.rowBytes + balancedChunk(r, j, n) * half, half);
  }
  return Status::ok();
}

Status Executor::setAttribute(std::string_view kernel, const kernels::Attribute &attr) {
  return changeAttributes(kernel, "with " + attr.name,
                          [&](kernels::Attributes &a) { a.set(attr); });
}

Status Executor::removeAttribute(std::string_view kernel, std::string_view name) {
  return changeAttributes(kernel, "without " + std::string(name),
                          [&](kernels::Attributes &a) { a.erase(name); });
}

// Applies `change` to every instruction calling `kernel` and validates each again; a
// refusal restores every instruction's attributes as they were, so a failed change
// leaves a program that still runs.
Status Executor::changeAttributes(std::string_view kernel, const std::string &what,
                                  const std::function<void(kernels::Attributes &)> &change) {
  std::vector<std::pair<Prepared *, kernels::Attributes>> before;
  for (Prepared &p : prepared_)
    if (p.op == Op::Kernel && kernel == p.kernel->name) {
      before.emplace_back(&p, p.attributes);
      change(p.attributes);
      Status s = p.kernel->prepare(p.inputs, p.outputs, p.attributes);
      if (s)
        s = fitsWorkspace(p);
      if (!s) {
        for (auto &[prepared, attributes] : before)
          prepared->attributes = std::move(attributes);
        return Status::error(std::string(kernel) + " " + what + ": " + s.message());
      }
    }
  return Status::ok();
}

Status Executor::fitsWorkspace(const Prepared &p) const {
  if (!p.kernel->workspace)
    return Status::ok();
  uint64_t need = p.kernel->workspace(p.inputs, p.outputs, p.attributes);
  if (need <= workspaceBytes_)
    return Status::ok();
  return Status::error("needs " + std::to_string(need) + " bytes of workspace, " +
                       std::to_string(workspaceBytes_) + " were reserved at load");
}

Status Executor::checkStreams() const {
  const auto &instructions = *program_.instructions();
  bool streamed = program_.num_events() > 0;
  for (const plan::Instruction *inst : instructions)
    streamed = streamed || inst->stream() != 0;
  if (!streamed)
    return Status::ok(); // one stream: program order is the only order
  std::vector<StreamedInstruction> streamed_(instructions.size());
  for (size_t k = 0; k < instructions.size(); ++k) {
    const plan::Instruction *inst = instructions.Get(flatbuffers::uoffset_t(k));
    StreamedInstruction &s = streamed_[k];
    s.kernel = inst->kernel()->str();
    s.stream = inst->stream();
    s.records = inst->record_event();
    if (inst->wait_events())
      s.waits.assign(inst->wait_events()->begin(), inst->wait_events()->end());
    auto add = [&](const flatbuffers::Vector<int32_t> *list, std::vector<kernels::TensorView> &views,
                   std::vector<std::string> &names) {
      if (list)
        for (int b : *list) {
          views.push_back(views_[size_t(b)]);
          names.push_back(program_.buffers()->Get(flatbuffers::uoffset_t(b))->name()->str());
        }
    };
    add(inst->inputs(), s.reads, s.readNames);
    add(inst->outputs(), s.writes, s.writeNames);
  }
  Status s = checkEventDiscipline(streamed_, int(program_.num_events()));
  if (!s)
    return Status::error("the plan's streams race: " + s.message());
  return Status::ok();
}

kernels::TensorView Executor::hostView(int index) {
  const kernels::TensorView &view = views_[size_t(index)];
  if (device_->hostAccessible())
    return view;
  kernels::TensorView host = view;
  auto it = hostCopies_.find(index);
  if (it == hostCopies_.end()) {
    uint64_t bytes = uint64_t(view.numElements()) * kernels::dtypeSize(view.dtype);
    auto memory = device_->allocateHost(bytes);
    if (!memory) { // made at load for every buffer the loop uses: a defect to get here
      std::fprintf(stderr, "aprun: buffer %d: %s\n", index, memory.message().c_str());
      std::abort();
    }
    it = hostCopies_.emplace(index, *memory).first;
  }
  host.data = it->second;
  return host;
}

Status Executor::push(int index) {
  if (device_->hostAccessible())
    return Status::ok();
  const kernels::TensorView &view = views_[size_t(index)];
  kernels::TensorView host = hostView(index);
  return device_->upload(view.data, host.data,
                         uint64_t(view.numElements()) * kernels::dtypeSize(view.dtype));
}

Status Executor::pull(int index) {
  if (device_->hostAccessible())
    return Status::ok();
  const kernels::TensorView &view = views_[size_t(index)];
  kernels::TensorView host = hostView(index);
  return device_->download(host.data, view.data,
                           uint64_t(view.numElements()) * kernels::dtypeSize(view.dtype));
}

Status Executor::pushAll() {
  for (const auto &entry : hostCopies_)
    APC_RETURN_IF_ERROR(push(entry.first));
  return Status::ok();
}

Status Executor::pullAll() {
  for (const auto &entry : hostCopies_)
    APC_RETURN_IF_ERROR(pull(entry.first));
  return Status::ok();
}

Status Executor::step() {
  using Clock = std::chrono::steady_clock;
  for (size_t k = 0; k < prepared_.size(); ++k) {
    const Prepared &p = prepared_[k];
    Clock::time_point start = profiling_ ? Clock::now() : Clock::time_point();
    Status s = p.op == Op::Kernel ? p.kernel->run(context_, p.inputs, p.outputs, p.attributes)
                                  : runCollective(p);
    if (profiling_)
      instructionSeconds_[k] += std::chrono::duration<double>(Clock::now() - start).count();
    if (!s)
      return Status::error("instruction " + std::to_string(k) + " ('" + p.name + "'): " +
                           s.message());
  }
  return device_->synchronize(); // the step is done when the device is
}

} // namespace apc::exec
