// The plan's element type is the runtime's one DType (runtime/support/DType.h).
//
// plan.fbs must declare DType for the file; the build checks here that its values are
// DType's, so a dtype converts between the file and the kernels by value, and adding an
// element type to one without the other does not compile. Every other enum of the plan
// (BufferKind, Binding, AttributeKind, Pass) is used as generated, by the compiler too
// (compiler/lowering/ExecProgram.h).
#pragma once

#include "runtime/schema/plan_generated.h"
#include "runtime/support/DType.h"

namespace apc::plan {

static_assert(uint8_t(DType::F32) == uint8_t(apc::DType::F32), "plan.fbs DType F32");
static_assert(uint8_t(DType::BF16) == uint8_t(apc::DType::BF16), "plan.fbs DType BF16");
static_assert(uint8_t(DType::F16) == uint8_t(apc::DType::F16), "plan.fbs DType F16");
static_assert(uint8_t(DType::I32) == uint8_t(apc::DType::I32), "plan.fbs DType I32");
static_assert(uint8_t(DType::I64) == uint8_t(apc::DType::I64), "plan.fbs DType I64");
static_assert(uint8_t(DType::MAX) == uint8_t(apc::DType::I64) && uint8_t(DType::MIN) == 0,
              "plan.fbs and runtime/support/DType.h declare different element types");

// By value (the loader has checked that a plan's dtypes are in range).
constexpr apc::DType toDType(DType dtype) { return apc::DType(uint8_t(dtype)); }
constexpr DType toPlanDType(apc::DType dtype) { return DType(uint8_t(dtype)); }

} // namespace apc::plan
