// The per-op rules of the `ap` dialect (sharding and cost), attached to the ops as
// external models of the interfaces in dialects/ap/IR/ApInterfaces.td. Every tool that
// creates an MLIRContext for the compiler registers them through this one call.
#pragma once

#include "mlir/IR/DialectRegistry.h"

namespace apc::rules {

// Attaches the sharding and cost rules of every `ap` op, and the cost rules of the
// shard collectives, when their dialects load.
void registerApRules(mlir::DialectRegistry &registry);

} // namespace apc::rules
