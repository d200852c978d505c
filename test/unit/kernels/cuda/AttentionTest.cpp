// attention and attention_grad on CUDA (runtime/kernels/cuda/Attention.cu).
//
// Host tests (run everywhere): the block programs of AttentionMath.h, run on the CPU
// thread after thread for every block of the grid the kernels launch (shared memory
// filled with NaN first, as a GPU's is garbage; outputs start NaN so an unwritten one
// shows), against the CPU backend's kernels with CudaParity.h's tolerances; the tile
// choice, grid decomposition, causal tile ranges and online softmax on their own; the
// kernels' refusals, which come before any CUDA call.
// GPU tests (skipped without a GPU): the CUDA kernels against the CPU backend, and
// run twice for identical bytes.
#include "test/unit/kernels/CudaParity.h"

#include "runtime/kernels/cuda/AttentionMath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace apc::kernels {
namespace {

using namespace testing;
using cuda::AttentionDims;
using cuda::AttentionPass;
using cuda::AttentionTask;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// f32 bound of attention_grad's outputs (CudaParity.h's rel): dS = P (dP - delta)
// cancels, and dP is an f32 dot of head_dim terms in both backends, so each is up to
// ~1.5e-5 off the double result at head_dim 128-256 (GradIsAsCloseToDoubleAsTheCpu) and
// they can differ by twice that. The forward keeps the default 1e-5.
constexpr double kGradRel = 5e-5;
constexpr double kGradErrorFromDouble = 2.5e-5;

// ---- The host emulation of the kernels -----------------------------------------------

struct HostBlock {
  int threads = cuda::kAttentionThreads;
  template <class Stage> void parallel(Stage &&stage) {
    for (int t = 0; t < threads; ++t)
      stage(t);
  }
};

struct HostIo {
  const Operand *q = nullptr, *k = nullptr, *v = nullptr, *gradOutput = nullptr;
  Operand *out = nullptr, *gradQ = nullptr, *gradK = nullptr, *gradV = nullptr;
  float query(int64_t i) const { return float(q->at(i)); }
  float key(int64_t i) const { return float(k->at(i)); }
  float value(int64_t i) const { return float(v->at(i)); }
  float gradOut(int64_t i) const { return float(gradOutput->at(i)); }
  void storeOut(int64_t i, float x) const { out->set(i, x); }
  void storeGradQuery(int64_t i, float x) const { gradQ->set(i, x); }
  void storeGradKey(int64_t i, float x) const { gradK->set(i, x); }
  void storeGradValue(int64_t i, float x) const { gradV->set(i, x); }
};

Operand nans(DType dtype, std::vector<int64_t> shape) {
  Operand o = zeros(dtype, std::move(shape));
  for (int64_t i = 0; i < o.count(); ++i)
    o.set(i, kNaN);
  return o;
}

std::vector<TensorView> viewsOf(std::vector<Operand> &operands) {
  std::vector<TensorView> views;
  for (Operand &o : operands)
    views.push_back({o.bytes.data(), o.dtype, o.shape});
  return views;
}

// Every block of one pass's grid, in launch order, each on NaN-filled shared memory.
template <class Program>
void emulateGrid(AttentionPass pass, const AttentionDims &a, int64_t heads, bool lastTileFirst,
                 Program program) {
  int tile = cuda::attentionTile(pass, a.dim);
  ASSERT_GT(tile, 0);
  int64_t tiles = cuda::attentionTiles(a.seq, tile);
  std::vector<float> shared(size_t(cuda::attentionLayout(pass, tile, int(a.dim)).total));
  HostBlock block;
  for (int64_t index = 0; index < a.batch * heads * tiles; ++index) {
    std::fill(shared.begin(), shared.end(), kNaN);
    program(block, cuda::attentionTask(index, heads, tiles, lastTileFirst), tile, shared.data());
  }
}

// attention's grid on the host: the result.
Operand emulateAttention(std::vector<Operand> in, const Attributes &attrs) {
  Operand out = nans(in[0].dtype, in[0].shape);
  AttentionDims a = cuda::attentionDims(viewsOf(in), attrs);
  HostIo io;
  io.q = &in[0], io.k = &in[1], io.v = &in[2], io.out = &out;
  emulateGrid(AttentionPass::Forward, a, a.heads, true,
              [&](HostBlock &block, const AttentionTask &task, int tile, float *shared) {
                cuda::attentionForwardBlock(block, io, a, task, tile, shared);
              });
  return out;
}

// attention_grad's three grids on the host, in launch order: dQ, dK, dV.
std::vector<Operand> emulateAttentionGrad(std::vector<Operand> in, const Attributes &attrs) {
  std::vector<Operand> out = {nans(in[0].dtype, in[0].shape), nans(in[1].dtype, in[1].shape),
                              nans(in[2].dtype, in[2].shape)};
  AttentionDims a = cuda::attentionDims(viewsOf(in), attrs);
  int64_t rows = a.batch * a.heads * a.seq;
  std::vector<float> workspace(size_t(cuda::attentionGradWorkspace(rows) / 4), kNaN);
  size_t stride = size_t(cuda::attentionStatsStride(rows) / 4);
  cuda::AttentionStats stats{workspace.data(), workspace.data() + stride,
                             workspace.data() + 2 * stride};
  HostIo io;
  io.q = &in[0], io.k = &in[1], io.v = &in[2], io.gradOutput = &in[3];
  io.gradQ = &out[0], io.gradK = &out[1], io.gradV = &out[2];
  emulateGrid(AttentionPass::Forward, a, a.heads, true,
              [&](HostBlock &block, const AttentionTask &task, int tile, float *shared) {
                cuda::attentionGradStatsBlock(block, io, a, task, tile, shared, stats);
              });
  emulateGrid(AttentionPass::GradQuery, a, a.heads, true,
              [&](HostBlock &block, const AttentionTask &task, int tile, float *shared) {
                cuda::attentionGradQueryBlock(block, io, a, task, tile, shared, stats);
              });
  emulateGrid(AttentionPass::GradKeyValue, a, a.kvHeads, false,
              [&](HostBlock &block, const AttentionTask &task, int tile, float *shared) {
                cuda::attentionGradKeyValueBlock(block, io, a, task, tile, shared, stats);
              });
  return out;
}

// The CPU backend's kernel on `in` (prepare first).
std::vector<Operand> runCpu(const std::string &kernel, std::vector<Operand> in,
                            std::vector<Operand> out, const Attributes &attrs) {
  std::vector<TensorView> inViews = viewsOf(in), outViews = viewsOf(out);
  const KernelInfo *cpu = findCpuKernel(kernel);
  EXPECT_NE(cpu, nullptr);
  Status prepared = cpu->prepare(inViews, outViews, attrs);
  EXPECT_TRUE(prepared) << prepared.message();
  Status ran = cpu->run(KernelContext{}, inViews, outViews, attrs);
  EXPECT_TRUE(ran) << ran.message();
  return out;
}

struct Case {
  int64_t batch, seq, heads, kvHeads, dim;
};

std::string describe(const Case &c, DType t, bool causal) {
  return std::string(dtypeName(t)) + " b" + std::to_string(c.batch) + " s" +
         std::to_string(c.seq) + " h" + std::to_string(c.heads) + "/" +
         std::to_string(c.kvHeads) + " d" + std::to_string(c.dim) +
         (causal ? " causal" : " full");
}

// The shapes of the host tests: the brief's (seq 37, not a multiple of any tile; GQA 4/2;
// head_dim 64), head_dim 128 and 256 (the other tiles), several key tiles under the
// largest tile (seq 150 > 2 x 64), one token, an odd head_dim, and no grouping.
const Case kHostCases[] = {{2, 37, 4, 2, 64}, {1, 37, 2, 1, 128}, {1, 21, 2, 2, 256},
                           {1, 150, 2, 1, 64}, {1, 1, 1, 1, 64},  {2, 9, 3, 3, 5}};

// The backward in double from the same (rounded) inputs: dQ, dK, dV, unrounded.
std::vector<std::vector<double>> referenceAttentionGrad(const std::vector<Operand> &in,
                                                        const AttentionDims &a) {
  const Operand &q = in[0], &k = in[1], &v = in[2], &dO = in[3];
  std::vector<std::vector<double>> g = {std::vector<double>(size_t(q.count())),
                                        std::vector<double>(size_t(k.count())),
                                        std::vector<double>(size_t(v.count()))};
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < a.heads; ++h)
      for (int64_t i = 0; i < a.seq; ++i) {
        int64_t kvh = h / a.group(), n = a.causal ? i + 1 : a.seq, qi = a.queryIndex(b, i, h);
        std::vector<double> p(static_cast<size_t>(n)), dp(static_cast<size_t>(n));
        double max = -INFINITY, sum = 0, delta = 0;
        for (int64_t j = 0; j < n; ++j) {
          int64_t kj = a.keyIndex(b, j, kvh);
          double s = 0, t = 0;
          for (int64_t d = 0; d < a.dim; ++d) {
            s += q.at(qi + d) * k.at(kj + d);
            t += dO.at(qi + d) * v.at(kj + d);
          }
          p[j] = s * double(a.scale);
          dp[j] = t;
          max = std::max(max, p[j]);
        }
        for (double &x : p)
          sum += (x = std::exp(x - max));
        for (int64_t j = 0; j < n; ++j)
          delta += (p[j] /= sum) * dp[j];
        for (int64_t j = 0; j < n; ++j) {
          int64_t kj = a.keyIndex(b, j, kvh);
          double ds = p[j] * (dp[j] - delta) * double(a.scale);
          for (int64_t d = 0; d < a.dim; ++d) {
            g[0][qi + d] += ds * k.at(kj + d);
            g[1][kj + d] += ds * q.at(qi + d);
            g[2][kj + d] += p[j] * dO.at(qi + d);
          }
        }
      }
  return g;
}

// max |x - ref| / max(|ref|, M / 16), M = max |ref|: expectClose's measure.
double relativeError(const Operand &x, const std::vector<double> &ref) {
  double m = 0, worst = 0;
  for (double r : ref)
    m = std::max(m, std::fabs(r));
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(x.at(int64_t(i)) - ref[i]) / std::max(std::fabs(ref[i]), m / 16));
  return worst;
}

// ---- Host tests ----------------------------------------------------------------------

TEST(CudaAttentionMath, TilesFitTheSharedBudgetForEveryHeadDim) {
  for (AttentionPass pass :
       {AttentionPass::Forward, AttentionPass::GradQuery, AttentionPass::GradKeyValue})
    for (int64_t dim = 1; dim <= cuda::kAttentionMaxHeadDim; ++dim) {
      int tile = cuda::attentionTile(pass, dim);
      ASSERT_GE(tile, 8) << "dim " << dim;
      cuda::AttentionLayout l = cuda::attentionLayout(pass, tile, int(dim));
      EXPECT_LE(l.bytes(), cuda::kAttentionSharedBudget) << "dim " << dim;
      if (tile < 64) // the next larger tile would not fit
        EXPECT_GT(cuda::attentionLayout(pass, tile * 2, int(dim)).bytes(),
                  cuda::kAttentionSharedBudget);
    }
  EXPECT_EQ(cuda::attentionTile(AttentionPass::Forward, 64), 64);
  EXPECT_EQ(cuda::attentionTile(AttentionPass::Forward, 128), 32);
  EXPECT_EQ(cuda::attentionTile(AttentionPass::GradKeyValue, 64), 32);
  EXPECT_EQ(cuda::attentionTile(AttentionPass::GradKeyValue, 128), 16);
  EXPECT_EQ(cuda::attentionTile(AttentionPass::Forward, 257), 0);
}

TEST(CudaAttentionMath, SharedArraysDoNotOverlap) {
  for (AttentionPass pass :
       {AttentionPass::Forward, AttentionPass::GradQuery, AttentionPass::GradKeyValue}) {
    int tile = 16, dim = 40;
    cuda::AttentionLayout l = cuda::attentionLayout(pass, tile, dim);
    bool grad = pass != AttentionPass::Forward;
    int matrix = tile * (dim + 1), square = tile * (tile + 1);
    std::vector<std::pair<int, int>> used = {{l.q, matrix}, {l.k, matrix}, {l.v, matrix},
                                             {l.acc, matrix}, {l.rowMax, tile},
                                             {l.rowSum, tile}, {l.rowDelta, tile},
                                             {l.rowScale, tile}};
    if (grad)
      used.insert(used.end(), {{l.gradOut, matrix}, {l.gradScores, square}});
    if (pass != AttentionPass::GradQuery)
      used.push_back({l.probs, square});
    if (pass == AttentionPass::GradKeyValue)
      used.push_back({l.acc2, matrix});
    std::vector<int> owner(size_t(l.total), -1);
    for (size_t u = 0; u < used.size(); ++u)
      for (int i = used[u].first; i < used[u].first + used[u].second; ++i) {
        ASSERT_LT(i, l.total);
        EXPECT_EQ(owner[size_t(i)], -1) << "array " << u << " overlaps at " << i;
        owner[size_t(i)] = int(u);
      }
  }
}

TEST(CudaAttentionMath, EveryBlockHasItsOwnTask) {
  for (bool lastFirst : {true, false}) {
    int64_t batch = 3, heads = 5, tiles = 7;
    std::set<std::tuple<int64_t, int64_t, int64_t>> seen;
    for (int64_t i = 0; i < batch * heads * tiles; ++i) {
      AttentionTask t = cuda::attentionTask(i, heads, tiles, lastFirst);
      ASSERT_LT(t.b, batch);
      ASSERT_LT(t.h, heads);
      ASSERT_LT(t.tile, tiles);
      seen.insert({t.b, t.h, t.tile});
    }
    EXPECT_EQ(seen.size(), size_t(batch * heads * tiles));
    EXPECT_EQ(cuda::attentionTask(0, heads, tiles, lastFirst).tile, lastFirst ? tiles - 1 : 0);
  }
}

// Under the causal mask, the tiles a block visits hold every visible pair, and the ones
// it skips none.
TEST(CudaAttentionMath, CausalTileRangesCoverExactlyTheVisibleKeys) {
  for (bool causal : {true, false})
    for (int tile : {8, 16, 32, 64})
      for (int64_t seq = 1; seq <= 140; ++seq) {
        AttentionDims a{1, seq, 1, 1, 8, 1.0f, causal};
        int64_t tiles = cuda::attentionTiles(seq, tile);
        for (int64_t qt = 0; qt < tiles; ++qt)
          for (int64_t kt = 0; kt < tiles; ++kt) {
            bool any = false;
            for (int64_t i = qt * tile; i < (qt + 1) * tile; ++i)
              for (int64_t j = kt * tile; j < (kt + 1) * tile; ++j)
                any = any || a.visible(i, j);
            bool keyVisited = kt < cuda::attentionKeyTiles(a, qt, tile);
            bool queryVisited = qt >= cuda::attentionFirstQueryTile(a, kt);
            EXPECT_EQ(any, keyVisited) << "seq " << seq << " tile " << tile << " " << qt << "/" << kt;
            EXPECT_EQ(any, queryVisited) << "seq " << seq << " tile " << tile << " " << qt << "/" << kt;
          }
      }
}

// The online softmax over tiles (some fully masked, the first included) ends with the
// max and sum of the whole row, and p's rescaled to the end sum to 1.
TEST(CudaAttentionMath, OnlineSoftmaxEqualsTheWholeRowsSoftmax) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-20.0f, 20.0f);
  const int n = 16, tiles = 6;
  std::vector<float> scores(size_t(n * tiles));
  for (size_t i = 0; i < scores.size(); ++i)
    scores[i] = (i < size_t(n) || (i / n == 3) || i % 5 == 0) ? -INFINITY : dist(rng);
  double max = -INFINITY, sum = 0;
  for (float s : scores)
    max = std::max(max, double(s));
  for (float s : scores)
    sum += std::exp(double(s) - max);
  float runningMax = -INFINITY, runningSum = 0, rescale = 0;
  double weight = 0; // sum of p, carried like an output row
  for (int t = 0; t < tiles; ++t) {
    std::vector<float> tileScores(scores.begin() + t * n, scores.begin() + (t + 1) * n);
    cuda::attentionOnlineSoftmax(tileScores.data(), n, runningMax, runningSum, rescale);
    double tileSum = 0;
    for (float p : tileScores) {
      EXPECT_FALSE(std::isnan(p));
      tileSum += p;
    }
    weight = weight * rescale + tileSum;
    if (t == 0) {
      EXPECT_EQ(runningMax, -INFINITY);
      EXPECT_EQ(rescale, 1.0f);
    }
  }
  EXPECT_EQ(double(runningMax), max);
  EXPECT_NEAR(runningSum, sum, 1e-6 * sum);
  EXPECT_NEAR(weight / runningSum, 1.0, 1e-6);
}

TEST(CudaAttentionMath, HostEmulatedForwardMatchesTheCpu) {
  std::mt19937 rng(17);
  for (DType t : {DType::F32, DType::BF16})
    for (const Case &c : kHostCases)
      for (bool causal : {true, false}) {
        Operand q = randomOperand(t, {c.batch, c.seq, c.heads, c.dim}, rng);
        Operand k = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
        Operand v = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
        Attributes attrs({boolAttr("causal", causal)});
        std::vector<Operand> cpu = runCpu("attention", {q, k, v}, {zeros(t, q.shape)}, attrs);
        Operand emulated = emulateAttention({q, k, v}, attrs);
        expectClose("attention " + describe(c, t, causal), cpu[0], emulated);
      }
}

TEST(CudaAttentionMath, HostEmulatedBackwardMatchesTheCpu) {
  std::mt19937 rng(19);
  for (DType t : {DType::F32, DType::BF16})
    for (const Case &c : kHostCases)
      for (bool causal : {true, false}) {
        Operand q = randomOperand(t, {c.batch, c.seq, c.heads, c.dim}, rng);
        Operand k = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
        Operand v = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
        Operand dO = randomOperand(t, q.shape, rng);
        Attributes attrs({boolAttr("causal", causal)});
        std::vector<Operand> cpu = runCpu("attention_grad", {q, k, v, dO},
                                          {zeros(t, q.shape), zeros(t, k.shape), zeros(t, v.shape)},
                                          attrs);
        std::vector<Operand> emulated = emulateAttentionGrad({q, k, v, dO}, attrs);
        std::string where = describe(c, t, causal);
        expectClose("attention_grad query " + where, cpu[0], emulated[0], kGradRel);
        expectClose("attention_grad key " + where, cpu[1], emulated[1], kGradRel);
        expectClose("attention_grad value " + where, cpu[2], emulated[2], kGradRel);
      }
}

// The f32 backward, emulated and on the CPU, against a double reference: both are
// about equally close, which is why kGradRel is looser than the forward's bound.
TEST(CudaAttentionMath, GradIsAsCloseToDoubleAsTheCpu) {
  std::mt19937 rng(41);
  const char *outputs[] = {"query", "key", "value"};
  for (Case c : {Case{1, 21, 2, 2, 256}, Case{1, 37, 2, 1, 128}, Case{1, 150, 2, 1, 64}})
    for (bool causal : {true, false}) {
      DType t = DType::F32;
      Operand q = randomOperand(t, {c.batch, c.seq, c.heads, c.dim}, rng);
      Operand k = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
      Operand v = randomOperand(t, k.shape, rng), dO = randomOperand(t, q.shape, rng);
      Attributes attrs({boolAttr("causal", causal)});
      std::vector<Operand> in = {q, k, v, dO};
      std::vector<Operand> cpu = runCpu("attention_grad", in,
                                        {zeros(t, q.shape), zeros(t, k.shape), zeros(t, v.shape)},
                                        attrs);
      std::vector<Operand> emulated = emulateAttentionGrad(in, attrs);
      auto reference = referenceAttentionGrad(in, cuda::attentionDims(viewsOf(in), attrs));
      for (size_t o = 0; o < 3; ++o) {
        std::string where = std::string(outputs[o]) + " " + describe(c, t, causal);
        EXPECT_LE(relativeError(emulated[o], reference[o]), kGradErrorFromDouble) << where;
        EXPECT_LE(relativeError(cpu[o], reference[o]), kGradErrorFromDouble) << where;
      }
    }
}

// An explicit scale, and the attributes' absence (the defaults: causal, 1/sqrt(dim)).
TEST(CudaAttentionMath, HostEmulationTakesTheScaleAndTheDefaults) {
  std::mt19937 rng(23);
  Case c{1, 19, 2, 1, 64};
  for (Attributes attrs : {Attributes({floatAttr("scale", 0.3), boolAttr("causal", false)}),
                           Attributes()}) {
    Operand q = randomOperand(DType::F32, {c.batch, c.seq, c.heads, c.dim}, rng);
    Operand k = randomOperand(DType::F32, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
    Operand v = randomOperand(DType::F32, k.shape, rng), dO = randomOperand(DType::F32, q.shape, rng);
    std::vector<Operand> cpu = runCpu("attention", {q, k, v}, {zeros(DType::F32, q.shape)}, attrs);
    expectClose("attention", cpu[0], emulateAttention({q, k, v}, attrs));
    cpu = runCpu("attention_grad", {q, k, v, dO},
                 {zeros(DType::F32, q.shape), zeros(DType::F32, k.shape), zeros(DType::F32, v.shape)},
                 attrs);
    std::vector<Operand> emulated = emulateAttentionGrad({q, k, v, dO}, attrs);
    for (size_t i = 0; i < 3; ++i)
      expectClose("attention_grad output " + std::to_string(i), cpu[i], emulated[i], kGradRel);
  }
}

// ---- The kernels' checks before any launch (no GPU needed) ----------------------------

std::vector<TensorView> shapes(std::vector<std::vector<int64_t>> list) {
  std::vector<TensorView> views;
  for (auto &s : list)
    views.push_back({nullptr, DType::F32, s});
  return views;
}

TEST(CudaAttention, RefusesAHeadDimAbove256) {
  Attributes attrs;
  for (const char *name : {"attention", "attention_grad"}) {
    const KernelInfo *k = cuda::findCudaKernel(name);
    ASSERT_NE(k, nullptr) << name;
    bool grad = std::string(name) == "attention_grad";
    std::vector<TensorView> in = shapes({{1, 4, 2, 320}, {1, 4, 1, 320}, {1, 4, 1, 320}});
    if (grad)
      in.push_back(in[0]);
    std::vector<TensorView> out = grad ? shapes({{1, 4, 2, 320}, {1, 4, 1, 320}, {1, 4, 1, 320}})
                                       : shapes({{1, 4, 2, 320}});
    // The CPU's validation passes it; the CUDA kernel's limits refuse it at load
    // (prepare), and again if run anyway.
    ASSERT_TRUE(findCpuKernel(name)->prepare(in, out, attrs)) << name;
    std::string want =
        std::string(name) + ": head_dim 320 is more than the CUDA kernel supports (at most 256)";
    Status prepared = k->prepare(in, out, attrs);
    ASSERT_FALSE(prepared) << name;
    EXPECT_EQ(prepared.message(), want);
    Status s = k->run(KernelContext{}, in, out, attrs);
    ASSERT_FALSE(s) << name;
    EXPECT_EQ(s.message(), want);
  }
}

TEST(CudaAttention, GradAsksForItsWorkspaceAndRefusesLess) {
  const KernelInfo *k = cuda::findCudaKernel("attention_grad");
  ASSERT_NE(k, nullptr);
  ASSERT_NE(k->workspace, nullptr);
  EXPECT_EQ(cuda::findCudaKernel("attention")->workspace, nullptr);
  std::vector<TensorView> in =
      shapes({{2, 37, 4, 64}, {2, 37, 2, 64}, {2, 37, 2, 64}, {2, 37, 4, 64}});
  std::vector<TensorView> out = shapes({{2, 37, 4, 64}, {2, 37, 2, 64}, {2, 37, 2, 64}});
  Attributes attrs;
  // 296 rows: max, sum and delta, 1184 bytes each, each on a 256-byte boundary.
  EXPECT_EQ(k->workspace(in, out, attrs), 3u * 1280u);
  Status s = k->run(KernelContext{}, in, out, attrs);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "attention_grad needs 3840 bytes of workspace; the backend gave 0");
}

// Nothing to do, nothing launched: fine without a GPU.
TEST(CudaAttention, EmptyTensorsLaunchNothing) {
  Attributes attrs;
  std::vector<TensorView> in = shapes({{2, 0, 4, 64}, {2, 0, 2, 64}, {2, 0, 2, 64}, {2, 0, 4, 64}});
  std::vector<TensorView> out = shapes({{2, 0, 4, 64}, {2, 0, 2, 64}, {2, 0, 2, 64}});
  std::vector<TensorView> forwardIn(in.begin(), in.begin() + 3), forwardOut(out.begin(), out.begin() + 1);
  EXPECT_TRUE(cuda::findCudaKernel("attention")->run(KernelContext{}, forwardIn, forwardOut, attrs));
  EXPECT_TRUE(cuda::findCudaKernel("attention_grad")->run(KernelContext{}, in, out, attrs));
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

// The GPU shapes: the host cases, then sizes the host would take long over: many blocks
// (batch 8 x 16 heads x seq 256), long sequences with GQA at head_dim 128.
const Case kGpuCases[] = {{2, 37, 4, 2, 64},  {1, 37, 2, 1, 128}, {1, 21, 2, 2, 256},
                          {1, 150, 2, 1, 64}, {1, 1, 1, 1, 64},   {2, 9, 3, 3, 5},
                          {1, 100, 4, 4, 80}, {8, 256, 16, 4, 64}, {2, 1000, 8, 2, 128}};

TEST(CudaParity, AttentionMatchesTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(29);
  for (DType t : {DType::F32, DType::BF16})
    for (const Case &c : kGpuCases)
      for (bool causal : {true, false}) {
        Operand q = randomOperand(t, {c.batch, c.seq, c.heads, c.dim}, rng);
        Operand k = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
        Operand v = randomOperand(t, k.shape, rng);
        Attributes attrs({boolAttr("causal", causal)});
        std::vector<Operand> cpu, gpu;
        runBoth("attention", {q, k, v}, {zeros(t, q.shape)}, attrs, cpu, gpu);
        expectClose("attention " + describe(c, t, causal), cpu[0], gpu[0]);
      }
}

TEST(CudaParity, AttentionGradMatchesTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(31);
  for (DType t : {DType::F32, DType::BF16})
    for (const Case &c : kGpuCases)
      for (bool causal : {true, false}) {
        Operand q = randomOperand(t, {c.batch, c.seq, c.heads, c.dim}, rng);
        Operand k = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
        Operand v = randomOperand(t, k.shape, rng), dO = randomOperand(t, q.shape, rng);
        Attributes attrs({boolAttr("causal", causal)});
        std::vector<Operand> cpu, gpu;
        runBoth("attention_grad", {q, k, v, dO},
                {zeros(t, q.shape), zeros(t, k.shape), zeros(t, v.shape)}, attrs, cpu, gpu);
        std::string where = describe(c, t, causal);
        expectClose("attention_grad query " + where, cpu[0], gpu[0], kGradRel);
        expectClose("attention_grad key " + where, cpu[1], gpu[1], kGradRel);
        expectClose("attention_grad value " + where, cpu[2], gpu[2], kGradRel);
      }
}

TEST(CudaParity, AttentionIsDeterministic) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(37);
  DType t = DType::BF16;
  Case c{2, 300, 8, 2, 128};
  Operand q = randomOperand(t, {c.batch, c.seq, c.heads, c.dim}, rng);
  Operand k = randomOperand(t, {c.batch, c.seq, c.kvHeads, c.dim}, rng);
  Operand v = randomOperand(t, k.shape, rng), dO = randomOperand(t, q.shape, rng);
  Attributes attrs;
  std::vector<Operand> cpu, first, second;
  runBoth("attention", {q, k, v}, {zeros(t, q.shape)}, attrs, cpu, first);
  runBoth("attention", {q, k, v}, {zeros(t, q.shape)}, attrs, cpu, second);
  EXPECT_EQ(first[0].bytes, second[0].bytes);
  std::vector<Operand> outs = {zeros(t, q.shape), zeros(t, k.shape), zeros(t, v.shape)};
  runBoth("attention_grad", {q, k, v, dO}, outs, attrs, cpu, first);
  runBoth("attention_grad", {q, k, v, dO}, outs, attrs, cpu, second);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(first[i].bytes, second[i].bytes) << "output " << i;
}

} // namespace
} // namespace apc::kernels
