// Registration of the `ap` dialect.
#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApOps.h"

using namespace apc::ap;

#include "dialects/ap/IR/ApDialect.cpp.inc"

void ApDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/ap/IR/ApOps.cpp.inc"
      >();
}
