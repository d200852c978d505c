#!/usr/bin/env python3
"""Compile time, peak memory and plan size of `apc compile` on large Llama 3 imports.

Each model is imported once (`apc import llama3`, bf16) and compiled --rounds times for
its cluster and plan with --timing; the figures are the best wall time, the pass times
of that run (ap-pipeline and "Rest": lowering, arena planning, writing the plan), the
peak resident memory of the compile (getrusage of the child) and the plan.fb size.
With --peer PATH (another apc, e.g. a build of an older commit) the same compiles run
with it beside ours, and the two plan.fb files are compared byte for byte.

usage: bench/compile_time.py [--models 8b,405b] [--rounds 2] [--bin build/bin] [--peer APC]
"""
import argparse
import filecmp
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "frontends", "llama3", "configs")

# name: (config, batch, seq_len, cluster, plan). 405B is Meta's published layout.
MODELS = {
    "8b": ("Meta-Llama-3-8B.json", 256, 8192, "cpu:256", "dp=8,tp=8,pp=4,mb=8,sp=on,zero=1"),
    "405b": ("Llama-3.1-405B.json", 2048, 8192, "cpu:8192", "dp=64,tp=8,pp=16,mb=32,sp=on,zero=1"),
}


def compile_once(apc, mlir, cluster, plan, out):
    cmd = [apc, "compile", mlir, "--cluster", cluster, "--plan", plan, "-o", out, "--timing"]
    with tempfile.TemporaryFile(mode="w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        log.seek(0)
        text = log.read()
    if status != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), text))
    passes = {m.group(2): float(m.group(1))
              for m in re.finditer(r"^\s*([0-9.]+) \(\s*[0-9.]+%\)\s+(\S+)\s*$", text, re.M)}
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024.0, "plan_mb": os.path.getsize(out) / 1e6,
            "pipeline": passes.get("ApPipelinePass", float("nan")), "rest": passes.get("Rest", float("nan"))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="8b,405b")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bin", default=os.environ.get("APC_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--peer", help="another apc binary to compile the same imports")
    args = ap.parse_args()
    apc = os.path.join(args.bin, "apc")
    tools = [("apc", apc)] + ([("peer", os.path.abspath(args.peer))] if args.peer else [])

    print("%-6s %-6s %9s %10s %8s %9s %9s" % ("model", "apc", "wall s", "pipeline s", "rest s",
                                             "peak MB", "plan MB"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            config, batch, seq, cluster, plan = MODELS[name]
            mlir = os.path.join(tmp, name + ".mlir")
            subprocess.run([apc, "import", "llama3", "--config", os.path.join(CONFIGS, config),
                            "--batch", str(batch), "--seq-len", str(seq), "--dtype", "bf16", "-o", mlir],
                           check=True, capture_output=True)
            best = {}
            for label, binary in tools:
                out = os.path.join(tmp, "%s.%s.fb" % (name, label))
                runs = [compile_once(binary, mlir, cluster, plan, out) for _ in range(args.rounds)]
                best[label] = min(runs, key=lambda r: r["seconds"])
                r = best[label]
                print("%-6s %-6s %9.2f %10.2f %8.2f %9.0f %9.1f" % (
                    name, label, r["seconds"], r["pipeline"], r["rest"], r["rss_mb"], r["plan_mb"]))
            if args.peer:
                same = filecmp.cmp(os.path.join(tmp, name + ".apc.fb"), os.path.join(tmp, name + ".peer.fb"),
                                   shallow=False)
                print("%-6s ratio peer/apc wall time: %.2fx; plans %s" % (
                    name, best["peer"]["seconds"] / best["apc"]["seconds"], "identical" if same else "DIFFER"))
            print("%-6s batch %d x %d, %s, %s; best of %d" % (name, batch, seq, cluster, plan, args.rounds))


if __name__ == "__main__":
    main()
