// Vector clocks over the streams: after its waits, an instruction knows how far into
// every other stream it is ordered; an access of another stream beyond that point which
// overlaps one of its own, either writing, is a race. Each stream keeps the accesses the
// other stream has not yet ordered itself after (pruned as clocks advance), so a plan
// whose collectives wait regularly is checked in about linear time.
#include "runtime/exec/EventDiscipline.h"

#include <algorithm>
#include <climits>
#include <cstdint>

namespace apc::exec {
namespace {

struct Range {
  uintptr_t begin = 0, end = 0;
  bool write = false;
  int position = 0;    // on its stream, 1-based
  int instruction = 0; // program index
  const std::string *name = nullptr;
};

Range rangeOf(const kernels::TensorView &v) {
  uintptr_t begin = reinterpret_cast<uintptr_t>(v.data);
  uint64_t bytes = uint64_t(std::max<int64_t>(0, v.numElements())) * kernels::dtypeSize(v.dtype);
  return {begin, begin + uintptr_t(bytes)};
}

} // namespace

Status checkEventDiscipline(const std::vector<StreamedInstruction> &program, int numEvents,
                            int numStreams) {
  using Clock = std::vector<int>;
  std::vector<Clock> clock(size_t(numStreams), Clock(size_t(numStreams), 0));
  std::vector<int> length(static_cast<size_t>(numStreams), 0);
  std::vector<bool> recorded(size_t(std::max(0, numEvents)), false);
  std::vector<Clock> eventClock(size_t(std::max(0, numEvents)));
  std::vector<std::vector<Range>> pending(static_cast<size_t>(numStreams));
  auto where = [&](int k) {
    return "instruction " + std::to_string(k) + " ('" + program[size_t(k)].kernel + "', stream " +
           std::to_string(program[size_t(k)].stream) + ")";
  };
  for (int k = 0; k < int(program.size()); ++k) {
    const StreamedInstruction &inst = program[size_t(k)];
    const int s = inst.stream;
    if (s < 0 || s >= numStreams)
      return Status::error(where(k) + ": no such stream (the plan has " +
                           std::to_string(numStreams) + ")");
    Clock &mine = clock[size_t(s)];
    for (int e : inst.waits) {
      if (e < 0 || e >= numEvents || !recorded[size_t(e)])
        return Status::error(where(k) + " waits for event " + std::to_string(e) +
                             ", which no earlier instruction records");
      for (int t = 0; t < numStreams; ++t)
        mine[size_t(t)] = std::max(mine[size_t(t)], eventClock[size_t(e)][size_t(t)]);
    }
    mine[size_t(s)] = ++length[size_t(s)];
    // What every other stream is now ordered after needs no more checking.
    for (int t = 0; t < numStreams; ++t) {
      if (t == s)
        continue;
      int covered = INT32_MAX;
      for (int u = 0; u < numStreams; ++u)
        if (u != t)
          covered = std::min(covered, clock[size_t(u)][size_t(t)]);
      std::vector<Range> &list = pending[size_t(t)];
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const Range &r) { return r.position <= covered; }),
                 list.end());
    }
    auto check = [&](const kernels::TensorView &view, const std::string &name,
                     bool write) -> Status {
      Range r = rangeOf(view);
      if (r.begin == r.end)
        return Status::ok();
      for (int t = 0; t < numStreams; ++t) {
        if (t == s)
          continue;
        for (const Range &other : pending[size_t(t)])
          if (other.position > mine[size_t(t)] && other.begin < r.end && r.begin < other.end &&
              (write || other.write))
            return Status::error(where(k) + (write ? " writes '" : " reads '") + name +
                                 "' while " + where(other.instruction) +
                                 (other.write ? " writes '" : " reads '") + *other.name +
                                 "' (the same bytes) with no event between them");
      }
      return Status::ok();
    };
    for (size_t i = 0; i < inst.reads.size(); ++i)
      APC_RETURN_IF_ERROR(check(inst.reads[i], inst.readNames[i], false));
    for (size_t i = 0; i < inst.writes.size(); ++i)
      APC_RETURN_IF_ERROR(check(inst.writes[i], inst.writeNames[i], true));
    for (int pass = 0; pass < 2; ++pass) {
      const auto &views = pass == 0 ? inst.reads : inst.writes;
      const auto &names = pass == 0 ? inst.readNames : inst.writeNames;
      for (size_t i = 0; i < views.size(); ++i) {
        Range r = rangeOf(views[i]);
        r.write = pass == 1;
        r.position = mine[size_t(s)];
        r.instruction = k;
        r.name = &names[i];
        if (r.begin != r.end)
          pending[size_t(s)].push_back(r);
      }
    }
    if (inst.records >= 0) {
      if (inst.records >= numEvents || recorded[size_t(inst.records)])
        return Status::error(where(k) + " records event " + std::to_string(inst.records) +
                             (inst.records >= numEvents ? ", beyond the plan's " +
                                                              std::to_string(numEvents) + " events"
                                                        : ", which an earlier instruction records"));
      recorded[size_t(inst.records)] = true;
      eventClock[size_t(inst.records)] = mine;
    }
  }
  return Status::ok();
}

} // namespace apc::exec
