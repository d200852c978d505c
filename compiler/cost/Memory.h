// Memory per device of one stage's program, by kind, exactly as aprun allocates it
// (runtime/exec/Executor.cpp): one allocation per persistent buffer (parameters,
// optimizer state, inputs), the arena the compiler's planner laid out (activations,
// gradients and temporaries; the planner is the truth), and the executor's staging
// buffer for bucketed all-reduces and gathers along a dim other than the first.
#pragma once

#include "compiler/lowering/ExecProgram.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace apc::cost {

struct MemoryUse {
  uint64_t parameters = 0;
  uint64_t optimizerState = 0;
  uint64_t inputs = 0;
  uint64_t arena = 0;
  uint64_t staging = 0;
  // Of the arena: the gradients the update reads (they are all live when it runs).
  uint64_t gradientsInArena = 0;
  uint64_t total() const { return parameters + optimizerState + inputs + arena + staging; }
};

MemoryUse memoryOf(const lowering::ExecProgram &program);

// The kinds that add up to total(), by their report names: "parameters",
// "optimizer_state", "inputs", "arena", "staging".
std::vector<std::pair<std::string, uint64_t>> memoryTerms(const MemoryUse &m);

} // namespace apc::cost
