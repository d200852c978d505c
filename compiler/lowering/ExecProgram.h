// The per-stage program as the compiler builds it before writing plan.fb: buffers,
// kernel calls by name, and the arena layout. Plain structs, no MLIR, so the planner
// and the emitter are easy to test on their own.
//
// The types are plan.fbs's own: the enums are the generated ones (plan_generated.h:
// BufferKind, Binding, AttributeKind, Pass), so a new value is declared in the schema
// alone, and the element type is the one DType (runtime/support/DType.h, which the
// build compares with the schema's in runtime/plan/PlanTypes.h). The tables are not
// flatc's object API (`--gen-object-api`: BufferT, InstructionT): its Pack() writes
// every string and vector anew, where EmitPlan stores names, shapes and attribute lists
// once (the plan would grow and change bytes), and it puts every attribute and
// instruction behind its own heap allocation (unique_ptr), for the 400,000 instructions
// and 530,000 buffers of the Llama 3.1 405B plan. So lowering, the arena planner and
// EmitPlan share these plain structs, and EmitPlan writes them field by field.
#pragma once

#include "runtime/plan/PlanTypes.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::lowering {

using BufferKind = plan::BufferKind;
using Binding = plan::Binding;

struct ExecBuffer {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  BufferKind kind = BufferKind::Arena;
  uint64_t offset = 0; // Arena: byte offset, set by planMemory
  int aliasOf = -1;    // Alias: the buffer whose bytes it shares (never itself an alias)
  int parameter = -1;  // Parameter/OptimizerState: index into the parameter list
  std::string optimizerSlot; // OptimizerState: "exp_avg" | "exp_avg_sq"
  Binding binding = Binding::None;
  // Parameter/OptimizerState: per dim, the mesh axis it is split over (-1: whole);
  // empty when the buffer holds the whole tensor (plan.fbs Buffer.dim_axes).
  std::vector<int32_t> dimAxes;
  uint64_t bytes() const {
    uint64_t n = dtypeSize(dtype);
    for (int64_t d : shape)
      n *= uint64_t(d);
    return n;
  }
};

struct ExecAttribute {
  using Kind = plan::AttributeKind;
  std::string name;
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  std::vector<int64_t> ints;
};

// Which part of the step an instruction belongs to.
using Pass = plan::Pass;

struct ExecInstruction {
  std::string kernel;
  std::vector<int> inputs, outputs;
  std::vector<ExecAttribute> attributes;
  // From the op's cost rule (CostOpInterface), per device: what the cost model reads.
  double flops = 0.0;
  double bytesRead = 0.0, bytesWritten = 0.0;
  // A forward op ap-recompute cloned into the backward (marked ap.recomputed).
  bool recomputed = false;
  // Where it sits in the step (plan.fbs Instruction): the micro-batch (-1: none), the
  // pass, and the layer (decoder layers by index, -2 the embedding, num_hidden_layers
  // the head, -1 none).
  int microBatch = -1;
  Pass pass = Pass::Other;
  int layer = -1;
  // Its stream (Streams.h: 0 compute, 1 communication), the events it waits for before
  // it starts, and the event recorded when it completes (-1: none).
  int stream = 0;
  std::vector<int> waits;
  int records = -1;
};

struct ExecParameter {
  std::string name;
  std::vector<int64_t> shape;
  std::string init; // "normal" | "ones"
};

struct ExecProgram {
  std::vector<int64_t> meshShape;     // devices per mesh axis
  std::vector<std::string> meshAxes;  // their names
  std::string parallelPlan;
  std::vector<ExecBuffer> buffers;
  std::vector<ExecInstruction> instructions;
  std::vector<ExecParameter> parameters;
  uint64_t arenaBytes = 0; // UINT64_MAX: the buffers total too much to be placed
  int loss = -1, gradNorm = -1;
  int numEvents = 0; // events 0 .. numEvents-1 (assignStreams)
  int chunks = 1;    // model chunks per pipeline stage (the plan's vp: interleaved 1F1B)
  // With chunks > 1, this stage's chunks' decoder layers (first, count), chunk by chunk.
  std::vector<std::pair<int64_t, int64_t>> chunkLayers;
};

// Assigns arena offsets by liveness (greedy by size, 64-byte aligned) and sets
// `arenaBytes`. A buffer lives from the instruction that writes it to its last reader
// (through aliases); loss and grad norm live to the end of the step.
void planMemory(ExecProgram &program);

} // namespace apc::lowering
