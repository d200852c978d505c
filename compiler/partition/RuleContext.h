// What a sharding rule sees and may do: the partitioner's side of the
// ShardingRuleOpInterface (dialects/ap/IR/ApInterfaces.td).
//
// A rule is called once per mesh axis for the op being partitioned. It reads the
// states of the op's operands on that axis, converts operands the op cannot compute
// from (`want`: the partitioner inserts the collective), and says the states of the
// results. The services at the end are the partition-wide facts a few ops need (the
// optimizer's layout of a parameter, where partial activations go under sequence
// parallelism, the whole-op rewrites of the vocabulary-parallel loss and the norm).
#pragma once

#include "compiler/partition/ShardedValues.h"

#include "mlir/IR/Operation.h"

#include <optional>

namespace apc::partition {

class RuleContext {
public:
  virtual ~RuleContext() = default;

  // ---- The op and the axis ----
  mlir::Operation *op() const { return op_; }
  int axis() const { return axis_; }
  virtual int64_t axisSize() const = 0;
  virtual bool isTensorAxis() const = 0;  // the axis named "tp"
  virtual bool isContextAxis() const = 0; // the axis named "cp" (splits the sequence)

  // ---- Operands ----
  virtual AxisState stateOf(mlir::Value v) = 0;
  virtual mlir::RankedTensorType globalOf(mlir::Value v) = 0;
  AxisState state(unsigned operand) { return stateOf(op_->getOperand(operand)); }
  int64_t rank(unsigned operand) { return globalOf(op_->getOperand(operand)).getRank(); }
  int64_t lastDim(unsigned operand) { return rank(operand) - 1; }
  // Split on a dim other than the last (rows of a row-wise op).
  bool splitRows(unsigned operand) {
    return state(operand).isSplit() && state(operand).dim < lastDim(operand);
  }
  // Converts operand `i` to state `to` on this axis (a collective where needed).
  virtual void want(unsigned operand, AxisState to) = 0;
  // The same, but converted right before the op and for it alone (not shared with other
  // users): a gather that should not live from an earlier use (the backward's keys).
  virtual void wantHere(unsigned operand, AxisState to) = 0;
  // A partial operand made whole (replicated).
  void whole(unsigned operand) {
    if (state(operand).kind == AxisState::P)
      want(operand, AxisState::r());
  }
  void wholeAll() {
    for (unsigned i = 0; i < op_->getNumOperands(); ++i)
      whole(i);
  }
  void wantAll(AxisState to) {
    for (unsigned i = 0; i < op_->getNumOperands(); ++i)
      want(i, to);
  }

  // ---- Results ----
  mlir::LogicalResult results(AxisState s) {
    results_.assign(op_->getNumResults(), s);
    return mlir::success();
  }
  mlir::LogicalResult results(llvm::ArrayRef<AxisState> states) {
    results_.assign(states.begin(), states.end());
    return mlir::success();
  }
  // The operands' states have no rule: a located error naming the axis.
  virtual mlir::LogicalResult noRule() = 0;
  // A refusal with a reason (an op that must not be partitioned again).
  virtual mlir::LogicalResult refuse(const llvm::Twine &why) = 0;

  // ---- Partition-wide facts and services ----
  // Where a partial activation goes when made whole on this axis: its sequence dim
  // under sequence parallelism on the tensor axis and on the context axis, else
  // replicated.
  virtual AxisState wholeTarget(mlir::Value v) = 0;
  // The results partial on this axis are reduced right after the op, to wholeTarget
  // (Megatron's reduction after a row-parallel linear; the reduce-scatter of the keys'
  // and values' gradients under context parallelism).
  virtual void reduceResultEagerly() = 0;
  // The layout (on this axis) of the parameter a gradient value ends up updating, if
  // it feeds one through sums and casts only.
  virtual std::optional<AxisState> gradientLayout(mlir::Value grad) = 0;
  // The optimizer's layout (on this axis) of the parameter an ap.adamw updates.
  virtual AxisState parameterLayout(mlir::Operation *adamw) = 0;
  // ZeRO-1 on this axis: gradients are all-reduced whole before the update slices them.
  virtual bool reducesGradientsWhole() const = 0;
  // A mean loss divides by the kept tokens of the whole global batch (after all axes).
  virtual void divideByGlobalKeptCount() = 0;
  // The mesh axis on which `logits` is split along its last dim (the vocabulary).
  virtual std::optional<int> vocabularyAxis(mlir::Value logits) = 0;
  // Whole-op rewrites: the vocabulary-parallel loss (logits split on `axis`) and the
  // gradient norm over gradients in their optimizer layouts.
  virtual mlir::LogicalResult rewriteVocabParallelLoss(int axis) = 0;
  virtual mlir::LogicalResult rewriteGradNorm() = 0;

  // ---- For the partitioner ----
  void begin(mlir::Operation *op, int axis) {
    op_ = op;
    axis_ = axis;
    results_.clear();
  }
  llvm::ArrayRef<AxisState> resultStates() const { return results_; }

private:
  mlir::Operation *op_ = nullptr;
  int axis_ = 0;
  llvm::SmallVector<AxisState, 2> results_;
};

} // namespace apc::partition
