// RUN: apc-opt %s --split-input-file --ap-mixed-precision --verify-diagnostics
// RUN: not apc-opt %s --ap-mixed-precision=compute-type=f64 2>&1 | FileCheck %s --check-prefix=TYPE
// TYPE: ap-mixed-precision: compute-type must be bf16, f16 or f32, got 'f64'

// Tests that the pass refuses a function that is already differentiated.
func.func @train_step(%p: tensor<3xf32> {ap.name = "p", ap.role = "parameter"}, %step: tensor<i64>, %lr: tensor<f32>) -> tensor<3xf32> {
  // expected-error @+1 {{'ap.adamw' op is not a forward ap op: ap-mixed-precision runs on the imported forward function, before ap-autodiff}}
  %0:3 = ap.adamw %p, %p, %p, %p, %step, %lr : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<i64>, tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>)
  return %0#0 : tensor<3xf32>
}
