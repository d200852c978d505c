#!/usr/bin/env python3
"""End-to-end check: interleaved 1F1B (`--plan "pp=2,vp=2,mb=4"`: virtual stages, Megatron's
interleaved schedule) trains exactly as one device does.

Cases untied and tied (the tied embedding on the first chunk of stage 0, the LM head on the
last chunk of stage 1): the tiny Llama 3 of check_sharded_training.py with 4 layers (two
chunks of one layer per stage), batch 8, seq 8, from given weights, on Arrow rows whose
lengths differ so that micro-batches and ranks hold different numbers of padding tokens.
Every run is the aprun command of check_data_parallel.py (10 steps, lr 1e-3, f32) for
    pp2-vp2-mb4          pp=2,vp=2,mb=4                         aprun --nproc 2
    pp2-vp2-mb2          pp=2,vp=2,mb=2 (every forward first)   aprun --nproc 2
    dp2-tp2-pp2-vp2      dp=2,tp=2,pp=2,vp=2,mb=2,zero=1,sp=on  aprun --nproc 8
    pp2-vp2-full         pp=2,vp=2,mb=4,recompute=full          aprun --nproc 2
Criteria vs the one-device run, as check_pipeline_training.py: per-step loss and grad_norm
within rtol 1e-5; the final parameters as a whole within a relative error norm of 1e-5;
every tensor of checkpoint-10 (whole Hugging Face tensors, gathered from the chunks) and of
the optimizer state within 3e-5.
The layout: `aprun --dump` of pp2-vp2-mb4 says "schedule interleaved-1f1b" and lists the
chunks (stage 0: layers 0 and 2; stage 1: layers 1 and 3 with the head).
Resume: pp2-vp2-mb4's checkpoint-5 resumed on one device gives the one-device losses of
steps 6..10 and its final tensors.
bf16 (the default precision): pp=2,vp=2,mb=4 and dp=2,pp=2,vp=2,mb=2,zero=1 train with
per-step losses within 2% of the one-device bf16 run (bf16 rounds differently once the
batch is split; the f32 runs above are the exact check).

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_interleaved_pipeline.py [--only NAME] [--keep]
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
    ("pp2-vp2-mb4", "pp=2,vp=2,mb=4", 2),
    ("pp2-vp2-mb2", "pp=2,vp=2,mb=2", 2),
    ("dp2-tp2-pp2-vp2", "dp=2,tp=2,pp=2,vp=2,mb=2,zero=1,sp=on", 8),
    ("pp2-vp2-full", "pp=2,vp=2,mb=4,recompute=full", 2),
], batch=8, layers=4)


def layout_checks(case, root, rep):
    workdir = os.path.join(root, case["name"])
    out, _ = run_tool("aprun", ["--dump", "pp2-vp2-mb4.fb"], workdir)
    want = ["schedule interleaved-1f1b", "stage 0: embedding, layers 0, 2",
            "stage 1: layers 1, 3, norm, LM head, loss"]
    missing = [w for w in want if w not in out]
    rep.check("%s/layout: aprun --dump names the interleaved schedule and each stage's chunks" % case["name"],
              not missing, "missing %s in:\n%s" % (missing, "\n".join(out.splitlines()[:12])))


def resume_checks(case, root, rep):
    """pp2-vp2-mb4 stopped at step 5 (its checkpoint-5 gathered from both stages' chunks),
    resumed on one device, continues as the one-device run."""
    st.resumed_on_one_device(case, root, rep, "pp2-vp2-mb4.fb", 2, "pp2-vp2-mb4")


def bf16_checks(case, root, rep):
    """The default precision: interleaved pipelines (with ZeRO-1's working copies made once
    per step) follow the one-device bf16 run within 2%, as check_pipeline_training.py's."""
    dp.bf16_follows_one_device(case["name"], os.path.join(root, case["name"]), rep,
                               [("bf16-dp1", "dp=1", 1), ("bf16-pp2-vp2", "pp=2,vp=2,mb=4", 2),
                                ("bf16-dp2-pp2-vp2-zero1", "dp=2,pp=2,vp=2,mb=2,zero=1", 4)])


def main():
    return st.run_suite(__doc__.split("\n")[0], "apc-interleaved-e2e-", [
        ("layout", layout_checks, "pp2-vp2-mb4"),
        ("resume", resume_checks, "pp2-vp2-mb4"),
        ("bf16", bf16_checks, "bf16"),
    ])


if __name__ == "__main__":
    sys.exit(main())
