#!/usr/bin/env python3
"""The cost model's predictions beside training runs that other projects published.

Reads shared/calibration/published-runs.json (APC_PUBLISHED_RUNS or --runs overrides the
path). For every run APC can express it writes the model as a Llama 3 config.json,
imports it (`apc import llama3`, f32 masters: the runs train in mixed precision), predicts
the published plan (`apc plan --cluster PROFILE:N --plan PLAN --json`, bf16 compute) and
prints the prediction beside the published figure in the figure's own unit and FLOP
convention, with the error; then the predicted memory per device beside any published
one. A run APC cannot express is printed as "not expressible: <reason>", never skipped.

Models: `llama3.1-8b` is Meta's config (rope scaling does not change the cost). The
Megatron GPT models (`model_shape`) become Llama configs with the same matmul FLOPs:
intermediate_size = 8h/3 rounded to a multiple of 64 (a 4h GELU MLP has two h x 4h
matrices, a SwiGLU MLP three h x 8h/3 ones), as many key/value heads as heads, tied
embeddings (GPT ties the LM head to the input embedding); LayerNorm, GELU and learned
positions differ from RMSNorm, SiLU and RoPE only in small elementwise work.

usage: bench/cost_model_vs_published.py [--runs FILE] [--bin build/bin] [--keep DIR] [-v]
Exit status: 0 when every expressible run was predicted, 1 when apc failed, 2 when the
runs file is missing or malformed.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RUNS = os.path.join(ROOT, "..", "shared", "calibration", "published-runs.json")
PROFILES = os.path.join(ROOT, "compiler", "cost", "profiles")
CONFIGS = os.path.join(ROOT, "frontends", "llama3", "configs")
GIB = 1024.0 ** 3


def llama31_8b():
    # meta-llama/Llama-3.1-8B: Llama 3 8B's shapes with 128K positions (llama3 rope scaling).
    cfg = json.load(open(os.path.join(CONFIGS, "Meta-Llama-3-8B.json")))
    cfg.update(max_position_embeddings=131072,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    return cfg


KNOWN_MODELS = {"llama3.1-8b": llama31_8b}


def gpt_as_llama(shape, seq):
    """A Megatron GPT (model_shape) as a Llama config with the same matmul FLOPs."""
    h = shape["hidden"]
    return {"model_type": "llama", "hidden_size": h,
            "intermediate_size": int(round(8 * h / 3 / 64.0)) * 64,
            "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
            "num_key_value_heads": shape["heads"], "vocab_size": shape["vocab"],
            "max_position_embeddings": seq, "tie_word_embeddings": True,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0}


def megatron_flops_per_step(shape, batch, seq):
    """Megatron SC21's FLOPs of one step (the runs file's megatron_notes; the paper's appendix):

        96 B s l h^2 (1 + s / (6h) + V / (16 l h))

    It counts every layer GEMM four times (forward, the full recomputation's second
    forward, and twice in the backward: 4 x 24 B s l h^2), attention's two s x s matmuls as
    if not causal (the s / 6h term) and the LM head three times (V / 16lh). It is not the
    6N + 12LHDT model-FLOPs convention that apc plan's MFU uses (no recomputation, each
    parameter once): the two differ by about 4/3. We apply the paper's own formula to
    the predicted step time, so predicted and published TFLOP/s share one convention and
    their ratio is exactly the ratio of step times (tokens per second).
    """
    l, h, v = shape["layers"], shape["hidden"], shape["vocab"]
    return 96.0 * batch * seq * l * h * h * (1 + seq / (6.0 * h) + v / (16.0 * l * h))


def published_memory_gib(run):
    if "memory_gib" in run:
        return float(run["memory_gib"])
    m = re.search(r"([0-9]+(?:\.[0-9]+)?) GiB memory", run.get("notes", ""))
    return float(m.group(1)) if m else None


def plan_of(run):
    """(plan, None) or (None, why APC cannot express the run)."""
    if not os.path.exists(os.path.join(PROFILES, run["gpu"] + ".json")):
        return None, "no APC cluster profile for gpu '%s'" % run["gpu"]
    if run["model"] not in KNOWN_MODELS and "model_shape" not in run:
        return None, "model '%s' has neither a known config nor a model_shape" % run["model"]
    tp, pp, cp = run.get("tp") or 1, run.get("pp") or 1, run.get("cp") or 1
    zero = 0
    if run.get("fsdp"):  # FSDP (torchtitan's FSDP2): parameters, gradients, moments sharded
        dp, zero = run["fsdp"], 3
    else:
        dp = run.get("dp") or run["gpus"] // (tp * pp * cp)
    if dp * tp * pp * cp != run["gpus"]:
        return None, "dp %d x tp %d x pp %d x cp %d is not its %d GPUs" % (dp, tp, pp, cp, run["gpus"])
    batch = run["global_batch"]
    if batch % dp:
        return None, "global batch %d does not divide over dp=%d" % (batch, dp)
    per_replica = batch // dp
    # One micro-batch of local_batch sequences per replica: the field, or the plan's words
    # ("micro-batch 1, so 32 micro-batches per step per replica", NeMo's records).
    said = re.search(r"micro-batch ([0-9]+)", run.get("plan") or "")
    local_batch = run.get("local_batch") or (int(said.group(1)) if said else None)
    if local_batch:
        mb = per_replica // local_batch
    elif pp > 1:
        # Megatron's micro-batch size is not in the paper's Table 1; one sequence per
        # micro-batch (the smallest; bubble (p-1)/(m+p-1), 2% for 39B's 48).
        mb = per_replica
    else:
        mb = 1  # no pipeline: micro-batches only split the same work
    if run["id"].startswith("megatron"):
        recompute = "full"  # megatron_notes: "full activation recomputation"
    else:
        recompute = run.get("recompute") or "none"
    plan = "dp=%d,tp=%d,pp=%d,mb=%d,zero=%d,recompute=%s" % (dp, tp, pp, mb, zero, recompute)
    if cp > 1:  # context parallelism: two balanced chunks of every sequence a device
        plan += ",cp=%d" % cp
    vp = run.get("vp") or 1
    if vp > 1:  # interleaved 1F1B (Megatron's virtual stages)
        if mb % pp:
            return None, "interleaved stages (vp=%d) need mb (%d) a multiple of pp (%d)" % (vp, mb, pp)
        plan += ",vp=%d" % vp
    return plan, None


def published_figure(run):
    """(unit, published value, function of the prediction's JSON -> predicted value)."""
    gpus = run["gpus"]
    if "tok_s_gpu" in run:
        return "tok/s/GPU", run["tok_s_gpu"], lambda c: c["tokens_per_second_per_device"]
    if "tflops_gpu" in run and "model_shape" in run:
        flops = megatron_flops_per_step(run["model_shape"], run["global_batch"], run["seq"])
        return ("TFLOP/s/GPU", run["tflops_gpu"],
                lambda c: flops / c["seconds_per_step"] / gpus / 1e12)
    return None, None, None


def run_apc(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s\nexit %d: %s" % (" ".join(cmd), proc.returncode,
                                                proc.stderr.strip() or proc.stdout.strip()))
    return proc.stdout


def search(mlir, cluster, apc, timeout):
    """The plan search on the same model and cluster: its pick, or None past `timeout`."""
    try:
        proc = subprocess.run([apc, "plan", mlir, "--cluster", cluster, "--top", "1", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise RuntimeError("apc plan (search) on %s: %s" % (cluster, proc.stderr.strip()))
    return json.loads(proc.stdout)


def predict(run, plan, apc, folder, search_timeout=None):
    if "model_shape" in run:
        cfg = gpt_as_llama(run["model_shape"], run["seq"])
    else:
        cfg = KNOWN_MODELS[run["model"]]()
    config = os.path.join(folder, run["id"] + ".config.json")
    with open(config, "w") as f:
        json.dump(cfg, f, indent=1)
    mlir = os.path.join(folder, run["id"] + ".mlir")
    run_apc([apc, "import", "llama3", "--config", config, "--batch", str(run["global_batch"]),
             "--seq-len", str(run["seq"]), "-o", mlir])
    cluster = "%s:%d" % (run["gpu"], run["gpus"])
    out = run_apc([apc, "plan", mlir, "--cluster", cluster, "--plan", plan, "--json"])
    searched = search(mlir, cluster, apc, search_timeout) if search_timeout else None
    os.remove(mlir)  # large; the config stays with --keep
    return cluster, json.loads(out), searched


def model_name(run):
    s = run.get("model_shape")
    return "%s (GPT as Llama)" % run["model"] if s else run["model"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=os.environ.get("APC_PUBLISHED_RUNS", DEFAULT_RUNS),
                    help="published runs (default: $APC_PUBLISHED_RUNS, else %(default)s)")
    ap.add_argument("--bin", default=os.environ.get("APC_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--keep", help="write the configs here (default: a temporary folder)")
    ap.add_argument("-v", "--verbose", action="store_true", help="each prediction's breakdown")
    ap.add_argument("--search", type=float, metavar="SECONDS",
                    help="also run the plan search for each run (same model, cluster and global "
                         "batch), at most SECONDS each, and set its pick beside the published plan "
                         "under the same cost model (issue 14: at least as fast)")
    args = ap.parse_args()

    path = os.path.normpath(args.runs)
    if not os.path.exists(path):
        where = "APC_PUBLISHED_RUNS" if "APC_PUBLISHED_RUNS" in os.environ else "the default path"
        print("published runs file not found: %s (from %s; set APC_PUBLISHED_RUNS or --runs "
              "to its path)" % (path, where), file=sys.stderr)
        return 2
    try:
        doc = json.load(open(path))
        runs = doc["runs"]
    except (ValueError, KeyError) as e:
        print("%s: not a published-runs file: %s" % (path, e), file=sys.stderr)
        return 2
    apc = os.path.join(args.bin, "apc")
    folder = args.keep or tempfile.mkdtemp(prefix="apc-published-")
    os.makedirs(folder, exist_ok=True)

    print("published runs: %s (%d runs)" % (path, len(runs)))
    print("%-18s %-14s %-30s %-54s %-12s %10s %10s %8s" % (
        "run", "hardware", "model", "plan", "unit", "predicted", "published", "error"))
    memory, failed, searches = [], False, []
    for run in runs:
        plan, why = plan_of(run)
        unit, published, predicted_of = published_figure(run)
        if plan and not unit:
            plan, why = None, "no published figure APC predicts (tok_s_gpu, or tflops_gpu with a model_shape)"
        hardware = "%s x%d" % (run.get("gpu", "?"), run.get("gpus", 0))
        if not plan:
            print("%-18s %-14s %-30s not expressible: %s" % (run["id"], hardware, model_name(run), why))
            continue
        try:
            _, result, searched = predict(run, plan, apc, folder, args.search)
        except (RuntimeError, OSError) as e:
            print("%-18s apc failed: %s" % (run["id"], e))
            failed = True
            continue
        c = result["candidates"][0]
        predicted = predicted_of(c)
        error = 100.0 * (predicted - published) / published
        print("%-18s %-14s %-30s %-54s %-12s %10.1f %10.1f %+7.1f%%" % (
            run["id"], hardware, model_name(run), c["plan"], unit, predicted, published, error))
        if args.search:
            searches.append((run["id"], c, searched))
        memory.append((run["id"], c["peak_bytes_per_device"] / GIB,
                       c["usable_bytes_per_device"] / GIB, published_memory_gib(run), c))
        if args.verbose:
            step = c["seconds_per_step"]
            print("    %.3f s/step, MFU %.1f%%; breakdown: %s" % (step, 100 * c["mfu"], ", ".join(
                "%s %.3f" % (k, v) for k, v in c["breakdown"].items() if v > 0)))
            kernels = c["stages"][c["critical_stage"]].get("kernels", {})
            top = sorted(kernels.items(), key=lambda kv: -kv[1])[:8]
            print("    by kernel (stage %d, collectives at full time): %s" % (
                c["critical_stage"], ", ".join("%s %.3f" % kv for kv in top)))
            if run.get("note"):
                print("    the run's note: %s" % run["note"])

    print()
    print("%-18s %16s %16s %16s" % ("memory per device", "predicted GiB", "usable GiB", "published GiB"))
    for run_id, gib, usable, published, c in memory:
        print("%-18s %16.1f %16.1f %16s" % (run_id, gib, usable,
                                            "%.1f" % published if published else "-"))
        if args.verbose:
            print("    " + ", ".join("%s %.1f" % (k, v / GIB) for k, v in c["memory"].items() if v))
    if args.search:
        print()
        print("%-18s %-54s %10s %-54s %10s  %s" % ("searched vs published", "published plan",
                                                  "s/step", "searched plan", "s/step", "searched <= published"))
        for run_id, c, found in searches:
            if found is None:
                print("%-18s %-54s %10.3f  the search ran past %g s" % (run_id, c["plan"], c["seconds_per_step"],
                                                                        args.search))
                continue
            best = found["candidates"][0]
            if best["seconds_per_step"] <= c["seconds_per_step"] * (1 + 1e-9):
                verdict = "yes"
            elif not c["fits"]:
                verdict = "slower, but the published plan does not fit APC's memory (%.1f > %.1f GiB)" % (
                    c["peak_bytes_per_device"] / GIB, c["usable_bytes_per_device"] / GIB)
            else:
                verdict = "NO"
            print("%-18s %-54s %10.3f %-54s %10.3f  %s (%d plans in %.1f s)" % (
                run_id, c["plan"], c["seconds_per_step"], best["plan"], best["seconds_per_step"],
                verdict, found["search"]["enumerated"], found["search"]["seconds"]))
    if not args.keep:
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
