// The glue between a rule written as a plain function and the op interfaces:
// `attach<Op, shard, cost>(context)` makes `shard(Op, RuleContext&)` the op's sharding
// rule and `cost(Op)` its cost. Each rules file (one per op family) writes its
// functions and attaches them in one `attach...Rules` function; Rules.cpp calls those.
#pragma once

#include "compiler/partition/RuleContext.h"
#include "dialects/ap/IR/ApInterfaces.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"

namespace apc::rules {

using partition::AxisState;
using partition::RuleContext;

template <typename Op> using ShardFn = mlir::LogicalResult (*)(Op, RuleContext &);
template <typename Op> using RewriteFn = mlir::FailureOr<bool> (*)(Op, RuleContext &);
template <typename Op> using CostFn = ap::OpCost (*)(Op);

template <typename Op, ShardFn<Op> Shard, RewriteFn<Op> Rewrite>
struct ShardingModel
    : ap::ShardingRuleOpInterface::ExternalModel<ShardingModel<Op, Shard, Rewrite>, Op> {
  mlir::LogicalResult shardAxis(mlir::Operation *op, RuleContext &context) const {
    return Shard(mlir::cast<Op>(op), context);
  }
  mlir::FailureOr<bool> rewriteSharded(mlir::Operation *op, RuleContext &context) const {
    if constexpr (Rewrite != nullptr)
      return Rewrite(mlir::cast<Op>(op), context);
    return false;
  }
};

template <typename Op, CostFn<Op> Cost>
struct CostModel : ap::CostOpInterface::ExternalModel<CostModel<Op, Cost>, Op> {
  ap::OpCost cost(mlir::Operation *op) const { return Cost(mlir::cast<Op>(op)); }
};

template <typename Op, ShardFn<Op> Shard, CostFn<Op> Cost, RewriteFn<Op> Rewrite = nullptr>
void attach(mlir::MLIRContext *context) {
  Op::template attachInterface<ShardingModel<Op, Shard, Rewrite>, CostModel<Op, Cost>>(*context);
}

template <typename Op, CostFn<Op> Cost> void attachCost(mlir::MLIRContext *context) {
  Op::template attachInterface<CostModel<Op, Cost>>(*context);
}

// ---- Sizes, for the cost rules ----
inline double elements(mlir::Value v) {
  return double(mlir::cast<mlir::RankedTensorType>(v.getType()).getNumElements());
}
inline double bytes(mlir::Value v) {
  auto t = mlir::cast<mlir::RankedTensorType>(v.getType());
  return double(t.getNumElements()) * double((t.getElementTypeBitWidth() + 7) / 8);
}
// Reads every operand once and writes every result once, with `flopsPerResult`
// operations per result element: the cost of a one-pass (memory-bound) kernel.
inline ap::OpCost onePass(mlir::Operation *op, double flopsPerResult) {
  ap::OpCost c;
  for (mlir::Value v : op->getOperands())
    c.bytesRead += bytes(v);
  for (mlir::Value v : op->getResults()) {
    c.bytesWritten += bytes(v);
    c.flops += flopsPerResult * elements(v);
  }
  return c;
}

// ---- Rules several families share (ElementwiseRules.cpp) ----
// Sums and casts: a split operand splits the others the same way; all partial stays
// partial (a sum of partial sums); else whole.
mlir::LogicalResult shardLikeSum(RuleContext &c);
// Pointwise ops: partial operands made whole, then the first split operand's split
// for all (none on the last dim when `lastDimWhole`, for ops that move along it).
mlir::LogicalResult shardPointwise(RuleContext &c, bool lastDimWhole = false);

// The family files' attach functions.
void attachDenseRules(mlir::MLIRContext *context);
void attachElementwiseRules(mlir::MLIRContext *context);
void attachShapeRules(mlir::MLIRContext *context);
void attachEmbeddingRules(mlir::MLIRContext *context);
void attachNormRules(mlir::MLIRContext *context);
void attachAttentionRules(mlir::MLIRContext *context);
void attachLossRules(mlir::MLIRContext *context);
void attachOptimizerRules(mlir::MLIRContext *context);
void attachPipelineRules(mlir::MLIRContext *context);
void attachCollectiveRules(mlir::MLIRContext *context);

} // namespace apc::rules
