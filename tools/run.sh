#!/usr/bin/env bash
# The main job on its embedded default, end to end: installs what is missing, builds,
# then imports the bundled tiny Llama 3, compiles its training step into a plan,
# generates a small synthetic dataset (no download) and trains on it with aprun,
# printing the loss as it goes down.
# Usage: tools/run.sh [CONFIG.json] (default: frontends/llama3/configs/tiny.json)
# Environment: STEPS (default 100), OUT_DIR (default build/run); APC_RUN_SKIP_BUILD=1
# skips setup and build and APC_BIN_DIR (default $BUILD_DIR/bin) picks the binaries, so
# a test can run the chain with the tools it already built (test/e2e/check_run_sh.py).
set -euo pipefail
# Paths the caller gives are relative to where it runs, not to the repository root the
# script works in: made absolute before the cd.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ $# -ge 1 ] && set -- "$(absolute "$1")"
[ -n "${OUT_DIR:-}" ] && OUT_DIR=$(absolute "$OUT_DIR")
[ -n "${APC_BIN_DIR:-}" ] && APC_BIN_DIR=$(absolute "$APC_BIN_DIR")
[ -n "${BUILD_DIR:-}" ] && BUILD_DIR=$(absolute "$BUILD_DIR")
cd "$(dirname "$0")/.."
if [ "${APC_RUN_SKIP_BUILD:-0}" != 1 ]; then
  bash tools/build.sh >/dev/null
fi
BUILD_DIR=${BUILD_DIR:-build}
BIN=${APC_BIN_DIR:-$BUILD_DIR/bin}
CONFIG=${1:-frontends/llama3/configs/tiny.json}
OUT=${OUT_DIR:-$BUILD_DIR/run}
STEPS=${STEPS:-100}
mkdir -p "$OUT"

echo "== apc import: $CONFIG"
"$BIN/apc" import llama3 --config "$CONFIG" --batch 8 --seq-len 64 -o "$OUT/llama3.mlir"
"$BIN/apc-opt" "$OUT/llama3.mlir" -o /dev/null
echo "== apc compile: autodiff, AdamW, fp32, lowering, memory plan"
"$BIN/apc" compile "$OUT/llama3.mlir" --cluster cpu:1 --precision fp32 -o "$OUT/plan.fb"
echo "== apc data sample: synthetic token sequences with a learnable pattern"
VOCAB=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$CONFIG")
"$BIN/apc" data sample -o "$OUT/sample.arrow" --rows 1024 --vocab "$VOCAB"
echo "== aprun: $STEPS steps"
rm -rf "$OUT/checkpoints"
"$BIN/aprun" "$OUT/plan.fb" --data "$OUT/sample.arrow" --steps "$STEPS" --lr 1e-3 \
  --lr-schedule cosine --warmup 5 --min-lr 1e-4 --pad-id 0 \
  --metrics "$OUT/metrics.jsonl" --save "$OUT/checkpoints" --save-every "$STEPS"
python3 - "$OUT/metrics.jsonl" <<'PY'
import json, sys
losses = [json.loads(line)["loss"] for line in open(sys.argv[1])]
k = max(1, len(losses) // 10)
first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
print("== loss: first %d steps %.3f -> last %d steps %.3f (%s)" % (
    k, first, k, last, "going down" if last < first else "NOT going down"))
sys.exit(0 if last < first else 1)
PY
