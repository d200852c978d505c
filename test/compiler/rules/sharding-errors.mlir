// RUN: apc-opt %s --split-input-file --allow-unregistered-dialect --ap-mesh --ap-partition --verify-diagnostics

// Tests that an op without a sharding rule is refused by name, never silently replicated.
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @unknown(%x: tensor<4x3xf32> {ap.name = "x", ap.batch = #ap.batch<tokens>}) -> tensor<4x3xf32> {
  // expected-error @+1 {{'test.unknown' op ap-partition: has no sharding rule (an op's rules live in compiler/rules/, see docs/adding-an-op.md)}}
  %0 = "test.unknown"(%x) : (tensor<4x3xf32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}
}

// -----

// Tests that the vocabulary-parallel loss ops, made by ap-partition, refuse to be split
// again.
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @vocab_max(%logits: tensor<4x5x8xf32> {ap.name = "logits", ap.batch = #ap.batch<tokens>}) -> tensor<4x5xf32> {
  // expected-error @+1 {{'ap.vocab_parallel_max' op ap-partition: is made by ap-partition from a loss over split logits and cannot be split again}}
  %0 = ap.vocab_parallel_max %logits : (tensor<4x5x8xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}
}

// -----

// Tests that the pipeline ops, made by ap-pipeline after partitioning, refuse to be split.
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @slice(%ids: tensor<4x8xi64> {ap.name = "ids", ap.batch = #ap.batch<tokens>}) -> tensor<2x8xi64> {
  // expected-error @+1 {{'ap.slice' op ap-partition: is made by ap-pipeline after partitioning and cannot be split}}
  %0 = ap.slice %ids {dim = 0 : i64, offset = 2 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi64>
  return %0 : tensor<2x8xi64>
}
}
