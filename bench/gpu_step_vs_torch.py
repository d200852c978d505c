#!/usr/bin/env python3
"""A training step on one GPU: aprun's CUDA backend beside PyTorch eager and torch.compile.

The same Llama 3 (a config.json), batch and sequence, bf16 compute with f32 master
weights and fused AdamW on both sides: aprun runs a plan compiled here for one GPU
(`apc compile --cluster h100-sxm:1 --precision bf16`); PyTorch runs transformers'
LlamaForCausalLM (SDPA attention) under bf16 autocast, eager and torch.compile'd. Each
figure is the median step after warm-up steps: tokens/s, MFU against the card's dense
bf16 peak (flops per token 6N + 12 L H Dh T, N the parameters, as the cost model counts),
and aprun's ratio to each. Issue 15's goals: >= 1.2x eager, >= 1.0x compile, >= 50% MFU.

usage: bench/gpu_step_vs_torch.py --plan plan.fb --config config.json --batch B --seq S
                                  [--aprun PATH] [--steps 10] [--warmup 3]
                                  [--device cuda|cpu] [--peak-tflops 989.4] [--no-compile]
tools/gpu_check.sh prepares the plan (Llama-3.2-1B, seq 2048) and runs this on the GPU
machine; --device cpu with a cpu:1 plan is a dry run of the script itself.
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
import torch


def write_data(path, rows):
    table = pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))})
    with pa.ipc.new_file(path, table.schema) as w:
        w.write_table(table)


def aprun_steps(args, data, total, tmp):
    metrics = os.path.join(tmp, "aprun.jsonl")
    cmd = [args.aprun, args.plan, "--data", data, "--steps", str(total), "--lr", "1e-5",
           "--no-shuffle", "--quiet", "--metrics", metrics]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, (done.stderr or done.stdout).strip().splitlines()[-1:]
    steps = [json.loads(l)["step_seconds"] for l in open(metrics)][args.warmup:]
    return statistics.median(steps), None


def torch_steps(args, cfg, rows, compiled):
    from transformers import LlamaConfig, LlamaForCausalLM
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = LlamaConfig.from_dict(cfg)
    # SDPA (PyTorch's flash kernel on GPUs) as the issue asks; an old CPU torch (the dry
    # run on the development machine) has none and runs the eager attention.
    sdpa = hasattr(torch.nn.functional, "scaled_dot_product_attention")
    model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa" if sdpa else "eager")
    model = model.to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5,
                                  **({"fused": True} if device.type == "cuda" else {}))
    step_model = torch.compile(model) if compiled else model
    times = []
    for i in range(args.warmup + args.steps):
        ids = torch.as_tensor(rows[i * args.batch:(i + 1) * args.batch], device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = step_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    del model, optimizer, step_model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(times[args.warmup:]), params


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--aprun", default="aprun")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="dense bf16 (H100 SXM)")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = ap.parse_args()
    cfg = json.load(open(args.config))
    total = args.warmup + args.steps
    rows = np.random.default_rng(0).integers(1, cfg["vocab_size"], size=(args.batch * total, args.seq + 1))
    layers, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // heads)
    tokens = args.batch * args.seq

    # Each row is printed as soon as it is measured, so that a run stopped by a time
    # limit (torch.compile of a large model) keeps what it had.
    def row(name, value, params, aprun_seconds):
        if not isinstance(value, float):
            print("%-14s failed: %s" % (name, " ".join(value)), flush=True)
            return
        flops_per_token = 6.0 * params + 12.0 * layers * heads * head_dim * args.seq
        mfu = tokens / value * flops_per_token / (args.peak_tflops * 1e12)
        ratio = "%.2fx" % (value / aprun_seconds) if name != "aprun" and aprun_seconds else ""
        print("%-14s %10.4f %12.0f %6.1f%% %10s" % (name, value, tokens / value, 100 * mfu, ratio),
              flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.arrow")
        write_data(data, rows)
        seconds, error = aprun_steps(args, data, total, tmp)
    aprun_result = seconds if error is None else error
    torch_rows = rows[:, :args.seq]
    eager, params = torch_steps(args, cfg, torch_rows, compiled=False)
    aprun_seconds = aprun_result if isinstance(aprun_result, float) else None
    print("%s, batch %d x seq %d, %.3g parameters, %s; median of %d steps after %d" % (
        os.path.basename(args.config), args.batch, args.seq, params, args.device, args.steps,
        args.warmup))
    print("%-14s %10s %12s %7s %10s" % ("", "s/step", "tokens/s", "MFU", "aprun is"), flush=True)
    row("aprun", aprun_result, params, aprun_seconds)
    row("torch eager", eager, params, aprun_seconds)
    if not args.no_compile and args.device == "cuda":
        compiled, _ = torch_steps(args, cfg, torch_rows, compiled=True)
        row("torch.compile", compiled, params, aprun_seconds)
    print("goals: aprun >= 1.2x eager, >= 1.0x torch.compile, >= 50% MFU")
    return 0 if aprun_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
