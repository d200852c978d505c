// Stream assignment and event placement (Streams.h) with vector clocks: for each stream,
// how far into every other stream it is known to have waited. An access that conflicts
// with one the clock does not cover gets a wait for an event recorded right after that
// access's instruction; waiting for it also brings in everything that instruction had
// waited for, so no wait is placed twice.
#include "compiler/lowering/Streams.h"

#include <algorithm>
#include <array>
#include <set>
#include <string>

namespace apc::lowering {
namespace {

using Clock = std::array<int, kNumStreams>; // per stream: instructions waited for (count)

bool isCollective(const std::string &kernel) {
  return kernel == "all_reduce" || kernel == "all_gather" || kernel == "reduce_scatter";
}

// Whether `inst` may run behind compute: a collective over the mesh axis named "dp"
// alone, or an all-reduce over dp and cp together (the gradients' reduction under context
// parallelism). Each group is used from one stream only (a GPU's collectives on one
// communicator must be issued in one order): cp's own group, whose gathers and
// reduce-scatters the next kernel needs, stays on the compute stream, and so do
// reductions over cp alone (cp without dp).
bool overDataParallelAxisOnly(const ExecProgram &program, const ExecInstruction &inst) {
  for (const ExecAttribute &a : inst.attributes)
    if (a.name == "axes") {
      std::set<std::string> names;
      for (int64_t axis : a.ints)
        names.insert(axis >= 0 && size_t(axis) < program.meshAxes.size()
                         ? program.meshAxes[size_t(axis)]
                         : "");
      return names == std::set<std::string>{"dp"} ||
             (names == std::set<std::string>{"dp", "cp"} && inst.kernel == "all_reduce");
    }
  return false;
}

struct Access {
  int instruction = -1; // the last writer (-1: none)
  std::vector<int> readers; // since that write
};

} // namespace

void assignStreams(ExecProgram &program) {
  std::vector<ExecInstruction> &insts = program.instructions;
  bool updating = false; // past the step's first compute kernel
  for (ExecInstruction &inst : insts) {
    bool collective = isCollective(inst.kernel);
    inst.stream = collective && !updating && overDataParallelAxisOnly(program, inst)
                      ? kCommunicationStream
                      : kComputeStream;
    inst.waits.clear();
    inst.records = -1;
    if (!collective && inst.pass == Pass::Step)
      updating = true;
  }

  auto root = [&](int b) {
    return program.buffers[size_t(b)].kind == BufferKind::Alias ? program.buffers[size_t(b)].aliasOf
                                                                  : b;
  };
  std::vector<Access> access(program.buffers.size());
  std::vector<int> position(insts.size(), 0);   // 1-based position on its stream
  std::vector<Clock> clockAt(insts.size());     // the clock of its stream when it ran
  std::array<std::vector<int>, kNumStreams> onStream; // instructions per stream, in order
  std::array<Clock, kNumStreams> clock{};
  int events = 0;
  int lastCompute = -1; // the compute instruction most recently placed
  std::vector<int> issued; // the communication stream's instructions so far

  for (int k = 0; k < int(insts.size()); ++k) {
    ExecInstruction &inst = insts[size_t(k)];
    const int s = inst.stream;
    // The latest conflicting instruction on each other stream.
    std::array<int, kNumStreams> latest;
    latest.fill(-1);
    auto conflict = [&](int other) {
      if (other >= 0 && insts[size_t(other)].stream != s)
        latest[size_t(insts[size_t(other)].stream)] =
            std::max(latest[size_t(insts[size_t(other)].stream)], other);
    };
    for (int b : inst.inputs)
      conflict(access[size_t(root(b))].instruction);
    // A collective on the communication stream starts once compute has reached it in
    // program order (it overlaps what follows, not what precedes): otherwise it could run
    // from the start of the step, and its buffers would have to be kept from then on.
    if (s == kCommunicationStream)
      conflict(lastCompute);
    // At most two collectives in flight: compute past a collective's issue waits for the
    // one before it. Without a bound, the buffers of every collective (a gradient bucket
    // before its reduce-scatter) would live until the update.
    if (s == kComputeStream && issued.size() >= 2)
      conflict(issued[issued.size() - 2]);
    for (int b : inst.outputs) {
      const Access &a = access[size_t(root(b))];
      conflict(a.instruction);
      for (int r : a.readers)
        conflict(r);
    }
    for (int t = 0; t < kNumStreams; ++t) {
      int other = latest[size_t(t)];
      if (other < 0 || position[size_t(other)] <= clock[size_t(s)][size_t(t)])
        continue; // already ordered by an earlier wait
      ExecInstruction &producer = insts[size_t(other)];
      if (producer.records < 0)
        producer.records = events++;
      inst.waits.push_back(producer.records);
      for (int u = 0; u < kNumStreams; ++u)
        clock[size_t(s)][size_t(u)] =
            std::max(clock[size_t(s)][size_t(u)], clockAt[size_t(other)][size_t(u)]);
      clock[size_t(s)][size_t(t)] = std::max(clock[size_t(s)][size_t(t)], position[size_t(other)]);
    }
    if (s == kComputeStream)
      lastCompute = k;
    else
      issued.push_back(k);
    onStream[size_t(s)].push_back(k);
    position[size_t(k)] = int(onStream[size_t(s)].size());
    clock[size_t(s)][size_t(s)] = position[size_t(k)];
    clockAt[size_t(k)] = clock[size_t(s)];
    for (int b : inst.inputs)
      access[size_t(root(b))].readers.push_back(k);
    for (int b : inst.outputs) {
      Access &a = access[size_t(root(b))];
      a.instruction = k;
      a.readers.clear();
    }
  }
  program.numEvents = events;
}

std::vector<RunSpan> runSpans(const ExecProgram &program) {
  const std::vector<ExecInstruction> &insts = program.instructions;
  const int n = int(insts.size());
  std::vector<RunSpan> spans(static_cast<size_t>(n));
  // Where each event is recorded, and, walking in order, the compute stream's clock.
  std::vector<int> recordedBy(size_t(program.numEvents), -1);
  for (int k = 0; k < n; ++k)
    if (insts[size_t(k)].records >= 0)
      recordedBy[size_t(insts[size_t(k)].records)] = k;
  // Per instruction on the communication stream: the last compute instruction it (or an
  // earlier one of its stream) waited for.
  int lastComputeWaited = -1;
  // The compute stream's progress into the communication stream: the last communication
  // instruction it has waited for (as a program position), kept for every compute
  // instruction so that each communication instruction finds its first waiter.
  std::vector<int> communicationDone; // per compute instruction, in order
  std::vector<int> computeIndex;
  int computeWaitedUpTo = -1;
  for (int k = 0; k < n; ++k) {
    const ExecInstruction &inst = insts[size_t(k)];
    for (int e : inst.waits) {
      int by = e >= 0 && size_t(e) < recordedBy.size() ? recordedBy[size_t(e)] : -1;
      if (by < 0)
        continue;
      if (inst.stream == kCommunicationStream && insts[size_t(by)].stream == kComputeStream)
        lastComputeWaited = std::max(lastComputeWaited, by);
      if (inst.stream == kComputeStream && insts[size_t(by)].stream == kCommunicationStream)
        computeWaitedUpTo = std::max(computeWaitedUpTo, by);
    }
    if (inst.stream == kCommunicationStream) {
      spans[size_t(k)] = {std::max(0, lastComputeWaited), n - 1};
    } else {
      spans[size_t(k)] = {k, k};
      computeIndex.push_back(k);
      communicationDone.push_back(computeWaitedUpTo);
    }
  }
  // A communication instruction ends before the first compute instruction whose waits
  // reach it (events on one stream complete in order).
  for (int k = 0; k < n; ++k)
    if (insts[size_t(k)].stream == kCommunicationStream) {
      auto it = std::lower_bound(communicationDone.begin(), communicationDone.end(), k);
      if (it != communicationDone.end())
        spans[size_t(k)].to = computeIndex[size_t(it - communicationDone.begin())];
    }
  return spans;
}

} // namespace apc::lowering
