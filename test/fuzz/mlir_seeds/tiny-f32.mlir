module {
  func.func @train_step(%arg0: tensor<256x64xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"}, %arg1: tensor<64x64xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.q_proj.weight", ap.role = "parameter"}, %arg2: tensor<32x64xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.k_proj.weight", ap.role = "parameter"}, %arg3: tensor<32x64xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.self_attn.v_proj.weight", ap.role = "parameter"}, %arg4: tensor<64x64xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.0.self_attn.o_proj.weight", ap.role = "parameter"}, %arg5: tensor<160x64xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.mlp.gate_proj.weight", ap.role = "parameter"}, %arg6: tensor<160x64xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.0.mlp.up_proj.weight", ap.role = "parameter"}, %arg7: tensor<64x160xf32> {ap.layer = 0 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.0.mlp.down_proj.weight", ap.role = "parameter"}, %arg8: tensor<64xf32> {ap.layer = 0 : i64, ap.name = "model.layers.0.input_layernorm.weight", ap.role = "parameter"}, %arg9: tensor<64xf32> {ap.layer = 0 : i64, ap.name = "model.layers.0.post_attention_layernorm.weight", ap.role = "parameter"}, %arg10: tensor<64x64xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.1.self_attn.q_proj.weight", ap.role = "parameter"}, %arg11: tensor<32x64xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.1.self_attn.k_proj.weight", ap.role = "parameter"}, %arg12: tensor<32x64xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.1.self_attn.v_proj.weight", ap.role = "parameter"}, %arg13: tensor<64x64xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.1.self_attn.o_proj.weight", ap.role = "parameter"}, %arg14: tensor<160x64xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.1.mlp.gate_proj.weight", ap.role = "parameter"}, %arg15: tensor<160x64xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<column>, ap.name = "model.layers.1.mlp.up_proj.weight", ap.role = "parameter"}, %arg16: tensor<64x160xf32> {ap.layer = 1 : i64, ap.layout = #ap.layout<row>, ap.name = "model.layers.1.mlp.down_proj.weight", ap.role = "parameter"}, %arg17: tensor<64xf32> {ap.layer = 1 : i64, ap.name = "model.layers.1.input_layernorm.weight", ap.role = "parameter"}, %arg18: tensor<64xf32> {ap.layer = 1 : i64, ap.name = "model.layers.1.post_attention_layernorm.weight", ap.role = "parameter"}, %arg19: tensor<64xf32> {ap.head, ap.name = "model.norm.weight", ap.role = "parameter"}, %arg20: tensor<256x64xf32> {ap.head, ap.layout = #ap.layout<vocab>, ap.name = "lm_head.weight", ap.role = "parameter"}, %arg21: tensor<2x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}, %arg22: tensor<2x8xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"}) -> (tensor<f32> {ap.name = "loss"}) attributes {ap.model = {architecture = "llama3", head_dim = 16 : i64, hidden_size = 64 : i64, initializer_range = 2.000000e-02 : f64, intermediate_size = 160 : i64, max_position_embeddings = 128 : i64, num_attention_heads = 4 : i64, num_hidden_layers = 2 : i64, num_key_value_heads = 2 : i64, rms_norm_eps = 1.000000e-05 : f64, rope_factor = 8.000000e+00 : f64, rope_high_freq_factor = 4.000000e+00 : f64, rope_low_freq_factor = 1.000000e+00 : f64, rope_original_max_position_embeddings = 32 : i64, rope_theta = 1.000000e+04 : f64, rope_type = "llama3", tie_word_embeddings = false, vocab_size = 256 : i64}} {
    %0 = ap.embedding %arg0, %arg21 : (tensor<256x64xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
    %1 = ap.rms_norm %0, %arg8 {epsilon = 1.000000e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %2 = ap.linear %1, %arg1 : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %3 = ap.reshape %2 : tensor<2x8x64xf32> to tensor<2x8x4x16xf32>
    %4 = ap.linear %1, %arg2 : (tensor<2x8x64xf32>, tensor<32x64xf32>) -> tensor<2x8x32xf32>
    %5 = ap.reshape %4 : tensor<2x8x32xf32> to tensor<2x8x2x16xf32>
    %6 = ap.linear %1, %arg3 : (tensor<2x8x64xf32>, tensor<32x64xf32>) -> tensor<2x8x32xf32>
    %7 = ap.reshape %6 : tensor<2x8x32xf32> to tensor<2x8x2x16xf32>
    %8 = ap.rope %3 {factor = 8.000000e+00 : f64, high_freq_factor = 4.000000e+00 : f64, low_freq_factor = 1.000000e+00 : f64, original_max_position_embeddings = 32 : i64, rope_type = "llama3", theta = 1.000000e+04 : f64} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
    %9 = ap.rope %5 {factor = 8.000000e+00 : f64, high_freq_factor = 4.000000e+00 : f64, low_freq_factor = 1.000000e+00 : f64, original_max_position_embeddings = 32 : i64, rope_type = "llama3", theta = 1.000000e+04 : f64} : (tensor<2x8x2x16xf32>) -> tensor<2x8x2x16xf32>
    %10 = ap.attention %8, %9, %7 : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
    %11 = ap.reshape %10 : tensor<2x8x4x16xf32> to tensor<2x8x64xf32>
    %12 = ap.linear %11, %arg4 : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %13 = ap.add %0, %12 : tensor<2x8x64xf32>
    %14 = ap.rms_norm %13, %arg9 {epsilon = 1.000000e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %15 = ap.linear %14, %arg5 : (tensor<2x8x64xf32>, tensor<160x64xf32>) -> tensor<2x8x160xf32>
    %16 = ap.silu %15 : tensor<2x8x160xf32>
    %17 = ap.linear %14, %arg6 : (tensor<2x8x64xf32>, tensor<160x64xf32>) -> tensor<2x8x160xf32>
    %18 = ap.mul %16, %17 : tensor<2x8x160xf32>
    %19 = ap.linear %18, %arg7 : (tensor<2x8x160xf32>, tensor<64x160xf32>) -> tensor<2x8x64xf32>
    %20 = ap.add %13, %19 : tensor<2x8x64xf32>
    %21 = ap.rms_norm %20, %arg17 {epsilon = 1.000000e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %22 = ap.linear %21, %arg10 : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %23 = ap.reshape %22 : tensor<2x8x64xf32> to tensor<2x8x4x16xf32>
    %24 = ap.linear %21, %arg11 : (tensor<2x8x64xf32>, tensor<32x64xf32>) -> tensor<2x8x32xf32>
    %25 = ap.reshape %24 : tensor<2x8x32xf32> to tensor<2x8x2x16xf32>
    %26 = ap.linear %21, %arg12 : (tensor<2x8x64xf32>, tensor<32x64xf32>) -> tensor<2x8x32xf32>
    %27 = ap.reshape %26 : tensor<2x8x32xf32> to tensor<2x8x2x16xf32>
    %28 = ap.rope %23 {factor = 8.000000e+00 : f64, high_freq_factor = 4.000000e+00 : f64, low_freq_factor = 1.000000e+00 : f64, original_max_position_embeddings = 32 : i64, rope_type = "llama3", theta = 1.000000e+04 : f64} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
    %29 = ap.rope %25 {factor = 8.000000e+00 : f64, high_freq_factor = 4.000000e+00 : f64, low_freq_factor = 1.000000e+00 : f64, original_max_position_embeddings = 32 : i64, rope_type = "llama3", theta = 1.000000e+04 : f64} : (tensor<2x8x2x16xf32>) -> tensor<2x8x2x16xf32>
    %30 = ap.attention %28, %29, %27 : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
    %31 = ap.reshape %30 : tensor<2x8x4x16xf32> to tensor<2x8x64xf32>
    %32 = ap.linear %31, %arg13 : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %33 = ap.add %20, %32 : tensor<2x8x64xf32>
    %34 = ap.rms_norm %33, %arg18 {epsilon = 1.000000e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %35 = ap.linear %34, %arg14 : (tensor<2x8x64xf32>, tensor<160x64xf32>) -> tensor<2x8x160xf32>
    %36 = ap.silu %35 : tensor<2x8x160xf32>
    %37 = ap.linear %34, %arg15 : (tensor<2x8x64xf32>, tensor<160x64xf32>) -> tensor<2x8x160xf32>
    %38 = ap.mul %36, %37 : tensor<2x8x160xf32>
    %39 = ap.linear %38, %arg16 : (tensor<2x8x160xf32>, tensor<64x160xf32>) -> tensor<2x8x64xf32>
    %40 = ap.add %33, %39 : tensor<2x8x64xf32>
    %41 = ap.rms_norm %40, %arg19 {epsilon = 1.000000e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %42 = ap.linear %41, %arg20 : (tensor<2x8x64xf32>, tensor<256x64xf32>) -> tensor<2x8x256xf32>
    %43 = ap.shift_labels %arg22 : tensor<2x8xi64>
    %44 = ap.cross_entropy %42, %43 : (tensor<2x8x256xf32>, tensor<2x8xi64>) -> tensor<f32>
    return %44 : tensor<f32>
  }
}
