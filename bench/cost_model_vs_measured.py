#!/usr/bin/env python3
"""The cost model against aprun on this machine: predicted and measured step times.

Calibrates this machine (`apc calibrate --nproc 2`, or takes --cluster FILE), then for
a dozen plans of a small Llama 3 on 2 local CPU ranks (dp, ZeRO 1/2/3, tp, tp+sp, pp
with several micro-batch counts, interleaved pp, cp, recompute selective/full, and mixes) predicts the step
time (`apc plan --json`) and measures it (`aprun --nproc 2`, the median step after the
warm-up ones). Prints the table, the median absolute error and Spearman's rank
correlation between predicted and measured. Goals (issue 13): median error <= 20%,
Spearman >= 0.9. With --search the plan the search picks is measured too, beside the best
measured plan (issue 14: within 10%); since the best of many noisy measurements is biased
low, the two are then measured again alternately (--confirm N runs each, default 4) and
their medians compared. With --repeat 2 each plan is measured twice (separate runs) and the
rank correlation between the two measurements is printed too: the ceiling that noise on
this machine puts on any model's Spearman. With --kernels, also the per-kernel predicted and measured times of
each plan's rank 0 (aprun --profile beside the model's per-kernel figures).

Run with .venv/bin/python (numpy + pyarrow write the data); the tools come from
build/bin. Run it on a quiet machine: other work on the cores changes every figure.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLANS = [
    "dp=2",
    "dp=2,mb=4",
    "dp=2,zero=1",
    "dp=2,zero=2",
    "dp=2,zero=3",
    "tp=2",
    "tp=2,sp=on",
    "tp=2,mb=2",
    "cp=2",
    "cp=2,recompute=full",
    "pp=2,mb=1",
    "pp=2,mb=2",
    "pp=2,mb=4",
    "pp=2,mb=8",
    "pp=2,vp=2,mb=2",
    "pp=2,vp=2,mb=4",
    "dp=2,recompute=selective",
    "dp=2,recompute=full",
    "tp=2,sp=on,recompute=full",
    "pp=2,mb=4,recompute=selective",
    "dp=2,zero=3,recompute=full",
]


def spearman(a, b):
    def ranks(x):
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        i = 0
        while i < len(order):  # ties share their mean rank
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return r
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var > 0 else float("nan")


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        sys.exit("failed (%d): %s\n%s%s" % (done.returncode, " ".join(cmd), done.stdout, done.stderr))
    return done.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", help="a cluster file (default: apc calibrate --nproc 2 now)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=5, help="measured steps per plan")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="aprun runs per plan (median taken)")
    ap.add_argument("--plans", help="comma-free list separated by ';' (default: the dozen above)")
    ap.add_argument("--confirm", type=int, default=4,
                    help="with --search: measure the searched plan and the best measured other "
                         "again, alternately, this many times each (0: not)")
    ap.add_argument("--kernels", action="store_true", help="per-kernel table of every plan")
    ap.add_argument("--search", action="store_true",
                    help="also measure the plan the search picks (apc plan without --plan) and "
                         "compare it with the best measured plan (issue 14: within 10%%)")
    ap.add_argument("--bin", default=os.environ.get("APC_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    args = ap.parse_args()
    apc, aprun = os.path.join(args.bin, "apc"), os.path.join(args.bin, "aprun")
    plans = args.plans.split(";") if args.plans else PLANS

    cfg = {"model_type": "llama", "hidden_size": args.hidden, "intermediate_size": args.intermediate,
           "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
           "num_key_value_heads": args.kv_heads, "vocab_size": args.vocab,
           "max_position_embeddings": max(2048, args.seq), "rms_norm_eps": 1e-5,
           "rope_theta": 500000.0, "tie_word_embeddings": False}
    total = args.warmup + args.steps
    rows = np.random.default_rng(0).integers(1, args.vocab, size=(args.batch * total, args.seq + 1),
                                             dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.json")
        json.dump(cfg, open(config, "w"))
        data = os.path.join(tmp, "data.arrow")
        table = pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))})
        with ipc.new_stream(data, table.schema) as w:
            w.write_table(table)
        model = os.path.join(tmp, "m.mlir")
        run([apc, "import", "llama3", "--config", config, "--batch", str(args.batch),
             "--seq-len", str(args.seq), "-o", model])
        cluster = args.cluster
        if not cluster:
            cluster = os.path.join(tmp, "cluster.json")
            print("calibrating: apc calibrate --nproc 2 (about a minute)", flush=True)
            run([apc, "calibrate", "--nproc", "2", "-o", cluster])
        print("llama3 hidden %d, %d layers, heads %d/%d, ffn %d, vocab %d; batch %d x seq %d; %s; "
              "cpu:2 (%s); median of %d steps after %d warm-up" % (
                  args.hidden, args.layers, args.heads, args.kv_heads, args.intermediate,
                  args.vocab, args.batch, args.seq, args.precision,
                  os.path.basename(cluster) if args.cluster else "calibrated now", args.steps,
                  args.warmup))
        if args.search:
            found = json.loads(run([apc, "plan", model, "--cluster", cluster, "--precision", args.precision,
                                    "--json"]))
            searched = found["candidates"][0]["plan"]
            print("the search picked %s (%d plans, %d compiled, %.2f s)" % (
                searched, found["search"]["enumerated"], found["search"]["compiled"],
                found["search"]["seconds"]))
            plans = plans + [searched]
        print("%-32s %12s %12s %8s" % ("plan", "predicted s", "measured s", "error"))
        results, repeats = [], []
        def measure(plan, times, fb):
            """Compiles `plan` into `fb` (once) and returns the median step of each of `times` runs."""
            if not os.path.exists(fb):
                run([apc, "compile", model, "--cluster", cluster, "--precision", args.precision,
                     "--plan", plan, "-o", fb])
            metrics = os.path.join(tmp, "metrics.jsonl")
            cmd = [aprun, fb, "--nproc", "2", "--data", data, "--steps", str(total), "--lr", "1e-4",
                   "--no-shuffle", "--metrics", metrics, "--quiet"]
            if args.kernels:
                cmd += ["--profile", profile]
            runs = []
            for _ in range(times):
                if os.path.exists(metrics):
                    os.remove(metrics)
                run(cmd)
                steps = [json.loads(l)["step_seconds"] for l in open(metrics)][args.warmup:]
                runs.append(statistics.median(steps))
            return runs

        profile = os.path.join(tmp, "profile.json")
        plan_files = {}
        for plan in plans:
            fb = plan_files.setdefault(plan, os.path.join(tmp, "plan%d.fb" % len(plan_files)))
            predicted = json.loads(run([apc, "plan", model, "--cluster", cluster, "--precision",
                                        args.precision, "--plan", plan, "--json"]))["candidates"][0]
            runs = measure(plan, max(1, args.repeat), fb)
            measured = statistics.median(runs)
            repeats.append(runs)
            p = predicted["seconds_per_step"]
            results.append((plan, p, measured))
            print("%-32s %12.4f %12.4f %+7.1f%%%s" % (
                plan, p, measured, 100 * (p / measured - 1),
                "" if len(runs) < 2 else "   runs " + " ".join("%.4f" % r for r in runs)), flush=True)
            if args.kernels:
                prof = json.load(open(profile))
                got = {k["kernel"]: k["seconds_per_step"] for k in prof["kernels"]}
                want = {}  # the model names collectives by axes ("all_reduce.tp"): fold them
                for name, seconds in predicted["stages"][0]["kernels"].items():
                    want[name.split(".")[0]] = want.get(name.split(".")[0], 0) + seconds
                for k in sorted(set(got) | set(want), key=lambda k: -got.get(k, 0))[:10]:
                    print("    %-26s predicted %9.2f ms  measured %9.2f ms" % (
                        k, 1e3 * want.get(k, 0), 1e3 * got.get(k, 0)))
        errors = [abs(p / m - 1) for _, p, m in results]
        rho = spearman([p for _, p, _ in results], [m for _, _, m in results])
        print("median absolute error %.1f%% (goal <= 20%%), Spearman %.3f (goal >= 0.9), %d plans"
              % (100 * statistics.median(errors), rho, len(results)))
        if args.search:
            picked = results[-1]
            best = min(results[:-1], key=lambda r: r[2])
            print("searched plan %s: measured %.4f s; best measured of the others %s: %.4f s; "
                  "searched / best = %.3f (goal <= 1.10)" % (picked[0], picked[2], best[0], best[2],
                                                             picked[2] / best[2]))
            if args.confirm > 0:
                # The best of 17 noisy measurements is biased low (it was picked for being
                # low): measure the two plans again, alternately, and compare medians.
                again = {picked[0]: [], best[0]: []}
                for _ in range(args.confirm):
                    for plan in (picked[0], best[0]):
                        again[plan] += measure(plan, 1, plan_files[plan])
                a, b = statistics.median(again[picked[0]]), statistics.median(again[best[0]])
                print("confirmed, %d alternate runs each: searched %.4f s (%s), %s %.4f s (%s); "
                      "searched / best = %.3f (goal <= 1.10)" % (
                          args.confirm, a, " ".join("%.4f" % r for r in again[picked[0]]), best[0], b,
                          " ".join("%.4f" % r for r in again[best[0]]), a / b))
        if args.repeat >= 2:
            noise = spearman([r[0] for r in repeats], [r[1] for r in repeats])
            print("noise ceiling: Spearman %.3f between the first and second measurement of the "
                  "same plans" % noise)


if __name__ == "__main__":
    main()
