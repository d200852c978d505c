// RUN: apc-opt %s --split-input-file --verify-diagnostics

// Tests that embedding rejects a weight with a dynamic dim.
func.func @embedding_weight_dynamic(%w: tensor<?x8xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op weight must have a static shape, got 'tensor<?x8xf32>'}}
  %0 = ap.embedding %w, %ids : (tensor<?x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  return
}

// -----

// Tests that embedding rejects an integer weight.
func.func @embedding_weight_integer(%w: tensor<16x8xi32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op weight must have element type f32, bf16 or f16, got 'tensor<16x8xi32>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xi32>, tensor<2x4xi32>) -> tensor<2x4x8xi32>
  return
}

// -----

// Tests that embedding rejects an f64 weight.
func.func @embedding_weight_f64(%w: tensor<16x8xf64>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op weight must have element type f32, bf16 or f16, got 'tensor<16x8xf64>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xf64>, tensor<2x4xi32>) -> tensor<2x4x8xf64>
  return
}

// -----

// Tests that embedding rejects a weight that is not rank 2.
func.func @embedding_weight_rank(%w: tensor<16xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op weight must have rank 2, got 'tensor<16xf32>'}}
  %0 = ap.embedding %w, %ids : (tensor<16xf32>, tensor<2x4xi32>) -> tensor<2x4xf32>
  return
}

// -----

// Tests that embedding rejects float ids.
func.func @embedding_ids_float(%w: tensor<16x8xf32>, %ids: tensor<2x4xf32>) {
  // expected-error @+1 {{'ap.embedding' op ids must have element type i32 or i64, got 'tensor<2x4xf32>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<2x4xf32>) -> tensor<2x4x8xf32>
  return
}

// -----

// Tests that embedding rejects i8 ids.
func.func @embedding_ids_i8(%w: tensor<16x8xf32>, %ids: tensor<2x4xi8>) {
  // expected-error @+1 {{'ap.embedding' op ids must have element type i32 or i64, got 'tensor<2x4xi8>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<2x4xi8>) -> tensor<2x4x8xf32>
  return
}

// -----

// Tests that embedding rejects ids with a dynamic dim.
func.func @embedding_ids_dynamic(%w: tensor<16x8xf32>, %ids: tensor<?x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op ids must have a static shape, got 'tensor<?x4xi32>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<?x4xi32>) -> tensor<2x4x8xf32>
  return
}

// -----

// Tests that embedding rejects a result whose shape is not ids.shape + [hidden].
func.func @embedding_result_shape(%w: tensor<16x8xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op result must be 'tensor<2x4x8xf32>', got 'tensor<2x4x16xf32>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x16xf32>
  return
}

// -----

// Tests that embedding rejects a result whose element type differs from the weight's.
func.func @embedding_result_element(%w: tensor<16x8xbf16>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op result must be 'tensor<2x4x8xbf16>', got 'tensor<2x4x8xf32>'}}
  %0 = ap.embedding %w, %ids : (tensor<16x8xbf16>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  return
}

// -----

// Tests that linear rejects a rank-0 input.
func.func @linear_input_rank0(%x: tensor<f32>, %w: tensor<12x8xf32>) {
  // expected-error @+1 {{'ap.linear' op input must have rank at least 1, got 'tensor<f32>'}}
  %0 = ap.linear %x, %w : (tensor<f32>, tensor<12x8xf32>) -> tensor<12xf32>
  return
}

// -----

// Tests that linear rejects an input with a dynamic dim.
func.func @linear_input_dynamic(%x: tensor<?x8xf32>, %w: tensor<12x8xf32>) {
  // expected-error @+1 {{'ap.linear' op input must have a static shape, got 'tensor<?x8xf32>'}}
  %0 = ap.linear %x, %w : (tensor<?x8xf32>, tensor<12x8xf32>) -> tensor<?x12xf32>
  return
}

// -----

// Tests that linear rejects an f64 input.
func.func @linear_input_f64(%x: tensor<2x8xf64>, %w: tensor<12x8xf32>) {
  // expected-error @+1 {{'ap.linear' op input must have element type f32, bf16 or f16, got 'tensor<2x8xf64>'}}
  %0 = ap.linear %x, %w : (tensor<2x8xf64>, tensor<12x8xf32>) -> tensor<2x12xf32>
  return
}

// -----

// Tests that linear rejects a weight that is not rank 2.
func.func @linear_weight_rank(%x: tensor<2x8xf32>, %w: tensor<3x12x8xf32>) {
  // expected-error @+1 {{'ap.linear' op weight must have rank 2, got 'tensor<3x12x8xf32>'}}
  %0 = ap.linear %x, %w : (tensor<2x8xf32>, tensor<3x12x8xf32>) -> tensor<2x12xf32>
  return
}

// -----

// Tests that linear rejects an integer weight.
func.func @linear_weight_integer(%x: tensor<2x8xf32>, %w: tensor<12x8xi32>) {
  // expected-error @+1 {{'ap.linear' op weight must have element type f32, bf16 or f16, got 'tensor<12x8xi32>'}}
  %0 = ap.linear %x, %w : (tensor<2x8xf32>, tensor<12x8xi32>) -> tensor<2x12xf32>
  return
}

// -----

// Tests that linear rejects a weight with a dynamic dim.
func.func @linear_weight_dynamic(%x: tensor<2x8xf32>, %w: tensor<?x8xf32>) {
  // expected-error @+1 {{'ap.linear' op weight must have a static shape, got 'tensor<?x8xf32>'}}
  %0 = ap.linear %x, %w : (tensor<2x8xf32>, tensor<?x8xf32>) -> tensor<2x12xf32>
  return
}

// -----

// Tests that linear rejects input and weight of different element types.
func.func @linear_element_mismatch(%x: tensor<2x8xbf16>, %w: tensor<12x8xf32>) {
  // expected-error @+1 {{'ap.linear' op input and weight must have the same element type, got 'tensor<2x8xbf16>' and 'tensor<12x8xf32>'}}
  %0 = ap.linear %x, %w : (tensor<2x8xbf16>, tensor<12x8xf32>) -> tensor<2x12xbf16>
  return
}

// -----

// Tests that linear rejects an input whose last dim is not the weight's in-features.
func.func @linear_features(%x: tensor<2x7xf32>, %w: tensor<12x8xf32>) {
  // expected-error @+1 {{'ap.linear' op weight 'tensor<12x8xf32>' expects 8 input features but input 'tensor<2x7xf32>' has 7}}
  %0 = ap.linear %x, %w : (tensor<2x7xf32>, tensor<12x8xf32>) -> tensor<2x12xf32>
  return
}

// -----

// Tests that linear rejects a weight given in the [in, out] layout.
func.func @linear_weight_transposed(%x: tensor<2x8xf32>, %w: tensor<8x12xf32>) {
  // expected-error @+1 {{'ap.linear' op weight 'tensor<8x12xf32>' expects 12 input features but input 'tensor<2x8xf32>' has 8}}
  %0 = ap.linear %x, %w : (tensor<2x8xf32>, tensor<8x12xf32>) -> tensor<2x12xf32>
  return
}

// -----

// Tests that linear rejects a result whose last dim is not the weight's out-features.
func.func @linear_result(%x: tensor<2x4x8xf16>, %w: tensor<12x8xf16>) {
  // expected-error @+1 {{'ap.linear' op result must be 'tensor<2x4x12xf16>', got 'tensor<2x4x8xf16>'}}
  %0 = ap.linear %x, %w : (tensor<2x4x8xf16>, tensor<12x8xf16>) -> tensor<2x4x8xf16>
  return
}

// -----

// Tests that matmul rejects an integer lhs.
func.func @matmul_lhs_integer(%a: tensor<4x5xi32>, %b: tensor<5x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op lhs must have element type f32, bf16 or f16, got 'tensor<4x5xi32>'}}
  %0 = ap.matmul %a, %b : (tensor<4x5xi32>, tensor<5x6xf32>) -> tensor<4x6xf32>
  return
}

// -----

// Tests that matmul rejects an lhs with a dynamic dim.
func.func @matmul_lhs_dynamic(%a: tensor<?x5xf32>, %b: tensor<5x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op lhs must have a static shape, got 'tensor<?x5xf32>'}}
  %0 = ap.matmul %a, %b : (tensor<?x5xf32>, tensor<5x6xf32>) -> tensor<?x6xf32>
  return
}

// -----

// Tests that matmul rejects an f64 rhs.
func.func @matmul_rhs_f64(%a: tensor<4x5xf32>, %b: tensor<5x6xf64>) {
  // expected-error @+1 {{'ap.matmul' op rhs must have element type f32, bf16 or f16, got 'tensor<5x6xf64>'}}
  %0 = ap.matmul %a, %b : (tensor<4x5xf32>, tensor<5x6xf64>) -> tensor<4x6xf32>
  return
}

// -----

// Tests that matmul rejects an rhs with a dynamic dim.
func.func @matmul_rhs_dynamic(%a: tensor<4x5xf32>, %b: tensor<5x?xf32>) {
  // expected-error @+1 {{'ap.matmul' op rhs must have a static shape, got 'tensor<5x?xf32>'}}
  %0 = ap.matmul %a, %b : (tensor<4x5xf32>, tensor<5x?xf32>) -> tensor<4x?xf32>
  return
}

// -----

// Tests that matmul rejects lhs and rhs of different element types.
func.func @matmul_element_mismatch(%a: tensor<4x5xf32>, %b: tensor<5x6xf16>) {
  // expected-error @+1 {{'ap.matmul' op lhs and rhs must have the same element type, got 'tensor<4x5xf32>' and 'tensor<5x6xf16>'}}
  %0 = ap.matmul %a, %b : (tensor<4x5xf32>, tensor<5x6xf16>) -> tensor<4x6xf32>
  return
}

// -----

// Tests that matmul rejects operands of rank below 2.
func.func @matmul_rank1(%a: tensor<5xf32>, %b: tensor<5xf32>) {
  // expected-error @+1 {{'ap.matmul' op lhs and rhs must have the same rank, at least 2, got 'tensor<5xf32>' and 'tensor<5xf32>'}}
  %0 = ap.matmul %a, %b : (tensor<5xf32>, tensor<5xf32>) -> tensor<f32>
  return
}

// -----

// Tests that matmul rejects operands of different ranks (no broadcasting).
func.func @matmul_rank_mismatch(%a: tensor<3x4x5xf32>, %b: tensor<5x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op lhs and rhs must have the same rank, at least 2, got 'tensor<3x4x5xf32>' and 'tensor<5x6xf32>'}}
  %0 = ap.matmul %a, %b : (tensor<3x4x5xf32>, tensor<5x6xf32>) -> tensor<3x4x6xf32>
  return
}

// -----

// Tests that matmul rejects different batch dims.
func.func @matmul_batch(%a: tensor<2x3x4x5xf32>, %b: tensor<2x7x5x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op batch dim 1 of lhs 'tensor<2x3x4x5xf32>' differs from rhs 'tensor<2x7x5x6xf32>'}}
  %0 = ap.matmul %a, %b : (tensor<2x3x4x5xf32>, tensor<2x7x5x6xf32>) -> tensor<2x3x4x6xf32>
  return
}

// -----

// Tests that matmul rejects different contraction sizes.
func.func @matmul_contraction(%a: tensor<4x5xf32>, %b: tensor<7x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op contraction size of lhs 'tensor<4x5xf32>' (5) differs from rhs 'tensor<7x6xf32>' (7)}}
  %0 = ap.matmul %a, %b : (tensor<4x5xf32>, tensor<7x6xf32>) -> tensor<4x6xf32>
  return
}

// -----

// Tests that matmul reads the contraction dims through transpose_lhs and transpose_rhs.
func.func @matmul_contraction_transposed(%a: tensor<4x5xf32>, %b: tensor<5x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op contraction size of lhs 'tensor<4x5xf32>' (4) differs from rhs 'tensor<5x6xf32>' (6)}}
  %0 = ap.matmul %a, %b {transpose_lhs = true, transpose_rhs = true} : (tensor<4x5xf32>, tensor<5x6xf32>) -> tensor<5x5xf32>
  return
}

// -----

// Tests that matmul rejects a result that is not [batch..., M, N].
func.func @matmul_result(%a: tensor<3x4x5xf32>, %b: tensor<3x5x6xf32>) {
  // expected-error @+1 {{'ap.matmul' op result must be 'tensor<3x4x6xf32>', got 'tensor<3x6x4xf32>'}}
  %0 = ap.matmul %a, %b : (tensor<3x4x5xf32>, tensor<3x5x6xf32>) -> tensor<3x6x4xf32>
  return
}

// -----

// Tests that rms_norm rejects a rank-0 input.
func.func @rms_norm_input_rank0(%x: tensor<f32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op input must have rank at least 1, got 'tensor<f32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<f32>, tensor<8xf32>) -> tensor<f32>
  return
}

// -----

// Tests that rms_norm rejects an integer input.
func.func @rms_norm_input_integer(%x: tensor<2x8xi32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op input must have element type f32, bf16 or f16, got 'tensor<2x8xi32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x8xi32>, tensor<8xf32>) -> tensor<2x8xi32>
  return
}

// -----

// Tests that rms_norm rejects an input with a dynamic dim.
func.func @rms_norm_input_dynamic(%x: tensor<?x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op input must have a static shape, got 'tensor<?x8xf32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  return
}

// -----

// Tests that rms_norm rejects a weight that is not rank 1.
func.func @rms_norm_weight_rank(%x: tensor<2x8xf32>, %w: tensor<1x8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op weight must have rank 1, got 'tensor<1x8xf32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<1x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rms_norm rejects an f64 weight.
func.func @rms_norm_weight_f64(%x: tensor<2x8xf32>, %w: tensor<8xf64>) {
  // expected-error @+1 {{'ap.rms_norm' op weight must have element type f32, bf16 or f16, got 'tensor<8xf64>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xf64>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rms_norm rejects input and weight of different element types.
func.func @rms_norm_element_mismatch(%x: tensor<2x8xbf16>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op input and weight must have the same element type, got 'tensor<2x8xbf16>' and 'tensor<8xf32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x8xbf16>, tensor<8xf32>) -> tensor<2x8xbf16>
  return
}

// -----

// Tests that rms_norm rejects a weight that does not match the last dim of the input.
func.func @rms_norm_weight_size(%x: tensor<2x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op weight 'tensor<4xf32>' must match the last dim of input 'tensor<2x8xf32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rms_norm rejects a zero epsilon.
func.func @rms_norm_epsilon_zero(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op epsilon must be positive, got 0.000000e+00}}
  %0 = ap.rms_norm %x, %w {epsilon = 0.0 : f64} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rms_norm rejects a negative epsilon.
func.func @rms_norm_epsilon_negative(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'ap.rms_norm' op epsilon must be positive, got -1.000000e-05}}
  %0 = ap.rms_norm %x, %w {epsilon = -1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rms_norm rejects a result that differs from the input type.
func.func @rms_norm_result(%x: tensor<2x8xbf16>, %w: tensor<8xbf16>) {
  // expected-error @+1 {{'ap.rms_norm' op result must be 'tensor<2x8xbf16>', got 'tensor<2x8xf32>'}}
  %0 = ap.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : (tensor<2x8xbf16>, tensor<8xbf16>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rope rejects an input that is not rank 4.
func.func @rope_input_rank(%x: tensor<4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op input must have rank 4, got 'tensor<4x3x8xf32>'}}
  %0 = ap.rope %x {theta = 10000.0 : f64} : (tensor<4x3x8xf32>) -> tensor<4x3x8xf32>
  return
}

// -----

// Tests that rope rejects an integer input.
func.func @rope_input_integer(%x: tensor<2x4x3x8xi32>) {
  // expected-error @+1 {{'ap.rope' op input must have element type f32, bf16 or f16, got 'tensor<2x4x3x8xi32>'}}
  %0 = ap.rope %x {theta = 10000.0 : f64} : (tensor<2x4x3x8xi32>) -> tensor<2x4x3x8xi32>
  return
}

// -----

// Tests that rope rejects an input with a dynamic dim.
func.func @rope_input_dynamic(%x: tensor<2x?x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op input must have a static shape, got 'tensor<2x?x3x8xf32>'}}
  %0 = ap.rope %x {theta = 10000.0 : f64} : (tensor<2x?x3x8xf32>) -> tensor<2x?x3x8xf32>
  return
}

// -----

// Tests that rope rejects an odd head_dim.
func.func @rope_head_dim_odd(%x: tensor<2x4x3x7xf32>) {
  // expected-error @+1 {{'ap.rope' op head_dim of input 'tensor<2x4x3x7xf32>' must be even}}
  %0 = ap.rope %x {theta = 10000.0 : f64} : (tensor<2x4x3x7xf32>) -> tensor<2x4x3x7xf32>
  return
}

// -----

// Tests that rope rejects a zero theta.
func.func @rope_theta_zero(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op theta must be positive, got 0.000000e+00}}
  %0 = ap.rope %x {theta = 0.0 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects a negative theta.
func.func @rope_theta_negative(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op theta must be positive, got -1.000000e+04}}
  %0 = ap.rope %x {theta = -10000.0 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects scaling attributes with the default rope_type.
func.func @rope_default_scaling(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op rope_type "default" takes no scaling attributes}}
  %0 = ap.rope %x {theta = 10000.0 : f64, factor = 8.0 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects an explicit "default" rope_type with original_max_position_embeddings.
func.func @rope_default_scaling_explicit(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op rope_type "default" takes no scaling attributes}}
  %0 = ap.rope %x {theta = 10000.0 : f64, rope_type = "default", original_max_position_embeddings = 8192 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects llama3 without all four scaling attributes.
func.func @rope_llama3_missing(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op rope_type "llama3" needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings}}
  %0 = ap.rope %x {theta = 500000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 1.0 : f64, original_max_position_embeddings = 8192 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects llama3 with a non-positive factor.
func.func @rope_llama3_factor(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0}}
  %0 = ap.rope %x {theta = 500000.0 : f64, rope_type = "llama3", factor = 0.0 : f64, low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = 8192 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects llama3 with a non-positive low_freq_factor.
func.func @rope_llama3_low(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0}}
  %0 = ap.rope %x {theta = 500000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 0.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = 8192 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects llama3 with high_freq_factor not above low_freq_factor.
func.func @rope_llama3_high(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0}}
  %0 = ap.rope %x {theta = 500000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 4.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = 8192 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects llama3 with a non-positive original_max_position_embeddings.
func.func @rope_llama3_max_positions(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0}}
  %0 = ap.rope %x {theta = 500000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = 0 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects an unknown rope_type.
func.func @rope_unknown_type(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op unknown rope_type "yarn" (expected "default" or "llama3")}}
  %0 = "ap.rope"(%x) {theta = 10000.0 : f64, rope_type = "yarn"} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return
}

// -----

// Tests that rope rejects a result that differs from the input type.
func.func @rope_result(%x: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope' op result must be 'tensor<2x4x3x8xf32>', got 'tensor<2x4x3x8xbf16>'}}
  %0 = ap.rope %x {theta = 10000.0 : f64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xbf16>
  return
}

// -----

// Tests that attention rejects a query that is not rank 4.
func.func @attention_query_rank(%q: tensor<5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query must have rank 4, got 'tensor<5x4x8xf32>'}}
  %0 = ap.attention %q, %k, %v : (tensor<5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<5x4x8xf32>
  return
}

// -----

// Tests that attention rejects a query with a dynamic dim.
func.func @attention_query_dynamic(%q: tensor<2x?x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query must have a static shape, got 'tensor<2x?x4x8xf32>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x?x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x?x4x8xf32>
  return
}

// -----

// Tests that attention rejects an f64 query.
func.func @attention_query_f64(%q: tensor<2x5x4x8xf64>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query must have element type f32, bf16 or f16, got 'tensor<2x5x4x8xf64>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf64>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf64>
  return
}

// -----

// Tests that attention rejects an integer key.
func.func @attention_key_integer(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xi32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op key must have element type f32, bf16 or f16, got 'tensor<2x5x2x8xi32>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xi32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects a key that is not rank 4.
func.func @attention_key_rank(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x16xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op key must have rank 4, got 'tensor<2x5x16xf32>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x16xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects a value with a dynamic dim.
func.func @attention_value_dynamic(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x?x8xf32>) {
  // expected-error @+1 {{'ap.attention' op value must have a static shape, got 'tensor<2x5x?x8xf32>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x?x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects an i64 value.
func.func @attention_value_integer(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xi64>) {
  // expected-error @+1 {{'ap.attention' op value must have element type f32, bf16 or f16, got 'tensor<2x5x2x8xi64>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xi64>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects query and key of different element types.
func.func @attention_query_key_element(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xbf16>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query and key must have the same element type, got 'tensor<2x5x4x8xf32>' and 'tensor<2x5x2x8xbf16>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xbf16>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects query and value of different element types.
func.func @attention_query_value_element(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf16>) {
  // expected-error @+1 {{'ap.attention' op query and value must have the same element type, got 'tensor<2x5x4x8xf32>' and 'tensor<2x5x2x8xf16>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf16>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects key and value of different shapes.
func.func @attention_key_value_shape(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x16xf32>) {
  // expected-error @+1 {{'ap.attention' op key 'tensor<2x5x2x8xf32>' and value 'tensor<2x5x2x16xf32>' must have the same shape}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x16xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects query and key of different batch sizes.
func.func @attention_batch(%q: tensor<3x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query 'tensor<3x5x4x8xf32>' and key 'tensor<2x5x2x8xf32>' must agree on batch, seq and head_dim}}
  %0 = ap.attention %q, %k, %v : (tensor<3x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<3x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects query and key of different sequence lengths.
func.func @attention_seq(%q: tensor<2x6x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query 'tensor<2x6x4x8xf32>' and key 'tensor<2x5x2x8xf32>' must agree on batch, seq and head_dim}}
  %0 = ap.attention %q, %k, %v : (tensor<2x6x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x6x4x8xf32>
  return
}

// -----

// Tests that attention rejects query and key of different head_dims.
func.func @attention_head_dim(%q: tensor<2x5x4x16xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query 'tensor<2x5x4x16xf32>' and key 'tensor<2x5x2x8xf32>' must agree on batch, seq and head_dim}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x16xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x16xf32>
  return
}

// -----

// Tests that attention rejects query heads that are not a multiple of the kv heads.
func.func @attention_heads(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x3x8xf32>, %v: tensor<2x5x3x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query heads (4) must be a multiple of key/value heads (3)}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x3x8xf32>, tensor<2x5x3x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects zero key/value heads.
func.func @attention_zero_kv_heads(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x0x8xf32>, %v: tensor<2x5x0x8xf32>) {
  // expected-error @+1 {{'ap.attention' op query heads (4) must be a multiple of key/value heads (0)}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x0x8xf32>, tensor<2x5x0x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects a zero scale.
func.func @attention_scale_zero(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op scale must be positive, got 0.000000e+00}}
  %0 = ap.attention %q, %k, %v {scale = 0.0 : f64} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects a negative scale.
func.func @attention_scale_negative(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op scale must be positive, got -5.000000e-01}}
  %0 = ap.attention %q, %k, %v {scale = -0.5 : f64} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32>
  return
}

// -----

// Tests that attention rejects a result that is not the query's type.
func.func @attention_result(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>) {
  // expected-error @+1 {{'ap.attention' op result must be 'tensor<2x5x4x8xf32>', got 'tensor<2x5x2x8xf32>'}}
  %0 = ap.attention %q, %k, %v : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>) -> tensor<2x5x2x8xf32>
  return
}

// -----

// Tests that silu rejects an integer input.
func.func @silu_integer(%a: tensor<2x3xi32>) {
  // expected-error @+1 {{'ap.silu' op input must have element type f32, bf16 or f16, got 'tensor<2x3xi32>'}}
  %0 = ap.silu %a : tensor<2x3xi32>
  return
}

// -----

// Tests that silu rejects an f64 input.
func.func @silu_f64(%a: tensor<2x3xf64>) {
  // expected-error @+1 {{'ap.silu' op input must have element type f32, bf16 or f16, got 'tensor<2x3xf64>'}}
  %0 = ap.silu %a : tensor<2x3xf64>
  return
}

// -----

// Tests that silu rejects an input with a dynamic dim.
func.func @silu_dynamic(%a: tensor<?x3xf32>) {
  // expected-error @+1 {{'ap.silu' op input must have a static shape, got 'tensor<?x3xf32>'}}
  %0 = ap.silu %a : tensor<?x3xf32>
  return
}

// -----

// Tests that silu rejects a result type that differs from the input type.
func.func @silu_types(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.silu' op failed to verify that all of {input, result} have same type}}
  %0 = "ap.silu"(%a) : (tensor<2x3xf32>) -> tensor<2x3xbf16>
  return
}

// -----

// Tests that add rejects integer operands.
func.func @add_integer(%a: tensor<2x3xi64>, %b: tensor<2x3xi64>) {
  // expected-error @+1 {{'ap.add' op lhs must have element type f32, bf16 or f16, got 'tensor<2x3xi64>'}}
  %0 = ap.add %a, %b : tensor<2x3xi64>
  return
}

// -----

// Tests that add rejects operands with a dynamic dim.
func.func @add_dynamic(%a: tensor<2x?xf32>, %b: tensor<2x?xf32>) {
  // expected-error @+1 {{'ap.add' op lhs must have a static shape, got 'tensor<2x?xf32>'}}
  %0 = ap.add %a, %b : tensor<2x?xf32>
  return
}

// -----

// Tests that add rejects operands of different shapes (no broadcasting).
func.func @add_operand_shapes(%a: tensor<2x3xf32>, %b: tensor<1x3xf32>) {
  // expected-error @+1 {{'ap.add' op failed to verify that all of {lhs, rhs, result} have same type}}
  %0 = "ap.add"(%a, %b) : (tensor<2x3xf32>, tensor<1x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

// Tests that add rejects a result type that differs from the operand type.
func.func @add_result_type(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.add' op failed to verify that all of {lhs, rhs, result} have same type}}
  %0 = "ap.add"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf16>
  return
}

// -----

// Tests that mul rejects f64 operands.
func.func @mul_f64(%a: tensor<2x3xf64>, %b: tensor<2x3xf64>) {
  // expected-error @+1 {{'ap.mul' op lhs must have element type f32, bf16 or f16, got 'tensor<2x3xf64>'}}
  %0 = ap.mul %a, %b : tensor<2x3xf64>
  return
}

// -----

// Tests that mul rejects operands with a dynamic dim.
func.func @mul_dynamic(%a: tensor<?x3xbf16>, %b: tensor<?x3xbf16>) {
  // expected-error @+1 {{'ap.mul' op lhs must have a static shape, got 'tensor<?x3xbf16>'}}
  %0 = ap.mul %a, %b : tensor<?x3xbf16>
  return
}

// -----

// Tests that mul rejects operands of different element types.
func.func @mul_operand_types(%a: tensor<2x3xf32>, %b: tensor<2x3xbf16>) {
  // expected-error @+1 {{'ap.mul' op failed to verify that all of {lhs, rhs, result} have same type}}
  %0 = "ap.mul"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xbf16>) -> tensor<2x3xf32>
  return
}

// -----

// Tests that mul rejects a result shape that differs from the operand shape.
func.func @mul_result_shape(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.mul' op failed to verify that all of {lhs, rhs, result} have same type}}
  %0 = "ap.mul"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<3x2xf32>
  return
}

// -----

// Tests that cast rejects an i8 input.
func.func @cast_input_i8(%a: tensor<2x3xi8>) {
  // expected-error @+1 {{'ap.cast' op input must have element type f32, bf16, f16, i32 or i64, got 'tensor<2x3xi8>'}}
  %0 = ap.cast %a : tensor<2x3xi8> to tensor<2x3xf32>
  return
}

// -----

// Tests that cast rejects an input with a dynamic dim.
func.func @cast_input_dynamic(%a: tensor<?x3xf32>) {
  // expected-error @+1 {{'ap.cast' op input must have a static shape, got 'tensor<?x3xf32>'}}
  %0 = ap.cast %a : tensor<?x3xf32> to tensor<?x3xbf16>
  return
}

// -----

// Tests that cast rejects an f64 result.
func.func @cast_result_f64(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.cast' op result must have element type f32, bf16, f16, i32 or i64, got 'tensor<2x3xf64>'}}
  %0 = ap.cast %a : tensor<2x3xf32> to tensor<2x3xf64>
  return
}

// -----

// Tests that cast rejects an unsigned integer result.
func.func @cast_result_unsigned(%a: tensor<2x3xi32>) {
  // expected-error @+1 {{'ap.cast' op result must have element type f32, bf16, f16, i32 or i64, got 'tensor<2x3xui32>'}}
  %0 = ap.cast %a : tensor<2x3xi32> to tensor<2x3xui32>
  return
}

// -----

// Tests that cast rejects a result with a dynamic dim.
func.func @cast_result_dynamic(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.cast' op result must have a static shape, got 'tensor<2x?xbf16>'}}
  %0 = ap.cast %a : tensor<2x3xf32> to tensor<2x?xbf16>
  return
}

// -----

// Tests that cast rejects a result of another shape.
func.func @cast_shape(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.cast' op result 'tensor<3x2xbf16>' must have the shape of input 'tensor<2x3xf32>'}}
  %0 = ap.cast %a : tensor<2x3xf32> to tensor<3x2xbf16>
  return
}

// -----

// Tests that reshape rejects an i1 input.
func.func @reshape_input_i1(%a: tensor<2x12xi1>) {
  // expected-error @+1 {{'ap.reshape' op input must have element type f32, bf16, f16, i32 or i64, got 'tensor<2x12xi1>'}}
  %0 = ap.reshape %a : tensor<2x12xi1> to tensor<24xi1>
  return
}

// -----

// Tests that reshape rejects an input with a dynamic dim.
func.func @reshape_input_dynamic(%a: tensor<?x12xf32>) {
  // expected-error @+1 {{'ap.reshape' op input must have a static shape, got 'tensor<?x12xf32>'}}
  %0 = ap.reshape %a : tensor<?x12xf32> to tensor<24xf32>
  return
}

// -----

// Tests that reshape rejects a result with a dynamic dim.
func.func @reshape_result_dynamic(%a: tensor<2x12xf32>) {
  // expected-error @+1 {{'ap.reshape' op result must have a static shape, got 'tensor<2x?x4xf32>'}}
  %0 = ap.reshape %a : tensor<2x12xf32> to tensor<2x?x4xf32>
  return
}

// -----

// Tests that reshape rejects an f64 result.
func.func @reshape_result_f64(%a: tensor<2x12xf32>) {
  // expected-error @+1 {{'ap.reshape' op result must have element type f32, bf16, f16, i32 or i64, got 'tensor<24xf64>'}}
  %0 = ap.reshape %a : tensor<2x12xf32> to tensor<24xf64>
  return
}

// -----

// Tests that reshape rejects a change of element type.
func.func @reshape_element(%a: tensor<2x12xf32>) {
  // expected-error @+1 {{'ap.reshape' op input and result must have the same element type, got 'tensor<2x12xf32>' and 'tensor<24xbf16>'}}
  %0 = ap.reshape %a : tensor<2x12xf32> to tensor<24xbf16>
  return
}

// -----

// Tests that reshape rejects a result with another number of elements.
func.func @reshape_elements(%a: tensor<2x12xf32>) {
  // expected-error @+1 {{'ap.reshape' op result 'tensor<5x5xf32>' must have as many elements as input 'tensor<2x12xf32>' (25 vs 24)}}
  %0 = ap.reshape %a : tensor<2x12xf32> to tensor<5x5xf32>
  return
}

// -----

// Tests that transpose rejects an i8 input.
func.func @transpose_input_i8(%a: tensor<2x3xi8>) {
  // expected-error @+1 {{'ap.transpose' op input must have element type f32, bf16, f16, i32 or i64, got 'tensor<2x3xi8>'}}
  %0 = ap.transpose %a {permutation = array<i64: 1, 0>} : tensor<2x3xi8> to tensor<3x2xi8>
  return
}

// -----

// Tests that transpose rejects an input with a dynamic dim.
func.func @transpose_input_dynamic(%a: tensor<2x?xf32>) {
  // expected-error @+1 {{'ap.transpose' op input must have a static shape, got 'tensor<2x?xf32>'}}
  %0 = ap.transpose %a {permutation = array<i64: 1, 0>} : tensor<2x?xf32> to tensor<?x2xf32>
  return
}

// -----

// Tests that transpose rejects a permutation of the wrong length.
func.func @transpose_perm_size(%a: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'ap.transpose' op permutation has 2 entries but input 'tensor<2x3x4xf32>' has rank 3}}
  %0 = ap.transpose %a {permutation = array<i64: 1, 0>} : tensor<2x3x4xf32> to tensor<3x2x4xf32>
  return
}

// -----

// Tests that transpose rejects a repeated dim in the permutation.
func.func @transpose_perm_repeat(%a: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'ap.transpose' op permutation [2, 2, 0] is not a permutation of the dims of input 'tensor<2x3x4xf32>'}}
  %0 = ap.transpose %a {permutation = array<i64: 2, 2, 0>} : tensor<2x3x4xf32> to tensor<4x4x2xf32>
  return
}

// -----

// Tests that transpose rejects an out-of-range dim in the permutation.
func.func @transpose_perm_range(%a: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'ap.transpose' op permutation [0, 3, 1] is not a permutation of the dims of input 'tensor<2x3x4xf32>'}}
  %0 = ap.transpose %a {permutation = array<i64: 0, 3, 1>} : tensor<2x3x4xf32> to tensor<2x4x3xf32>
  return
}

// -----

// Tests that transpose rejects a negative dim in the permutation.
func.func @transpose_perm_negative(%a: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'ap.transpose' op permutation [-1, 0, 1] is not a permutation of the dims of input 'tensor<2x3x4xf32>'}}
  %0 = ap.transpose %a {permutation = array<i64: -1, 0, 1>} : tensor<2x3x4xf32> to tensor<4x2x3xf32>
  return
}

// -----

// Tests that transpose rejects a result that is not the permuted input.
func.func @transpose_result(%a: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'ap.transpose' op result must be 'tensor<4x2x3xf32>', got 'tensor<4x3x2xf32>'}}
  %0 = ap.transpose %a {permutation = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> to tensor<4x3x2xf32>
  return
}

// -----

// Tests that reduce_sum rejects an integer input.
func.func @reduce_sum_integer(%a: tensor<2x3xi32>) {
  // expected-error @+1 {{'ap.reduce_sum' op input must have element type f32, bf16 or f16, got 'tensor<2x3xi32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: 1>} : tensor<2x3xi32> to tensor<2xi32>
  return
}

// -----

// Tests that reduce_sum rejects an input with a dynamic dim.
func.func @reduce_sum_dynamic(%a: tensor<?x3xf32>) {
  // expected-error @+1 {{'ap.reduce_sum' op input must have a static shape, got 'tensor<?x3xf32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: 1>} : tensor<?x3xf32> to tensor<?xf32>
  return
}

// -----

// Tests that reduce_sum rejects an out-of-range dim.
func.func @reduce_sum_dim_range(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.reduce_sum' op dims [2] must be distinct dims of input 'tensor<2x3xf32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: 2>} : tensor<2x3xf32> to tensor<2x3xf32>
  return
}

// -----

// Tests that reduce_sum rejects a negative dim.
func.func @reduce_sum_dim_negative(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.reduce_sum' op dims [-1] must be distinct dims of input 'tensor<2x3xf32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: -1>} : tensor<2x3xf32> to tensor<2xf32>
  return
}

// -----

// Tests that reduce_sum rejects a repeated dim.
func.func @reduce_sum_dim_repeat(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'ap.reduce_sum' op dims [1, 1] must be distinct dims of input 'tensor<2x3xf32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: 1, 1>} : tensor<2x3xf32> to tensor<2xf32>
  return
}

// -----

// Tests that reduce_sum rejects a result that drops reduced dims under keep_dims.
func.func @reduce_sum_result_keep_dims(%a: tensor<4x2x3xf32>) {
  // expected-error @+1 {{'ap.reduce_sum' op result must be 'tensor<4x1x3xf32>', got 'tensor<4x3xf32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: 1>, keep_dims = true} : tensor<4x2x3xf32> to tensor<4x3xf32>
  return
}

// -----

// Tests that reduce_sum rejects a result that keeps reduced dims without keep_dims.
func.func @reduce_sum_result(%a: tensor<4x2x3xf32>) {
  // expected-error @+1 {{'ap.reduce_sum' op result must be 'tensor<2xf32>', got 'tensor<1x2x1xf32>'}}
  %0 = ap.reduce_sum %a {dims = array<i64: 0, 2>} : tensor<4x2x3xf32> to tensor<1x2x1xf32>
  return
}

// -----

// Tests that shift_labels rejects float labels.
func.func @shift_labels_float(%l: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.shift_labels' op labels must have element type i32 or i64, got 'tensor<2x5xf32>'}}
  %0 = ap.shift_labels %l : tensor<2x5xf32>
  return
}

// -----

// Tests that shift_labels rejects i8 labels.
func.func @shift_labels_i8(%l: tensor<2x5xi8>) {
  // expected-error @+1 {{'ap.shift_labels' op labels must have element type i32 or i64, got 'tensor<2x5xi8>'}}
  %0 = ap.shift_labels %l : tensor<2x5xi8>
  return
}

// -----

// Tests that shift_labels rejects rank-0 labels.
func.func @shift_labels_rank0(%l: tensor<i64>) {
  // expected-error @+1 {{'ap.shift_labels' op labels must have rank at least 1, got 'tensor<i64>'}}
  %0 = ap.shift_labels %l : tensor<i64>
  return
}

// -----

// Tests that shift_labels rejects labels with a dynamic dim.
func.func @shift_labels_dynamic(%l: tensor<2x?xi64>) {
  // expected-error @+1 {{'ap.shift_labels' op labels must have a static shape, got 'tensor<2x?xi64>'}}
  %0 = ap.shift_labels %l : tensor<2x?xi64>
  return
}

// -----

// Tests that shift_labels rejects a result type that differs from the labels type.
func.func @shift_labels_types(%l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.shift_labels' op failed to verify that all of {labels, result} have same type}}
  %0 = "ap.shift_labels"(%l) : (tensor<2x5xi64>) -> tensor<2x5xi32>
  return
}

// -----

// Tests that cross_entropy rejects rank-0 logits.
func.func @cross_entropy_logits_rank0(%x: tensor<f32>, %l: tensor<i64>) {
  // expected-error @+1 {{'ap.cross_entropy' op logits must have rank at least 1, got 'tensor<f32>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<f32>, tensor<i64>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects integer logits.
func.func @cross_entropy_logits_integer(%x: tensor<2x5x16xi32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.cross_entropy' op logits must have element type f32, bf16 or f16, got 'tensor<2x5x16xi32>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x16xi32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects logits with a dynamic dim.
func.func @cross_entropy_logits_dynamic(%x: tensor<2x5x?xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.cross_entropy' op logits must have a static shape, got 'tensor<2x5x?xf32>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x?xf32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects float labels.
func.func @cross_entropy_labels_float(%x: tensor<2x5x16xf32>, %l: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.cross_entropy' op labels must have element type i32 or i64, got 'tensor<2x5xf32>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x16xf32>, tensor<2x5xf32>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects labels with a dynamic dim.
func.func @cross_entropy_labels_dynamic(%x: tensor<2x5x16xf32>, %l: tensor<2x?xi64>) {
  // expected-error @+1 {{'ap.cross_entropy' op labels must have a static shape, got 'tensor<2x?xi64>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x16xf32>, tensor<2x?xi64>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects labels that are not the logits' shape without its last dim.
func.func @cross_entropy_labels_shape(%x: tensor<2x5x16xf32>, %l: tensor<2x5x16xi64>) {
  // expected-error @+1 {{'ap.cross_entropy' op labels 'tensor<2x5x16xi64>' must have the shape of logits without its last dim, logits 'tensor<2x5x16xf32>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x16xf32>, tensor<2x5x16xi64>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects an unknown reduction.
func.func @cross_entropy_reduction(%x: tensor<2x5x16xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.cross_entropy' op reduction must be "mean" or "sum", got "none"}}
  %0 = "ap.cross_entropy"(%x, %l) {reduction = "none"} : (tensor<2x5x16xf32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy rejects a result that is not a scalar f32.
func.func @cross_entropy_result_shape(%x: tensor<2x5x16xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.cross_entropy' op result must be 'tensor<f32>', got 'tensor<2x5xf32>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x16xf32>, tensor<2x5xi64>) -> tensor<2x5xf32>
  return
}

// -----

// Tests that cross_entropy rejects a non-f32 result even for bf16 logits.
func.func @cross_entropy_result_element(%x: tensor<2x5x16xbf16>, %l: tensor<2x5xi32>) {
  // expected-error @+1 {{'ap.cross_entropy' op result must be 'tensor<f32>', got 'tensor<bf16>'}}
  %0 = ap.cross_entropy %x, %l : (tensor<2x5x16xbf16>, tensor<2x5xi32>) -> tensor<bf16>
  return
}

// -----

// Tests that rope rejects a negative position_offset (read as a signed value).
func.func @rope_negative_offset(%x: tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32> {
  // expected-error @+1 {{'ap.rope' op position_offset must be non-negative, got -1}}
  %0 = ap.rope %x {theta = 10000.0 : f64, position_offset = -1 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return %0 : tensor<2x4x3x8xf32>
}

// -----

// Tests that llama3 rope rejects a negative original_max_position_embeddings.
func.func @rope_negative_original(%x: tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32> {
  // expected-error @+1 {{'ap.rope' op llama3 rope scaling needs factor > 0}}
  %0 = ap.rope %x {theta = 10000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64, original_max_position_embeddings = -5 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return %0 : tensor<2x4x3x8xf32>
}

// -----

// Tests that attention rejects an empty head_dim (the default scale would be 1/0).
func.func @attention_zero_head_dim(%q: tensor<2x5x4x0xf32>, %k: tensor<2x5x2x0xf32>) -> tensor<2x5x4x0xf32> {
  // expected-error @+1 {{'ap.attention' op head_dim of query 'tensor<2x5x4x0xf32>' must be positive}}
  %0 = ap.attention %q, %k, %k : (tensor<2x5x4x0xf32>, tensor<2x5x2x0xf32>, tensor<2x5x2x0xf32>) -> tensor<2x5x4x0xf32>
  return %0 : tensor<2x5x4x0xf32>
}

// -----

// Tests that fill rejects an integer result.
func.func @fill_integer() {
  // expected-error @+1 {{'ap.fill' op result must have element type f32, bf16 or f16, got 'tensor<2xi32>'}}
  %0 = ap.fill {value = 1.0 : f64} : tensor<2xi32>
  return
}

// -----

// Tests that fill rejects a result with a dynamic dim.
func.func @fill_dynamic() {
  // expected-error @+1 {{'ap.fill' op result must have a static shape, got 'tensor<?xf32>'}}
  %0 = ap.fill {value = 1.0 : f64} : tensor<?xf32>
  return
}

// -----

// Tests that fill rejects an infinite value.
func.func @fill_infinite() {
  // expected-error @+1 {{'ap.fill' op value must be finite}}
  %0 = ap.fill {value = 0x7FF0000000000000 : f64} : tensor<2xf32>
  return
}

// -----

// Tests that broadcast rejects an integer input.
func.func @broadcast_input_integer(%x: tensor<3xi32>) {
  // expected-error @+1 {{'ap.broadcast' op input must have element type f32, bf16 or f16, got 'tensor<3xi32>'}}
  %0 = ap.broadcast %x {dims = array<i64: 0>} : tensor<3xi32> to tensor<2x3xi32>
  return
}

// -----

// Tests that broadcast rejects a result with a dynamic dim.
func.func @broadcast_result_dynamic(%x: tensor<3xf32>) {
  // expected-error @+1 {{'ap.broadcast' op result must have a static shape, got 'tensor<?x3xf32>'}}
  %0 = ap.broadcast %x {dims = array<i64: 0>} : tensor<3xf32> to tensor<?x3xf32>
  return
}

// -----

// Tests that broadcast rejects a result of another element type.
func.func @broadcast_element(%x: tensor<3xf32>) {
  // expected-error @+1 {{'ap.broadcast' op input and result must have the same element type, got 'tensor<3xf32>' and 'tensor<2x3xbf16>'}}
  %0 = ap.broadcast %x {dims = array<i64: 0>} : tensor<3xf32> to tensor<2x3xbf16>
  return
}

// -----

// Tests that broadcast rejects an out-of-range dim.
func.func @broadcast_dim_range(%x: tensor<3xf32>) {
  // expected-error @+1 {{'ap.broadcast' op dims [2] must be distinct dims of result 'tensor<2x3xf32>'}}
  %0 = ap.broadcast %x {dims = array<i64: 2>} : tensor<3xf32> to tensor<2x3xf32>
  return
}

// -----

// Tests that broadcast rejects a repeated dim.
func.func @broadcast_dim_repeated(%x: tensor<3xf32>) {
  // expected-error @+1 {{'ap.broadcast' op dims [0, 0] must be distinct dims of result 'tensor<2x2x3xf32>'}}
  %0 = ap.broadcast %x {dims = array<i64: 0, 0>} : tensor<3xf32> to tensor<2x2x3xf32>
  return
}

// -----

// Tests that broadcast rejects an input that is not the result without dims.
func.func @broadcast_shape(%x: tensor<3xf32>) {
  // expected-error @+1 {{'ap.broadcast' op input 'tensor<3xf32>' must be result 'tensor<3x2xf32>' without dims [0]}}
  %0 = ap.broadcast %x {dims = array<i64: 0>} : tensor<3xf32> to tensor<3x2xf32>
  return
}

// -----

// Tests that embedding_grad rejects float ids.
func.func @embedding_grad_ids_float(%ids: tensor<2x4xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error @+1 {{'ap.embedding_grad' op ids must have element type i32 or i64, got 'tensor<2x4xf32>'}}
  %0 = ap.embedding_grad %ids, %dy : (tensor<2x4xf32>, tensor<2x4x8xf32>) -> tensor<16x8xf32>
  return
}

// -----

// Tests that embedding_grad rejects a rank-0 grad_output.
func.func @embedding_grad_output_rank(%ids: tensor<i32>, %dy: tensor<f32>) {
  // expected-error @+1 {{'ap.embedding_grad' op grad_output must have rank at least 1, got 'tensor<f32>'}}
  %0 = ap.embedding_grad %ids, %dy : (tensor<i32>, tensor<f32>) -> tensor<16x8xf32>
  return
}

// -----

// Tests that embedding_grad rejects a grad_weight that is not rank 2.
func.func @embedding_grad_weight_rank(%ids: tensor<2x4xi32>, %dy: tensor<2x4x8xf32>) {
  // expected-error @+1 {{'ap.embedding_grad' op grad_weight must have rank 2, got 'tensor<16x8x1xf32>'}}
  %0 = ap.embedding_grad %ids, %dy : (tensor<2x4xi32>, tensor<2x4x8xf32>) -> tensor<16x8x1xf32>
  return
}

// -----

// Tests that embedding_grad rejects a grad_weight of another element type.
func.func @embedding_grad_element(%ids: tensor<2x4xi32>, %dy: tensor<2x4x8xbf16>) {
  // expected-error @+1 {{'ap.embedding_grad' op grad_output and grad_weight must have the same element type, got 'tensor<2x4x8xbf16>' and 'tensor<16x8xf32>'}}
  %0 = ap.embedding_grad %ids, %dy : (tensor<2x4xi32>, tensor<2x4x8xbf16>) -> tensor<16x8xf32>
  return
}

// -----

// Tests that embedding_grad rejects a hidden size that differs from grad_weight.
func.func @embedding_grad_shape(%ids: tensor<2x4xi32>, %dy: tensor<2x4x8xf32>) {
  // expected-error @+1 {{'ap.embedding_grad' op grad_output 'tensor<2x4x8xf32>' must be ids 'tensor<2x4xi32>' plus the hidden dim of grad_weight 'tensor<16x6xf32>'}}
  %0 = ap.embedding_grad %ids, %dy : (tensor<2x4xi32>, tensor<2x4x8xf32>) -> tensor<16x6xf32>
  return
}

// -----

// Tests that embedding_grad rejects a grad_output that is not ids plus hidden.
func.func @embedding_grad_ids_shape(%ids: tensor<2x3xi32>, %dy: tensor<2x4x8xf32>) {
  // expected-error @+1 {{'ap.embedding_grad' op grad_output 'tensor<2x4x8xf32>' must be ids 'tensor<2x3xi32>' plus the hidden dim of grad_weight 'tensor<16x8xf32>'}}
  %0 = ap.embedding_grad %ids, %dy : (tensor<2x3xi32>, tensor<2x4x8xf32>) -> tensor<16x8xf32>
  return
}

// -----

// Tests that rms_norm_grad rejects an integer input.
func.func @rms_norm_grad_input_integer(%x: tensor<2x8xi32>, %w: tensor<8xi32>, %dy: tensor<2x8xi32>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op input must have element type f32, bf16 or f16, got 'tensor<2x8xi32>'}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x8xi32>, tensor<8xi32>, tensor<2x8xi32>) -> (tensor<2x8xi32>, tensor<8xi32>)
  return
}

// -----

// Tests that rms_norm_grad rejects a weight that is not rank 1.
func.func @rms_norm_grad_weight_rank(%x: tensor<2x8xf32>, %w: tensor<1x8xf32>, %dy: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op weight must have rank 1, got 'tensor<1x8xf32>'}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<1x8xf32>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<1x8xf32>)
  return
}

// -----

// Tests that rms_norm_grad rejects a weight of another element type.
func.func @rms_norm_grad_weight_element(%x: tensor<2x8xf32>, %w: tensor<8xbf16>, %dy: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op input and weight must have the same element type, got 'tensor<2x8xf32>' and 'tensor<8xbf16>'}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xbf16>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<8xbf16>)
  return
}

// -----

// Tests that rms_norm_grad rejects a weight that does not match the hidden size.
func.func @rms_norm_grad_weight_size(%x: tensor<2x8xf32>, %w: tensor<6xf32>, %dy: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op weight 'tensor<6xf32>' must match the last dim of input 'tensor<2x8xf32>'}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<6xf32>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<6xf32>)
  return
}

// -----

// Tests that rms_norm_grad rejects a grad_output of another type than the input.
func.func @rms_norm_grad_output_type(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x8xbf16>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op grad_output 'tensor<2x8xbf16>' must have the type of input 'tensor<2x8xf32>'}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xf32>, tensor<2x8xbf16>) -> (tensor<2x8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that rms_norm_grad rejects a zero epsilon.
func.func @rms_norm_grad_epsilon(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op epsilon must be positive, got 0.000000e+00}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 0.0 : f64} : (tensor<2x8xf32>, tensor<8xf32>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that rms_norm_grad rejects results that are not typed as input and weight.
func.func @rms_norm_grad_results(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.rms_norm_grad' op results must have the types of input and weight}}
  %0:2 = ap.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xf32>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>)
  return
}

// -----

// Tests that rope_grad rejects a grad_output that is not rank 4 (named input, as in rope).
func.func @rope_grad_rank(%dy: tensor<4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op grad_output must have rank 4, got 'tensor<4x3x8xf32>'}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64} : (tensor<4x3x8xf32>) -> (tensor<4x3x8xf32>)
  return
}

// -----

// Tests that rope_grad rejects an odd head_dim.
func.func @rope_grad_odd_head_dim(%dy: tensor<2x4x3x7xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op head_dim of grad_output 'tensor<2x4x3x7xf32>' must be even and positive}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64} : (tensor<2x4x3x7xf32>) -> (tensor<2x4x3x7xf32>)
  return
}

// -----

// Tests that rope_grad rejects a non-positive theta.
func.func @rope_grad_theta(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op theta must be positive, got 0.000000e+00}}
  %0 = ap.rope_grad %dy {theta = 0.0 : f64} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>)
  return
}

// -----

// Tests that rope_grad rejects a negative position_offset.
func.func @rope_grad_offset(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op position_offset must be non-negative, got -3}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64, position_offset = -3 : i64} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>)
  return
}

// -----

// Tests that default rope_grad rejects scaling attributes.
func.func @rope_grad_default_scaling(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op rope_type "default" takes no scaling attributes}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64, factor = 8.0 : f64} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>)
  return
}

// -----

// Tests that llama3 rope_grad needs all four scaling attributes.
func.func @rope_grad_llama3_missing(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op rope_type "llama3" needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 1.0 : f64, high_freq_factor = 4.0 : f64} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>)
  return
}

// -----

// Tests that llama3 rope_grad rejects high_freq_factor <= low_freq_factor.
func.func @rope_grad_llama3_values(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64, rope_type = "llama3", factor = 8.0 : f64, low_freq_factor = 4.0 : f64, high_freq_factor = 1.0 : f64, original_max_position_embeddings = 8192 : i64} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>)
  return
}

// -----

// Tests that rope_grad rejects an unknown rope_type.
func.func @rope_grad_unknown_type(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op unknown rope_type "yarn" (expected "default" or "llama3")}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64, rope_type = "yarn"} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xf32>)
  return
}

// -----

// Tests that rope_grad rejects a grad_input of another type.
func.func @rope_grad_result(%dy: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'ap.rope_grad' op grad_input 'tensor<2x4x3x8xbf16>' must have the type of grad_output 'tensor<2x4x3x8xf32>'}}
  %0 = ap.rope_grad %dy {theta = 10000.0 : f64} : (tensor<2x4x3x8xf32>) -> (tensor<2x4x3x8xbf16>)
  return
}

// -----

// Tests that attention_grad rejects a query that is not rank 4.
func.func @attention_grad_query_rank(%q: tensor<5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>, %dy: tensor<5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op query must have rank 4, got 'tensor<5x4x8xf32>'}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<5x4x8xf32>) -> (tensor<5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects an integer key.
func.func @attention_grad_key_integer(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xi32>, %v: tensor<2x5x2x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op key must have element type f32, bf16 or f16, got 'tensor<2x5x2x8xi32>'}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xi32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xi32>, tensor<2x5x2x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects a value with a dynamic dim.
func.func @attention_grad_value_dynamic(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x?x2x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op value must have a static shape, got 'tensor<2x?x2x8xf32>'}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x?x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x?x2x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects a key of another element type.
func.func @attention_grad_key_element(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xbf16>, %v: tensor<2x5x2x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op query and key must have the same element type, got 'tensor<2x5x4x8xf32>' and 'tensor<2x5x2x8xbf16>'}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xbf16>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xbf16>, tensor<2x5x2x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects a value of another element type.
func.func @attention_grad_value_element(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xbf16>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op query and value must have the same element type, got 'tensor<2x5x4x8xf32>' and 'tensor<2x5x2x8xbf16>'}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xbf16>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xbf16>)
  return
}

// -----

// Tests that attention_grad rejects key and value of different shapes.
func.func @attention_grad_kv_shape(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x1x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op key 'tensor<2x5x2x8xf32>' and value 'tensor<2x5x1x8xf32>' must have the same shape}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x1x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x1x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects a key with another sequence length.
func.func @attention_grad_seq(%q: tensor<2x5x4x8xf32>, %k: tensor<2x6x2x8xf32>, %v: tensor<2x6x2x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op query 'tensor<2x5x4x8xf32>' and key 'tensor<2x6x2x8xf32>' must agree on batch, seq and head_dim}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x6x2x8xf32>, tensor<2x6x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x6x2x8xf32>, tensor<2x6x2x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects query heads that are not a multiple of kv heads.
func.func @attention_grad_heads(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x3x8xf32>, %v: tensor<2x5x3x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op query heads (4) must be a multiple of key/value heads (3)}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x3x8xf32>, tensor<2x5x3x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x3x8xf32>, tensor<2x5x3x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects a grad_output of another type than the query.
func.func @attention_grad_output_type(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>, %dy: tensor<2x5x4x8xbf16>) {
  // expected-error @+1 {{'ap.attention_grad' op grad_output 'tensor<2x5x4x8xbf16>' must have the type of query 'tensor<2x5x4x8xf32>'}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xbf16>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>)
  return
}

// -----

// Tests that attention_grad rejects results that are not typed as query, key and value.
func.func @attention_grad_results(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>, %v: tensor<2x5x2x8xf32>, %dy: tensor<2x5x4x8xf32>) {
  // expected-error @+1 {{'ap.attention_grad' op results must have the types of query, key and value}}
  %0:3 = ap.attention_grad %q, %k, %v, %dy : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>)
  return
}

// -----

// Tests that silu_grad rejects an integer input.
func.func @silu_grad_integer(%x: tensor<2x3xi32>, %dy: tensor<2x3xi32>) {
  // expected-error @+1 {{'ap.silu_grad' op input must have element type f32, bf16 or f16, got 'tensor<2x3xi32>'}}
  %0 = ap.silu_grad %x, %dy : tensor<2x3xi32>
  return
}

// -----

// Tests that cross_entropy_grad rejects rank-0 logits.
func.func @cross_entropy_grad_logits_rank(%l: tensor<f32>, %y: tensor<i64>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op logits must have rank at least 1, got 'tensor<f32>'}}
  %0 = ap.cross_entropy_grad %l, %y, %g : (tensor<f32>, tensor<i64>, tensor<f32>) -> tensor<f32>
  return
}

// -----

// Tests that cross_entropy_grad rejects float labels.
func.func @cross_entropy_grad_labels_float(%l: tensor<2x5x16xf32>, %y: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op labels must have element type i32 or i64, got 'tensor<2x5xf32>'}}
  %0 = ap.cross_entropy_grad %l, %y, %g : (tensor<2x5x16xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x16xf32>
  return
}

// -----

// Tests that cross_entropy_grad rejects a grad_loss that is not a scalar.
func.func @cross_entropy_grad_loss_rank(%l: tensor<2x5x16xf32>, %y: tensor<2x5xi64>, %g: tensor<1xf32>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op grad_loss must have rank 0, got 'tensor<1xf32>'}}
  %0 = ap.cross_entropy_grad %l, %y, %g : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<1xf32>) -> tensor<2x5x16xf32>
  return
}

// -----

// Tests that cross_entropy_grad rejects labels that are not the logits without the last dim.
func.func @cross_entropy_grad_labels_shape(%l: tensor<2x5x16xf32>, %y: tensor<2x4xi64>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op labels 'tensor<2x4xi64>' must have the shape of logits without its last dim, logits 'tensor<2x5x16xf32>'}}
  %0 = ap.cross_entropy_grad %l, %y, %g : (tensor<2x5x16xf32>, tensor<2x4xi64>, tensor<f32>) -> tensor<2x5x16xf32>
  return
}

// -----

// Tests that cross_entropy_grad rejects a bf16 grad_loss.
func.func @cross_entropy_grad_loss_element(%l: tensor<2x5x16xf32>, %y: tensor<2x5xi64>, %g: tensor<bf16>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op grad_loss must be tensor<f32>, got 'tensor<bf16>'}}
  %0 = ap.cross_entropy_grad %l, %y, %g : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<bf16>) -> tensor<2x5x16xf32>
  return
}

// -----

// Tests that cross_entropy_grad rejects an unknown reduction.
func.func @cross_entropy_grad_reduction(%l: tensor<2x5x16xf32>, %y: tensor<2x5xi64>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op reduction must be "mean" or "sum", got "none"}}
  %0 = ap.cross_entropy_grad %l, %y, %g {reduction = "none"} : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x16xf32>
  return
}

// -----

// Tests that cross_entropy_grad rejects a result that is not typed as the logits.
func.func @cross_entropy_grad_result(%l: tensor<2x5x16xf32>, %y: tensor<2x5xi64>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.cross_entropy_grad' op result must be 'tensor<2x5x16xf32>', got 'tensor<2x5x16xbf16>'}}
  %0 = ap.cross_entropy_grad %l, %y, %g : (tensor<2x5x16xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x16xbf16>
  return
}

// -----

// Tests that count_kept rejects labels with a dynamic dim.
func.func @count_kept_labels_dynamic(%l: tensor<?x5xi64>) {
  // expected-error @+1 {{'ap.count_kept' op labels must have a static shape, got 'tensor<?x5xi64>'}}
  %0 = ap.count_kept %l : (tensor<?x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that count_kept rejects float labels.
func.func @count_kept_labels_float(%l: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.count_kept' op labels must have element type i32 or i64, got 'tensor<2x5xf32>'}}
  %0 = ap.count_kept %l : (tensor<2x5xf32>) -> tensor<f32>
  return
}

// -----

// Tests that count_kept rejects a result that is not a scalar f32.
func.func @count_kept_result(%l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.count_kept' op result must be 'tensor<f32>', got 'tensor<i64>'}}
  %0 = ap.count_kept %l : (tensor<2x5xi64>) -> tensor<i64>
  return
}

// -----

// Tests that grad_norm needs at least one gradient.
func.func @grad_norm_empty() {
  // expected-error @+1 {{'ap.grad_norm' op needs at least one gradient}}
  %0 = ap.grad_norm : () -> tensor<f32>
  return
}

// -----

// Tests that grad_norm rejects an integer gradient and names its position.
func.func @grad_norm_integer(%a: tensor<8xf32>, %b: tensor<8xi32>) {
  // expected-error @+1 {{'ap.grad_norm' op grad #1 must have element type f32, bf16 or f16, got 'tensor<8xi32>'}}
  %0 = ap.grad_norm %a, %b : (tensor<8xf32>, tensor<8xi32>) -> tensor<f32>
  return
}

// -----

// Tests that grad_norm rejects a result that is not a scalar f32.
func.func @grad_norm_result(%a: tensor<8xbf16>) {
  // expected-error @+1 {{'ap.grad_norm' op result must be 'tensor<f32>', got 'tensor<bf16>'}}
  %0 = ap.grad_norm %a : (tensor<8xbf16>) -> tensor<bf16>
  return
}

// -----

// Tests that adamw rejects a param with a dynamic dim.
func.func @adamw_param_dynamic(%p: tensor<?xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op param must have a static shape, got 'tensor<?xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<?xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects an integer grad.
func.func @adamw_grad_integer(%p: tensor<8xf32>, %g: tensor<8xi32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op grad must have element type f32, bf16 or f16, got 'tensor<8xi32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xi32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects an integer exp_avg.
func.func @adamw_exp_avg_integer(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xi32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op exp_avg must have element type f32, bf16 or f16, got 'tensor<8xi32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xi32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects an exp_avg_sq with a dynamic dim.
func.func @adamw_exp_avg_sq_dynamic(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<?xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op exp_avg_sq must have a static shape, got 'tensor<?xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<?xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a float step.
func.func @adamw_step_float(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<f32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op step must have element type i32 or i64, got 'tensor<f32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<f32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects an lr that is not a scalar.
func.func @adamw_lr_rank(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<1xf32>) {
  // expected-error @+1 {{'ap.adamw' op lr must have rank 0, got 'tensor<1xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<1xf32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a bf16 param (the master copy is f32).
func.func @adamw_param_bf16(%p: tensor<8xbf16>, %g: tensor<8xf32>, %m: tensor<8xbf16>, %v: tensor<8xbf16>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op param must be f32 (the master copy), got 'tensor<8xbf16>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xbf16>, tensor<8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<i64>, tensor<f32>) -> (tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
  return
}

// -----

// Tests that adamw rejects moments of another type than the param.
func.func @adamw_moment_type(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<4xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op exp_avg 'tensor<8xf32>' and exp_avg_sq 'tensor<4xf32>' must have the type of param 'tensor<8xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<4xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a grad of another shape than the param.
func.func @adamw_grad_shape(%p: tensor<8xf32>, %g: tensor<4xbf16>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op grad 'tensor<4xbf16>' must have the shape of param 'tensor<8xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<4xbf16>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a bf16 lr.
func.func @adamw_lr_bf16(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<bf16>) {
  // expected-error @+1 {{'ap.adamw' op lr must be tensor<f32>, got 'tensor<bf16>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<bf16>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects beta1 = 1.
func.func @adamw_beta1(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op beta1 and beta2 must be in [0, 1), got 1.000000e+00 and 9.990000e-01}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr {beta1 = 1.0 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a zero epsilon.
func.func @adamw_epsilon(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op epsilon must be positive}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr {epsilon = 0.0 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a negative weight_decay.
func.func @adamw_weight_decay(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op weight_decay must be non-negative}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr {weight_decay = -0.1 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a non-positive max_grad_norm.
func.func @adamw_max_grad_norm(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>, %n: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op max_grad_norm must be positive}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr, %n {max_grad_norm = 0.0 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw with max_grad_norm needs the grad_norm operand.
func.func @adamw_missing_grad_norm(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op max_grad_norm needs the grad_norm operand}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr {max_grad_norm = 1.0 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects a grad_norm that is not a scalar.
func.func @adamw_grad_norm_rank(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>, %n: tensor<1xf32>) {
  // expected-error @+1 {{'ap.adamw' op grad_norm must have rank 0, got 'tensor<1xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr, %n {max_grad_norm = 1.0 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>, tensor<1xf32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

// Tests that adamw rejects results of another type than the param.
func.func @adamw_results(%p: tensor<8xf32>, %g: tensor<8xf32>, %m: tensor<8xf32>, %v: tensor<8xf32>, %t: tensor<i64>, %lr: tensor<f32>) {
  // expected-error @+1 {{'ap.adamw' op results must have the type of param 'tensor<8xf32>'}}
  %0:3 = ap.adamw %p, %g, %m, %v, %t, %lr : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i64>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xbf16>)
  return
}

// -----

// Tests that attention_grad rejects a non-positive scale, as attention does.
func.func @attention_grad_scale(%q: tensor<2x5x4x8xf32>, %k: tensor<2x5x2x8xf32>) -> tensor<2x5x4x8xf32> {
  // expected-error @+1 {{'ap.attention_grad' op scale must be positive, got -1}}
  %0:3 = ap.attention_grad %q, %k, %k, %q {scale = -1.0 : f64} : (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x4x8xf32>) -> (tensor<2x5x4x8xf32>, tensor<2x5x2x8xf32>, tensor<2x5x2x8xf32>)
  return %0#0 : tensor<2x5x4x8xf32>
}

// -----

// Tests that adamw checks a grad_norm operand even without max_grad_norm.
func.func @adamw_grad_norm_type(%p: tensor<3xf32>, %step: tensor<i64>, %lr: tensor<f32>, %n: tensor<2xf32>) -> tensor<3xf32> {
  // expected-error @+1 {{'ap.adamw' op grad_norm must have rank 0, got 'tensor<2xf32>'}}
  %0:3 = ap.adamw %p, %p, %p, %p, %step, %lr, %n : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<i64>, tensor<f32>, tensor<2xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>)
  return %0#0 : tensor<3xf32>
}

// -----

// Tests that attention_grad rejects an empty head_dim, as attention does.
func.func @attention_grad_zero_head_dim(%q: tensor<2x5x4x0xf32>, %k: tensor<2x5x2x0xf32>) -> tensor<2x5x4x0xf32> {
  // expected-error @+1 {{'ap.attention_grad' op head_dim of query 'tensor<2x5x4x0xf32>' must be positive}}
  %0:3 = ap.attention_grad %q, %k, %k, %q : (tensor<2x5x4x0xf32>, tensor<2x5x2x0xf32>, tensor<2x5x2x0xf32>, tensor<2x5x4x0xf32>) -> (tensor<2x5x4x0xf32>, tensor<2x5x2x0xf32>, tensor<2x5x2x0xf32>)
  return %0#0 : tensor<2x5x4x0xf32>
}

// -----

// Tests that embedding rejects a negative vocab_shard_axis.
func.func @embedding_vocab_shard_axis(%w: tensor<16x8xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'ap.embedding' op vocab_shard_axis must be non-negative, got -1}}
  %0 = ap.embedding %w, %ids {vocab_shard_axis = -1 : i64} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  return
}

// -----

// Tests that embedding_grad rejects a negative vocab_shard_axis.
func.func @embedding_grad_vocab_shard_axis(%ids: tensor<2x4xi32>, %dy: tensor<2x4x8xf32>) {
  // expected-error @+1 {{'ap.embedding_grad' op vocab_shard_axis must be non-negative, got -2}}
  %0 = ap.embedding_grad %ids, %dy {vocab_shard_axis = -2 : i64} : (tensor<2x4xi32>, tensor<2x4x8xf32>) -> tensor<16x8xf32>
  return
}

// -----

// Tests that sqrt rejects an integer input.
func.func @sqrt_integer(%x: tensor<4xi64>) {
  // expected-error @+1 {{'ap.sqrt' op input must have element type f32, bf16 or f16, got 'tensor<4xi64>'}}
  %0 = ap.sqrt %x : tensor<4xi64>
  return
}

// -----

// Tests that vocab_parallel_max rejects integer logits.
func.func @vocab_parallel_max_logits_integer(%x: tensor<2x5x8xi32>) {
  // expected-error @+1 {{'ap.vocab_parallel_max' op logits must have element type f32, bf16 or f16, got 'tensor<2x5x8xi32>'}}
  %0 = ap.vocab_parallel_max %x : (tensor<2x5x8xi32>) -> tensor<2x5xf32>
  return
}

// -----

// Tests that vocab_parallel_max rejects rank-0 logits.
func.func @vocab_parallel_max_logits_rank(%x: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_max' op logits must have rank at least 1, got 'tensor<f32>'}}
  %0 = ap.vocab_parallel_max %x : (tensor<f32>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_max rejects a row_max in the logits' element type.
func.func @vocab_parallel_max_result(%x: tensor<2x5x8xbf16>) {
  // expected-error @+1 {{'ap.vocab_parallel_max' op row_max must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5xbf16>'}}
  %0 = ap.vocab_parallel_max %x : (tensor<2x5x8xbf16>) -> tensor<2x5xbf16>
  return
}

// -----

// Tests that vocab_parallel_stats rejects labels that are not the logits without the last dim.
func.func @vocab_parallel_stats_labels_shape(%x: tensor<2x5x8xf32>, %l: tensor<2x4xi64>, %m: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_stats' op labels 'tensor<2x4xi64>' must have the shape of logits without its last dim, logits 'tensor<2x5x8xf32>'}}
  %0:2 = ap.vocab_parallel_stats %x, %l, %m : (tensor<2x5x8xf32>, tensor<2x4xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  return
}

// -----

// Tests that vocab_parallel_stats rejects float labels.
func.func @vocab_parallel_stats_labels_float(%x: tensor<2x5x8xf32>, %l: tensor<2x5xf32>, %m: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_stats' op labels must have element type i32 or i64, got 'tensor<2x5xf32>'}}
  %0:2 = ap.vocab_parallel_stats %x, %l, %m : (tensor<2x5x8xf32>, tensor<2x5xf32>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  return
}

// -----

// Tests that vocab_parallel_stats rejects a row_max that is not f32.
func.func @vocab_parallel_stats_row_max(%x: tensor<2x5x8xbf16>, %l: tensor<2x5xi64>, %m: tensor<2x5xbf16>) {
  // expected-error @+1 {{'ap.vocab_parallel_stats' op row_max must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5xbf16>'}}
  %0:2 = ap.vocab_parallel_stats %x, %l, %m : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xbf16>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  return
}

// -----

// Tests that vocab_parallel_stats rejects a negative vocab_shard_axis.
func.func @vocab_parallel_stats_axis(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_stats' op vocab_shard_axis must be non-negative, got -1}}
  %0:2 = ap.vocab_parallel_stats %x, %l, %m {vocab_shard_axis = -1 : i64} : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf32>)
  return
}

// -----

// Tests that vocab_parallel_stats rejects a sum_exp of the wrong shape.
func.func @vocab_parallel_stats_sum_exp(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_stats' op sum_exp must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5x8xf32>'}}
  %0:2 = ap.vocab_parallel_stats %x, %l, %m : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>) -> (tensor<2x5x8xf32>, tensor<2x5xf32>)
  return
}

// -----

// Tests that vocab_parallel_stats rejects a target_logit that is not f32.
func.func @vocab_parallel_stats_target(%x: tensor<2x5x8xf16>, %l: tensor<2x5xi32>, %m: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_stats' op target_logit must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5xf16>'}}
  %0:2 = ap.vocab_parallel_stats %x, %l, %m : (tensor<2x5x8xf16>, tensor<2x5xi32>, tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<2x5xf16>)
  return
}

// -----

// Tests that vocab_parallel_loss rejects float labels.
func.func @vocab_parallel_loss_labels_float(%m: tensor<2x5xf32>, %l: tensor<2x5xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op labels must have element type i32 or i64, got 'tensor<2x5xf32>'}}
  %0 = ap.vocab_parallel_loss %m, %m, %m, %l : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_loss rejects a row_max that is not of the labels' shape.
func.func @vocab_parallel_loss_row_max(%m: tensor<2x4xf32>, %s: tensor<2x5xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op row_max must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x4xf32>'}}
  %0 = ap.vocab_parallel_loss %m, %s, %s, %l : (tensor<2x4xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_loss rejects a sum_exp that is not f32.
func.func @vocab_parallel_loss_sum_exp(%m: tensor<2x5xf32>, %s: tensor<2x5xbf16>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op sum_exp must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5xbf16>'}}
  %0 = ap.vocab_parallel_loss %m, %s, %m, %l : (tensor<2x5xf32>, tensor<2x5xbf16>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_loss rejects a target_logit that is not of the labels' shape.
func.func @vocab_parallel_loss_target(%m: tensor<2x5xf32>, %t: tensor<10xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op target_logit must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<10xf32>'}}
  %0 = ap.vocab_parallel_loss %m, %m, %t, %l : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<10xf32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_loss rejects an unknown reduction.
func.func @vocab_parallel_loss_reduction(%m: tensor<2x5xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op reduction must be "mean" or "sum", got "none"}}
  %0 = ap.vocab_parallel_loss %m, %m, %m, %l {reduction = "none"} : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_loss rejects a kept_count that is not a scalar f32.
func.func @vocab_parallel_loss_kept_count(%m: tensor<2x5xf32>, %l: tensor<2x5xi64>, %n: tensor<1xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op kept_count must be tensor<f32>, got 'tensor<1xf32>'}}
  %0 = ap.vocab_parallel_loss %m, %m, %m, %l count %n : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

// Tests that vocab_parallel_loss rejects a result that is not a scalar f32.
func.func @vocab_parallel_loss_result(%m: tensor<2x5xf32>, %l: tensor<2x5xi64>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss' op result must be 'tensor<f32>', got 'tensor<2x5xf32>'}}
  %0 = ap.vocab_parallel_loss %m, %m, %m, %l : (tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<2x5xi64>) -> tensor<2x5xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects integer logits.
func.func @vocab_parallel_loss_grad_logits(%x: tensor<2x5x8xi64>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op logits must have element type f32, bf16 or f16, got 'tensor<2x5x8xi64>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g : (tensor<2x5x8xi64>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xi64>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects labels that are not the logits without the last dim.
func.func @vocab_parallel_loss_grad_labels(%x: tensor<2x5x8xf32>, %l: tensor<5xi64>, %m: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op labels 'tensor<5xi64>' must have the shape of logits without its last dim, logits 'tensor<2x5x8xf32>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g : (tensor<2x5x8xf32>, tensor<5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects a row_max that is not f32.
func.func @vocab_parallel_loss_grad_row_max(%x: tensor<2x5x8xbf16>, %l: tensor<2x5xi64>, %m: tensor<2x5xbf16>, %s: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op row_max must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5xbf16>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %s, %g : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xbf16>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xbf16>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects a sum_exp that is not of the labels' shape.
func.func @vocab_parallel_loss_grad_sum_exp(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %s: tensor<2x5x1xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op sum_exp must be 'tensor<2x5xf32>' (f32, one value per row of the logits), got 'tensor<2x5x1xf32>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %s, %g : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5x1xf32>, tensor<f32>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects a grad_loss that is not a scalar f32.
func.func @vocab_parallel_loss_grad_loss(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %g: tensor<1xf32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op grad_loss must be tensor<f32>, got 'tensor<1xf32>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<1xf32>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects a kept_count that is not a scalar f32.
func.func @vocab_parallel_loss_grad_kept_count(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %g: tensor<f32>, %n: tensor<bf16>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op kept_count must be tensor<f32>, got 'tensor<bf16>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g count %n : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>, tensor<bf16>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects a negative vocab_shard_axis.
func.func @vocab_parallel_loss_grad_axis(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op vocab_shard_axis must be non-negative, got -3}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g {vocab_shard_axis = -3 : i64} : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects an unknown reduction.
func.func @vocab_parallel_loss_grad_reduction(%x: tensor<2x5x8xf32>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op reduction must be "mean" or "sum", got "max"}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g {reduction = "max"} : (tensor<2x5x8xf32>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that vocab_parallel_loss_grad rejects a result that is not typed as the logits.
func.func @vocab_parallel_loss_grad_result(%x: tensor<2x5x8xbf16>, %l: tensor<2x5xi64>, %m: tensor<2x5xf32>, %g: tensor<f32>) {
  // expected-error @+1 {{'ap.vocab_parallel_loss_grad' op result must be 'tensor<2x5x8xbf16>', got 'tensor<2x5x8xf32>'}}
  %0 = ap.vocab_parallel_loss_grad %x, %l, %m, %m, %g : (tensor<2x5x8xbf16>, tensor<2x5xi64>, tensor<2x5xf32>, tensor<2x5xf32>, tensor<f32>) -> tensor<2x5x8xf32>
  return
}

// -----

// Tests that a tensor past 256 TiB is refused before any verifier multiplies its sizes
// (issue 12, item 6).
func.func @tensor_too_large(%x: tensor<17592186044416x8xf32>) {
  // expected-error @+1 {{'ap.silu' op operand #0 ('tensor<17592186044416x8xf32>') is larger than the 256 TiB APC addresses}}
  %0 = ap.silu %x : tensor<17592186044416x8xf32>
  return
}

// -----

// Tests that a shape whose byte size overflows int64 is refused, not wrapped.
func.func @tensor_size_overflows(%x: tensor<4611686018427387904x4xf32>) {
  // expected-error @+1 {{'ap.silu' op operand #0 ('tensor<4611686018427387904x4xf32>') is larger than the 256 TiB APC addresses}}
  %0 = ap.silu %x : tensor<4611686018427387904x4xf32>
  return
}
