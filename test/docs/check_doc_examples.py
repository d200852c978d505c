#!/usr/bin/env python3
"""The docs' examples, run: every ```sh block of README.md and docs/**/*.md, as written.

A newcomer copies these blocks into a shell; this test does the same, so that an example
that no longer works fails here rather than for them. Per markdown file, its blocks run
in document order in one scratch folder (a later block may use what an earlier one
wrote, as a reader following the page would), with `bash -e -o pipefail`, `build/bin/`
and `apc`/`aprun` on PATH, and HOME pointing into the scratch folder.

What the examples need from outside the repository, the scratch folder holds (made here,
no download):
  frontends/                 the repository's (configs)
  build/bin/                 the tools under test ($APC_BIN_DIR)
  Meta-Llama-3-8B/           a Hugging Face model folder: config.json (a 2-layer Llama 3, hidden 32,
                             with the real vocabulary of 128256), model.safetensors
                             (random), and the real Llama 3 tokenizer.json and
                             tokenizer_config.json from ../shared/data/llama3/
  llama3/tokenizer.json      the same tokenizer (docs/data.md's spelling)
  ~/.cache/huggingface/datasets/cnn_dailymail/3.0.0/<hash>/cnn_dailymail-train-0000N-of-00003.arrow
                             a cnn_dailymail-shaped set of 3 text files (article,
                             highlights, id) where Hugging Face's cache puts them (the
                             docs write the hash folder as *)
  cnn_train/                 the same as a save_to_disk folder

Sizes are made tiny by the SUBSTITUTIONS below, each printed where it applies: Llama 3
8B's config becomes the 2-layer model above, batch 64 x seq 1024 becomes 8 x 64, a GPU
cluster becomes as many CPU processes, counts of 100 steps or more are divided by 50. Nothing else of a command
changes.

A block that cannot run here says so in the markdown, on the line before its fence:
    <!-- docs-test: not run: REASON -->
Each such block is listed with its reason at the end; a marker without a reason fails.

The tokenizer is ../shared/data/llama3/tokenizer.json (APC_LLAMA3_TOKENIZER overrides);
without it this test FAILS, saying so.

Run: .venv/bin/python test/docs/check_doc_examples.py [--file README.md ...] [--keep]
Prints one PASS/FAIL line per block and ends with "N passed, M failed"; exit 0 iff M == 0.
"""
import argparse
import glob
import os
import random
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "e2e"))
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402

TOKENIZER = os.environ.get("APC_LLAMA3_TOKENIZER") or os.path.normpath(
    os.path.join(REPO, "..", "shared", "data", "llama3", "tokenizer.json"))
CNN_FILE = ".cache/huggingface/datasets/cnn_dailymail/3.0.0/1b3c71476f6d152c31c1730e83ccb08bcf23e348/cnn_dailymail-train-00000-of-00003.arrow"
MARKER = re.compile(r"^<!--\s*docs-test:\s*not run:?(.*?)-->\s*$")
BLOCK_TIMEOUT = 600

# (pattern, replacement, why): the only changes made to a command.
SUBSTITUTIONS = [
    (r"frontends/llama3/configs/Meta-Llama-3-8B\.json", "Meta-Llama-3-8B/config.json",
     "Llama 3 8B -> a 2-layer Llama 3 with the real vocabulary"),
    (r"--batch 64 --seq-len 1024", "--batch 8 --seq-len 64", "batch 64 x seq 1024 -> 8 x 64"),
    (r"--seq-len 1024", "--seq-len 64", "seq 1024 -> 64"),
    (r"\bh100-sxm:(\d+)\b", r"cpu:\1", "GPUs -> as many CPU processes"),
    (r"--steps (\d{3,})\b", lambda m: "--steps %d" % (int(m.group(1)) // 50),
     "100 steps or more / 50 (a resumed run still goes on from its checkpoint)"),
    (r"--save-every (\d{2,})\b", lambda m: "--save-every %d" % max(1, int(m.group(1)) // 50),
     "a save every 10 steps or more / 50"),
    (r"--threads 16\b", "--threads 2", "16 threads -> this machine's 2"),
]

WORDS = ("the police said on Tuesday that a man , aged 34 , was arrested after the crash in "
         "Manchester . It's the third time this year ; officials don't know why . (CNN) --").split(" ")


SHELL_FENCES = ("bash", "shell", "console", "zsh", "shell-session")


def extract_blocks(path):
    """[(line, text, not_run_reason or None)] for each ```sh block of the file. A block
    fenced as another shell (```bash, ...) would be passed over without a word: refused."""
    blocks, lines = [], open(path, encoding="utf-8").read().split("\n")
    i = 0
    fenced = False
    while i < len(lines):
        if lines[i].startswith("```") and lines[i].strip() != "```sh":
            if not fenced and lines[i][3:].strip() in SHELL_FENCES:
                raise ValueError("%s:%d: a ```%s block: write ```sh, which this test runs"
                                 % (path, i + 1, lines[i][3:].strip()))
            fenced = not fenced
        if lines[i].strip() == "```sh":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            m = MARKER.match(lines[k].strip()) if k >= 0 else None
            reason = None
            if m:
                reason = m.group(1).strip() or ""
            blocks.append((start, "\n".join(lines[start:j]), reason))
            i = j
        i += 1
    return blocks


def substitute(text):
    applied = []
    for pattern, repl, why in SUBSTITUTIONS:
        text, n = re.subn(pattern, repl, text)
        if n:
            applied.append(why)
    return text, applied


def write_text_stream(path, n, seed):
    rng = random.Random(seed)
    cols = ("article", "highlights", "id")
    rows = []
    for i in range(n):
        s = rng.randrange(len(WORDS))
        rows.append({"article": " ".join(WORDS[(s + k) % len(WORDS)] for k in range(rng.randint(5, 80))),
                     "highlights": " ".join(WORDS[(s + 2 * k) % len(WORDS)] for k in range(rng.randint(2, 12))),
                     "id": "%040x" % i})
    schema = pa.schema([pa.field(c, pa.string()) for c in cols])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with pa.OSFile(path, "wb") as sink, ipc.new_stream(sink, schema) as w:
        w.write_batch(pa.record_batch([pa.array([r[c] for r in rows], pa.string()) for c in cols],
                                      schema=schema))


def prepare(scratch, bin_dir):
    """The files the examples name that are not the repository's (see the docstring)."""
    os.makedirs(os.path.join(scratch, "build"))
    os.symlink(bin_dir, os.path.join(scratch, "build", "bin"))
    os.symlink(os.path.join(REPO, "frontends"), os.path.join(scratch, "frontends"))
    model = os.path.join(scratch, "Meta-Llama-3-8B")
    os.makedirs(model)
    cfg = common.llama_config(vocab_size=128256, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              max_position_embeddings=1024)
    cfg["bos_token_id"], cfg["eos_token_id"] = 128000, 128001
    common.write_config(cfg, os.path.join(model, "config.json"))
    params = ref.random_params(ref.LlamaDims(cfg), seed=0, std=0.02, norm_std=0.0)
    ref.write_safetensors(os.path.join(model, "model.safetensors"),
                          {k: np.asarray(v, dtype=np.float32) for k, v in params.items()},
                          metadata={"format": "pt"})
    tokenizer_dir = os.path.dirname(TOKENIZER)
    os.makedirs(os.path.join(scratch, "llama3"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(tokenizer_dir, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(model, name))
            shutil.copy(src, os.path.join(scratch, "llama3", name))
    home = os.path.join(scratch, "home")
    for shard in range(3):  # naming one shard of a set means the whole set
        write_text_stream(os.path.join(home, CNN_FILE.replace("00000-of", "%05d-of" % shard)), 100, shard)
    os.makedirs(os.path.join(scratch, "cnn_train"))
    shutil.copy(os.path.join(home, CNN_FILE), os.path.join(scratch, "cnn_train", "data-00000-of-00001.arrow"))
    return home


def markdown_files(only):
    files = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"),
                                                                               recursive=True))
    return [f for f in files if not only or f in only]



def run_file(md, root, bin_dir, rep, not_run):
    blocks = extract_blocks(os.path.join(REPO, md))
    if not blocks:
        return
    scratch = os.path.join(root, md.replace("/", "_"))
    os.makedirs(scratch)
    home = prepare(scratch, bin_dir)
    env = dict(os.environ)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["HOME"] = home
    env.pop("APC_JOB_TOKEN", None)
    for line, text, reason in blocks:
        where = "%s:%d" % (md, line)
        if reason is not None:
            if not reason:
                rep.check("%s: a not-run marker says why" % where, False, "the marker has no reason")
            else:
                not_run.append((where, reason))
            continue
        command, applied = substitute(text)
        for why in applied:
            rep.info("%s: %s" % (where, why))
        t0 = time.time()
        try:
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=scratch, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT)
            out, code = p.stdout.decode("utf-8", "replace"), p.returncode
        except subprocess.TimeoutExpired as e:
            out, code = (e.stdout or b"").decode("utf-8", "replace"), "timeout after %d s" % BLOCK_TIMEOUT
        ok = code == 0
        rep.check("%s: %d command lines%s" % (where, sum(1 for ln in command.split("\n") if ln.strip()
                                                        and not ln.lstrip().startswith("#")
                                                        and not ln.rstrip().endswith("\\")) ,
                                              "" if ok else " (exit %s)" % code),
                  ok, "%.1fs" % (time.time() - t0))
        if not ok:
            print("\n".join("     | " + ln for ln in out.rstrip().split("\n")[-40:]))
            print("     | (the block as run:)")
            print("\n".join("     | " + ln for ln in command.split("\n")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", action="append", help="only these markdown files (repository-relative)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders and print where")
    args = ap.parse_args()
    rep = common.Report()
    start = time.time()
    if not os.path.exists(TOKENIZER):
        rep.check("the Llama 3 tokenizer is here", False,
                  "%s does not exist (set APC_LLAMA3_TOKENIZER to the Llama 3 tokenizer.json); the "
                  "examples that tokenize need it" % TOKENIZER)
        return rep.summary(start)
    bin_dir = os.path.abspath(os.environ.get("APC_BIN_DIR") or os.path.join(REPO, "build", "bin"))
    not_run = []
    files = markdown_files(args.file)
    unknown = sorted(set(args.file or []) - set(files))
    if unknown:
        rep.check("the --file pages exist", False, "not README.md or under docs/: %s" % " ".join(unknown))
    with common.temp_root("apc-docs-", args.keep) as root:
        for md in files:
            rep.guard(md, run_file, md, root, bin_dir, rep, not_run)
    if rep.passed == 0:
        rep.check("some command block ran", False, "no ```sh block was found")
    for where, reason in not_run:
        rep.info("not run: %s: %s" % (where, reason))
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
