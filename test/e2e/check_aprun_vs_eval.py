#!/usr/bin/env python3
"""End-to-end check: `aprun` (the training runtime) vs. `apc eval` of the step function vs. torch.

Per case (tiny Llama 3, batch 4, seq 8, in a temp directory):
  apc import llama3 --config config.json --batch 4 --seq-len 8 -o m.mlir
  apc compile m.mlir --cluster cpu:1 --precision fp32 -o plan.fb           (AdamW defaults)
  apc compile m.mlir --cluster cpu:1 --precision fp32 --emit=mlir -o step.mlir [hyper flags]
  aprun plan.fb --data data.arrow --weights w0.safetensors --steps 5 --lr 1e-3 --pad-id 0
        --no-shuffle --threads 2 --quiet --metrics m.jsonl --save ck [run-time hyper flags]
The same 5 batches are rebuilt here in Python from the rows written to data.arrow (rows
truncated to seq 8 or right-padded with the pad id 0; labels = ids with only the padded
positions set to -100, so real tokens equal to 0 are kept; with --no-shuffle batch k of an
epoch is rows [4k, 4k+4), the last partial batch of each epoch is dropped). They drive
  * `apc eval step.mlir` 5 times, chained on its own outputs (step = 1..5, lr = 1e-3), and
  * llama_train_reference.ReferenceTrainer (float32 torch + torch.optim.AdamW), plus a
    float64 twin used only as a noise-floor sanity check of the 1e-5 tolerance.

Cases:
  untied  untied embeddings, llama3 rope scaling, AdamW defaults
  tied    tied embeddings, llama3 rope scaling, AdamW defaults
  clip    untied; plan compiled WITHOUT clipping, `aprun --max-grad-norm 0.5` at run time;
          step.mlir compiled with --max-grad-norm 0.5; torch clip_grad_norm_(0.5)
          (the oracle asserts the norm exceeds 0.5 at every step, so clipping is active)
  hyper   untied; plan compiled with defaults, `aprun --weight-decay 0.1 --beta2 0.95`;
          step.mlir compiled with the same flags; torch AdamW(weight_decay=0.1, betas=(0.9, 0.95))

Per case, `apc eval --make-inputs` from w0.safetensors and data.arrow must write exactly
the step-1 inputs built here; in the untied case, without --weights (--seed 7), apc eval of
what it writes must give aprun's step-1 loss and grad norm (aprun --seed 7, no weights).

Criteria (rtol 1e-5): per step, aprun's metrics loss and grad_norm vs apc eval's and vs
torch's (relative error); metrics lr == 1e-3 and steps 1..5; checkpoint-5 has the four
files, F32 tensors with the plan's names and shapes, trainer_state step 5; every tensor of
checkpoint-5/model.safetensors and optimizer.safetensors vs apc eval's step-5 outputs and
vs torch's: ||aprun - ref|| / ||ref|| <= rtol (worst tensor printed).

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_aprun_vs_eval.py [--case untied ...] [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
import llama_train_reference as tref  # noqa: E402
from e2e_common import CHECKPOINT_FILES, StageFailure, rel_err, scalar_rel  # noqa: E402

BATCH, SEQ = 4, 8
STEPS = 5
LR = 1e-3
PAD_ID = 0

# head_dim 16 (hidden 64 / 4 heads, GQA with 2 kv heads): with rope_theta 1e4 and
# original_max_position_embeddings 32 the 8 frequencies cover the high (unchanged),
# medium (smoothed) and low (divided by factor) regimes of the llama3 scaling.
BASE = common.llama_config(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                           bos_token_id=1, eos_token_id=2, rope_scaling=common.llama3_rope_scaling(32))

# 10 rows, uneven lengths: shorter than SEQ (padding), exactly SEQ, longer (truncation).
# Zeros (== the pad id) inside and at the end of real rows must stay real tokens.
ROW_LENGTHS = [3, 8, 12, 5, 6, 10, 2, 7, 4, 9]
RECORD_BATCH_ROWS = 3  # -> record batches of 3, 3, 3, 1 rows

# compile: flags for `apc compile --emit=mlir` (the step function apc eval runs);
# run: flags for aprun (the plan is always compiled with defaults, no clipping);
# torch: ReferenceTrainer keyword arguments.
CASES = [
    dict(name="untied", cfg=dict(), seed=1, compile=[], run=[], torch={}),
    dict(name="tied", cfg=dict(tie_word_embeddings=True), seed=2, compile=[], run=[], torch={}),
    dict(name="clip", cfg=dict(), seed=5, compile=["--max-grad-norm", "0.5"],
         run=["--max-grad-norm", "0.5"], torch=dict(max_grad_norm=0.5)),
    dict(name="hyper", cfg=dict(), seed=4, compile=["--weight-decay", "0.1", "--beta2", "0.95"],
         run=["--weight-decay", "0.1", "--beta2", "0.95"], torch=dict(weight_decay=0.1, beta2=0.95)),
]


# ------------------------------------------------------------------------------ data


def make_rows(vocab, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for n in ROW_LENGTHS:
        row = rng.integers(1, vocab, size=n)
        rows.append([int(t) for t in row])
    # Real tokens equal to the pad id: at the end of a short row, in the middle of rows, and
    # at position 0; labels must keep them (only positions beyond the row's length are -100).
    rows[0][1] = rows[0][2] = 0       # [x, 0, 0] + 5 pads
    rows[3][0] = 0
    rows[4][5] = 0                    # last real token of a 6-token row
    rows[2][3] = 0                    # inside a truncated row
    rows[2][10] = 0                   # beyond seq: dropped by truncation
    return rows


def write_arrow_stream(path, rows):
    import pyarrow as pa
    common.write_arrow(path, rows, "int32", stream=True, rows_per_batch=RECORD_BATCH_ROWS, sliced=False)
    # Read it back: the file must hold what we meant (several record batches, list<int32>).
    with pa.OSFile(path, "rb") as src:
        reader = pa.ipc.open_stream(src)
        batches = list(reader)
    got = [r for b in batches for r in b.column(0).to_pylist()]
    if got != rows or len(batches) < 2 or batches[0].schema.field(0).type != pa.list_(pa.int32()):
        raise StageFailure("%s does not read back as written" % path)
    return len(batches)


# ------------------------------------------------------------------------------ comparisons


def compare_tensors(got, want, names):
    """Worst ||got - want|| / ||want|| over `names`; returns (worst, detail)."""
    rows = common.ranked_rel_errs(got, want, names)
    worst_err, worst = rows[0]
    diff, idx = common.max_abs_diff(got[worst], want[worst])
    detail = ("%d tensors, worst %s rel %.2e (max |diff| %.3e at %s: ref %.7e aprun %.7e); 2nd %s rel %.2e"
              % (len(rows), worst, worst_err, diff, idx,
                 float(np.asarray(want[worst])[tuple(idx)]), float(np.asarray(got[worst])[tuple(idx)]),
                 rows[1][1] if len(rows) > 1 else "-", rows[1][0] if len(rows) > 1 else 0.0))
    return worst_err, detail


# ------------------------------------------------------------------------------ one case


def check_made_inputs(name, workdir, weights, data, want, rep):
    """`apc eval --make-inputs` from w0 and data.arrow writes exactly the step-1 inputs
    built here: the weights, zero moments, step 1, lr, and the first batch's rows."""
    made = os.path.join(workdir, "made.safetensors")
    try:
        common.run_tool("apc", ["eval", "step.mlir", "--make-inputs", made, "--weights", weights,
                                "--data", data, "--pad-id", str(PAD_ID), "--lr", repr(LR)], workdir)
        got, dtypes = ref.read_safetensors(made)
    except (StageFailure, OSError, ValueError) as e:
        rep.check("%s: apc eval --make-inputs" % name, False, str(e))
        return
    problems = sorted(set(got) ^ set(want))
    for k in set(got) & set(want):
        g, w = np.asarray(got[k]), np.asarray(want[k])
        if g.shape != w.shape or not np.array_equal(g.astype(np.float64), w.astype(np.float64)):
            problems.append("%s differs (max |diff| %s)" % (k, common.max_abs_diff(g, w)))
    rep.check("%s: apc eval --make-inputs equals the step-1 inputs (weights, zero moments, step 1, "
              "lr, first rows' ids and labels), bit for bit" % name, not problems,
              "%d tensors; %s" % (len(got), "; ".join(problems[:6]) or "all equal"))


def check_seeded_made_inputs(name, workdir, data, rep, rtol):
    """Without --weights, --make-inputs initialises as aprun does with the same seed: apc
    eval of those inputs gives aprun's step-1 loss and gradient norm."""
    made = os.path.join(workdir, "seeded.safetensors")
    metrics_path = os.path.join(workdir, "seeded.jsonl")
    try:
        common.run_tool("aprun", ["plan.fb", "--data", data, "--steps", "1", "--seed", "7",
                                  "--lr", repr(LR), "--pad-id", str(PAD_ID), "--no-shuffle",
                                  "--quiet", "--metrics", metrics_path], workdir)
        common.run_tool("apc", ["eval", "step.mlir", "--make-inputs", made, "--seed", "7",
                                "--data", data, "--pad-id", str(PAD_ID), "--lr", repr(LR)], workdir)
        out = os.path.join(workdir, "seeded_out.safetensors")
        common.run_tool("apc", ["eval", "step.mlir", "--inputs", made, "-o", out], workdir)
        res = ref.read_safetensors(out)[0]
        m = common.read_metrics(metrics_path)[0]
    except (StageFailure, OSError, ValueError, IndexError) as e:
        rep.check("%s: seeded --make-inputs vs aprun" % name, False, str(e))
        return
    rels = [scalar_rel(float(m[k]), float(res[k])) for k in ("loss", "grad_norm")]
    rep.check("%s: seeded --make-inputs (--seed 7) gives aprun's step-1 loss and grad_norm" % name,
              max(rels) <= rtol, "aprun %.9g / %.9g, eval %.9g / %.9g (worst rel %.1e)"
              % (m["loss"], m["grad_norm"], res["loss"], res["grad_norm"], max(rels)))


def run_case(case, root, args, rep):
    name = case["name"]
    cfg = dict(BASE)
    cfg.update(case["cfg"])
    dims = ref.LlamaDims(cfg)
    names = tref.param_names(dims)
    shapes = ref.expected_param_shapes(dims)
    workdir = os.path.join(root, name)
    os.makedirs(workdir)
    rep.info("case %s: tied=%s, compile %s, aprun %s, seed %d"
             % (name, dims.tied, " ".join(case["compile"]) or "-", " ".join(case["run"]) or "-", case["seed"]))

    # ---- inputs: weights, data, the batches aprun must build
    params0 = ref.random_params(dims, seed=case["seed"], std=0.1, norm_std=0.1)
    weights = os.path.join(workdir, "w0.safetensors")
    ref.write_safetensors(weights, params0, metadata={"format": "pt"})
    rows = make_rows(dims.vocab, 100 + case["seed"])
    data = os.path.join(workdir, "data.arrow")
    n_rb = write_arrow_stream(data, rows)
    batches = common.build_batches(rows, STEPS, BATCH, SEQ, PAD_ID)
    kept = [int((lab[:, 1:] != ref.IGNORE_INDEX).sum()) for _, lab, _, _ in batches]
    rep.info("data: %d rows (lengths %s) in %d record batches; steps use (epoch, batch) %s; kept targets %s"
             % (len(rows), ROW_LENGTHS, n_rb, [(e, k) for _, _, e, k in batches], kept))

    # ---- torch oracle (float32) + float64 noise-floor twin
    hyper = dict(tref.ADAMW_DEFAULTS)
    hyper.update({k: v for k, v in case["torch"].items() if k != "max_grad_norm"})
    kw = dict(beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"],
              weight_decay=hyper["weight_decay"], max_grad_norm=case["torch"].get("max_grad_norm"))
    t32 = tref.ReferenceTrainer(dims, params0, dtype=torch.float32, **kw)
    t64 = tref.ReferenceTrainer(dims, params0, dtype=torch.float64, **kw)
    want, want64 = [], []
    for ids, labels, _, _ in batches:
        want.append(t32.step(ids, labels, LR).as_results())
        want64.append(t64.step(ids, labels, LR).as_results())
    floor = 0.0
    for w, w64 in zip(want, want64):
        floor = max([floor] + [scalar_rel(float(w[k]), float(w64[k])) for k in ("loss", "grad_norm")]
                    + [rel_err(w[n], w64[n]) for n in w if n not in ("loss", "grad_norm")])
    rep.check("%s/oracle: torch f32 vs f64 within rtol/4 at every step" % name, floor <= args.rtol / 4,
              "worst rel %.1e" % floor)
    # The data must tell the specified masking apart from masking every id == pad id.
    ids, labels = batches[0][0], batches[0][1]
    by_id = np.where(ids == PAD_ID, ref.IGNORE_INDEX, ids)
    moved = scalar_rel(ref.reference_loss(dims, params0, ids, by_id, torch.float32), float(want[0]["loss"]))
    rep.check("%s/oracle: real pad-id tokens matter (masking them moves the step-1 loss > 10*rtol)" % name,
              moved > 10 * args.rtol, "rel %.1e" % moved)
    if kw["max_grad_norm"] is not None:
        norms = [float(w["grad_norm"]) for w in want]
        rep.check("%s/oracle: clipping active (grad_norm > %g at every step)" % (name, kw["max_grad_norm"]),
                  all(g > kw["max_grad_norm"] for g in norms), " ".join("%.4f" % g for g in norms))

    # ---- apc: import, plan (defaults), step function (compile-time hyper flags)
    try:
        common.import_llama3(cfg, workdir, BATCH, SEQ)
        common.apc_compile("m.mlir", "plan.fb", workdir)
        common.apc_compile("m.mlir", "step.mlir", workdir, emit="mlir", extra=case["compile"])
    except StageFailure as e:
        rep.check("%s: apc import + compile" % name, False, str(e))
        return

    # ---- aprun
    ck = os.path.join(workdir, "ck")
    metrics_path = os.path.join(workdir, "m.jsonl")
    try:
        common.run_tool("aprun", ["plan.fb", "--data", data, "--weights", weights, "--steps", str(STEPS),
                                  "--lr", repr(LR), "--pad-id", str(PAD_ID), "--no-shuffle", "--threads", "2",
                                  "--quiet", "--metrics", metrics_path, "--save", ck] + case["run"], workdir)
    except StageFailure as e:
        rep.check("%s: aprun" % name, False, str(e))
        return
    metrics = common.read_metrics(metrics_path)
    rep.check("%s: metrics has steps 1..%d with lr %g" % (name, STEPS, LR),
              [m.get("step") for m in metrics] == list(range(1, STEPS + 1))
              and all(m.get("lr") == LR for m in metrics),
              "steps %s lrs %s" % ([m.get("step") for m in metrics], sorted({m.get("lr") for m in metrics})))
    if len(metrics) != STEPS:
        return

    # ---- apc eval, chained on its own outputs
    evals = []
    state = {}
    for n in names:
        state[n] = params0[n]
        state["exp_avg." + n] = np.zeros_like(params0[n])
        state["exp_avg_sq." + n] = np.zeros_like(params0[n])
    state_step1 = None
    try:
        for s, (ids, labels, _, _) in enumerate(batches):
            inputs = dict(state)
            inputs["step"] = np.array(s + 1, dtype=np.int64)
            inputs["lr"] = np.array(LR, dtype=np.float32)
            inputs["input_ids"] = ids
            inputs["labels"] = labels
            if s == 0:
                state_step1 = dict(inputs)
            res = common.apc_eval("step.mlir", inputs, workdir, "step%d" % (s + 1))[0]
            missing = [k for k in state if k not in res] + [k for k in ("loss", "grad_norm") if k not in res]
            if missing:
                raise StageFailure("apc eval results lack %s" % ", ".join(missing[:6]))
            evals.append(res)
            state = {k: res[k] for k in state}
    except StageFailure as e:
        rep.check("%s: apc eval" % name, False, str(e))
        return

    # ---- apc eval --make-inputs: the step-1 inputs from the same weights and data
    check_made_inputs(name, workdir, weights, data, state_step1, rep)
    if case["name"] == "untied":
        check_seeded_made_inputs(name, workdir, data, rep, args.rtol)

    # ---- per-step loss and grad_norm
    for s in range(STEPS):
        m = metrics[s]
        for key in ("loss", "grad_norm"):
            got = float(m[key])
            e, t = float(evals[s][key]), float(want[s][key])
            re, rt = scalar_rel(got, e), scalar_rel(got, t)
            rep.check("%s/step%d: %s aprun vs eval, vs torch" % (name, s + 1, key),
                      re <= args.rtol and rt <= args.rtol,
                      "aprun %.9g eval %.9g (rel %.1e) torch %.9g (rel %.1e)" % (got, e, re, t, rt))

    # ---- checkpoint-5
    folder = os.path.join(ck, "checkpoint-%d" % STEPS)
    files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if not rep.check("%s: %s has the four files" % (name, os.path.relpath(folder, workdir)),
                     files == CHECKPOINT_FILES, "found %s" % files):
        return
    try:
        model, mdt, opt, odt, tstate, hf_cfg = common.load_checkpoint(folder)
    except (OSError, ValueError) as e:
        rep.check("%s: checkpoint readable" % name, False, "%s: %s" % (type(e).__name__, e))
        return
    want_opt = ["exp_avg." + n for n in names] + ["exp_avg_sq." + n for n in names]
    problems = []
    if sorted(model) != sorted(names):
        problems.append("model tensors %s, expected %s" % (sorted(set(model) ^ set(names)), "HF names"))
    if sorted(opt) != sorted(want_opt):
        problems.append("optimizer tensors differ: %s" % sorted(set(opt) ^ set(want_opt))[:6])
    for n, v in list(model.items()) + list(opt.items()):
        base = n.split(".", 1)[1] if n.startswith("exp_avg") else n
        if (mdt.get(n) or odt.get(n)) != "F32":
            problems.append("%s is %s" % (n, mdt.get(n) or odt.get(n)))
        if base in shapes and tuple(v.shape) != tuple(shapes[base]):
            problems.append("%s has shape %s" % (n, list(v.shape)))
    if tstate.get("step") != STEPS:
        problems.append("trainer_state step %s" % tstate.get("step"))
    if bool(hf_cfg.get("tie_word_embeddings")) != dims.tied or hf_cfg.get("vocab_size") != dims.vocab:
        problems.append("config.json tie_word_embeddings %s vocab_size %s"
                        % (hf_cfg.get("tie_word_embeddings"), hf_cfg.get("vocab_size")))
    if not rep.check("%s: checkpoint names, dtypes, shapes, trainer_state, config" % name, not problems,
                     "; ".join(problems[:8])):
        return
    got = dict(model)
    got.update(opt)
    worst, detail = compare_tensors(got, evals[-1], names)
    rep.check("%s: checkpoint-%d params vs apc eval" % (name, STEPS), worst <= args.rtol, detail)
    worst, detail = compare_tensors(got, evals[-1], want_opt)
    rep.check("%s: checkpoint-%d moments vs apc eval" % (name, STEPS), worst <= args.rtol, detail)
    worst, detail = compare_tensors(got, want[-1], names)
    rep.check("%s: checkpoint-%d params vs torch" % (name, STEPS), worst <= args.rtol, detail)
    worst, detail = compare_tensors(got, want[-1], want_opt)
    rep.check("%s: checkpoint-%d moments vs torch" % (name, STEPS), worst <= args.rtol, detail)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", action="append", choices=[c["name"] for c in CASES], help="run only these cases")
    ap.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    torch.manual_seed(0)

    rep = common.Report()
    start = time.time()
    with common.temp_root("apc-aprun-e2e-", args.keep) as root:
        for case in CASES:
            if args.case and case["name"] not in args.case:
                continue
            t0 = time.time()
            rep.guard(case["name"], run_case, case, root, args, rep)  # oracle/IO bugs fail too
            rep.info("case %s took %.1fs" % (case["name"], time.time() - t0))
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
