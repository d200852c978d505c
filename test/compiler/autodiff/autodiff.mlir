// RUN: apc-opt %s --split-input-file --ap-autodiff | FileCheck %s

// Tests that the seed is 1, that a sum's gradient is a broadcast, and that the
// result is (loss, grad.<name>) with the gradient role.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32> {ap.name = "loss"}, tensor<2x3xf32> {ap.name = "grad.x", ap.role = "gradient"})
// CHECK: %[[L:.*]] = ap.reduce_sum %arg0 {dims = array<i64: 0, 1>}
// CHECK: %[[SEED:.*]] = ap.fill {value = 1.000000e+00 : f64} : tensor<f32>
// CHECK: %[[G:.*]] = ap.broadcast %[[SEED]] {dims = array<i64: 0, 1>} : tensor<f32> to tensor<2x3xf32>
// CHECK: return %[[L]], %[[G]]
func.func @train_step(%x: tensor<2x3xf32> {ap.name = "x", ap.role = "parameter"}) -> (tensor<f32> {ap.name = "loss"}) {
  %0 = ap.reduce_sum %x {dims = array<i64: 0, 1>} : tensor<2x3xf32> to tensor<f32>
  return %0 : tensor<f32>
}

// -----

// Tests linear: dx = dy w (reshaped to 2-D GEMMs), dw = dy^T x.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[DY:.*]] = ap.broadcast
// CHECK: %[[DY2:.*]] = ap.reshape %[[DY]] : tensor<2x3x5xf32> to tensor<6x5xf32>
// CHECK: %[[X2:.*]] = ap.reshape %arg0 : tensor<2x3x4xf32> to tensor<6x4xf32>
// CHECK: %[[DX2:.*]] = ap.matmul %[[DY2]], %arg1 : (tensor<6x5xf32>, tensor<5x4xf32>) -> tensor<6x4xf32>
// CHECK: %[[DX:.*]] = ap.reshape %[[DX2]] : tensor<6x4xf32> to tensor<2x3x4xf32>
// CHECK: %[[DW:.*]] = ap.matmul %[[DY2]], %[[X2]] {transpose_lhs = true} : (tensor<6x5xf32>, tensor<6x4xf32>) -> tensor<5x4xf32>
// CHECK: return %{{.*}}, %[[DX]], %[[DW]]
func.func @train_step(%x: tensor<2x3x4xf32> {ap.name = "x", ap.role = "parameter"}, %w: tensor<5x4xf32> {ap.name = "w", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.linear %x, %w : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 0, 1, 2>} : tensor<2x3x5xf32> to tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Tests matmul with a transposed lhs: dA = B dC^T keeps A's [K, M] layout, dB = A dC.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[DC:.*]] = ap.broadcast
// CHECK: ap.matmul %arg1, %[[DC]] {transpose_rhs = true} : (tensor<4x6xf32>, tensor<3x6xf32>) -> tensor<4x3xf32>
// CHECK: ap.matmul %arg0, %[[DC]] : (tensor<4x3xf32>, tensor<3x6xf32>) -> tensor<4x6xf32>
func.func @train_step(%a: tensor<4x3xf32> {ap.name = "a", ap.role = "parameter"}, %b: tensor<4x6xf32> {ap.name = "b", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.matmul %a, %b {transpose_lhs = true} : (tensor<4x3xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 0, 1>} : tensor<3x6xf32> to tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Tests the fused gradient ops of embedding, rms_norm, rope, attention and silu, and
// that integer ids get no gradient.
// CHECK-LABEL: func.func @train_step
// CHECK: ap.silu_grad %{{.*}}, %{{.*}} : tensor<1x4x2x8xf32>
// CHECK: %[[GQ:.*]], %[[GK:.*]], %[[GV:.*]] = ap.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>) -> (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>)
// CHECK: ap.rope_grad %[[GK]] {theta = 1.000000e+04 : f64}
// CHECK: ap.rope_grad %[[GQ]] {theta = 1.000000e+04 : f64}
// CHECK: %[[GX:.*]], %[[GW:.*]] = ap.rms_norm_grad %{{.*}}, %arg1, %{{.*}} {epsilon = 1.000000e-05 : f64}
// CHECK: %[[GE:.*]] = ap.embedding_grad %arg2, %{{.*}} : (tensor<1x4xi64>, tensor<1x4x16xf32>) -> tensor<10x16xf32>
// CHECK: return %{{.*}}, %[[GE]], %[[GW]] : tensor<f32>, tensor<10x16xf32>, tensor<16xf32>
func.func @train_step(%emb: tensor<10x16xf32> {ap.name = "emb", ap.role = "parameter"}, %norm: tensor<16xf32> {ap.name = "norm", ap.role = "parameter"}, %ids: tensor<1x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<f32> {
  %0 = ap.embedding %emb, %ids : (tensor<10x16xf32>, tensor<1x4xi64>) -> tensor<1x4x16xf32>
  %1 = ap.rms_norm %0, %norm {epsilon = 1.0e-05 : f64} : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
  %2 = ap.reshape %1 : tensor<1x4x16xf32> to tensor<1x4x2x8xf32>
  %3 = ap.rope %2 {theta = 10000.0 : f64} : (tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
  %4 = ap.rope %2 {theta = 10000.0 : f64} : (tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
  %5 = ap.attention %3, %4, %2 : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
  %6 = ap.silu %5 : tensor<1x4x2x8xf32>
  %7 = ap.reduce_sum %6 {dims = array<i64: 0, 1, 2, 3>} : tensor<1x4x2x8xf32> to tensor<f32>
  return %7 : tensor<f32>
}

// -----

// Tests that a value used twice (a tied weight) receives the sum of both gradients,
// and that mul's gradient multiplies by the other operand.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[DY:.*]] = ap.broadcast
// CHECK: %[[D1:.*]] = ap.mul %[[DY]], %arg0 : tensor<3xf32>
// CHECK: %[[D2:.*]] = ap.mul %[[DY]], %arg0 : tensor<3xf32>
// CHECK: %[[SUM:.*]] = ap.add %[[D1]], %[[D2]] : tensor<3xf32>
// CHECK: return %{{.*}}, %[[SUM]]
func.func @train_step(%w: tensor<3xf32> {ap.name = "w", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.mul %w, %w : tensor<3xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 0>} : tensor<3xf32> to tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Tests cross_entropy (gradient op fed by the seed; no gradient for labels or for
// shift_labels), and the cast, reshape and transpose rules on the way to the weight.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[SEED:.*]] = ap.fill {value = 1.000000e+00 : f64} : tensor<f32>
// CHECK: %[[DL:.*]] = ap.cross_entropy_grad %{{.*}}, %{{.*}}, %[[SEED]] : (tensor<2x4x6xf32>, tensor<2x4xi64>, tensor<f32>) -> tensor<2x4x6xf32>
// CHECK: %[[DC:.*]] = ap.cast %[[DL]] : tensor<2x4x6xf32> to tensor<2x4x6xbf16>
// CHECK: %[[DR:.*]] = ap.reshape %[[DC]] : tensor<2x4x6xbf16> to tensor<8x6xbf16>
// CHECK: %[[DT:.*]] = ap.transpose %[[DR]] {permutation = array<i64: 1, 0>} : tensor<8x6xbf16> to tensor<6x8xbf16>
// CHECK: %[[DW:.*]] = ap.cast %[[DT]] : tensor<6x8xbf16> to tensor<6x8xf32>
// CHECK: return %{{.*}}, %[[DW]] : tensor<f32>, tensor<6x8xf32>
func.func @train_step(%w: tensor<6x8xf32> {ap.name = "w", ap.role = "parameter"}, %labels: tensor<2x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> tensor<f32> {
  %0 = ap.cast %w : tensor<6x8xf32> to tensor<6x8xbf16>
  %1 = ap.transpose %0 {permutation = array<i64: 1, 0>} : tensor<6x8xbf16> to tensor<8x6xbf16>
  %2 = ap.reshape %1 : tensor<8x6xbf16> to tensor<2x4x6xbf16>
  %3 = ap.cast %2 : tensor<2x4x6xbf16> to tensor<2x4x6xf32>
  %4 = ap.shift_labels %labels : tensor<2x4xi64>
  %5 = ap.cross_entropy %3, %4 : (tensor<2x4x6xf32>, tensor<2x4xi64>) -> tensor<f32>
  return %5 : tensor<f32>
}

// -----

// Tests reduce_sum with keep_dims (reshape, then broadcast) and broadcast's own
// gradient (a reduce_sum), and a zero gradient for an unused parameter.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[SEED:.*]] = ap.fill {value = 1.000000e+00 : f64}
// CHECK: %[[B:.*]] = ap.broadcast %[[SEED]] {dims = array<i64: 0, 1>} : tensor<f32> to tensor<2x1xf32>
// CHECK: %[[R:.*]] = ap.reshape %[[B]] : tensor<2x1xf32> to tensor<2xf32>
// CHECK: %[[B2:.*]] = ap.broadcast %[[R]] {dims = array<i64: 1>} : tensor<2xf32> to tensor<2x3xf32>
// CHECK: %[[S:.*]] = ap.reduce_sum %[[B2]] {dims = array<i64: 0>} : tensor<2x3xf32> to tensor<3xf32>
// CHECK: %[[Z:.*]] = ap.fill {value = 0.000000e+00 : f64} : tensor<7xf32>
// CHECK: return %{{.*}}, %[[S]], %[[Z]]
func.func @train_step(%v: tensor<3xf32> {ap.name = "v", ap.role = "parameter"}, %unused: tensor<7xf32> {ap.name = "unused", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.broadcast %v {dims = array<i64: 0>} : tensor<3xf32> to tensor<2x3xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 1>, keep_dims = true} : tensor<2x3xf32> to tensor<2x1xf32>
  %2 = ap.reduce_sum %1 {dims = array<i64: 0, 1>} : tensor<2x1xf32> to tensor<f32>
  return %2 : tensor<f32>
}

// -----

// Tests add as a forward op: both operands get the incoming gradient unchanged.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: tensor<2x3xf32> {ap.name = "grad.x", ap.role = "gradient"}, tensor<2x3xf32> {ap.name = "grad.y", ap.role = "gradient"}
// CHECK: %[[L:.*]] = ap.reduce_sum
// CHECK: %[[SEED:.*]] = ap.fill {value = 1.000000e+00 : f64} : tensor<f32>
// CHECK: %[[DY:.*]] = ap.broadcast %[[SEED]] {dims = array<i64: 0, 1>} : tensor<f32> to tensor<2x3xf32>
// CHECK-NOT: ap.add
// CHECK: return %[[L]], %[[DY]], %[[DY]] : tensor<f32>, tensor<2x3xf32>, tensor<2x3xf32>
func.func @train_step(%x: tensor<2x3xf32> {ap.name = "x", ap.role = "parameter"}, %y: tensor<2x3xf32> {ap.name = "y", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.add %x, %y : tensor<2x3xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 0, 1>} : tensor<2x3xf32> to tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Tests add(x, x): the gradients of the two uses of x are summed (an ap.add of dy and dy).
// CHECK-LABEL: func.func @train_step
// CHECK: %[[L:.*]] = ap.reduce_sum
// CHECK: %[[SEED:.*]] = ap.fill {value = 1.000000e+00 : f64} : tensor<f32>
// CHECK: %[[DY:.*]] = ap.broadcast %[[SEED]] {dims = array<i64: 0, 1>} : tensor<f32> to tensor<2x3xf32>
// CHECK: %[[DX:.*]] = ap.add %[[DY]], %[[DY]] : tensor<2x3xf32>
// CHECK: return %[[L]], %[[DX]] : tensor<f32>, tensor<2x3xf32>
func.func @train_step(%x: tensor<2x3xf32> {ap.name = "x", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.add %x, %x : tensor<2x3xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 0, 1>} : tensor<2x3xf32> to tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Tests that a linear with an empty output dim (a weight of no rows) keeps the input's
// rows when its gradient flattens dy: dx is [2, 3, 4] again (the flattening divided the
// elements by the last dim and lost them; found by test/fuzz/mlir_fuzz).
// CHECK-LABEL: func.func @train_step
// CHECK: ap.reshape %{{.*}} : tensor<2x3x0xf32> to tensor<6x0xf32>
// CHECK: ap.matmul %{{.*}}, %arg1 : (tensor<6x0xf32>, tensor<0x4xf32>) -> tensor<6x4xf32>
// CHECK-NEXT: ap.reshape %{{.*}} : tensor<6x4xf32> to tensor<2x3x4xf32>
func.func @train_step(%x: tensor<2x3x4xf32> {ap.name = "x", ap.role = "parameter"},
                      %w: tensor<0x4xf32> {ap.name = "w", ap.role = "parameter"}) -> tensor<f32> {
  %y = ap.linear %x, %w : (tensor<2x3x4xf32>, tensor<0x4xf32>) -> tensor<2x3x0xf32>
  %s = ap.reduce_sum %y {dims = array<i64: 0, 1, 2>} : tensor<2x3x0xf32> to tensor<f32>
  return %s : tensor<f32>
}
