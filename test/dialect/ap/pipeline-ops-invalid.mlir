// RUN: apc-opt %s --split-input-file --verify-diagnostics

func.func @slice_dim_out_of_range(%x: tensor<4x8xi64>) -> tensor<4x8xi64> {
  // expected-error @+1 {{'ap.slice' op dim 2 is not a dim of input 'tensor<4x8xi64>'}}
  %0 = ap.slice %x {dim = 2 : i64, offset = 0 : i64} : (tensor<4x8xi64>) -> tensor<4x8xi64>
  return %0 : tensor<4x8xi64>
}

// -----

func.func @slice_other_dim_differs(%x: tensor<4x8xi64>) -> tensor<2x4xi64> {
  // expected-error @+1 {{'ap.slice' op result 'tensor<2x4xi64>' must equal input 'tensor<4x8xi64>' except in dim 0}}
  %0 = ap.slice %x {dim = 0 : i64, offset = 0 : i64} : (tensor<4x8xi64>) -> tensor<2x4xi64>
  return %0 : tensor<2x4xi64>
}

// -----

func.func @slice_element_type_differs(%x: tensor<4x8xi64>) -> tensor<2x8xi32> {
  // expected-error @+1 {{'ap.slice' op result 'tensor<2x8xi32>' must equal input 'tensor<4x8xi64>' except in dim 0}}
  %0 = ap.slice %x {dim = 0 : i64, offset = 0 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi32>
  return %0 : tensor<2x8xi32>
}

// -----

func.func @slice_block_outside(%x: tensor<4x8xi64>) -> tensor<2x8xi64> {
  // expected-error @+1 {{'ap.slice' op block [3, 5) is outside dim 0 of input 'tensor<4x8xi64>'}}
  %0 = ap.slice %x {dim = 0 : i64, offset = 3 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi64>
  return %0 : tensor<2x8xi64>
}

// -----

func.func @slice_negative_offset(%x: tensor<4x8xi64>) -> tensor<2x8xi64> {
  // expected-error @+1 {{'ap.slice' op block [-1, 1) is outside dim 0 of input 'tensor<4x8xi64>'}}
  %0 = ap.slice %x {dim = 0 : i64, offset = -1 : i64} : (tensor<4x8xi64>) -> tensor<2x8xi64>
  return %0 : tensor<2x8xi64>
}

// -----

func.func @send_two_axes(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.send' op axes must name one mesh axis}}
  ap.send %x {axes = array<i64: 1, 2>, peer_offset = 1 : i64, tag = 0 : i64} : tensor<2x8xf32>
  return
}

// -----

func.func @send_to_itself(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'ap.send' op peer_offset 0 names the device itself}}
  ap.send %x {axes = array<i64: 1>, peer_offset = 0 : i64, tag = 0 : i64} : tensor<2x8xf32>
  return
}

// -----

func.func @recv_negative_tag() -> tensor<2x8xf32> {
  // expected-error @+1 {{'ap.recv' op tag -1 must be from 0 to 4294967295}}
  %0 = ap.recv {axes = array<i64: 1>, peer_offset = -1 : i64, tag = -1 : i64} : tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// -----

func.func @recv_negative_axis() -> tensor<2x8xf32> {
  // expected-error @+1 {{'ap.recv' op axes must name one mesh axis}}
  %0 = ap.recv {axes = array<i64: -1>, peer_offset = 1 : i64, tag = 0 : i64} : tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// -----

func.func @recv_dynamic(%n: index) -> tensor<?x8xf32> {
  // expected-error @+1 {{'ap.recv' op result}}
  %0 = ap.recv {axes = array<i64: 1>, peer_offset = 1 : i64, tag = 0 : i64} : tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
