// The `ap` dialect (see ApDialect.td for what it is).
#pragma once

#include "mlir/IR/Dialect.h"

#include "dialects/ap/IR/ApDialect.h.inc"
