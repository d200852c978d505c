#!/usr/bin/env python3
"""End-to-end check: activation recomputation (`--plan "recompute=none|selective|full"`, the
ap-recompute pass) shrinks the arena and trains exactly as without it.

Model: the bundled tiny Llama 3 (frontends/llama3/configs/tiny.json: vocab 256, hidden 64, ffn
160, 2 layers, 4 heads, 2 kv heads, llama3 rope scaling) with batch 4 x seq 64, so that
activations, not parameters or gradients, set the arena; weights w0.safetensors drawn here;
Arrow rows of 3..90 tokens (some padded, some truncated).

1. arena: `apc compile --precision fp32` (and bf16) with recompute none, selective, full
   prints "arena N bytes"; `aprun --dump plan.fb` prints the same figure. Criteria:
   arena(full) < arena(selective) < arena(none), in both precisions. The figures are
   printed.
2. training: every run is
     aprun plan.fb --data data.arrow --weights w0.safetensors --steps 10 --lr 1e-3 --pad-id 0
           --no-shuffle --threads 1 --quiet --metrics m.jsonl --save ck
   for the plans (--cluster cpu:1 unless a launcher is named)
     none, selective, full                   fp32, one device (none is the reference)
     bf16-none, bf16-selective, bf16-full    bf16 compute, one device
     dp2, dp2-full                           dp=2 and dp=2,recompute=full, aprun --nproc 2
     tp2-sp, tp2-sp-selective, tp2-sp-full   tp=2,sp=on (+ recompute), aprun --nproc 2
     zero3-full                              dp=2,zero=3,recompute=full, aprun --nproc 2
   Criteria: a recompute run against the run of the same plan without recompute (the
   same kernels on the same inputs): per-step loss and grad_norm and every tensor of
   checkpoint-10 (model and optimizer state) within 1e-6 relative; on one device they must
   be bitwise equal. Multi-device runs against the one-device `none` run within 1e-5 (the
   tolerance of check_sharded_training.py: collectives sum in another order).
3. 8B: the bundled Meta-Llama-3-8B config compiled (no weights) with batch 1 and batch 4 x
   seq 1024, bf16, each mode; the arenas are printed. At batch 4 full < selective < none;
   at batch 1 the f32 gradients (32 GB, all live until grad_norm) set the peak, so the
   three are within 0.1% of each other.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_recompute.py [--only arena|train|8b] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
from e2e_common import StageFailure, load_checkpoint, read_metrics, run_tool  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "frontends", "llama3", "configs")
BATCH, SEQ, STEPS, LR, PAD_ID = 4, 64, 10, 1e-3, 0
MODES = ["none", "selective", "full"]
RTOL_SAME_PLAN = 1e-6
RTOL_VS_ONE_DEVICE = 1e-5

# (run, plan, processes, precision, the run it must equal within RTOL_SAME_PLAN)
RUNS = [
    ("none", "recompute=none", 1, "fp32", None),
    ("selective", "recompute=selective", 1, "fp32", "none"),
    ("full", "recompute=full", 1, "fp32", "none"),
    ("bf16-none", "recompute=none", 1, "bf16", None),
    ("bf16-selective", "recompute=selective", 1, "bf16", "bf16-none"),
    ("bf16-full", "recompute=full", 1, "bf16", "bf16-none"),
    ("dp2", "dp=2", 2, "fp32", None),
    ("dp2-full", "dp=2,recompute=full", 2, "fp32", "dp2"),
    ("tp2-sp", "tp=2,sp=on", 2, "fp32", None),
    ("tp2-sp-selective", "tp=2,sp=on,recompute=selective", 2, "fp32", "tp2-sp"),
    ("tp2-sp-full", "tp=2,sp=on,recompute=full", 2, "fp32", "tp2-sp"),
    ("zero3-full", "dp=2,zero=3,recompute=full", 2, "fp32", None),
]


def tiny_config():
    with open(os.path.join(CONFIGS, "tiny.json")) as f:
        return json.load(f)


def make_rows(vocab, seed, n=48):
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(1, vocab, size=int(rng.integers(3, 91)))] for _ in range(n)]


def compile_plan(workdir, mlir, out, plan, devices, precision):
    """apc compile with --plan; returns the arena size it reports."""
    stdout, stderr = common.apc_compile(mlir, out, workdir, cluster="cpu:%d" % devices, precision=precision,
                                        extra=["--plan", plan])
    m = re.search(r"arena (\d+) bytes", stdout + stderr)
    if not m:
        raise StageFailure("apc compile did not report the arena: %s" % (stdout + stderr))
    return int(m.group(1))


def dumped_arena(workdir, plan_path):
    out, _ = run_tool("aprun", ["--dump", plan_path], workdir)
    m = re.search(r"arena (\d+) bytes", out)
    return int(m.group(1)) if m else None


def plain_env():
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "APC_JOB_TOKEN", "APC_ALLOW_NO_TOKEN", "APC_LAUNCHER", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID",
              "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"):
        env.pop(k, None)
    return env


# ------------------------------------------------------------------------------ 1. arena


def arena_checks(root, rep):
    workdir = os.path.join(root, "arena")
    os.makedirs(workdir)
    try:
        common.import_llama3(tiny_config(), workdir, BATCH, SEQ)
    except StageFailure as e:
        rep.check("arena: apc import", False, str(e))
        return
    for precision in ("fp32", "bf16"):
        arenas = {}
        for mode in MODES:
            label = "arena/%s/%s" % (precision, mode)
            try:
                out = "%s-%s.fb" % (precision, mode)
                arenas[mode] = compile_plan(workdir, "m.mlir", out, "recompute=" + mode, 1, precision)
                dumped = dumped_arena(workdir, out)
                rep.check("%s: aprun --dump reports the arena apc compile printed" % label,
                          dumped == arenas[mode], "compile %d, dump %s" % (arenas[mode], dumped))
            except StageFailure as e:
                rep.check(label, False, str(e))
        if len(arenas) == 3:
            rep.info("tiny batch %d x seq %d, %s: arena none %d, selective %d, full %d bytes (full %.0f%% of none)"
                     % (BATCH, SEQ, precision, arenas["none"], arenas["selective"], arenas["full"],
                        100.0 * arenas["full"] / arenas["none"]))
            rep.check("arena/%s: full < selective < none" % precision,
                      arenas["full"] < arenas["selective"] < arenas["none"],
                      "none %d, selective %d, full %d" % (arenas["none"], arenas["selective"], arenas["full"]))


# ------------------------------------------------------------------------------ 2. training


def run_metrics_and_checkpoint(workdir, run):
    metrics = read_metrics(os.path.join(workdir, run + ".jsonl"))
    steps = [m.get("step") for m in metrics]
    if steps != list(range(1, STEPS + 1)):
        raise StageFailure("%s: metrics has steps %s, want 1..%d once each" % (run, steps, STEPS))
    ck = load_checkpoint(os.path.join(workdir, run, "checkpoint-%d" % STEPS))
    return metrics, ck


def compare(rep, label, got, want, rtol, bitwise):
    """Per-step loss and grad_norm, then every checkpoint tensor: within rtol, or identical."""
    (gm, (gmodel, gmdt, gopt, godt, _, _)), (wm, (wmodel, wmdt, wopt, wodt, _, _)) = got, want
    worst, bad, identical = 0.0, [], True
    for s in range(STEPS):
        for key in ("loss", "grad_norm"):
            g, w = float(gm[s][key]), float(wm[s][key])
            e = common.scalar_rel(g, w) if np.isfinite(g) else float("inf")
            identical = identical and g == w
            worst = max(worst, e)
            if not e <= rtol:
                bad.append("step %d %s %.9g vs %.9g (rel %.1e)" % (s + 1, key, g, w, e))
    rep.check("%s: per-step loss and grad_norm (rtol %g)" % (label, rtol), not bad,
              "; ".join(bad[:4]) if bad else "worst rel %.1e" % worst)
    problems, worst_t = [], (0.0, "")
    for got_t, want_t, got_dt, want_dt, what in ((gmodel, wmodel, gmdt, wmdt, "model"),
                                                 (gopt, wopt, godt, wodt, "optimizer")):
        if sorted(got_t) != sorted(want_t) or got_dt != want_dt:
            problems.append("%s: tensor names or dtypes differ" % what)
            continue
        for name in sorted(want_t):
            if got_t[name].shape != want_t[name].shape:
                problems.append("%s %s: shape %s vs %s" % (what, name, got_t[name].shape, want_t[name].shape))
                continue
            e = common.rel_err(got_t[name], want_t[name])
            identical = identical and np.array_equal(got_t[name], want_t[name])
            if e > worst_t[0] or not worst_t[1]:
                worst_t = (e, "%s %s" % (what, name))
            if not e <= rtol:
                problems.append("%s %s rel %.1e" % (what, name, e))
    rep.check("%s: checkpoint-%d tensors (rtol %g)" % (label, STEPS, rtol), not problems,
              "; ".join(problems[:4]) if problems else "worst rel %.1e (%s)" % worst_t)
    if bitwise:
        rep.check("%s: bitwise equal (one device)" % label, identical)
    else:
        rep.info("%s: %s" % (label, "bitwise equal" if identical else "not bitwise equal"))


def train_checks(root, rep, keep_going=True):
    workdir = os.path.join(root, "train")
    os.makedirs(workdir)
    cfg = tiny_config()
    dims = ref.LlamaDims(cfg)
    params0 = ref.random_params(dims, seed=31, std=0.1, norm_std=0.1)
    weights = os.path.join(workdir, "w0.safetensors")
    ref.write_safetensors(weights, params0, metadata={"format": "pt"})
    data = os.path.join(workdir, "data.arrow")
    common.write_arrow(data, make_rows(dims.vocab, 32), "int32", rows_per_batch=7)
    try:
        common.import_llama3(cfg, workdir, BATCH, SEQ)
    except StageFailure as e:
        rep.check("train: apc import", False, str(e))
        return
    env = plain_env()
    results = {}
    for run, plan, n, precision, _ in RUNS:
        t0 = time.time()
        try:
            arena = compile_plan(workdir, "m.mlir", run + ".fb", plan, n, precision)
            args = [run + ".fb", "--data", data, "--weights", weights, "--steps", str(STEPS), "--lr", repr(LR),
                    "--pad-id", str(PAD_ID), "--no-shuffle", "--threads", "1", "--quiet",
                    "--metrics", os.path.join(workdir, run + ".jsonl"), "--save", os.path.join(workdir, run)]
            if n > 1:
                args = ["--nproc", str(n), "--comm-timeout", "60"] + args
            run_tool("aprun", args, workdir, env=env, timeout=180)
            results[run] = run_metrics_and_checkpoint(workdir, run)
            rep.info("%s (--plan %s, %s, %d process%s): arena %d bytes, final loss %.6f, %.1fs"
                     % (run, plan, precision, n, "es" if n > 1 else "", arena,
                        float(results[run][0][-1]["loss"]), time.time() - t0))
        except (StageFailure, OSError, ValueError) as e:
            rep.check("%s: apc compile --plan %s + aprun" % (run, plan), False, str(e))
    for run, plan, n, precision, same_plan in RUNS:
        if run not in results:
            continue
        if same_plan and same_plan in results:
            compare(rep, "%s vs %s" % (run, same_plan), results[run], results[same_plan], RTOL_SAME_PLAN,
                    bitwise=(n == 1))
        if n > 1 and "none" in results:
            compare(rep, "%s vs none" % run, results[run], results["none"], RTOL_VS_ONE_DEVICE, bitwise=False)


# ------------------------------------------------------------------------------ 3. 8B


def llama8b_checks(root, rep):
    workdir = os.path.join(root, "8b")
    os.makedirs(workdir)
    config = os.path.join(CONFIGS, "Meta-Llama-3-8B.json")
    for batch in (1, 4):
        try:
            mlir = common.apc_import(config, "8b-b%d.mlir" % batch, workdir, batch, 1024)
            arenas = {mode: compile_plan(workdir, mlir, "8b-b%d-%s.fb" % (batch, mode), "recompute=" + mode, 1, "bf16")
                      for mode in MODES}
        except StageFailure as e:
            rep.check("8b batch %d: apc import + compile" % batch, False, str(e))
            continue
        rep.info("Meta-Llama-3-8B batch %d x seq 1024, bf16: arena none %d, selective %d, full %d bytes"
                 % (batch, arenas["none"], arenas["selective"], arenas["full"]))
        if batch == 4:
            rep.check("8b batch 4: full < selective < none", arenas["full"] < arenas["selective"] < arenas["none"],
                      "none %d, selective %d, full %d" % (arenas["none"], arenas["selective"], arenas["full"]))
        else:
            spread = (max(arenas.values()) - min(arenas.values())) / float(min(arenas.values()))
            rep.check("8b batch 1: gradient-bound, the modes within 0.1%", spread < 1e-3, "spread %.2e" % spread)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=["arena", "train", "8b"], help="parts to run")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    rep = common.Report()
    start = time.time()
    with common.temp_root("apc-recompute-e2e-", args.keep) as root:
        for part, fn in (("arena", arena_checks), ("train", train_checks), ("8b", llama8b_checks)):
            if not args.only or part in args.only:
                rep.guard(part, fn, root, rep)
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
