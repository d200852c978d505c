// RUN: apc-opt %s --ap-mesh="plan=cp=2" --ap-partition | FileCheck %s

// Tests how reshapes carry the context axis's split. [batch, seq, hidden] merged into
// (batch, seq) rows keeps it (the rows are local, as the linear's gradient needs); the
// sequence merged with a dim inside it ([batch, seq x hidden]) does not, and is gathered
// whole first; [batch, seq, heads, head_dim] keeps it on the seq dim.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[IDS:.*]] = shard.all_slice %arg1 on @mesh grid_axes = [1] slice_axis = 1 : tensor<2x8xi64> -> tensor<2x4xi64>
// CHECK-NEXT: %[[X:.*]] = ap.embedding %arg0, %[[IDS]] : (tensor<16x4xf32>, tensor<2x4xi64>) -> tensor<2x4x4xf32>
// CHECK-NEXT: %[[W:.*]] = shard.all_gather %[[X]] on @mesh grid_axes = [1] gather_axis = 1 : tensor<2x4x4xf32> -> tensor<2x8x4xf32>
// CHECK-NEXT: ap.reshape %[[X]] : tensor<2x4x4xf32> to tensor<8x4xf32>
// CHECK-NEXT: ap.reshape %[[W]] : tensor<2x8x4xf32> to tensor<2x32xf32>
// CHECK-NEXT: ap.reshape %[[X]] : tensor<2x4x4xf32> to tensor<2x4x2x2xf32>
module attributes {} {
func.func @train_step(%w: tensor<16x4xf32> {ap.name = "w", ap.role = "parameter"},
                      %ids: tensor<2x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"})
    -> (tensor<f32> {ap.name = "loss"}) {
  %x = ap.embedding %w, %ids : (tensor<16x4xf32>, tensor<2x8xi64>) -> tensor<2x8x4xf32>
  %rows = ap.reshape %x : tensor<2x8x4xf32> to tensor<16x4xf32>
  %flat = ap.reshape %x : tensor<2x8x4xf32> to tensor<2x32xf32>
  %heads = ap.reshape %x : tensor<2x8x4xf32> to tensor<2x8x2x2xf32>
  %a = ap.reduce_sum %rows {dims = array<i64: 0, 1>} : tensor<16x4xf32> to tensor<f32>
  %b = ap.reduce_sum %flat {dims = array<i64: 0, 1>} : tensor<2x32xf32> to tensor<f32>
  %c = ap.reduce_sum %heads {dims = array<i64: 0, 1, 2, 3>} : tensor<2x8x2x2xf32> to tensor<f32>
  %ab = ap.add %a, %b : tensor<f32>
  %loss = ap.add %ab, %c : tensor<f32>
  return %loss : tensor<f32>
}
}
