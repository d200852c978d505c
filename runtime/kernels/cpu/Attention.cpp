// Rotary position embedding and scaled dot-product attention (causal, grouped-query),
// forward and backward.
//
// Design idea: keys and values are first widened once into f32 head-major scratch
// (contiguous per kv head; keys also transposed to [head_dim, seq]), so that every inner
// loop is a unit-stride f32 axpy the compiler vectorises: the scores of one query are
// q[d] * K^T[d, :] accumulated over d, softmax uses a vectorisable exp, and P V adds
// p[j] * V[j, :]. This holds whatever the storage dtype and however many query heads
// share a kv head. Work is split over (batch, head, query block) tasks, each writing
// only its own outputs; the backward pass gives each query head private dK/dV
// partials that are then summed over the heads of a group in a fixed order. No
// atomics anywhere, so results are identical for any thread count.
// Rope precomputes a cos/sin table per call in double (angles reach thousands of
// radians, where f32 would lose the phase) and rotates in f32.
// Context parallelism (seq_shard_rank r, seq_shard_parts n): the rows of a device's part
// are chunks r and 2n-1-r of the sequence cut into 2n; rope rotates each row at its
// position in the whole sequence, and attention's queries see the keys (the whole
// sequence) up to theirs.
#include "runtime/kernels/cpu/Common.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace apc::kernels::cpu {
namespace {

// ---- the device's part of the sequence (context parallelism) ------------------------

struct SequencePart {
  int64_t rank = 0, parts = 1, rows = 0; // rows: of the device's part
  // The position in the whole sequence of row i of the part.
  int64_t position(int64_t i) const {
    if (parts == 1)
      return i;
    int64_t half = rows / 2, chunk = i < half ? rank : 2 * parts - 1 - rank;
    return chunk * half + i % half;
  }
};

SequencePart sequencePart(const Attributes &attrs, int64_t rows) {
  return {attrs.getInt("seq_shard_rank", 0), attrs.getInt("seq_shard_parts", 1), rows};
}

// seq_shard_parts and seq_shard_rank (given by the runtime) come together, with a rank
// on the axis and a part of two equal chunks.
Status checkSequencePart(const Checker &check, const Attributes &attrs, int64_t rows) {
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "seq_shard_parts", false));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "seq_shard_rank", false));
  if (!attrs.has("seq_shard_parts") && !attrs.has("seq_shard_rank"))
    return Status::ok();
  if (!attrs.has("seq_shard_parts") || !attrs.has("seq_shard_rank"))
    return check.error("seq_shard_parts and seq_shard_rank come together (the runtime derives "
                       "the rank from seq_shard_axis)");
  int64_t parts = attrs.getInt("seq_shard_parts"), rank = attrs.getInt("seq_shard_rank");
  if (parts < 1 || rank < 0 || rank >= parts)
    return check.error("seq_shard_rank " + std::to_string(rank) + " is not a device of " +
                       std::to_string(parts) + " seq_shard_parts");
  if (parts > 1 && rows % 2 != 0)
    return check.error("a device's part of the sequence (" + std::to_string(rows) +
                       " rows) must be two equal chunks");
  return Status::ok();
}

// ---- rope, rope_grad ----------------------------------------------------------------

Status prepareRopeLike(const char *kernel, const char *role, const char *outRole,
                       const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                       const Attributes &attrs) {
  Checker check(kernel);
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor(role, in[0], Kind::Float, 4));
  int64_t dim = in[0].shape[3];
  if (dim % 2 != 0 || dim == 0)
    return check.error(std::string("head_dim of ") + role + " " + describe(in[0]) +
                       " must be even and positive");
  APC_RETURN_IF_ERROR(check.floatAttr(attrs, "theta", true));
  if (!(attrs.getFloat("theta") > 0.0))
    return check.error("theta must be positive, got " + std::to_string(attrs.getFloat("theta")));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "position_offset", false));
  if (attrs.getInt("position_offset") < 0)
    return check.error("position_offset must be non-negative, got " +
                       std::to_string(attrs.getInt("position_offset")));
  APC_RETURN_IF_ERROR(checkSequencePart(check, attrs, in[0].shape[1]));
  APC_RETURN_IF_ERROR(check.stringAttr(attrs, "rope_type", {"default", "llama3"}));
  bool hasScaling = attrs.has("factor") || attrs.has("low_freq_factor") ||
                    attrs.has("high_freq_factor") ||
                    attrs.has("original_max_position_embeddings");
  if (attrs.getString("rope_type", "default") == "default") {
    if (hasScaling)
      return check.error("rope_type \"default\" takes no scaling attributes");
  } else {
    APC_RETURN_IF_ERROR(check.floatAttr(attrs, "factor", true));
    APC_RETURN_IF_ERROR(check.floatAttr(attrs, "low_freq_factor", true));
    APC_RETURN_IF_ERROR(check.floatAttr(attrs, "high_freq_factor", true));
    APC_RETURN_IF_ERROR(check.intAttr(attrs, "original_max_position_embeddings", true));
    double factor = attrs.getFloat("factor"), low = attrs.getFloat("low_freq_factor");
    double high = attrs.getFloat("high_freq_factor");
    if (!(factor > 0.0) || !(low > 0.0) || !(high > low) ||
        attrs.getInt("original_max_position_embeddings") <= 0)
      return check.error("llama3 rope scaling needs factor > 0, 0 < low_freq_factor < "
                         "high_freq_factor and original_max_position_embeddings > 0");
  }
  return check.sameType(outRole, out[0], role, in[0]);
}

Status prepareRope(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                   const Attributes &attrs) {
  return prepareRopeLike("rope", "input", "result", in, out, attrs);
}
Status prepareRopeGrad(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                       const Attributes &attrs) {
  return prepareRopeLike("rope_grad", "grad_output", "grad_input", in, out, attrs);
}

// inv_freq as transformers computes it, with the llama3 rescaling when asked.
std::vector<double> ropeInverseFrequencies(const Attributes &attrs, int64_t headDim) {
  double theta = attrs.getFloat("theta");
  std::vector<double> invFreq(size_t(headDim / 2));
  for (int64_t j = 0; j < headDim / 2; ++j)
    invFreq[j] = 1.0 / std::pow(theta, double(2 * j) / double(headDim));
  if (attrs.getString("rope_type", "default") != "llama3")
    return invFreq;
  double factor = attrs.getFloat("factor"), low = attrs.getFloat("low_freq_factor");
  double high = attrs.getFloat("high_freq_factor");
  double original = double(attrs.getInt("original_max_position_embeddings"));
  double lowFreqWavelen = original / low, highFreqWavelen = original / high;
  for (double &f : invFreq) {
    double wavelen = 2.0 * M_PI / f;
    if (wavelen < highFreqWavelen)
      continue; // high frequency: kept
    if (wavelen > lowFreqWavelen) {
      f = f / factor; // low frequency: scaled
      continue;
    }
    double smooth = (original / wavelen - low) / (high - low);
    f = (1.0 - smooth) * f / factor + smooth * f;
  }
  return invFreq;
}

// Rotates every (x[j], x[j + half]) pair by direction * position * inv_freq[j].
Status runRopeRotate(const KernelContext &context, const TensorView &x, const TensorView &y,
                     const Attributes &attrs, double direction) {
  int64_t batch = x.shape[0], seq = x.shape[1], heads = x.shape[2], dim = x.shape[3];
  int64_t half = dim / 2, offset = attrs.getInt("position_offset", 0);
  std::vector<double> invFreq = ropeInverseFrequencies(attrs, dim);
  SequencePart part = sequencePart(attrs, seq);
  static thread_local std::vector<float> tableBuffer;
  float *cosTable = scratch(tableBuffer, size_t(2 * seq * half));
  float *sinTable = cosTable + seq * half;
  int tableThreads = threadsFor(context, 64 * seq * half);
#pragma omp parallel for num_threads(tableThreads) if (tableThreads > 1) schedule(static)
  for (int64_t s = 0; s < seq; ++s)
    for (int64_t j = 0; j < half; ++j) {
      double angle = double(offset + part.position(s)) * invFreq[j];
      cosTable[s * half + j] = float(std::cos(angle));
      sinTable[s * half + j] = float(direction * std::sin(angle));
    }
  int64_t rows = batch * seq;
  int threads = threadsFor(context, 4 * rows * heads * dim);
  dispatchFloat(x.dtype, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    const T *in = x.as<T>();
    T *out = y.as<T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const float *c = cosTable + (row % seq) * half, *sn = sinTable + (row % seq) * half;
      for (int64_t h = 0; h < heads; ++h) {
        int64_t base = (row * heads + h) * dim;
        for (int64_t j = 0; j < half; ++j) {
          float x1 = S::load(in[base + j]), x2 = S::load(in[base + j + half]);
          out[base + j] = S::store(x1 * c[j] - x2 * sn[j]);
          out[base + j + half] = S::store(x2 * c[j] + x1 * sn[j]);
        }
      }
    }
  });
  return Status::ok();
}

Status runRope(const KernelContext &context, const std::vector<TensorView> &in,
               const std::vector<TensorView> &out, const Attributes &attrs) {
  return runRopeRotate(context, in[0], out[0], attrs, +1.0);
}
// The adjoint of a rotation is the rotation by the opposite angle.
Status runRopeGrad(const KernelContext &context, const std::vector<TensorView> &in,
                   const std::vector<TensorView> &out, const Attributes &attrs) {
  return runRopeRotate(context, in[0], out[0], attrs, -1.0);
}

// ---- attention, attention_grad ------------------------------------------------------

Status checkAttentionOperands(const Checker &check, const std::vector<TensorView> &in,
                              const Attributes &attrs) {
  APC_RETURN_IF_ERROR(check.tensor("query", in[0], Kind::Float, 4));
  APC_RETURN_IF_ERROR(check.tensor("key", in[1], Kind::Float, 4));
  APC_RETURN_IF_ERROR(check.tensor("value", in[2], Kind::Float, 4));
  APC_RETURN_IF_ERROR(check.sameDtype("query", in[0], "key", in[1]));
  APC_RETURN_IF_ERROR(check.sameDtype("query", in[0], "value", in[2]));
  const TensorView &q = in[0], &k = in[1], &v = in[2];
  if (k.shape != v.shape)
    return check.error("key " + describe(k) + " and value " + describe(v) +
                       " must have the same shape");
  APC_RETURN_IF_ERROR(checkSequencePart(check, attrs, q.shape[1]));
  int64_t parts = attrs.getInt("seq_shard_parts", 1);
  if (q.shape[0] != k.shape[0] || q.shape[1] * parts != k.shape[1] || q.shape[3] != k.shape[3])
    return check.error("query " + describe(q) + " and key " + describe(k) +
                       " must agree on batch, seq and head_dim" +
                       (parts > 1 ? " (the key holding seq_shard_parts times the query's rows)"
                                  : ""));
  if (q.shape[3] == 0)
    return check.error("head_dim of query " + describe(q) + " must be positive");
  if (k.shape[2] == 0 || q.shape[2] % k.shape[2] != 0)
    return check.error("query heads (" + std::to_string(q.shape[2]) +
                       ") must be a multiple of key/value heads (" +
                       std::to_string(k.shape[2]) + ")");
  APC_RETURN_IF_ERROR(check.floatAttr(attrs, "scale", false));
  if (attrs.has("scale") && !(attrs.getFloat("scale") > 0.0))
    return check.error("scale must be positive, got " + std::to_string(attrs.getFloat("scale")));
  return check.boolAttr(attrs, "causal");
}

Status prepareAttention(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &attrs) {
  Checker check("attention");
  APC_RETURN_IF_ERROR(check.arity(in, out, 3, 3, 1));
  APC_RETURN_IF_ERROR(checkAttentionOperands(check, in, attrs));
  return check.sameType("result", out[0], "query", in[0]);
}

Status prepareAttentionGrad(const std::vector<TensorView> &in,
                            const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("attention_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 4, 4, 3));
  APC_RETURN_IF_ERROR(checkAttentionOperands(check, in, attrs));
  APC_RETURN_IF_ERROR(check.sameType("grad_output", in[3], "query", in[0]));
  APC_RETURN_IF_ERROR(check.sameType("grad_query", out[0], "query", in[0]));
  APC_RETURN_IF_ERROR(check.sameType("grad_key", out[1], "key", in[1]));
  return check.sameType("grad_value", out[2], "value", in[2]);
}

// seq: the keys' rows; querySeq: the queries' (fewer under context parallelism).
struct AttentionShape {
  int64_t batch, seq, querySeq, heads, dim, kvHeads, group;
  float scale;
  bool causal;
  SequencePart part;
  AttentionShape(const TensorView &q, const TensorView &k, const Attributes &attrs)
      : batch(q.shape[0]), seq(k.shape[1]), querySeq(q.shape[1]), heads(q.shape[2]),
        dim(q.shape[3]), kvHeads(k.shape[2]), group(q.shape[2] / k.shape[2]),
        scale(float(attrs.getFloat("scale", 1.0 / std::sqrt(double(q.shape[3]))))),
        causal(attrs.getBool("causal", true)), part(sequencePart(attrs, q.shape[1])) {}
  // Keys 0..visible(i)-1 are visible to query row i.
  int64_t visible(int64_t i) const { return causal ? part.position(i) + 1 : seq; }
  int64_t queryOffset(int64_t b, int64_t i, int64_t h) const {
    return ((b * querySeq + i) * heads + h) * dim;
  }
};

// [batch, seq, kv_heads, dim] in storage S -> f32 [batch, kv_heads, seq, dim], or
// [batch, kv_heads, dim, seq] when `transposed`.
template <typename S>
void toHeadMajor(const KernelContext &context, const AttentionShape &a,
                 const typename S::T *src, float *dst, bool transposed) {
  int threads = threadsFor(context, a.batch * a.seq * a.kvHeads * a.dim);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t bh = 0; bh < a.batch * a.kvHeads; ++bh) {
    int64_t b = bh / a.kvHeads, h = bh % a.kvHeads;
    float *head = dst + bh * a.seq * a.dim;
    for (int64_t s = 0; s < a.seq; ++s) {
      const typename S::T *from = src + ((b * a.seq + s) * a.kvHeads + h) * a.dim;
      if (transposed) {
        for (int64_t d = 0; d < a.dim; ++d)
          head[d * a.seq + s] = S::load(from[d]);
      } else {
        for (int64_t d = 0; d < a.dim; ++d)
          head[s * a.dim + d] = S::load(from[d]);
      }
    }
  }
}

// p[j] = sum_d x[d] * yT[d][j] for j < n: dot products of x with n rows of a matrix
// stored transposed ([dim, seq]), as axpys over j that vectorise without horizontal sums.
inline void dotsTransposed(const float *x, const float *yT, int64_t dim, int64_t seq,
                           int64_t n, float *p) {
  std::fill(p, p + n, 0.0f);
  for (int64_t d = 0; d < dim; ++d) {
    float xd = x[d];
    const float *row = yT + d * seq;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j)
      p[j] += xd * row[j];
  }
}

// p[0..n) = softmax(p[0..n)) in place, the normalising sum in double.
inline void softmaxInPlace(float *p, int64_t n) {
  float maxScore = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maxScore)
  for (int64_t j = 0; j < n; ++j)
    maxScore = std::max(maxScore, p[j]);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j)
    p[j] = expF32(p[j] - maxScore);
  float inv = float(1.0 / sumAsDouble(p, n));
#pragma omp simd
  for (int64_t j = 0; j < n; ++j)
    p[j] *= inv;
}

constexpr int64_t kQueryBlock = 16;

Status runAttention(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  AttentionShape a(in[0], in[1], attrs);
  size_t kvSize = size_t(a.batch * a.kvHeads * a.seq * a.dim);
  static thread_local std::vector<float> kvBuffer;
  float *kT = scratch(kvBuffer, 2 * kvSize), *vf = kT + kvSize;
  int64_t blocks = (a.querySeq + kQueryBlock - 1) / kQueryBlock;
  int64_t tasks = a.batch * a.heads * blocks;
  int threads = threadsFor(context, a.batch * a.heads * a.querySeq * a.seq * a.dim);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    toHeadMajor<S>(context, a, in[1].as<T>(), kT, true);
    toHeadMajor<S>(context, a, in[2].as<T>(), vf, false);
    const T *q = in[0].as<T>();
    T *y = out[0].as<T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      int64_t b = task / (a.heads * blocks), h = (task / blocks) % a.heads;
      int64_t block = task % blocks, kvh = h / a.group;
      const float *kHeadT = kT + (b * a.kvHeads + kvh) * a.seq * a.dim;
      const float *vHead = vf + (b * a.kvHeads + kvh) * a.seq * a.dim;
      static thread_local std::vector<float> rowBuffer;
      float *p = scratch(rowBuffer, size_t(a.seq + 2 * a.dim));
      float *qRow = p + a.seq, *acc = qRow + a.dim;
      int64_t end = std::min(a.querySeq, (block + 1) * kQueryBlock);
      for (int64_t i = block * kQueryBlock; i < end; ++i) {
        int64_t offset = a.queryOffset(b, i, h);
        for (int64_t d = 0; d < a.dim; ++d)
          qRow[d] = a.scale * S::load(q[offset + d]);
        int64_t n = a.visible(i); // keys 0..n-1 are visible
        dotsTransposed(qRow, kHeadT, a.dim, a.seq, n, p);
        softmaxInPlace(p, n);
        std::fill(acc, acc + a.dim, 0.0f);
        for (int64_t j = 0; j < n; ++j) {
          const float *vj = vHead + j * a.dim;
          float pj = p[j];
#pragma omp simd
          for (int64_t d = 0; d < a.dim; ++d)
            acc[d] += pj * vj[d];
        }
        for (int64_t d = 0; d < a.dim; ++d)
          y[offset + d] = S::store(acc[d]);
      }
    }
  });
  return Status::ok();
}

Status runAttentionGrad(const KernelContext &context, const std::vector<TensorView> &in,
                        const std::vector<TensorView> &out, const Attributes &attrs) {
  AttentionShape a(in[0], in[1], attrs);
  size_t kvSize = size_t(a.batch * a.kvHeads * a.seq * a.dim);
  size_t partialSize = size_t(a.batch * a.heads * a.seq * a.dim);
  static thread_local std::vector<float> buffer;
  float *kT = scratch(buffer, 3 * kvSize + 2 * partialSize);
  float *kf = kT + kvSize, *vT = kf + kvSize, *dkPartial = vT + kvSize,
        *dvPartial = dkPartial + partialSize;
  int64_t tasks = a.batch * a.heads;
  int threads = threadsFor(context, a.batch * a.heads * a.querySeq * a.seq * a.dim);
  dispatchFloat(in[0].dtype, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    toHeadMajor<S>(context, a, in[1].as<T>(), kT, true);
    toHeadMajor<S>(context, a, in[1].as<T>(), kf, false);
    toHeadMajor<S>(context, a, in[2].as<T>(), vT, true);
    const T *q = in[0].as<T>(), *dO = in[3].as<T>();
    T *dq = out[0].as<T>(), *dk = out[1].as<T>(), *dv = out[2].as<T>();
    // Per (batch, query head): dQ rows, and this head's share of dK and dV.
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      int64_t b = task / a.heads, h = task % a.heads, kvh = h / a.group;
      int64_t headOffset = (b * a.kvHeads + kvh) * a.seq * a.dim;
      const float *kHeadT = kT + headOffset, *kHead = kf + headOffset, *vHeadT = vT + headOffset;
      float *dkHead = dkPartial + task * a.seq * a.dim;
      float *dvHead = dvPartial + task * a.seq * a.dim;
      std::fill(dkHead, dkHead + a.seq * a.dim, 0.0f);
      std::fill(dvHead, dvHead + a.seq * a.dim, 0.0f);
      static thread_local std::vector<float> rowBuffer;
      float *p = scratch(rowBuffer, size_t(2 * a.seq + 4 * a.dim));
      float *dp = p + a.seq, *qRow = dp + a.seq, *qScaled = qRow + a.dim,
            *gRow = qScaled + a.dim, *dqRow = gRow + a.dim;
      for (int64_t i = 0; i < a.querySeq; ++i) {
        int64_t offset = a.queryOffset(b, i, h);
        for (int64_t d = 0; d < a.dim; ++d) {
          qRow[d] = S::load(q[offset + d]);
          qScaled[d] = a.scale * qRow[d];
          gRow[d] = S::load(dO[offset + d]);
        }
        int64_t n = a.visible(i);
        // P: the forward probabilities, recomputed; dP = dO V^T; rowsum(dP P).
        dotsTransposed(qScaled, kHeadT, a.dim, a.seq, n, p);
        softmaxInPlace(p, n);
        dotsTransposed(gRow, vHeadT, a.dim, a.seq, n, dp);
        double rowSum = dotAsDouble(dp, p, n);
        // dS = P (dP - rowsum); dQ = scale dS K; dK += scale dS^T Q; dV += P^T dO.
        std::fill(dqRow, dqRow + a.dim, 0.0f);
        float r = float(rowSum);
        for (int64_t j = 0; j < n; ++j) {
          float ds = p[j] * (dp[j] - r), sds = a.scale * ds, pj = p[j];
          const float *kj = kHead + j * a.dim;
          float *dkj = dkHead + j * a.dim, *dvj = dvHead + j * a.dim;
#pragma omp simd
          for (int64_t d = 0; d < a.dim; ++d) {
            dqRow[d] += ds * kj[d];
            dkj[d] += sds * qRow[d];
            dvj[d] += pj * gRow[d];
          }
        }
        for (int64_t d = 0; d < a.dim; ++d)
          dq[offset + d] = S::store(a.scale * dqRow[d]);
      }
    }
    // dK, dV: the partials of the query heads of each group, summed in head order.
    int64_t rows = a.batch * a.seq * a.kvHeads;
    int reduceThreads = threadsFor(context, rows * a.group * a.dim);
#pragma omp parallel for num_threads(reduceThreads) if (reduceThreads > 1) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      int64_t kvh = row % a.kvHeads, s = (row / a.kvHeads) % a.seq;
      int64_t b = row / (a.kvHeads * a.seq);
      for (int64_t d = 0; d < a.dim; ++d) {
        float sumK = 0, sumV = 0;
        for (int64_t g = 0; g < a.group; ++g) {
          int64_t partial = ((b * a.heads + kvh * a.group + g) * a.seq + s) * a.dim + d;
          sumK += dkPartial[partial];
          sumV += dvPartial[partial];
        }
        dk[row * a.dim + d] = S::store(sumK);
        dv[row * a.dim + d] = S::store(sumV);
      }
    }
  });
  return Status::ok();
}

} // namespace

std::vector<KernelInfo> attentionKernels() {
  return {
      {"rope", runRope, prepareRope},
      {"rope_grad", runRopeGrad, prepareRopeGrad},
      {"attention", runAttention, prepareAttention},
      {"attention_grad", runAttentionGrad, prepareAttentionGrad},
  };
}

} // namespace apc::kernels::cpu
