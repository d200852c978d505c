// Cost rules of the upstream shard collectives the partitioner inserts, with the ring
// algorithms the runtime uses (Gloo now, NCCL later): over a group of n devices an
// all-reduce sends 2(n-1)/n of the buffer per device and adds (n-1)/n of its elements;
// an all-gather sends (n-1)/n of the result, a reduce-scatter (n-1)/n of its input; an
// all-slice keeps a local block and sends nothing.
#include "compiler/rules/RuleModels.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"

using namespace mlir;

namespace apc::rules {
namespace {

template <typename Op> int64_t groupSize(Op op) {
  SymbolTableCollection symbols;
  shard::GridOp grid = shard::getGrid(op, symbols);
  int64_t n = 1;
  if (grid)
    for (int16_t a : op.getGridAxes())
      if (a >= 0 && size_t(a) < grid.getShape().size())
        n *= grid.getShape()[a];
  return n;
}

template <typename Op> ap::OpCost collective(Op op, double sentPerByte, double flopsPerElement,
                                             Value sized) {
  ap::OpCost cost = onePass(op, 0);
  cost.groupSize = groupSize(op);
  double share = cost.groupSize > 1 ? double(cost.groupSize - 1) / double(cost.groupSize) : 0;
  cost.bytesSent = sentPerByte * share * bytes(sized);
  cost.flops = flopsPerElement * share * elements(sized);
  return cost;
}

ap::OpCost costAllReduce(shard::AllReduceOp o) {
  return collective(o, 2.0, 1.0, o.getInput());
}
ap::OpCost costAllGather(shard::AllGatherOp o) {
  return collective(o, 1.0, 0.0, o.getResult());
}
ap::OpCost costReduceScatter(shard::ReduceScatterOp o) {
  return collective(o, 1.0, 1.0, o.getInput());
}
ap::OpCost costAllSlice(shard::AllSliceOp o) { return collective(o, 0.0, 0.0, o.getResult()); }

} // namespace

void attachCollectiveRules(MLIRContext *context) {
  attachCost<shard::AllReduceOp, costAllReduce>(context);
  attachCost<shard::AllGatherOp, costAllGather>(context);
  attachCost<shard::ReduceScatterOp, costReduceScatter>(context);
  attachCost<shard::AllSliceOp, costAllSlice>(context);
}

} // namespace apc::rules
