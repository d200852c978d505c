// RUN: apc-opt %s | apc-opt | FileCheck %s
// The ops ap-pipeline emits round-trip.

// CHECK-LABEL: func.func @micro_batch_and_stages
// CHECK: ap.slice %arg0 {dim = 0 : i64, offset = 2 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi64>
// CHECK: ap.send %arg1 {axes = array<i64: 1>, peer_offset = 1 : i64, tag = 7 : i64} : tensor<2x8x64xbf16>
// CHECK: ap.recv {axes = array<i64: 1>, peer_offset = -1 : i64, tag = 7 : i64} : tensor<2x8x64xbf16>
func.func @micro_batch_and_stages(%ids: tensor<4x8xi64>, %h: tensor<2x8x64xbf16>) -> (tensor<2x8xi64>, tensor<2x8x64xbf16>) {
  %0 = ap.slice %ids {dim = 0 : i64, offset = 2 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi64>
  ap.send %h {axes = array<i64: 1>, peer_offset = 1 : i64, tag = 7 : i64} : tensor<2x8x64xbf16>
  %1 = ap.recv {axes = array<i64: 1>, peer_offset = -1 : i64, tag = 7 : i64} : tensor<2x8x64xbf16>
  return %0, %1 : tensor<2x8xi64>, tensor<2x8x64xbf16>
}

// CHECK-LABEL: func.func @slice_inner_dim
// CHECK: ap.slice %arg0 {dim = 1 : i64, offset = 0 : i64} : (tensor<2x6x4xf32>) -> tensor<2x3x4xf32>
func.func @slice_inner_dim(%x: tensor<2x6x4xf32>) -> tensor<2x3x4xf32> {
  %0 = ap.slice %x {dim = 1 : i64, offset = 0 : i64} : (tensor<2x6x4xf32>) -> tensor<2x3x4xf32>
  return %0 : tensor<2x3x4xf32>
}
