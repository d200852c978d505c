// Rules of the ops of pipeline stages: ap.slice (a micro-batch cut from the step's
// batch) and the point-to-point ap.send / ap.recv between stages. ap-pipeline makes
// them after partitioning, so they refuse to be split; their cost is the bytes they
// copy or move between two devices.
#include "compiler/rules/RuleModels.h"

using namespace mlir;

namespace apc::rules {
namespace {

template <typename Op> LogicalResult madeByPipeline(Op, RuleContext &c) {
  return c.refuse("is made by ap-pipeline after partitioning and cannot be split");
}

ap::OpCost costSlice(ap::SliceOp o) {
  ap::OpCost cost;
  cost.bytesRead = cost.bytesWritten = bytes(o.getResult());
  return cost;
}

ap::OpCost costSend(ap::SendOp o) {
  ap::OpCost cost;
  cost.bytesRead = cost.bytesSent = bytes(o->getOperand(0));
  cost.groupSize = 2;
  return cost;
}

ap::OpCost costRecv(ap::RecvOp o) {
  ap::OpCost cost;
  cost.bytesWritten = bytes(o->getResult(0));
  cost.groupSize = 2;
  return cost;
}

} // namespace

void attachPipelineRules(MLIRContext *context) {
  attach<ap::SliceOp, madeByPipeline<ap::SliceOp>, costSlice>(context);
  attach<ap::SendOp, madeByPipeline<ap::SendOp>, costSend>(context);
  attach<ap::RecvOp, madeByPipeline<ap::RecvOp>, costRecv>(context);
}

} // namespace apc::rules
