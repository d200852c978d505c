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
#                                  .gpu_check/ carried along: runs them, trains the tiny
#                                  Llama 3 on the CPU backend and on the GPU (10 steps,
#                                  f32 and bf16) and compares the losses, runs the parity
#                                  tests under compute-sanitizer (memcheck, racecheck), times a
#                                  Llama-3.2-1B step against PyTorch (eager, compile),
#                                  and prints one summary; exit 0 only if everything ran
#                                  and passed
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
  ninja -C "$build" -t targets all 2>/dev/null | grep "^apc_cuda_tests:" > /dev/null ||
    { echo "gpu_check: $build has no CUDA backend (no CUDA toolkit found at configure time)" >&2; exit 1; }
  ninja -C "$build" "${BINARIES[@]}" aprun apc
  rm -rf "$STAGE" && mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/train"
  for b in "${BINARIES[@]}" aprun; do
    strip -o "$STAGE/bin/$b" "$build/bin/$b"
  done
  # What a CUDA image lacks: every library the binaries load but the system, the C++
  # runtime and CUDA's own (the GPU machine's driver and toolkit provide those).
  for b in "${BINARIES[@]}" aprun; do
    ldd "$build/bin/$b" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
      case "$name" in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libstdc++*|libgcc_s*|libcuda*|libcublas*|libnccl*) ;;
        *) cp -L "$path" "$STAGE/lib/$name" ;;
      esac
    done
  done
  # The training check's inputs, made here (the GPU machine has no MLIR): the tiny
  # Llama 3 compiled for one CPU and for one H100, f32 and bf16, and its data.
  local apc="$build/bin/apc" t="$STAGE/train"
  "$apc" import llama3 --config frontends/llama3/configs/tiny.json --batch 4 --seq-len 32 \
    -o "$t/tiny.mlir" > /dev/null
  for precision in fp32 bf16; do
    "$apc" compile "$t/tiny.mlir" --cluster cpu:1 --plan dp=1 --precision $precision \
      -o "$t/cpu-$precision.fb" > /dev/null
    "$apc" compile "$t/tiny.mlir" --cluster h100-sxm:1 --plan dp=1 --precision $precision \
      -o "$t/gpu-$precision.fb" > /dev/null
  done
  rm -f "$t/tiny.mlir"
  # The speed benchmark's plan: Llama-3.2-1B, batch 4 x seq 2048, bf16, one H100.
  "$apc" import llama3 --config frontends/llama3/configs/Llama-3.2-1B.json --batch 4 \
    --seq-len 2048 -o "$t/llama-1b.mlir" > /dev/null
  "$apc" compile "$t/llama-1b.mlir" --cluster h100-sxm:1 --plan dp=1 --precision bf16 \
    -o "$t/llama-1b.fb" > /dev/null
  rm -f "$t/llama-1b.mlir"
  "${PYTHON:-.venv/bin/python}" - "$t/data.arrow" <<'PY'
import sys
import numpy as np, pyarrow as pa
rng = np.random.default_rng(7)
rows = [list(rng.integers(1, 256, size=int(n))) for n in rng.integers(8, 40, size=64)]
table = pa.table({"input_ids": pa.array(rows, type=pa.list_(pa.int32()))})
with pa.ipc.new_file(sys.argv[1], table.schema) as w:
    w.write_table(table)
PY
  grep -qx "/$STAGE/" .git/info/exclude 2>/dev/null || echo "/$STAGE/" >> .git/info/exclude
  du -sh "$STAGE"
  echo "gpu_check: prepared $STAGE; on the GPU machine run tools/gpu_check.sh with $STAGE carried"
}

# The tiny Llama 3 trained 10 steps on the CPU backend and on the GPU, the same data and
# seeded weights; per-step losses compared (f32 within 1e-4 relative, bf16 within 2%).
train_check() {
  local t="$STAGE/train" out="$1" ok=0
  for precision in fp32 bf16; do
    for where in cpu gpu; do
      "$STAGE/bin/aprun" "$t/$where-$precision.fb" --data "$t/data.arrow" --steps 10 \
        --lr 1e-3 --pad-id 0 --no-shuffle --threads 4 --quiet \
        --metrics "$out/$where-$precision.jsonl" > "$out/$where-$precision.log" 2>&1 ||
        { echo "train $where $precision: aprun failed:"; tail -5 "$out/$where-$precision.log"; ok=1; }
    done
    python3 - "$out/cpu-$precision.jsonl" "$out/gpu-$precision.jsonl" "$precision" <<'PY' || ok=1
import json, sys
cpu = [json.loads(l)["loss"] for l in open(sys.argv[1])]
gpu = [json.loads(l)["loss"] for l in open(sys.argv[2])]
bound = 1e-4 if sys.argv[3] == "fp32" else 2e-2
worst = max(abs(g - c) / abs(c) for c, g in zip(cpu, gpu)) if cpu and len(cpu) == len(gpu) else float("inf")
print("train %s: 10 steps, worst loss difference %.3g relative (bound %g): %s"
      % (sys.argv[3], worst, bound, "ok" if worst <= bound else "FAILED"))
sys.exit(0 if worst <= bound else 1)
PY
  done
  return $ok
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
  if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check summary: $passed passed, $fails failed, $skipped skipped; training not run"
    echo "gpu_check: no GPU is visible here: the GPU tests did not run" >&2
    exit 2
  fi
  local trained=ok benched=ok sanitized=ok
  echo "== training (CPU backend against the GPU)"
  train_check "$out" || trained=FAILED
  # The kernels' memory accesses and shared-memory races, which no host emulation sees:
  # compute-sanitizer (memcheck, then racecheck) over the parity tests.
  if command -v compute-sanitizer >/dev/null 2>&1; then
    # racecheck is slow: the kernels that share memory within a block only.
    local tool filter rc
    for tool in memcheck racecheck; do
      filter='CudaParity.*'
      [ "$tool" = racecheck ] &&
        filter='CudaParity.RmsNorm*:CudaParity.Attention*:CudaParity.Loss*:CudaParity.Transpose*'
      echo "== compute-sanitizer --tool $tool ($filter)"
      rc=0
      timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 3 \
        "$STAGE/bin/apc_cuda_tests" --gtest_filter="$filter" --gtest_brief=1 \
        > "$out/sanitizer-$tool.log" 2>&1 || rc=$?
      tail -3 "$out/sanitizer-$tool.log"
      if [ "$rc" -eq 124 ]; then
        [ "$sanitized" = FAILED ] || sanitized="$tool timed out"
      elif [ "$rc" -ne 0 ]; then
        sanitized=FAILED
        grep -m 20 "=========" "$out/sanitizer-$tool.log" || true
      fi
    done
  else
    sanitized="not run (no compute-sanitizer)"
  fi
  echo "== speed: Llama-3.2-1B, batch 4 x seq 2048, bf16 (bench/gpu_step_vs_torch.py)"
  local brc=0
  timeout 210 python3 bench/gpu_step_vs_torch.py --plan "$STAGE/train/llama-1b.fb" \
    --config frontends/llama3/configs/Llama-3.2-1B.json --batch 4 --seq 2048 \
    --aprun "$STAGE/bin/aprun" || brc=$?
  [ "$brc" -eq 124 ] && benched="timed out"
  [ "$brc" -ne 0 ] && [ "$brc" -ne 124 ] && benched=FAILED
  echo "gpu_check summary: $passed passed, $fails failed, $skipped skipped; training $trained;" \
       "compute-sanitizer $sanitized; benchmark $benched"
  [ "$failed" -eq 0 ] && [ "$fails" -eq 0 ] && [ "$skipped" -eq 0 ] && [ "$trained" = ok ] &&
    [ "$sanitized" = ok ] && [ "$benched" = ok ]
}

case "${1:-}" in
  --prepare) prepare ;;
  "") run ;;
  -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
