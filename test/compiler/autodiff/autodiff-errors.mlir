// RUN: apc-opt %s --split-input-file --ap-autodiff --verify-diagnostics

// Tests that a function whose first result is not a scalar f32 loss is refused.
// expected-error @+1 {{ap-autodiff: @train_step must return the loss (tensor<f32>) as its first result}}
func.func @train_step(%x: tensor<2xf32> {ap.name = "x", ap.role = "parameter"}) -> tensor<2xf32> {
  return %x : tensor<2xf32>
}

// -----

// Tests that an already differentiated function is refused.
func.func @train_step(%x: tensor<2x3xf32> {ap.name = "x", ap.role = "parameter"}) -> tensor<f32> {
  // expected-error @+1 {{'ap.silu_grad' op found in the input of ap-autodiff: the function is already differentiated}}
  %0 = ap.silu_grad %x, %x : tensor<2x3xf32>
  %1 = ap.reduce_sum %0 {dims = array<i64: 0, 1>} : tensor<2x3xf32> to tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Tests that a module with several functions and no @train_step is refused.
// expected-error @+1 {{expected a function @train_step (or exactly one function), found 2 functions}}
module {
  func.func @a() { return }
  func.func @b() { return }
}

// -----

// Tests that an integer parameter is refused: its gradient would be an integer ap.fill
// (the pass used to build one, which does not verify; found by test/fuzz/mlir_fuzz).
// expected-error @+1 {{ap-autodiff: parameter 'ids' (argument 1) is 'tensor<2x4xi64>'; parameters must be f32, bf16 or f16 tensors}}
func.func @train_step(%x: tensor<2xf32> {ap.name = "x", ap.role = "parameter"},
                      %ids: tensor<2x4xi64> {ap.name = "ids", ap.role = "parameter"}) -> tensor<f32> {
  %0 = ap.reduce_sum %x {dims = array<i64: 0>} : tensor<2xf32> to tensor<f32>
  return %0 : tensor<f32>
}
