#!/usr/bin/env python3
"""End-to-end check: data-parallel training (`apc compile --cluster cpu:N`, `aprun --nproc N`,
torchrun-style launches) equals the single-device run; dead or silent ranks end the job; and
`apc compile --plan` refuses unimplemented or infeasible plans.

1. equality (cases untied, tied: tiny Llama 3, vocab 97, hidden 64, 2 layers, 4 heads, 2 kv
   heads, llama3 rope scaling; batch 4, seq 8; given weights w0.safetensors). An Arrow file of
   22 rows whose lengths alternate (1..12 tokens) so that, with --no-shuffle (batch k = rows
   [4k, 4k+4), the last 2 rows of an epoch dropped), the ranks' slices [r*B/dp, (r+1)*B/dp)
   hold different numbers of kept targets in most steps, and one rank holds none at all in
   step 2 (rebuilt and asserted here in Python). Every run:
     aprun plan.fb --data data.arrow --weights w0.safetensors --steps 10 --lr 1e-3 --pad-id 0
           --no-shuffle --threads 1 --quiet --metrics m.jsonl --save ck
   with
     dp1        plan from --cluster cpu:1, no launcher                      (the reference)
     dp2        plan from --cluster cpu:2, aprun --nproc 2
     dp2-torch  the dp2 plan, two processes started here with RANK, WORLD_SIZE, LOCAL_RANK,
                LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT (a free port) and
                APC_JOB_TOKEN, the same command line for both (as torchrun does)
     dp4        plan from --cluster cpu:4 (one row per rank), aprun --nproc 4
   Criteria vs dp1 (rtol 1e-5): per-step loss and grad_norm (relative error); metrics has
   steps 1..10 exactly once (only rank 0 writes); checkpoint-10 has the four files, the same
   tensor names, shapes, dtypes, trainer_state.json and config.json; every tensor of
   model.safetensors and optimizer.safetensors: ||dpN - dp1|| / ||dp1|| <= rtol. Oracle
   sanity: dp1's step-1 loss equals torch's (float64) global-batch loss, and the mean of the two
   ranks' local mean losses differs from it by > 10*rtol (the data tells global from local
   normalisation apart); the hand-launched rank 1 prints no progress lines.
2. dead ranks (untied dp2 plan, a run of 10^6 steps with --save-every 25):
     nproc-kill-r1 / nproc-kill-r0  aprun --nproc 2; once checkpoint-25 exists, SIGKILL the
                rank (a child of the launcher whose /proc/PID/environ has RANK=r). The
                launcher must exit non-zero within 30 s naming "rank r".
     torch-kill-r1  hand-launched ranks with --comm-timeout 5; SIGKILL rank 1: rank 0 must exit
                non-zero within 5 s + 10 s margin with a message naming rank 1 or saying a rank
                stopped answering / the connection was lost.
     torch-stop-r1  the same with SIGSTOP (a silent, not dead, peer): rank 0 must give up within
                the comm timeout + margin.
   After each: every checkpoint-N folder is whole (the four files, both safetensors parse,
   trainer_state step == N, N a multiple of 25) and no checkpoint of the last step exists.
   Temporary '.checkpoint-*' folders (ignored by --resume) are reported, not failed.
3. refusals: `apc compile` exits 2 with a message naming the plan field for plans that are not
   implemented (pp, mb, stages), infeasible (degrees vs device count, dp not dividing
   the batch, tp not dividing the heads or the vocabulary, sp without tp, zero without dp) or
   malformed; '{"dp": 2}', "dp=2" and the default plan give byte-identical plans; aprun refuses
   a plan whose device count differs from the job's, and a multi-rank job without
   APC_JOB_TOKEN.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_data_parallel.py [--only equality|kill|refusals] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
from e2e_common import (StageFailure, bin_path, kill_group, load_checkpoint, read_metrics,  # noqa: E402
                        run_cmd, run_tool, scalar_rel, wait_for_binary)

BATCH, SEQ = 4, 8
STEPS = 10
LR = 1e-3
PAD_ID = 0

BASE = common.llama_config(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                           bos_token_id=1, eos_token_id=2, rope_scaling=common.llama3_rope_scaling(32))

# 22 rows = 5 batches per epoch (+2 dropped); kept targets per row = min(len, SEQ) - 1.
#   batch 0: 6 8 | 1 2    dp2 kept 12 | 1  (step 1: local means are far from the global mean)
#   batch 1: 1 1 | 8 5    dp2 kept 0 | 11  (rank 0 holds no target at all)
#   batch 2: 10 3 | 2 4   dp2 kept 9 | 4
#   batch 3: 2 8 | 9 12   dp2 kept 8 | 14
#   batch 4: 3 7 | 8 8    dp2 kept 8 | 14
ROW_LENGTHS = [6, 8, 1, 2, 1, 1, 8, 5, 10, 3, 2, 4, 2, 8, 9, 12, 3, 7, 8, 8, 5, 9]

CASES = [
    dict(name="untied", cfg=dict(), seed=11),
    dict(name="tied", cfg=dict(tie_word_embeddings=True), seed=12),
]

KILL_SAVE_EVERY = 25
KILL_STEPS = 1000000
LAUNCHER_DEADLINE = 30.0
COMM_TIMEOUT = 5
COMM_MARGIN = 10.0

LIVE = []  # every Popen started here: killed (with its process group) in finally blocks


# ------------------------------------------------------------------------------ processes


def spawn(tool, args, cwd, env, log_prefix):
    """Starts a process in its own session, stdout/stderr to files; returns the Popen."""
    cmd = [bin_path(tool)] + args
    wait_for_binary(cmd[0])
    out = open(log_prefix + ".stdout", "wb")
    err = open(log_prefix + ".stderr", "wb")
    try:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
    finally:
        out.close()
        err.close()
    p.log_prefix = log_prefix
    LIVE.append(p)
    return p


def logs(p):
    texts = []
    for ext in ("stdout", "stderr"):
        try:
            with open(p.log_prefix + "." + ext, "rb") as f:
                texts.append(f.read().decode(errors="replace"))
        except OSError:
            texts.append("")
    return texts


def kill_all():
    for p in LIVE:
        kill_group(p)
    del LIVE[:]


def wait_exit(p, timeout):
    """Waits up to `timeout` s; returns (rc or None, seconds waited)."""
    t0 = time.time()
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    return rc, time.time() - t0


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def torchrun_env(rank, world, port, token):
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "APC_JOB_TOKEN", "APC_ALLOW_NO_TOKEN", "APC_LAUNCHER", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        env.pop(k, None)
    env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), APC_JOB_TOKEN=token)
    return env


def plain_env():
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "APC_JOB_TOKEN", "APC_ALLOW_NO_TOKEN", "APC_LAUNCHER", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID",
              "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"):
        env.pop(k, None)
    return env


def children_ranks(pid):
    """{rank: child pid} of the launcher, from /proc (ppid in stat, RANK in environ)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid != pid:
                continue
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        for e in env:
            if e.startswith(b"RANK="):
                out[int(e[5:])] = int(d)
    return out


# ------------------------------------------------------------------------------ data


def make_rows(vocab, seed):
    rng = np.random.default_rng(seed)
    rows = [[int(t) for t in rng.integers(1, vocab, size=n)] for n in ROW_LENGTHS]
    rows[1][3] = 0   # real tokens equal to the pad id: kept (masking is by row length)
    rows[9][2] = 0
    return rows


def write_data(path, rows):
    common.write_arrow(path, rows, "int32", rows_per_batch=5)


def build_batches(rows, steps):
    """The global (ids, labels) batches aprun feeds with --no-shuffle --pad-id PAD_ID (drop_last epochs)."""
    return [(ids, labels) for ids, labels, _, _ in common.build_batches(rows, steps, BATCH, SEQ, PAD_ID)]


def kept_per_rank(labels, dp):
    per = BATCH // dp
    return [int((labels[r * per:(r + 1) * per, 1:] != ref.IGNORE_INDEX).sum()) for r in range(dp)]


# ------------------------------------------------------------------------------ comparisons


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


# ------------------------------------------------------------------------------ 1. equality


def aprun_flags(plan, data, weights, metrics, save, steps=STEPS, extra=()):
    return [plan, "--data", data, "--weights", weights, "--steps", str(steps), "--lr", repr(LR),
            "--pad-id", str(PAD_ID), "--no-shuffle", "--threads", "1", "--quiet",
            "--metrics", metrics, "--save", save] + list(extra)


def bf16_follows_one_device(name, workdir, rep, runs):
    """bf16 (the default precision): each (run, plan, processes) of `runs` after the first,
    the one-device reference, trains with per-step losses within 2% of it (bf16 rounds
    differently once the batch is split; the f32 runs are the exact checks). Reads
    data.arrow and w0.safetensors in `workdir`."""
    data = os.path.join(workdir, "data.arrow")
    weights = os.path.join(workdir, "w0.safetensors")
    env = plain_env()
    losses = {}
    for run, plan, n in runs:
        try:
            common.apc_compile("m.mlir", run + ".fb", workdir, cluster="cpu:%d" % n, precision="bf16",
                               extra=["--plan", plan])
            run_tool("aprun", ["--nproc", str(n), "--comm-timeout", "60"] +
                     aprun_flags(run + ".fb", data, weights, os.path.join(workdir, run + ".jsonl"),
                                 os.path.join(workdir, run)), workdir, env=env, timeout=180)
            losses[run] = [float(m["loss"]) for m in read_metrics(os.path.join(workdir, run + ".jsonl"))]
        except (StageFailure, OSError, ValueError) as e:
            rep.check("%s/%s: bf16 plan %s compiles and trains" % (name, run, plan), False, str(e))
    want = losses.get(runs[0][0])
    for run, _, _ in runs[1:]:
        if want and run in losses:
            rel = max(abs(a - b) / abs(b) for a, b in zip(losses[run], want))
            rep.check("%s/%s: bf16 losses within 2%% of one device's" % (name, run),
                      len(losses[run]) == len(want) and rel <= 0.02, "worst rel %.2e" % rel)


def run_torchrun_style(workdir, name, args, world, timeout):
    """Starts `world` hand-made ranks with the same args; waits for all; returns [(rc, out, err)]."""
    port, token = free_port(), uuid.uuid4().hex
    procs = [spawn("aprun", args, workdir, torchrun_env(r, world, port, token),
                   os.path.join(workdir, "%s.rank%d" % (name, r))) for r in range(world)]
    results = []
    try:
        deadline = time.time() + timeout
        for p in procs:
            rc, _ = wait_exit(p, max(0.1, deadline - time.time()))
            if rc is None:
                raise StageFailure("%s: rank did not finish within %d s" % (name, timeout))
        for p in procs:
            out, err = logs(p)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            kill_group(p)
    return results


def compare_run(case, run, workdir, want_metrics, want_ck, rep):
    name = "%s/%s" % (case, run)
    metrics = read_metrics(os.path.join(workdir, run + ".jsonl"))
    steps = [m.get("step") for m in metrics]
    ok = rep.check("%s: metrics has steps 1..%d exactly once (rank 0 writes)" % (name, STEPS),
                   steps == list(range(1, STEPS + 1)), "steps %s" % steps)
    if ok:
        worst = (0.0, "")
        bad = []
        for s in range(STEPS):
            for key in ("loss", "grad_norm"):
                g, w = float(metrics[s][key]), float(want_metrics[s][key])
                e = scalar_rel(g, w) if np.isfinite(g) else float("inf")
                if e > worst[0] or not worst[1]:
                    worst = (e, "step %d %s dp %.9g dp1 %.9g rel %.1e" % (s + 1, key, g, w, e))
                if not e <= rep.rtol:
                    bad.append("step %d %s %.9g vs %.9g (rel %.1e)" % (s + 1, key, g, w, e))
        rep.check("%s: per-step loss and grad_norm vs dp1 (rtol %g)" % (name, rep.rtol), not bad,
                  "; ".join(bad[:4]) if bad else "worst: " + worst[1])
    try:
        model, mdt, opt, odt, st, cfg = load_checkpoint(os.path.join(workdir, run, "checkpoint-%d" % STEPS))
    except (StageFailure, OSError, ValueError) as e:
        rep.check("%s: checkpoint-%d loads" % (name, STEPS), False, str(e))
        return
    wmodel, wmdt, wopt, wodt, wst, wcfg = want_ck
    problems = []
    if sorted(model) != sorted(wmodel) or sorted(opt) != sorted(wopt):
        problems.append("tensor names differ: %s" % sorted((set(model) ^ set(wmodel)) | (set(opt) ^ set(wopt)))[:6])
    for n in set(model) & set(wmodel):
        if model[n].shape != wmodel[n].shape or mdt[n] != wmdt[n]:
            problems.append("%s %s %s vs %s %s" % (n, mdt[n], model[n].shape, wmdt[n], wmodel[n].shape))
    for n in set(opt) & set(wopt):
        if opt[n].shape != wopt[n].shape or odt[n] != wodt[n]:
            problems.append("%s %s %s vs %s %s" % (n, odt[n], opt[n].shape, wodt[n], wopt[n].shape))
    if st != wst:
        problems.append("trainer_state %s vs %s" % (st, wst))
    if cfg != wcfg:
        problems.append("config.json differs")
    if not rep.check("%s: checkpoint-%d names, dtypes, shapes, trainer_state, config equal dp1's"
                     % (name, STEPS), not problems, "; ".join(problems[:6])):
        return
    trtol = getattr(rep, "tensor_rtol", rep.rtol)  # a caller may state a separate one
    if trtol != rep.rtol:
        # With a looser per-tensor bound, the model as a whole still meets rtol.
        num = sum(float(np.sum((got_t.astype(np.float64) - wmodel[n].astype(np.float64)) ** 2))
                  for n, got_t in model.items())
        den = sum(float(np.sum(w.astype(np.float64) ** 2)) for w in wmodel.values())
        whole = (num / den) ** 0.5 if den else float("inf")
        rep.check("%s: checkpoint-%d params as a whole vs dp1 (rel err norm <= %g)" % (name, STEPS, rep.rtol),
                  whole <= rep.rtol, "%.2e" % whole)
    for label, got, want in (("params", model, wmodel), ("moments", opt, wopt)):
        errs = common.ranked_rel_errs(got, want, want)
        rep.check("%s: checkpoint-%d %s vs dp1 (every tensor rel err norm <= %g)" % (name, STEPS, label, trtol),
                  errs[0][0] <= trtol,
                  "%d tensors, worst %s %.2e, 2nd %s %.2e" % (len(errs), errs[0][1], errs[0][0],
                                                              errs[1][1], errs[1][0]))


def equality_case(case, root, rep):
    name = case["name"]
    cfg = dict(BASE)
    cfg.update(case["cfg"])
    dims = ref.LlamaDims(cfg)
    workdir = os.path.join(root, name)
    os.makedirs(workdir)
    params0 = ref.random_params(dims, seed=case["seed"], std=0.1, norm_std=0.1)
    weights = os.path.join(workdir, "w0.safetensors")
    ref.write_safetensors(weights, params0, metadata={"format": "pt"})
    rows = make_rows(dims.vocab, 100 + case["seed"])
    data = os.path.join(workdir, "data.arrow")
    write_data(data, rows)
    batches = build_batches(rows, STEPS)

    # ---- the data splits unevenly across ranks
    kept2 = [kept_per_rank(lab, 2) for _, lab in batches]
    kept4 = [kept_per_rank(lab, 4) for _, lab in batches]
    n2 = sum(1 for k in kept2 if len(set(k)) > 1)
    n4 = sum(1 for k in kept4 if len(set(k)) > 1)
    rep.info("%s: kept targets per rank, dp2 %s; dp4 %s" % (name, kept2, kept4))
    rep.check("%s/data: ranks hold different numbers of kept targets in most steps (dp2 and dp4)" % name,
              n2 >= 8 and n4 >= 8 and any(0 in k for k in kept2),
              "dp2 uneven in %d/%d steps, dp4 in %d/%d, a dp2 rank with no target: %s"
              % (n2, STEPS, n4, STEPS, any(0 in k for k in kept2)))

    # ---- oracle: global vs local normalisation are told apart at step 1
    ids, labels = batches[0]
    glob = ref.reference_loss(dims, params0, ids, labels, torch.float64)
    halves = [ref.reference_loss(dims, params0, ids[r * 2:(r + 1) * 2], labels[r * 2:(r + 1) * 2], torch.float64)
              for r in range(2)]
    moved = scalar_rel(float(np.mean(halves)), glob)
    rep.check("%s/oracle: mean of per-rank mean losses differs from the global loss by > 10*rtol at step 1"
              % name, moved > 10 * rep.rtol, "global %.7f, rank means %s, rel %.1e"
              % (glob, ["%.7f" % h for h in halves], moved))

    # ---- apc import + plans
    try:
        common.import_llama3(cfg, workdir, BATCH, SEQ)
        for n in (1, 2, 4):
            out, err = common.apc_compile("m.mlir", "plan%d.fb" % n, workdir, cluster="cpu:%d" % n)
            if "dp=%d," % n not in out + err:
                raise StageFailure("apc compile --cluster cpu:%d did not report dp=%d: %s" % (n, n, out + err))
    except StageFailure as e:
        rep.check("%s: apc import + compile" % name, False, str(e))
        return

    # ---- dp1 reference
    def flags(plan, run):
        return aprun_flags(plan, data, weights, os.path.join(workdir, run + ".jsonl"), os.path.join(workdir, run))
    env = plain_env()
    try:
        run_tool("aprun", flags("plan1.fb", "dp1"), workdir, env=env, timeout=120)
        want_metrics = read_metrics(os.path.join(workdir, "dp1.jsonl"))
        if [m.get("step") for m in want_metrics] != list(range(1, STEPS + 1)):
            raise StageFailure("dp1 metrics steps %s" % [m.get("step") for m in want_metrics])
        want_ck = load_checkpoint(os.path.join(workdir, "dp1", "checkpoint-%d" % STEPS))
    except (StageFailure, OSError, ValueError) as e:
        rep.check("%s/dp1: reference run" % name, False, str(e))
        return
    l1 = float(want_metrics[0]["loss"])
    rep.check("%s/dp1: step-1 loss equals torch's global-batch loss (the batches are rebuilt right)" % name,
              scalar_rel(l1, glob) <= rep.rtol, "aprun %.9g torch f64 %.9g rel %.1e" % (l1, glob, scalar_rel(l1, glob)))

    # ---- dp2 via --nproc 2
    try:
        run_tool("aprun", ["--nproc", "2", "--comm-timeout", "60"] + flags("plan2.fb", "dp2"), workdir,
                 env=env, timeout=120)
        compare_run(name, "dp2", workdir, want_metrics, want_ck, rep)
    except StageFailure as e:
        rep.check("%s/dp2: aprun --nproc 2" % name, False, str(e))

    # ---- dp2 launched by hand, torchrun-style
    try:
        res = run_torchrun_style(workdir, "dp2-torch", flags("plan2.fb", "dp2-torch") + ["--comm-timeout", "60"],
                                 2, timeout=120)
        rcs = [r[0] for r in res]
        if rep.check("%s/dp2-torch: both hand-launched ranks exit 0" % name, rcs == [0, 0],
                     "exit codes %s; stderr: %s" % (rcs, " | ".join(r[2].strip()[-600:] for r in res))):
            progress1 = [ln for ln in res[1][1].splitlines() if ln.startswith("step ")]
            rep.check("%s/dp2-torch: rank 1 prints no progress lines" % name, not progress1,
                      "%d lines, e.g. %r" % (len(progress1), progress1[0]) if progress1 else "")
            compare_run(name, "dp2-torch", workdir, want_metrics, want_ck, rep)
    except StageFailure as e:
        rep.check("%s/dp2-torch: torchrun-style launch" % name, False, str(e))

    # ---- dp4 via --nproc 4 (one row per rank)
    try:
        run_tool("aprun", ["--nproc", "4", "--comm-timeout", "60"] + flags("plan4.fb", "dp4"), workdir,
                 env=env, timeout=120)
        compare_run(name, "dp4", workdir, want_metrics, want_ck, rep)
    except StageFailure as e:
        rep.check("%s/dp4: aprun --nproc 4" % name, False, str(e))


# ------------------------------------------------------------------------------ 2. dead ranks


def checkpoint_problems(save_dir):
    """(problems, summary) for the checkpoints left in save_dir after a failed run."""
    names = sorted(os.listdir(save_dir)) if os.path.isdir(save_dir) else []
    cks = common.checkpoint_folders(save_dir) if names else {}
    problems = ["unexpected entry %s" % n for n in names
                if not re.fullmatch(r"checkpoint-\d+", n) and not n.startswith(".checkpoint-")]
    for step, folder in sorted(cks.items()):
        if step % KILL_SAVE_EVERY != 0:
            problems.append("checkpoint-%d is not a multiple of --save-every %d (a checkpoint of the failure?)"
                            % (step, KILL_SAVE_EVERY))
        try:
            model, _, opt, _, st, _ = load_checkpoint(folder)
            if st.get("step") != step:
                problems.append("checkpoint-%d: trainer_state step %s" % (step, st.get("step")))
            if not model or len(opt) != 2 * len(model):
                problems.append("checkpoint-%d: %d model, %d optimizer tensors" % (step, len(model), len(opt)))
        except (StageFailure, OSError, ValueError) as e:
            problems.append("checkpoint-%d: %s" % (step, e))
    if KILL_STEPS in cks:
        problems.append("checkpoint-%d (the final one) exists" % KILL_STEPS)
    tmp = [n for n in names if n.startswith(".checkpoint-")]
    return problems, "checkpoints %s, temporary folders %s" % (sorted(cks), tmp)


def wait_for(cond, timeout, procs):
    """Polls cond() until true; False on timeout or if a process in `procs` ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        if any(p.poll() is not None for p in procs):
            return cond()
        time.sleep(0.02)
    return False


def kill_via_launcher(root, plan, data, weights, victim, rep):
    name = "nproc-kill-r%d" % victim
    save = os.path.join(root, name)
    metrics = os.path.join(root, name + ".jsonl")
    args = ["--nproc", "2", "--comm-timeout", "60"] + aprun_flags(
        plan, data, weights, metrics, save, steps=KILL_STEPS, extra=["--save-every", str(KILL_SAVE_EVERY)])
    p = spawn("aprun", args, root, plain_env(), os.path.join(root, name))
    try:
        first = os.path.join(save, "checkpoint-%d" % KILL_SAVE_EVERY)
        if not wait_for(lambda: os.path.isdir(first), 60, [p]):
            out, err = logs(p)
            raise StageFailure("%s: no checkpoint-%d within 60 s (launcher %s)\n%s"
                               % (name, KILL_SAVE_EVERY, "exit %s" % p.poll(), err[-1500:]))
        ranks = {}

        def both_ranks():
            ranks.update(children_ranks(p.pid))
            return len(ranks) == 2
        wait_for(both_ranks, 10, [p])
        if sorted(ranks) != [0, 1]:
            raise StageFailure("%s: launcher children by RANK: %s" % (name, ranks))
        step_at_kill = count_lines(metrics)
        os.kill(ranks[victim], signal.SIGKILL)
        rc, waited = wait_exit(p, LAUNCHER_DEADLINE)
        out, err = logs(p)
        rep.info("%s: killed rank %d (pid %d) after ~%d steps; launcher exit %s after %.2fs"
                 % (name, victim, ranks[victim], step_at_kill, rc, waited))
        rep.check("%s: launcher exits non-zero within %gs" % (name, LAUNCHER_DEADLINE), rc not in (None, 0),
                  "exit %s after %.2fs" % (rc, waited))
        lines = [ln for ln in err.splitlines() if ln.startswith("aprun:")]
        rep.check("%s: the launcher's message names rank %d" % (name, victim),
                  any(re.search(r"\brank %d\b" % victim, ln) for ln in lines),
                  " | ".join(lines)[:400] or err[-400:])
        others = [pid for r, pid in ranks.items() if r != victim and os.path.exists("/proc/%d" % pid)]
        zombie_free = []
        for pid in others:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().split(")")[-1].split()[0] != "Z":
                        zombie_free.append(pid)
            except OSError:
                pass
        rep.check("%s: the surviving rank is gone too" % name, not zombie_free, "still running: %s" % zombie_free)
        problems, summary = checkpoint_problems(save)
        rep.check("%s: no half checkpoint (every checkpoint-N whole, none of the failure)" % name,
                  not problems, "; ".join(problems[:4]) or summary)
    finally:
        kill_group(p)


def kill_torchrun_style(root, plan, data, weights, sig, rep):
    name = "torch-%s-r1" % ("kill" if sig == signal.SIGKILL else "stop")
    save = os.path.join(root, name)
    metrics = os.path.join(root, name + ".jsonl")
    args = aprun_flags(plan, data, weights, metrics, save, steps=KILL_STEPS,
                       extra=["--save-every", str(KILL_SAVE_EVERY), "--comm-timeout", str(COMM_TIMEOUT)])
    port, token = free_port(), uuid.uuid4().hex
    procs = [spawn("aprun", args, root, torchrun_env(r, 2, port, token), os.path.join(root, "%s.rank%d" % (name, r)))
             for r in range(2)]
    try:
        first = os.path.join(save, "checkpoint-%d" % KILL_SAVE_EVERY)
        if not wait_for(lambda: os.path.isdir(first), 60, procs):
            raise StageFailure("%s: no checkpoint-%d within 60 s (exits %s)\n%s"
                               % (name, KILL_SAVE_EVERY, [q.poll() for q in procs], logs(procs[0])[1][-1500:]))
        os.kill(procs[1].pid, sig)
        deadline = COMM_TIMEOUT + COMM_MARGIN
        rc, waited = wait_exit(procs[0], deadline)
        out, err = logs(procs[0])
        rep.info("%s: sent %s to rank 1 after ~%d steps; rank 0 exit %s after %.2fs"
                 % (name, signal.Signals(sig).name, count_lines(metrics), rc, waited))
        rep.check("%s: rank 0 exits non-zero within --comm-timeout %d + %gs" % (name, COMM_TIMEOUT, COMM_MARGIN),
                  rc not in (None, 0), "exit %s after %.2fs" % (rc, waited))
        msg = [ln for ln in err.splitlines() if ln.strip()]
        pattern = r"\brank 1\b|stopped answering|not answer|timed? ?out|connection|closed|lost"
        rep.check("%s: rank 0's error names rank 1 or a lost/silent peer" % name,
                  any(re.search(pattern, ln, re.I) for ln in msg), " | ".join(msg[-3:])[:500])
        problems, summary = checkpoint_problems(save)
        rep.check("%s: no half checkpoint (every checkpoint-N whole, none of the failure)" % name,
                  not problems, "; ".join(problems[:4]) or summary)
    finally:
        for q in procs:
            kill_group(q)


def kill_checks(root, rep):
    workdir = os.path.join(root, "kill")
    os.makedirs(workdir)
    dims = ref.LlamaDims(BASE)
    weights = os.path.join(workdir, "w0.safetensors")
    ref.write_safetensors(weights, ref.random_params(dims, seed=3), metadata={"format": "pt"})
    data = os.path.join(workdir, "data.arrow")
    write_data(data, make_rows(dims.vocab, 3))
    try:
        common.import_llama3(BASE, workdir, BATCH, SEQ)
        common.apc_compile("m.mlir", "plan2.fb", workdir, cluster="cpu:2")
    except StageFailure as e:
        rep.check("kill: apc import + compile", False, str(e))
        return
    plan = os.path.join(workdir, "plan2.fb")
    for victim in (1, 0):
        try:
            kill_via_launcher(workdir, plan, data, weights, victim, rep)
        except StageFailure as e:
            rep.check("nproc-kill-r%d" % victim, False, str(e))
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        try:
            kill_torchrun_style(workdir, plan, data, weights, sig, rep)
        except StageFailure as e:
            rep.check("torch-%s-r1" % ("kill" if sig == signal.SIGKILL else "stop"), False, str(e))


# ------------------------------------------------------------------------------ 3. refusals


# (cluster, plan, model, [regexes the message must match]); model "m96" has vocab 96 so that
# tp=2 is feasible and the refusal is about the field named.
REFUSALS = [
    ("cpu:4", "pp=4", "m96", [r"'pp'", r"exceeds the 2 layers"]),
    ("cpu:2", "dp=2,mb=3", "m96", [r"'mb'", r"per-replica batch \(2\)"]),
    ("cpu:2", "pp=2,stages=2+0", "m96", [r"'stages'", r"at least one layer"]),
    ("cpu:2", "pp=2,stages=2", "m96", [r"'stages'", r"2 layers in all"]),
    ("cpu:2", "tp=2", "m", [r"'tp'", r"vocabulary \(97\)"]),
    ("cpu:2", "zero=1,tp=2", "m96", [r"'zero'", r"dp > 1"]),
    ("cpu:2", "dp=2,zero=4", "m96", [r"'zero'", r"0, 1, 2 or 3"]),
    ("cpu:4", "dp=2", "m", [r"dp=2", r"\b4 devices", r"cpu:4"]),
    ("cpu:2", "dp=1", "m", [r"dp=1", r"\b2 devices"]),
    ("cpu:2", "dp=4", "m", [r"dp=4", r"\b2 devices"]),
    ("cpu:3", "dp=3", "m", [r"'dp'", r"batch \(4\)"]),
    ("cpu:8", "dp=8", "m", [r"'dp'", r"batch"]),
    ("cpu:3", "tp=3", "m", [r"'tp'", r"heads"]),
    ("cpu:3", "tp=3", "m96", [r"'tp'", r"heads"]),
    ("cpu:2", "dp=2,sp=on", "m", [r"'sp'", r"tp"]),
    ("cpu:2", "dp2", "m", [r"dp2", r"key=value"]),
    ("cpu:2", "dp=two", "m", [r"'dp'", r"two"]),
    ("cpu:2", "dp=0", "m", [r"'dp'"]),
    ("cpu:2", "dp=-2", "m", [r"'dp'"]),
    ("cpu:2", "dp=2.5", "m", [r"'dp'"]),
    ("cpu:2", "foo=2", "m", [r"'foo'"]),
    ("cpu:2", "dp=2,", "m", [r"key=value"]),
    ("cpu:2", '{"dp": 2', "m", [r"JSON"]),
    ("cpu:2", '{"dq": 2}', "m", [r"'dq'"]),
    ("cpu:2", '{"dp": 2.5}', "m", [r"'dp'"]),
]


def refusal_checks(root, rep):
    workdir = os.path.join(root, "refusals")
    os.makedirs(workdir)
    try:
        for tag, vocab in (("m", 97), ("m96", 96)):
            common.import_llama3(dict(BASE, vocab_size=vocab), workdir, BATCH, SEQ, out=tag + ".mlir",
                                 config_name=tag + ".json", indent=None)
    except StageFailure as e:
        rep.check("refusals: apc import", False, str(e))
        return
    for cluster, plan, model, pats in REFUSALS:
        out_path = os.path.join(workdir, "refused.fb")
        if os.path.exists(out_path):
            os.remove(out_path)
        args = ["compile", model + ".mlir", "--cluster", cluster, "--precision", "fp32", "-o", out_path]
        if plan is not None:
            args += ["--plan", plan]
        label = "refusal: %s --cluster %s %s" % (model, cluster, "--plan '%s'" % plan if plan is not None else "(default plan)")
        try:
            rc, out, err = run_cmd("apc", args, workdir, timeout=60)
        except StageFailure as e:
            rep.check(label, False, str(e))
            continue
        msg = " | ".join(ln for ln in (err + out).splitlines() if ln.strip())
        missing = [p for p in pats if not re.search(p, msg)]
        rep.check(label + " -> exit 2, message names it", rc == 2 and not missing and not os.path.exists(out_path),
                  "exit %d%s; %s" % (rc, "; wrote a plan" if os.path.exists(out_path) else "",
                                     ("missing %s in: " % missing if missing else "") + msg[:300]))
    # Accepted forms: the JSON plan and the key=value plan give the same bytes; a search with
    # every field fixed gives the same plan (its dump equal but for the search's own line,
    # the record of how it was chosen).
    blobs = {}
    for tag, plan in (("auto", "auto,dp=2,zero=0,mb=1,recompute=none"), ("kv", "dp=2"),
                      ("json", '{"dp": 2}')):
        path = os.path.join(workdir, "accepted-%s.fb" % tag)
        args = ["compile", "m.mlir", "--cluster", "cpu:2", "--precision", "fp32", "-o", path]
        if plan is not None:
            args += ["--plan", plan]
        try:
            rc, out, err = run_cmd("apc", args, workdir, timeout=60)
        except StageFailure as e:
            rc, out, err = -1, "", str(e)
        rep.check("accepted: --cluster cpu:2 %s" % ("--plan '%s'" % plan if plan else "(default plan)"),
                  rc == 0 and os.path.exists(path) and "dp=2," in out + err, "exit %d: %s" % (rc, (out + err).strip()[:300]))
        if os.path.exists(path):
            with open(path, "rb") as f:
                blobs[tag] = f.read()
    rep.check("accepted: '{\"dp\": 2}' and 'dp=2' are byte-identical",
              "kv" in blobs and "json" in blobs and blobs["kv"] == blobs["json"], "%d plans" % len(blobs))
    if "kv" in blobs and "auto" in blobs:
        dumps = {}
        for tag in ("kv", "auto"):
            _, out, _ = run_cmd("aprun", ["--dump", os.path.join(workdir, "accepted-%s.fb" % tag)], workdir)
            dumps[tag] = [ln for ln in out.splitlines() if not ln.startswith("search:")]
        rep.check("accepted: a search with every field fixed compiles the same plan as 'dp=2'",
                  dumps["kv"] == dumps["auto"] and blobs["kv"] != blobs["auto"],
                  "dumps %s" % ("equal" if dumps["kv"] == dumps["auto"] else "differ"))

    # aprun refuses a device-count mismatch and a multi-rank job without a token.
    if "kv" not in blobs:
        return
    plan2 = os.path.join(workdir, "accepted-kv.fb")
    data = os.path.join(workdir, "data.arrow")
    write_data(data, make_rows(97, 5))
    base = [plan2, "--data", data, "--steps", "1", "--threads", "1", "--quiet", "--comm-timeout", "20"]
    # A launcher that starts 1 process for the dp=2 plan (torchrun with WORLD_SIZE 1);
    # without any launcher aprun would start the 2 ranks itself (refusals.test).
    one = torchrun_env(0, 1, free_port(), "x")
    cases = [
        ("aprun dp2 plan as 1 process", base, one, [r"2 devices", r"1 process"]),
        ("aprun dp2 plan with --nproc 4", ["--nproc", "4"] + base, plain_env(), [r"the plan is for 2 devices", r"--nproc starts 4 \(give --nproc 2\)"]),
    ]
    env = torchrun_env(0, 2, free_port(), "x")
    del env["APC_JOB_TOKEN"]
    cases.append(("aprun rank 0 of 2 without APC_JOB_TOKEN", base, env, [r"APC_JOB_TOKEN"]))
    for label, args, env, pats in cases:
        try:
            rc, out, err = run_cmd("aprun", args, workdir, timeout=60, env=env)
        except StageFailure as e:
            rep.check(label, False, str(e))
            continue
        msg = " | ".join(ln for ln in (err + out).splitlines() if ln.strip())
        missing = [p for p in pats if not re.search(p, msg)]
        rep.check("%s -> refused" % label, rc not in (0, None) and not missing,
                  "exit %d; %s" % (rc, ("missing %s in: " % missing if missing else "") + msg[:300]))


# ------------------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=["equality", "kill", "refusals"])
    ap.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rep = common.Report()
    rep.rtol = args.rtol
    start = time.time()
    with common.temp_root("apc-dp-e2e-", args.keep) as root:
        parts = [("equality", lambda: [equality_case(c, root, rep) for c in CASES]),
                 ("kill", lambda: kill_checks(root, rep)),
                 ("refusals", lambda: refusal_checks(root, rep))]
        try:
            for part, fn in parts:
                if args.only and part not in args.only:
                    continue
                t0 = time.time()
                try:
                    rep.guard(part, fn)  # oracle/IO bugs are failures too, with context
                finally:
                    kill_all()
                rep.info("%s took %.1fs" % (part, time.time() - t0))
        finally:
            kill_all()
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
