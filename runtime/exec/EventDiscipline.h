// The check of a program's streams and events (plan.fbs: Instruction.stream,
// wait_events, record_event), run by the executor at load. The CPU executor runs every
// instruction in program order, which is always safe; a GPU runs each stream in order and
// the streams concurrently, ordered only by the events. This check finds, before any GPU
// runs, every pair of instructions on different streams that touch the same bytes (one
// of them writing) with no chain of events between them, and every wait for an event no
// earlier instruction records. MLIR-free.
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/support/Status.h"

#include <string>
#include <vector>

namespace apc::exec {

// One instruction as the check sees it: its stream and events, and the byte ranges it
// reads and writes (views of its operands).
struct StreamedInstruction {
  std::string kernel;
  int stream = 0;
  std::vector<int> waits;
  int records = -1;
  std::vector<kernels::TensorView> reads, writes;
  std::vector<std::string> readNames, writeNames; // for messages: the buffers' names
};

// ok, or the first violation: "instruction 12 ('gemm', stream 0) reads 'x' while
// instruction 9 ('all_reduce', stream 1) writes it, with no event between them".
Status checkEventDiscipline(const std::vector<StreamedInstruction> &program, int numEvents,
                            int numStreams = 2);

} // namespace apc::exec
