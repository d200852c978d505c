// RUN: apc-opt %s --split-input-file --ap-print-cost --verify-diagnostics

// Tests the cost rules of the dense layers: 2 FLOPs per multiply-add, every operand
// read and the result written once (f32: 4 bytes).
func.func @dense(%x: tensor<2x3xf32>, %w: tensor<4x3xf32>, %b: tensor<3x5xf32>, %at: tensor<3x2xf32>) {
  // expected-remark @+1 {{cost: flops 48, read 72 B, written 32 B, sent 0 B, group 1}}
  %0 = ap.linear %x, %w : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
  // expected-remark @+1 {{cost: flops 60, read 84 B, written 40 B, sent 0 B, group 1}}
  %1 = ap.matmul %x, %b : (tensor<2x3xf32>, tensor<3x5xf32>) -> tensor<2x5xf32>
  // expected-remark @+1 {{cost: flops 60, read 84 B, written 40 B, sent 0 B, group 1}}
  %2 = ap.matmul %at, %b {transpose_lhs = true} : (tensor<3x2xf32>, tensor<3x5xf32>) -> tensor<2x5xf32>
  return
}

// -----

// Tests the elementwise ops: FLOPs per result element as the kernels do them.
func.func @elementwise(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>, %s: tensor<f32>) {
  // expected-remark @+1 {{cost: flops 6, read 48 B, written 24 B, sent 0 B, group 1}}
  %0 = ap.add %x, %y : tensor<2x3xf32>
  // expected-remark @+1 {{cost: flops 6, read 48 B, written 24 B, sent 0 B, group 1}}
  %1 = ap.mul %x, %y : tensor<2x3xf32>
  // expected-remark @+1 {{cost: flops 0, read 24 B, written 12 B, sent 0 B, group 1}}
  %2 = ap.cast %x : tensor<2x3xf32> to tensor<2x3xbf16>
  // expected-remark @+1 {{cost: flops 24, read 24 B, written 24 B, sent 0 B, group 1}}
  %3 = ap.silu %x : tensor<2x3xf32>
  // expected-remark @+1 {{cost: flops 42, read 48 B, written 24 B, sent 0 B, group 1}}
  %4 = ap.silu_grad %x, %y : tensor<2x3xf32>
  // expected-remark @+1 {{cost: flops 1, read 4 B, written 4 B, sent 0 B, group 1}}
  %5 = ap.sqrt %s : tensor<f32>
  // expected-remark @+1 {{cost: flops 0, read 0 B, written 24 B, sent 0 B, group 1}}
  %6 = ap.fill {value = 1.0 : f64} : tensor<2x3xf32>
  return
}

// -----

// Tests the shape ops: a reshape is an alias (free), a transpose a copy, reduce_sum one
// add per input element.
func.func @shapes(%x: tensor<2x3xf32>, %r: tensor<2xf32>) {
  // expected-remark @+1 {{cost: flops 0, read 0 B, written 0 B, sent 0 B, group 1}}
  %0 = ap.reshape %x : tensor<2x3xf32> to tensor<6xf32>
  // expected-remark @+1 {{cost: flops 0, read 24 B, written 24 B, sent 0 B, group 1}}
  %1 = ap.transpose %x {permutation = array<i64: 1, 0>} : tensor<2x3xf32> to tensor<3x2xf32>
  // expected-remark @+1 {{cost: flops 6, read 24 B, written 8 B, sent 0 B, group 1}}
  %2 = ap.reduce_sum %x {dims = array<i64: 1>} : tensor<2x3xf32> to tensor<2xf32>
  // expected-remark @+1 {{cost: flops 0, read 8 B, written 24 B, sent 0 B, group 1}}
  %3 = ap.broadcast %r {dims = array<i64: 1>} : tensor<2xf32> to tensor<2x3xf32>
  return
}

// -----

// Tests the embedding: a lookup reads the ids and the rows it gathers; its gradient
// writes the whole table and adds each row.
func.func @embedding(%w: tensor<10x4xf32>, %ids: tensor<2x3xi64>, %g: tensor<2x3x4xf32>) {
  // expected-remark @+1 {{cost: flops 0, read 144 B, written 96 B, sent 0 B, group 1}}
  %0 = ap.embedding %w, %ids : (tensor<10x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>
  // expected-remark @+1 {{cost: flops 24, read 144 B, written 160 B, sent 0 B, group 1}}
  %1 = ap.embedding_grad %ids, %g : (tensor<2x3xi64>, tensor<2x3x4xf32>) -> tensor<10x4xf32>
  return
}

// -----

// Tests RMS normalisation and its gradient.
func.func @norm(%x: tensor<2x4xf32>, %w: tensor<4xf32>, %g: tensor<2x4xf32>) {
  // expected-remark @+1 {{cost: flops 32, read 48 B, written 32 B, sent 0 B, group 1}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  // expected-remark @+1 {{cost: flops 80, read 80 B, written 48 B, sent 0 B, group 1}}
  %1:2 = ap.rms_norm_grad %x, %w, %g {epsilon = 1.0e-05 : f64} : (tensor<2x4xf32>, tensor<4xf32>, tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<4xf32>)
  return
}

// -----

// Tests RoPE (three operations per element) and causal attention: the causal halves of
// q.k^T and p.v, 2 * batch * heads * seq^2 * head_dim; the backward 2.5 times that.
func.func @attention(%r: tensor<1x2x2x4xf32>, %q: tensor<1x4x2x8xf32>, %k: tensor<1x4x2x8xf32>, %v: tensor<1x4x2x8xf32>, %g: tensor<1x4x2x8xf32>) {
  // expected-remark @+1 {{cost: flops 48, read 64 B, written 64 B, sent 0 B, group 1}}
  %0 = ap.rope %r {theta = 10000.0 : f64} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  // expected-remark @+1 {{cost: flops 48, read 64 B, written 64 B, sent 0 B, group 1}}
  %1 = ap.rope_grad %r {theta = 10000.0 : f64} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  // expected-remark @+1 {{cost: flops 512, read 768 B, written 256 B, sent 0 B, group 1}}
  %2 = ap.attention %q, %k, %v : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
  // expected-remark @+1 {{cost: flops 1280, read 1024 B, written 768 B, sent 0 B, group 1}}
  %3:3 = ap.attention_grad %q, %k, %v, %g : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>) -> (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>)
  return
}

// -----

// Tests the loss ops, the vocabulary-parallel ones included (per logit or per row).
func.func @loss(%logits: tensor<2x3x5xf32>, %labels: tensor<2x3xi64>, %dl: tensor<f32>,
                %vl: tensor<2x5x8xbf16>, %vlab: tensor<2x5xi64>) {
  // expected-remark @+1 {{cost: flops 0, read 48 B, written 48 B, sent 0 B, group 1}}
  %0 = ap.shift_labels %labels : tensor<2x3xi64>
  // expected-remark @+1 {{cost: flops 0, read 48 B, written 4 B, sent 0 B, group 1}}
  %1 = ap.count_kept %labels : (tensor<2x3xi64>) -> tensor<f32>
  // expected-remark @+1 {{cost: flops 150, read 168 B, written 4 B, sent 0 B, group 1}}
  %2 = ap.cross_entropy %logits, %labels : (tensor<2x3x5xf32>, tensor<2x3xi64>) -> tensor<f32>
  // expected-remark @+1 {{cost: flops 180, read 172 B, written 120 B, sent 0 B, group 1}}
  %3 = ap.cross_entropy_grad %logits, %labels, %dl : (tensor<2x3x5xf32>, tensor<2x3xi64>, tensor<f32>) -> tensor<2x3x5xf32>
  // expected-remark @+1 {{cost: flops 80, read 160 B, written 40 B, sent 0 B, group 1}}
  %m = ap.vocab_parallel_max %vl : (tensor<2x5x8xbf16>) -> tensor<2x5xf32>
  // expected-remark @+1 {{cost: flops 240, read 280 B, written 80 B, sent 0 B, group 1}}
  %s:2 = ap.vocab_parallel_stats %vl, %vlab, %m {vocab_shard_axis = 1 : i64} : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  // expected-remark @+1 {{cost: flops 30, read 200 B, written 4 B, sent 0 B, group 1}}
  %4 = ap.vocab_parallel_loss %m, %s#0, %s#1, %vlab : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<f32>
  // expected-remark @+1 {{cost: flops 400, read 324 B, written 160 B, sent 0 B, group 1}}
  %5 = ap.vocab_parallel_loss_grad %vl, %vlab, %m, %s#0, %dl : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xbf16>
  return
}

// -----

// Tests the optimizer: the norm squares and adds every gradient element; AdamW is
// about 14 operations per element and reads parameter, gradient and both moments.
func.func @optimizer(%a: tensor<16x8xf32>, %b: tensor<8xbf16>, %p: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-remark @+1 {{cost: flops 272, read 528 B, written 4 B, sent 0 B, group 1}}
  %0 = ap.grad_norm %a, %b : (tensor<16x8xf32>, tensor<8xbf16>) -> tensor<f32>
  // expected-remark @+1 {{cost: flops 112, read 124 B, written 96 B, sent 0 B, group 1}}
  %1:3 = ap.adamw %p, %b, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests the pipeline ops: a slice copies its block; send and recv move bytes between two
// devices.
func.func @pipeline(%ids: tensor<4x8xi64>, %h: tensor<2x8x64xbf16>) {
  // expected-remark @+1 {{cost: flops 0, read 128 B, written 128 B, sent 0 B, group 1}}
  %0 = ap.slice %ids {dim = 0 : i64, offset = 2 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi64>
  // expected-remark @+1 {{cost: flops 0, read 2048 B, written 0 B, sent 2048 B, group 2}}
  ap.send %h {axes = array<i64: 1>, peer_offset = 1 : i64, tag = 7 : i64} : tensor<2x8x64xbf16>
  // expected-remark @+1 {{cost: flops 0, read 0 B, written 2048 B, sent 0 B, group 2}}
  %1 = ap.recv {axes = array<i64: 1>, peer_offset = -1 : i64, tag = 7 : i64} : tensor<2x8x64xbf16>
  return
}

// -----

// Tests the collectives over 4 devices with ring algorithms: an all-reduce sends
// 2 * 3/4 of the buffer and adds 3/4 of its elements, an all-gather sends 3/4 of its
// result, a reduce-scatter 3/4 of its input, an all-slice nothing.
shard.grid @mesh(shape = 4) {ap.axes = ["dp"]}
func.func @collectives(%x: tensor<8xf32>, %y: tensor<2xf32>) {
  // expected-remark @+1 {{cost: flops 6, read 32 B, written 32 B, sent 48 B, group 4}}
  %0 = shard.all_reduce %x on @mesh grid_axes = [0] : tensor<8xf32> -> tensor<8xf32>
  // expected-remark @+1 {{cost: flops 0, read 8 B, written 32 B, sent 24 B, group 4}}
  %1 = shard.all_gather %y on @mesh grid_axes = [0] gather_axis = 0 : tensor<2xf32> -> tensor<8xf32>
  // expected-remark @+1 {{cost: flops 6, read 32 B, written 8 B, sent 24 B, group 4}}
  %2 = shard.reduce_scatter %x on @mesh grid_axes = [0] scatter_axis = 0 : tensor<8xf32> -> tensor<2xf32>
  // expected-remark @+1 {{cost: flops 0, read 32 B, written 8 B, sent 0 B, group 4}}
  %3 = shard.all_slice %x on @mesh grid_axes = [0] slice_axis = 0 : tensor<8xf32> -> tensor<2xf32>
  return
}
