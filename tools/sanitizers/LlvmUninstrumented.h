// Force-included (-include) into every translation unit that uses the LLVM/MLIR headers
// when the sanitizer build has AddressSanitizer (APC_SANITIZE, docs/testing.md).
//
// The prebuilt libLLVM/libMLIR are not instrumented, but their headers key ASan
// annotations off the compiler's flag (__SANITIZE_ADDRESS__ in llvm/Support/Compiler.h):
// the copies of BumpPtrAllocator, Recycler and ArrayRecycler inlined into our code
// poison whole slabs that the uninstrumented library code then hands out without
// unpoisoning, so ASan reports use-after-poison inside libMLIR.so (first seen in
// mlir::StringAttr::get while the parser loads a dialect). Here the headers are made to
// behave as for an uninstrumented LLVM: no annotations, no allocator red zones.
#pragma once
#include <llvm/Support/Compiler.h>

#undef LLVM_ADDRESS_SANITIZER_BUILD
#define LLVM_ADDRESS_SANITIZER_BUILD 0
#undef __asan_poison_memory_region
#undef __asan_unpoison_memory_region
#define __asan_poison_memory_region(p, size) ((void)(p), (void)(size))
#define __asan_unpoison_memory_region(p, size) ((void)(p), (void)(size))
