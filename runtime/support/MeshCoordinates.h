// Ranks and coordinates on a device mesh: the one place that numbers devices.
//
// A mesh of shape [n0, n1, ..., nk] numbers its devices row-major, the last axis
// fastest: rank = ((c0 * n1 + c1) * n2 + c2) ... for coordinates (c0, c1, ...). On
// [dp, tp] = [2, 2], rank = dp * 2 + tp; on [dp, pp, tp], rank = (dp * pp + p) * tp + t.
// Plans (which stage a device runs, its vocabulary block), the executor's groups,
// checkpoints (who holds which block), the training loop, `aprun --dump` and
// `apc explain` all ask here. An empty shape is one device; a size below 1 (a damaged
// plan, before the loader refuses it) counts as 1, so nothing here divides by zero.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace apc {

// The number of devices: the product of the sizes (1 for []).
inline int64_t meshSize(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t size : shape)
    n *= std::max<int64_t>(1, size);
  return n;
}

// The coordinates of `rank`, one per axis ([] for an empty shape).
inline std::vector<int64_t> coordinatesOf(int64_t rank, const std::vector<int64_t> &shape) {
  std::vector<int64_t> c(shape.size());
  for (size_t a = shape.size(); a-- > 0;) {
    int64_t size = std::max<int64_t>(1, shape[a]);
    c[a] = rank % size;
    rank /= size;
  }
  return c;
}

// The rank at `coordinates` (as many as axes, each inside its axis).
inline int64_t rankOf(const std::vector<int64_t> &coordinates,
                      const std::vector<int64_t> &shape) {
  int64_t rank = 0;
  for (size_t a = 0; a < shape.size(); ++a)
    rank = rank * std::max<int64_t>(1, shape[a]) + coordinates[a];
  return rank;
}

// The group of `rank` over the mesh axes `axes`: the ranks that share its coordinate on
// every other axis, in increasing rank order, so that a device's position in its group
// over one axis is its coordinate on that axis. Axes outside the mesh are ignored;
// no axes: {rank}; every axis: the whole mesh.
inline std::vector<int> groupRanks(int64_t rank, const std::vector<int64_t> &shape,
                                   const std::vector<int64_t> &axes) {
  std::vector<int64_t> c = coordinatesOf(rank, shape);
  std::vector<bool> free(shape.size(), false);
  for (int64_t a : axes)
    if (a >= 0 && size_t(a) < shape.size())
      free[size_t(a)] = true;
  for (size_t a = 0; a < shape.size(); ++a)
    if (free[a])
      c[a] = 0;
  // Count through the free axes like an odometer, the last axis fastest: ranks increase.
  std::vector<int> group;
  for (;;) {
    group.push_back(int(rankOf(c, shape)));
    size_t a = shape.size();
    while (a-- > 0) {
      if (!free[a])
        continue;
      if (++c[a] < std::max<int64_t>(1, shape[a]))
        break;
      c[a] = 0;
    }
    if (a == size_t(-1))
      return group;
  }
}

} // namespace apc
