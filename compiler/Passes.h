// Declarations and registration of APC's compiler passes (generated from Passes.td).
#pragma once

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Pass/Pass.h"

#include <memory>
#include <string>

namespace apc {

#define GEN_PASS_DECL
#include "compiler/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Passes.h.inc"

} // namespace apc
