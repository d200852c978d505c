// Traits every `ap` op carries (ApDialect.td's Ap_Op).
#pragma once

#include "mlir/IR/OpDefinition.h"

namespace apc::ap {

// Every tensor an op takes or gives has a static shape of at most kMaxTensorBytes
// (runtime/support/CheckedMath.h), so that no later size or byte arithmetic on it
// (verifiers, rules, cost, memory planning) can overflow. Verified before the op's own
// verifier.
mlir::LogicalResult verifyAddressableTensors(mlir::Operation *op);

template <typename ConcreteType>
class AddressableTensors
    : public mlir::OpTrait::TraitBase<ConcreteType, AddressableTensors> {
public:
  static mlir::LogicalResult verifyTrait(mlir::Operation *op) {
    return verifyAddressableTensors(op);
  }
};

} // namespace apc::ap
