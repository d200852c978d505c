module {
  func.func @train_step(%arg0: tensor<64x32xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"}, %arg1: tensor<32x32xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.q_proj.weight", ap.role = "parameter"}, %arg2: tensor<16x32xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.k_proj.weight", ap.role = "parameter"}, %arg3: tensor<16x32xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.v_proj.weight", ap.role = "parameter"}, %arg4: tensor<32x32xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.0.self_attn.o_proj.weight", ap.role = "parameter"}, %arg5: tensor<48x32xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.mlp.gate_proj.weight", ap.role = "parameter"}, %arg6: tensor<48x32xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.mlp.up_proj.weight", ap.role = "parameter"}, %arg7: tensor<32x48xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.0.mlp.down_proj.weight", ap.role = "parameter"}, %arg8: tensor<32xf32> {ap.layer = 0 : i64, ap.name = "model.layers.0.input_layernorm.weight", ap.role = "parameter"}, %arg9: tensor<32xf32> {ap.layer = 0 : i64, ap.name = "model.layers.0.post_attention_layernorm.weight", ap.role = "parameter"}, %arg10: tensor<32xf32> {ap.head, ap.name = "model.norm.weight", ap.role = "parameter"}, %arg11: tensor<64x32xf32> {ap.head, ap.layout = #ap.layout<vocab>, ap.name = "lm_head.weight", ap.role = "parameter"}, %arg12: tensor<2x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}, %arg13: tensor<2x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> (tensor<f32> {ap.name = "loss"}) attributes {ap.model = {architecture = "llama3", head_dim = 16 : i64, hidden_size = 32 : i64, initializer_range = 2.000000e-02 : f64, intermediate_size = 48 : i64, max_position_embeddings = 128 : i64, num_attention_heads = 2 : i64, num_hidden_layers = 1 : i64, num_key_value_heads = 1 : i64, rms_norm_eps = 1.000000e-05 : f64, rope_theta = 1.000000e+04 : f64, rope_type = "default", tie_word_embeddings = false, vocab_size = 64 : i64}} {
    %0 = ap.embedding %arg0, %arg12 : (tensor<64x32xf32>, tensor<2x4xi64>) -> tensor<2x4x32xf32>
    %1 = ap.rms_norm %0, %arg8 {epsilon = 1.000000e-05 : f64} : (tensor<2x4x32xf32>, tensor<32xf32>) -> tensor<2x4x32xf32>
    %2 = ap.linear %1, %arg1 : (tensor<2x4x32xf32>, tensor<32x32xf32>) -> tensor<2x4x32xf32>
    %3 = ap.reshape %2 : tensor<2x4x32xf32> to tensor<2x4x2x16xf32>
    %4 = ap.linear %1, %arg2 : (tensor<2x4x32xf32>, tensor<16x32xf32>) -> tensor<2x4x16xf32>
    %5 = ap.reshape %4 : tensor<2x4x16xf32> to tensor<2x4x1x16xf32>
    %6 = ap.linear %1, %arg3 : (tensor<2x4x32xf32>, tensor<16x32xf32>) -> tensor<2x4x16xf32>
    %7 = ap.reshape %6 : tensor<2x4x16xf32> to tensor<2x4x1x16xf32>
    %8 = ap.rope %3 {theta = 1.000000e+04 : f64} : (tensor<2x4x2x16xf32>) -> tensor<2x4x2x16xf32>
    %9 = ap.rope %5 {theta = 1.000000e+04 : f64} : (tensor<2x4x1x16xf32>) -> tensor<2x4x1x16xf32>
    %10 = ap.attention %8, %9, %7 : (tensor<2x4x2x16xf32>, tensor<2x4x1x16xf32>, tensor<2x4x1x16xf32>) -> tensor<2x4x2x16xf32>
    %11 = ap.reshape %10 : tensor<2x4x2x16xf32> to tensor<2x4x32xf32>
    %12 = ap.linear %11, %arg4 : (tensor<2x4x32xf32>, tensor<32x32xf32>) -> tensor<2x4x32xf32>
    %13 = ap.add %0, %12 : tensor<2x4x32xf32>
    %14 = ap.rms_norm %13, %arg9 {epsilon = 1.000000e-05 : f64} : (tensor<2x4x32xf32>, tensor<32xf32>) -> tensor<2x4x32xf32>
    %15 = ap.linear %14, %arg5 : (tensor<2x4x32xf32>, tensor<48x32xf32>) -> tensor<2x4x48xf32>
    %16 = ap.silu %15 : tensor<2x4x48xf32>
    %17 = ap.linear %14, %arg6 : (tensor<2x4x32xf32>, tensor<48x32xf32>) -> tensor<2x4x48xf32>
    %18 = ap.mul %16, %17 : tensor<2x4x48xf32>
    %19 = ap.linear %18, %arg7 : (tensor<2x4x48xf32>, tensor<32x48xf32>) -> tensor<2x4x32xf32>
    %20 = ap.add %13, %19 : tensor<2x4x32xf32>
    %21 = ap.rms_norm %20, %arg10 {epsilon = 1.000000e-05 : f64} : (tensor<2x4x32xf32>, tensor<32xf32>) -> tensor<2x4x32xf32>
    %22 = ap.linear %21, %arg11 : (tensor<2x4x32xf32>, tensor<64x32xf32>) -> tensor<2x4x64xf32>
    %23 = ap.shift_labels %arg13 : tensor<2x4xi64>
    %24 = ap.cross_entropy %22, %23 : (tensor<2x4x64xf32>, tensor<2x4xi64>) -> tensor<f32>
    return %24 : tensor<f32>
  }
}
