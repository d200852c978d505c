// RUN: apc-opt %s --ap-mesh="plan=mb=2" --ap-micro-batch | FileCheck %s
// RUN: apc-opt %s --ap-mesh="plan=dp=1" --ap-micro-batch | FileCheck %s --check-prefix=NONE
// RUN: not apc-opt %s --ap-mesh="plan=mb=3" 2>&1 | FileCheck %s --check-prefix=THREE
// RUN: apc-opt %s --ap-mesh="plan=mb=2" --ap-micro-batch | not apc-opt --ap-micro-batch 2>&1 | FileCheck %s --check-prefix=TWICE

// Every value of the batch is cut to batch/mb rows, flattened rows too; parameters are
// not; the mean loss divides by the new argument kept_tokens.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:.*]]: tensor<16x8xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"}
// CHECK-SAME: %[[IDS:.*]]: tensor<2x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}
// CHECK-SAME: %[[LAB:.*]]: tensor<2x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}
// CHECK-SAME: %[[KEPT:.*]]: tensor<f32> {ap.name = "kept_tokens", ap.role = "input"}
// CHECK-SAME: -> (tensor<f32> {ap.name = "loss"})
// CHECK-SAME: ap.micro_batches = 2 : i64
// CHECK: %[[E:.*]] = ap.embedding %[[W]], %[[IDS]] : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
// CHECK: %[[R:.*]] = ap.reshape %[[E]] : tensor<2x4x8xf32> to tensor<8x8xf32>
// CHECK: %[[L:.*]] = ap.linear %[[R]], %[[W]] : (tensor<8x8xf32>, tensor<16x8xf32>) -> tensor<8x16xf32>
// CHECK: ap.reshape %[[L]] : tensor<8x16xf32> to tensor<2x4x16xf32>
// CHECK: ap.shift_labels %[[LAB]] : tensor<2x4xi64>
// CHECK: ap.cross_entropy %{{.*}}, %{{.*}} count %[[KEPT]] : (tensor<2x4x16xf32>, tensor<2x4xi64>, tensor<f32>) -> tensor<f32>
// NONE-LABEL: func.func @train_step(
// NONE-NOT: kept_tokens
// NONE: tensor<4x4x8xf32>
// THREE: error: ap-mesh: plan field 'mb' (3) must divide the per-replica batch (4)
// TWICE: error: ap-micro-batch: @train_step is already the function of one micro-batch
func.func @train_step(%w: tensor<16x8xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"},
                      %ids: tensor<4x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"},
                      %labels: tensor<4x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"})
    -> (tensor<f32> {ap.name = "loss"}) {
  %e = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<4x4xi64>) -> tensor<4x4x8xf32>
  %r = ap.reshape %e : tensor<4x4x8xf32> to tensor<16x8xf32>
  %l = ap.linear %r, %w : (tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<16x16xf32>
  %logits = ap.reshape %l : tensor<16x16xf32> to tensor<4x4x16xf32>
  %s = ap.shift_labels %labels : tensor<4x4xi64>
  %loss = ap.cross_entropy %logits, %s : (tensor<4x4x16xf32>, tensor<4x4xi64>) -> tensor<f32>
  return %loss : tensor<f32>
}
