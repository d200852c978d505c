#!/usr/bin/env python3
"""End-to-end check: the distributed optimizer's layout under ZeRO-1/2 and gradients that do
not pile up (docs/partitioning.md, "ZeRO and memory").

1. training, bf16: the bundled tiny Llama 3 (frontends/llama3/configs/tiny.json) with batch
   4 x seq 64, weights w0.safetensors drawn here, Arrow rows of 3..90 tokens; every run is
     aprun --nproc 2 plan.fb --data data.arrow --weights w0.safetensors --steps 10 --lr 1e-3
           --pad-id 0 --no-shuffle --threads 1 --quiet --metrics m.jsonl --save ck
   for  dp2 (dp=2, the reference: replicated f32 masters), zero1, zero2, zero3,
        zero1-full (dp=2,zero=1,recompute=full: the working copies are kept, not re-cast),
        zero3-full (dp=2,zero=3,recompute=full)
   all with --precision bf16. Criteria against dp2: per-step loss and grad_norm and every
   tensor of checkpoint-10 (model and optimizer state, whole tensors) within 1e-6 relative
   (the working copy is the same bf16 cast of the same f32 master, gathered instead of cast
   whole; only the grad norm's sum of squares is added in another order). The f32 runs of
   check_sharded_training.py hold the same layouts within 1e-5 of one device.
   Layouts: `aprun --dump` of zero1 shows every parameter split over dp ("split [...]") and
   no all_gather after the update.
2. memory, Meta-Llama-3-8B (bundled config, no weights), batch 8 x seq 1024, bf16, cpu:8,
   from `apc explain --json` (the bytes aprun allocates), N = the parameter count:
     dp=8,zero=3,recompute=full   arena < 1.0 N bytes
     dp=8,zero=1                  whole device < 5 N bytes; parameters = 4N/8 (f32 masters
                                  split over dp); optimizer state = 8N/8
     dp=8,zero=2                  whole device < 5 N bytes
   The figures are printed.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_zero_memory.py [--only train|8b] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
import check_recompute as rc  # noqa: E402
from e2e_common import StageFailure, run_tool  # noqa: E402

BATCH, SEQ = rc.BATCH, rc.SEQ
RTOL = 1e-6

# (run, plan)
RUNS = [
    ("dp2", "dp=2"),
    ("zero1", "dp=2,zero=1"),
    ("zero2", "dp=2,zero=2"),
    ("zero3", "dp=2,zero=3"),
    ("zero1-full", "dp=2,zero=1,recompute=full"),
    ("zero3-full", "dp=2,zero=3,recompute=full"),
]


def train_checks(root, rep):
    workdir = os.path.join(root, "train")
    os.makedirs(workdir)
    cfg = rc.tiny_config()
    dims = ref.LlamaDims(cfg)
    weights = os.path.join(workdir, "w0.safetensors")
    ref.write_safetensors(weights, ref.random_params(dims, seed=41, std=0.1, norm_std=0.1),
                          metadata={"format": "pt"})
    data = os.path.join(workdir, "data.arrow")
    common.write_arrow(data, rc.make_rows(dims.vocab, 42), "int32", rows_per_batch=7)
    common.import_llama3(cfg, workdir, BATCH, SEQ)
    env = rc.plain_env()
    results = {}
    for run, plan in RUNS:
        t0 = time.time()
        try:
            arena = rc.compile_plan(workdir, "m.mlir", run + ".fb", plan, 2, "bf16")
            args = ["--nproc", "2", "--comm-timeout", "60", run + ".fb", "--data", data, "--weights", weights,
                    "--steps", str(rc.STEPS), "--lr", repr(rc.LR), "--pad-id", str(rc.PAD_ID), "--no-shuffle",
                    "--threads", "1", "--quiet", "--metrics", os.path.join(workdir, run + ".jsonl"),
                    "--save", os.path.join(workdir, run)]
            run_tool("aprun", args, workdir, env=env, timeout=180)
            results[run] = rc.run_metrics_and_checkpoint(workdir, run)
            rep.info("%s (--plan %s, bf16): arena %d bytes, final loss %.6f, %.1fs"
                     % (run, plan, arena, float(results[run][0][-1]["loss"]), time.time() - t0))
        except (StageFailure, OSError, ValueError) as e:
            rep.check("%s: apc compile --plan %s + aprun" % (run, plan), False, str(e))
    for run, _ in RUNS[1:]:
        if run in results and "dp2" in results:
            rc.compare(rep, "%s vs dp2" % run, results[run], results["dp2"], RTOL, bitwise=False)
    # The layout as aprun sees it.
    try:
        out, _ = run_tool("aprun", ["--dump", "zero1.fb"], workdir)
        params = [line for line in out.splitlines() if " Parameter " in line]
        whole = [line.split()[-1] for line in params if "split [" not in line]
        rep.check("zero1: every parameter is stored split over dp (aprun --dump)", params and not whole,
                  "%d parameters, whole: %s" % (len(params), whole[:3]))
        lines = out.splitlines()
        first_update = next((i for i, line in enumerate(lines) if " adamw(" in line), None)
        gathers_after = [line.strip() for line in lines[first_update or 0:] if " all_gather(" in line]
        rep.check("zero1: no all_gather after the update (the shard is updated in place)",
                  first_update is not None and not gathers_after, "; ".join(gathers_after[:2]))
    except StageFailure as e:
        rep.check("zero1: aprun --dump", False, str(e))


def explain_memory(workdir, plan_path):
    out, _ = run_tool("apc", ["explain", plan_path, "--json"], workdir)
    return json.loads(out)["programs"][0]["memory"]


def llama8b_checks(root, rep):
    workdir = os.path.join(root, "8b")
    os.makedirs(workdir)
    config = os.path.join(rc.CONFIGS, "Meta-Llama-3-8B.json")
    out, _ = run_tool("apc", ["import", "llama3", "--config", config, "--batch", "8", "--seq-len", "1024",
                              "-o", "8b.mlir"], workdir)
    n = int(out.split(" parameters")[0].split()[-1].replace(",", ""))
    figures = {}
    for plan in ("dp=8,zero=3,recompute=full", "dp=8,zero=1", "dp=8,zero=2"):
        name = plan.replace(",", "-").replace("=", "") + ".fb"
        try:
            common.apc_compile("8b.mlir", name, workdir, cluster="cpu:8", precision="bf16", extra=["--plan", plan])
            figures[plan] = explain_memory(workdir, name)
        except (StageFailure, ValueError, KeyError) as e:
            rep.check("8b %s: apc compile + explain --json" % plan, False, str(e))
            continue
        m = figures[plan]
        rep.info("Meta-Llama-3-8B batch 8 x seq 1024, bf16, %s: parameters %.2fN, optimizer state %.2fN, "
                 "arena %.2fN, whole device %.2fN (%.1f GB; N = %d)"
                 % (plan, m["parameters"] / n, m["optimizer_state"] / n, m["arena"] / n, m["total"] / n,
                    m["total"] / 1e9, n))
    m = figures.get("dp=8,zero=3,recompute=full")
    if m:
        rep.check("8b dp=8,zero=3,recompute=full: arena under 1.0N", m["arena"] < n, "%.3fN" % (m["arena"] / n))
    m = figures.get("dp=8,zero=1")
    if m:
        rep.check("8b dp=8,zero=1: whole device under 5N", m["total"] < 5 * n, "%.3fN" % (m["total"] / n))
        rep.check("8b dp=8,zero=1: f32 masters split over dp (4N/8) and moments (8N/8)",
                  m["parameters"] == 4 * n // 8 and m["optimizer_state"] == 8 * n // 8,
                  "parameters %d, optimizer state %d bytes" % (m["parameters"], m["optimizer_state"]))
    m = figures.get("dp=8,zero=2")
    if m:
        rep.check("8b dp=8,zero=2: whole device under 5N", m["total"] < 5 * n, "%.3fN" % (m["total"] / n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=["train", "8b"], help="parts to run")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    rep = common.Report()
    start = time.time()
    with common.temp_root("apc-zero-memory-e2e-", args.keep) as root:
        for part, fn in (("train", train_checks), ("8b", llama8b_checks)):
            if not args.only or part in args.only:
                rep.guard(part, fn, root, rep)
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
