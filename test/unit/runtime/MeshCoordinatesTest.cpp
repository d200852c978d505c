// Tests runtime/support/MeshCoordinates.h against ranks and groups written out by hand
// (the numbering docs/plan-format.md gives: row-major, the last axis fastest).
#include "runtime/support/MeshCoordinates.h"

#include <gtest/gtest.h>

namespace apc {
namespace {

using Ints = std::vector<int64_t>;

TEST(MeshCoordinates, RowMajorLastAxisFastest) {
  // [dp, tp] = [2, 2]: rank = dp * 2 + tp.
  EXPECT_EQ(coordinatesOf(0, {2, 2}), (Ints{0, 0}));
  EXPECT_EQ(coordinatesOf(1, {2, 2}), (Ints{0, 1}));
  EXPECT_EQ(coordinatesOf(2, {2, 2}), (Ints{1, 0}));
  EXPECT_EQ(coordinatesOf(3, {2, 2}), (Ints{1, 1}));
  // [dp, pp, tp] = [2, 3, 2]: rank = (dp * 3 + pp) * 2 + tp.
  EXPECT_EQ(coordinatesOf(5, {2, 3, 2}), (Ints{0, 2, 1}));
  EXPECT_EQ(coordinatesOf(6, {2, 3, 2}), (Ints{1, 0, 0}));
  EXPECT_EQ(coordinatesOf(11, {2, 3, 2}), (Ints{1, 2, 1}));
  EXPECT_EQ(rankOf({1, 2, 0}, {2, 3, 2}), (1 * 3 + 2) * 2 + 0);
  // Llama 3.1 405B's [dp, pp, tp] = [64, 16, 8].
  EXPECT_EQ(coordinatesOf(8191, {64, 16, 8}), (Ints{63, 15, 7}));
  EXPECT_EQ(rankOf({3, 5, 1}, {64, 16, 8}), (3 * 16 + 5) * 8 + 1);
}

TEST(MeshCoordinates, RankAndCoordinatesAreInverse) {
  for (const Ints &shape : {Ints{}, Ints{1}, Ints{4}, Ints{2, 3}, Ints{3, 1, 2}, Ints{2, 2, 2, 3}}) {
    EXPECT_EQ(meshSize(shape), shape.empty() ? 1 : [&] {
      int64_t n = 1;
      for (int64_t d : shape)
        n *= d;
      return n;
    }());
    for (int64_t r = 0; r < meshSize(shape); ++r) {
      Ints c = coordinatesOf(r, shape);
      ASSERT_EQ(c.size(), shape.size());
      for (size_t a = 0; a < c.size(); ++a)
        EXPECT_TRUE(c[a] >= 0 && c[a] < shape[a]);
      EXPECT_EQ(rankOf(c, shape), r);
    }
  }
}

TEST(MeshCoordinates, EmptyMeshIsOneDevice) {
  EXPECT_EQ(meshSize({}), 1);
  EXPECT_TRUE(coordinatesOf(0, {}).empty());
  EXPECT_EQ(rankOf({}, {}), 0);
  EXPECT_EQ(groupRanks(0, {}, {}), std::vector<int>{0});
  EXPECT_EQ(groupRanks(0, {}, {0}), std::vector<int>{0});
}

TEST(MeshCoordinates, SizesBelowOneCountAsOne) {
  EXPECT_EQ(meshSize({2, 0, 3}), 6);
  EXPECT_EQ(coordinatesOf(4, {2, 0, 3}), (Ints{1, 0, 1}));
  EXPECT_EQ(rankOf({1, 0, 1}, {2, 0, 3}), 4);
}

TEST(MeshCoordinates, GroupsOverAxes) {
  // [dp, tp] = [2, 2]: dp groups {0, 2}, {1, 3}; tp groups {0, 1}, {2, 3}.
  EXPECT_EQ(groupRanks(0, {2, 2}, {0}), (std::vector<int>{0, 2}));
  EXPECT_EQ(groupRanks(3, {2, 2}, {0}), (std::vector<int>{1, 3}));
  EXPECT_EQ(groupRanks(2, {2, 2}, {1}), (std::vector<int>{2, 3}));
  EXPECT_EQ(groupRanks(1, {2, 2}, {}), std::vector<int>{1});
  EXPECT_EQ(groupRanks(1, {2, 2}, {1, 0}), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(groupRanks(1, {2, 2}, {1, 1, 7, -1}), (std::vector<int>{0, 1}));
  // [dp, pp, tp] = [2, 3, 2]: rank 7 is (1, 0, 1).
  EXPECT_EQ(groupRanks(7, {2, 3, 2}, {1}), (std::vector<int>{7, 9, 11}));
  EXPECT_EQ(groupRanks(7, {2, 3, 2}, {0, 2}), (std::vector<int>{0, 1, 6, 7}));
}

// Against brute force: every rank that shares the coordinates off `axes`, in rank order;
// a device's position in a one-axis group is its coordinate on that axis.
TEST(MeshCoordinates, GroupsMatchBruteForce) {
  const Ints shape = {2, 3, 1, 4};
  for (int mask = 0; mask < 16; ++mask) {
    Ints axes;
    for (int64_t a = 0; a < 4; ++a)
      if (mask & (1 << a))
        axes.push_back(a);
    for (int64_t r = 0; r < meshSize(shape); ++r) {
      Ints c = coordinatesOf(r, shape);
      std::vector<int> want;
      for (int64_t q = 0; q < meshSize(shape); ++q) {
        Ints d = coordinatesOf(q, shape);
        bool same = true;
        for (int64_t a = 0; a < 4; ++a)
          same = same && ((mask & (1 << a)) || d[size_t(a)] == c[size_t(a)]);
        if (same)
          want.push_back(int(q));
      }
      std::vector<int> got = groupRanks(r, shape, axes);
      EXPECT_EQ(got, want) << "rank " << r << " mask " << mask;
      if (axes.size() == 1)
        EXPECT_EQ(got[size_t(c[size_t(axes[0])])], r);
    }
  }
}

} // namespace
} // namespace apc
