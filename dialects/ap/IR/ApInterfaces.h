// The per-op rule interfaces of the `ap` dialect (see ApInterfaces.td). Their
// implementations are external models in compiler/rules/.
#pragma once

#include "mlir/IR/OpDefinition.h"

namespace apc::partition {
class RuleContext; // compiler/partition/RuleContext.h
} // namespace apc::partition

namespace apc::ap {

// One execution of an op on one device.
struct OpCost {
  double flops = 0;             // floating-point operations (a multiply-add is 2)
  double bytesRead = 0;         // device memory read
  double bytesWritten = 0;      // device memory written
  double bytesSent = 0;         // sent over links per device (collectives, send/recv)
  int64_t groupSize = 1;        // devices taking part (collectives), else 1
};

} // namespace apc::ap

#include "dialects/ap/IR/ApInterfaces.h.inc"
