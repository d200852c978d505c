// Flash attention on CUDA, its arithmetic and tile loops: one block's whole program per
// (batch, head, query tile) or (batch, kv head, key tile), written once as APC_HD
// templates that the kernels (Attention.cu) run with one CUDA thread per `t` and the
// host tests (test/unit/kernels/cuda/AttentionTest.cpp) run on the CPU thread after
// thread, comparing with the CPU backend. No CUDA header.
//
// A program is a sequence of stages `block.parallel([&](int t) {...})`: on the GPU every
// thread runs the stage for its own t, then the block synchronises; on the host the
// stage runs for t = 0, 1, ... in turn. Within a stage a thread writes only its own
// elements and reads only what earlier stages wrote, so both orders give the same
// result. All state lives in the block's shared array `shared` (AttentionLayout), none
// in registers that would outlive a stage.
//
// The scores matrix is never stored: a block streams key/value tiles (forward, dQ) or
// query/grad-output tiles (dK, dV) through shared memory, with an online softmax whose
// running max and sum are f32. The backward recomputes the softmax statistics (row max,
// row sum) and delta = rowsum(dO * O) in a first pass and keeps them in the workspace.
// Every sum runs in a fixed order and no two blocks write the same output: results are
// deterministic. f32 SIMT arithmetic only, no tensor cores.
#pragma once

#include "runtime/kernels/Kernel.h"
#include "runtime/kernels/cuda/HostDevice.h"

#include <math.h>
#include <stdint.h>

namespace apc::kernels::cuda {

constexpr int kAttentionThreads = 128;       // threads of every attention block
constexpr int64_t kAttentionMaxHeadDim = 256; // larger head_dims are refused at run time
// Shared memory a block may use: under the opt-in limit of every sm_80+ GPU (99 KiB on
// sm_86/89, 163 KiB on sm_80, 227 KiB on sm_90), with room for two blocks an SM on H100.
constexpr int64_t kAttentionSharedBudget = 96 * 1024;

// q [batch, seq, heads, dim], k and v [batch, seq, kvHeads, dim]; the softmax statistics
// of the backward [batch, heads, seq].
struct AttentionDims {
  int64_t batch, seq, heads, kvHeads, dim;
  float scale;
  bool causal;
  APC_HD int64_t group() const { return heads / kvHeads; }
  APC_HD int64_t queryIndex(int64_t b, int64_t s, int64_t h) const {
    return ((b * seq + s) * heads + h) * dim;
  }
  APC_HD int64_t keyIndex(int64_t b, int64_t s, int64_t kvh) const {
    return ((b * seq + s) * kvHeads + kvh) * dim;
  }
  APC_HD int64_t statIndex(int64_t b, int64_t h, int64_t s) const { return (b * heads + h) * seq + s; }
  // Query i sees key j (rows past seq are a tile's padding and see nothing).
  APC_HD bool visible(int64_t i, int64_t j) const {
    return i < seq && j < seq && (!causal || j <= i);
  }
};

// The dims of an attention or attention_grad instruction (prepare checked them), with the
// CPU backend's defaults: scale 1/sqrt(head_dim), causal.
inline AttentionDims attentionDims(const std::vector<TensorView> &in, const Attributes &attrs) {
  const TensorView &q = in[0], &k = in[1];
  float scale = float(attrs.getFloat("scale", 1.0 / sqrt(double(q.shape[3]))));
  return {q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], scale,
          attrs.getBool("causal", true)};
}

APC_HD int64_t attentionTiles(int64_t n, int64_t tile) { return (n + tile - 1) / tile; }

// The three block programs; each picks its own tile (attentionTile).
enum class AttentionPass { Forward, GradQuery, GradKeyValue };

// Offsets, in floats, of a block's shared arrays. [tile, dim] arrays have row stride
// ld = dim + 1 (odd), so threads reading one column of different rows hit different
// banks; [tile, tile] arrays have stride tile + 1 for the same reason.
struct AttentionLayout {
  int tile = 0, ld = 0, sld = 0;
  int q = 0, k = 0, v = 0, gradOut = 0, acc = 0, acc2 = 0, probs = 0, gradScores = 0;
  int rowMax = 0, rowSum = 0, rowDelta = 0, rowScale = 0;
  int total = 0; // floats
  int64_t bytes() const { return int64_t(total) * 4; }
};

// Forward: q, k, v, acc (O), probs, and per row max, sum and the rescale factor.
// GradQuery: q, gradOut, k, v, acc (dQ), gradScores, per row max, 1/sum, delta.
// GradKeyValue: k, v, acc (dK), acc2 (dV), q, gradOut, probs, gradScores, per row stats.
APC_HD AttentionLayout attentionLayout(AttentionPass pass, int tile, int dim) {
  AttentionLayout l;
  l.tile = tile;
  l.ld = dim + 1;
  l.sld = tile + 1;
  int matrix = tile * l.ld, square = tile * l.sld;
  bool grad = pass != AttentionPass::Forward;
  auto take = [&](int size) {
    int at = l.total;
    l.total += size;
    return at;
  };
  l.q = take(matrix);
  l.k = take(matrix);
  l.v = take(matrix);
  l.acc = take(matrix);
  l.gradOut = take(grad ? matrix : 0);
  l.acc2 = take(pass == AttentionPass::GradKeyValue ? matrix : 0);
  l.probs = take(pass == AttentionPass::GradQuery ? 0 : square);
  l.gradScores = take(grad ? square : 0);
  l.rowMax = take(tile);
  l.rowSum = take(tile);
  l.rowDelta = take(tile);
  l.rowScale = take(tile);
  return l;
}

// The largest tile (64, 32, 16 or 8 rows) whose layout fits the shared budget; 0 when
// none does (never for dim <= kAttentionMaxHeadDim).
inline int attentionTile(AttentionPass pass, int64_t dim) {
  if (dim <= 0 || dim > kAttentionMaxHeadDim)
    return 0;
  for (int tile = 64; tile >= 8; tile /= 2)
    if (attentionLayout(pass, tile, int(dim)).bytes() <= kAttentionSharedBudget)
      return tile;
  return 0;
}

// What one block does: batch b, head h (a kv head for GradKeyValue), and its tile.
struct AttentionTask {
  int64_t b, h, tile;
};

// Block `index` of a grid of batch x heads x tiles blocks. With lastTileFirst the last
// tiles, the longest under a causal mask for query tiles, start first, so that they do
// not finish last.
APC_HD AttentionTask attentionTask(int64_t index, int64_t heads, int64_t tiles, bool lastTileFirst) {
  int64_t tile = index % tiles;
  return {index / (heads * tiles), (index / tiles) % heads, lastTileFirst ? tiles - 1 - tile : tile};
}

// The key tiles query tile `queryTile` visits: [0, n). Both tiles have `tile` rows.
APC_HD int64_t attentionKeyTiles(const AttentionDims &a, int64_t queryTile, int64_t tile) {
  int64_t all = attentionTiles(a.seq, tile);
  return a.causal && queryTile + 1 < all ? queryTile + 1 : all;
}
// The first query tile that sees key tile `keyTile` (the rest up to the last do too).
APC_HD int64_t attentionFirstQueryTile(const AttentionDims &a, int64_t keyTile) {
  return a.causal ? keyTile : 0;
}

APC_HD float attentionDot(const float *x, const float *y, int n) {
  float s = 0.0f;
  for (int d = 0; d < n; ++d)
    s += x[d] * y[d];
  return s;
}

// The online softmax of one query row over one key tile: `scores` (n of them, -inf where
// the key is not visible) become exp(score - newMax); the running max and sum move on
// and `rescale` is what the row's accumulated output must be multiplied by.
APC_HD void attentionOnlineSoftmax(float *scores, int n, float &runningMax, float &runningSum,
                                   float &rescale) {
  float tileMax = -INFINITY;
  for (int c = 0; c < n; ++c)
    tileMax = fmaxf(tileMax, scores[c]);
  float newMax = fmaxf(runningMax, tileMax);
  if (newMax == -INFINITY) { // nothing visible yet: no -inf - -inf
    for (int c = 0; c < n; ++c)
      scores[c] = 0.0f;
    rescale = 1.0f;
    return;
  }
  rescale = expf(runningMax - newMax); // 0 on the first visible tile
  float sum = 0.0f;
  for (int c = 0; c < n; ++c) {
    float p = expf(scores[c] - newMax); // 0 where not visible
    scores[c] = p;
    sum += p;
  }
  runningSum = runningSum * rescale + sum;
  runningMax = newMax;
}

// The backward's view of one score: p = softmax probability from the saved statistics,
// dS = p (dP - delta), dP = dO . v.
APC_HD float attentionProbability(float score, float rowMax, float inverseSum) {
  return expf(score - rowMax) * inverseSum;
}
APC_HD float attentionGradScore(float probability, float gradProbability, float delta) {
  return probability * (gradProbability - delta);
}

// Workspace arrays of the backward (row max, row sum, delta), [batch, heads, seq] f32.
struct AttentionStats {
  float *rowMax, *rowSum, *rowDelta;
};
inline uint64_t attentionStatsStride(int64_t rows) { return (uint64_t(rows) * 4 + 255) / 256 * 256; }
inline uint64_t attentionGradWorkspace(int64_t rows) { return 3 * attentionStatsStride(rows); }

// ---- The block programs. `Block`: `threads` and `parallel(stage)`. `Io`: float loads
// query(i), key(i), value(i), gradOut(i) and stores storeOut, storeGradQuery,
// storeGradKey, storeGradValue (i, float) of the operands in their storage type.

// The forward of one query tile: acc = unnormalised output, rowMax, rowSum.
template <class Block, class Io>
APC_HD void attentionForwardRows(Block &block, const Io &io, const AttentionDims &a,
                                 const AttentionTask &task, int tile, float *shared) {
  AttentionLayout L = attentionLayout(AttentionPass::Forward, tile, int(a.dim));
  int dim = int(a.dim), T = tile, ld = L.ld, n = block.threads;
  float *sq = shared + L.q, *sk = shared + L.k, *sv = shared + L.v, *acc = shared + L.acc;
  float *probs = shared + L.probs, *rowMax = shared + L.rowMax, *rowSum = shared + L.rowSum;
  float *rowScale = shared + L.rowScale;
  int64_t first = task.tile * T, kvh = task.h / a.group();
  block.parallel([&](int t) {
    for (int e = t; e < T * dim; e += n) {
      int r = e / dim, d = e % dim;
      int64_t i = first + r;
      sq[r * ld + d] = i < a.seq ? a.scale * io.query(a.queryIndex(task.b, i, task.h) + d) : 0.0f;
      acc[r * ld + d] = 0.0f;
    }
    for (int r = t; r < T; r += n) {
      rowMax[r] = -INFINITY;
      rowSum[r] = 0.0f;
    }
  });
  int64_t keyTiles = attentionKeyTiles(a, task.tile, T);
  for (int64_t kt = 0; kt < keyTiles; ++kt) {
    int64_t keyFirst = kt * T;
    block.parallel([&](int t) {
      for (int e = t; e < T * dim; e += n) {
        int c = e / dim, d = e % dim;
        int64_t j = keyFirst + c;
        bool in = j < a.seq;
        sk[c * ld + d] = in ? io.key(a.keyIndex(task.b, j, kvh) + d) : 0.0f;
        sv[c * ld + d] = in ? io.value(a.keyIndex(task.b, j, kvh) + d) : 0.0f;
      }
    });
    block.parallel([&](int t) {
      for (int e = t; e < T * T; e += n) {
        int r = e / T, c = e % T;
        probs[r * L.sld + c] = a.visible(first + r, keyFirst + c)
                                   ? attentionDot(sq + r * ld, sk + c * ld, dim)
                                   : -INFINITY;
      }
    });
    block.parallel([&](int t) {
      for (int r = t; r < T; r += n)
        attentionOnlineSoftmax(probs + r * L.sld, T, rowMax[r], rowSum[r], rowScale[r]);
    });
    block.parallel([&](int t) {
      for (int e = t; e < T * dim; e += n) {
        int r = e / dim, d = e % dim;
        float s = 0.0f;
        for (int c = 0; c < T; ++c)
          s += probs[r * L.sld + c] * sv[c * ld + d];
        acc[r * ld + d] = acc[r * ld + d] * rowScale[r] + s;
      }
    });
  }
}

// attention: O = acc / rowSum.
template <class Block, class Io>
APC_HD void attentionForwardBlock(Block &block, const Io &io, const AttentionDims &a,
                                  const AttentionTask &task, int tile, float *shared) {
  attentionForwardRows(block, io, a, task, tile, shared);
  AttentionLayout L = attentionLayout(AttentionPass::Forward, tile, int(a.dim));
  int dim = int(a.dim), n = block.threads;
  int64_t first = task.tile * tile;
  block.parallel([&](int t) {
    for (int e = t; e < tile * dim; e += n) {
      int r = e / dim, d = e % dim;
      if (first + r < a.seq)
        io.storeOut(a.queryIndex(task.b, first + r, task.h) + d,
                    shared[L.acc + r * L.ld + d] / shared[L.rowSum + r]);
    }
  });
}

// The backward's first pass: each row's max, sum and delta = dO . O into the workspace.
template <class Block, class Io>
APC_HD void attentionGradStatsBlock(Block &block, const Io &io, const AttentionDims &a,
                                    const AttentionTask &task, int tile, float *shared,
                                    const AttentionStats &stats) {
  attentionForwardRows(block, io, a, task, tile, shared);
  AttentionLayout L = attentionLayout(AttentionPass::Forward, tile, int(a.dim));
  int dim = int(a.dim), n = block.threads;
  int64_t first = task.tile * tile;
  block.parallel([&](int t) {
    for (int r = t; r < tile; r += n) {
      int64_t i = first + r;
      if (i >= a.seq)
        continue;
      float sum = shared[L.rowSum + r], delta = 0.0f;
      int64_t at = a.queryIndex(task.b, i, task.h);
      for (int d = 0; d < dim; ++d)
        delta += io.gradOut(at + d) * (shared[L.acc + r * L.ld + d] / sum);
      int64_t row = a.statIndex(task.b, task.h, i);
      stats.rowMax[row] = shared[L.rowMax + r];
      stats.rowSum[row] = sum;
      stats.rowDelta[row] = delta;
    }
  });
}

// Loads query rows [first, first + tile) of head h (scaled queries, grad outputs) and
// their statistics (max, 1/sum, delta) for a backward stage.
template <class Block, class Io>
APC_HD void attentionGradLoadQueries(Block &block, const Io &io, const AttentionDims &a,
                                     const AttentionLayout &L, int64_t b, int64_t h,
                                     int64_t first, float *shared, const AttentionStats &stats) {
  int dim = int(a.dim), T = L.tile, ld = L.ld, n = block.threads;
  block.parallel([&](int t) {
    for (int e = t; e < T * dim; e += n) {
      int r = e / dim, d = e % dim;
      int64_t i = first + r;
      bool in = i < a.seq;
      int64_t at = in ? a.queryIndex(b, i, h) + d : 0;
      shared[L.q + r * ld + d] = in ? a.scale * io.query(at) : 0.0f;
      shared[L.gradOut + r * ld + d] = in ? io.gradOut(at) : 0.0f;
    }
    for (int r = t; r < T; r += n) {
      int64_t i = first + r;
      bool in = i < a.seq;
      int64_t row = in ? a.statIndex(b, h, i) : 0;
      shared[L.rowMax + r] = in ? stats.rowMax[row] : 0.0f;
      shared[L.rowSum + r] = in ? 1.0f / stats.rowSum[row] : 0.0f;
      shared[L.rowDelta + r] = in ? stats.rowDelta[row] : 0.0f;
    }
  });
}

// One (query tile, key tile) pair of the backward: probs (when wanted) and gradScores
// for every pair, 0 where the key is not visible.
template <class Block>
APC_HD void attentionGradScores(Block &block, const AttentionDims &a, const AttentionLayout &L,
                                int64_t queryFirst, int64_t keyFirst, float *shared,
                                bool keepProbs) {
  int dim = int(a.dim), T = L.tile, ld = L.ld, n = block.threads;
  block.parallel([&](int t) {
    for (int e = t; e < T * T; e += n) {
      int r = e / T, c = e % T;
      float p = 0.0f, ds = 0.0f;
      if (a.visible(queryFirst + r, keyFirst + c)) {
        float score = attentionDot(shared + L.q + r * ld, shared + L.k + c * ld, dim);
        p = attentionProbability(score, shared[L.rowMax + r], shared[L.rowSum + r]);
        float dp = attentionDot(shared + L.gradOut + r * ld, shared + L.v + c * ld, dim);
        ds = attentionGradScore(p, dp, shared[L.rowDelta + r]);
      }
      if (keepProbs)
        shared[L.probs + r * L.sld + c] = p;
      shared[L.gradScores + r * L.sld + c] = ds;
    }
  });
}

// dQ of one query tile: scale * sum over visible keys of dS k.
template <class Block, class Io>
APC_HD void attentionGradQueryBlock(Block &block, const Io &io, const AttentionDims &a,
                                    const AttentionTask &task, int tile, float *shared,
                                    const AttentionStats &stats) {
  AttentionLayout L = attentionLayout(AttentionPass::GradQuery, tile, int(a.dim));
  int dim = int(a.dim), T = tile, ld = L.ld, n = block.threads;
  int64_t first = task.tile * T, kvh = task.h / a.group();
  attentionGradLoadQueries(block, io, a, L, task.b, task.h, first, shared, stats);
  block.parallel([&](int t) {
    for (int e = t; e < T * dim; e += n)
      shared[L.acc + (e / dim) * ld + e % dim] = 0.0f;
  });
  int64_t keyTiles = attentionKeyTiles(a, task.tile, T);
  for (int64_t kt = 0; kt < keyTiles; ++kt) {
    int64_t keyFirst = kt * T;
    block.parallel([&](int t) {
      for (int e = t; e < T * dim; e += n) {
        int c = e / dim, d = e % dim;
        int64_t j = keyFirst + c;
        bool in = j < a.seq;
        shared[L.k + c * ld + d] = in ? io.key(a.keyIndex(task.b, j, kvh) + d) : 0.0f;
        shared[L.v + c * ld + d] = in ? io.value(a.keyIndex(task.b, j, kvh) + d) : 0.0f;
      }
    });
    attentionGradScores(block, a, L, first, keyFirst, shared, false);
    block.parallel([&](int t) {
      for (int e = t; e < T * dim; e += n) {
        int r = e / dim, d = e % dim;
        float s = 0.0f;
        for (int c = 0; c < T; ++c)
          s += shared[L.gradScores + r * L.sld + c] * shared[L.k + c * ld + d];
        shared[L.acc + r * ld + d] += s;
      }
    });
  }
  block.parallel([&](int t) {
    for (int e = t; e < T * dim; e += n) {
      int r = e / dim, d = e % dim;
      if (first + r < a.seq)
        io.storeGradQuery(a.queryIndex(task.b, first + r, task.h) + d,
                          a.scale * shared[L.acc + r * ld + d]);
    }
  });
}

// dK and dV of one key tile of kv head task.h: the query heads of its group in order,
// each over the query tiles that see the keys: dV = sum P^T dO, dK = sum dS^T (scale q).
template <class Block, class Io>
APC_HD void attentionGradKeyValueBlock(Block &block, const Io &io, const AttentionDims &a,
                                       const AttentionTask &task, int tile, float *shared,
                                       const AttentionStats &stats) {
  AttentionLayout L = attentionLayout(AttentionPass::GradKeyValue, tile, int(a.dim));
  int dim = int(a.dim), T = tile, ld = L.ld, n = block.threads;
  int64_t keyFirst = task.tile * T, kvh = task.h;
  block.parallel([&](int t) {
    for (int e = t; e < T * dim; e += n) {
      int c = e / dim, d = e % dim;
      int64_t j = keyFirst + c;
      bool in = j < a.seq;
      shared[L.k + c * ld + d] = in ? io.key(a.keyIndex(task.b, j, kvh) + d) : 0.0f;
      shared[L.v + c * ld + d] = in ? io.value(a.keyIndex(task.b, j, kvh) + d) : 0.0f;
      shared[L.acc + c * ld + d] = 0.0f;
      shared[L.acc2 + c * ld + d] = 0.0f;
    }
  });
  int64_t queryTiles = attentionTiles(a.seq, T), group = a.group();
  for (int64_t g = 0; g < group; ++g) {
    int64_t h = kvh * group + g;
    for (int64_t qt = attentionFirstQueryTile(a, task.tile); qt < queryTiles; ++qt) {
      int64_t first = qt * T;
      attentionGradLoadQueries(block, io, a, L, task.b, h, first, shared, stats);
      attentionGradScores(block, a, L, first, keyFirst, shared, true);
      block.parallel([&](int t) {
        for (int e = t; e < T * dim; e += n) {
          int c = e / dim, d = e % dim;
          float dk = 0.0f, dv = 0.0f;
          for (int r = 0; r < T; ++r) {
            dk += shared[L.gradScores + r * L.sld + c] * shared[L.q + r * ld + d];
            dv += shared[L.probs + r * L.sld + c] * shared[L.gradOut + r * ld + d];
          }
          shared[L.acc + c * ld + d] += dk;
          shared[L.acc2 + c * ld + d] += dv;
        }
      });
    }
  }
  block.parallel([&](int t) {
    for (int e = t; e < T * dim; e += n) {
      int c = e / dim, d = e % dim;
      if (keyFirst + c < a.seq) {
        int64_t at = a.keyIndex(task.b, keyFirst + c, kvh) + d;
        io.storeGradKey(at, shared[L.acc + c * ld + d]);
        io.storeGradValue(at, shared[L.acc2 + c * ld + d]);
      }
    }
  });
}

} // namespace apc::kernels::cuda
