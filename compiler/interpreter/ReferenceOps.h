// Helpers shared by the reference semantics of the forward ops (ReferenceOps.cpp) and
// of the gradient and optimizer ops (ReferenceGradOps.cpp). Internal to the interpreter.
//
// Every op function computes in f64 and returns its results unrounded; `evaluate`
// rounds each result to its element type afterwards (when Options::roundFloats asks
// for it), so the functions never round at the end themselves.
#pragma once

#include "compiler/interpreter/Interpreter.h"

#include "dialects/ap/IR/ApOps.h"

#include <string>
#include <vector>

namespace apc::interp::detail {

using Results = Result<std::vector<RefTensor>>;

// An all-zero tensor of the type of result `index` of `op`.
RefTensor resultLike(mlir::Operation *op, unsigned index = 0);

// Row-major element strides of `shape`.
std::vector<int64_t> strides(const std::vector<int64_t> &shape);
// Advances a row-major multi-index over `shape` (the odometer of the layout loops).
inline void nextIndex(std::vector<int64_t> &index, const std::vector<int64_t> &shape) {
  for (int64_t d = int64_t(index.size()) - 1; d >= 0; --d) {
    if (++index[d] < shape[d])
      return;
    index[d] = 0;
  }
}

// Product of all dims but the last (the number of rows of a [..., n] tensor).
int64_t rows(const RefTensor &t);

// "[i, j, ...]": the multi-index of flat position `flat` in `shape`.
std::string positionString(const std::vector<int64_t> &shape, int64_t flat);

// The error of an id outside [0, vocab) at flat position `flat` of `ids`.
Status tokenIdOutOfRange(const RefTensor &ids, int64_t flat, int64_t vocab);
// The error of a label outside [0, vocab) (and not ignore_index) at `flat` of `labels`.
Status labelOutOfRange(const RefTensor &labels, int64_t flat, int64_t vocab);

// The rotary attributes shared by rope and rope_grad.
struct RopeConfig {
  double theta = 10000.0;
  bool llama3 = false;
  double factor = 1.0, lowFreqFactor = 1.0, highFreqFactor = 1.0;
  double originalMaxPositionEmbeddings = 0.0;
  int64_t positionOffset = 0;
};

template <typename OpT> RopeConfig ropeConfigOf(OpT op) {
  RopeConfig c;
  c.theta = op.getTheta().convertToDouble();
  c.llama3 = op.getRopeType() == "llama3";
  if (c.llama3) { // the verifier guarantees all four attributes
    c.factor = op.getFactor()->convertToDouble();
    c.lowFreqFactor = op.getLowFreqFactor()->convertToDouble();
    c.highFreqFactor = op.getHighFreqFactor()->convertToDouble();
    // I64 attributes are read signed (the plain getters return unsigned).
    c.originalMaxPositionEmbeddings =
        double(op.getOriginalMaxPositionEmbeddingsAttr().getInt());
  }
  c.positionOffset = op.getPositionOffsetAttr().getInt();
  return c;
}

// Rotates each (x[j], x[j + d]) pair of a [batch, seq, heads, head_dim] tensor by the
// angle `direction * position * inv_freq[j]`: direction +1 is rope, -1 its adjoint.
RefTensor ropeRotate(const RopeConfig &config, const RefTensor &x, RefTensor out,
                     double direction);

// Gradient and optimizer ops (ReferenceGradOps.cpp). Operands are in op order.
RefTensor fill(ap::FillOp op, RefTensor out);
RefTensor broadcast(ap::BroadcastOp op, const RefTensor &x, RefTensor out);
Results embeddingGrad(ap::EmbeddingGradOp op, const RefTensor &ids,
                      const RefTensor &gradOutput, RefTensor out);
Results rmsNormGrad(ap::RmsNormGradOp op, const RefTensor &x, const RefTensor &w,
                    const RefTensor &gradOutput);
RefTensor ropeGrad(ap::RopeGradOp op, const RefTensor &gradOutput, RefTensor out);
Results attentionGrad(ap::AttentionGradOp op, const RefTensor &q,
                      const RefTensor &k, const RefTensor &v, const RefTensor &gradOutput);
RefTensor siluGrad(const RefTensor &x, const RefTensor &gradOutput, RefTensor out);
Results crossEntropyGrad(ap::CrossEntropyGradOp op, const RefTensor &logits,
                         const RefTensor &labels, const RefTensor &gradLoss,
                         const RefTensor *keptCount, RefTensor out);
RefTensor vocabParallelLossGrad(ap::VocabParallelLossGradOp op, const RefTensor &logits,
                                const RefTensor &labels, const RefTensor &rowMax,
                                const RefTensor &sumExp, const RefTensor &gradLoss,
                                const RefTensor *keptCount, RefTensor out);
RefTensor gradNorm(ap::GradNormOp op, const std::vector<const RefTensor *> &grads,
                   RefTensor out);
Results adamw(ap::AdamWOp op, const std::vector<const RefTensor *> &operands);

} // namespace apc::interp::detail
