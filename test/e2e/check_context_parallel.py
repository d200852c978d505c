#!/usr/bin/env python3
"""End-to-end check: context parallelism (`--plan "cp=2"`: each device holds two load-balanced
chunks of every sequence, attention all-gathers keys and values) trains exactly as one device.

Cases untied and tied: the tiny Llama 3 of check_sharded_training.py with 4 layers, batch 8,
seq 8 (cut into 2 x cp = 4 chunks of 2 tokens: rank 0 holds chunks 0 and 3, rank 1 chunks 1
and 2), from given weights, on Arrow rows whose lengths differ so that the chunks hold
different numbers of padding tokens. Every run is the aprun command of check_data_parallel.py
(10 steps, lr 1e-3, f32) for
    cp2                  cp=2                           aprun --nproc 2
    dp2-cp2              dp=2,cp=2                      aprun --nproc 4
    cp2-tp2-sp           cp=2,tp=2,sp=on                aprun --nproc 4
    cp2-pp2              cp=2,pp=2,mb=2                 aprun --nproc 4
    dp2-cp2-tp2-zero1    dp=2,cp=2,tp=2,zero=1          aprun --nproc 8
    cp2-full             cp=2,recompute=full            aprun --nproc 2
Criteria vs the one-device run, as check_sharded_training.py: per-step loss and grad_norm
within rtol 1e-5; every tensor of checkpoint-10 (whole Hugging Face tensors) and of the
optimizer state within 3e-5.
The layout: `aprun --dump` of cp2 shows the mesh [dp=1, cp=2] and balanced gathers.
Resume: a checkpoint-5 written under cp=2,pp=2,vp=2,mb=2 (8 ranks would be cp2 x pp2; 4
ranks) resumed on one device gives the one-device losses of steps 6..10 and its tensors.
bf16 (the default precision): cp=2 and dp=2,cp=2 follow the one-device bf16 run within 2%.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_context_parallel.py [--only NAME] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_data_parallel as dp  # noqa: E402
import check_sharded_training as st  # noqa: E402
from e2e_common import run_tool  # noqa: E402

st.configure([
    ("cp2", "cp=2", 2),
    ("dp2-cp2", "dp=2,cp=2", 4),
    ("cp2-tp2-sp", "cp=2,tp=2,sp=on", 4),
    ("cp2-pp2", "cp=2,pp=2,mb=2", 4),
    ("dp2-cp2-tp2-zero1", "dp=2,cp=2,tp=2,zero=1", 8),
    ("cp2-full", "cp=2,recompute=full", 2),
], batch=8, layers=4)


def layout_checks(case, root, rep):
    workdir = os.path.join(root, case["name"])
    out, _ = run_tool("aprun", ["--dump", "cp2.fb"], workdir)
    want = ["mesh: dp 1 x cp 2", "all_gather(", "balanced=true", "seq_shard_axis=1"]
    missing = [w for w in want if w not in out]
    rep.check("%s/layout: aprun --dump shows the cp axis and its balanced collectives" % case["name"],
              not missing, "missing %s in:\n%s" % (missing, "\n".join(out.splitlines()[:40])))


def resume_checks(case, root, rep):
    """A cp=2,pp=2,vp=2 run stopped at step 5 (its checkpoint-5 gathered from the stages'
    chunks), resumed on one device, continues as the one-device run."""
    st.compile_plan(os.path.join(root, case["name"]), "cp2-pp2-vp2", "cp=2,pp=2,vp=2,mb=2", 4)
    st.resumed_on_one_device(case, root, rep, "cp2-pp2-vp2.fb", 4, "cp2-pp2-vp2")


def bf16_checks(case, root, rep):
    """The default precision: context-parallel runs follow the one-device bf16 run within 2%."""
    dp.bf16_follows_one_device(case["name"], os.path.join(root, case["name"]), rep,
                               [("bf16-dp1", "dp=1", 1), ("bf16-cp2", "cp=2", 2),
                                ("bf16-dp2-cp2", "dp=2,cp=2", 4)])


def main():
    return st.run_suite(__doc__.split("\n")[0], "apc-context-parallel-e2e-", [
        ("layout", layout_checks, "cp2"),
        ("resume", resume_checks, "resume"),
        ("bf16", bf16_checks, "bf16"),
    ])


if __name__ == "__main__":
    sys.exit(main())
