// RUN: apc-opt %s | FileCheck %s
// RUN: apc-opt %s | apc-opt | FileCheck %s
// RUN: apc-opt %s --mlir-print-op-generic | apc-opt | FileCheck %s

// Tests that embedding parses and prints with i32 and i64 ids.
// CHECK-LABEL: func.func @embedding
// CHECK: ap.embedding %{{.*}}, %{{.*}} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
// CHECK: ap.embedding %{{.*}}, %{{.*}} : (tensor<16x8xbf16>, tensor<3xi64>) -> tensor<3x8xbf16>
func.func @embedding(%w: tensor<16x8xf32>, %ids: tensor<2x4xi32>, %wb: tensor<16x8xbf16>, %ids64: tensor<3xi64>) -> (tensor<2x4x8xf32>, tensor<3x8xbf16>) {
  %0 = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %1 = ap.embedding %wb, %ids64 : (tensor<16x8xbf16>, tensor<3xi64>) -> tensor<3x8xbf16>
  return %0, %1 : tensor<2x4x8xf32>, tensor<3x8xbf16>
}

// Tests that linear takes the [out, in] weight layout.
// CHECK-LABEL: func.func @linear
// CHECK: ap.linear %{{.*}}, %{{.*}} : (tensor<2x4x8xf16>, tensor<12x8xf16>) -> tensor<2x4x12xf16>
func.func @linear(%x: tensor<2x4x8xf16>, %w: tensor<12x8xf16>) -> tensor<2x4x12xf16> {
  %0 = ap.linear %x, %w : (tensor<2x4x8xf16>, tensor<12x8xf16>) -> tensor<2x4x12xf16>
  return %0 : tensor<2x4x12xf16>
}

// Tests that matmul keeps its transpose flags.
// CHECK-LABEL: func.func @matmul
// CHECK: ap.matmul %{{.*}}, %{{.*}} : (tensor<3x4x5xf32>, tensor<3x5x6xf32>) -> tensor<3x4x6xf32>
// CHECK: ap.matmul %{{.*}}, %{{.*}} {transpose_lhs = true, transpose_rhs = true} : (tensor<5x4xf32>, tensor<6x5xf32>) -> tensor<4x6xf32>
func.func @matmul(%a: tensor<3x4x5xf32>, %b: tensor<3x5x6xf32>, %c: tensor<5x4xf32>, %d: tensor<6x5xf32>) -> (tensor<3x4x6xf32>, tensor<4x6xf32>) {
  %0 = ap.matmul %a, %b : (tensor<3x4x5xf32>, tensor<3x5x6xf32>) -> tensor<3x4x6xf32>
  %1 = ap.matmul %c, %d {transpose_lhs = true, transpose_rhs = true} : (tensor<5x4xf32>, tensor<6x5xf32>) -> tensor<4x6xf32>
  return %0, %1 : tensor<3x4x6xf32>, tensor<4x6xf32>
}

// Tests that rms_norm keeps its epsilon.
// CHECK-LABEL: func.func @rms_norm
// CHECK: ap.rms_norm %{{.*}}, %{{.*}} {epsilon = 1.000000e-05 : f64} : (tensor<2x4x8xbf16>, tensor<8xbf16>) -> tensor<2x4x8xbf16>
func.func @rms_norm(%x: tensor<2x4x8xbf16>, %w: tensor<8xbf16>) -> tensor<2x4x8xbf16> {
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x4x8xbf16>, tensor<8xbf16>) -> tensor<2x4x8xbf16>
  return %0 : tensor<2x4x8xbf16>
}

// Tests that rope prints the default and the llama3 scaling attributes.
// CHECK-LABEL: func.func @rope
// CHECK: ap.rope %{{.*}} {theta = 5.000000e+05 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
// CHECK: ap.rope %{{.*}} {factor = 8.000000e+00 : f64, high_freq_factor = 4.000000e+00 : f64, low_freq_factor = 1.000000e+00 : f64, original_max_position_embeddings = 8192 : i64, position_offset = 4 : i64, rope_type = "llama3", theta = 5.000000e+05 : f64}
func.func @rope(%x: tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>, tensor<2x4x3x8xf32>) {
  %0 = ap.rope %x {theta = 500000.0 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  %1 = ap.rope %x {theta = 500000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = 8192 : i64, position_offset = 4 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return %0, %1 : tensor<2x4x3x8xf32>, tensor<2x4x3x8xf32>
}

// Tests grouped-query attention (4 query heads over 2 kv heads).
// CHECK-LABEL: func.func @attention
// CHECK: ap.attention %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
// CHECK: ap.attention %{{.*}}, %{{.*}}, %{{.*}} {causal = false, scale = 5.000000e-01 : f64}
func.func @attention(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x4x8xf32>) {
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  %1 = ap.attention %q, %k, %v {causal = false, scale = 0.5 : f64} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  return %0, %1 : tensor<2x5x4x8xf32>, tensor<2x5x4x8xf32>
}

// Tests the elementwise ops.
// CHECK-LABEL: func.func @elementwise
// CHECK: ap.silu %{{.*}} : tensor<2x3xf32>
// CHECK: ap.mul %{{.*}}, %{{.*}} : tensor<2x3xf32>
// CHECK: ap.add %{{.*}}, %{{.*}} : tensor<2x3xf32>
func.func @elementwise(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = ap.silu %a : tensor<2x3xf32>
  %1 = ap.mul %0, %b : tensor<2x3xf32>
  %2 = ap.add %1, %a : tensor<2x3xf32>
  return %2 : tensor<2x3xf32>
}

// Tests cast between every kind of element type.
// CHECK-LABEL: func.func @cast
// CHECK: ap.cast %{{.*}} : tensor<2x3xf32> to tensor<2x3xbf16>
// CHECK: ap.cast %{{.*}} : tensor<2x3xbf16> to tensor<2x3xf16>
// CHECK: ap.cast %{{.*}} : tensor<2x3xi32> to tensor<2x3xi64>
// CHECK: ap.cast %{{.*}} : tensor<2x3xi64> to tensor<2x3xf32>
func.func @cast(%a: tensor<2x3xf32>, %i: tensor<2x3xi32>) -> (tensor<2x3xf16>, tensor<2x3xf32>) {
  %0 = ap.cast %a : tensor<2x3xf32> to tensor<2x3xbf16>
  %1 = ap.cast %0 : tensor<2x3xbf16> to tensor<2x3xf16>
  %2 = ap.cast %i : tensor<2x3xi32> to tensor<2x3xi64>
  %3 = ap.cast %2 : tensor<2x3xi64> to tensor<2x3xf32>
  return %1, %3 : tensor<2x3xf16>, tensor<2x3xf32>
}

// Tests reshape, transpose and reduce_sum.
// CHECK-LABEL: func.func @layout
// CHECK: ap.reshape %{{.*}} : tensor<2x12xf32> to tensor<2x3x4xf32>
// CHECK: ap.transpose %{{.*}} {permutation = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> to tensor<4x2x3xf32>
// CHECK: ap.reduce_sum %{{.*}} {dims = array<i64: 0, 2>} : tensor<4x2x3xf32> to tensor<2xf32>
// CHECK: ap.reduce_sum %{{.*}} {dims = array<i64: 1>, keep_dims = true} : tensor<4x2x3xf32> to tensor<4x1x3xf32>
func.func @layout(%a: tensor<2x12xf32>) -> (tensor<2xf32>, tensor<4x1x3xf32>) {
  %0 = ap.reshape %a : tensor<2x12xf32> to tensor<2x3x4xf32>
  %1 = ap.transpose %0 {permutation = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> to tensor<4x2x3xf32>
  %2 = ap.reduce_sum %1 {dims = array<i64: 0, 2>} : tensor<4x2x3xf32> to tensor<2xf32>
  %3 = ap.reduce_sum %1 {dims = array<i64: 1>, keep_dims = true} : tensor<4x2x3xf32> to tensor<4x1x3xf32>
  return %2, %3 : tensor<2xf32>, tensor<4x1x3xf32>
}

// Tests the causal-LM loss: shifted labels and cross-entropy.
// CHECK-LABEL: func.func @loss
// CHECK: ap.shift_labels %{{.*}} : tensor<2x5xi64>
// CHECK: ap.cross_entropy %{{.*}}, %{{.*}} : (tensor<2x5x16xf32>, tensor<2x5xi64>) -> tensor<f32>
// CHECK: ap.cross_entropy %{{.*}}, %{{.*}} {ignore_index = 0 : i64, reduction = "sum"}
func.func @loss(%logits: tensor<2x5x16xf32>, %labels: tensor<2x5xi64>) -> (tensor<f32>, tensor<f32>) {
  %0 = ap.shift_labels %labels : tensor<2x5xi64>
  %1 = ap.cross_entropy %logits, %0 : (tensor<2x5x16xf32>, tensor<2x5xi64>) -> tensor<f32>
  %2 = ap.cross_entropy %logits, %0 {ignore_index = 0 : i64, reduction = "sum"} : (tensor<2x5x16xf32>, tensor<2x5xi64>) -> tensor<f32>
  return %1, %2 : tensor<f32>, tensor<f32>
}
