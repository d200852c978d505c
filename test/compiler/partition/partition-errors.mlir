// RUN: apc-opt %s --split-input-file --ap-mesh --ap-partition --verify-diagnostics

// Tests that a batch that does not split evenly is refused, naming the type.
// The plan is read from the module (no ap-mesh validation against the batch), so the
// partitioner's own check speaks.
module attributes {ap.parallel = #ap.parallel<dp = 3>} {
// expected-error @+1 {{ap-partition: cannot split 'tensor<4x3xi64>' on dim 0 into 3 parts}}
func.func @train_step(%ids: tensor<4x3xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x3xi64> {
  return %ids : tensor<4x3xi64>
}
}


// -----

// Tests that data parallelism needs to know which argument is the batch.
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
// expected-error @+1 {{ap-partition: dp=2 splits the batch, but @train_step marks no argument as its token ids (ap.batch = #ap.batch<tokens>)}}
func.func @train_step(%ids: tensor<4x3xi64> {ap.name = "input_ids", ap.role = "input"}) -> tensor<4x3xi64> {
  return %ids : tensor<4x3xi64>
}
}
