// RUN: apc-opt %s --split-input-file --ap-micro-batch --verify-diagnostics

// A transpose that moves the batch inward: micro-batches would not be blocks of rows.
module attributes {ap.parallel = #ap.parallel<mb = 2>} {
func.func @train_step(%w: tensor<16x8xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"},
                      %ids: tensor<4x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"},
                      %labels: tensor<4x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"})
    -> (tensor<4x4x8xf32>) {
  %e = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<4x4xi64>) -> tensor<4x4x8xf32>
  // expected-error @+1 {{ap-micro-batch: cannot cut into micro-batches an op that moves or reduces the batch dim}}
  %t = ap.transpose %e {permutation = array<i64: 1, 0, 2>} : tensor<4x4x8xf32> to tensor<4x4x8xf32>
  return %t : tensor<4x4x8xf32>
}
}
// -----

// A value whose leading dim is not a multiple of the batch.
module attributes {ap.parallel = #ap.parallel<mb = 2>} {
func.func @train_step(%w: tensor<16x8xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"},
                      %ids: tensor<4x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"},
                      %labels: tensor<4x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"})
    -> (tensor<4x32xf32>) {
  %e = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<4x4xi64>) -> tensor<4x4x8xf32>
  // expected-error @+1 {{ap-micro-batch: cannot cut 'tensor<2x64xf32>' into micro-batches: its leading dim is not a multiple of the batch (4)}}
  %r = ap.reshape %e : tensor<4x4x8xf32> to tensor<2x64xf32>
  %s = ap.reshape %r : tensor<2x64xf32> to tensor<4x32xf32>
  return %s : tensor<4x32xf32>
}
}
// -----

module attributes {ap.parallel = #ap.parallel<mb = 2>} {
// expected-error @+1 {{ap-micro-batch: @train_step needs the batch's token ids and labels (arguments marked ap.batch = #ap.batch<tokens> and #ap.batch<labels>)}}
func.func @train_step(%ids: tensor<4x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x4xi64> {
  return %ids : tensor<4x4xi64>
}
}

// -----

// Tests that micro-batches that do not divide the batch are refused (a plan read from
// the module is not checked against the model before this pass).
module attributes {ap.parallel = #ap.parallel<mb = 3>} {
// expected-error @+1 {{ap-micro-batch: 3 micro-batches do not divide the batch of 4}}
func.func @train_step(%w: tensor<16x8xf32> {ap.layout = #ap.layout<vocab>, ap.name = "model.embed_tokens.weight", ap.role = "parameter"},
                      %ids: tensor<4x4xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"},
                      %labels: tensor<4x4xi64> {ap.batch = #ap.batch<labels>, ap.name = "labels", ap.role = "input"})
    -> (tensor<4x4x8xf32>) {
  %e = ap.embedding %w, %ids : (tensor<16x8xf32>, tensor<4x4xi64>) -> tensor<4x4x8xf32>
  return %e : tensor<4x4x8xf32>
}
}
