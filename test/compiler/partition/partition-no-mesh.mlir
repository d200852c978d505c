// RUN: not apc-opt %s --ap-partition 2>&1 | FileCheck %s

// Tests that a plan that needs a mesh is refused where ap-mesh did not declare one.
// CHECK: error: the plan #ap.parallel<dp = 2> needs the device mesh: run ap-mesh first
module attributes {ap.parallel = #ap.parallel<dp = 2>} {
func.func @train_step(%ids: tensor<4x3xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> tensor<4x3xi64> {
  return %ids : tensor<4x3xi64>
}
}
