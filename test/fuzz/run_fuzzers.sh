#!/usr/bin/env bash
# Runs every fuzz target of test/fuzz for SECONDS each (default 60), one after another.
# Usage: test/fuzz/run_fuzzers.sh [SECONDS] [BUILD_DIR] [TARGET...]
# BUILD_DIR defaults to build-fuzz; TARGETs (short names: tokenizer_json for
# tokenizer_json_fuzz) default to all of them. APC_FUZZ_RUNS=N also stops each run after
# N inputs. Seeds are (re)made in
# BUILD_DIR/seeds, the growing corpora live in BUILD_DIR/corpus/<target>, and crashes
# are written to BUILD_DIR/crashes/<target>/. Exits non-zero if any fuzzer failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
build=${2:-build-fuzz}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors arrow plan flags llama3_config tokenizer_json
  tokenizer_config dataset_state prompt_template trainer_state safetensors_index parallel_plan
  store_protocol launcher_env mlir)

python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
"$python" test/fuzz/make_seeds.py "$build/seeds" >/dev/null || exit 1

status=0
for t in "${targets[@]}"; do
  exe="$build/fuzz/${t}_fuzz"
  if [ ! -x "$exe" ]; then
    echo "run_fuzzers: $exe is missing: ninja -C $build apc_fuzzers" >&2
    status=1
    continue
  fi
  mkdir -p "$build/corpus/$t" "$build/crashes/$t"
  echo "== ${t}_fuzz for ${seconds}s"
  "$exe" -max_total_time="$seconds" ${APC_FUZZ_RUNS:+-runs=$APC_FUZZ_RUNS} -timeout=10 \
    -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$t/" "$build/corpus/$t" "$build/seeds/$t" \
    > "$build/crashes/$t/log.txt" 2>&1
  rc=$?
  # The last coverage line (cov, ft, corpus size) and the totals.
  grep -E "^#[0-9]+.*cov:" "$build/crashes/$t/log.txt" | tail -1
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build/crashes/$t/log.txt"
  if [ $rc -ne 0 ]; then
    echo "run_fuzzers: ${t}_fuzz failed (exit $rc); see $build/crashes/$t/log.txt" >&2
    grep -m5 -E "ERROR|runtime error|fuzz check failed|Test unit written" \
      "$build/crashes/$t/log.txt" >&2
    status=1
  fi
done
exit $status
