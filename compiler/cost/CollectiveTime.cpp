#include "compiler/cost/CollectiveTime.h"

#include "runtime/support/MeshCoordinates.h"

#include <algorithm>
#include <cmath>

namespace apc::cost {

bool collectiveOf(const std::string &kernel, Collective &out) {
  if (kernel == "all_reduce")
    out = Collective::AllReduce;
  else if (kernel == "all_gather")
    out = Collective::AllGather;
  else if (kernel == "reduce_scatter")
    out = Collective::ReduceScatter;
  else if (kernel == "send" || kernel == "recv")
    out = Collective::SendRecv;
  else
    return false;
  return true;
}

const char *collectiveName(Collective c) {
  switch (c) {
  case Collective::AllReduce: return "all_reduce";
  case Collective::AllGather: return "all_gather";
  case Collective::ReduceScatter: return "reduce_scatter";
  case Collective::SendRecv: return "send_recv";
  }
  return "?";
}

namespace {
double transfer(double bytes, const Link &link) {
  return link.bytesPerSecond > 0 ? bytes / link.bytesPerSecond : 0;
}
} // namespace

double ringSeconds(Collective c, int64_t ranks, double bytes, const Link &link) {
  if (c == Collective::SendRecv)
    return transfer(bytes, link) + link.latencySeconds;
  if (ranks <= 1)
    return 0;
  double n = double(ranks), share = (n - 1) / n;
  if (c == Collective::AllReduce)
    return 2 * share * transfer(bytes, link) + 2 * (n - 1) * link.latencySeconds;
  return share * transfer(bytes, link) + (n - 1) * link.latencySeconds;
}

double treeSeconds(Collective c, int64_t ranks, double bytes, const Link &link) {
  if (c != Collective::AllReduce)
    return ringSeconds(c, ranks, bytes, link);
  if (ranks <= 1)
    return 0;
  double depth = std::ceil(std::log2(double(ranks)));
  return 2 * transfer(bytes, link) + 2 * depth * link.latencySeconds;
}

bool groupSpansNodes(const std::vector<int64_t> &shape, const std::vector<int64_t> &axes,
                     int64_t devicesPerNode) {
  if (devicesPerNode <= 0 || meshSize(shape) <= devicesPerNode)
    return false;
  // Every group is a translate of rank 0's, but a node boundary may cut some and not
  // others (sizes that do not divide the node): check each group's first rank's.
  int64_t devices = meshSize(shape);
  std::vector<bool> seen(size_t(devices), false);
  for (int64_t r = 0; r < devices; ++r) {
    if (seen[size_t(r)])
      continue;
    std::vector<int> group = groupRanks(r, shape, axes);
    for (int g : group)
      seen[size_t(g)] = true;
    for (int g : group)
      if (g / devicesPerNode != group.front() / devicesPerNode)
        return true;
  }
  return false;
}

int64_t groupRanksPerNode(const std::vector<int64_t> &shape, const std::vector<int64_t> &axes,
                          int64_t devicesPerNode) {
  int64_t devices = meshSize(shape);
  if (devicesPerNode <= 0 || devices <= 0)
    return 1;
  int64_t fewest = devices;
  std::vector<bool> seen(size_t(devices), false);
  std::vector<int64_t> onNode;
  for (int64_t r = 0; r < devices; ++r) {
    if (seen[size_t(r)])
      continue;
    std::vector<int> group = groupRanks(r, shape, axes);
    onNode.assign(size_t((devices + devicesPerNode - 1) / devicesPerNode), 0);
    for (int g : group) {
      seen[size_t(g)] = true;
      ++onNode[size_t(g / devicesPerNode)];
    }
    for (int64_t n : onNode)
      if (n > 0)
        fewest = std::min(fewest, n);
  }
  return std::max<int64_t>(fewest, 1);
}

double collectiveSeconds(const Cluster &cluster, Collective c, int64_t ranks, double bytes,
                         bool spansNodes, int64_t ranksPerNode) {
  if (c != Collective::SendRecv && ranks <= 1)
    return 0;
  // Measured samples of this kind and group size, sorted by bytes.
  std::vector<const CollectiveSample *> samples;
  for (const CollectiveSample &s : cluster.collectives)
    if (s.kind == collectiveName(c) && (c == Collective::SendRecv || s.ranks == ranks) &&
        s.bytes > 0 && s.seconds > 0)
      samples.push_back(&s);
  if (!spansNodes && !samples.empty()) {
    std::sort(samples.begin(), samples.end(),
              [](auto *a, auto *b) { return a->bytes < b->bytes; });
    // Below the smallest sample: its time (latency bound); one sample: its bandwidth.
    if (bytes <= double(samples.front()->bytes))
      return samples.front()->seconds;
    if (samples.size() == 1)
      return samples.front()->seconds * bytes / double(samples.front()->bytes);
    size_t hi = 1;
    while (hi + 1 < samples.size() && double(samples[hi]->bytes) < bytes)
      ++hi;
    const CollectiveSample &a = *samples[hi - 1], &b = *samples[hi];
    double slope = (b.seconds - a.seconds) / double(b.bytes - a.bytes);
    return std::max(0.0, a.seconds + slope * (bytes - double(a.bytes)));
  }
  Link link = spansNodes ? cluster.interNode : cluster.intraNode;
  if (spansNodes && c != Collective::SendRecv && ranksPerNode > 1)
    link.bytesPerSecond = std::min(cluster.intraNode.bytesPerSecond,
                                   double(ranksPerNode) * cluster.interNode.bytesPerSecond);
  double ring = ringSeconds(c, ranks, bytes, link), tree = treeSeconds(c, ranks, bytes, link);
  if (cluster.collectiveAlgorithm == "tree")
    return tree;
  if (cluster.collectiveAlgorithm == "auto")
    return std::min(ring, tree);
  return ring;
}

} // namespace apc::cost
