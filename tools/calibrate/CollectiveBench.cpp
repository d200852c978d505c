// The communication half of apc calibrate: the runtime's communicator, timed between the
// job's processes, with the byte counts the cost model uses (CollectiveTime.h).
#include "tools/calibrate/Measure.h"

#include "runtime/comm/Communicator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace apc::calibrate {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `once` (a collective every rank calls) as often as the slowest rank needs to fill
// `minSeconds`, the count agreed by all so that no rank waits for a call that never
// comes; returns the slowest rank's mean seconds per call (with `ranksMean`, the mean
// over the ranks instead).
Result<double> timeCollective(comm::Communicator &world, double minSeconds,
                              const std::function<Status()> &once, bool ranksMean = false) {
  APC_RETURN_IF_ERROR(world.barrier());
  Clock::time_point start = Clock::now();
  APC_RETURN_IF_ERROR(once()); // warm-up, and the first estimate
  float estimate = float(since(start));
  APC_RETURN_IF_ERROR(world.allReduceMax(&estimate, 1));
  int runs = int(std::clamp(double(minSeconds) / std::max(double(estimate), 1e-7), 3.0, 2000.0));
  APC_RETURN_IF_ERROR(world.barrier());
  start = Clock::now();
  for (int i = 0; i < runs; ++i)
    APC_RETURN_IF_ERROR(once());
  float seconds = float(since(start) / runs);
  if (ranksMean) {
    APC_RETURN_IF_ERROR(world.allReduceSum(&seconds, 1));
    return double(seconds) / world.size();
  }
  APC_RETURN_IF_ERROR(world.allReduceMax(&seconds, 1));
  return double(seconds);
}

std::string sizeText(int64_t bytes) {
  char text[32];
  if (bytes >= (1 << 20))
    std::snprintf(text, sizeof text, "%lld MiB", (long long)(bytes >> 20));
  else
    std::snprintf(text, sizeof text, "%lld KiB", (long long)(bytes >> 10));
  return text;
}

// What a rank does between two collectives of a step: streams over a private buffer
// larger than the caches (as a step's kernels do between tensor-parallel reductions).
class BetweenWork {
public:
  explicit BetweenWork(int passes) : passes_(passes) {}
  void run() {
    for (int p = 0; p < passes_; ++p)
      for (size_t i = 0; i < buffer_.size(); i += 16)
        buffer_[i] = buffer_[i] * 0.5f + 1.0f;
  }

private:
  int passes_;
  std::vector<float> buffer_ = std::vector<float>(size_t(4) << 20, 1.0f); // 16 MiB
};

} // namespace

Result<double> measureCollectiveSync(comm::Communicator &world, const MeasureOptions &options,
                                     const Progress &progress) {
  const int n = world.size();
  if (n < 2)
    return 0.0;
  // A small all-reduce, so that its transfer is a small part of what is timed: back to
  // back (the ranks leave one call together and enter the next together), then after a
  // few milliseconds of work on every rank (as in a step). Each rank times its own calls;
  // the ranks' mean is what a step's critical path pays per collective on average.
  std::vector<float> data(1024, 1.0f);
  auto once = [&] { return world.allReduceSum(data.data(), data.size()); };
  // The ranks' mean on both sides, so that the difference is the synchronization alone.
  auto backToBack = timeCollective(world, options.minSeconds, once, /*ranksMean=*/true);
  if (!backToBack)
    return backToBack;
  BetweenWork work(options.quick ? 2 : 24);
  const int calls = options.quick ? 8 : 40;
  APC_RETURN_IF_ERROR(world.barrier());
  double inCalls = 0;
  for (int i = 0; i < calls; ++i) {
    work.run();
    Clock::time_point start = Clock::now();
    APC_RETURN_IF_ERROR(once());
    inCalls += since(start);
  }
  float mean = float(inCalls / calls);
  APC_RETURN_IF_ERROR(world.allReduceSum(&mean, 1));
  mean /= float(n);
  double sync = std::max(0.0, double(mean) - *backToBack);
  char line[160];
  std::snprintf(line, sizeof line,
                "all_reduce %d ranks, 4 KiB after compute: %.3f ms (back to back %.3f ms): "
                "%.3f ms to synchronize",
                n, double(mean) * 1e3, *backToBack * 1e3, sync * 1e3);
  progress(line);
  return sync;
}

Result<std::vector<cost::CollectiveSample>> measureCollectives(comm::Communicator &world,
                                                               const MeasureOptions &options,
                                                               const Progress &progress) {
  using R = Result<std::vector<cost::CollectiveSample>>;
  std::vector<cost::CollectiveSample> samples;
  const int n = world.size(), me = world.rank();
  if (n < 2)
    return samples;
  std::vector<int64_t> sizes = options.quick
                                   ? std::vector<int64_t>{4 << 10, 256 << 10, 4 << 20}
                                   : std::vector<int64_t>{4 << 10, 64 << 10, 1 << 20, 16 << 20,
                                                          64 << 20};
  for (int64_t bytes : sizes) {
    // Every kind moves `bytes` as the model counts them; a multiple of n floats so that
    // the gathered and scattered blocks are whole.
    const int64_t floats = std::max<int64_t>(n, bytes / 4 / n * n);
    const int64_t total = floats * 4;
    std::vector<float> in(size_t(floats), 1.0f), out(size_t(floats), 0.0f);
    struct Kind {
      const char *name;
      std::function<Status()> once;
    };
    uint32_t tag = 0;
    std::vector<Kind> kinds = {
        {"all_reduce", [&] { return world.allReduceSum(in.data(), size_t(floats)); }},
        {"all_gather", // B: the gathered result
         [&] { return world.allGather(in.data(), out.data(), size_t(total / n)); }},
        {"reduce_scatter", // B: the whole input
         [&] { return world.reduceScatterSum(in.data(), out.data(), size_t(floats / n)); }},
        {"send_recv", // ranks 0 and 1, there and back: half a round trip per transfer
         [&]() -> Status {
           ++tag;
           if (me == 0) {
             APC_RETURN_IF_ERROR(world.send(in.data(), size_t(total), 1, tag));
             return world.recv(out.data(), size_t(total), 1, tag);
           }
           if (me == 1) {
             APC_RETURN_IF_ERROR(world.recv(out.data(), size_t(total), 0, tag));
             return world.send(in.data(), size_t(total), 0, tag);
           }
           return Status::ok();
         }},
    };
    for (const Kind &kind : kinds) {
      auto seconds = timeCollective(world, options.minSeconds, kind.once);
      if (!seconds)
        return R::error(std::string(kind.name) + " of " + sizeText(total) + ": " +
                        seconds.message());
      double perCall = std::string(kind.name) == "send_recv" ? *seconds / 2 : *seconds;
      samples.push_back({kind.name, n, total, perCall});
      char line[128];
      std::snprintf(line, sizeof line, "%s %d ranks, %s: %.3f ms (%.2f GB/s)", kind.name, n,
                    sizeText(total).c_str(), perCall * 1e3, double(total) / perCall / 1e9);
      progress(line);
    }
  }
  return samples;
}

cost::Link fitLink(const std::vector<cost::CollectiveSample> &samples) {
  std::vector<const cost::CollectiveSample *> ring;
  for (const cost::CollectiveSample &s : samples)
    if (s.kind == "all_reduce" && s.ranks >= 2 && s.bytes > 0 && s.seconds > 0)
      ring.push_back(&s);
  cost::Link link;
  if (ring.size() < 2)
    return link;
  std::sort(ring.begin(), ring.end(), [](auto *a, auto *b) { return a->bytes < b->bytes; });
  // The ring all-reduce: t = 2 (n-1)/n B / bw + 2 (n-1) alpha. The two largest sizes give
  // the bandwidth (their slope), the smallest the latency (what is left of its time).
  const cost::CollectiveSample &small = *ring.front(), &a = *ring[ring.size() - 2],
                               &b = *ring.back();
  double n = double(b.ranks);
  double slope = (b.seconds - a.seconds) / double(b.bytes - a.bytes);
  if (!(slope > 0))
    slope = b.seconds / double(b.bytes);
  link.bytesPerSecond = 2 * (n - 1) / n / slope;
  double latency = small.seconds - slope * double(small.bytes);
  link.latencySeconds = std::max(0.0, latency) / (2 * (n - 1));
  return link;
}

} // namespace apc::calibrate
