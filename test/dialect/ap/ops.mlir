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

// Tests that embedding and embedding_grad keep the vocabulary shard axis of partitioned IR.
// CHECK-LABEL: func.func @embedding_vocab_shard
// CHECK: ap.embedding %{{.*}}, %{{.*}} {vocab_shard_axis = 1 : i64} : (tensor<8x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
// CHECK: ap.embedding_grad %{{.*}}, %{{.*}} {vocab_shard_axis = 0 : i64} : (tensor<2x4xi32>, tensor<2x4x8xf32>) -> tensor<8x8xf32>
func.func @embedding_vocab_shard(%w: tensor<8x8xf32>, %ids: tensor<2x4xi32>) -> (tensor<2x4x8xf32>, tensor<8x8xf32>) {
  %0 = ap.embedding %w, %ids {vocab_shard_axis = 1 : i64} : (tensor<8x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %1 = ap.embedding_grad %ids, %0 {vocab_shard_axis = 0 : i64} : (tensor<2x4xi32>, tensor<2x4x8xf32>) -> tensor<8x8xf32>
  return %0, %1 : tensor<2x4x8xf32>, tensor<8x8xf32>
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

// Tests that sqrt prints one type.
// CHECK-LABEL: func.func @sqrt
// CHECK: ap.sqrt %{{.*}} : tensor<f32>
// CHECK: ap.sqrt %{{.*}} : tensor<2x3xbf16>
func.func @sqrt(%a: tensor<f32>, %b: tensor<2x3xbf16>) -> (tensor<f32>, tensor<2x3xbf16>) {
  %0 = ap.sqrt %a : tensor<f32>
  %1 = ap.sqrt %b : tensor<2x3xbf16>
  return %0, %1 : tensor<f32>, tensor<2x3xbf16>
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

// Tests count_kept with the default and an explicit ignore_index, i32 and i64 labels,
// and its result as the global kept count of cross_entropy.
// CHECK-LABEL: func.func @count_kept
// CHECK: %[[N:[a-z_0-9]+]] = ap.count_kept %{{.*}} : (tensor<2x5xi64>) -> tensor<f32>
// CHECK: ap.count_kept %{{.*}} {ignore_index = 0 : i64} : (tensor<7xi32>) -> tensor<f32>
// CHECK: ap.cross_entropy %{{.*}}, %{{.*}} count %[[N]] : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<f32>
func.func @count_kept(%logits: tensor<2x5x16xf32>, %labels: tensor<2x5xi64>, %ids: tensor<7xi32>) -> (tensor<f32>, tensor<f32>) {
  %0 = ap.count_kept %labels : (tensor<2x5xi64>) -> tensor<f32>
  %1 = ap.count_kept %ids {ignore_index = 0 : i64} : (tensor<7xi32>) -> tensor<f32>
  %2 = ap.cross_entropy %logits, %labels count %0 : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<f32>
  return %1, %2 : tensor<f32>, tensor<f32>
}

// Tests the vocabulary-parallel loss ops, with and without the optional kept count.
// CHECK-LABEL: func.func @vocab_parallel_loss
// CHECK: %[[M:[a-z_0-9]+]] = ap.vocab_parallel_max %{{.*}} : (tensor<2x5x8xbf16>) -> tensor<2x5xf32>
// CHECK: %[[SE:[a-z_0-9]+]], %[[TL:[a-z_0-9]+]] = ap.vocab_parallel_stats %{{.*}}, %{{.*}}, %[[M]] {vocab_shard_axis = 1 : i64} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
// CHECK: ap.vocab_parallel_stats %{{.*}}, %{{.*}}, %[[M]] {ignore_index = 0 : i64} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
// CHECK: ap.vocab_parallel_loss %[[M]], %[[SE]], %[[TL]], %{{.*}} : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<f32>
// CHECK: ap.vocab_parallel_loss %[[M]], %[[SE]], %[[TL]], %{{.*}} count %{{.*}} {ignore_index = -1 : i64, reduction = "sum"} : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<f32>
// CHECK: ap.vocab_parallel_loss_grad %{{.*}}, %{{.*}}, %[[M]], %[[SE]], %{{.*}} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xbf16>
// CHECK: ap.vocab_parallel_loss_grad %{{.*}}, %{{.*}}, %[[M]], %[[SE]], %{{.*}} count %{{.*}} {reduction = "sum", vocab_shard_axis = 0 : i64} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>, tensor<f32>) -> tensor<2x5x8xbf16>
func.func @vocab_parallel_loss(%logits: tensor<2x5x8xbf16>, %labels: tensor<2x5xi64>, %dl: tensor<f32>, %n: tensor<f32>) -> (tensor<f32>, tensor<f32>, tensor<2x5x8xbf16>, tensor<2x5x8xbf16>, tensor<2x5xf32>) {
  %m = ap.vocab_parallel_max %logits : (tensor<2x5x8xbf16>) -> tensor<2x5xf32>
  %s:2 = ap.vocab_parallel_stats %logits, %labels, %m {vocab_shard_axis = 1 : i64} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  %t:2 = ap.vocab_parallel_stats %logits, %labels, %m {ignore_index = 0 : i64} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  %0 = ap.vocab_parallel_loss %m, %s#0, %s#1, %labels : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<f32>
  %1 = ap.vocab_parallel_loss %m, %s#0, %s#1, %labels count %n {ignore_index = -1 : i64, reduction = "sum"} : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<f32>
  %2 = ap.vocab_parallel_loss_grad %logits, %labels, %m, %s#0, %dl : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xbf16>
  %3 = ap.vocab_parallel_loss_grad %logits, %labels, %m, %s#0, %dl count %n {vocab_shard_axis = 0 : i64, reduction = "sum"} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>, tensor<f32>) -> tensor<2x5x8xbf16>
  return %0, %1, %2, %3, %t#1 : tensor<f32>, tensor<f32>, tensor<2x5x8xbf16>, tensor<2x5x8xbf16>, tensor<2x5xf32>
}

// Tests that fill prints its value and result type.
// CHECK-LABEL: func.func @fill
// CHECK: ap.fill {value = 1.000000e+00 : f64} : tensor<f32>
// CHECK: ap.fill {value = 0.000000e+00 : f64} : tensor<2x3xbf16>
func.func @fill() -> (tensor<f32>, tensor<2x3xbf16>) {
  %0 = ap.fill {value = 1.0 : f64} : tensor<f32>
  %1 = ap.fill {value = 0.0 : f64} : tensor<2x3xbf16>
  return %0, %1 : tensor<f32>, tensor<2x3xbf16>
}

// Tests that broadcast keeps its dims.
// CHECK-LABEL: func.func @broadcast
// CHECK: ap.broadcast %{{.*}} {dims = array<i64: 0, 2>} : tensor<3xf32> to tensor<2x3x4xf32>
func.func @broadcast(%x: tensor<3xf32>) -> tensor<2x3x4xf32> {
  %0 = ap.broadcast %x {dims = array<i64: 0, 2>} : tensor<3xf32> to tensor<2x3x4xf32>
  return %0 : tensor<2x3x4xf32>
}

// Tests that embedding_grad gives the table's shape.
// CHECK-LABEL: func.func @embedding_grad
// CHECK: ap.embedding_grad %{{.*}}, %{{.*}} : (tensor<2x4xi32>, tensor<2x4x8xbf16>) -> tensor<16x8xbf16>
func.func @embedding_grad(%ids: tensor<2x4xi32>, %dy: tensor<2x4x8xbf16>) -> tensor<16x8xbf16> {
  %0 = ap.embedding_grad %ids, %dy : (tensor<2x4xi32>, tensor<2x4x8xbf16>) -> tensor<16x8xbf16>
  return %0 : tensor<16x8xbf16>
}

// Tests that rms_norm_grad has two results.
// CHECK-LABEL: func.func @rms_norm_grad
// CHECK: %[[GI:[a-z_0-9]+]], %[[GW:[a-z_0-9]+]] = ap.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} {epsilon = 1.000000e-05 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>)
// CHECK: return %[[GI]], %[[GW]]
func.func @rms_norm_grad(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>) {
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>)
  return %0#0, %0#1 : tensor<2x4x8xf32>, tensor<8xf32>
}

// Tests that rope_grad prints the default and the llama3 scaling attributes.
// CHECK-LABEL: func.func @rope_grad
// CHECK: ap.rope_grad %{{.*}} {theta = 5.000000e+05 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
// CHECK: ap.rope_grad %{{.*}} {factor = 8.000000e+00 : f64, high_freq_factor = 4.000000e+00 : f64, low_freq_factor = 1.000000e+00 : f64, original_max_position_embeddings = 8192 : i64, position_offset = 4 : i64, rope_type = "llama3", theta = 5.000000e+05 : f64}
func.func @rope_grad(%dy: tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>, tensor<2x4x3x8xf32>) {
  %0 = ap.rope_grad %dy {theta = 500000.0 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  %1 = ap.rope_grad %dy {theta = 500000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = 8192 : i64, position_offset = 4 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return %0, %1 : tensor<2x4x3x8xf32>, tensor<2x4x3x8xf32>
}

// Tests that attention_grad has three results, with grouped-query kv heads.
// CHECK-LABEL: func.func @attention_grad
// CHECK: %[[DQ:[a-z_0-9]+]], %{{.*}}, %{{.*}} = ap.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>)
// CHECK: %{{.*}}, %[[DK:[a-z_0-9]+]], %[[DV:[a-z_0-9]+]] = ap.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {causal = false, scale = 5.000000e-01 : f64}
// CHECK: return %[[DQ]], %[[DK]], %[[DV]]
func.func @attention_grad(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>, %dy: tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) {
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>)
  %1:3 = ap.attention_grad %q, %k, %v, %dy {causal = false, scale = 5.000000e-01 : f64} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>)
  return %0#0, %1#1, %1#2 : tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>
}

// Tests that silu_grad prints one type.
// CHECK-LABEL: func.func @silu_grad
// CHECK: ap.silu_grad %{{.*}}, %{{.*}} : tensor<2x3xbf16>
func.func @silu_grad(%x: tensor<2x3xbf16>, %dy: tensor<2x3xbf16>) -> tensor<2x3xbf16> {
  %0 = ap.silu_grad %x, %dy : tensor<2x3xbf16>
  return %0 : tensor<2x3xbf16>
}

// Tests that cross_entropy_grad keeps its attributes.
// CHECK-LABEL: func.func @cross_entropy_grad
// CHECK: ap.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x16xf32>
// CHECK: ap.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} {ignore_index = 0 : i64, reduction = "sum"}
func.func @cross_entropy_grad(%logits: tensor<2x5x16xf32>, %labels: tensor<2x5xi64>, %dl: tensor<f32>) -> (tensor<2x5x16xf32>, tensor<2x5x16xf32>) {
  %0 = ap.cross_entropy_grad %logits, %labels, %dl : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x16xf32>
  %1 = ap.cross_entropy_grad %logits, %labels, %dl {ignore_index = 0 : i64, reduction = "sum"} : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x16xf32>
  return %0, %1 : tensor<2x5x16xf32>, tensor<2x5x16xf32>
}

// Tests that grad_norm takes any number of gradients of mixed types.
// CHECK-LABEL: func.func @grad_norm
// CHECK: ap.grad_norm %{{.*}}, %{{.*}} : (tensor<16x8xf32>, tensor<8xbf16>) -> tensor<f32>
// CHECK: ap.grad_norm %{{.*}} : (tensor<16x8xf32>) -> tensor<f32>
// CHECK: ap.grad_norm %{{.*}}, %{{.*}} {squared = true} : (tensor<16x8xf32>, tensor<8xbf16>) -> tensor<f32>
func.func @grad_norm(%a: tensor<16x8xf32>, %b: tensor<8xbf16>) -> (tensor<f32>, tensor<f32>, tensor<f32>) {
  %0 = ap.grad_norm %a, %b : (tensor<16x8xf32>, tensor<8xbf16>) -> tensor<f32>
  %1 = ap.grad_norm %a : (tensor<16x8xf32>) -> tensor<f32>
  %2 = ap.grad_norm %a, %b {squared = true} : (tensor<16x8xf32>, tensor<8xbf16>) -> tensor<f32>
  return %0, %1, %2 : tensor<f32>, tensor<f32>, tensor<f32>
}

// Tests adamw with and without the optional grad_norm operand.
// CHECK-LABEL: func.func @adamw
// CHECK: %[[P:[a-z_0-9]+]], %[[M:[a-z_0-9]+]], %[[V:[a-z_0-9]+]] = ap.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<8xf32>, tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
// CHECK: ap.adamw %[[P]], %{{.*}}, %[[M]], %[[V]], %{{.*}}, %{{.*}}, %{{.*}} {beta1 = 5.000000e-01 : f64, beta2 = 7.500000e-01 : f64, epsilon = {{.*}} : f64, max_grad_norm = 1.000000e+00 : f64, weight_decay = 1.000000e-01 : f64} : (tensor<8xf32>, tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
func.func @adamw(%p: tensor<8xf32>, %g: tensor<8xbf16>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>, %n: tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  %1:3 = ap.adamw %0#0, %g, %0#1, %0#2, %t, %lr, %n {beta1 = 0.5 : f64, beta2 = 0.75 : f64, epsilon = 1.0e-06 : f64, weight_decay = 0.1 : f64, max_grad_norm = 1.0 : f64} : (tensor<8xf32>, tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return %1#0, %1#1, %1#2, %0#0 : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}

