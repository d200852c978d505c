#include "compiler/cost/Memory.h"

#include <algorithm>

namespace apc::cost {
namespace {

using lowering::BufferKind;

uint64_t elements(const lowering::ExecBuffer &b) {
  uint64_t n = 1;
  for (int64_t d : b.shape)
    n *= uint64_t(d);
  return n;
}

int64_t intAttribute(const lowering::ExecInstruction &inst, const char *name) {
  for (const lowering::ExecAttribute &a : inst.attributes)
    if (a.name == name)
      return a.i;
  return 0;
}

// Elements before dim `dim`: more than one and the blocks are not contiguous.
uint64_t outerBlocks(const lowering::ExecBuffer &b, int64_t dim) {
  uint64_t n = 1;
  for (int64_t d = 0; d < dim && size_t(d) < b.shape.size(); ++d)
    n *= uint64_t(b.shape[size_t(d)]);
  return n;
}

// The executor's staging need of one collective (Executor::create, the same rules).
uint64_t stagingOf(const lowering::ExecProgram &p, const lowering::ExecInstruction &inst) {
  auto buffer = [&](int b) -> const lowering::ExecBuffer & { return p.buffers[size_t(b)]; };
  if (inst.kernel == "all_reduce" && inst.inputs.size() > 1) {
    uint64_t n = 0;
    for (int b : inst.inputs)
      n += elements(buffer(b)) * sizeof(float);
    return n;
  }
  if (inst.inputs.empty() || inst.outputs.empty())
    return 0;
  int64_t dim = intAttribute(inst, "dim");
  if (inst.kernel == "all_gather" && outerBlocks(buffer(inst.inputs[0]), dim) > 1)
    return buffer(inst.outputs[0]).bytes();
  if (inst.kernel == "reduce_scatter" && outerBlocks(buffer(inst.outputs[0]), dim) > 1)
    return elements(buffer(inst.inputs[0])) * sizeof(float);
  return 0;
}

} // namespace

MemoryUse memoryOf(const lowering::ExecProgram &program) {
  MemoryUse m;
  for (const lowering::ExecBuffer &b : program.buffers)
    switch (b.kind) {
    case BufferKind::Parameter: m.parameters += b.bytes(); break;
    case BufferKind::OptimizerState: m.optimizerState += b.bytes(); break;
    case BufferKind::Input: m.inputs += b.bytes(); break;
    default: break; // arena and aliases: inside the arena
    }
  m.arena = program.arenaBytes;
  uint64_t staging = 0;
  for (const lowering::ExecInstruction &inst : program.instructions) {
    staging = std::max(staging, stagingOf(program, inst));
    // adamw(param, grad, exp_avg, exp_avg_sq, ...): its gradient, an arena buffer.
    if (inst.kernel == "adamw" && inst.inputs.size() > 1) {
      const lowering::ExecBuffer &g = program.buffers[size_t(inst.inputs[1])];
      if (g.kind == BufferKind::Arena || g.kind == BufferKind::Alias)
        m.gradientsInArena += g.bytes();
    }
  }
  m.staging = (staging + 7) / 8 * 8; // the executor keeps it in 8-byte words
  return m;
}

std::vector<std::pair<std::string, uint64_t>> memoryTerms(const MemoryUse &m) {
  return {{"parameters", m.parameters},
          {"optimizer_state", m.optimizerState},
          {"inputs", m.inputs},
          {"arena", m.arena},
          {"staging", m.staging}};
}

} // namespace apc::cost
