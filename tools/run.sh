#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, builds, then imports
# the bundled tiny Llama 3 config, verifies the IR and prints a summary.
# Later milestones extend this same command to compile and train.
# Usage: tools/run.sh [CONFIG.json] (default: frontends/llama3/configs/tiny.json)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
CONFIG=${1:-frontends/llama3/configs/tiny.json}
OUT=${OUT_DIR:-$BUILD_DIR/run}
mkdir -p "$OUT"
"$BUILD_DIR/bin/apc" import llama3 --config "$CONFIG" --batch 4 --seq-len 64 -o "$OUT/llama3.mlir"
"$BUILD_DIR/bin/apc-opt" "$OUT/llama3.mlir" -o /dev/null
echo "verified $OUT/llama3.mlir with apc-opt ($(grep -c ' = ap\.' "$OUT/llama3.mlir") ap ops)"
