// Seconds of one collective or point-to-point transfer: the algorithm's alpha-beta cost
// on the link level its group spans, or the cluster's measured samples when it has them.
//
// Over a group of n ranks with B bytes per rank, link bandwidth bw and latency alpha:
//   ring  all_reduce      2 (n-1)/n B / bw + 2 (n-1) alpha
//         all_gather      (n-1)/n B / bw + (n-1) alpha   (B: the gathered result)
//         reduce_scatter  (n-1)/n B / bw + (n-1) alpha   (B: the whole input)
//   tree  all_reduce      2 B / bw + 2 ceil(log2 n) alpha (reduce then broadcast,
//                         pipelined); all_gather and reduce_scatter have no tree form
//                         (NCCL runs them as rings), so tree falls back to ring for them
//   send / recv           B / bw + alpha
// "auto" takes the cheaper of ring and tree. A group whose ranks sit on more than one node
// runs at the inter-node link (a ring is as fast as its slowest hop); else intra-node.
// Crossing nodes, a group with r ranks on each node uses r network links at once: NCCL
// runs one ring (channel) out of a node through each NIC its ranks own, each carrying 1/r
// of the data, so the group's bandwidth is min(intra-node, r x inter-node per device)
// (nccl-tests on nodes of 8 A100 with 4 HDR NICs reach a bus bandwidth of ~96 GB/s, the
// 4 NICs' 100, not one NIC's 25: NVIDIA/nccl-tests#119).
#pragma once

#include "compiler/cost/Cluster.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::cost {

enum class Collective { AllReduce, AllGather, ReduceScatter, SendRecv };

// The kernel name's collective ("all_reduce", ..., "send" and "recv" both SendRecv);
// false for other kernels.
bool collectiveOf(const std::string &kernel, Collective &out);
const char *collectiveName(Collective c); // the samples' spelling: "all_reduce", ...

double ringSeconds(Collective c, int64_t ranks, double bytes, const Link &link);
double treeSeconds(Collective c, int64_t ranks, double bytes, const Link &link);

// Whether the ranks of the group over `axes` (mesh axis indices) of the mesh `shape` sit
// on more than one node, ranks numbered row-major (runtime/support/MeshCoordinates.h)
// and filling nodes of `devicesPerNode` in order: the innermost axis stays in a node.
bool groupSpansNodes(const std::vector<int64_t> &shape, const std::vector<int64_t> &axes,
                     int64_t devicesPerNode);

// The fewest ranks any group over `axes` has on one node it touches: 1 when some group
// holds a single rank of a node (a group spread one rank per node), the group size when
// no group leaves its node.
int64_t groupRanksPerNode(const std::vector<int64_t> &shape, const std::vector<int64_t> &axes,
                          int64_t devicesPerNode);

// Seconds of collective `c` over `ranks` with `bytes` per rank on the cluster: measured
// samples of that kind and rank count (linear in bytes between them, the last segment's
// slope beyond), else the cluster's algorithm on the link. A group that spans nodes with
// `ranksPerNode` ranks on each crosses them on that many network links (above).
double collectiveSeconds(const Cluster &cluster, Collective c, int64_t ranks, double bytes,
                         bool spansNodes, int64_t ranksPerNode = 1);

} // namespace apc::cost
