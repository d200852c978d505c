// The plan writer (compiler/emit/EmitPlan.cpp) on hand-made lowered programs: one program
// per pipeline stage whatever the device count, the vocabulary block left to the runtime
// (vocab_shard_axis / vocab_shard_rows kept), names stored once, the instructions' marks
// (micro-batch, pass, layer) written, and a plan past the size limit refused with a
// located error instead of written.
#include "compiler/emit/EmitPlan.h"

#include "dialects/ap/IR/ApOps.h"
#include "runtime/plan/DeviceProgram.h"
#include "runtime/schema/plan_generated.h"
#include "runtime/support/MeshCoordinates.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

namespace apc::emit {
namespace {

using namespace apc::lowering;

// A step function with what emitPlan reads: ap.model and one ap.adamw.
const char *kStep = R"mlir(
func.func @train_step(%p: tensor<3xf32>, %step: tensor<i64>, %lr: tensor<f32>)
    attributes {ap.model = {architecture = "llama3", hidden_size = 2 : i64,
                            num_hidden_layers = 2 : i64, vocab_size = 8 : i64}} {
  %0:3 = ap.adamw %p, %p, %p, %p, %step, %lr : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<i64>, tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>)
  return
}
)mlir";

ExecAttribute intAttr(std::string name, int64_t v) {
  ExecAttribute a;
  a.name = std::move(name);
  a.i = v;
  return a;
}

// One stage's program on a [dp, tp] mesh: input_ids, a vocabulary-parallel embedding
// (axis 1, 4 rows a block) marked as micro-batch 0's forward of the embedding, and
// `extra` more gemm instructions.
ExecProgram stageProgram(std::vector<int64_t> mesh, std::vector<std::string> axes, int extra = 0) {
  ExecProgram p;
  p.meshShape = std::move(mesh);
  p.meshAxes = std::move(axes);
  p.parallelPlan = "dp=2,tp=2";
  ExecBuffer ids;
  ids.name = "input_ids";
  ids.dtype = DType::I64;
  ids.shape = {2, 4};
  ids.kind = BufferKind::Input;
  ids.binding = Binding::InputIds;
  p.buffers.push_back(ids);
  ExecBuffer table;
  table.name = "model.embed_tokens.weight";
  table.shape = {4, 2};
  table.kind = BufferKind::Parameter;
  table.parameter = 0;
  table.dimAxes = {1, -1};
  p.buffers.push_back(table);
  p.parameters.push_back({"model.embed_tokens.weight", {8, 2}, "normal"});
  ExecBuffer out;
  out.name = "%2";
  out.shape = {2, 4, 2};
  p.buffers.push_back(out);
  p.loss = 2;
  ExecInstruction embedding;
  embedding.kernel = "embedding";
  embedding.inputs = {1, 0};
  embedding.outputs = {2};
  embedding.attributes = {intAttr("vocab_shard_axis", 1), intAttr("vocab_shard_rows", 4)};
  embedding.microBatch = 0;
  embedding.pass = Pass::Forward;
  embedding.layer = -2;
  p.instructions.push_back(embedding);
  for (int k = 0; k < extra; ++k) {
    ExecInstruction gemm;
    gemm.kernel = "gemm";
    gemm.inputs = {2, 2};
    gemm.outputs = {2};
    ExecAttribute t;
    t.name = "transpose_b";
    t.kind = ExecAttribute::Kind::Bool;
    t.b = true;
    gemm.attributes = {t};
    gemm.pass = Pass::Backward;
    gemm.microBatch = k % 3;
    gemm.layer = k % 2;
    p.instructions.push_back(gemm);
  }
  return p;
}

class EmitPlanTest : public ::testing::Test {
protected:
  void SetUp() override {
    context_.loadDialect<ap::ApDialect, mlir::func::FuncDialect>();
    module_ = mlir::parseSourceString<mlir::ModuleOp>(kStep, &context_);
    ASSERT_TRUE(module_);
    step_ = *module_->getOps<mlir::func::FuncOp>().begin();
  }
  mlir::MLIRContext context_;
  mlir::OwningOpRef<mlir::ModuleOp> module_;
  mlir::func::FuncOp step_;
};

// The same stage on 2 x 2 and on 8 x 2 devices: one program either way, of one size but
// for the mesh shape and the global batch.
TEST_F(EmitPlanTest, OneProgramPerStageWhateverTheDevices) {
  auto small = emitPlan({stageProgram({2, 2}, {"dp", "tp"}, 10)}, step_, PlanInfo());
  auto large = emitPlan({stageProgram({8, 2}, {"dp", "tp"}, 10)}, step_, PlanInfo());
  ASSERT_TRUE(mlir::succeeded(small) && mlir::succeeded(large));
  EXPECT_EQ(small->size(), large->size());
  const plan::Plan *p = plan::GetPlan(large->data());
  ASSERT_EQ(p->programs()->size(), 1u);
  EXPECT_EQ(plan::deviceCount(*p), 16);
  EXPECT_EQ(plan::programOf(*p, 15), p->programs()->Get(0));
  // The vocabulary block is the runtime's to compute: axis and rows, no start.
  const plan::Instruction *embedding = p->programs()->Get(0)->instructions()->Get(0);
  std::vector<std::string> names;
  for (const plan::Attribute *a : *embedding->attributes())
    names.push_back(a->name()->str());
  EXPECT_EQ(names, (std::vector<std::string>{"vocab_shard_axis", "vocab_shard_rows"}));
  EXPECT_EQ(plan::vocabStart(*embedding, coordinatesOf(5, {8, 2})), 4);
  EXPECT_EQ(plan::vocabStart(*embedding, coordinatesOf(4, {8, 2})), 0);
}

TEST_F(EmitPlanTest, WritesTheMarks) {
  auto bytes = emitPlan({stageProgram({2, 2}, {"dp", "tp"}, 2)}, step_, PlanInfo());
  ASSERT_TRUE(mlir::succeeded(bytes));
  const auto &insts = *plan::GetPlan(bytes->data())->programs()->Get(0)->instructions();
  EXPECT_EQ(insts.Get(0)->micro_batch(), 0);
  EXPECT_EQ(insts.Get(0)->pass(), plan::Pass::Forward);
  EXPECT_EQ(insts.Get(0)->layer(), -2);
  EXPECT_EQ(insts.Get(2)->micro_batch(), 1);
  EXPECT_EQ(insts.Get(2)->pass(), plan::Pass::Backward);
  EXPECT_EQ(insts.Get(2)->layer(), 1);
}

// Kernel and attribute names, and whole attribute lists, are stored once.
TEST_F(EmitPlanTest, NamesAreStoredOnce) {
  auto few = emitPlan({stageProgram({2, 2}, {"dp", "tp"}, 10)}, step_, PlanInfo());
  auto many = emitPlan({stageProgram({2, 2}, {"dp", "tp"}, 110)}, step_, PlanInfo());
  ASSERT_TRUE(mlir::succeeded(few) && mlir::succeeded(many));
  const auto &insts = *plan::GetPlan(many->data())->programs()->Get(0)->instructions();
  EXPECT_EQ(insts.Get(1)->kernel(), insts.Get(2)->kernel());
  EXPECT_EQ(insts.Get(1)->attributes(), insts.Get(2)->attributes());
  // 110 gemms, one "gemm" and one "transpose_b" in the file.
  auto count = [&](const std::string &bytes, const std::string &what) {
    int n = 0;
    for (size_t at = bytes.find(what); at != std::string::npos; at = bytes.find(what, at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count(*many, "gemm"), 1);
  EXPECT_EQ(count(*many, "transpose_b"), 1);
  EXPECT_EQ(count(*many, "vocab_shard_rows"), 1);
  // 100 more gemms: a table, two index vectors and an offset each, no strings.
  EXPECT_LT(double(many->size() - few->size()) / 100.0, 100.0);
}

// Past the limit: a located error naming it, no bytes.
TEST_F(EmitPlanTest, RefusesAPlanPastTheLimit) {
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&context_, [&](mlir::Diagnostic &d) {
    message = d.str();
    return mlir::success();
  });
  PlanInfo info;
  info.maxPlanBytes = 1u << 20;
  auto bytes = emitPlan({stageProgram({2, 2}, {"dp", "tp"}, 20000)}, step_, info);
  EXPECT_TRUE(mlir::failed(bytes));
  EXPECT_NE(message.find("emit: the plan passes 1048576 bytes (flatbuffers' limit is 2 GiB) "
                         "while writing the instructions of stage 0"),
            std::string::npos)
      << message;
  info.maxPlanBytes = 64u << 20;
  EXPECT_TRUE(mlir::succeeded(emitPlan({stageProgram({2, 2}, {"dp", "tp"}, 20000)}, step_, info)));
}

// A mesh whose "pp" axis does not match the stage programs is an error.
TEST_F(EmitPlanTest, StagesMatchThePipelineAxis) {
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&context_, [&](mlir::Diagnostic &d) {
    message += d.str();
    return mlir::success();
  });
  auto bytes = emitPlan({stageProgram({2, 2, 2}, {"dp", "pp", "tp"})}, step_, PlanInfo());
  EXPECT_TRUE(mlir::failed(bytes));
  EXPECT_NE(message.find("emit: the mesh has 2 pipeline stages"), std::string::npos) << message;
}

} // namespace
} // namespace apc::emit
