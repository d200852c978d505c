// Reference semantics of the constant, gradient and optimizer `ap` ops, written as the
// plain loops of their definitions (ApOps.td).
//
// Same conventions as ReferenceOps.cpp: all arithmetic (accumulation included) in
// double, results returned unrounded; `evaluate` rounds each to its element type.
#include "compiler/interpreter/ReferenceOps.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;

namespace apc::interp::detail {

RefTensor fill(ap::FillOp op, RefTensor out) {
  std::fill(out.data.begin(), out.data.end(), op.getValue().convertToDouble());
  return out;
}

RefTensor broadcast(ap::BroadcastOp op, const RefTensor &x, RefTensor out) {
  // Input strides over the result's dims (0 along the broadcast dims).
  std::vector<bool> added(out.shape.size(), false);
  for (int64_t d : op.getDims())
    added[d] = true;
  std::vector<int64_t> keptShape;
  for (size_t d = 0; d < out.shape.size(); ++d)
    keptShape.push_back(added[d] ? 1 : out.shape[d]);
  std::vector<int64_t> keptStrides = strides(keptShape);
  std::vector<int64_t> index(out.shape.size(), 0);
  for (int64_t flat = 0; flat < out.numElements(); ++flat) {
    int64_t source = 0;
    for (size_t d = 0; d < index.size(); ++d)
      source += added[d] ? 0 : index[d] * keptStrides[d];
    out.data[flat] = x.data[source];
    nextIndex(index, out.shape);
  }
  return out;
}

Results embeddingGrad(ap::EmbeddingGradOp op, const RefTensor &ids,
                      const RefTensor &gradOutput, RefTensor out) {
  int64_t vocab = out.shape[0], hidden = out.shape[1];
  // A vocabulary block (vocab_shard_axis), evaluated as the device at coordinate 0: the
  // block starts at id 0 and other ids contribute nothing.
  bool block = bool(op.getVocabShardAxis());
  for (int64_t p = 0; p < ids.numElements(); ++p) {
    double id = ids.data[p];
    if (id < 0 || id >= double(vocab)) {
      if (block)
        continue;
      return tokenIdOutOfRange(ids, p, vocab);
    }
    for (int64_t h = 0; h < hidden; ++h)
      out.data[int64_t(id) * hidden + h] += gradOutput.data[p * hidden + h];
  }
  return std::vector<RefTensor>{std::move(out)};
}

Results rmsNormGrad(ap::RmsNormGradOp op, const RefTensor &x, const RefTensor &w,
                    const RefTensor &gradOutput) {
  RefTensor gradInput = resultLike(op, 0), gradWeight = resultLike(op, 1);
  int64_t n = rows(x), h = x.shape.back();
  double eps = op.getEpsilon().convertToDouble();
  for (int64_t r = 0; r < n; ++r) {
    const double *xr = x.data.data() + r * h, *dy = gradOutput.data.data() + r * h;
    double sumSquares = 0;
    for (int64_t i = 0; i < h; ++i)
      sumSquares += xr[i] * xr[i];
    double inv = 1.0 / std::sqrt(sumSquares / double(h) + eps); // r
    double meanGN = 0;                                           // mean(g n), g = dy w
    for (int64_t i = 0; i < h; ++i)
      meanGN += dy[i] * w.data[i] * xr[i] * inv / double(h);
    for (int64_t i = 0; i < h; ++i) {
      double normalised = xr[i] * inv;
      gradInput.data[r * h + i] = inv * (dy[i] * w.data[i] - normalised * meanGN);
      gradWeight.data[i] += dy[i] * normalised;
    }
  }
  return std::vector<RefTensor>{std::move(gradInput), std::move(gradWeight)};
}

RefTensor ropeGrad(ap::RopeGradOp op, const RefTensor &gradOutput, RefTensor out) {
  // The adjoint of a rotation is the rotation by the opposite angle.
  return ropeRotate(ropeConfigOf(op), gradOutput, std::move(out), -1.0);
}

Results attentionGrad(ap::AttentionGradOp op, const RefTensor &q, const RefTensor &k,
                      const RefTensor &v, const RefTensor &gradOutput) {
  RefTensor dq = resultLike(op, 0), dk = resultLike(op, 1), dv = resultLike(op, 2);
  int64_t batch = q.shape[0], seq = q.shape[1], heads = q.shape[2], dim = q.shape[3];
  int64_t kvHeads = k.shape[2], group = heads / kvHeads;
  double scale = op.getScaleOrDefault();
  bool causal = op.getCausal();
  // Flat index of [b, s, h, d] in a tensor with `n` heads.
  auto at = [&](int64_t n, int64_t b, int64_t s, int64_t h, int64_t d) {
    return ((b * seq + s) * n + h) * dim + d;
  };
  std::vector<double> p(size_t(seq), 0.0), dp(size_t(seq), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      int64_t kvh = h / group; // gradients of kv head kvh sum over its query heads
      for (int64_t i = 0; i < seq; ++i) {
        int64_t last = causal ? i : seq - 1;
        // P: the probabilities of the forward pass, recomputed.
        double maxScore = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < dim; ++d)
            dot += q.data[at(heads, b, i, h, d)] * k.data[at(kvHeads, b, j, kvh, d)];
          p[j] = dot * scale;
          maxScore = std::max(maxScore, p[j]);
        }
        double total = 0;
        for (int64_t j = 0; j <= last; ++j)
          total += (p[j] = std::exp(p[j] - maxScore));
        for (int64_t j = 0; j <= last; ++j)
          p[j] /= total;
        // dV += P^T dO; dP = dO V^T; rowsum(dP P).
        double rowSum = 0;
        for (int64_t j = 0; j <= last; ++j) {
          dp[j] = 0;
          for (int64_t d = 0; d < dim; ++d) {
            double dO = gradOutput.data[at(heads, b, i, h, d)];
            dv.data[at(kvHeads, b, j, kvh, d)] += p[j] * dO;
            dp[j] += dO * v.data[at(kvHeads, b, j, kvh, d)];
          }
          rowSum += dp[j] * p[j];
        }
        // dS = P (dP - rowsum); dQ = scale dS K; dK += scale dS^T Q.
        for (int64_t j = 0; j <= last; ++j) {
          double ds = p[j] * (dp[j] - rowSum);
          for (int64_t d = 0; d < dim; ++d) {
            dq.data[at(heads, b, i, h, d)] += scale * ds * k.data[at(kvHeads, b, j, kvh, d)];
            dk.data[at(kvHeads, b, j, kvh, d)] += scale * ds * q.data[at(heads, b, i, h, d)];
          }
        }
      }
    }
  return std::vector<RefTensor>{std::move(dq), std::move(dk), std::move(dv)};
}

RefTensor siluGrad(const RefTensor &x, const RefTensor &gradOutput, RefTensor out) {
  for (int64_t i = 0; i < out.numElements(); ++i) {
    double s = 1.0 / (1.0 + std::exp(-x.data[i]));
    out.data[i] = gradOutput.data[i] * s * (1.0 + x.data[i] * (1.0 - s));
  }
  return out;
}

Results crossEntropyGrad(ap::CrossEntropyGradOp op, const RefTensor &logits,
                         const RefTensor &labels, const RefTensor &gradLoss,
                         const RefTensor *keptCount, RefTensor out) {
  int64_t n = rows(logits), vocab = logits.shape.back();
  double ignore = double(op.getIgnoreIndexAttr().getInt());
  int64_t kept = 0;
  for (int64_t r = 0; r < n; ++r) {
    double label = labels.data[r];
    if (label == ignore)
      continue;
    if (label < 0 || label >= double(vocab))
      return labelOutOfRange(labels, r, vocab);
    ++kept;
  }
  // Mean: each kept position weighs 1/kept. With none kept every row is ignored and the
  // gradient is all zeros (never 0/0).
  double weight = gradLoss.data[0];
  double count = keptCount ? keptCount->data[0] : double(kept);
  if (op.getReduction() == "mean" && count > 0)
    weight /= count;
  for (int64_t r = 0; r < n; ++r) {
    if (labels.data[r] == ignore)
      continue; // stays zero
    const double *row = logits.data.data() + r * vocab;
    double maxLogit = *std::max_element(row, row + vocab), sum = 0;
    for (int64_t c = 0; c < vocab; ++c)
      sum += std::exp(row[c] - maxLogit);
    for (int64_t c = 0; c < vocab; ++c) {
      double softmax = std::exp(row[c] - maxLogit) / sum;
      double onehot = c == int64_t(labels.data[r]) ? 1.0 : 0.0;
      out.data[r * vocab + c] = weight * (softmax - onehot);
    }
  }
  return std::vector<RefTensor>{std::move(out)};
}

RefTensor vocabParallelLossGrad(ap::VocabParallelLossGradOp op, const RefTensor &logits,
                                const RefTensor &labels, const RefTensor &rowMax,
                                const RefTensor &sumExp, const RefTensor &gradLoss,
                                const RefTensor *keptCount, RefTensor out) {
  // The block starts at vocab_start = 0 (see vocabParallelStats in ReferenceOps.cpp).
  int64_t n = rows(logits), vocab = logits.shape.back();
  double ignore = double(op.getIgnoreIndexAttr().getInt());
  int64_t kept = 0;
  for (int64_t r = 0; r < n; ++r)
    kept += labels.data[r] != ignore;
  // As cross_entropy_grad: each kept position weighs 1/count for "mean"; with a count
  // of 0 nothing is divided (every row is ignored and stays zero).
  double weight = gradLoss.data[0];
  double count = keptCount ? keptCount->data[0] : double(kept);
  if (op.getReduction() == "mean" && count > 0)
    weight /= count;
  for (int64_t r = 0; r < n; ++r) {
    double label = labels.data[r];
    if (label == ignore)
      continue; // stays zero
    const double *row = logits.data.data() + r * vocab;
    for (int64_t c = 0; c < vocab; ++c) {
      double softmax = std::exp(row[c] - rowMax.data[r]) / sumExp.data[r];
      double onehot = double(c) == label ? 1.0 : 0.0;
      out.data[r * vocab + c] = weight * (softmax - onehot);
    }
  }
  return out;
}

RefTensor gradNorm(ap::GradNormOp op, const std::vector<const RefTensor *> &grads,
                   RefTensor out) {
  double sumSquares = 0;
  for (const RefTensor *g : grads)
    for (double x : g->data)
      sumSquares += x * x;
  out.data[0] = op.getSquared() ? sumSquares : std::sqrt(sumSquares);
  return out;
}

Results adamw(ap::AdamWOp op, const std::vector<const RefTensor *> &in) {
  const RefTensor &param = *in[0], &grad = *in[1], &expAvg = *in[2], &expAvgSq = *in[3];
  double step = in[4]->data[0], lr = in[5]->data[0];
  if (step < 1)
    return Results::error("step must be at least 1 (the 1-based count of updates), got " +
                          std::to_string(int64_t(step)));
  double beta1 = op.getBeta1().convertToDouble(), beta2 = op.getBeta2().convertToDouble();
  double eps = op.getEpsilon().convertToDouble();
  double weightDecay = op.getWeightDecay().convertToDouble();
  // torch.nn.utils.clip_grad_norm_: grads times min(1, max_norm / (total_norm + 1e-6)).
  double clip = 1.0;
  if (auto maxGradNorm = op.getMaxGradNorm()) {
    double norm = in[6]->data[0]; // the verifier guarantees the grad_norm operand
    clip = std::min(1.0, maxGradNorm->convertToDouble() / (norm + 1e-6));
  }
  double biasCorrection1 = 1.0 - std::pow(beta1, step);
  double biasCorrection2 = 1.0 - std::pow(beta2, step);
  double stepSize = lr / biasCorrection1;
  double biasCorrection2Sqrt = std::sqrt(biasCorrection2);
  RefTensor newParam = resultLike(op, 0), newExpAvg = resultLike(op, 1),
            newExpAvgSq = resultLike(op, 2);
  for (int64_t i = 0; i < param.numElements(); ++i) {
    double g = grad.data[i] * clip;
    double p = param.data[i] * (1.0 - lr * weightDecay); // decoupled weight decay first
    double m = beta1 * expAvg.data[i] + (1.0 - beta1) * g;
    double v = beta2 * expAvgSq.data[i] + (1.0 - beta2) * g * g;
    double denominator = std::sqrt(v) / biasCorrection2Sqrt + eps;
    newParam.data[i] = p - stepSize * m / denominator;
    newExpAvg.data[i] = m;
    newExpAvgSq.data[i] = v;
  }
  return std::vector<RefTensor>{std::move(newParam), std::move(newExpAvg),
                                std::move(newExpAvgSq)};
}

} // namespace apc::interp::detail
