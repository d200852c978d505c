// RUN: apc-opt %s --ap-autodiff --ap-optimizer --ap-recompute=mode=full | FileCheck %s

// A forward op the loss does not need (here a silu whose result nobody reads, left by
// an edit of the model) is no backward reader. With a tied LM head (no layer mark) the
// loss is in layer 0's group; the clones still go after the loss, where
// the backward starts. Counted as one, it put them above the shifted labels that the
// cloned loss reads, and the step did not verify (found by test/fuzz/mlir_fuzz).
// CHECK-LABEL: func.func @train_step
// CHECK: ap.rms_norm
// CHECK-NEXT: ap.silu
// CHECK: %[[LABELS:.*]] = ap.shift_labels
// CHECK: ap.cross_entropy
// CHECK: ap.fill
// CHECK-NEXT: ap.rms_norm
// CHECK-NEXT: ap.linear
// CHECK-NEXT: ap.cross_entropy %{{.*}}, %[[LABELS]]
// CHECK: return
func.func @train_step(%x: tensor<1x4x8xf32> {ap.name = "x", ap.role = "input"},
                      %w: tensor<8xf32> {ap.layer = 0 : i64, ap.name = "model.layers.0.input_layernorm.weight", ap.role = "parameter"},
                      %head: tensor<16x8xf32> {ap.name = "model.embed_tokens.weight", ap.role = "parameter"},
                      %labels: tensor<1x4xi64> {ap.name = "labels", ap.role = "input"}) -> (tensor<f32> {ap.name = "loss"}) {
  %h = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  %dead = ap.silu %h : tensor<1x4x8xf32>
  %l = ap.shift_labels %labels : tensor<1x4xi64>
  %logits = ap.linear %h, %head : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %loss = ap.cross_entropy %logits, %l : (tensor<1x4x16xf32>, tensor<1x4xi64>) -> tensor<f32>
  return %loss : tensor<f32>
}
