// The reference interpreter of the `ap` dialect: the semantic oracle of every pass.
//
// Simple and obviously right rather than fast: every tensor is a row-major vector of
// doubles, every op computes in f64 (accumulation included) and then rounds its result
// to the element type the IR names (f32, bf16 and f16 round to nearest even; i32/i64
// are exact). So an f32 program gives f32 results computed as exactly as f64 allows,
// and a bf16 program shows the rounding a bf16 device would do at each op boundary.
// With Options::roundFloats off, nothing is rounded: pure f64 evaluation of the
// program's mathematics (what finite-difference checks of gradient ops need).
#pragma once

#include "runtime/support/DType.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir {
class Operation;
namespace func {
class FuncOp;
}
} // namespace mlir

namespace apc::interp {

// The one DType of plans and kernels (runtime/support/DType.h).
using ElementType = apc::DType;
const char *elementTypeName(ElementType type); // dtypeName: "f32", ...

struct RefTensor {
  std::vector<int64_t> shape;
  ElementType type = ElementType::F32;
  std::vector<double> data; // row-major, already rounded to `type`

  int64_t numElements() const;
};

// Rounds `value` to what `type` can hold (float types: nearest even; integer types:
// truncation toward zero).
double roundTo(ElementType type, double value);

struct Options {
  // Round float results to their element type (f32, bf16, f16) at each op boundary.
  // false: pure f64 evaluation (no float rounding at all, not even the intermediate
  // one of rms_norm), for finite-difference tests. Integer results are always exact
  // integers (float to integer casts still truncate).
  bool roundFloats = true;
};

// Runs `function` on `arguments` (one per function argument, types matching) and
// returns its results. Errors (an op without reference semantics, an out-of-range
// token id, ...) name the op and its location.
Result<std::vector<RefTensor>> run(mlir::func::FuncOp function,
                                   const std::vector<RefTensor> &arguments,
                                   const Options &options);
Result<std::vector<RefTensor>> run(mlir::func::FuncOp function,
                                   const std::vector<RefTensor> &arguments);

// Evaluates one op on its operand values (the building block of `run`): one tensor per
// operand actually present (a variadic or optional operand group contributes as many
// as it has), and one result tensor per op result.
Result<std::vector<RefTensor>> evaluate(mlir::Operation *op,
                                        const std::vector<const RefTensor *> &operands,
                                        const Options &options = Options());

} // namespace apc::interp
