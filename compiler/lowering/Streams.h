// Streams and events: which instructions may run concurrently, decided by the compiler
// before memory planning (docs/plan-format.md, "Streams and events").
//
// Two streams: 0 runs compute (and every instruction not said otherwise), 1 runs the
// data-parallel collectives that may hide behind compute: those over the mesh axis "dp"
// alone, and the all-reduces over dp and cp together (context parallelism's gradient
// reductions; cp's own group stays on stream 0, so that no group is used from two
// streams), in the forward and backward passes and in the step before its first compute
// kernel (the cost model's rule: compiler/cost/CostModel.cpp, "What overlaps"). Each
// stream runs its instructions in program order; across streams, events order every pair
// of accesses to one buffer where either writes: an instruction waits for an event
// recorded when the other stream's conflicting instruction completed. A collective on
// the communication stream also waits for the compute instruction before it in program
// order, so it overlaps the compute after it, not before. A step ends when
// both streams are idle. Running every instruction in program order (the CPU executor)
// is one valid schedule of the result.
#pragma once

#include "compiler/lowering/ExecProgram.h"

#include <vector>

namespace apc::lowering {

constexpr int kComputeStream = 0;
constexpr int kCommunicationStream = 1;
constexpr int kNumStreams = 2;

// Sets `stream`, `waits` and `records` of every instruction and `numEvents`. Buffers
// are compared through their aliases' roots.
void assignStreams(ExecProgram &program);

// The span of program positions [from, to] within which instruction k may run, given
// the events: [k, k] on the compute stream; on the communication stream, from the last
// compute instruction it waited for (0 if none) to the first compute instruction that
// waits for it (the end of the step if none). planMemory keeps every buffer an
// instruction touches live through that span, so that concurrently running
// instructions never share arena bytes.
struct RunSpan {
  int from = 0, to = 0;
};
std::vector<RunSpan> runSpans(const ExecProgram &program);

} // namespace apc::lowering
