#!/usr/bin/env python3
"""End-to-end check: split parameters and optimizer state (Buffer.dim_axes) and the
collectives all_gather / all_slice in aprun, on a dp=2 plan edited by hand until the
compiler emits such plans itself.

The plan: tiny Llama 3 (frontends/llama3/configs/tiny.json, batch 4, seq 8), compiled with
--cluster cpu:2 (plain.fb), then edited through flatc's JSON form into split.fb:
  ZeRO-3 style  model.embed_tokens.weight split on dim 1 and
                model.layers.0.self_attn.q_proj.weight split on dim 0 over mesh axis 0 (dp):
                parameter and moments hold one half per rank; the step starts with an
                all_gather of the parameter into an arena buffer that every other instruction
                reads; the update is adamw on the half, after an all_slice of the (all-reduced)
                gradient;
  ZeRO-1 style  model.layers.1.mlp.down_proj.weight stays whole, its moments split on dim 1:
                all_slice of parameter and gradient, adamw on the halves, all_gather of the
                updated half back into the whole parameter buffer.
AdamW is elementwise, so split.fb computes exactly what plain.fb computes. Every run is
  aprun --nproc 2 PLAN --data data.arrow --steps 4 --save-every 2 --lr 1e-3 --threads 1
        --quiet --metrics m.jsonl --save DIR [--weights W | --resume R]
Criteria (all exact, bitwise):
  seeded init   split's loss and grad_norm per step equal plain's, and its checkpoint-2 and
                checkpoint-4 files are byte-identical to plain's (the split tensors are gathered
                to rank 0 and written whole; the init of a split tensor is the block of the
                whole init);
  --weights     both plans from plain's checkpoint-2 model.safetensors: identical checkpoints
                (each rank reads its halves);
  --resume      split.fb resumed from plain's checkpoint-2, and plain.fb from split's, both
                end with checkpoint-4 byte-identical to plain's (a checkpoint resumes under
                either plan);
  write failure --save naming a file: the job fails within 60 s, the message names the folder.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_sharded_parameters.py [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import e2e_common as ec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(REPO, "runtime", "schema", "plan.fbs")
CONFIG = os.path.join(REPO, "frontends", "llama3", "configs", "tiny.json")
ZERO3 = [("model.embed_tokens.weight", 1), ("model.layers.0.self_attn.q_proj.weight", 0)]
ZERO1 = [("model.layers.1.mlp.down_proj.weight", 1)]


def flatc(args, cwd):
    p = subprocess.run(["flatc"] + args, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise ec.StageFailure("flatc %s failed: %s" % (" ".join(args), p.stderr))


def split_plan(plan):
    """Edits the JSON plan in place (see the module doc)."""
    def collective(kernel, src, dst, dim):
        return {"kernel": kernel, "inputs": [src], "outputs": [dst],
                "attributes": [{"name": "axes", "kind": "Ints", "ints": [0]}, {"name": "dim", "i": dim}]}

    for prog in plan["programs"]:
        bufs, insts = prog["buffers"], prog["instructions"]
        end = [prog["arena_bytes"]]

        def arena(name, shape):
            offset = (end[0] + 63) // 64 * 64
            n = 4 * int(np.prod(shape))
            end[0] = offset + n
            bufs.append({"name": name, "shape": list(shape), "kind": "Arena", "offset": offset, "bytes": n})
            return len(bufs) - 1

        def half(shape, dim):
            s = list(shape)
            s[dim] //= 2
            return s

        def split(b, dim):
            bufs[b]["shape"] = half(bufs[b]["shape"], dim)
            bufs[b]["bytes"] = 4 * int(np.prod(bufs[b]["shape"]))
            bufs[b]["dim_axes"] = [0 if d == dim else -1 for d in range(len(bufs[b]["shape"]))]

        def slots(name):
            p = next(i for i, b in enumerate(bufs) if b.get("kind", "Parameter") == "Parameter"
                     and b["name"] == name)
            index = bufs[p]["parameter"]
            m = [next(i for i, b in enumerate(bufs) if b.get("kind") == "OptimizerState"
                      and b["parameter"] == index and b["optimizer_slot"] == s)
                 for s in ("exp_avg", "exp_avg_sq")]
            adam = next(i for i in insts if i["kernel"] == "adamw" and i["inputs"][0] == p)
            return p, m, adam

        for name, dim in ZERO3:
            p, moments, adam = slots(name)
            full = arena(name + ".gathered", bufs[p]["shape"])
            grad = arena(name + ".grad_half", half(bufs[p]["shape"], dim))
            for inst in insts:
                if inst is not adam:
                    inst["inputs"] = [full if b == p else b for b in inst.get("inputs", [])]
            for b in bufs:
                if b.get("kind") == "Alias" and b.get("alias_of") == p:
                    b["alias_of"] = full
            g = adam["inputs"][1]
            adam["inputs"][1] = grad
            insts.insert(insts.index(adam), collective("all_slice", g, grad, dim))
            insts.insert(0, collective("all_gather", p, full, dim))
            for b in [p] + moments:
                split(b, dim)
        for name, dim in ZERO1:
            p, moments, adam = slots(name)
            ph = arena(name + ".half", half(bufs[p]["shape"], dim))
            gh = arena(name + ".grad_half", half(bufs[p]["shape"], dim))
            g = adam["inputs"][1]
            adam["inputs"][0], adam["inputs"][1], adam["outputs"][0] = ph, gh, ph
            k = insts.index(adam)
            insts[k:k + 1] = [collective("all_slice", p, ph, dim), collective("all_slice", g, gh, dim),
                              adam, collective("all_gather", ph, p, dim)]
            for b in moments:
                split(b, dim)
        prog["arena_bytes"] = end[0]


def aprun(plan, save, work, extra=(), steps=4):
    args = ["--nproc", "2", plan, "--data", "data.arrow", "--steps", str(steps), "--save-every", "2",
            "--lr", "1e-3", "--threads", "1", "--quiet", "--metrics", save + ".jsonl", "--save", save]
    ec.run_tool("aprun", args + list(extra), work)
    return os.path.join(work, save)


def same_files(a, b):
    """'' when the checkpoint folders a and b hold byte-identical files, else what differs."""
    diffs = []
    for f in ec.CHECKPOINT_FILES:
        with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
            if x.read() != y.read():
                diffs.append(f)
    return ", ".join(diffs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    report = ec.Report()
    start = time.time()
    with ec.temp_root("apc-sharded-", args.keep) as work:
        def setup():
            ec.apc_import(CONFIG, "m.mlir", work, 4, 8)
            ec.apc_compile("m.mlir", "plain.fb", work, cluster="cpu:2")
            flatc(["--json", "--strict-json", "--raw-binary", "-o", ".", SCHEMA, "--", "plain.fb"], work)
            with open(os.path.join(work, "plain.json")) as f:
                plan = json.load(f)
            split_plan(plan)
            with open(os.path.join(work, "split.json"), "w") as f:
                json.dump(plan, f)
            flatc(["-b", "-o", ".", SCHEMA, "split.json"], work)
            rng = np.random.default_rng(5)
            ec.write_arrow(os.path.join(work, "data.arrow"),
                           [list(map(int, rng.integers(3, 256, size=9))) for _ in range(16)])
            return True

        if not report.guard("setup", setup):
            return report.summary(start)
        dump, _ = ec.run_tool("aprun", ["--dump", "split.fb"], work)
        want = ["[256, 32]              split [-1, 0] model.embed_tokens.weight",
                "all_gather(b0) -> (b", "all_slice(b", "split [0, -1] exp_avg.model.layers.0.self_attn.q_proj"]
        missing = [w for w in want if w not in dump]
        report.check("split.fb loads and splits", not missing, "the dump lacks %s" % missing if missing else "")

        def seeded():
            plain = aprun("plain.fb", "plain", work)
            split = aprun("split.fb", "split", work)
            mp, ms = ec.read_metrics(plain + ".jsonl"), ec.read_metrics(split + ".jsonl")
            pairs = [(a["loss"], a["grad_norm"]) for a in mp]
            report.check("seeded: loss and grad norm per step", pairs == [(a["loss"], a["grad_norm"]) for a in ms]
                         and len(pairs) == 4, "plain %s split %s" % (pairs, [(a["loss"], a["grad_norm"]) for a in ms]))
            for step in (2, 4):
                d = same_files(os.path.join(plain, "checkpoint-%d" % step), os.path.join(split, "checkpoint-%d" % step))
                report.check("seeded: checkpoint-%d byte-identical" % step, not d, d)
            return plain, split

        got = report.guard("seeded", seeded)
        if not got:
            return report.summary(start)
        plain, split = got

        def weights():
            w = os.path.join(plain, "checkpoint-2", "model.safetensors")
            a = aprun("plain.fb", "plain-w", work, ["--weights", w], steps=2)
            b = aprun("split.fb", "split-w", work, ["--weights", w], steps=2)
            d = same_files(os.path.join(a, "checkpoint-2"), os.path.join(b, "checkpoint-2"))
            report.check("--weights: checkpoint-2 byte-identical", not d, d)

        report.guard("weights", weights)

        def resume():
            a = aprun("split.fb", "resume-split", work, ["--resume", os.path.join(plain, "checkpoint-2")])
            d = same_files(os.path.join(plain, "checkpoint-4"), os.path.join(a, "checkpoint-4"))
            report.check("--resume: split plan from plain's checkpoint", not d, d)
            b = aprun("plain.fb", "resume-plain", work, ["--resume", os.path.join(split, "checkpoint-2")])
            d = same_files(os.path.join(plain, "checkpoint-4"), os.path.join(b, "checkpoint-4"))
            report.check("--resume: plain plan from split's checkpoint", not d, d)

        report.guard("resume", resume)

        def write_failure():
            with open(os.path.join(work, "a-file"), "w") as f:
                f.write("not a folder")
            t = time.time()
            rc, out, err = ec.run_cmd("aprun", ["--nproc", "2", "split.fb", "--data", "data.arrow", "--steps", "2",
                                                "--threads", "1", "--quiet", "--save", "a-file"], work, timeout=60)
            report.check("write failure ends the job", rc != 0 and "cannot create the checkpoint folder" in err,
                         "exit %d in %.1fs: %s" % (rc, time.time() - t, err.strip()[-400:]))

        report.guard("write failure", write_failure)
    return report.summary(start)


if __name__ == "__main__":
    sys.exit(main())
