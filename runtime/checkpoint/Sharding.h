// Blocks of tensors split over a device mesh (plan.fbs Buffer.dim_axes).
//
// A mesh of shape [n0, n1, ...] numbers its devices row-major: rank = ((c0 * n1) + c1) *
// n2 + ... for coordinates (c0, c1, ...) (runtime/support/MeshCoordinates.h). A tensor
// of global shape S split with dim_axes A holds on the device at coordinates c, for each
// dim d with A[d] >= 0, block c[A[d]] of S[d] / n[A[d]] elements (a contiguous range),
// and all of every other dim.
#pragma once

#include "runtime/support/MeshCoordinates.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace apc::checkpoint {

// The part of a tensor one device holds. Empty vectors: the whole tensor.
struct Block {
  std::vector<int> dimAxes;     // per dim, the mesh axis it is split over (-1: whole)
  std::vector<int64_t> start;   // per dim, the first index held
  std::vector<int64_t> count;   // per dim, how many (the local shape)
  bool whole() const { return start.empty(); }
};

// The block of a tensor of global `shape` split by `dimAxes` (empty or all -1: the whole
// tensor, an empty Block) on the device at `coords`. The caller has checked the split
// (PlanLoader): dims divide, axes in range.
Block blockOf(const std::vector<int64_t> &shape, const std::vector<int> &dimAxes,
              const std::vector<int64_t> &mesh, const std::vector<int64_t> &coords);

// The block's shape (the global shape for a whole tensor) and its element count.
std::vector<int64_t> localShape(const std::vector<int64_t> &shape, const Block &block);
int64_t numElements(const std::vector<int64_t> &shape);

// Calls fn(globalOffset, localOffset, n) for every contiguous run of the block: elements
// [globalOffset, +n) of the row-major global tensor are [localOffset, +n) of the
// row-major block. Runs are as long as the split allows (trailing whole dims merge).
void forEachRun(const std::vector<int64_t> &shape, const std::vector<int64_t> &start,
                const std::vector<int64_t> &count,
                const std::function<void(int64_t global, int64_t local, int64_t n)> &fn);

} // namespace apc::checkpoint
