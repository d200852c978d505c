#!/usr/bin/env bash
# The GPU check (docs/cuda.md, "Running the GPU check"): every test that needs a GPU, in
# one command, for a machine with one NVIDIA GPU that has the CUDA driver and toolkit
# libraries but not this project's build dependencies (MLIR, OpenBLAS, gtest, ...).
#
#   tools/gpu_check.sh --prepare   on the development machine (no GPU needed): builds the
#                                  GPU test binaries and copies them, stripped, with the
#                                  libraries they need that a CUDA image lacks, into
#                                  .gpu_check/ (ignored by git; about 45 MiB)
#   tools/gpu_check.sh             on the GPU machine, from the repository root, with
#                                  .gpu_check/ carried along: runs them and prints one
#                                  summary; exit 0 only if every test ran and passed
#
# Without a visible GPU the run says so and exits 2 (tests that need a GPU would only
# report themselves skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=.gpu_check
BINARIES=(apc_cuda_tests)

prepare() {
  local build=${APC_BUILD_DIR:-build}
  [ -f "$build/build.ninja" ] || { echo "gpu_check: no build in $build: run tools/build.sh first" >&2; exit 1; }
  grep -q "APC_HAVE_CUDA:INTERNAL=ON\|APC: CUDA backend ON" "$build/CMakeCache.txt" 2>/dev/null ||
    ninja -C "$build" -t targets all 2>/dev/null | grep -q "^apc_cuda_tests:" ||
    { echo "gpu_check: $build has no CUDA backend (no CUDA toolkit found at configure time)" >&2; exit 1; }
  ninja -C "$build" "${BINARIES[@]}"
  rm -rf "$STAGE" && mkdir -p "$STAGE/bin" "$STAGE/lib"
  for b in "${BINARIES[@]}"; do
    strip -o "$STAGE/bin/$b" "$build/bin/$b"
  done
  # What a CUDA image lacks: OpenBLAS (the CPU backend the tests compare against) and
  # its Fortran runtime. The CUDA runtime and cuBLASLt come from the GPU machine.
  for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libgomp.so.1; do
    local path
    path=$(ldd "$build/bin/${BINARIES[0]}" | awk -v l="$lib" '$1 == l {print $3}')
    [ -n "$path" ] && cp -L "$path" "$STAGE/lib/$lib"
  done
  grep -qx "/$STAGE/" .git/info/exclude 2>/dev/null || echo "/$STAGE/" >> .git/info/exclude
  du -sh "$STAGE"
  echo "gpu_check: prepared $STAGE; on the GPU machine run tools/gpu_check.sh with $STAGE carried"
}

run() {
  [ -d "$STAGE/bin" ] || { echo "gpu_check: no $STAGE/: run tools/gpu_check.sh --prepare first" >&2; exit 1; }
  local cudalibs=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
           $(python3 -c 'import nvidia, os; p = os.path.dirname(nvidia.__path__[0]); print(" ".join(os.path.join(r, "lib") for r, ds, fs in os.walk(os.path.join(p, "nvidia")) if "lib" in ds))' 2>/dev/null); do
    [ -d "$d" ] && cudalibs="$cudalibs:$d"
  done
  export LD_LIBRARY_PATH="$PWD/$STAGE/lib$cudalibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
  local failed=0 out
  out=$(mktemp -d)
  for b in "${BINARIES[@]}"; do
    echo "== $b"
    if ! "$STAGE/bin/$b" --gtest_brief=1 2>&1 | tee "$out/$b.log"; then
      failed=1
    fi
  done
  local passed skipped fails
  # gtest's last lines: "[  PASSED  ] 4 tests.", "[  SKIPPED ] 2 tests, listed below:", ...
  count() { cat "$out"/*.log | awk -v tag="$1" 'index($0, tag) == 1 && $5 ~ /^tests?[.,]?$/ {s += $4} END {print s + 0}'; }
  passed=$(count "[  PASSED  ]")
  skipped=$(count "[  SKIPPED ]")
  fails=$(count "[  FAILED  ]")
  echo "gpu_check summary: $passed passed, $fails failed, $skipped skipped"
  if [ "$skipped" -gt 0 ] && ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no GPU is visible here: the GPU tests did not run" >&2
    exit 2
  fi
  [ "$failed" -eq 0 ] && [ "$fails" -eq 0 ] && [ "$skipped" -eq 0 ]
}

case "${1:-}" in
  --prepare) prepare ;;
  "") run ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
