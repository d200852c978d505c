// The element types of tensors: the one DType of plans, kernels, the compiler's
// lowering and the tracer, with its sizes and names.
//
// plan.fbs declares the same enum for the file (plan::DType); runtime/plan/PlanTypes.h
// checks with static_asserts that every value matches and converts between the two, so
// a new element type is added here and in the schema, and the build says if they
// differ. Safetensors files have their own, larger set (F64, I8, BOOL, ...):
// safetensors::DType, which safetensors::fileDType gives for each of these. No MLIR and
// no flatbuffers here, so kernels, the interpreter and the tracer can use it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace apc {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, I64 = 4 };

// Bytes per element; 0 for a value outside the enum (a damaged plan).
constexpr size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32: return 4;
  case DType::BF16: return 2;
  case DType::F16: return 2;
  case DType::I32: return 4;
  case DType::I64: return 8;
  }
  return 0;
}

// "f32", "bf16", "f16", "i32", "i64" (MLIR's spelling); "?" outside the enum.
constexpr const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32: return "f32";
  case DType::BF16: return "bf16";
  case DType::F16: return "f16";
  case DType::I32: return "i32";
  case DType::I64: return "i64";
  }
  return "?";
}

} // namespace apc
