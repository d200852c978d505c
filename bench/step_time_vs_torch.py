#!/usr/bin/env python3
"""Step time of a small Llama 3 on aprun's CPU backend beside PyTorch eager.

Both run the same fp32 training step (forward, loss, backward, AdamW) of the same model
on the same batch shape with the same number of threads; the figure is the median step
time over the measured steps (after warm-up steps), and the ratio aprun / PyTorch.

usage: bench/step_time_vs_torch.py [--hidden 512 --layers 4 --seq 256 --batch 8]
                                   [--threads N] [--steps 6] [--warmup 2]
Run with .venv/bin/python (Debian's torch + pyarrow); the tools come from build/bin.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import llama_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=6, help="measured steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bin", default=os.environ.get("APC_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    args = ap.parse_args()

    cfg = {"model_type": "llama", "hidden_size": args.hidden, "intermediate_size": args.intermediate,
           "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
           "num_key_value_heads": args.kv_heads, "vocab_size": args.vocab,
           "max_position_embeddings": max(2048, args.seq), "rms_norm_eps": 1e-5,
           "rope_theta": 500000.0, "tie_word_embeddings": False}
    total = args.warmup + args.steps
    rng = np.random.default_rng(0)
    rows = rng.integers(1, args.vocab, size=(args.batch * total, args.seq), dtype=np.int64)

    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.json")
        json.dump(cfg, open(config, "w"))
        data = os.path.join(tmp, "data.arrow")
        table = pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))})
        with ipc.new_stream(data, table.schema) as w:
            w.write_table(table)
        apc = os.path.join(args.bin, "apc")
        subprocess.run([apc, "import", "llama3", "--config", config, "--batch", str(args.batch),
                        "--seq-len", str(args.seq), "-o", os.path.join(tmp, "m.mlir")],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([apc, "compile", os.path.join(tmp, "m.mlir"), "--cluster", "cpu:1",
                        "--precision", "fp32", "-o", os.path.join(tmp, "plan.fb")],
                       check=True, stdout=subprocess.DEVNULL)
        metrics = os.path.join(tmp, "m.jsonl")
        subprocess.run([os.path.join(args.bin, "aprun"), os.path.join(tmp, "plan.fb"),
                        "--data", data, "--steps", str(total), "--lr", "1e-4", "--no-shuffle",
                        "--threads", str(args.threads), "--metrics", metrics, "--quiet"],
                       check=True)
        lines = [json.loads(l) for l in open(metrics)]
        aprun_times = [l["step_seconds"] for l in lines[args.warmup:]]
        aprun_losses = [l["loss"] for l in lines]

    torch.set_num_threads(args.threads)
    dims = ref.LlamaDims(cfg)
    params = ref.random_params(dims, seed=0, std=0.02, norm_std=0.0)
    leaves = {n: torch.tensor(v, dtype=torch.float32, requires_grad=True) for n, v in params.items()}
    opt = torch.optim.AdamW(list(leaves.values()), lr=1e-4)
    torch_times = []
    for step in range(total):
        ids = torch.as_tensor(rows[step * args.batch:(step + 1) * args.batch])
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = ref.forward_logits_tensors(dims, leaves, ids, torch.float32)
        loss = ref.causal_lm_loss(logits, ids)
        loss.backward()
        opt.step()
        if step >= args.warmup:
            torch_times.append(time.perf_counter() - start)

    a, t = statistics.median(aprun_times), statistics.median(torch_times)
    tokens = args.batch * args.seq
    print("llama3 hidden %d, %d layers, heads %d/%d, ffn %d, vocab %d; batch %d x seq %d; fp32; "
          "%d threads; median of %d steps after %d warm-up" % (
              args.hidden, args.layers, args.heads, args.kv_heads, args.intermediate, args.vocab,
              args.batch, args.seq, args.threads, args.steps, args.warmup))
    print("%-16s %12s %12s" % ("", "s/step", "tokens/s"))
    print("%-16s %12.3f %12.0f" % ("aprun (cpu)", a, tokens / a))
    print("%-16s %12.3f %12.0f" % ("pytorch eager", t, tokens / t))
    print("ratio aprun/pytorch step time: %.2fx (%s)" % (a / t, "aprun faster" if a < t else "pytorch faster"))
    print("first losses (aprun, initialised from its seed): %s" % ", ".join("%.4f" % x for x in aprun_losses[:3]))


if __name__ == "__main__":
    main()
