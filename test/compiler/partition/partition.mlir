// RUN: apc-opt %s --split-input-file --ap-mesh="plan=dp=2" --ap-partition --ap-bucket-gradients | FileCheck %s

// Tests data parallelism on a training step: the batch is split, the loss divides by
// the all-reduced kept-token count, weight gradients (contractions over the batch) are
// all-reduced before the optimizer, and the returned loss is all-reduced.
// CHECK: module attributes {ap.parallel = #ap.parallel<dp = 2>}
// CHECK: shard.grid @mesh(shape = 2) {ap.axes = ["dp"]}
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<8x4xf32> {ap.name = "w", ap.role = "parameter"}
// CHECK-SAME: %arg5: tensor<2x3xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}
// CHECK-SAME: %arg6: tensor<2x3xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}
// CHECK-SAME: ap.partitioned
// CHECK: %[[C:.*]] = ap.count_kept %arg6 : (tensor<2x3xi64>) -> tensor<f32>
// CHECK-NEXT: %[[G:.*]] = shard.all_reduce %[[C]] on @mesh grid_axes = [0] {{(\{ap.bucket = [0-9]+ : i64\} )?}}: tensor<f32> -> tensor<f32>
// CHECK: %[[X:.*]] = ap.embedding %arg0, %arg5 : (tensor<8x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>
// CHECK: %[[L:.*]] = ap.cross_entropy %{{.*}}, %arg6 count %[[G]] : (tensor<2x3x8xf32>, tensor<2x3xi64>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[LW:.*]] = shard.all_reduce %[[L]] on @mesh grid_axes = [0] {{(\{ap.bucket = [0-9]+ : i64\} )?}}: tensor<f32> -> tensor<f32>
// CHECK: ap.cross_entropy_grad %{{.*}}, %arg6, %{{.*}} count %[[G]] : (tensor<2x3x8xf32>, tensor<2x3xi64>, tensor<f32>, tensor<f32>) -> tensor<2x3x8xf32>
// CHECK: %[[DW:.*]] = ap.matmul %{{.*}}, %{{.*}} {transpose_lhs = true} : (tensor<6x8xf32>, tensor<6x4xf32>) -> tensor<8x4xf32>
// CHECK: %[[E:.*]] = ap.embedding_grad %arg5, %{{.*}} : (tensor<2x3xi64>, tensor<2x3x4xf32>) -> tensor<8x4xf32>
// CHECK-NEXT: %[[SUM:.*]] = ap.add %[[DW]], %[[E]] : tensor<8x4xf32>
// CHECK-NEXT: %[[DWW:.*]] = shard.all_reduce %[[SUM]] on @mesh grid_axes = [0] {{(\{ap.bucket = [0-9]+ : i64\} )?}}: tensor<8x4xf32> -> tensor<8x4xf32>
// CHECK: %[[N:.*]] = ap.grad_norm %[[DWW]]
// CHECK: ap.adamw %arg0, %[[DWW]]
// CHECK: return %[[LW]], %[[N]]
func.func @train_step(%w: tensor<8x4xf32> {ap.name = "w", ap.role = "parameter"}, %m: tensor<8x4xf32> {ap.name = "exp_avg.w", ap.role = "optimizer_state"}, %v: tensor<8x4xf32> {ap.name = "exp_avg_sq.w", ap.role = "optimizer_state"}, %step: tensor<i64> {ap.name = "step", ap.role = "step"}, %lr: tensor<f32> {ap.name = "lr", ap.role = "learning_rate"}, %ids: tensor<4x3xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}, %labels: tensor<4x3xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> (tensor<f32> {ap.name = "loss"}, tensor<f32> {ap.name = "grad_norm"}, tensor<8x4xf32> {ap.name = "w"}, tensor<8x4xf32> {ap.name = "exp_avg.w"}, tensor<8x4xf32> {ap.name = "exp_avg_sq.w"}) {
  %x = ap.embedding %w, %ids : (tensor<8x4xf32>, tensor<4x3xi64>) -> tensor<4x3x4xf32>
  %logits = ap.linear %x, %w : (tensor<4x3x4xf32>, tensor<8x4xf32>) -> tensor<4x3x8xf32>
  %loss = ap.cross_entropy %logits, %labels : (tensor<4x3x8xf32>, tensor<4x3xi64>) -> tensor<f32>
  %seed = ap.fill {value = 1.0 : f64} : tensor<f32>
  %dl = ap.cross_entropy_grad %logits, %labels, %seed : (tensor<4x3x8xf32>, tensor<4x3xi64>, tensor<f32>) -> tensor<4x3x8xf32>
  %dl2 = ap.reshape %dl : tensor<4x3x8xf32> to tensor<12x8xf32>
  %x2 = ap.reshape %x : tensor<4x3x4xf32> to tensor<12x4xf32>
  %dx2 = ap.matmul %dl2, %w : (tensor<12x8xf32>, tensor<8x4xf32>) -> tensor<12x4xf32>
  %dx = ap.reshape %dx2 : tensor<12x4xf32> to tensor<4x3x4xf32>
  %dw = ap.matmul %dl2, %x2 {transpose_lhs = true} : (tensor<12x8xf32>, tensor<12x4xf32>) -> tensor<8x4xf32>
  %de = ap.embedding_grad %ids, %dx : (tensor<4x3xi64>, tensor<4x3x4xf32>) -> tensor<8x4xf32>
  %g = ap.add %dw, %de : tensor<8x4xf32>
  %n = ap.grad_norm %g : (tensor<8x4xf32>) -> tensor<f32>
  %p, %m2, %v2 = ap.adamw %w, %g, %m, %v, %step, %lr, %n : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<i64>, tensor<f32>, tensor<f32>) -> (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>)
  return %loss, %n, %p, %m2, %v2 : tensor<f32>, tensor<f32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>
}
