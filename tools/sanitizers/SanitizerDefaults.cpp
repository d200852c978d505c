// Default runtime options of the sanitizer build (APC_SANITIZE, docs/testing.md).
// The sanitizer runtimes call these hooks at start-up; ASAN_OPTIONS, LSAN_OPTIONS and
// UBSAN_OPTIONS in the environment are read after them and override single options.
#ifndef APC_LSAN_SUPPRESSIONS
#error "APC_LSAN_SUPPRESSIONS (the path of lsan.supp) comes from tools/sanitizers/CMakeLists.txt"
#endif

#define APC_SANITIZER_HOOK                                                                \
  extern "C" __attribute__((visibility("default"), used, no_sanitize_address,             \
                            no_sanitize_undefined)) const char *

// abort_on_error: a report ends the process with SIGABRT, which no test mistakes for the
// ordinary exit status 1 of a refused input (lit's plain `not` fails on a signal).
// allocator_may_return_null: a request larger than ASan's allocator takes (1 TiB) returns
// null, as the system allocator does for what it cannot give, so that the code's own
// refusal ("cannot allocate N bytes") is what the tests of huge requests see.
APC_SANITIZER_HOOK __asan_default_options() {
  return "abort_on_error=1:allocator_may_return_null=1";
}

// Leaks in third-party global state that we cannot fix; each entry says why.
APC_SANITIZER_HOOK __lsan_default_options() {
  return "suppressions=" APC_LSAN_SUPPRESSIONS ":print_suppressions=0";
}

APC_SANITIZER_HOOK __ubsan_default_options() {
  return "print_stacktrace=1:abort_on_error=1";
}
