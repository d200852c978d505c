#!/usr/bin/env python3
"""End-to-end check: ZeRO, tensor, sequence and combined parallelism (`apc compile --plan`,
`aprun --nproc N`, torchrun-style launches) train exactly as one device does.

Cases untied and tied: a tiny Llama 3 (vocab 96, hidden 64, ffn 96, 2 layers, 4 heads, 2 kv
heads, llama3 rope scaling; batch 4, seq 8) from given weights w0.safetensors (each rank reads
its own slices of it), on the Arrow rows of check_data_parallel.py whose lengths differ so that
ranks and sequence halves hold different numbers of padding tokens. Every run is
    aprun plan.fb --data data.arrow --weights w0.safetensors --steps 10 --lr 1e-3 --pad-id 0
          --no-shuffle --threads 1 --quiet --metrics m.jsonl --save ck
for the plans
    dp1                       the reference (--cluster cpu:1)
    zero1, zero2, zero3       dp=2,zero=K            aprun --nproc 2
    tp2                       tp=2                   aprun --nproc 2
    tp2-sp                    tp=2,sp=on             aprun --nproc 2
    dp2-tp2                   dp=2,tp=2              aprun --nproc 4
    dp2-tp2-sp-zero1          dp=2,tp=2,sp=on,zero=1 aprun --nproc 4
    dp2-tp2-zero3             dp=2,tp=2,zero=3       aprun --nproc 4
    tp2-sp-torch              tp=2,sp=on, two ranks started here with torchrun's variables
Criteria vs dp1 (rtol 1e-5), as in check_data_parallel.py: per-step loss and grad_norm;
metrics written once; checkpoint-10 has the same tensor names, shapes and dtypes (whole
tensors, gathered from the shards), trainer_state and config; every tensor of the model and
the optimizer state within rtol (relative error norm).
Resume under another plan: the tp2-sp run's checkpoint-5 (written from shards) resumed on one
device for steps 6..10 gives dp1's losses and final tensors; dp1's checkpoint-5 resumed under
dp=2,tp=2,sp=on,zero=1 likewise, and a dp=2,zero=3 checkpoint-5 resumed under tp=2.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_sharded_training.py [--only NAME] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
import check_data_parallel as dp  # noqa: E402
from e2e_common import StageFailure, load_checkpoint, read_metrics, run_tool, scalar_rel  # noqa: E402

BATCH, SEQ, STEPS = dp.BATCH, dp.SEQ, dp.STEPS
BASE = dict(dp.BASE, vocab_size=96)

# (run name, plan, processes)
PLANS = [
    ("zero1", "dp=2,zero=1", 2),
    ("zero2", "dp=2,zero=2", 2),
    ("zero3", "dp=2,zero=3", 2),
    ("tp2", "tp=2", 2),
    ("tp2-sp", "tp=2,sp=on", 2),
    ("dp2-tp2", "dp=2,tp=2", 4),
    ("dp2-tp2-sp-zero1", "dp=2,tp=2,sp=on,zero=1", 4),
    ("dp2-tp2-zero3", "dp=2,tp=2,zero=3", 4),
]

CASES = [
    dict(name="untied", cfg=dict(), seed=21),
    dict(name="tied", cfg=dict(tie_word_embeddings=True), seed=22),
]


def compile_plan(workdir, name, plan, n):
    out, err = common.apc_compile("m.mlir", name + ".fb", workdir, cluster="cpu:%d" % n,
                                  extra=["--plan", plan])
    if not all(item in out + err for item in plan.split(",")):
        raise StageFailure("apc compile --plan %s did not report the plan: %s" % (plan, out + err))


def resumed_on_one_device(case, root, rep, plan_file, processes, run):
    """`plan_file` (compiled in the case's folder) stopped at step 5 with its checkpoint-5,
    resumed on one device (dp1.fb), continues as the one-device run (compare_resumed)."""
    workdir = os.path.join(root, case["name"])
    want_metrics = read_metrics(os.path.join(workdir, "dp1.jsonl"))
    want_ck = load_checkpoint(os.path.join(workdir, "dp1", "checkpoint-%d" % STEPS))
    data, weights = os.path.join(workdir, "data.arrow"), os.path.join(workdir, "w0.safetensors")

    def flags(plan, out, extra):
        return dp.aprun_flags(plan, data, weights, os.path.join(workdir, out + ".jsonl"),
                              os.path.join(workdir, out), extra=extra)

    env = dp.plain_env()
    run_tool("aprun", ["--nproc", str(processes), "--comm-timeout", "60"] +
             flags(plan_file, run + "-5", ["--save-every", "5", "--steps", "5"]), workdir, env=env,
             timeout=240)
    resume = os.path.join(workdir, run + "-5", "checkpoint-5")
    run_tool("aprun", flags("dp1.fb", "from-" + run, ["--resume", resume]), workdir, env=env, timeout=120)
    compare_resumed("%s/resume %s -> dp1" % (case["name"], run), workdir, "from-" + run,
                    want_metrics, want_ck, rep)


def compare_resumed(label, workdir, run, want_metrics, want_ck, rep):
    """Steps 6..10 of a resumed run (metrics appended after the first 5) against dp1."""
    metrics = read_metrics(os.path.join(workdir, run + ".jsonl"))
    got = {m["step"]: m for m in metrics}
    bad = [s for s in range(6, STEPS + 1)
           if s not in got or not scalar_rel(float(got[s]["loss"]), float(want_metrics[s - 1]["loss"])) <= rep.rtol]
    rep.check("%s: losses of steps 6..%d equal dp1's (rtol %g)" % (label, STEPS, rep.rtol), not bad,
              "steps off: %s" % bad if bad else "")
    model, _, opt, _, st, _ = load_checkpoint(os.path.join(workdir, run, "checkpoint-%d" % STEPS))
    wmodel, _, wopt, _, wst, _ = want_ck
    errs = common.ranked_rel_errs(dict(model, **{"opt." + k: v for k, v in opt.items()}),
                                  dict(wmodel, **{"opt." + k: v for k, v in wopt.items()}),
                                  ["opt." + k for k in wopt] + list(wmodel))
    trtol = getattr(rep, "tensor_rtol", rep.rtol)  # a caller may state a separate one
    rep.check("%s: final parameters and moments equal dp1's (rel err norm <= %g)" % (label, trtol),
              errs[0][0] <= trtol and st == wst,
              "worst %s %.2e%s" % (errs[0][1], errs[0][0], "" if st == wst else "; trainer_state %s vs %s" % (st, wst)))


def sharded_case(case, root, rep, only):
    name = case["name"]
    cfg = dict(BASE)
    cfg.update(case["cfg"])
    dims = ref.LlamaDims(cfg)
    workdir = os.path.join(root, name)
    os.makedirs(workdir)
    params0 = ref.random_params(dims, seed=case["seed"], std=0.1, norm_std=0.1)
    weights = os.path.join(workdir, "w0.safetensors")
    ref.write_safetensors(weights, params0, metadata={"format": "pt"})
    rows = dp.make_rows(dims.vocab, 200 + case["seed"])
    data = os.path.join(workdir, "data.arrow")
    dp.write_data(data, rows)
    batches = dp.build_batches(rows, STEPS)
    # Sequence halves hold different numbers of kept targets (what sp splits).
    halves = [(int((lab[:, 1:SEQ // 2] != ref.IGNORE_INDEX).sum()), int((lab[:, SEQ // 2:] != ref.IGNORE_INDEX).sum()))
              for _, lab in batches]
    rep.check("%s/data: the two sequence halves hold different kept counts in most steps" % name,
              sum(1 for a, b in halves if a != b) >= 8, "per step %s" % halves)

    def flags(plan, run, extra=()):
        return dp.aprun_flags(plan, data, weights, os.path.join(workdir, run + ".jsonl"),
                              os.path.join(workdir, run), extra=extra)

    env = dp.plain_env()
    try:
        common.import_llama3(cfg, workdir, BATCH, SEQ)
        compile_plan(workdir, "dp1", "dp=1", 1)
        run_tool("aprun", flags("dp1.fb", "dp1", ["--save-every", "5"]), workdir, env=env, timeout=120)
        want_metrics = read_metrics(os.path.join(workdir, "dp1.jsonl"))
        want_ck = load_checkpoint(os.path.join(workdir, "dp1", "checkpoint-%d" % STEPS))
    except (StageFailure, OSError, ValueError) as e:
        rep.check("%s/dp1: reference run" % name, False, str(e))
        return

    for run, plan, n in PLANS:
        if only and run not in only:
            continue
        t0 = time.time()
        try:
            compile_plan(workdir, run, plan, n)
            extra = ["--save-every", "5"] if run in ("tp2-sp",) else []
            run_tool("aprun", ["--nproc", str(n), "--comm-timeout", "60"] + flags(run + ".fb", run, extra),
                     workdir, env=env, timeout=180)
            dp.compare_run(name, run, workdir, want_metrics, want_ck, rep)
        except StageFailure as e:
            rep.check("%s/%s: apc compile --plan %s + aprun --nproc %d" % (name, run, plan, n), False, str(e))
        rep.info("%s/%s took %.1fs" % (name, run, time.time() - t0))

    if not only or "tp2-sp-torch" in only:
        try:
            compile_plan(workdir, "tp2-sp", "tp=2,sp=on", 2)
            res = dp.run_torchrun_style(workdir, "tp2-sp-torch",
                                        flags("tp2-sp.fb", "tp2-sp-torch") + ["--comm-timeout", "60"], 2, timeout=180)
            rcs = [r[0] for r in res]
            if rep.check("%s/tp2-sp-torch: both hand-launched ranks exit 0" % name, rcs == [0, 0],
                         "exit codes %s; stderr: %s" % (rcs, " | ".join(r[2].strip()[-600:] for r in res))):
                dp.compare_run(name, "tp2-sp-torch", workdir, want_metrics, want_ck, rep)
        except StageFailure as e:
            rep.check("%s/tp2-sp-torch: torchrun-style launch" % name, False, str(e))

    if not only or "resume" in only:
        # A checkpoint written from shards resumes on one device, and a one-device checkpoint
        # resumes sharded: both continue exactly as dp1.
        try:
            if not os.path.isdir(os.path.join(workdir, "tp2-sp", "checkpoint-5")):
                compile_plan(workdir, "tp2-sp", "tp=2,sp=on", 2)
                run_tool("aprun", ["--nproc", "2", "--comm-timeout", "60"] +
                         flags("tp2-sp.fb", "tp2-sp", ["--save-every", "5"]), workdir, env=env, timeout=180)
            resume = os.path.join(workdir, "tp2-sp", "checkpoint-5")
            run_tool("aprun", flags("dp1.fb", "from-tp2-sp", ["--resume", resume]), workdir, env=env, timeout=120)
            compare_resumed("%s/resume tp2-sp -> dp1" % name, workdir, "from-tp2-sp", want_metrics, want_ck, rep)
            compile_plan(workdir, "all4", "dp=2,tp=2,sp=on,zero=1", 4)
            resume = os.path.join(workdir, "dp1", "checkpoint-5")
            run_tool("aprun", ["--nproc", "4", "--comm-timeout", "60"] +
                     flags("all4.fb", "from-dp1", ["--resume", resume]), workdir, env=env, timeout=180)
            compare_resumed("%s/resume dp1 -> dp2-tp2-sp-zero1" % name, workdir, "from-dp1", want_metrics, want_ck, rep)
            # ZeRO-3 (parameters and moments split over dp) -> tensor parallel.
            compile_plan(workdir, "zero3", "dp=2,zero=3", 2)
            run_tool("aprun", ["--nproc", "2", "--comm-timeout", "60"] +
                     flags("zero3.fb", "zero3-5", ["--save-every", "5", "--steps", "5"]), workdir, env=env, timeout=180)
            compile_plan(workdir, "tp2", "tp=2", 2)
            resume = os.path.join(workdir, "zero3-5", "checkpoint-5")
            run_tool("aprun", ["--nproc", "2", "--comm-timeout", "60"] +
                     flags("tp2.fb", "from-zero3", ["--resume", resume]), workdir, env=env, timeout=180)
            compare_resumed("%s/resume zero3 -> tp2" % name, workdir, "from-zero3", want_metrics, want_ck, rep)
        except (StageFailure, OSError, ValueError) as e:
            rep.check("%s/resume under another plan" % name, False, str(e))


def configure(plans, batch=None, layers=None):
    """Makes this module's comparison (sharded_case) check `plans`, at a batch of `batch`
    (here and in the data-parallel helpers it uses) and with `layers` layers: the pipeline,
    interleaved and context-parallel scripts run it on their own plans."""
    global BATCH, BASE, PLANS
    if batch:
        dp.BATCH = BATCH = batch
    if layers:
        BASE = dict(BASE, num_hidden_layers=layers)
    PLANS = list(plans)


def run_suite(description, temp_prefix, extras):
    """main() of a script built on this one: each case runs PLANS against one device, then
    each extra check (label, fn(case, root, rep), trigger). `--only NAME` picks plans and
    extras; an extra runs when no --only is given or when its trigger (a plan's name, or a
    name of its own such as "resume") is named. Returns the exit code."""
    plan_names = [p[0] for p in PLANS]
    own = [t for _, _, t in extras if t not in plan_names]
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--only", action="append", help="run names to run (%s)" % ", ".join(plan_names + own))
    ap.add_argument("--rtol", type=float, default=1e-5, help="losses' relative tolerance (default 1e-5)")
    ap.add_argument("--tensor-rtol", type=float, default=3e-5,
                    help="tensors' relative error norm tolerance (default 3e-5)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rep = common.Report()
    rep.rtol = args.rtol
    rep.tensor_rtol = args.tensor_rtol
    start = time.time()
    only = [o for o in args.only or [] if o not in own] or plan_names
    with common.temp_root(temp_prefix, args.keep) as root:
        try:
            for case in CASES:
                rep.guard(case["name"], sharded_case, case, root, rep, only)
                for label, fn, trigger in extras:
                    if not args.only or trigger in args.only:
                        rep.guard("%s/%s" % (case["name"], label), fn, case, root, rep)
        finally:
            dp.kill_all()
    return rep.summary(start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", help="run names to run (%s, tp2-sp-torch, resume)"
                    % ", ".join(p[0] for p in PLANS))
    ap.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rep = common.Report()
    rep.rtol = args.rtol
    start = time.time()
    with common.temp_root("apc-sharded-e2e-", args.keep) as root:
        try:
            for case in CASES:
                rep.guard(case["name"], sharded_case, case, root, rep, args.only)
        finally:
            dp.kill_all()
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
