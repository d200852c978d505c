// RUN: apc-opt %s --split-input-file --ap-partition="plan=dp=3" --verify-diagnostics

// Tests that a batch that does not split evenly is refused, naming the type.
// expected-error @+1 {{ap-partition: cannot split 'tensor<4x3xi64>' on dim 0 into 3 parts}}
func.func @train_step(%ids: tensor<4x3xi64> {ap.name = "input_ids", ap.role = "input"}) -> tensor<4x3xi64> {
  return %ids : tensor<4x3xi64>
}
