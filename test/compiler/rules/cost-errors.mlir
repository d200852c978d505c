// RUN: apc-opt %s --allow-unregistered-dialect --ap-print-cost --verify-diagnostics

// Tests that an op without a cost rule is refused by name.
func.func @unknown(%x: tensor<4x3xf32>) -> tensor<4x3xf32> {
  // expected-error @+1 {{'test.unknown' op has no cost rule (an op's rules live in compiler/rules/)}}
  %0 = "test.unknown"(%x) : (tensor<4x3xf32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}
