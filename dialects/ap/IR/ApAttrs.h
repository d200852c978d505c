// Attributes of the `ap` dialect (see ApAttrs.td): the parallel plan `#ap.parallel`.
#pragma once

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"

#include "dialects/ap/IR/ApEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/ap/IR/ApAttrs.h.inc"
