#!/usr/bin/env python3
"""End-to-end check: `aprun` killed with SIGKILL and resumed reproduces the uninterrupted run exactly.

Setup (temp directory): a small Llama 3 (hidden 128, 4 layers, vocab 512, ~0.7M parameters),
batch 8 x seq 64, plan compiled with --precision fp32; an Arrow IPC *file* (list<int64>) of
43 rows of 20..99 tokens (5 batches per epoch, 3 rows dropped per epoch), so 12 steps cross
two epoch boundaries and some checkpoints are mid-epoch. Every aprun run uses
  --steps 12 --lr 1e-3 --seed 7 (shuffled) --pad-id 0 --threads 1 --save-every 2
(one thread so that a step takes tens of milliseconds and the kill lands mid-run, and so
that all runs do the same floating-point work in the same order).

  ref     uninterrupted run: --save ref --metrics ref.jsonl
  kill-*  the same run into another folder, killed with SIGKILL (subprocess + os.kill):
            at-ckpt4    as soon as checkpoint-4 appears (polling the folder)
            random      at a random moment after checkpoint-4 appears (the delay is printed)
            mid-write   as soon as a temporary '.checkpoint-*' folder appears after
                        checkpoint-4 (i.e. while a later checkpoint is being written;
                        if the write is too fast to be seen, wherever the poll lands)
          After the kill, every checkpoint-* folder present must be whole: exactly
          config.json, model.safetensors, optimizer.safetensors, trainer_state.json; both
          safetensors files parse, trainer_state.json's step matches the folder name, and
          the files are byte-identical to the uninterrupted run's checkpoint of that step.
          A stray temporary folder '.checkpoint-<latest+2>.tmp-99999999' claiming a later
          step (with a bogus model) is then planted; `--resume DIR` must ignore it (and any
          temporary folder left by the kill), pick the latest checkpoint-N, and finish the
          12 steps into the same folder. The resumed steps' loss and grad_norm must equal the
          uninterrupted run's exactly (the JSON text of the number in the metrics file), and
          checkpoint-12 (and every later checkpoint the resumed run wrote) must be
          byte-identical to the uninterrupted run's. The killed run's own metrics lines
          must match too.
  from-2  --resume kill-at-ckpt4/checkpoint-2 (an explicitly named, older checkpoint)
          into a fresh folder: steps 3..12 and checkpoint-12 equal as above.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout).
Run: .venv/bin/python test/e2e/check_resume_after_kill.py [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
from e2e_common import CHECKPOINT_FILES, StageFailure, checkpoint_folders  # noqa: E402

BATCH, SEQ = 8, 64
STEPS = 12
SAVE_EVERY = 2
KILL_AFTER = 4  # kill once checkpoint-KILL_AFTER (or later) exists
NUM_ROWS = 43
STRAY_PID = 99999999

CONFIG = common.llama_config(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def write_data(path):
    rng = np.random.default_rng(2024)
    rows = [[int(t) for t in rng.integers(1, CONFIG["vocab_size"], size=int(rng.integers(20, 100)))]
            for _ in range(NUM_ROWS)]
    common.write_arrow(path, rows, "int64", rows_per_batch=10)


def common_flags(data):
    return ["plan.fb", "--data", data, "--steps", str(STEPS), "--lr", "1e-3", "--seed", "7",
            "--pad-id", "0", "--threads", "1", "--save-every", str(SAVE_EVERY)]


# ------------------------------------------------------------------------------ metrics


_NUM = r"(-?[0-9][0-9.eE+-]*|NaN|null|Infinity|-Infinity)"


def read_metrics_text(path):
    """{step: (loss text, grad_norm text)} from complete lines (a line cut by the kill is ignored)."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        text = f.read()
    for line in text.split("\n")[:-1]:  # the part after the last newline is incomplete
        if not line.strip():
            continue
        obj = json.loads(line)
        loss = re.search(r'"loss":' + _NUM, line)
        norm = re.search(r'"grad_norm":' + _NUM, line)
        out.setdefault(int(obj["step"]), []).append((loss.group(1) if loss else None,
                                                     norm.group(1) if norm else None))
    return out


def compare_metrics(got, want, steps):
    """Problems (list of strings) comparing metrics text for `steps`."""
    problems = []
    for s in steps:
        if s not in got:
            problems.append("step %d missing" % s)
            continue
        if len(got[s]) != 1:
            problems.append("step %d logged %d times" % (s, len(got[s])))
        for g in got[s]:
            if g != want[s][0]:
                problems.append("step %d: loss %s grad_norm %s, uninterrupted %s %s"
                                % (s, g[0], g[1], want[s][0][0], want[s][0][1]))
    extra = sorted(set(got) - set(steps))
    if extra:
        problems.append("unexpected steps %s" % extra)
    return problems


# ------------------------------------------------------------------------------ checkpoints


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def inspect_checkpoint(folder, step, ref_folder):
    """Problems with one checkpoint folder: whole, parses, equals the reference's bytes."""
    problems = []
    files = sorted(os.listdir(folder))
    if files != CHECKPOINT_FILES:
        return ["files %s" % files]
    try:
        model, _, opt, _, st, _ = common.load_checkpoint(folder)
    except (OSError, ValueError) as e:
        return ["does not load: %s: %s" % (type(e).__name__, e)]
    if len(opt) != 2 * len(model) or not model:
        problems.append("%d model and %d optimizer tensors" % (len(model), len(opt)))
    if st.get("step") != step:
        problems.append("trainer_state step %s" % st.get("step"))
    for name in CHECKPOINT_FILES:
        if not same_bytes(os.path.join(folder, name), os.path.join(ref_folder, name)):
            problems.append("%s differs from the uninterrupted run's" % name)
    return problems


def plant_stray(d, step):
    """A temporary folder as a crashed writer would leave it, claiming a later step."""
    stray = os.path.join(d, ".checkpoint-%d.tmp-%d" % (step, STRAY_PID))
    os.makedirs(stray, exist_ok=True)
    with open(os.path.join(stray, "trainer_state.json"), "w") as f:
        json.dump({"step": step, "epoch": 0, "batch_in_epoch": 0, "seed": 7, "num_rows": NUM_ROWS,
                   "data": "x", "format": "apc-trainer-state-1"}, f)
    with open(os.path.join(stray, "model.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"bogus\":")  # truncated on purpose
    return stray


# ------------------------------------------------------------------------------ runs


def run_killed(name, mode, root, data, ref_seconds, rep):
    """Starts a run into root/name, kills it per `mode`; returns (folder, metrics path, killed?)."""
    d = os.path.join(root, name)
    metrics = os.path.join(root, name + ".jsonl")
    cmd = [common.bin_path("aprun")] + common_flags(data) + ["--quiet", "--save", d, "--metrics", metrics]
    common.wait_for_binary(cmd[0])
    err_path = os.path.join(root, name + ".stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=err)
    where = "?"
    try:
        deadline = time.time() + 120
        target = "checkpoint-%d" % KILL_AFTER
        while True:
            if proc.poll() is not None:
                break
            names = os.listdir(d) if os.path.isdir(d) else []
            if target in names or any(n.startswith("checkpoint-") and n != target and
                                      int(n.split("-")[1]) > KILL_AFTER for n in names
                                      if re.fullmatch(r"checkpoint-\d+", n)):
                break
            if time.time() > deadline:
                raise StageFailure("%s: no checkpoint-%d after 120 s" % (name, KILL_AFTER))
            time.sleep(0.0005)
        if proc.poll() is None:
            if mode == "random":
                # Up to ~80% of the expected rest of the run (8 of 12 steps).
                delay = random.uniform(0.0, 0.8 * ref_seconds * (STEPS - KILL_AFTER) / STEPS)
                where = "random delay %.3fs after checkpoint-%d appeared" % (delay, KILL_AFTER)
                time.sleep(delay)
            elif mode == "mid-write":
                seen = set(os.listdir(d))
                t_end = time.time() + 60
                where = "no temporary folder seen before exit"
                while proc.poll() is None and time.time() < t_end:
                    names = os.listdir(d)
                    tmp = [n for n in names if n.startswith(".checkpoint-")]
                    if tmp:
                        where = "while %s existed" % tmp[0]
                        break
                    new = [n for n in names if n not in seen]
                    if new:  # the write was too quick to be seen: kill right after it
                        where = "right after %s appeared (no temporary folder seen)" % new[0]
                        break
                    time.sleep(0.0001)
            else:
                where = "as soon as checkpoint-%d appeared" % KILL_AFTER
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:  # also on errors above: never leave it running
            os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=60)
    killed = rc == -signal.SIGKILL
    if killed:
        rep.info("%s: killed %s" % (name, where))
    elif rc == 0:
        rep.info("%s: the run finished before the kill landed (%s); resume is not exercised" % (name, where))
    else:
        with open(err_path, "rb") as f:
            raise StageFailure("%s: aprun exited %d before the kill\n--- stderr ---\n%s"
                               % (name, rc, f.read().decode(errors="replace")))
    return d, metrics, killed


def check_folder_after_kill(name, d, ref_dir, rep):
    cks = checkpoint_folders(d)
    hidden = sorted(n for n in os.listdir(d) if n.startswith("."))
    rep.info("%s: after the kill: checkpoints %s, hidden entries %s" % (name, sorted(cks), hidden))
    problems = []
    for step, folder in sorted(cks.items()):
        for p in inspect_checkpoint(folder, step, os.path.join(ref_dir, "checkpoint-%d" % step)):
            problems.append("checkpoint-%d: %s" % (step, p))
    if not cks or min(cks) != SAVE_EVERY:
        problems.append("expected checkpoints from %d on, found %s" % (SAVE_EVERY, sorted(cks)))
    expected = list(range(SAVE_EVERY, (max(cks) if cks else 0) + 1, SAVE_EVERY))
    if sorted(cks) != expected:
        problems.append("checkpoints %s, expected %s" % (sorted(cks), expected))
    rep.check("%s: every checkpoint-* after the kill is whole, loads, equals the uninterrupted one" % name,
              not problems, "; ".join(problems[:6]) or "%d checkpoints" % len(cks))
    return cks


def check_resumed(name, d, ref_dir, ref_metrics, from_step, metrics, rep):
    got = read_metrics_text(metrics)
    problems = compare_metrics(got, ref_metrics, range(from_step + 1, STEPS + 1))
    rep.check("%s: resumed steps %d..%d: loss and grad_norm equal the uninterrupted run's exactly"
              % (name, from_step + 1, STEPS), not problems,
              "; ".join(problems[:4]) or "e.g. step %d loss %s" % (STEPS, got[STEPS][0][0]))
    cks = checkpoint_folders(d)
    problems = []
    if STEPS not in cks:
        problems.append("no checkpoint-%d" % STEPS)
    else:
        for f in ("model.safetensors", "optimizer.safetensors", "trainer_state.json"):
            if not same_bytes(os.path.join(cks[STEPS], f), os.path.join(ref_dir, "checkpoint-%d" % STEPS, f)):
                problems.append("checkpoint-%d/%s differs" % (STEPS, f))
    for step, folder in sorted(cks.items()):
        if step > from_step and step != STEPS:
            for p in inspect_checkpoint(folder, step, os.path.join(ref_dir, "checkpoint-%d" % step)):
                problems.append("checkpoint-%d: %s" % (step, p))
    rep.check("%s: final model.safetensors (and optimizer, trainer_state, later checkpoints) byte-identical"
              % name, not problems, "; ".join(problems[:4]))


def kill_and_resume(name, mode, root, data, ref_dir, ref_metrics, ref_seconds, rep):
    d, metrics, killed = run_killed(name, mode, root, data, ref_seconds, rep)
    cks = check_folder_after_kill(name, d, ref_dir, rep)
    own = read_metrics_text(metrics)
    problems = compare_metrics(own, ref_metrics, sorted(own))
    rep.check("%s: the killed run's metrics lines equal the uninterrupted run's" % name, not problems,
              "; ".join(problems[:4]) or "steps 1..%d" % (max(own) if own else 0))
    if not killed or not cks:
        return d
    latest = max(cks)
    if latest >= STEPS:
        rep.info("%s: the kill landed after the last checkpoint; nothing to resume" % name)
        return d
    stray = plant_stray(d, latest + SAVE_EVERY)
    resumed_metrics = os.path.join(root, name + ".resumed.jsonl")
    try:
        out, _ = common.run_tool("aprun", common_flags(data) + ["--save", d, "--metrics", resumed_metrics,
                                                                "--resume", d], root)
    except StageFailure as e:
        rep.check("%s: aprun --resume %s" % (name, name), False, str(e))
        return d
    m = re.search(r"resumed from (\S+) at step (\d+)", out)
    picked = (os.path.basename(m.group(1).rstrip("/")), int(m.group(2))) if m else None
    rep.check("%s: --resume DIR picks checkpoint-%d (ignoring %s and other temporary folders)"
              % (name, latest, os.path.basename(stray)), picked == ("checkpoint-%d" % latest, latest),
              "aprun said: %s" % (m.group(0) if m else out[:300]))
    check_resumed(name, d, ref_dir, ref_metrics, latest, resumed_metrics, rep)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and print its path")
    args = ap.parse_args()
    rep = common.Report()
    start = time.time()
    with common.temp_root("apc-resume-e2e-", args.keep) as root:
        run_checks(root, rep)
    return rep.summary(start)


def run_checks(root, rep):
    try:
        common.import_llama3(CONFIG, root, BATCH, SEQ)
        common.apc_compile("m.mlir", "plan.fb", root)
        data = os.path.join(root, "data.arrow")
        write_data(data)

        ref_dir = os.path.join(root, "ref")
        ref_metrics_path = os.path.join(root, "ref.jsonl")
        t0 = time.time()
        common.run_tool("aprun", common_flags(data) + ["--quiet", "--save", ref_dir, "--metrics", ref_metrics_path],
                        root)
        ref_seconds = time.time() - t0
        ref_metrics = read_metrics_text(ref_metrics_path)
        ok = sorted(ref_metrics) == list(range(1, STEPS + 1)) and \
            sorted(checkpoint_folders(ref_dir)) == list(range(SAVE_EVERY, STEPS + 1, SAVE_EVERY))
        rep.check("uninterrupted run: %d steps, checkpoints every %d" % (STEPS, SAVE_EVERY), ok,
                  "%.2fs, metrics steps %s, checkpoints %s"
                  % (ref_seconds, sorted(ref_metrics), sorted(checkpoint_folders(ref_dir))))
        if not ok:
            raise StageFailure("the uninterrupted run is incomplete")
    except StageFailure as e:
        rep.check("setup", False, str(e))
        return

    first = None
    for name, mode in (("kill-at-ckpt4", "at-ckpt4"), ("kill-random", "random"),
                       ("kill-mid-write", "mid-write")):
        d = rep.guard(name, kill_and_resume, name, mode, root, data, ref_dir, ref_metrics, ref_seconds, rep)
        first = first or d

    # Resume from an explicitly named older checkpoint into a fresh folder.
    src = os.path.join(first or "", "checkpoint-%d" % SAVE_EVERY)
    if first and os.path.isdir(src):
        d = os.path.join(root, "from-2")
        mpath = os.path.join(root, "from-2.jsonl")
        try:
            out, _ = common.run_tool("aprun", common_flags(data) + ["--save", d, "--metrics", mpath, "--resume", src],
                                     root)
            m = re.search(r"resumed from (\S+) at step (\d+)", out)
            rep.check("from-2: --resume .../checkpoint-2 starts at step 2",
                      bool(m) and int(m.group(2)) == SAVE_EVERY, m.group(0) if m else "no 'resumed from' line")
            check_resumed("from-2", d, ref_dir, ref_metrics, SAVE_EVERY, mpath, rep)
        except StageFailure as e:
            rep.check("from-2: aprun --resume checkpoint-2", False, str(e))
    else:
        rep.check("from-2: a killed run's checkpoint-2 exists", False, src)


if __name__ == "__main__":
    sys.exit(main())
