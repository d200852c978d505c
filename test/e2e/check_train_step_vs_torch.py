#!/usr/bin/env python3
"""End-to-end check: APC's compiled training step vs. a plain-PyTorch training step.

Pipeline per case (tiny Llama 3 configs, batch 2, seq 8, in a temp directory):
  apc import llama3 --config config.json --batch 2 --seq-len 8 -o m.mlir
  apc compile m.mlir --cluster cpu:1 --precision fp32|bf16 --emit=mlir -o step.mlir \
      [--max-grad-norm X] [--weight-decay X] [--beta1 X] [--beta2 X] [--eps X]
  apc eval step.mlir --inputs in_k.safetensors -o out_k.safetensors     (k = 1, 2, ...)
in_1 holds the HF-named f32 parameters, zero exp_avg.<name>/exp_avg_sq.<name>, step=1
(I64 []), lr (F32 []), input_ids/labels (I64 [2, 8]). in_{k+1} is APC's own out_k
(new parameters and moments, same names) plus step=k+1, lr and the next batch, so APC's
trajectory is chained on its own outputs (--teacher-force feeds it torch's state instead).

The oracle is llama_train_reference.ReferenceTrainer: float32 leaf parameters, autograd,
torch.nn.utils.clip_grad_norm_, the real torch.optim.AdamW.

Cases:
  a  untied, llama3 rope scaling, lr 1e-3, defaults (wd 0.01, betas 0.9/0.999, eps 1e-8),
     no clipping, 3 steps, a new batch every step (random ids, uneven -100 right padding).
  b  tied embeddings, --max-grad-norm 1.0 (the torch run asserts the norm exceeds it at
     every step, so clipping is active), --weight-decay 0.1, 3 steps.
  d  untied, --beta1 0.8 --beta2 0.95 --eps 1e-6 --weight-decay 0.05, lr changing every
     step (2e-3, 5e-4, 1e-3): covers the remaining flags and lr really being an input.
  c  bf16: 20 steps on one repeated batch, lr 1e-3, compiled with --precision fp32 and
     --precision bf16; see BF16_RTOL below for the tolerance.

fp32 criteria, per step: loss and grad_norm relative error <= --rtol (1e-5); every new
parameter and moment tensor ||apc - torch|| / ||torch|| <= --rtol (the worst tensor, its
max elementwise error and apc's distance to a float64 torch run are printed).
Oracle sanity checks guard the tolerance: a float64 torch run must agree with the float32
one to rtol/4 at every step (so 1e-5 is about precision, not luck: Adam's update
lr*m/(sqrt(v)+eps) is ill-conditioned for elements with |g| ~ eps, and a seed that has such
an element makes two correct float32 implementations differ by ~1e-5; e.g. case d with
seed 5 fails both this check and the apc comparison at 1.4e-5). The seeds below were
picked to pass it; if you change sizes or seeds, pick ones that pass it too.

apc binaries: $APC_BIN_DIR/apc (default: build/bin of this checkout).
Run: /usr/bin/python3 test/e2e/check_train_step_vs_torch.py [--case a ...] [--keep] [--oracle-only]
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
from e2e_common import StageFailure, rel_err, scalar_rel  # noqa: E402

BATCH, SEQ = 2, 8

# head_dim 16 (hidden 32 / 2 heads, GQA with 1 kv head): with rope_theta 1e4 and
# original_max_position_embeddings 32 the 8 frequencies have wavelengths 6.3 (high,
# unchanged), 19.9 (medium, smoothed) and >= 62.8 (low, divided by factor).
BASE = common.llama_config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                           bos_token_id=1, eos_token_id=2)
LLAMA3_SCALING = common.llama3_rope_scaling(32)

# Hyper-parameters: None means "flag not passed" (APC's default must equal torch's).
FP32_CASES = [
    dict(name="a", desc="untied, llama3 rope, lr 1e-3, AdamW defaults, no clipping",
         cfg=dict(rope_scaling=LLAMA3_SCALING), seed=1, lrs=[1e-3] * 3, hyper={}),
    dict(name="b", desc="tied, max-grad-norm 1.0 (clipping active), weight-decay 0.1",
         cfg=dict(tie_word_embeddings=True), seed=4, lrs=[1e-3] * 3,
         hyper=dict(max_grad_norm=1.0, weight_decay=0.1)),
    dict(name="d", desc="untied, beta1 0.8, beta2 0.95, eps 1e-6, weight-decay 0.05, lr varies",
         cfg=dict(), seed=1, lrs=[2e-3, 5e-4, 1e-3],
         hyper=dict(beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.05)),
]

BF16_CASE = dict(name="c", cfg=dict(rope_scaling=LLAMA3_SCALING), seed=2, steps=20, lr=1e-3)
# Tolerance of the bf16 loss curve: |loss_bf16 - loss_fp32| <= BF16_RTOL * loss_fp32 at every step.
# Why 1%: APC's bf16 mode rounds every forward/backward op result to bf16 (unit roundoff
# u = 2^-9 ~ 0.2%; each op is computed exactly and rounded once, like a CPU/GPU bf16 kernel
# with f32 accumulation), keeps f32 master weights/moments, and takes the loss from f32
# logits. One step's loss therefore moves by ~u relative (the loss is a mean over tokens,
# so per-logit errors average out), and 20 Adam steps (normalized updates of ~lr per element,
# ~2% of a 0.1-sized weight in total) add trajectory drift of the same order. A torch
# emulation of exactly these semantics (ReferenceTrainer(compute_dtype=bfloat16)) stays
# within 0.1-0.25% of fp32 over 20 steps on this setup (seeds 1-5), so 1% is 4x the largest
# observed deviation (checked below as an oracle sanity check: emulation <= BF16_RTOL / 2),
# while storing the master weights in bf16 already drifts 1.3-1.7% (also caught directly:
# the returned params must not all be bf16-representable).
# Calibrated on apc itself (reference interpreter, seeds 1-6 of this case): max deviation
# 0.15-0.38% (seed 2, the one used: 0.33%), i.e. >= 2.6x headroom.
BF16_RTOL = 0.01
# Both curves must fall to <= 75% of the first step's loss after 20 steps (torch: ~40-47%).
BF16_MIN_DROP = 0.25


# ------------------------------------------------------------------------------ apc


def compile_flags(hyper):
    flags = []
    for key, flag in (("max_grad_norm", "--max-grad-norm"), ("weight_decay", "--weight-decay"),
                      ("beta1", "--beta1"), ("beta2", "--beta2"), ("eps", "--eps")):
        if hyper.get(key) is not None:
            flags += [flag, repr(float(hyper[key]))]
    return flags


def apc_import(cfg, workdir):
    return common.import_llama3(cfg, workdir, BATCH, SEQ, out=os.path.join(workdir, "m.mlir"))


def apc_compile(mlir, precision, hyper, workdir, out_name):
    """The training step as MLIR (--emit=mlir); it must define @train_step."""
    out = os.path.join(workdir, out_name)
    common.apc_compile(mlir, out, workdir, precision=precision, emit="mlir", extra=compile_flags(hyper))
    with open(out) as f:
        if "@train_step" not in f.read():
            raise StageFailure("%s has no function @train_step" % out)
    return out


# ------------------------------------------------------------------------------ data


def make_batch(rng, vocab):
    """Random ids; labels = ids with uneven right padding (-100), different per row and step."""
    ids = rng.integers(0, vocab, size=(BATCH, SEQ)).astype(np.int64)
    labels = ids.copy()
    pads = rng.choice(np.arange(0, SEQ - 2), size=BATCH, replace=False)  # distinct per row, >= 2 kept targets
    for b, n in enumerate(pads):
        if n:
            labels[b, SEQ - n:] = ref.IGNORE_INDEX
    return ids, labels


def zeros_like_all(params):
    return {n: np.zeros_like(v) for n, v in params.items()}


def split_state(res, names):
    """(params, exp_avg, exp_avg_sq) dicts keyed by parameter name, from train_step results."""
    return ({n: res[n] for n in names}, {n: res["exp_avg." + n] for n in names},
            {n: res["exp_avg_sq." + n] for n in names})


# ------------------------------------------------------------------------------ comparisons


def check_result_layout(res, dts, dims, precision_note=""):
    """Names, dtypes and shapes of apc's results; returns a list of problems."""
    problems = []
    want = tref.train_step_result_names(dims)
    shapes = ref.expected_param_shapes(dims)
    missing = [n for n in want if n not in res]
    extra = sorted(set(res) - set(want))
    if missing:
        problems.append("missing results: %s" % ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
    if extra:
        problems.append("unexpected results: %s%s" % (", ".join(extra[:8]),
                        " (tied embeddings must have no lm_head.weight)" if "lm_head.weight" in extra else ""))
    for n in want:
        if n not in res:
            continue
        if dts[n] != "F32":
            problems.append("%s is %s, expected F32%s" % (n, dts[n], precision_note))
        base = n.split(".", 1)[1] if n.startswith("exp_avg") else n
        exp_shape = () if n in ("loss", "grad_norm") else tuple(shapes[base])
        if tuple(res[n].shape) != exp_shape:
            problems.append("%s has shape %s, expected %s" % (n, list(res[n].shape), list(exp_shape)))
    return problems


def compare_state(res, want, want64):
    """Worst relative error over params + moments. Returns (ok-able worst tuple, detail)."""
    rows = common.ranked_rel_errs(res, want, [n for n in want if n not in ("loss", "grad_norm") and n in res])
    worst_err, worst = rows[0]
    diff, idx = common.max_abs_diff(res[worst], want[worst])
    worst64 = max(rel_err(res[n], want64[n]) for _, n in rows)
    detail = ("%d tensors, worst %s rel %.2e (max |diff| %.3e at %s, torch %.6e apc %.6e); "
              "2nd %s rel %.2e; apc vs torch-f64 worst rel %.2e"
              % (len(rows), worst, worst_err, diff, idx,
                 float(np.asarray(want[worst])[tuple(idx)]), float(np.asarray(res[worst])[tuple(idx)]),
                 rows[1][1] if len(rows) > 1 else "-", rows[1][0] if len(rows) > 1 else 0.0, worst64))
    return worst_err, detail


def oracle_floor(r32, r64):
    """How far a float64 torch run is from the float32 one (the float32 noise floor)."""
    a, b = r32.as_results(), r64.as_results()
    worst = max((rel_err(a[n], b[n]), n) for n in a if n not in ("loss", "grad_norm"))
    return (scalar_rel(r32.loss, r64.loss), scalar_rel(r32.grad_norm, r64.grad_norm), worst)


# ------------------------------------------------------------------------------ fp32 cases


def run_fp32_case(case, root, args, rep):
    name = case["name"]
    cfg = dict(BASE)
    cfg.update(case["cfg"])
    dims = ref.LlamaDims(cfg)
    hyper = dict(tref.ADAMW_DEFAULTS)
    hyper.update({k: v for k, v in case["hyper"].items() if v is not None})
    max_norm = case["hyper"].get("max_grad_norm")
    rep.info("case %s: %s (seed %d, %d steps)" % (name, case["desc"], case["seed"], len(case["lrs"])))

    # ---- torch side: float32 oracle + float64 twin, chained over the steps
    params0 = ref.random_params(dims, seed=case["seed"], std=0.1, norm_std=0.1)
    rng = np.random.default_rng(1000 + case["seed"])
    batches = [make_batch(rng, dims.vocab) for _ in case["lrs"]]
    kw = dict(beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"],
              weight_decay=hyper["weight_decay"], max_grad_norm=max_norm)
    t32 = tref.ReferenceTrainer(dims, params0, dtype=torch.float32, **kw)
    t64 = tref.ReferenceTrainer(dims, params0, dtype=torch.float64, **kw)
    want, want64 = [], []
    for (ids, labels), lr in zip(batches, case["lrs"]):
        want.append(t32.step(ids, labels, lr))
        want64.append(t64.step(ids, labels, lr))

    floors = [oracle_floor(a, b) for a, b in zip(want, want64)]
    worst_floor = max(f[2] for f in floors)
    rep.check("%s/oracle: torch f32 vs f64 within rtol/4 at every step" % name,
              all(f[0] <= args.rtol / 4 and f[1] <= args.rtol / 4 and f[2][0] <= args.rtol / 4 for f in floors),
              "loss %.1e, grad_norm %.1e, worst tensor %.1e (%s)"
              % (max(f[0] for f in floors), max(f[1] for f in floors), worst_floor[0], worst_floor[1]))
    if max_norm is not None:
        norms = [w.grad_norm for w in want]
        rep.check("%s/oracle: clipping active (torch grad_norm > max_grad_norm %g at every step)" % (name, max_norm),
                  all(g > max_norm for g in norms), "grad norms %s" % ", ".join("%.4f" % g for g in norms))
    if dims.rope_scaling:
        plain = dict(cfg)
        del plain["rope_scaling"]
        ids, labels = batches[0]
        l_plain = ref.reference_loss(plain, params0, ids, labels, torch.float32)
        moved = scalar_rel(l_plain, want[0].loss)
        rep.check("%s/oracle: llama3 rope scaling moves the step-1 loss by > 10*rtol" % name,
                  moved > 10 * args.rtol, "rel %.1e" % moved)
    if dims.tied:
        rep.check("%s/oracle: tied model has one embedding parameter" % name,
                  "lm_head.weight" not in want[0].params and "model.embed_tokens.weight" in want[0].params)
    for k, w in enumerate(want):
        rep.info("torch step %d: loss %.7f grad_norm %.7f (lr %g, kept targets %d)"
                 % (k + 1, w.loss, w.grad_norm, case["lrs"][k], int((batches[k][1][:, 1:] != -100).sum())))
    if args.oracle_only:
        return

    # ---- apc side
    workdir = os.path.join(root, name)
    os.makedirs(workdir, exist_ok=True)
    try:
        mlir = apc_import(cfg, workdir)
        step_mlir = apc_compile(mlir, "fp32", case["hyper"], workdir, "step_fp32.mlir")
    except StageFailure as e:
        rep.check("%s: apc import + compile" % name, False, str(e))
        return
    state = (params0, zeros_like_all(params0), zeros_like_all(params0))
    for k, ((ids, labels), lr) in enumerate(zip(batches, case["lrs"])):
        tag = "%s/step%d" % (name, k + 1)
        if args.teacher_force and k > 0:
            prev = want[k - 1]
            state = (prev.params, prev.exp_avg, prev.exp_avg_sq)
        inputs = tref.pack_train_step_inputs(state[0], state[1], state[2], k + 1, lr, ids, labels)
        try:
            res, dts = common.apc_eval(step_mlir, inputs, workdir, "step%d" % (k + 1))
        except (StageFailure, ValueError) as e:
            rep.check("%s: apc eval" % tag, False, str(e))
            return
        w, w64 = want[k].as_results(), want64[k].as_results()
        layout = check_result_layout(res, dts, dims)
        for key in ("loss", "grad_norm"):
            if key in res:
                got = float(res[key])
                rel = scalar_rel(got, float(w[key]))
                rep.check("%s: %s" % (tag, key), rel <= args.rtol,
                          "apc %.9g torch %.9g rel %.2e (vs torch-f64 %.2e)"
                          % (got, float(w[key]), rel, scalar_rel(got, float(w64[key]))))
            else:
                rep.check("%s: %s" % (tag, key), False, "apc returned no '%s'" % key)
        if layout:
            rep.check("%s: new params + moments" % tag, False, "; ".join(layout))
            return
        worst, detail = compare_state(res, w, w64)
        rep.check("%s: new params + moments" % tag, worst <= args.rtol, detail)
        state = split_state(res, want[k].params)


# ------------------------------------------------------------------------------ bf16 case


def apc_curve(step_mlir, params0, ids, labels, steps, lr, workdir, tag):
    names = list(params0)
    state = (params0, zeros_like_all(params0), zeros_like_all(params0))
    losses, res, dts = [], None, None
    for k in range(steps):
        inputs = tref.pack_train_step_inputs(state[0], state[1], state[2], k + 1, lr, ids, labels)
        res, dts = common.apc_eval(step_mlir, inputs, workdir, "%s_step%d" % (tag, k + 1))
        missing = [x for x in ["loss"] + names + ["exp_avg." + n for n in names] + ["exp_avg_sq." + n for n in names]
                   if x not in res]
        if missing:
            raise StageFailure("%s step %d: results missing: %s" % (tag, k + 1, ", ".join(missing[:8])))
        losses.append(float(res["loss"]))
        state = split_state(res, names)
    return np.array(losses), res, dts


def run_bf16_case(root, args, rep):
    case = BF16_CASE
    name = case["name"]
    cfg = dict(BASE)
    cfg.update(case["cfg"])
    dims = ref.LlamaDims(cfg)
    steps, lr, tol = case["steps"], case["lr"], args.bf16_rtol
    rep.info("case %s: bf16 vs fp32, %d steps on one repeated batch, lr %g, tolerance %.3g relative"
             % (name, steps, lr, tol))
    params0 = ref.random_params(dims, seed=case["seed"], std=0.1, norm_std=0.1)
    ids, labels = make_batch(np.random.default_rng(1000 + case["seed"]), dims.vocab)

    f32 = tref.ReferenceTrainer(dims, params0)
    emu = tref.ReferenceTrainer(dims, params0, compute_dtype=torch.bfloat16)
    t_f32 = np.array([f32.step(ids, labels, lr).loss for _ in range(steps)])
    t_bf = np.array([emu.step(ids, labels, lr).loss for _ in range(steps)])
    emu_dev = np.abs(t_bf - t_f32) / t_f32
    rep.info("torch fp32 loss: %s" % " ".join("%.4f" % v for v in t_f32))
    rep.check("%s/oracle: torch fp32 loss drops by >= %d%% in %d steps" % (name, 100 * BF16_MIN_DROP, steps),
              t_f32[-1] <= (1 - BF16_MIN_DROP) * t_f32[0], "%.4f -> %.4f" % (t_f32[0], t_f32[-1]))
    rep.check("%s/oracle: torch bf16 emulation within tolerance/2 of torch fp32 (calibration)" % name,
              emu_dev.max() <= tol / 2, "max rel %.2e at step %d (tolerance %.2e)"
              % (emu_dev.max(), int(emu_dev.argmax()) + 1, tol))
    if args.oracle_only:
        return

    workdir = os.path.join(root, name)
    os.makedirs(workdir, exist_ok=True)
    try:
        mlir = apc_import(cfg, workdir)
        fp32_mlir = apc_compile(mlir, "fp32", {}, workdir, "step_fp32.mlir")
        bf16_mlir = apc_compile(mlir, "bf16", {}, workdir, "step_bf16.mlir")
    except StageFailure as e:
        rep.check("%s: apc import + compile (fp32, bf16)" % name, False, str(e))
        return
    try:
        a_f32, _, _ = apc_curve(fp32_mlir, params0, ids, labels, steps, lr, workdir, "fp32")
        a_bf, last_bf, last_dts = apc_curve(bf16_mlir, params0, ids, labels, steps, lr, workdir, "bf16")
    except (StageFailure, ValueError) as e:
        rep.check("%s: apc eval (%d steps fp32 + bf16)" % (name, steps), False, str(e))
        return
    rep.info("apc fp32 loss:   %s" % " ".join("%.4f" % v for v in a_f32))
    rep.info("apc bf16 loss:   %s" % " ".join("%.4f" % v for v in a_bf))

    fp_dev = np.abs(a_f32 - t_f32) / t_f32
    rep.check("%s/fp32: apc fp32 loss curve matches torch fp32 (rtol %.0e, %d steps)" % (name, args.rtol, steps),
              fp_dev.max() <= args.rtol, "max rel %.2e at step %d" % (fp_dev.max(), int(fp_dev.argmax()) + 1))
    dev = np.abs(a_bf - a_f32) / a_f32
    rep.check("%s/bf16: |loss_bf16 - loss_fp32| <= %.3g * loss_fp32 at every step" % (name, tol),
              dev.max() <= tol, "max rel %.2e at step %d (torch bf16 emulation: %.2e; apc bf16 vs emulation: %.2e)"
              % (dev.max(), int(dev.argmax()) + 1, emu_dev.max(), (np.abs(a_bf - t_bf) / t_bf).max()))
    rep.check("%s/bf16: --precision bf16 changes the numerics (curves not identical)" % name,
              dev.max() > 1e-6, "max rel difference %.2e" % dev.max())
    for label, curve in (("fp32", a_f32), ("bf16", a_bf)):
        rep.check("%s/%s: apc loss drops by >= %d%% in %d steps" % (name, label, 100 * BF16_MIN_DROP, steps),
                  curve[-1] <= (1 - BF16_MIN_DROP) * curve[0], "%.4f -> %.4f" % (curve[0], curve[-1]))
    # f32 master weights and optimizer state: F32 results that are not just widened bf16 values
    layout = check_result_layout(last_bf, last_dts, dims, " (f32 master copy)")
    fine = []
    for n in tref.param_names(dims):
        for key in (n, "exp_avg." + n, "exp_avg_sq." + n):
            if key in last_bf:
                bits = np.ascontiguousarray(last_bf[key], dtype=np.float32).view(np.uint32)
                bits = bits[bits & 0x7FFFFFFF != 0]  # exact zeros (unused embedding rows) say nothing
                if bits.size:
                    fine.append((float(np.mean((bits & 0xFFFF) != 0)), key))
    coarse = [k for frac, k in fine if frac < 0.5]
    rep.check("%s/bf16: params and moments stay f32 masters (F32, not bf16-representable)" % name,
              not layout and fine and not coarse,
              "; ".join(layout) if layout else
              ("%d tensors hold mostly bf16 values: %s" % (len(coarse), ", ".join(coarse[:6])) if coarse
               else "%d tensors, min fraction of non-bf16 values %.2f" % (len(fine), min(f for f, _ in fine))))


# ------------------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", action="append", choices=["a", "b", "c", "d"], help="run only these cases")
    ap.add_argument("--rtol", type=float, default=1e-5, help="fp32 relative tolerance (default 1e-5)")
    ap.add_argument("--bf16-rtol", type=float, default=BF16_RTOL,
                    help="bf16 loss curve tolerance relative to fp32 (default %g)" % BF16_RTOL)
    ap.add_argument("--teacher-force", action="store_true",
                    help="feed apc torch's state at every step instead of its own outputs")
    ap.add_argument("--oracle-only", action="store_true", help="run only the torch-side checks (no apc)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    torch.manual_seed(0)

    rep = common.Report()
    start = time.time()
    with common.temp_root("apc-train-e2e-", args.keep) as root:
        for case in FP32_CASES:
            if args.case and case["name"] not in args.case:
                continue
            t0 = time.time()
            rep.guard(case["name"], run_fp32_case, case, root, args, rep)  # oracle/IO bugs fail too
            rep.info("case %s took %.1fs" % (case["name"], time.time() - t0))
        if not args.case or "c" in args.case:
            t0 = time.time()
            rep.guard("c", run_bf16_case, root, args, rep)
            rep.info("case c took %.1fs" % (time.time() - t0))
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
