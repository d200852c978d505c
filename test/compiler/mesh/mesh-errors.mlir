// RUN: apc-opt %s --split-input-file --ap-mesh --verify-diagnostics
// RUN: not apc-opt %s --split-input-file --ap-mesh="plan=dp=3" 2>&1 | FileCheck %s --check-prefix=TEXT
// RUN: not apc-opt %s --split-input-file --ap-mesh="plan=dp=2,ep=2" 2>&1 | FileCheck %s --check-prefix=FIELD
// RUN: not apc-opt %s --split-input-file --ap-mesh="plan=cp=3" 2>&1 | FileCheck %s --check-prefix=CHUNKS

// Tests that a grid that does not match the plan is refused.
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
// expected-error @+1 {{shard.grid @mesh does not match the plan #ap.parallel<dp = 2>}}
shard.grid @mesh(shape = 4) {ap.axes = ["dp"]}
func.func @train_step(%ids: tensor<4x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x8xi64> {
  return %ids : tensor<4x8xi64>
}
}

// -----

// Tests that a grid without axis names is refused.
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
// expected-error @+1 {{shard.grid @mesh needs ap.axes, one axis name per dimension (declared by ap-mesh)}}
shard.grid @mesh(shape = 2)
func.func @train_step(%ids: tensor<4x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x8xi64> {
  return %ids : tensor<4x8xi64>
}
}

// The plan text is checked against the step (batch 4) before it is set.
// TEXT: error: ap-mesh: plan field 'dp' (3) does not divide the batch (4)
// FIELD: error: ap-mesh: unknown plan field 'ep' (fields: dp, tp, pp, cp, vp, zero, sp, mb, recompute, recompute_stages, stages)
// Context parallelism cuts the sequence (8) into 2 x cp chunks.
// CHUNKS: error: ap-mesh: plan field 'cp' (3) must cut the sequence (8) into 2 x cp = 6 equal chunks (each device holds two, for the causal load balance)
