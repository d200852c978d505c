// Reference semantics of each `ap` op, written as the plain loops of its definition.
//
// Conventions: all arithmetic in double; each result is rounded to its element type
// once, at the end (in `evaluate`, unless Options::roundFloats is off), except where the
// op's definition itself rounds in between (rms_norm casts the normalised value to the
// input type before scaling, as transformers does). Layout is row-major; `strides`
// gives element strides. The gradient and optimizer ops are in ReferenceGradOps.cpp.
#include "compiler/interpreter/ReferenceOps.h"

#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace apc::interp {
namespace detail {
namespace {

ElementType elementTypeOf(Type type) {
  Type e = cast<RankedTensorType>(type).getElementType();
  if (e.isBF16()) return ElementType::BF16;
  if (e.isF16()) return ElementType::F16;
  if (e.isSignlessInteger(32)) return ElementType::I32;
  if (e.isSignlessInteger(64)) return ElementType::I64;
  return ElementType::F32;
}

} // namespace

RefTensor resultLike(Operation *op, unsigned index) {
  auto type = cast<RankedTensorType>(op->getResult(index).getType());
  RefTensor t;
  t.shape.assign(type.getShape().begin(), type.getShape().end());
  t.type = elementTypeOf(type);
  t.data.assign(size_t(t.numElements()), 0.0);
  return t;
}

std::vector<int64_t> strides(const std::vector<int64_t> &shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i)
    s[i] = s[i + 1] * shape[i + 1];
  return s;
}

int64_t rows(const RefTensor &t) {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < t.shape.size(); ++i)
    n *= t.shape[i];
  return n;
}

std::string positionString(const std::vector<int64_t> &shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    index[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  std::string s = "[";
  for (size_t i = 0; i < index.size(); ++i)
    s += (i ? ", " : "") + std::to_string(index[i]);
  return s + "]";
}

Status tokenIdOutOfRange(const RefTensor &ids, int64_t flat, int64_t vocab) {
  return Status::error("token id " + std::to_string(int64_t(ids.data[flat])) + " at ids" +
                       positionString(ids.shape, flat) + " is outside the vocabulary [0, " +
                       std::to_string(vocab) + ")");
}

Status labelOutOfRange(const RefTensor &labels, int64_t flat, int64_t vocab) {
  return Status::error("label " + std::to_string(int64_t(labels.data[flat])) + " at labels" +
                       positionString(labels.shape, flat) + " is outside [0, " +
                       std::to_string(vocab) + ") and is not the ignore index");
}

namespace {

Result<RefTensor> embedding(ap::EmbeddingOp op, const RefTensor &weight, const RefTensor &ids,
                            RefTensor out) {
  int64_t vocab = weight.shape[0], hidden = weight.shape[1];
  // A vocabulary block (vocab_shard_axis), evaluated as the device at coordinate 0: the
  // block starts at id 0 and other ids give zero rows (`out` starts all zeros).
  bool block = bool(op.getVocabShardAxis());
  for (int64_t i = 0; i < ids.numElements(); ++i) {
    double id = ids.data[i];
    if (id < 0 || id >= double(vocab)) {
      if (block)
        continue;
      return tokenIdOutOfRange(ids, i, vocab);
    }
    for (int64_t h = 0; h < hidden; ++h)
      out.data[i * hidden + h] = weight.data[int64_t(id) * hidden + h];
  }
  return out;
}

RefTensor linear(const RefTensor &x, const RefTensor &w, RefTensor out) {
  int64_t n = rows(x), in = w.shape[1], outFeatures = w.shape[0];
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < outFeatures; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < in; ++i)
        sum += x.data[r * in + i] * w.data[o * in + i];
      out.data[r * outFeatures + o] = sum;
    }
  return out;
}

RefTensor matmul(ap::MatmulOp op, const RefTensor &a, const RefTensor &b, RefTensor out) {
  size_t rank = a.shape.size();
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < rank; ++i)
    batch *= a.shape[i];
  bool ta = op.getTransposeLhs(), tb = op.getTransposeRhs();
  int64_t aRows = a.shape[rank - 2], aCols = a.shape[rank - 1];
  int64_t bRows = b.shape[rank - 2], bCols = b.shape[rank - 1];
  int64_t m = ta ? aCols : aRows, k = ta ? aRows : aCols, n = tb ? bRows : bCols;
  for (int64_t p = 0; p < batch; ++p) {
    const double *A = a.data.data() + p * aRows * aCols;
    const double *B = b.data.data() + p * bRows * bCols;
    double *C = out.data.data() + p * m * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t q = 0; q < k; ++q)
          sum += (ta ? A[q * aCols + i] : A[i * aCols + q]) *
                 (tb ? B[j * bCols + q] : B[q * bCols + j]);
        C[i * n + j] = sum;
      }
  }
  return out;
}

RefTensor rmsNorm(ap::RmsNormOp op, const RefTensor &x, const RefTensor &w, RefTensor out,
                  const Options &options) {
  int64_t n = rows(x), h = x.shape.back();
  double eps = op.getEpsilon().convertToDouble();
  for (int64_t r = 0; r < n; ++r) {
    double sumSquares = 0;
    for (int64_t i = 0; i < h; ++i)
      sumSquares += x.data[r * h + i] * x.data[r * h + i];
    double inv = 1.0 / std::sqrt(sumSquares / double(h) + eps);
    for (int64_t i = 0; i < h; ++i) { // normalised value cast to the input type first
      double normalised = x.data[r * h + i] * inv;
      if (options.roundFloats)
        normalised = roundTo(x.type, normalised);
      out.data[r * h + i] = w.data[i] * normalised;
    }
  }
  return out;
}

// inv_freq as transformers computes it, with the llama3 rescaling when asked.
std::vector<double> ropeInverseFrequencies(const RopeConfig &config, int64_t headDim) {
  std::vector<double> invFreq(size_t(headDim / 2));
  for (int64_t j = 0; j < headDim / 2; ++j)
    invFreq[j] = 1.0 / std::pow(config.theta, double(2 * j) / double(headDim));
  if (!config.llama3)
    return invFreq;
  double factor = config.factor, low = config.lowFreqFactor, high = config.highFreqFactor;
  double original = config.originalMaxPositionEmbeddings;
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

} // namespace

RefTensor ropeRotate(const RopeConfig &config, const RefTensor &x, RefTensor out,
                     double direction) {
  int64_t batch = x.shape[0], seq = x.shape[1], heads = x.shape[2], dim = x.shape[3];
  int64_t half = dim / 2, offset = config.positionOffset;
  std::vector<double> invFreq = ropeInverseFrequencies(config, dim);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t h = 0; h < heads; ++h) {
        int64_t base = ((b * seq + s) * heads + h) * dim;
        for (int64_t j = 0; j < half; ++j) {
          double angle = direction * double(offset + s) * invFreq[j];
          double c = std::cos(angle), sn = std::sin(angle);
          double x1 = x.data[base + j], x2 = x.data[base + j + half];
          out.data[base + j] = x1 * c - x2 * sn;
          out.data[base + j + half] = x2 * c + x1 * sn;
        }
      }
  return out;
}

namespace {

RefTensor attention(ap::AttentionOp op, const RefTensor &q, const RefTensor &k,
                    const RefTensor &v, RefTensor out) {
  int64_t batch = q.shape[0], seq = q.shape[1], heads = q.shape[2], dim = q.shape[3];
  int64_t kvHeads = k.shape[2], group = heads / kvHeads;
  double scale = op.getScaleOrDefault();
  bool causal = op.getCausal();
  auto at = [&](const RefTensor &t, int64_t b, int64_t s, int64_t h, int64_t d) {
    return t.data[((b * seq + s) * t.shape[2] + h) * dim + d];
  };
  std::vector<double> scores(static_cast<size_t>(seq), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      int64_t kvh = h / group;
      for (int64_t i = 0; i < seq; ++i) {
        int64_t last = causal ? i : seq - 1;
        double maxScore = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < dim; ++d)
            dot += at(q, b, i, h, d) * at(k, b, j, kvh, d);
          scores[j] = dot * scale;
          maxScore = std::max(maxScore, scores[j]);
        }
        double total = 0;
        for (int64_t j = 0; j <= last; ++j)
          total += (scores[j] = std::exp(scores[j] - maxScore));
        for (int64_t d = 0; d < dim; ++d) {
          double sum = 0;
          for (int64_t j = 0; j <= last; ++j)
            sum += scores[j] / total * at(v, b, j, kvh, d);
          out.data[((b * seq + i) * heads + h) * dim + d] = sum;
        }
      }
    }
  return out;
}

RefTensor transpose(ap::TransposeOp op, const RefTensor &x, RefTensor out) {
  ArrayRef<int64_t> perm = op.getPermutation();
  std::vector<int64_t> inStrides = strides(x.shape);
  std::vector<int64_t> index(out.shape.size(), 0);
  for (int64_t flat = 0; flat < out.numElements(); ++flat) {
    int64_t source = 0;
    for (size_t d = 0; d < index.size(); ++d)
      source += index[d] * inStrides[perm[d]];
    out.data[flat] = x.data[source];
    nextIndex(index, out.shape);
  }
  return out;
}

// The block [offset, offset + out.shape[dim]) of `dim`, every other dim whole.
RefTensor slice(ap::SliceOp op, const RefTensor &x, RefTensor out) {
  int64_t dim = op.getDimAttr().getInt(), offset = op.getOffsetAttr().getInt();
  std::vector<int64_t> inStrides = strides(x.shape);
  std::vector<int64_t> index(out.shape.size(), 0);
  for (int64_t flat = 0; flat < out.numElements(); ++flat) {
    int64_t source = 0;
    for (size_t d = 0; d < index.size(); ++d)
      source += (index[d] + (int64_t(d) == dim ? offset : 0)) * inStrides[d];
    out.data[flat] = x.data[source];
    nextIndex(index, out.shape);
  }
  return out;
}

RefTensor reduceSum(ap::ReduceSumOp op, const RefTensor &x, RefTensor out) {
  std::vector<bool> reduced(x.shape.size(), false);
  for (int64_t d : op.getDims())
    reduced[d] = true;
  // Output strides over the input's dims (0 for reduced ones).
  std::vector<int64_t> keptShape;
  for (size_t d = 0; d < x.shape.size(); ++d)
    keptShape.push_back(reduced[d] ? 1 : x.shape[d]);
  std::vector<int64_t> keptStrides = strides(keptShape);
  std::vector<int64_t> index(x.shape.size(), 0);
  for (int64_t flat = 0; flat < x.numElements(); ++flat) {
    int64_t target = 0;
    for (size_t d = 0; d < index.size(); ++d)
      target += reduced[d] ? 0 : index[d] * keptStrides[d];
    out.data[target] += x.data[flat];
    nextIndex(index, x.shape);
  }
  return out;
}

RefTensor shiftLabels(ap::ShiftLabelsOp op, const RefTensor &labels, RefTensor out) {
  int64_t n = rows(labels), s = labels.shape.back();
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t t = 0; t + 1 < s; ++t)
      out.data[r * s + t] = labels.data[r * s + t + 1];
    out.data[r * s + s - 1] = double(op.getIgnoreIndexAttr().getInt());
  }
  return out;
}

Result<RefTensor> crossEntropy(ap::CrossEntropyOp op, const RefTensor &logits,
                               const RefTensor &labels, const RefTensor *keptCount,
                               RefTensor out) {
  int64_t n = rows(logits), vocab = logits.shape.back();
  double ignore = double(op.getIgnoreIndexAttr().getInt()), total = 0;
  int64_t kept = 0;
  for (int64_t r = 0; r < n; ++r) {
    double label = labels.data[r];
    if (label == ignore)
      continue;
    if (label < 0 || label >= double(vocab))
      return labelOutOfRange(labels, r, vocab);
    const double *row = logits.data.data() + r * vocab;
    double maxLogit = *std::max_element(row, row + vocab), sum = 0;
    for (int64_t v = 0; v < vocab; ++v)
      sum += std::exp(row[v] - maxLogit);
    total += maxLogit + std::log(sum) - row[int64_t(label)];
    ++kept;
  }
  bool mean = op.getReduction() == "mean";
  double count = keptCount ? keptCount->data[0] : double(kept);
  out.data[0] = mean ? (count > 0 ? total / count : std::nan("")) : total;
  return out;
}

// ---- Vocabulary-parallel loss -------------------------------------------------------
// The block of logits starts at vocab_start = 0 (the interpreter evaluates partitioned
// ops as the device at coordinate 0 of vocab_shard_axis). Labels are not range-checked.

RefTensor vocabParallelMax(const RefTensor &logits, RefTensor out) {
  int64_t n = rows(logits), vocab = logits.shape.back();
  for (int64_t r = 0; r < n; ++r) {
    double maxLogit = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < vocab; ++v)
      maxLogit = std::max(maxLogit, logits.data[r * vocab + v]);
    out.data[r] = maxLogit;
  }
  return out;
}

Results vocabParallelStats(ap::VocabParallelStatsOp op, const RefTensor &logits,
                           const RefTensor &labels, const RefTensor &rowMax) {
  RefTensor sumExp = resultLike(op, 0), target = resultLike(op, 1);
  int64_t n = rows(logits), vocab = logits.shape.back();
  double ignore = double(op.getIgnoreIndexAttr().getInt());
  for (int64_t r = 0; r < n; ++r) {
    const double *row = logits.data.data() + r * vocab;
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v)
      sum += std::exp(row[v] - rowMax.data[r]);
    sumExp.data[r] = sum;
    double label = labels.data[r];
    if (label != ignore && label >= 0 && label < double(vocab))
      target.data[r] = row[int64_t(label)];
  }
  return std::vector<RefTensor>{std::move(sumExp), std::move(target)};
}

RefTensor vocabParallelLoss(ap::VocabParallelLossOp op, const RefTensor &rowMax,
                            const RefTensor &sumExp, const RefTensor &target,
                            const RefTensor &labels, const RefTensor *keptCount,
                            RefTensor out) {
  double ignore = double(op.getIgnoreIndexAttr().getInt()), total = 0;
  int64_t kept = 0;
  for (int64_t r = 0; r < labels.numElements(); ++r) {
    if (labels.data[r] == ignore)
      continue;
    total += std::log(sumExp.data[r]) + rowMax.data[r] - target.data[r];
    ++kept;
  }
  bool mean = op.getReduction() == "mean";
  double count = keptCount ? keptCount->data[0] : double(kept);
  out.data[0] = mean ? (count > 0 ? total / count : std::nan("")) : total;
  return out;
}

RefTensor elementwise(Operation *op, const std::vector<const RefTensor *> &in, RefTensor out,
                      double (*f)(double, double)) {
  for (int64_t i = 0; i < out.numElements(); ++i)
    out.data[i] = f(in[0]->data[i], in.size() > 1 ? in[1]->data[i] : 0.0);
  (void)op;
  return out;
}

} // namespace

// Results of the op functions, whatever they return, as the vector `evaluate` returns.
Results wrap(RefTensor t) { return std::vector<RefTensor>{std::move(t)}; }
Results wrap(Result<RefTensor> t) {
  if (!t)
    return t.status();
  return std::vector<RefTensor>{std::move(*t)};
}
Results wrap(Results r) { return r; }

} // namespace detail

Result<std::vector<RefTensor>> evaluate(Operation *op, const std::vector<const RefTensor *> &in,
                                        const Options &options) {
  using namespace detail;
  if (in.size() != op->getNumOperands())
    return Results::error("internal error: " + std::to_string(in.size()) +
                          " operand values for " + std::to_string(op->getNumOperands()) +
                          " operands");
  // A device's two chunks of the sequence (context parallelism) need the device's
  // coordinate, which one interpreter run does not have.
  if (op->hasAttr("seq_shard_parts"))
    return Results::error("no reference semantics for a device's part of the sequence "
                          "(seq_shard_parts, context parallelism): run the plan with aprun");
  auto out = [&](unsigned index = 0) { return resultLike(op, index); };
  Results results =
      llvm::TypeSwitch<Operation *, Results>(op)
          .Case([&](ap::EmbeddingOp o) { return wrap(embedding(o, *in[0], *in[1], out())); })
          .Case([&](ap::LinearOp) { return wrap(linear(*in[0], *in[1], out())); })
          .Case([&](ap::MatmulOp o) { return wrap(matmul(o, *in[0], *in[1], out())); })
          .Case([&](ap::RmsNormOp o) {
            return wrap(rmsNorm(o, *in[0], *in[1], out(), options));
          })
          .Case([&](ap::RopeOp o) {
            return wrap(ropeRotate(ropeConfigOf(o), *in[0], out(), +1.0));
          })
          .Case([&](ap::AttentionOp o) {
            return wrap(attention(o, *in[0], *in[1], *in[2], out()));
          })
          .Case([&](ap::SiluOp) {
            return wrap(elementwise(op, in, out(),
                                    [](double x, double) { return x / (1.0 + std::exp(-x)); }));
          })
          .Case([&](ap::SqrtOp) {
            return wrap(elementwise(op, in, out(), [](double x, double) { return std::sqrt(x); }));
          })
          .Case([&](ap::AddOp) {
            return wrap(elementwise(op, in, out(), [](double a, double b) { return a + b; }));
          })
          .Case([&](ap::MulOp) {
            return wrap(elementwise(op, in, out(), [](double a, double b) { return a * b; }));
          })
          .Case([&](ap::CastOp) {
            RefTensor t = out();
            t.data = in[0]->data;
            return wrap(std::move(t));
          })
          .Case([&](ap::ReshapeOp) {
            RefTensor t = out();
            t.data = in[0]->data;
            return wrap(std::move(t));
          })
          .Case([&](ap::TransposeOp o) { return wrap(transpose(o, *in[0], out())); })
          .Case([&](ap::SliceOp o) { return wrap(slice(o, *in[0], out())); })
          .Case([&](ap::ReduceSumOp o) { return wrap(reduceSum(o, *in[0], out())); })
          .Case([&](ap::ShiftLabelsOp o) { return wrap(shiftLabels(o, *in[0], out())); })
          .Case([&](ap::CountKeptOp o) {
            RefTensor t = out();
            double ignore = double(o.getIgnoreIndexAttr().getInt());
            for (double label : in[0]->data)
              t.data[0] += label != ignore ? 1.0 : 0.0;
            return wrap(std::move(t));
          })
          .Case([&](ap::CrossEntropyOp o) {
            return wrap(crossEntropy(o, *in[0], *in[1], in.size() > 2 ? in[2] : nullptr, out()));
          })
          .Case([&](ap::VocabParallelMaxOp) { return wrap(vocabParallelMax(*in[0], out())); })
          .Case([&](ap::VocabParallelStatsOp o) {
            return vocabParallelStats(o, *in[0], *in[1], *in[2]);
          })
          .Case([&](ap::VocabParallelLossOp o) {
            return wrap(vocabParallelLoss(o, *in[0], *in[1], *in[2], *in[3],
                                          in.size() > 4 ? in[4] : nullptr, out()));
          })
          // Gradient and optimizer ops (ReferenceGradOps.cpp).
          .Case([&](ap::FillOp o) { return wrap(fill(o, out())); })
          .Case([&](ap::BroadcastOp o) { return wrap(broadcast(o, *in[0], out())); })
          .Case([&](ap::EmbeddingGradOp o) { return embeddingGrad(o, *in[0], *in[1], out()); })
          .Case([&](ap::RmsNormGradOp o) { return rmsNormGrad(o, *in[0], *in[1], *in[2]); })
          .Case([&](ap::RopeGradOp o) { return wrap(ropeGrad(o, *in[0], out())); })
          .Case([&](ap::AttentionGradOp o) {
            return attentionGrad(o, *in[0], *in[1], *in[2], *in[3]);
          })
          .Case([&](ap::SiluGradOp) { return wrap(siluGrad(*in[0], *in[1], out())); })
          .Case([&](ap::CrossEntropyGradOp o) {
            return crossEntropyGrad(o, *in[0], *in[1], *in[2], in.size() > 3 ? in[3] : nullptr,
                                    out());
          })
          .Case([&](ap::VocabParallelLossGradOp o) {
            return wrap(vocabParallelLossGrad(o, *in[0], *in[1], *in[2], *in[3], *in[4],
                                              in.size() > 5 ? in[5] : nullptr, out()));
          })
          .Case([&](ap::GradNormOp o) { return wrap(gradNorm(o, in, out())); })
          .Case([&](ap::AdamWOp o) { return adamw(o, in); })
          .Default([&](Operation *) {
            return Results::error("no reference semantics for this op");
          });
  if (!results)
    return results;
  // Round each result to its element type, once (integers always: they must stay
  // integers; floats unless pure f64 evaluation was asked for).
  for (RefTensor &t : *results) {
    bool isFloat = t.type == ElementType::F32 || t.type == ElementType::BF16 ||
                   t.type == ElementType::F16;
    if (isFloat && !options.roundFloats)
      continue;
    for (double &x : t.data)
      x = roundTo(t.type, x);
  }
  return results;
}

} // namespace apc::interp
