// Ops of the `ap` dialect, generated from ApOps.td.
#pragma once

#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApTraits.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "dialects/ap/IR/ApOps.h.inc"
