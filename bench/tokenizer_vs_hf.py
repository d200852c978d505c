#!/usr/bin/env python3
"""Tokenizer throughput of runtime/tokenizer beside Hugging Face `tokenizers`, same text.

Both encode the same documents (news-like generated text with some code, numbers and
non-Latin scripts, from the conformance corpus's generators) without special tokens;
the figures are MB/s and tokens/s, best of --rounds, one thread and all threads. Ours
runs in apc-tokenize --bench (C++, the tokenizer loaded once); HF's one-thread figure is
Tokenizer.encode called per document (documents are a few KB, so the Python call costs
little), its all-threads figure is encode_batch (Rayon). Token counts are checked equal.

usage: bench/tokenizer_vs_hf.py [--tokenizer PATH] [--mb 8] [--rounds 3] [--threads N]
Run with .venv/bin/python; apc-tokenize comes from build/bin.
"""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import check_tokenizer_vs_hf as corpus  # noqa: E402


def documents(mb):
    rng = random.Random(1)
    docs, size = [], 0
    while size < mb * 1e6:
        parts = [corpus.news(rng) for _ in range(rng.randint(5, 30))]
        if rng.random() < 0.2:
            parts.append(rng.choice(corpus.CODE))
        if rng.random() < 0.2:
            parts.append(" ".join(rng.choice(corpus.SCRIPTS) for _ in range(5)))
        doc = "\n\n".join(parts)
        docs.append(doc)
        size += len(doc.encode("utf-8"))
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=os.environ.get("APC_LLAMA3_TOKENIZER", corpus.find_tokenizer()))
    ap.add_argument("--mb", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bin", default=os.environ.get("APC_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    args = ap.parse_args()
    import tokenizers

    docs = documents(args.mb)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    hf = tokenizers.Tokenizer.from_file(args.tokenizer)

    def hf_one():
        t = time.perf_counter()
        n = sum(len(hf.encode(d, add_special_tokens=False).ids) for d in docs)
        return n, time.perf_counter() - t

    def hf_all():
        t = time.perf_counter()
        n = sum(len(e.ids) for e in hf.encode_batch(docs, add_special_tokens=False))
        return n, time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        records = os.path.join(tmp, "docs.bin")
        with open(records, "wb") as f:
            for d in docs:
                b = d.encode("utf-8")
                f.write(struct.pack("<I", len(b)) + b)

        def ours(threads):
            out = subprocess.run([os.path.join(args.bin, "apc-tokenize"), args.tokenizer, records,
                                  "--bench", "--threads", str(threads)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            return r["tokens"], r["seconds"]

        rows = []
        for name, fn in [("apc (1 thread)", lambda: ours(1)), ("hf tokenizers (1 thread)", hf_one),
                         ("apc (%d threads)" % args.threads, lambda: ours(args.threads)),
                         ("hf tokenizers (%d threads)" % args.threads, hf_all)]:
            best = min((fn() for _ in range(args.rounds)), key=lambda r: r[1])
            rows.append((name,) + best)
    print("%s: %d documents, %.1f MB; best of %d" % (os.path.basename(args.tokenizer), len(docs),
                                                      nbytes / 1e6, args.rounds))
    print("%-28s %10s %12s %8s" % ("", "MB/s", "tokens/s", "tokens"))
    for name, n, s in rows:
        print("%-28s %10.2f %12.0f %8d" % (name, nbytes / 1e6 / s, n / s, n))
    if len({r[1] for r in rows}) != 1:
        print("warning: token counts differ")
    speed = [n / s for _, n, s in rows]
    print("ratio apc/hf tokens/s: %.2fx (1 thread), %.2fx (%d threads)" % (
        speed[0] / speed[1], speed[2] / speed[3], args.threads))


if __name__ == "__main__":
    main()
