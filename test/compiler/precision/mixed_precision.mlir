// RUN: apc-opt %s --split-input-file --ap-mixed-precision | FileCheck %s
// RUN: apc-opt %s --split-input-file --ap-mixed-precision=compute-type=f32 | FileCheck %s --check-prefix=F32

// Tests that f32 parameters stay f32 masters cast once to bf16, that compute is bf16,
// and that the logits are cast back to f32 for the loss.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<8x4xf32> {ap.name = "w", ap.role = "parameter"}
// CHECK-SAME: ap.precision = "bf16"
// CHECK: %[[WB:.*]] = ap.cast %arg0 : tensor<8x4xf32> to tensor<8x4xbf16>
// CHECK: %[[XB:.*]] = ap.cast %arg1 : tensor<2x4xf32> to tensor<2x4xbf16>
// CHECK: %[[Y:.*]] = ap.linear %[[XB]], %[[WB]] : (tensor<2x4xbf16>, tensor<8x4xbf16>) -> tensor<2x8xbf16>
// CHECK: %[[S:.*]] = ap.silu %[[Y]] : tensor<2x8xbf16>
// CHECK: %[[UP:.*]] = ap.cast %[[S]] : tensor<2x8xbf16> to tensor<2x8xf32>
// CHECK: ap.cross_entropy %[[UP]], %arg2 : (tensor<2x8xf32>, tensor<2xi64>) -> tensor<f32>
// F32-LABEL: func.func @train_step
// F32-NOT: ap.cast
// F32: ap.linear %arg1, %arg0 : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
func.func @train_step(%w: tensor<8x4xf32> {ap.name = "w", ap.role = "parameter"}, %x: tensor<2x4xf32> {ap.name = "x", ap.role = "input"}, %labels: tensor<2xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> tensor<f32> {
  %0 = ap.linear %x, %w : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  %1 = ap.silu %0 : tensor<2x8xf32>
  %2 = ap.cross_entropy %1, %labels : (tensor<2x8xf32>, tensor<2xi64>) -> tensor<f32>
  return %2 : tensor<f32>
}

// -----

// Tests that a bf16 import gets f32 master parameters, that its existing upcast of the
// logits is kept, and that with compute-type=f32 everything becomes f32 and the
// identity cast disappears.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<6x4xf32> {ap.name = "emb", ap.role = "parameter"}
// CHECK: %[[E:.*]] = ap.cast %arg0 : tensor<6x4xf32> to tensor<6x4xbf16>
// CHECK: %[[H:.*]] = ap.embedding %[[E]], %arg1 : (tensor<6x4xbf16>, tensor<3xi64>) -> tensor<3x4xbf16>
// CHECK: %[[L:.*]] = ap.linear %[[H]], %[[E]] : (tensor<3x4xbf16>, tensor<6x4xbf16>) -> tensor<3x6xbf16>
// CHECK: %[[UP:.*]] = ap.cast %[[L]] : tensor<3x6xbf16> to tensor<3x6xf32>
// CHECK: ap.cross_entropy %[[UP]]
// F32-LABEL: func.func @train_step
// F32-SAME: %arg0: tensor<6x4xf32>
// F32-NOT: ap.cast
// F32: %[[L:.*]] = ap.linear %{{.*}}, %arg0 : (tensor<3x4xf32>, tensor<6x4xf32>) -> tensor<3x6xf32>
// F32-NEXT: ap.cross_entropy %[[L]]
func.func @train_step(%emb: tensor<6x4xbf16> {ap.name = "emb", ap.role = "parameter"}, %ids: tensor<3xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<f32> {
  %0 = ap.embedding %emb, %ids : (tensor<6x4xbf16>, tensor<3xi64>) -> tensor<3x4xbf16>
  %1 = ap.linear %0, %emb : (tensor<3x4xbf16>, tensor<6x4xbf16>) -> tensor<3x6xbf16>
  %2 = ap.cast %1 : tensor<3x6xbf16> to tensor<3x6xf32>
  %3 = ap.cross_entropy %2, %ids : (tensor<3x6xf32>, tensor<3xi64>) -> tensor<f32>
  return %3 : tensor<f32>
}

// -----

// Tests that each parameter is cast right before its first user, not at the top: the
// working copy is made no earlier than needed, and the gradient's cast back to f32
// (its transpose) comes as soon as the gradient is complete.
// CHECK-LABEL: func.func @casts_at_first_use
// CHECK: %[[W1:.*]] = ap.cast %arg0 : tensor<4x4xf32> to tensor<4x4xbf16>
// CHECK-NEXT: ap.cast %arg2
// CHECK-NEXT: %[[Y1:.*]] = ap.linear %{{.*}}, %[[W1]]
// CHECK-NEXT: %[[S:.*]] = ap.silu %[[Y1]]
// CHECK-NEXT: %[[W2:.*]] = ap.cast %arg1 : tensor<8x4xf32> to tensor<8x4xbf16>
// CHECK-NEXT: ap.linear %[[S]], %[[W2]]
func.func @casts_at_first_use(%w1: tensor<4x4xf32> {ap.name = "w1", ap.role = "parameter"}, %w2: tensor<8x4xf32> {ap.name = "w2", ap.role = "parameter"}, %x: tensor<2x4xf32> {ap.name = "x", ap.role = "input"}, %labels: tensor<2xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> tensor<f32> {
  %0 = ap.linear %x, %w1 : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32>
  %1 = ap.silu %0 : tensor<2x4xf32>
  %2 = ap.linear %1, %w2 : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  %3 = ap.cross_entropy %2, %labels : (tensor<2x8xf32>, tensor<2xi64>) -> tensor<f32>
  return %3 : tensor<f32>
}
