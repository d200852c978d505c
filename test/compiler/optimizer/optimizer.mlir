// RUN: apc-opt %s --split-input-file --ap-optimizer | FileCheck %s
// RUN: apc-opt %s --split-input-file --ap-optimizer="max-grad-norm=1.5 weight-decay=0.1 beta1=0.8 beta2=0.95 eps=1e-6" | FileCheck %s --check-prefix=CLIP

// Tests the training-step signature: moments, step and lr inserted after the
// parameters (inputs last), one ap.adamw per parameter with torch's defaults, the
// global grad norm returned (and passed to every update, which clips only when
// max_grad_norm is set), and results named after the arguments they replace.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %arg0: tensor<4x2xf32> {ap.name = "a", ap.role = "parameter"}
// CHECK-SAME: %arg1: tensor<3xf32> {ap.name = "b", ap.role = "parameter"}
// CHECK-SAME: %arg2: tensor<4x2xf32> {ap.name = "exp_avg.a", ap.role = "optimizer_state"}
// CHECK-SAME: %arg3: tensor<3xf32> {ap.name = "exp_avg.b", ap.role = "optimizer_state"}
// CHECK-SAME: %arg4: tensor<4x2xf32> {ap.name = "exp_avg_sq.a", ap.role = "optimizer_state"}
// CHECK-SAME: %arg5: tensor<3xf32> {ap.name = "exp_avg_sq.b", ap.role = "optimizer_state"}
// CHECK-SAME: %arg6: tensor<i64> {ap.name = "step", ap.role = "step"}
// CHECK-SAME: %arg7: tensor<f32> {ap.name = "lr", ap.role = "learning_rate"}
// CHECK-SAME: %arg8: tensor<2xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}
// CHECK-SAME: -> (tensor<f32> {ap.name = "loss"}, tensor<f32> {ap.name = "grad_norm"}, tensor<4x2xf32> {ap.name = "a", ap.role = "parameter"}, tensor<3xf32> {ap.name = "b", ap.role = "parameter"}, tensor<4x2xf32> {ap.name = "exp_avg.a", ap.role = "optimizer_state"}, tensor<3xf32> {ap.name = "exp_avg.b", ap.role = "optimizer_state"}, tensor<4x2xf32> {ap.name = "exp_avg_sq.a", ap.role = "optimizer_state"}, tensor<3xf32> {ap.name = "exp_avg_sq.b", ap.role = "optimizer_state"})
// CHECK: %[[N:.*]] = ap.grad_norm %[[GA:.*]], %[[GB:.*]] : (tensor<4x2xf32>, tensor<3xf32>) -> tensor<f32>
// CHECK: %[[PA:.*]], %[[MA:.*]], %[[VA:.*]] = ap.adamw %arg0, %[[GA]], %arg2, %arg4, %arg6, %arg7, %[[N]] : (tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>, tensor<i64>, tensor<f32>, tensor<f32>)
// CHECK: %[[PB:.*]], %[[MB:.*]], %[[VB:.*]] = ap.adamw %arg1, %[[GB]], %arg3, %arg5, %arg6, %arg7, %[[N]]
// CHECK-NOT: max_grad_norm
// CHECK: return %{{.*}}, %[[N]], %[[PA]], %[[PB]], %[[MA]], %[[MB]], %[[VA]], %[[VB]]
// CLIP-LABEL: func.func @train_step
// CLIP: %[[N:.*]] = ap.grad_norm
// CLIP: ap.adamw %arg0, %{{.*}}, %arg2, %arg4, %arg6, %arg7, %[[N]] {beta1 = 8.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, epsilon = 9.9999999999999995E-7 : f64, max_grad_norm = 1.500000e+00 : f64, weight_decay = 1.000000e-01 : f64}
func.func @train_step(%a: tensor<4x2xf32> {ap.name = "a", ap.role = "parameter"}, %b: tensor<3xf32> {ap.name = "b", ap.role = "parameter"}, %ids: tensor<2xi64> {ap.batch = #ap.batch<tokens>, ap.name = "input_ids", ap.role = "input"}) -> (tensor<f32> {ap.name = "loss"}, tensor<4x2xf32> {ap.name = "grad.a", ap.role = "gradient"}, tensor<3xf32> {ap.name = "grad.b", ap.role = "gradient"}) {
  %ga = ap.fill {value = 1.0 : f64} : tensor<4x2xf32>
  %gb = ap.fill {value = 2.0 : f64} : tensor<3xf32>
  %loss = ap.fill {value = 3.0 : f64} : tensor<f32>
  return %loss, %ga, %gb : tensor<f32>, tensor<4x2xf32>, tensor<3xf32>
}
