// Verifiers of the `ap` ops.
//
// Every check names the offending value by its role (`weight`, `ids`, ...) and prints
// the types involved, so that a user reading `apc-opt` or `apc import` output can find
// the problem without knowing the op's internals. ODS declares operands as
// AnyRankedTensor on purpose: the checks here give better messages than generic
// type-constraint failures.
#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"

#include <cmath>

using namespace mlir;
using namespace apc::ap;

namespace {

enum class ElementKind { Float, Integer, Any };

bool isDataFloat(Type t) { return t.isF32() || t.isBF16() || t.isF16(); }
bool isIdInteger(Type t) { return t.isSignlessInteger(32) || t.isSignlessInteger(64); }

// Checks that `value` (called `role` in messages) is a static ranked tensor whose
// element type is of `kind`, and of rank `rank` when given (-1: any, -2: at least 1).
LogicalResult checkTensor(Operation *op, StringRef role, Value value,
                          ElementKind kind, int64_t rank = -1) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type)
    return op->emitOpError() << role << " must be a ranked tensor, got "
                             << value.getType();
  if (!type.hasStaticShape())
    return op->emitOpError() << role << " must have a static shape, got " << type;
  Type element = type.getElementType();
  bool elementOk = kind == ElementKind::Float     ? isDataFloat(element)
                   : kind == ElementKind::Integer ? isIdInteger(element)
                                                  : isDataFloat(element) || isIdInteger(element);
  if (!elementOk) {
    const char *expected = kind == ElementKind::Float     ? "f32, bf16 or f16"
                           : kind == ElementKind::Integer ? "i32 or i64"
                                                          : "f32, bf16, f16, i32 or i64";
    return op->emitOpError() << role << " must have element type " << expected
                             << ", got " << type;
  }
  if (rank == -2 && type.getRank() < 1)
    return op->emitOpError() << role << " must have rank at least 1, got " << type;
  if (rank >= 0 && type.getRank() != rank)
    return op->emitOpError() << role << " must have rank " << rank << ", got " << type;
  return success();
}

RankedTensorType tensorType(Value v) { return cast<RankedTensorType>(v.getType()); }

// Checks that `result` has exactly `shape` and `element`.
LogicalResult checkResult(Operation *op, Value result, ArrayRef<int64_t> shape,
                          Type element) {
  auto expected = RankedTensorType::get(shape, element);
  if (result.getType() != expected)
    return op->emitOpError() << "result must be " << expected << ", got "
                             << result.getType();
  return success();
}

LogicalResult checkSameElement(Operation *op, StringRef roleA, Value a, StringRef roleB,
                               Value b) {
  if (tensorType(a).getElementType() != tensorType(b).getElementType())
    return op->emitOpError() << roleA << " and " << roleB
                             << " must have the same element type, got "
                             << a.getType() << " and " << b.getType();
  return success();
}

// The optional global kept-token count of the loss ops: a scalar f32.
LogicalResult checkKeptCount(Operation *op, Value count) {
  if (count.getType() != RankedTensorType::get({}, Float32Type::get(op->getContext())))
    return op->emitOpError() << "kept_count must be tensor<f32>, got " << count.getType();
  return success();
}

// The optional mesh axis whose coordinate selects a vocabulary block: non-negative.
LogicalResult checkVocabShardAxis(Operation *op, IntegerAttr axis) {
  if (axis && axis.getInt() < 0)
    return op->emitOpError() << "vocab_shard_axis must be non-negative, got " << axis.getInt();
  return success();
}

LogicalResult checkReduction(Operation *op, StringRef reduction) {
  if (reduction != "mean" && reduction != "sum")
    return op->emitOpError() << "reduction must be \"mean\" or \"sum\", got \"" << reduction
                             << "\"";
  return success();
}

// A per-row statistic of the vocabulary-parallel loss ops (`role`, an operand or a
// result): an f32 tensor of exactly `rows` (the labels' shape).
LogicalResult checkRowTensor(Operation *op, StringRef role, Value value,
                             ArrayRef<int64_t> rows) {
  auto expected = RankedTensorType::get(rows, Float32Type::get(op->getContext()));
  if (value.getType() != expected)
    return op->emitOpError() << role << " must be " << expected
                             << " (f32, one value per row of the logits), got "
                             << value.getType();
  return success();
}

// Logits [..., vocab block] and labels [...] of the vocabulary-parallel ops.
LogicalResult checkLogitsAndLabels(Operation *op, Value logits, Value labels) {
  if (failed(checkTensor(op, "logits", logits, ElementKind::Float, -2)) ||
      failed(checkTensor(op, "labels", labels, ElementKind::Integer)))
    return failure();
  if (tensorType(logits).getShape().drop_back() != tensorType(labels).getShape())
    return op->emitOpError() << "labels " << labels.getType()
                             << " must have the shape of logits without its last dim, logits "
                             << logits.getType();
  return success();
}

} // namespace

#define GET_OP_CLASSES
#include "dialects/ap/IR/ApOps.cpp.inc"

LogicalResult EmbeddingOp::verify() {
  if (failed(checkTensor(*this, "weight", getWeight(), ElementKind::Float, 2)) ||
      failed(checkTensor(*this, "ids", getIds(), ElementKind::Integer)))
    return failure();
  if (failed(checkVocabShardAxis(*this, getVocabShardAxisAttr())))
    return failure();
  auto weight = tensorType(getWeight());
  SmallVector<int64_t> shape(tensorType(getIds()).getShape());
  shape.push_back(weight.getDimSize(1));
  return checkResult(*this, getResult(), shape, weight.getElementType());
}

LogicalResult LinearOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Float, -2)) ||
      failed(checkTensor(*this, "weight", getWeight(), ElementKind::Float, 2)) ||
      failed(checkSameElement(*this, "input", getInput(), "weight", getWeight())))
    return failure();
  auto input = tensorType(getInput());
  auto weight = tensorType(getWeight());
  if (input.getShape().back() != weight.getDimSize(1))
    return emitOpError() << "weight " << weight << " expects " << weight.getDimSize(1)
                         << " input features but input " << input << " has "
                         << input.getShape().back();
  SmallVector<int64_t> shape(input.getShape());
  shape.back() = weight.getDimSize(0);
  return checkResult(*this, getResult(), shape, input.getElementType());
}

LogicalResult MatmulOp::verify() {
  if (failed(checkTensor(*this, "lhs", getLhs(), ElementKind::Float)) ||
      failed(checkTensor(*this, "rhs", getRhs(), ElementKind::Float)) ||
      failed(checkSameElement(*this, "lhs", getLhs(), "rhs", getRhs())))
    return failure();
  auto lhs = tensorType(getLhs());
  auto rhs = tensorType(getRhs());
  if (lhs.getRank() < 2 || lhs.getRank() != rhs.getRank())
    return emitOpError() << "lhs and rhs must have the same rank, at least 2, got "
                         << lhs << " and " << rhs;
  int64_t rank = lhs.getRank();
  for (int64_t d = 0; d < rank - 2; ++d)
    if (lhs.getDimSize(d) != rhs.getDimSize(d))
      return emitOpError() << "batch dim " << d << " of lhs " << lhs
                           << " differs from rhs " << rhs;
  int64_t m = lhs.getDimSize(getTransposeLhs() ? rank - 1 : rank - 2);
  int64_t kLhs = lhs.getDimSize(getTransposeLhs() ? rank - 2 : rank - 1);
  int64_t kRhs = rhs.getDimSize(getTransposeRhs() ? rank - 1 : rank - 2);
  int64_t n = rhs.getDimSize(getTransposeRhs() ? rank - 2 : rank - 1);
  if (kLhs != kRhs)
    return emitOpError() << "contraction size of lhs " << lhs << " (" << kLhs
                         << ") differs from rhs " << rhs << " (" << kRhs << ")";
  SmallVector<int64_t> shape(lhs.getShape().drop_back(2));
  shape.push_back(m);
  shape.push_back(n);
  return checkResult(*this, getResult(), shape, lhs.getElementType());
}

LogicalResult RmsNormOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Float, -2)) ||
      failed(checkTensor(*this, "weight", getWeight(), ElementKind::Float, 1)) ||
      failed(checkSameElement(*this, "input", getInput(), "weight", getWeight())))
    return failure();
  auto input = tensorType(getInput());
  auto weight = tensorType(getWeight());
  if (weight.getDimSize(0) != input.getShape().back())
    return emitOpError() << "weight " << weight << " must match the last dim of input "
                         << input;
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "epsilon must be positive, got " << getEpsilon().convertToDouble();
  return checkResult(*this, getResult(), input.getShape(), input.getElementType());
}

// The context-parallel attributes: both or neither, a non-negative axis, two parts or more.
template <typename OpT> static LogicalResult verifySeqShard(OpT op) {
  IntegerAttr axis = op.getSeqShardAxisAttr(), parts = op.getSeqShardPartsAttr();
  if (bool(axis) != bool(parts))
    return op.emitOpError() << "seq_shard_axis and seq_shard_parts come together";
  if (axis && axis.getInt() < 0)
    return op.emitOpError() << "seq_shard_axis must be non-negative, got " << axis.getInt();
  if (parts && parts.getInt() < 2)
    return op.emitOpError() << "seq_shard_parts must be at least 2, got " << parts.getInt();
  return success();
}

// Checks of the rotary attributes, shared by rope and rope_grad.
template <typename OpT>
static LogicalResult verifyRopeAttributes(OpT op, StringRef role, Value input) {
  if (failed(checkTensor(op, role, input, ElementKind::Float, 4)) || failed(verifySeqShard(op)))
    return failure();
  auto type = tensorType(input);
  if (op.getSeqShardPartsAttr() && type.getDimSize(1) % 2 != 0)
    return op.emitOpError() << "a device's part of the sequence (" << type.getDimSize(1)
                            << " rows) must be two equal chunks";
  if (type.getDimSize(3) % 2 != 0 || type.getDimSize(3) == 0)
    return op.emitOpError() << "head_dim of " << role << " " << type
                            << " must be even and positive";
  if (!(op.getTheta().convertToDouble() > 0.0))
    return op.emitOpError() << "theta must be positive, got "
                            << op.getTheta().convertToDouble();
  // The generated getters read I64Attr as unsigned; read the signed value.
  if (op.getPositionOffsetAttr().getInt() < 0)
    return op.emitOpError() << "position_offset must be non-negative, got "
                            << op.getPositionOffsetAttr().getInt();
  StringRef ropeType = op.getRopeType();
  bool hasScaling = op.getFactor() || op.getLowFreqFactor() || op.getHighFreqFactor() ||
                    op.getOriginalMaxPositionEmbeddings();
  if (ropeType == "default") {
    if (hasScaling)
      return op.emitOpError() << "rope_type \"default\" takes no scaling attributes";
  } else if (ropeType == "llama3") {
    if (!op.getFactor() || !op.getLowFreqFactor() || !op.getHighFreqFactor() ||
        !op.getOriginalMaxPositionEmbeddings())
      return op.emitOpError() << "rope_type \"llama3\" needs factor, low_freq_factor, "
                                 "high_freq_factor and original_max_position_embeddings";
    double factor = op.getFactor()->convertToDouble();
    double low = op.getLowFreqFactor()->convertToDouble();
    double high = op.getHighFreqFactor()->convertToDouble();
    if (!(factor > 0.0) || !(low > 0.0) || !(high > low) ||
        op.getOriginalMaxPositionEmbeddingsAttr().getInt() <= 0)
      return op.emitOpError() << "llama3 rope scaling needs factor > 0, 0 < "
                                 "low_freq_factor < high_freq_factor and "
                                 "original_max_position_embeddings > 0";
  } else {
    return op.emitOpError() << "unknown rope_type \"" << ropeType
                            << "\" (expected \"default\" or \"llama3\")";
  }
  return success();
}

LogicalResult RopeOp::verify() {
  if (failed(verifyRopeAttributes(*this, "input", getInput())))
    return failure();
  auto input = tensorType(getInput());
  return checkResult(*this, getResult(), input.getShape(), input.getElementType());
}

double AttentionOp::getScaleOrDefault() {
  if (auto scale = getScale())
    return scale->convertToDouble();
  return 1.0 / std::sqrt(double(tensorType(getQuery()).getDimSize(3)));
}

// Query, key, value and scale checks shared by attention and attention_grad.
template <typename OpT> static LogicalResult verifyAttentionOperands(OpT op) {
  if (failed(checkTensor(op, "query", op.getQuery(), ElementKind::Float, 4)) ||
      failed(checkTensor(op, "key", op.getKey(), ElementKind::Float, 4)) ||
      failed(checkTensor(op, "value", op.getValue(), ElementKind::Float, 4)) ||
      failed(checkSameElement(op, "query", op.getQuery(), "key", op.getKey())) ||
      failed(checkSameElement(op, "query", op.getQuery(), "value", op.getValue())))
    return failure();
  auto q = tensorType(op.getQuery());
  auto k = tensorType(op.getKey());
  auto v = tensorType(op.getValue());
  if (k.getShape() != v.getShape())
    return op.emitOpError() << "key " << k << " and value " << v
                            << " must have the same shape";
  if (failed(verifySeqShard(op)))
    return failure();
  // Context parallelism: the query holds 1/parts of the sequence, the key all of it.
  int64_t parts = op.getSeqShardPartsAttr() ? op.getSeqShardPartsAttr().getInt() : 1;
  if (q.getDimSize(0) != k.getDimSize(0) || q.getDimSize(1) * parts != k.getDimSize(1) ||
      q.getDimSize(3) != k.getDimSize(3))
    return op.emitOpError() << "query " << q << " and key " << k
                            << " must agree on batch, seq and head_dim"
                            << (parts > 1 ? " (the key holding seq_shard_parts times the "
                                            "query's rows)"
                                          : "");
  if (parts > 1 && q.getDimSize(1) % 2 != 0)
    return op.emitOpError() << "a device's part of the sequence (" << q.getDimSize(1)
                            << " rows) must be two equal chunks";
  if (q.getDimSize(3) == 0)
    return op.emitOpError() << "head_dim of query " << q << " must be positive";
  if (k.getDimSize(2) == 0 || q.getDimSize(2) % k.getDimSize(2) != 0)
    return op.emitOpError() << "query heads (" << q.getDimSize(2)
                            << ") must be a multiple of key/value heads ("
                            << k.getDimSize(2) << ")";
  if (auto scale = op.getScale(); scale && !(scale->convertToDouble() > 0.0))
    return op.emitOpError() << "scale must be positive, got " << scale->convertToDouble();
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(verifyAttentionOperands(*this)))
    return failure();
  auto q = tensorType(getQuery());
  return checkResult(*this, getResult(), q.getShape(), q.getElementType());
}

LogicalResult SiluOp::verify() {
  return checkTensor(*this, "input", getInput(), ElementKind::Float);
}

LogicalResult SqrtOp::verify() {
  return checkTensor(*this, "input", getInput(), ElementKind::Float);
}

LogicalResult AddOp::verify() {
  return checkTensor(*this, "lhs", getLhs(), ElementKind::Float);
}

LogicalResult MulOp::verify() {
  return checkTensor(*this, "lhs", getLhs(), ElementKind::Float);
}

LogicalResult CastOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Any)) ||
      failed(checkTensor(*this, "result", getResult(), ElementKind::Any)))
    return failure();
  if (tensorType(getInput()).getShape() != tensorType(getResult()).getShape())
    return emitOpError() << "result " << getResult().getType()
                         << " must have the shape of input " << getInput().getType();
  return success();
}

LogicalResult ReshapeOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Any)) ||
      failed(checkTensor(*this, "result", getResult(), ElementKind::Any)) ||
      failed(checkSameElement(*this, "input", getInput(), "result", getResult())))
    return failure();
  auto input = tensorType(getInput());
  auto result = tensorType(getResult());
  if (input.getNumElements() != result.getNumElements())
    return emitOpError() << "result " << result << " must have as many elements as input "
                         << input << " (" << result.getNumElements() << " vs "
                         << input.getNumElements() << ")";
  return success();
}

LogicalResult TransposeOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Any)))
    return failure();
  auto input = tensorType(getInput());
  ArrayRef<int64_t> perm = getPermutation();
  if (int64_t(perm.size()) != input.getRank())
    return emitOpError() << "permutation has " << perm.size()
                         << " entries but input " << input << " has rank "
                         << input.getRank();
  SmallVector<bool> seen(perm.size(), false);
  SmallVector<int64_t> shape;
  for (int64_t d : perm) {
    if (d < 0 || d >= input.getRank() || seen[d])
      return emitOpError() << "permutation [" << perm
                           << "] is not a permutation of the dims of input " << input;
    seen[d] = true;
    shape.push_back(input.getDimSize(d));
  }
  return checkResult(*this, getResult(), shape, input.getElementType());
}

LogicalResult ReduceSumOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Float)))
    return failure();
  auto input = tensorType(getInput());
  llvm::SmallSet<int64_t, 4> reduced;
  for (int64_t d : getDims()) {
    if (d < 0 || d >= input.getRank() || !reduced.insert(d).second)
      return emitOpError() << "dims [" << getDims()
                           << "] must be distinct dims of input " << input;
  }
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < input.getRank(); ++d) {
    if (!reduced.contains(d))
      shape.push_back(input.getDimSize(d));
    else if (getKeepDims())
      shape.push_back(1);
  }
  return checkResult(*this, getResult(), shape, input.getElementType());
}

LogicalResult ShiftLabelsOp::verify() {
  return checkTensor(*this, "labels", getLabels(), ElementKind::Integer, -2);
}

LogicalResult CrossEntropyOp::verify() {
  if (failed(checkTensor(*this, "logits", getLogits(), ElementKind::Float, -2)) ||
      failed(checkTensor(*this, "labels", getLabels(), ElementKind::Integer)))
    return failure();
  auto logits = tensorType(getLogits());
  auto labels = tensorType(getLabels());
  if (logits.getShape().drop_back() != labels.getShape())
    return emitOpError() << "labels " << labels
                         << " must have the shape of logits without its last dim, logits "
                         << logits;
  if (getReduction() != "mean" && getReduction() != "sum")
    return emitOpError() << "reduction must be \"mean\" or \"sum\", got \""
                         << getReduction() << "\"";
  if (getKeptCount() && failed(checkKeptCount(*this, getKeptCount())))
    return failure();
  return checkResult(*this, getResult(), {}, Float32Type::get(getContext()));
}

LogicalResult CountKeptOp::verify() {
  if (failed(checkTensor(*this, "labels", getLabels(), ElementKind::Integer)))
    return failure();
  return checkResult(*this, getResult(), {}, Float32Type::get(getContext()));
}

LogicalResult SliceOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Any)))
    return failure();
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getDimAttr().getInt(), offset = getOffsetAttr().getInt();
  if (dim < 0 || dim >= in.getRank())
    return emitOpError() << "dim " << dim << " is not a dim of input " << in;
  SmallVector<int64_t> shape(in.getShape());
  shape[dim] = out.getRank() == in.getRank() ? out.getDimSize(dim) : 0;
  if (out.getRank() != in.getRank() || out.getShape() != ArrayRef<int64_t>(shape) ||
      out.getElementType() != in.getElementType())
    return emitOpError() << "result " << out << " must equal input " << in
                         << " except in dim " << dim;
  if (offset < 0 || offset + out.getDimSize(dim) > in.getDimSize(dim))
    return emitOpError() << "block [" << offset << ", " << offset + out.getDimSize(dim)
                         << ") is outside dim " << dim << " of input " << in;
  return success();
}

// Shared by ap.send and ap.recv.
static LogicalResult checkPeer(Operation *op, ArrayRef<int64_t> axes, int64_t peerOffset,
                               int64_t tag) {
  if (axes.size() != 1 || axes[0] < 0)
    return op->emitOpError() << "axes must name one mesh axis";
  if (peerOffset == 0)
    return op->emitOpError() << "peer_offset 0 names the device itself";
  if (tag < 0 || tag > int64_t(UINT32_MAX))
    return op->emitOpError() << "tag " << tag << " must be from 0 to " << UINT32_MAX;
  return success();
}

LogicalResult SendOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Any)))
    return failure();
  return checkPeer(*this, getAxes(), getPeerOffsetAttr().getInt(), getTagAttr().getInt());
}

LogicalResult RecvOp::verify() {
  if (failed(checkTensor(*this, "result", getResult(), ElementKind::Any)))
    return failure();
  return checkPeer(*this, getAxes(), getPeerOffsetAttr().getInt(), getTagAttr().getInt());
}

LogicalResult VocabParallelMaxOp::verify() {
  if (failed(checkTensor(*this, "logits", getLogits(), ElementKind::Float, -2)))
    return failure();
  return checkRowTensor(*this, "row_max", getRowMax(),
                        tensorType(getLogits()).getShape().drop_back());
}

LogicalResult VocabParallelStatsOp::verify() {
  if (failed(checkLogitsAndLabels(*this, getLogits(), getLabels())))
    return failure();
  ArrayRef<int64_t> rows = tensorType(getLabels()).getShape();
  if (failed(checkRowTensor(*this, "row_max", getRowMax(), rows)) ||
      failed(checkVocabShardAxis(*this, getVocabShardAxisAttr())) ||
      failed(checkRowTensor(*this, "sum_exp", getSumExp(), rows)))
    return failure();
  return checkRowTensor(*this, "target_logit", getTargetLogit(), rows);
}

LogicalResult VocabParallelLossOp::verify() {
  if (failed(checkTensor(*this, "labels", getLabels(), ElementKind::Integer)))
    return failure();
  ArrayRef<int64_t> rows = tensorType(getLabels()).getShape();
  if (failed(checkRowTensor(*this, "row_max", getRowMax(), rows)) ||
      failed(checkRowTensor(*this, "sum_exp", getSumExp(), rows)) ||
      failed(checkRowTensor(*this, "target_logit", getTargetLogit(), rows)) ||
      failed(checkReduction(*this, getReduction())))
    return failure();
  if (getKeptCount() && failed(checkKeptCount(*this, getKeptCount())))
    return failure();
  return checkResult(*this, getResult(), {}, Float32Type::get(getContext()));
}

LogicalResult VocabParallelLossGradOp::verify() {
  if (failed(checkLogitsAndLabels(*this, getLogits(), getLabels())))
    return failure();
  ArrayRef<int64_t> rows = tensorType(getLabels()).getShape();
  if (failed(checkRowTensor(*this, "row_max", getRowMax(), rows)) ||
      failed(checkRowTensor(*this, "sum_exp", getSumExp(), rows)))
    return failure();
  if (getGradLoss().getType() != RankedTensorType::get({}, Float32Type::get(getContext())))
    return emitOpError() << "grad_loss must be tensor<f32>, got " << getGradLoss().getType();
  if (getKeptCount() && failed(checkKeptCount(*this, getKeptCount())))
    return failure();
  if (failed(checkVocabShardAxis(*this, getVocabShardAxisAttr())) ||
      failed(checkReduction(*this, getReduction())))
    return failure();
  auto logits = tensorType(getLogits());
  return checkResult(*this, getGradLogits(), logits.getShape(), logits.getElementType());
}

LogicalResult FillOp::verify() {
  if (failed(checkTensor(*this, "result", getResult(), ElementKind::Float)))
    return failure();
  if (!std::isfinite(getValue().convertToDouble()))
    return emitOpError() << "value must be finite";
  return success();
}

LogicalResult BroadcastOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Float)) ||
      failed(checkTensor(*this, "result", getResult(), ElementKind::Float)) ||
      failed(checkSameElement(*this, "input", getInput(), "result", getResult())))
    return failure();
  auto input = tensorType(getInput());
  auto result = tensorType(getResult());
  llvm::SmallSet<int64_t, 4> added;
  for (int64_t d : getDims())
    if (d < 0 || d >= result.getRank() || !added.insert(d).second)
      return emitOpError() << "dims [" << getDims() << "] must be distinct dims of result "
                           << result;
  SmallVector<int64_t> expected;
  for (int64_t d = 0; d < result.getRank(); ++d)
    if (!added.contains(d))
      expected.push_back(result.getDimSize(d));
  if (ArrayRef<int64_t>(expected) != input.getShape())
    return emitOpError() << "input " << input << " must be result " << result
                         << " without dims [" << getDims() << "]";
  return success();
}

LogicalResult EmbeddingGradOp::verify() {
  if (failed(checkTensor(*this, "ids", getIds(), ElementKind::Integer)) ||
      failed(checkTensor(*this, "grad_output", getGradOutput(), ElementKind::Float, -2)) ||
      failed(checkTensor(*this, "grad_weight", getGradWeight(), ElementKind::Float, 2)) ||
      failed(checkSameElement(*this, "grad_output", getGradOutput(), "grad_weight",
                              getGradWeight())))
    return failure();
  auto grad = tensorType(getGradOutput());
  auto ids = tensorType(getIds());
  auto weight = tensorType(getGradWeight());
  if (grad.getShape().drop_back() != ids.getShape() ||
      grad.getShape().back() != weight.getDimSize(1))
    return emitOpError() << "grad_output " << grad << " must be ids " << ids
                         << " plus the hidden dim of grad_weight " << weight;
  return checkVocabShardAxis(*this, getVocabShardAxisAttr());
}

LogicalResult RmsNormGradOp::verify() {
  if (failed(checkTensor(*this, "input", getInput(), ElementKind::Float, -2)) ||
      failed(checkTensor(*this, "weight", getWeight(), ElementKind::Float, 1)) ||
      failed(checkSameElement(*this, "input", getInput(), "weight", getWeight())))
    return failure();
  auto input = tensorType(getInput());
  auto weight = tensorType(getWeight());
  if (weight.getDimSize(0) != input.getShape().back())
    return emitOpError() << "weight " << weight << " must match the last dim of input "
                         << input;
  if (getGradOutput().getType() != input)
    return emitOpError() << "grad_output " << getGradOutput().getType()
                         << " must have the type of input " << input;
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "epsilon must be positive, got "
                         << getEpsilon().convertToDouble();
  if (getGradInput().getType() != input || getGradWeight().getType() != weight)
    return emitOpError() << "results must have the types of input and weight";
  return success();
}

LogicalResult RopeGradOp::verify() {
  if (failed(verifyRopeAttributes(*this, "grad_output", getGradOutput())))
    return failure();
  if (getGradInput().getType() != getGradOutput().getType())
    return emitOpError() << "grad_input " << getGradInput().getType()
                         << " must have the type of grad_output "
                         << getGradOutput().getType();
  return success();
}

double AttentionGradOp::getScaleOrDefault() {
  if (auto scale = getScale())
    return scale->convertToDouble();
  return 1.0 / std::sqrt(double(tensorType(getQuery()).getDimSize(3)));
}

LogicalResult AttentionGradOp::verify() {
  if (failed(verifyAttentionOperands(*this)))
    return failure();
  auto q = tensorType(getQuery());
  auto k = tensorType(getKey());
  if (getGradOutput().getType() != q)
    return emitOpError() << "grad_output " << getGradOutput().getType()
                         << " must have the type of query " << q;
  if (getGradQuery().getType() != q || getGradKey().getType() != k ||
      getGradValue().getType() != getValue().getType())
    return emitOpError() << "results must have the types of query, key and value";
  return success();
}

LogicalResult SiluGradOp::verify() {
  return checkTensor(*this, "input", getInput(), ElementKind::Float);
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(checkTensor(*this, "logits", getLogits(), ElementKind::Float, -2)) ||
      failed(checkTensor(*this, "labels", getLabels(), ElementKind::Integer)) ||
      failed(checkTensor(*this, "grad_loss", getGradLoss(), ElementKind::Float, 0)))
    return failure();
  auto logits = tensorType(getLogits());
  if (logits.getShape().drop_back() != tensorType(getLabels()).getShape())
    return emitOpError() << "labels " << getLabels().getType()
                         << " must have the shape of logits without its last dim, logits "
                         << logits;
  if (!tensorType(getGradLoss()).getElementType().isF32())
    return emitOpError() << "grad_loss must be tensor<f32>, got " << getGradLoss().getType();
  if (getReduction() != "mean" && getReduction() != "sum")
    return emitOpError() << "reduction must be \"mean\" or \"sum\", got \""
                         << getReduction() << "\"";
  if (getKeptCount() && failed(checkKeptCount(*this, getKeptCount())))
    return failure();
  return checkResult(*this, getGradLogits(), logits.getShape(), logits.getElementType());
}

LogicalResult GradNormOp::verify() {
  if (getGrads().empty())
    return emitOpError() << "needs at least one gradient";
  for (auto [i, grad] : llvm::enumerate(getGrads()))
    if (failed(checkTensor(*this, ("grad #" + Twine(i)).str(), grad, ElementKind::Float)))
      return failure();
  return checkResult(*this, getResult(), {}, Float32Type::get(getContext()));
}

LogicalResult AdamWOp::verify() {
  if (failed(checkTensor(*this, "param", getParam(), ElementKind::Float)) ||
      failed(checkTensor(*this, "grad", getGrad(), ElementKind::Float)) ||
      failed(checkTensor(*this, "exp_avg", getExpAvg(), ElementKind::Float)) ||
      failed(checkTensor(*this, "exp_avg_sq", getExpAvgSq(), ElementKind::Float)) ||
      failed(checkTensor(*this, "step", getStep(), ElementKind::Integer, 0)) ||
      failed(checkTensor(*this, "lr", getLr(), ElementKind::Float, 0)))
    return failure();
  auto param = tensorType(getParam());
  if (!param.getElementType().isF32())
    return emitOpError() << "param must be f32 (the master copy), got " << param;
  if (getExpAvg().getType() != param || getExpAvgSq().getType() != param)
    return emitOpError() << "exp_avg " << getExpAvg().getType() << " and exp_avg_sq "
                         << getExpAvgSq().getType() << " must have the type of param "
                         << param;
  if (tensorType(getGrad()).getShape() != param.getShape())
    return emitOpError() << "grad " << getGrad().getType()
                         << " must have the shape of param " << param;
  if (!tensorType(getLr()).getElementType().isF32())
    return emitOpError() << "lr must be tensor<f32>, got " << getLr().getType();
  double beta1 = getBeta1().convertToDouble(), beta2 = getBeta2().convertToDouble();
  if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
    return emitOpError() << "beta1 and beta2 must be in [0, 1), got " << beta1 << " and "
                         << beta2;
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "epsilon must be positive";
  if (!(getWeightDecay().convertToDouble() >= 0.0))
    return emitOpError() << "weight_decay must be non-negative";
  if (getGradNorm() &&
      failed(checkTensor(*this, "grad_norm", getGradNorm(), ElementKind::Float, 0)))
    return failure();
  if (getMaxGradNorm()) {
    if (!(getMaxGradNorm()->convertToDouble() > 0.0))
      return emitOpError() << "max_grad_norm must be positive";
    if (!getGradNorm())
      return emitOpError() << "max_grad_norm needs the grad_norm operand";
  }
  if (getNewParam().getType() != param || getNewExpAvg().getType() != param ||
      getNewExpAvgSq().getType() != param)
    return emitOpError() << "results must have the type of param " << param;
  return success();
}
