// Registration of the `ap` dialect: its ops and its attributes.
#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApInterfaces.h"
#include "dialects/ap/IR/ApOps.h"

using namespace apc::ap;

#include "dialects/ap/IR/ApDialect.cpp.inc"
#include "dialects/ap/IR/ApInterfaces.cpp.inc"

void ApDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/ap/IR/ApOps.cpp.inc"
      >();
  registerAttributes();
}
