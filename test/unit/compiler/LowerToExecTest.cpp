// Lowering a step to one device's program (compiler/lowering/LowerToExec.cpp): the
// buffers it keeps. A new state written straight into its argument's buffer leaves the
// buffer it was first given untouched; such a buffer must leave the program, or the
// arena planner would place it at the step's start (live from instruction 0) and take
// its bytes there. An all-reduce that is its input's only reader runs in place.
#include "compiler/lowering/LowerToExec.h"
#include "compiler/rules/Rules.h"

#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <set>

namespace apc::lowering {
namespace {

// 'w' is updated by an op that does not read it (its writer's output is retargeted to
// w's buffer), the loss is a norm.
const char *kStep = R"mlir(
func.func @train_step(%w: tensor<256xf32> {ap.name = "w", ap.role = "parameter"})
    -> (tensor<f32> {ap.name = "loss"}, tensor<256xf32> {ap.name = "w"}) {
  %a = ap.mul %w, %w : tensor<256xf32>
  %loss = ap.grad_norm %a : (tensor<256xf32>) -> tensor<f32>
  %new = ap.add %a, %a : tensor<256xf32>
  return %loss, %new : tensor<f32>, tensor<256xf32>
}
)mlir";

ExecProgram lower(mlir::MLIRContext &context, const char *source) {
  mlir::DialectRegistry registry;
  rules::registerApRules(registry); // the ops' cost rules
  context.appendDialectRegistry(registry);
  context.loadDialect<ap::ApDialect, mlir::func::FuncDialect, mlir::shard::ShardDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  EXPECT_TRUE(module);
  auto fn = *module->getOps<mlir::func::FuncOp>().begin();
  mlir::FailureOr<ExecProgram> program = lowerToExec(fn);
  EXPECT_TRUE(mlir::succeeded(program));
  return succeeded(program) ? std::move(*program) : ExecProgram();
}

TEST(LowerToExec, AStateWrittenIntoItsArgumentLeavesNoUntouchedBuffer) {
  mlir::MLIRContext context;
  ExecProgram p = lower(context, kStep);
  ASSERT_EQ(p.instructions.size(), 3u);
  // The add writes w's own buffer.
  EXPECT_EQ(p.instructions[2].kernel, "add");
  ASSERT_EQ(p.instructions[2].outputs.size(), 1u);
  EXPECT_EQ(p.buffers[size_t(p.instructions[2].outputs[0])].kind, BufferKind::Parameter);
  std::set<int> touched;
  for (const ExecInstruction &inst : p.instructions) {
    touched.insert(inst.inputs.begin(), inst.inputs.end());
    touched.insert(inst.outputs.begin(), inst.outputs.end());
  }
  for (size_t b = 0; b < p.buffers.size(); ++b)
    if (p.buffers[b].kind == BufferKind::Arena)
      EXPECT_TRUE(touched.count(int(b))) << "arena buffer " << b << " (" << p.buffers[b].name
                                         << ") is touched by no instruction";
  // w, the product and the loss: nothing else.
  EXPECT_EQ(p.buffers.size(), 3u);
  EXPECT_GE(p.loss, 0);
  EXPECT_LT(size_t(p.loss), p.buffers.size());
  // Names that were indices follow the renumbering.
  for (size_t b = 0; b < p.buffers.size(); ++b)
    if (!p.buffers[b].name.empty() && p.buffers[b].name[0] == '%')
      EXPECT_EQ(p.buffers[b].name, "%" + std::to_string(b));
}

const char *kReduced = R"mlir(
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
  shard.grid @mesh(shape = 2) {ap.axes = ["dp"]}
  func.func @train_step(%w: tensor<256xf32> {ap.name = "w", ap.role = "parameter"})
      -> (tensor<f32> {ap.name = "loss"}, tensor<256xf32> {ap.name = "g"}) {
    %a = ap.mul %w, %w : tensor<256xf32>
    %r = shard.all_reduce %a on @mesh grid_axes = [0] : tensor<256xf32> -> tensor<256xf32>
    %loss = ap.grad_norm %w : (tensor<256xf32>) -> tensor<f32>
    %kept = ap.mul %w, %w : tensor<256xf32>
    %s = shard.all_reduce %kept on @mesh grid_axes = [0] : tensor<256xf32> -> tensor<256xf32>
    %t = ap.add %s, %kept : tensor<256xf32>
    %u = ap.add %t, %r : tensor<256xf32>
    return %loss, %u : tensor<f32>, tensor<256xf32>
  }
}
)mlir";

TEST(LowerToExec, AnAllReduceRunsInPlaceWhereItIsItsInputsOnlyReader) {
  mlir::MLIRContext context;
  ExecProgram p = lower(context, kReduced);
  std::vector<const ExecInstruction *> reductions;
  for (const ExecInstruction &inst : p.instructions)
    if (inst.kernel == "all_reduce")
      reductions.push_back(&inst);
  ASSERT_EQ(reductions.size(), 2u);
  EXPECT_EQ(reductions[0]->inputs, reductions[0]->outputs) << "the only reader: in place";
  EXPECT_NE(reductions[1]->inputs, reductions[1]->outputs) << "its input is read later";
}

// Adjacent reductions fuse into one collective within a bucket (ap-bucket-gradients'
// `ap.bucket`), never across two: under gradient accumulation every reduction comes
// after the last backward, and one collective of all of them would need a staging buffer
// of every gradient.
const char *kBuckets = R"mlir(
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
  shard.grid @mesh(shape = 2) {ap.axes = ["dp"]}
  func.func @train_step(%w: tensor<256xf32> {ap.name = "w", ap.role = "parameter"})
      -> (tensor<f32> {ap.name = "loss"}, tensor<256xf32> {ap.name = "g"}) {
    %a = ap.mul %w, %w : tensor<256xf32>
    %b = ap.add %w, %w : tensor<256xf32>
    %c = ap.mul %a, %w : tensor<256xf32>
    %ra = shard.all_reduce %a on @mesh grid_axes = [0] {ap.bucket = 0 : i64} : tensor<256xf32> -> tensor<256xf32>
    %rb = shard.all_reduce %b on @mesh grid_axes = [0] {ap.bucket = 0 : i64} : tensor<256xf32> -> tensor<256xf32>
    %rc = shard.all_reduce %c on @mesh grid_axes = [0] {ap.bucket = 1 : i64} : tensor<256xf32> -> tensor<256xf32>
    %loss = ap.grad_norm %ra, %rb, %rc : (tensor<256xf32>, tensor<256xf32>, tensor<256xf32>) -> tensor<f32>
    %u = ap.add %rb, %rc : tensor<256xf32>
    return %loss, %u : tensor<f32>, tensor<256xf32>
  }
}
)mlir";

TEST(LowerToExec, AdjacentReductionsFuseWithinABucketOnly) {
  mlir::MLIRContext context;
  ExecProgram p = lower(context, kBuckets);
  std::vector<size_t> inputs;
  for (const ExecInstruction &inst : p.instructions)
    if (inst.kernel == "all_reduce")
      inputs.push_back(inst.inputs.size());
  EXPECT_EQ(inputs, (std::vector<size_t>{2, 1})) << "bucket 0 fused, bucket 1 alone";
}

} // namespace
} // namespace apc::lowering
