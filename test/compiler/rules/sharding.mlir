// RUN: apc-opt %s --split-input-file --ap-mesh --ap-partition | FileCheck %s

// One case per sharding rule (compiler/rules/): the states an op's operands arrive in,
// the collectives its rule asks for, and its per-device types. Values marked ap.batch
// are split on their leading dim over dp; parameters follow their ap.layout on tp;
// results go back whole unless they name an argument.

// Tests ap.linear with a column-parallel weight (tp=2): the input is whole, the weight
// and the result hold half the output features.
// CHECK-LABEL: func.func @linear_column(%arg0: tensor<4x8xf32>, %arg1: tensor<8x8xf32> {ap.dim_axes = array<i64: 1, -1>
// CHECK-NEXT: %[[Y:.*]] = ap.linear %arg0, %arg1 : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT: shard.all_gather %[[Y]] on @mesh grid_axes = [1] gather_axis = 1 : tensor<4x8xf32> -> tensor<4x16xf32>
module attributes {ap.parallel = #ap.parallel<tp = 2>} {
func.func @linear_column(%x: tensor<4x8xf32>, %w: tensor<16x8xf32> {ap.name = "w", ap.role = "parameter", ap.layout = #ap.layout<column>}) -> tensor<4x16xf32> {
  %0 = ap.linear %x, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}
}

// -----

// Tests ap.linear with a row-parallel weight: the input is sliced on its features, the
// partial result all-reduced right after the op (Megatron).
// CHECK-LABEL: func.func @linear_row(%arg0: tensor<4x16xf32>, %arg1: tensor<8x8xf32> {ap.dim_axes = array<i64: -1, 1>
// CHECK-NEXT: %[[X:.*]] = shard.all_slice %arg0 on @mesh grid_axes = [1] slice_axis = 1 : tensor<4x16xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[Y:.*]] = ap.linear %[[X]], %arg1 : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT: shard.all_reduce %[[Y]] on @mesh grid_axes = [1] : tensor<4x8xf32> -> tensor<4x8xf32>
module attributes {ap.parallel = #ap.parallel<tp = 2>} {
func.func @linear_row(%x: tensor<4x16xf32>, %w: tensor<8x16xf32> {ap.name = "w", ap.role = "parameter", ap.layout = #ap.layout<row>}) -> tensor<4x8xf32> {
  %0 = ap.linear %x, %w : (tensor<4x16xf32>, tensor<8x16xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
}

// -----

// Tests ap.linear under sequence parallelism: the row-parallel partial sum is
// reduce-scattered over the sequence, and a column-parallel input is gathered first.
// CHECK-LABEL: func.func @linear_sequence
// CHECK: %[[Y:.*]] = ap.linear %{{.*}}, %arg1 : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[S:.*]] = shard.reduce_scatter %[[Y]] on @mesh grid_axes = [1] scatter_axis = 1 : tensor<2x4x8xf32> -> tensor<2x2x8xf32>
// CHECK-NEXT: %[[G:.*]] = shard.all_gather %[[S]] on @mesh grid_axes = [1] gather_axis = 1 : tensor<2x2x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: ap.linear %[[G]], %arg2 : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
module attributes {ap.parallel = #ap.parallel<tp = 2, sp = true>} {
func.func @linear_sequence(%x: tensor<2x4x16xf32>, %w: tensor<8x16xf32> {ap.name = "w", ap.role = "parameter", ap.layout = #ap.layout<row>}, %v: tensor<16x8xf32> {ap.name = "v", ap.role = "parameter", ap.layout = #ap.layout<column>}) -> tensor<2x4x16xf32> {
  %0 = ap.linear %x, %w : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %1 = ap.linear %0, %v : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  return %1 : tensor<2x4x16xf32>
}
}

// -----

// Tests ap.matmul on dp=2: rows of the left operand split give split rows; a
// contraction over the split batch rows (a weight gradient) gives partial sums.
// CHECK-LABEL: func.func @matmul(%arg0: tensor<2x3xf32> {{.*}}, %arg1: tensor<3x5xf32> {{.*}}, %arg2: tensor<2x5xf32>
// CHECK-NEXT: %[[R:.*]] = ap.matmul %arg0, %arg1 : (tensor<2x3xf32>, tensor<3x5xf32>) -> tensor<2x5xf32>
// CHECK-NEXT: shard.all_gather %[[R]] on @mesh grid_axes = [0] gather_axis = 0 : tensor<2x5xf32> -> tensor<4x5xf32>
// CHECK-NEXT: %[[S:.*]] = ap.matmul %arg0, %arg2 {transpose_lhs = true} : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<3x5xf32>
// CHECK-NEXT: shard.all_reduce %[[S]] on @mesh grid_axes = [0] : tensor<3x5xf32> -> tensor<3x5xf32>
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @matmul(%a: tensor<4x3xf32> {ap.name = "a", ap.batch = #ap.batch<tokens>}, %b: tensor<3x5xf32> {ap.name = "b"}, %c: tensor<4x5xf32> {ap.name = "c", ap.batch = #ap.batch<labels>}) -> (tensor<4x5xf32> {ap.name = "rows"}, tensor<3x5xf32> {ap.name = "sum"}) {
  %0 = ap.matmul %a, %b : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  %1 = ap.matmul %a, %c {transpose_lhs = true} : (tensor<4x3xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>
  return %0, %1 : tensor<4x5xf32>, tensor<3x5xf32>
}
}

// -----

// Tests the elementwise ops: a split operand splits the other (add), pointwise ops follow
// the split, a sum of two partial values stays partial.
// CHECK-LABEL: func.func @elementwise
// CHECK-NEXT: %[[Y:.*]] = shard.all_slice %arg1 on @mesh grid_axes = [0] slice_axis = 0 : tensor<4x3xf32> -> tensor<2x3xf32>
// CHECK-NEXT: %[[A:.*]] = ap.add %arg0, %[[Y]] : tensor<2x3xf32>
// CHECK-NEXT: %[[M:.*]] = ap.mul %[[A]], %[[Y]] : tensor<2x3xf32>
// CHECK-NEXT: ap.silu %[[M]] : tensor<2x3xf32>
// CHECK-NEXT: ap.cast %{{.*}} : tensor<2x3xf32> to tensor<2x3xbf16>
// CHECK-NEXT: ap.cast %{{.*}} : tensor<2x3xbf16> to tensor<2x3xf32>
// CHECK-NEXT: shard.all_gather
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @elementwise(%x: tensor<4x3xf32> {ap.name = "x", ap.batch = #ap.batch<tokens>}, %y: tensor<4x3xf32> {ap.name = "y"}) -> (tensor<4x3xf32> {ap.name = "out"}) {
  %0 = ap.add %x, %y : tensor<4x3xf32>
  %1 = ap.mul %0, %y : tensor<4x3xf32>
  %2 = ap.silu %1 : tensor<4x3xf32>
  %3 = ap.cast %2 : tensor<4x3xf32> to tensor<4x3xbf16>
  %4 = ap.cast %3 : tensor<4x3xbf16> to tensor<4x3xf32>
  return %4 : tensor<4x3xf32>
}
}

// -----

// Tests the shape ops: a split follows its dim through reshape and transpose; summing
// the split dim gives partial sums, broadcasting keeps the split.
// CHECK-LABEL: func.func @shapes
// CHECK-NEXT: ap.reshape %arg0 : tensor<2x3xf32> to tensor<6xf32>
// CHECK-NEXT: shard.all_gather %{{.*}} gather_axis = 0 : tensor<6xf32> -> tensor<12xf32>
// CHECK-NEXT: ap.transpose %arg0 {permutation = array<i64: 1, 0>} : tensor<2x3xf32> to tensor<3x2xf32>
// CHECK-NEXT: shard.all_gather %{{.*}} gather_axis = 1 : tensor<3x2xf32> -> tensor<3x4xf32>
// CHECK-NEXT: %[[S:.*]] = ap.reduce_sum %arg0 {dims = array<i64: 0>} : tensor<2x3xf32> to tensor<3xf32>
// CHECK-NEXT: shard.all_reduce %[[S]] on @mesh grid_axes = [0] : tensor<3xf32> -> tensor<3xf32>
// CHECK-NEXT: ap.broadcast %arg0 {dims = array<i64: 2>} : tensor<2x3xf32> to tensor<2x3x2xf32>
// CHECK-NEXT: shard.all_gather %{{.*}} gather_axis = 0 : tensor<2x3x2xf32> -> tensor<4x3x2xf32>
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @shapes(%x: tensor<4x3xf32> {ap.name = "x", ap.batch = #ap.batch<tokens>}) -> (tensor<12xf32> {ap.name = "flat"}, tensor<3x4xf32> {ap.name = "t"}, tensor<3xf32> {ap.name = "sum"}, tensor<4x3x2xf32> {ap.name = "b"}) {
  %0 = ap.reshape %x : tensor<4x3xf32> to tensor<12xf32>
  %1 = ap.transpose %x {permutation = array<i64: 1, 0>} : tensor<4x3xf32> to tensor<3x4xf32>
  %2 = ap.reduce_sum %x {dims = array<i64: 0>} : tensor<4x3xf32> to tensor<3xf32>
  %3 = ap.broadcast %x {dims = array<i64: 2>} : tensor<4x3xf32> to tensor<4x3x2xf32>
  return %0, %1, %2, %3 : tensor<12xf32>, tensor<3x4xf32>, tensor<3xf32>, tensor<4x3x2xf32>
}
}

// -----

// Tests the vocabulary-parallel embedding: each device looks up its block of rows
// (vocab_shard_axis), the partial rows are all-reduced right after.
// CHECK-LABEL: func.func @embedding(%arg0: tensor<8x8xf32> {ap.dim_axes = array<i64: 1, -1>
// CHECK-NEXT: %[[E:.*]] = ap.embedding %arg0, %arg1 {vocab_shard_axis = 1 : i64} : (tensor<8x8xf32>, tensor<2x3xi64>) -> tensor<2x3x8xf32>
// CHECK-NEXT: shard.all_reduce %[[E]] on @mesh grid_axes = [1] : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
module attributes {ap.parallel = #ap.parallel<tp = 2>} {
func.func @embedding(%w: tensor<16x8xf32> {ap.name = "w", ap.role = "parameter", ap.layout = #ap.layout<vocab>}, %ids: tensor<2x3xi64> {ap.name = "ids", ap.batch = #ap.batch<tokens>}) -> tensor<2x3x8xf32> {
  %0 = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<2x3xi64>) -> tensor<2x3x8xf32>
  return %0 : tensor<2x3x8xf32>
}
}

// -----

// Tests ap.embedding_grad over split batch rows (rows looked up from split ids): the
// table's gradient is partial.
// CHECK-LABEL: func.func @embedding_grad
// CHECK-NEXT: %[[E:.*]] = ap.embedding %arg1, %arg0 : (tensor<16x8xf32>, tensor<2x3xi64>) -> tensor<2x3x8xf32>
// CHECK-NEXT: %[[G:.*]] = ap.embedding_grad %arg0, %[[E]] : (tensor<2x3xi64>, tensor<2x3x8xf32>) -> tensor<16x8xf32>
// CHECK-NEXT: shard.all_reduce %[[G]] on @mesh grid_axes = [0] : tensor<16x8xf32> -> tensor<16x8xf32>
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @embedding_grad(%ids: tensor<4x3xi64> {ap.name = "ids", ap.batch = #ap.batch<tokens>}, %w: tensor<16x8xf32> {ap.name = "w"}) -> (tensor<16x8xf32> {ap.name = "dw"}) {
  %g = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<4x3xi64>) -> tensor<4x3x8xf32>
  %0 = ap.embedding_grad %ids, %g : (tensor<4x3xi64>, tensor<4x3x8xf32>) -> tensor<16x8xf32>
  return %0 : tensor<16x8xf32>
}
}

// -----

// Tests RMS normalisation: rows split, weight whole; the weight's gradient is a partial
// sum over the rows.
// CHECK-LABEL: func.func @norm
// CHECK-NEXT: %[[Y:.*]] = ap.rms_norm %arg0, %arg1 {{.*}} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: %[[DX:.*]], %[[DW:.*]] = ap.rms_norm_grad %arg0, %arg1, %[[Y]] {{.*}} -> (tensor<2x8xf32>, tensor<8xf32>)
// CHECK-NEXT: shard.all_reduce %[[DW]] on @mesh grid_axes = [0] : tensor<8xf32> -> tensor<8xf32>
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @norm(%x: tensor<4x8xf32> {ap.name = "x", ap.batch = #ap.batch<tokens>}, %w: tensor<8xf32> {ap.name = "w"}) -> (tensor<4x8xf32> {ap.name = "y"}, tensor<8xf32> {ap.name = "dw"}) {
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %1:2 = ap.rms_norm_grad %x, %w, %0 {epsilon = 1.0e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>, tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<8xf32>)
  return %1#0, %1#1 : tensor<4x8xf32>, tensor<8xf32>
}
}

// -----

// Tests RoPE and attention: the batch split passes through both (positions and head_dim
// stay whole).
// CHECK-LABEL: func.func @attention
// CHECK-NEXT: %[[R:.*]] = ap.rope %arg0 {{.*}} : (tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
// CHECK-NEXT: %[[K:.*]] = shard.all_slice %arg1 on @mesh grid_axes = [0] slice_axis = 0 : tensor<2x4x2x8xf32> -> tensor<1x4x2x8xf32>
// CHECK-NEXT: ap.attention %[[R]], %[[K]], %[[K]] : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @attention(%q: tensor<2x4x2x8xf32> {ap.name = "q", ap.batch = #ap.batch<tokens>}, %k: tensor<2x4x2x8xf32> {ap.name = "k"}) -> (tensor<2x4x2x8xf32> {ap.name = "o"}) {
  %0 = ap.rope %q {theta = 10000.0 : f64} : (tensor<2x4x2x8xf32>) -> tensor<2x4x2x8xf32>
  %1 = ap.attention %0, %k, %k : (tensor<2x4x2x8xf32>, tensor<2x4x2x8xf32>, tensor<2x4x2x8xf32>) -> tensor<2x4x2x8xf32>
  return %1 : tensor<2x4x2x8xf32>
}
}

// -----

// Tests the loss over split rows: labels follow the logits' rows, the mean divides by
// the kept tokens of the whole batch (count_kept all-reduced), the loss is all-reduced.
// CHECK-LABEL: func.func @loss
// CHECK-NEXT: %[[S:.*]] = ap.shift_labels %arg1 : tensor<2x3xi64>
// CHECK-NEXT: %[[C:.*]] = ap.count_kept %[[S]] : (tensor<2x3xi64>) -> tensor<f32>
// CHECK-NEXT: %[[N:.*]] = shard.all_reduce %[[C]] on @mesh grid_axes = [0] : tensor<f32> -> tensor<f32>
// CHECK-NEXT: %[[L:.*]] = ap.cross_entropy %arg0, %[[S]] count %[[N]] : (tensor<2x3x5xf32>, tensor<2x3xi64>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: shard.all_reduce %[[L]] on @mesh grid_axes = [0] : tensor<f32> -> tensor<f32>
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @loss(%logits: tensor<4x3x5xf32> {ap.name = "logits", ap.batch = #ap.batch<tokens>}, %labels: tensor<4x3xi64> {ap.name = "labels", ap.batch = #ap.batch<labels>}) -> (tensor<f32> {ap.name = "loss"}) {
  %0 = ap.shift_labels %labels : tensor<4x3xi64>
  %1 = ap.cross_entropy %logits, %0 : (tensor<4x3x5xf32>, tensor<4x3xi64>) -> tensor<f32>
  return %1 : tensor<f32>
}
}

// -----

// Tests the loss over logits split on the vocabulary: it becomes the vocabulary-parallel
// loss (row max all-reduced with max, the sums with sum), never gathering the logits.
// CHECK-LABEL: func.func @vocab_loss
// CHECK: %[[Z:.*]] = ap.linear %arg0, %arg1 : (tensor<2x3x8xf32>, tensor<8x8xf32>) -> tensor<2x3x8xf32>
// CHECK-NEXT: %[[M:.*]] = ap.vocab_parallel_max %[[Z]]
// CHECK-NEXT: %[[MAX:.*]] = shard.all_reduce %[[M]] on @mesh grid_axes = [1] reduction = max
// CHECK-NEXT: %[[SE:.*]], %[[T:.*]] = ap.vocab_parallel_stats %[[Z]], %arg2, %[[MAX]] {vocab_shard_axis = 1 : i64}
// CHECK-NEXT: %[[TT:.*]] = shard.all_reduce %[[T]] on @mesh grid_axes = [1]
// CHECK-NEXT: %[[SS:.*]] = shard.all_reduce %[[SE]] on @mesh grid_axes = [1]
// CHECK-NEXT: ap.vocab_parallel_loss %[[MAX]], %[[SS]], %[[TT]], %arg2 count
// CHECK-NOT: all_gather
module attributes {ap.parallel = #ap.parallel<tp = 2>} {
func.func @vocab_loss(%h: tensor<2x3x8xf32> {ap.name = "h"}, %w: tensor<16x8xf32> {ap.name = "w", ap.role = "parameter", ap.layout = #ap.layout<vocab>}, %labels: tensor<2x3xi64> {ap.name = "labels", ap.batch = #ap.batch<labels>}) -> (tensor<f32> {ap.name = "loss"}) {
  %0 = ap.linear %h, %w : (tensor<2x3x8xf32>, tensor<16x8xf32>) -> tensor<2x3x16xf32>
  %1 = ap.cross_entropy %0, %labels : (tensor<2x3x16xf32>, tensor<2x3xi64>) -> tensor<f32>
  return %1 : tensor<f32>
}
}
