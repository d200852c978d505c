#include "runtime/checkpoint/Sharding.h"

namespace apc::checkpoint {

Block blockOf(const std::vector<int64_t> &shape, const std::vector<int> &dimAxes,
              const std::vector<int64_t> &mesh, const std::vector<int64_t> &coords) {
  Block block;
  bool split = false;
  for (int a : dimAxes)
    split = split || a >= 0;
  if (!split)
    return block;
  block.dimAxes = dimAxes;
  for (size_t d = 0; d < shape.size(); ++d) {
    int a = dimAxes[d];
    int64_t count = a >= 0 ? shape[d] / mesh[size_t(a)] : shape[d];
    block.start.push_back(a >= 0 ? coords[size_t(a)] * count : 0);
    block.count.push_back(count);
  }
  return block;
}

std::vector<int64_t> localShape(const std::vector<int64_t> &shape, const Block &block) {
  return block.whole() ? shape : block.count;
}

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

void forEachRun(const std::vector<int64_t> &shape, const std::vector<int64_t> &start,
                const std::vector<int64_t> &count,
                const std::function<void(int64_t, int64_t, int64_t)> &fn) {
  size_t rank = shape.size();
  if (rank == 0) {
    fn(0, 0, 1);
    return;
  }
  for (int64_t c : count)
    if (c == 0)
      return;
  std::vector<int64_t> stride(rank, 1), localStride(rank, 1);
  for (size_t d = rank - 1; d-- > 0;) {
    stride[d] = stride[d + 1] * shape[d + 1];
    localStride[d] = localStride[d + 1] * count[d + 1];
  }
  // The run covers dims k.. : dims after k are whole, so their strides agree.
  size_t k = rank - 1;
  while (k > 0 && start[k] == 0 && count[k] == shape[k])
    --k;
  int64_t run = count[k] * stride[k];
  std::vector<int64_t> index(k, 0); // over dims 0..k-1 of the block
  for (;;) {
    int64_t global = start[k] * stride[k], local = 0;
    for (size_t d = 0; d < k; ++d) {
      global += (start[d] + index[d]) * stride[d];
      local += index[d] * localStride[d];
    }
    fn(global, local, run);
    size_t d = k;
    while (d > 0 && ++index[d - 1] == count[d - 1])
      index[--d] = 0;
    if (d == 0)
      return;
  }
}

} // namespace apc::checkpoint
