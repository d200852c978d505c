#!/usr/bin/env python3
"""End-to-end check: APC's Llama 3 import + reference evaluation vs. a plain-PyTorch oracle.

For each tiny config this script
  1. writes config.json and random weights (F32, HF names) + input_ids/labels (I64)
     into a temp directory,
  2. runs `apc import llama3 --config config.json --batch 2 --seq-len 7 --dtype f32 -o m.mlir`
     and `apc eval m.mlir --inputs in.safetensors -o out.safetensors`,
  3. reads `loss` (must be an F32 scalar of shape []) and compares it with the loss
     of llama_reference.py (independent HF LlamaForCausalLM semantics) computed in
     float32 (pass criterion: relative error <= --rtol, default 1e-5); the float64
     loss is reported too (sanity bound --rtol64, default 1e-4),
  4. repeats the eval with every label kept (no -100) as a second comparison, and
     checks that ignore_index really changes the loss.
Cases with rope_scaling also check that the llama3 scaling changes at least one
low- and one medium-frequency entry of inv_freq and that it changes the loss.

apc binaries: $APC_BIN_DIR/apc (default: build/bin of this checkout).
Interpreter: needs /usr/bin/python3 (Debian python3-torch, python3-numpy); no
`transformers` or `safetensors` package is used. Run e.g.
    /usr/bin/python3 test/e2e/check_loss_vs_torch.py [--keep] [--case NAME ...]
Exit status 0 iff every case passes; last line is "N passed, M failed".
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402
from e2e_common import StageFailure  # noqa: E402

BATCH, SEQ = 2, 7

BASE = common.llama_config(vocab_size=97, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                           bos_token_id=1, eos_token_id=2)


# (name, config overrides, seed). head_dim 16 everywhere: 32/4 = 8 would be too small
# for some regimes, so (a)-(c) use hidden 64; (d) has hidden 48 with an explicit head_dim.
CASES = [
    ("untied", dict(hidden_size=64), 11),
    # orig 32 at head_dim 16 / theta 1e4: wavelen 6.3 (high, unchanged), 19.9 (medium), >= 62.8 (low)
    ("untied-llama3rope", dict(hidden_size=64, rope_scaling=common.llama3_rope_scaling(32)), 12),
    # orig 16: wavelen 6.3 is medium, all others low
    ("tied-llama3rope",
     dict(hidden_size=64, tie_word_embeddings=True, rope_scaling=common.llama3_rope_scaling(16)), 13),
    ("headdim16-hidden48", dict(hidden_size=48, head_dim=16), 14),
]


def read_loss(path):
    if not os.path.exists(path):
        raise StageFailure("apc eval did not write %s" % path)
    t, dts = ref.read_safetensors(path)
    if "loss" not in t:
        raise StageFailure("%s has no tensor 'loss' (has: %s)" % (path, ", ".join(sorted(t)) or "nothing"))
    if dts["loss"] != "F32" or t["loss"].shape != ():
        raise StageFailure("'loss' must be an F32 scalar of shape [], got %s shape %s"
                          % (dts["loss"], list(t["loss"].shape)))
    v = float(t["loss"])
    if not math.isfinite(v):
        raise StageFailure("apc loss is not finite: %r" % v)
    return v


def check_rope_scaling(cfg):
    """The llama3 scaling must change >= 1 low- and >= 1 medium-frequency inv_freq entry."""
    dims = ref.LlamaDims(cfg)
    sc = dims.rope_scaling
    base = ref.default_inv_freq(dims.head_dim, dims.rope_theta, torch.float64)
    scaled = ref.compute_inv_freq(dims, torch.float64)
    wavelen = 2 * math.pi / base
    low_wl = sc["original_max_position_embeddings"] / sc["low_freq_factor"]
    high_wl = sc["original_max_position_embeddings"] / sc["high_freq_factor"]
    low = wavelen > low_wl
    medium = ~(wavelen < high_wl) & ~low
    high = wavelen < high_wl
    differs = ~torch.isclose(scaled, base, rtol=1e-9, atol=0)
    n_low, n_med = int((low & differs).sum()), int((medium & differs).sum())
    if n_low < 1 or n_med < 1:
        raise StageFailure("rope_scaling does not exercise llama3 scaling: %d low and %d medium inv_freq entries "
                          "changed (wavelens %s)" % (n_low, n_med, [round(float(w), 2) for w in wavelen]))
    if bool((high & differs).any()):
        raise StageFailure("llama3 scaling changed a high-frequency entry (reference bug)")
    # medium entries lie strictly between inv_freq/factor and inv_freq
    m = medium
    if not bool(((scaled[m] < base[m]) & (scaled[m] > base[m] / sc["factor"])).all()):
        raise StageFailure("medium-frequency inv_freq not strictly between inv_freq/factor and inv_freq")
    return "rope: %d high / %d medium / %d low entries" % (int(high.sum()), int(medium.sum()), int(low.sum()))


def make_inputs(cfg, seed):
    dims = ref.LlamaDims(cfg)
    params = ref.random_params(dims, seed=seed, std=0.1, norm_std=0.1)
    rng = np.random.default_rng(1000 + seed)
    ids = rng.integers(0, dims.vocab, size=(BATCH, SEQ)).astype(np.int64)
    labels = ids.copy()
    labels[0, -2:] = ref.IGNORE_INDEX  # uneven padding: row 0 loses its last 2 tokens, row 1 none
    return params, ids, labels


def compare(label, apc_loss, cfg, params, ids, labels, rtol, rtol64):
    t32 = ref.reference_loss(cfg, params, ids, labels, torch.float32)
    t64 = ref.reference_loss(cfg, params, ids, labels, torch.float64)
    rel = abs(apc_loss - t32) / abs(t32)
    rel64 = abs(apc_loss - t64) / abs(t64)
    line = "%s: apc %.9f torch %.9f rel %.1e (torch-f64 %.9f rel %.1e)" % (label, apc_loss, t32, rel, t64, rel64)
    if not (rel <= rtol):
        raise StageFailure(line + " -- exceeds rtol %.1e vs float32 torch" % rtol)
    if not (rel64 <= rtol64):
        raise StageFailure(line + " -- exceeds rtol64 %.1e vs float64 torch" % rtol64)
    return line, t64


def run_case(name, overrides, seed, workdir, args):
    cfg = dict(BASE)
    cfg.update(overrides)
    os.makedirs(workdir, exist_ok=True)
    notes = []
    if cfg.get("rope_scaling"):
        notes.append(check_rope_scaling(cfg))

    params, ids, labels = make_inputs(cfg, seed)
    kept = ids.copy()

    # oracle-side sanity checks (independent of apc)
    l_mask = ref.reference_loss(cfg, params, ids, labels, torch.float64)
    l_kept = ref.reference_loss(cfg, params, ids, kept, torch.float64)
    if abs(l_mask - l_kept) / l_kept < 100 * args.rtol:
        raise StageFailure("ignore_index does not change the torch loss enough (%.9f vs %.9f)" % (l_mask, l_kept))
    if cfg.get("rope_scaling"):
        plain = dict(cfg)
        del plain["rope_scaling"]
        l_plain = ref.reference_loss(plain, params, ids, labels, torch.float64)
        if abs(l_plain - l_mask) / l_mask < 10 * args.rtol:
            raise StageFailure("rope_scaling barely changes the torch loss (%.9f vs %.9f): the case "
                              "would not detect a missing scaling" % (l_mask, l_plain))
        notes.append("scaling moves loss by rel %.1e" % (abs(l_plain - l_mask) / l_mask))

    in_path = os.path.join(workdir, "in.safetensors")
    kept_path = os.path.join(workdir, "in_allkept.safetensors")
    ref.write_safetensors(in_path, dict(params, input_ids=ids, labels=labels))
    ref.write_safetensors(kept_path, dict(params, input_ids=ids, labels=kept))

    mlir = common.import_llama3(cfg, workdir, BATCH, SEQ, out=os.path.join(workdir, "m.mlir"),
                                extra=["--dtype", "f32"])

    results = []
    for sub, path, lab in ((name, in_path, labels), (name + "/all-labels-kept", kept_path, kept)):
        out = os.path.join(workdir, os.path.basename(path).replace("in", "out", 1))
        common.run_tool("apc", ["eval", mlir, "--inputs", path, "-o", out], workdir, timeout=600)
        apc_loss = read_loss(out)
        results.append((sub, apc_loss, compare(sub, apc_loss, cfg, params, ids, lab, args.rtol, args.rtol64)))
    if results[0][1] == results[1][1]:
        raise StageFailure("apc loss identical with and without -100 labels (%.9f): ignore_index ignored"
                          % results[0][1])
    return [r[2][0] for r in results], notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", action="append", help="run only these case names (repeatable)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance vs float32 torch")
    ap.add_argument("--rtol64", type=float, default=1e-4, help="sanity relative tolerance vs float64 torch")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    cases = [c for c in CASES if not args.case or c[0] in args.case]
    if args.case and len(cases) != len(args.case):
        known = ", ".join(c[0] for c in CASES)
        print("unknown case name(s) in %s; known: %s" % (args.case, known))
        return 2

    passed = failed = 0
    with common.temp_root("apc-e2e-", args.keep) as root:
        for name, overrides, seed in cases:
            try:
                lines, notes = run_case(name, overrides, seed, os.path.join(root, name), args)
                for ln in lines:
                    print("PASS " + ln)
                for n in notes:
                    print("     %s: %s" % (name, n))
                passed += 1
            except StageFailure as e:
                msg = str(e)
                print("FAIL " + msg if msg.startswith(name + ":") or msg.startswith(name + "/")
                      else "FAIL %s: %s" % (name, msg))
                failed += 1
            except Exception as e:  # reference/IO errors are failures too, with context
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
                failed += 1
            sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
