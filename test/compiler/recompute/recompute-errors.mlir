// RUN: apc-opt %s --split-input-file --verify-diagnostics --ap-recompute=mode=full
// RUN: not apc-opt %s --split-input-file --ap-recompute=mode=some 2>&1 | FileCheck %s --check-prefix=MODE

// MODE: ap-recompute: mode must be none, selective or full, got 'some'

// Tests that the step must return the loss.
// expected-error @+1 {{ap-recompute: @train_step returns no 'loss' (run ap-autodiff first)}}
func.func @train_step(%x: tensor<2x3xf32> {ap.name = "x", ap.role = "parameter"}) -> (tensor<f32> {ap.name = "grad_norm"}) {
  %0 = ap.reduce_sum %x {dims = array<i64: 0, 1>} : tensor<2x3xf32> to tensor<f32>
  return %0 : tensor<f32>
}
