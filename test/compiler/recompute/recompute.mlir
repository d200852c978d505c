// RUN: apc-opt %s --ap-autodiff --ap-optimizer --ap-recompute=mode=none | FileCheck %s --check-prefix=NONE
// RUN: apc-opt %s --ap-autodiff --ap-optimizer --ap-recompute=mode=selective | FileCheck %s --check-prefix=SEL
// RUN: apc-opt %s --ap-autodiff --ap-optimizer --ap-recompute=mode=full | FileCheck %s --check-prefix=FULL
// RUN: apc-opt %s --ap-mixed-precision --ap-autodiff --ap-optimizer --ap-recompute=mode=full | FileCheck %s --check-prefix=BF16
// The whole train step also marks each op's pass, micro-batch and layer ({ap.pass = ...}).
// RUN: apc-opt %s --ap-train-step="precision=fp32 plan=dp=1,recompute=full" | FileCheck %s --check-prefix=FULL

// A two-layer step: layer 0 is an attention block (q, k, v, attention, o_proj, residual
// add), layer 1 an MLP block (up, silu, down, residual add), then the head (final norm,
// LM head, loss). Layers come from the parameter names.

// Nothing is cloned: the backward reads the forward's own values.
// NONE-LABEL: func.func @train_step
// NONE: %[[X0:.*]] = ap.embedding
// NONE: %[[A:.*]] = ap.attention
// NONE: %[[AR:.*]] = ap.reshape %[[A]] : tensor<1x4x2x4xf32> to tensor<1x4x8xf32>
// NONE: %[[U:.*]] = ap.linear %{{.*}}, %arg5
// NONE: ap.fill
// NONE-NOT: ap.attention
// NONE-NOT: ap.linear
// NONE: ap.silu_grad %[[U]]
// NONE: ap.reshape %[[AR]] : tensor<1x4x8xf32> to tensor<4x8xf32>
// NONE: return

// Selective: the attention and its reshape are recomputed right before o_proj's weight
// gradient (their only backward reader), from the saved q, k and v; nothing else is.
// SEL-LABEL: func.func @train_step
// SEL: %[[Q:.*]] = ap.reshape %{{.*}} : tensor<1x4x8xf32> to tensor<1x4x2x4xf32>
// SEL: %[[K:.*]] = ap.reshape %{{.*}} : tensor<1x4x8xf32> to tensor<1x4x2x4xf32>
// SEL: %[[V:.*]] = ap.reshape %{{.*}} : tensor<1x4x8xf32> to tensor<1x4x2x4xf32>
// SEL: %[[A:.*]] = ap.attention %[[Q]], %[[K]], %[[V]]
// SEL: %[[U:.*]] = ap.linear %{{.*}}, %arg5
// SEL: ap.fill
// SEL-NOT: ap.linear
// SEL: ap.silu_grad %[[U]]
// SEL: %[[A2:.*]] = ap.attention %[[Q]], %[[K]], %[[V]] {ap.recomputed}
// SEL-NEXT: %[[AR2:.*]] = ap.reshape %[[A2]] {ap.recomputed} : tensor<1x4x2x4xf32> to tensor<1x4x8xf32>
// SEL-NEXT: %[[AF2:.*]] = ap.reshape %[[AR2]] : tensor<1x4x8xf32> to tensor<4x8xf32>
// SEL-NEXT: ap.matmul %[[DO:.*]], %arg4
// SEL-NEXT: ap.reshape
// SEL-NEXT: ap.matmul %[[DO]], %[[AF2]] {transpose_lhs = true}
// SEL: ap.attention_grad %[[Q]], %[[K]], %[[V]]
// SEL-NOT: ap.attention
// SEL: return

// Full: each layer is recomputed right before its first backward use, from its saved
// input (x0 for layer 0, x1 for layer 1) and the parameters. The values leaving a layer
// (x1, x2: the next layer's input) are kept, not recomputed; ops whose results the
// backward never reads (o_proj, down_proj) are not cloned.
// FULL-LABEL: func.func @train_step
// FULL: %[[X0:.*]] = ap.embedding
// FULL: %[[X1:.*]] = ap.add %[[X0]], %{{.*}} : tensor<1x4x8xf32>
// FULL: %[[U:.*]] = ap.linear %[[X1]], %arg5
// FULL: %[[X2:.*]] = ap.add %[[X1]], %{{.*}} : tensor<1x4x8xf32>
// FULL: ap.fill
// FULL: ap.rms_norm_grad %[[X2]], %arg7
// FULL-NEXT: %[[DY:.*]] = ap.reshape %{{.*}} : tensor<1x4x8xf32> to tensor<4x8xf32>
// FULL-NEXT: %[[U2:.*]] = ap.linear %[[X1]], %arg5
// FULL-NEXT: %[[S2:.*]] = ap.silu %[[U2]]
// FULL-NEXT: %[[S2F:.*]] = ap.reshape %[[S2]] {{.*}}: tensor<1x4x16xf32> to tensor<4x16xf32>
// FULL-NEXT: ap.matmul %[[DY]], %arg6
// FULL-NEXT: ap.reshape
// FULL-NEXT: ap.matmul %[[DY]], %[[S2F]] {{.*}}transpose_lhs = true}
// FULL-NEXT: ap.silu_grad %[[U2]]
// FULL: ap.reshape %[[X1]] {{.*}}: tensor<1x4x8xf32> to tensor<4x8xf32>
// FULL: %[[DO:.*]] = ap.reshape %{{.*}} : tensor<1x4x8xf32> to tensor<4x8xf32>
// FULL-NEXT: %[[Q2:.*]] = ap.linear %[[X0]], %arg1
// FULL-NEXT: %[[Q24:.*]] = ap.reshape %[[Q2]]
// FULL-NEXT: %[[K2:.*]] = ap.linear %[[X0]], %arg2
// FULL-NEXT: %[[K24:.*]] = ap.reshape %[[K2]]
// FULL-NEXT: %[[V2:.*]] = ap.linear %[[X0]], %arg3
// FULL-NEXT: %[[V24:.*]] = ap.reshape %[[V2]]
// FULL-NEXT: %[[A2:.*]] = ap.attention %[[Q24]], %[[K24]], %[[V24]]
// FULL-NEXT: %[[AR2:.*]] = ap.reshape %[[A2]] {{.*}}: tensor<1x4x2x4xf32> to tensor<1x4x8xf32>
// FULL-NEXT: ap.reshape %[[AR2]] {{.*}}: tensor<1x4x8xf32> to tensor<4x8xf32>
// FULL-NEXT: ap.matmul %[[DO]], %arg4
// FULL-NOT: ap.linear
// FULL: ap.attention_grad %[[Q24]], %[[K24]], %[[V24]]
// FULL-NOT: ap.linear
// FULL-NOT: ap.attention
// FULL: ap.grad_norm
// FULL: return

// Mixed precision: the bf16 copies of a layer's weights are in that layer, so they are
// recomputed with it (cast again from the f32 masters) instead of living through the
// step; the head's and the embedding's stay.
// BF16-LABEL: func.func @train_step
// BF16: ap.fill
// BF16: ap.rms_norm_grad
// BF16-NEXT: ap.cast %grad_weight {{.*}}: tensor<8xbf16> to tensor<8xf32>
// BF16-NEXT: ap.reshape
// BF16-NEXT: %[[UP:.*]] = ap.cast %arg5 {ap.recomputed} : tensor<16x8xf32> to tensor<16x8xbf16>
// BF16-NEXT: ap.linear %{{.*}}, %[[UP]]
// BF16-NEXT: ap.silu
// BF16-NEXT: %[[DOWN:.*]] = ap.cast %arg6 {ap.recomputed} : tensor<8x16xf32> to tensor<8x16xbf16>
// BF16: ap.matmul %{{.*}}, %[[DOWN]]
// BF16: ap.cast %arg1 {ap.recomputed} : tensor<8x8xf32> to tensor<8x8xbf16>
// BF16-NEXT: ap.linear
// BF16: ap.cast %arg2 {ap.recomputed} : tensor<8x8xf32> to tensor<8x8xbf16>
// BF16-NEXT: ap.linear
// BF16: ap.cast %arg3 {ap.recomputed} : tensor<8x8xf32> to tensor<8x8xbf16>
// BF16-NEXT: ap.linear
// BF16: ap.cast %arg4 {ap.recomputed} : tensor<8x8xf32> to tensor<8x8xbf16>
// BF16-NOT: ap.cast %arg0 {{.*}}:
// BF16-NOT: ap.cast %arg8 {{.*}}:
// BF16: ap.attention_grad
// BF16: ap.grad_norm
func.func @train_step(%emb: tensor<16x8xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"},
                      %wq: tensor<8x8xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.q_proj.weight", ap.role = "parameter"},
                      %wk: tensor<8x8xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.k_proj.weight", ap.role = "parameter"},
                      %wv: tensor<8x8xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.v_proj.weight", ap.role = "parameter"},
                      %wo: tensor<8x8xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.0.self_attn.o_proj.weight", ap.role = "parameter"},
                      %wup: tensor<16x8xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.1.mlp.up_proj.weight", ap.role = "parameter"},
                      %wdown: tensor<8x16xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.1.mlp.down_proj.weight", ap.role = "parameter"},
                      %wnorm: tensor<8xf32> {ap.head, ap.name = "model.norm.weight", ap.role = "parameter"},
                      %whead: tensor<16x8xf32> {ap.head, ap.layout = #ap.layout<vocab>, ap.name = "lm_head.weight", ap.role = "parameter"},
                      %ids: tensor<1x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"},
                      %labels: tensor<1x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> (tensor<f32> {ap.name = "loss"}) {
  %x0 = ap.embedding %emb, %ids : (tensor<16x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  %q = ap.linear %x0, %wq : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %q4 = ap.reshape %q : tensor<1x4x8xf32> to tensor<1x4x2x4xf32>
  %k = ap.linear %x0, %wk : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %k4 = ap.reshape %k : tensor<1x4x8xf32> to tensor<1x4x2x4xf32>
  %v = ap.linear %x0, %wv : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %v4 = ap.reshape %v : tensor<1x4x8xf32> to tensor<1x4x2x4xf32>
  %a4 = ap.attention %q4, %k4, %v4 : (tensor<1x4x2x4xf32>, tensor<1x4x2x4xf32>, tensor<1x4x2x4xf32>) -> tensor<1x4x2x4xf32>
  %a = ap.reshape %a4 : tensor<1x4x2x4xf32> to tensor<1x4x8xf32>
  %o = ap.linear %a, %wo : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %x1 = ap.add %x0, %o : tensor<1x4x8xf32>
  %u = ap.linear %x1, %wup : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %s = ap.silu %u : tensor<1x4x16xf32>
  %d = ap.linear %s, %wdown : (tensor<1x4x16xf32>, tensor<8x16xf32>) -> tensor<1x4x8xf32>
  %x2 = ap.add %x1, %d : tensor<1x4x8xf32>
  %n = ap.rms_norm %x2, %wnorm {epsilon = 1.0e-05 : f64} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  %logits = ap.linear %n, %whead : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %sl = ap.shift_labels %labels : tensor<1x4xi64>
  %loss = ap.cross_entropy %logits, %sl : (tensor<1x4x16xf32>, tensor<1x4xi64>) -> tensor<f32>
  return %loss : tensor<f32>
}
