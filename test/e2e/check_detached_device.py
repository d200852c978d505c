#!/usr/bin/env python3
"""End-to-end check: the training loop reaches a device's memory only through the
executor's host views, uploads and downloads (docs/cuda.md), as it must on a GPU.

APC_CPU_DEVICE=detached runs the CPU backend on a device that says it is not
host-accessible: the kernels use its memory, and the loop's host views are separate host
copies. A write the loop forgets to upload (weights, a batch, the step or lr) or a read it
forgets to download (the loss, the gradient norm, the state it saves) makes the run differ
from the ordinary one. So every run here is made twice, ordinary and detached, and must
be identical: per-step loss and grad_norm bit for bit, and the checkpoint files byte for
byte.

Model: the bundled tiny Llama 3 (frontends/llama3/configs/tiny.json), batch 4 x seq 16,
seeded initialisation (no --weights) and with given weights; Arrow rows of 3..40 tokens.
Runs (each `aprun plan.fb --data data.arrow --steps 6 --lr 1e-3 --pad-id 0 --no-shuffle
--threads 1 --quiet --metrics m.jsonl --save ck --save-every 3`):
  dp1            --cluster cpu:1
  dp1-weights    the same with --weights w0.safetensors (the loaded weights are uploaded)
  dp2-zero1      dp=2,zero=1 on cpu:2, aprun --nproc 2 (sharded optimizer state saved)
  pp2            pp=2,mb=2 on cpu:2 (each stage holds its parameters only)
  dp1-resume     dp1 resumed from its checkpoint-3 to step 6 (the loaded state is uploaded)

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_detached_device.py [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import filecmp
import json
import os
import shutil
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
from e2e_common import StageFailure, read_metrics, run_tool  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "frontends", "llama3", "configs")
BATCH, SEQ, STEPS = 4, 16, 6
CHECKPOINT_FILES = ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]

# (run, plan, cluster, processes, extra aprun flags)
RUNS = [
    ("dp1", "dp=1", "cpu:1", 1, []),
    ("dp1-weights", "dp=1", "cpu:1", 1, ["--weights", "w0.safetensors"]),
    ("dp2-zero1", "dp=2,zero=1", "cpu:2", 2, []),
    ("pp2", "pp=2,mb=2", "cpu:2", 2, []),
]


def train(root, run, plan_file, processes, extra, detached, resume=None):
    out = os.path.join(root, "%s-%s" % (run, "detached" if detached else "host"))
    os.makedirs(out, exist_ok=True)
    args = [plan_file, "--data", "data.arrow", "--steps", str(STEPS), "--lr", "1e-3", "--pad-id", "0",
            "--no-shuffle", "--threads", "1", "--quiet", "--metrics", os.path.join(out, "m.jsonl"),
            "--save", os.path.join(out, "ck"), "--save-every", "3"] + extra
    if processes > 1:
        args += ["--nproc", str(processes)]
    if resume:
        args += ["--resume", resume]
    env = dict(os.environ)
    env.pop("APC_CPU_DEVICE", None)
    if detached:
        env["APC_CPU_DEVICE"] = "detached"
    run_tool("aprun", args, root, timeout=300, env=env)
    return out


def compare(rep, run, host, detached):
    mh, md = read_metrics(os.path.join(host, "m.jsonl")), read_metrics(os.path.join(detached, "m.jsonl"))
    key = lambda m: [(x["step"], x["loss"], x["grad_norm"]) for x in m]
    rep.check("%s: loss and grad_norm bit for bit" % run, len(mh) > 0 and key(mh) == key(md),
              "host %s, detached %s" % (key(mh)[-1:], key(md)[-1:]))
    for folder in sorted(os.listdir(os.path.join(host, "ck"))):
        a, b = os.path.join(host, "ck", folder), os.path.join(detached, "ck", folder)
        same = os.path.isdir(b) and all(
            filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)
            for f in CHECKPOINT_FILES if f != "trainer_state.json")
        rep.check("%s: %s byte for byte" % (run, folder), same)


def checks(root, rep):
    cfg = os.path.join(CONFIGS, "tiny.json")
    common.apc_import(cfg, "m.mlir", root, BATCH, SEQ)
    rng = np.random.default_rng(5)
    rows = [list(rng.integers(1, 256, size=int(n))) for n in rng.integers(3, 41, size=40)]
    common.write_arrow(os.path.join(root, "data.arrow"), rows)
    with open(cfg) as f:
        dims = ref.LlamaDims(json.load(f))
    ref.write_safetensors(os.path.join(root, "w0.safetensors"),
                          ref.random_params(dims, seed=3, std=0.1, norm_std=0.1), metadata={"format": "pt"})
    for run, plan, cluster, processes, extra in RUNS:
        plan_file = "%s.fb" % run
        common.apc_compile("m.mlir", plan_file, root, cluster=cluster, extra=["--plan", plan])
        host = train(root, run, plan_file, processes, extra, detached=False)
        detached = train(root, run, plan_file, processes, extra, detached=True)
        compare(rep, run, host, detached)
        if run == "dp1":
            # Resume both from the ordinary run's checkpoint-3: the loaded state must reach
            # the device.
            start = os.path.join(host, "ck", "checkpoint-3")
            resumed = {}
            for d in (False, True):
                src = os.path.join(root, "resume-from-%s" % ("detached" if d else "host"))
                shutil.copytree(start, os.path.join(src, "checkpoint-3"))
                resumed[d] = train(root, "dp1-resume", plan_file, 1, [], detached=d, resume=src)
            compare(rep, "dp1-resume", resumed[False], resumed[True])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    rep = common.Report()
    start = time.time()
    with common.temp_root("apc-detached-e2e-", args.keep) as root:
        rep.guard("detached device", checks, root, rep)
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
