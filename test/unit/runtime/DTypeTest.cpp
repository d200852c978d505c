// Tests the one DType (runtime/support/DType.h): sizes and names, the plan schema's
// values (runtime/plan/PlanTypes.h), and the safetensors file type of each.
#include "runtime/plan/PlanTypes.h"
#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/DType.h"

#include <gtest/gtest.h>

#include <string>

namespace apc {
namespace {

TEST(DType, SizesNamesAndTheSchema) {
  struct Row {
    DType dtype;
    size_t size;
    const char *name;
    const char *schemaName;
    safetensors::DType file;
  };
  const Row rows[] = {{DType::F32, 4, "f32", "F32", safetensors::DType::F32},
                      {DType::BF16, 2, "bf16", "BF16", safetensors::DType::BF16},
                      {DType::F16, 2, "f16", "F16", safetensors::DType::F16},
                      {DType::I32, 4, "i32", "I32", safetensors::DType::I32},
                      {DType::I64, 8, "i64", "I64", safetensors::DType::I64}};
  for (const Row &row : rows) {
    EXPECT_EQ(dtypeSize(row.dtype), row.size) << row.name;
    EXPECT_EQ(std::string(dtypeName(row.dtype)), row.name);
    plan::DType inPlan = plan::toPlanDType(row.dtype);
    EXPECT_EQ(std::string(plan::EnumNameDType(inPlan)), row.schemaName);
    EXPECT_EQ(plan::toDType(inPlan), row.dtype);
    EXPECT_EQ(safetensors::fileDType(row.dtype), row.file) << row.name;
    EXPECT_EQ(safetensors::dtypeSize(row.file), row.size) << row.name;
  }
  EXPECT_EQ(sizeof(rows) / sizeof(rows[0]), size_t(plan::DType::MAX) + 1);
  EXPECT_EQ(dtypeSize(DType(200)), 0u);
  EXPECT_EQ(std::string(dtypeName(DType(200))), "?");
}

} // namespace
} // namespace apc
