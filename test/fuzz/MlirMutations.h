// Structured mutations of an ap program for mlir_fuzz (see README.md): the fuzzer's bytes
// choose what to change (a dimension, an element type, an operand, an attribute, an op
// cloned, erased, moved or inserted, an argument, the function), so that most mutants
// still parse and verify and the passes see them, which random text rarely does.
#pragma once

#include "test/fuzz/ByteReader.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace apc::fuzz {

// Applies one mutation chosen by `in` to `fn` of `module` and returns its name (for
// the statistics). Some choices find nothing to change; the IR is then unchanged.
const char *mutateProgram(mlir::ModuleOp module, mlir::func::FuncOp fn, ByteReader &in);

} // namespace apc::fuzz
