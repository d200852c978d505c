// RUN: apc-opt %s --split-input-file --ap-optimizer --verify-diagnostics

// Tests that bf16 parameters are refused: AdamW keeps f32 master weights.
// expected-error @+1 {{ap-optimizer: parameter 'a' is 'tensor<3xbf16>'; AdamW keeps f32 master weights}}
func.func @train_step(%a: tensor<3xbf16> {ap.name = "a", ap.role = "parameter"}) -> (tensor<f32> {ap.name = "loss"}, tensor<3xbf16> {ap.name = "grad.a"}) {
  %g = ap.fill {value = 1.0 : f64} : tensor<3xbf16>
  %loss = ap.fill {value = 3.0 : f64} : tensor<f32>
  return %loss, %g : tensor<f32>, tensor<3xbf16>
}

// -----

// Tests that a function without gradients is refused.
// expected-error @+1 {{ap-optimizer: no result 'grad.a' (run ap-autodiff first)}}
func.func @train_step(%a: tensor<3xf32> {ap.name = "a", ap.role = "parameter"}) -> (tensor<f32> {ap.name = "loss"}) {
  %loss = ap.fill {value = 3.0 : f64} : tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Tests that two parameters of one name are refused: gradients pair with parameters by
// name (the second one's AdamW got the first one's gradient and did not verify; found by
// test/fuzz/mlir_fuzz).
// expected-error @+1 {{ap-optimizer: arguments 0 and 1 are both parameter 'a'}}
func.func @train_step(%a: tensor<3xf32> {ap.name = "a", ap.role = "parameter"}, %b: tensor<2xf32> {ap.name = "a", ap.role = "parameter"}) -> (tensor<f32> {ap.name = "loss"}, tensor<3xf32> {ap.name = "grad.a"}) {
  %g = ap.fill {value = 1.0 : f64} : tensor<3xf32>
  %loss = ap.fill {value = 3.0 : f64} : tensor<f32>
  return %loss, %g : tensor<f32>, tensor<3xf32>
}

// -----

// Tests that a gradient of another type than its parameter is refused.
// expected-error @+1 {{ap-optimizer: result 'grad.a' is 'tensor<2xf32>' but parameter 'a' is 'tensor<3xf32>'}}
func.func @train_step(%a: tensor<3xf32> {ap.name = "a", ap.role = "parameter"}) -> (tensor<f32> {ap.name = "loss"}, tensor<2xf32> {ap.name = "grad.a"}) {
  %g = ap.fill {value = 1.0 : f64} : tensor<2xf32>
  %loss = ap.fill {value = 3.0 : f64} : tensor<f32>
  return %loss, %g : tensor<f32>, tensor<2xf32>
}
