// The per-device program as the compiler builds it before writing plan.fb: buffers,
// kernel calls by name, and the arena layout. Plain structs, no MLIR, so the planner
// and the emitter are easy to test on their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace apc::lowering {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, I64 = 4 };
enum class BufferKind : uint8_t { Parameter = 0, OptimizerState = 1, Input = 2, Arena = 3, Alias = 4 };
enum class Binding : uint8_t { None = 0, InputIds, Labels, Step, LearningRate, Loss, GradNorm };

size_t dtypeSize(DType dtype);

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
  uint64_t bytes() const;
};

struct ExecAttribute {
  enum class Kind : uint8_t { Int, Float, Bool, String, Ints };
  std::string name;
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  std::vector<int64_t> ints;
};

// Which part of the step an instruction belongs to (plan.fbs Pass).
enum class Pass : uint8_t { Other = 0, Forward = 1, Backward = 2, Step = 3 };

struct ExecInstruction {
  std::string kernel;
  std::vector<int> inputs, outputs;
  std::vector<ExecAttribute> attributes;
  double flops = 0.0;
  // Where it sits in the step (plan.fbs Instruction): the micro-batch (-1: none), the
  // pass, and the layer (decoder layers by index, -2 the embedding, num_hidden_layers
  // the head, -1 none).
  int microBatch = -1;
  Pass pass = Pass::Other;
  int layer = -1;
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
  uint64_t arenaBytes = 0;
  int loss = -1, gradNorm = -1;
};

// Assigns arena offsets by liveness (greedy by size, 64-byte aligned) and sets
// `arenaBytes`. A buffer lives from the instruction that writes it to its last reader
// (through aliases); loss and grad norm live to the end of the step.
void planMemory(ExecProgram &program);

} // namespace apc::lowering
