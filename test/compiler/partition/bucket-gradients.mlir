// RUN: apc-opt %s --split-input-file --ap-bucket-gradients | FileCheck %s
// RUN: apc-opt %s --split-input-file --ap-bucket-gradients=bucket-mb=0.00001 | FileCheck %s --check-prefix=SMALL

// Tests that the gradient all-reduces (into ap.adamw and ap.grad_norm) move next to the
// last one of their bucket, marked with the bucket's number (lowering fuses adjacent
// reductions of one bucket); the loss's all-reduce is no gradient and stays unmarked. With buckets of ~10 bytes every reduction is its own bucket.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[DA:.*]] = ap.add %arg0, %arg0
// CHECK-NEXT: %[[DB:.*]] = ap.add %arg1, %arg1
// CHECK-NEXT: %[[L:.*]] = shard.all_reduce %arg4 on @mesh grid_axes = [0] : tensor<f32>
// CHECK-NEXT: %[[RA:.*]] = shard.all_reduce %[[DA]] on @mesh grid_axes = [0] {ap.bucket = 0 : i64}
// CHECK-NEXT: %[[RB:.*]] = shard.all_reduce %[[DB]] on @mesh grid_axes = [0] {ap.bucket = 0 : i64}
// CHECK-NEXT: ap.grad_norm %[[RA]], %[[RB]]
// SMALL-LABEL: func.func @train_step
// SMALL: ap.add %arg0, %arg0
// SMALL-NEXT: shard.all_reduce
// SMALL-NEXT: ap.add %arg1, %arg1
// SMALL-NEXT: shard.all_reduce %arg4
// SMALL-NEXT: shard.all_reduce {{.*}} {ap.bucket = 1 : i64}
shard.grid @mesh(shape = 2) {ap.axes = ["dp"]}
func.func @train_step(%a: tensor<4xf32>, %b: tensor<4xf32>, %m: tensor<4xf32>, %t: tensor<i64>, %loss: tensor<f32>, %lr: tensor<f32>) -> (tensor<f32>, tensor<f32>) {
  %da = ap.add %a, %a : tensor<4xf32>
  %ra = shard.all_reduce %da on @mesh grid_axes = [0] : tensor<4xf32> -> tensor<4xf32>
  %db = ap.add %b, %b : tensor<4xf32>
  %l = shard.all_reduce %loss on @mesh grid_axes = [0] : tensor<f32> -> tensor<f32>
  %rb = shard.all_reduce %db on @mesh grid_axes = [0] : tensor<4xf32> -> tensor<4xf32>
  %n = ap.grad_norm %ra, %rb : (tensor<4xf32>, tensor<4xf32>) -> tensor<f32>
  %p:3 = ap.adamw %a, %ra, %m, %m, %t, %lr, %n : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<i64>, tensor<f32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %l, %n : tensor<f32>, tensor<f32>
}

// -----

// Tests that a reduction whose result is used before the next one closes its bucket.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[RA:.*]] = shard.all_reduce
// CHECK-NEXT: ap.add %[[RA]], %[[RA]]
// CHECK-NEXT: shard.all_reduce
shard.grid @mesh(shape = 2) {ap.axes = ["dp"]}
func.func @train_step(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<f32> {
  %ra = shard.all_reduce %a on @mesh grid_axes = [0] : tensor<4xf32> -> tensor<4xf32>
  %u = ap.add %ra, %ra : tensor<4xf32>
  %rb = shard.all_reduce %b on @mesh grid_axes = [0] : tensor<4xf32> -> tensor<4xf32>
  %n = ap.grad_norm %ra, %rb, %u : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<f32>
  return %n : tensor<f32>
}
