#!/usr/bin/env python3
"""End-to-end check of the README's main command, tools/run.sh, on its default config.

Runs tools/run.sh itself (import the tiny Llama 3 -> apc-opt -> compile -> apc data sample
-> aprun) with the binaries of this build (APC_RUN_SKIP_BUILD=1: no setup, no build),
STEPS steps into a temporary OUT_DIR, and checks:
  exit          run.sh exits 0 and prints its "(going down)" verdict;
  outputs       OUT_DIR holds llama3.mlir, plan.fb, sample.arrow, metrics.jsonl and
                checkpoints/checkpoint-STEPS with the four checkpoint files;
  metrics       metrics.jsonl has one finite loss per step, 1..STEPS;
  loss          read independently of run.sh: the mean of the last 5 steps is at least
                0.1 below the mean of the first 5;
  relative      a config path and OUT_DIR relative to where run.sh starts are read and
                written there (the script itself works from the repository root).

apc binaries: $APC_BIN_DIR/{apc,apc-opt,aprun} (default: build/bin of this checkout).
Run: python3 test/e2e/check_run_sh.py [--steps N] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import e2e_common as ec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_checks(root, steps, rep):
    out = os.path.join(root, "run")
    env = dict(os.environ, STEPS=str(steps), OUT_DIR=out, APC_RUN_SKIP_BUILD="1",
               APC_BIN_DIR=os.path.dirname(ec.bin_path("aprun")))
    for tool in ("apc", "apc-opt", "aprun"):
        ec.wait_for_binary(ec.bin_path(tool))
    p = subprocess.run(["bash", os.path.join(REPO, "tools", "run.sh")], cwd=root, env=env,
                       capture_output=True, text=True, timeout=240)
    tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
    rep.check("exit: run.sh exits 0", p.returncode == 0, "rc %d; %s" % (p.returncode, " | ".join(tail)))
    rep.check("exit: run.sh says the loss is going down", "(going down)" in p.stdout, " | ".join(tail))

    ckpt = os.path.join(out, "checkpoints", "checkpoint-%d" % steps)
    missing = [f for f in ("llama3.mlir", "plan.fb", "sample.arrow", "metrics.jsonl")
               if not os.path.isfile(os.path.join(out, f))]
    missing += [os.path.join("checkpoints", "checkpoint-%d" % steps, f) for f in ec.CHECKPOINT_FILES
                if not os.path.isfile(os.path.join(ckpt, f))]
    rep.check("outputs: all files written", not missing, "missing %s" % missing if missing else "")

    metrics = os.path.join(out, "metrics.jsonl")
    if not os.path.isfile(metrics):
        raise ec.StageFailure("no metrics.jsonl")
    rows = [json.loads(line) for line in open(metrics) if line.strip()]
    losses = [r["loss"] for r in rows]
    rep.check("metrics: one finite loss per step",
              [r.get("step") for r in rows] == list(range(1, steps + 1))
              and all(math.isfinite(x) for x in losses),
              "%d rows, steps %s" % (len(rows), [r.get("step") for r in rows][:3]))
    k = 5
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    rep.check("loss: last %d steps at least 0.1 below the first %d" % (k, k), last < first - 0.1,
              "%.4f -> %.4f" % (first, last))


def relative_paths(root, rep):
    """A config path and OUT_DIR relative to where run.sh is started (it works from the
    repository root) are the caller's, as a newcomer types them."""
    os.makedirs(os.path.join(root, "configs"))
    with open(os.path.join(REPO, "frontends", "llama3", "configs", "tiny.json")) as f:
        config = f.read()
    with open(os.path.join(root, "configs", "mine.json"), "w") as f:
        f.write(config)
    env = dict(os.environ, STEPS="2", OUT_DIR="rel-out", APC_RUN_SKIP_BUILD="1",
               APC_BIN_DIR=os.path.dirname(ec.bin_path("aprun")))
    p = subprocess.run(["bash", os.path.join(REPO, "tools", "run.sh"), "configs/mine.json"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=240)
    tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
    # Two steps need not lower the loss (run.sh's verdict); the paths are what is checked.
    rep.check("relative: run.sh reads configs/mine.json from where it runs",
              "== apc import: %s" % os.path.join(root, "configs", "mine.json") in p.stdout,
              " | ".join(tail))
    rep.check("relative: run.sh writes OUT_DIR=rel-out where it runs",
              os.path.isfile(os.path.join(root, "rel-out", "plan.fb")), " | ".join(tail))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    rep = ec.Report()
    start = time.time()
    with ec.temp_root("apc-run-sh-e2e-", args.keep) as root:
        rep.guard("run.sh", run_checks, root, args.steps, rep)
        rep.guard("relative", relative_paths, root, rep)
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
