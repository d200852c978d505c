#!/usr/bin/env python3
"""End-to-end check: pipeline parallelism and gradient accumulation (`--plan "pp=2,mb=4"`,
composed with dp, tp, sp, ZeRO and recompute) train exactly as one device does.

Cases untied and tied (the tied embedding lives on the first and the last stage): the tiny
Llama 3 of check_sharded_training.py (2 layers) with batch 8, seq 8, from given weights, on
Arrow rows whose lengths differ so that micro-batches and ranks hold different numbers of
padding tokens. Every run is the aprun command of check_data_parallel.py (10 steps, lr 1e-3,
f32) for the plans
    mb4                  mb=4                                  one device, 4 micro-batches
    pp2-mb4              pp=2,mb=4                             aprun --nproc 2
    dp2-pp2              dp=2,pp=2,mb=2                        aprun --nproc 4
    dp2-pp2-zero3        dp=2,pp=2,mb=2,zero=3                 aprun --nproc 4
    tp2-pp2              tp=2,pp=2,mb=4                        aprun --nproc 4
    dp2-tp2-pp2          dp=2,tp=2,pp=2,mb=2,zero=1,sp=on      aprun --nproc 8
    pp2-selective        pp=2,mb=4,recompute=selective         aprun --nproc 2
    pp2-full             pp=2,mb=4,recompute=full              aprun --nproc 2
    pp2-full-first       pp=2,mb=4,recompute=full,recompute_stages=1  (stage 0 only) --nproc 2
Criteria vs the one-device run (dp1), as in check_sharded_training.py: per-step loss and
grad_norm within rtol 1e-5; the final parameters as a whole (whole tensors gathered from the
stages) within a relative error norm of 1e-5; every single tensor of the checkpoint and of the
optimizer state within 3e-5. Why 3e-5 for
tensors: at batch 8 the untied case's layer-0 k_proj gradient nearly cancels over the batch,
and any split of the batch changes its f32 rounding; plain dp=2 (checked at 1e-5 with the
batch of 4 in check_sharded_training.py) differs from one device by 1.5e-5 there, and mb=2
gives the same numbers as dp=2 (the same partial sums). Observed: losses <= 8e-7, tensors
<= 1.8e-5 (that one), all others <= 1.1e-5.
`apc explain` of the dp2-tp2-pp2 plan names the mesh, each stage's layers and ranks and the
send/recv, the pass order its instructions' marks give (1F1B), and its SVG timeline is XML
naming both stages and every forward/backward pass.
Resume under another plan: a dp=2 run's checkpoint-5 resumed under tp=2,pp=2,mb=4 and on one
device gives dp1's losses of steps 6..10 and its final tensors.
bf16 (the default precision): pp=2,mb=4 and dp=2,tp=2,pp=2,mb=2,sp=on train with per-step
losses within 2% of the one-device bf16 run (bf16 rounds differently once the batch is split;
the f32 runs above are the exact check).

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_pipeline_training.py [--only NAME] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import check_data_parallel as dp  # noqa: E402
import check_sharded_training as st  # noqa: E402
from e2e_common import StageFailure, run_tool  # noqa: E402

# Micro-batches of dp=2 x mb=4 need a batch of 8 (the sharded check's batch is 4).
st.configure([
    ("mb4", "mb=4", 1),
    ("pp2-mb4", "pp=2,mb=4", 2),
    ("dp2-pp2", "dp=2,pp=2,mb=2", 4),
    ("dp2-pp2-zero3", "dp=2,pp=2,mb=2,zero=3", 4),
    ("tp2-pp2", "tp=2,pp=2,mb=4", 4),
    ("dp2-tp2-pp2", "dp=2,tp=2,pp=2,mb=2,zero=1,sp=on", 8),
    ("pp2-selective", "pp=2,mb=4,recompute=selective", 2),
    ("pp2-full", "pp=2,mb=4,recompute=full", 2),
    ("pp2-full-first", "pp=2,mb=4,recompute=full,recompute_stages=1", 2),
], batch=8)


def resume_checks(case, root, rep):
    """A dp=2 checkpoint-5 resumed under tp=2,pp=2 and on one device continues as dp1."""
    workdir = os.path.join(root, case["name"])
    data = os.path.join(workdir, "data.arrow")
    weights = os.path.join(workdir, "w0.safetensors")
    env = dp.plain_env()

    def flags(plan, run, extra=()):
        return dp.aprun_flags(plan, data, weights, os.path.join(workdir, run + ".jsonl"),
                              os.path.join(workdir, run), extra=extra)

    want_metrics = common.read_metrics(os.path.join(workdir, "dp1.jsonl"))
    want_ck = common.load_checkpoint(os.path.join(workdir, "dp1", "checkpoint-%d" % st.STEPS))
    try:
        st.compile_plan(workdir, "dp2", "dp=2", 2)
        run_tool("aprun", ["--nproc", "2", "--comm-timeout", "60"] +
                 flags("dp2.fb", "dp2-5", ["--save-every", "5", "--steps", "5"]), workdir, env=env, timeout=180)
        resume = os.path.join(workdir, "dp2-5", "checkpoint-5")
        st.compile_plan(workdir, "tp2-pp2", "tp=2,pp=2,mb=4", 4)
        run_tool("aprun", ["--nproc", "4", "--comm-timeout", "60"] +
                 flags("tp2-pp2.fb", "from-dp2-pp", ["--resume", resume]), workdir, env=env, timeout=180)
        st.compare_resumed("%s/resume dp2 -> tp2-pp2" % case["name"], workdir, "from-dp2-pp",
                           want_metrics, want_ck, rep)
        run_tool("aprun", flags("dp1.fb", "from-dp2-dp1", ["--resume", resume]), workdir, env=env, timeout=120)
        st.compare_resumed("%s/resume dp2 -> dp1" % case["name"], workdir, "from-dp2-dp1",
                           want_metrics, want_ck, rep)
    except (StageFailure, OSError, ValueError) as e:
        rep.check("%s/resume under another plan" % case["name"], False, str(e))


def explain_checks(case, root, rep):
    """apc explain of the 8-rank plan: every stage in words and in the SVG timeline."""
    import xml.etree.ElementTree as ET
    workdir = os.path.join(root, case["name"])
    plan = os.path.join(workdir, "dp2-tp2-pp2.fb")
    svg = os.path.join(workdir, "dp2-tp2-pp2.svg")
    try:
        out, _ = run_tool("apc", ["explain", plan, "--svg", svg], workdir)
        root_el = ET.parse(svg).getroot()
        text = "".join(root_el.itertext())
    except (StageFailure, OSError, ET.ParseError) as e:
        rep.check("%s/explain: apc explain --svg of the dp2-tp2-pp2 plan" % case["name"], False, str(e))
        return
    want = ["mesh        dp 2 x pp 2 x tp 2 = 8 devices", "2 stages, 2 micro-batches, schedule 1f1b",
            "stage 0 (ranks 0-1, 4-5): embedding, layer 0", "stage 1 (ranks 2-3, 6-7): layer 1, norm + LM head + loss",
            "pass order read from each stage's instructions: 1F1B, as drawn", "send               pp"]
    missing = [w for w in want if w not in out]
    rep.check("%s/explain: the text names the mesh, each stage's layers and ranks, send/recv" % case["name"],
              not missing, "missing %s" % missing)
    boxes = [label for label in ("F0", "F1", "B0", "B1") if label not in text]
    rep.check("%s/explain: the SVG is XML and names both stages and every pass" % case["name"],
              "stage 0" in text and "stage 1" in text and not boxes, "missing %s" % boxes)


def bf16_checks(case, root, rep):
    """The default precision: pipelines follow the one-device bf16 run within 2%."""
    dp.bf16_follows_one_device(case["name"], os.path.join(root, case["name"]), rep,
                               [("bf16-dp1", "dp=1", 1), ("bf16-pp2", "pp=2,mb=4", 2),
                                ("bf16-all8", "dp=2,tp=2,pp=2,mb=2,sp=on", 8)])


def main():
    return st.run_suite(__doc__.split("\n")[0], "apc-pipeline-e2e-", [
        ("resume", resume_checks, "resume"),
        ("explain", explain_checks, "dp2-tp2-pp2"),
        ("bf16", bf16_checks, "bf16"),
    ])


if __name__ == "__main__":
    sys.exit(main())
