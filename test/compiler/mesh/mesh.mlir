// RUN: apc-opt %s --split-input-file --ap-mesh | FileCheck %s
// RUN: apc-opt %s --split-input-file --ap-mesh="plan=dp=2,tp=2,pp=2" | FileCheck %s --check-prefix=SET

// Tests that the mesh of the module's plan is declared with named axes: dp always, then
// pp and tp when used, in that order.
// CHECK-LABEL: module attributes {ap.parallel = #ap.parallel<dp = 2, tp = 4, pp = 2, sp = true, mb = 4, recompute = full, stages = [1, 1]>}
// CHECK-NEXT: shard.grid @mesh(shape = 2x2x4) {ap.axes = ["dp", "pp", "tp"]}
// SET-LABEL: module attributes {ap.parallel = #ap.parallel<dp = 2, tp = 2, pp = 2>}
// SET-NEXT: shard.grid @mesh(shape = 2x2x2) {ap.axes = ["dp", "pp", "tp"]}
module attributes {ap.parallel = #ap.parallel<dp = 2, tp = 4, pp = 2, sp = true, mb = 4, recompute = full, stages = [1, 1]>} {
func.func @train_step(%ids: tensor<4x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x8xi64> {
  return %ids : tensor<4x8xi64>
}
}

// -----

// Tests that tensor parallelism alone gives the mesh [dp = 1, tp].
// CHECK-LABEL: module attributes {ap.parallel = #ap.parallel<tp = 2>}
// CHECK-NEXT: shard.grid @mesh(shape = 1x2) {ap.axes = ["dp", "tp"]}
module attributes {ap.parallel = #ap.parallel<tp = 2>} {
func.func @train_step(%ids: tensor<4x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x8xi64> {
  return %ids : tensor<4x8xi64>
}
}

// -----

// Tests that one device needs no mesh (micro-batches alone split nothing).
// CHECK-LABEL: module attributes {ap.parallel = #ap.parallel<mb = 2>}
// CHECK-NOT: shard.grid
module attributes {ap.parallel = #ap.parallel<mb = 2>} {
func.func @train_step(%ids: tensor<4x8xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x8xi64> {
  return %ids : tensor<4x8xi64>
}
}
