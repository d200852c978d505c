"""End to end: a cnn_dailymail-shaped text dataset (a save_to_disk folder of 2 shards,
columns article, highlights, id; text generated here) with the REAL Llama 3 tokenizer.

1. `apc data tokenize` gives exactly the ids of Hugging Face `tokenizers` for the templated
   texts (BOS from the post-processor, truncated to --seq-len), in row order, with 2 threads.
2. `aprun --tokenizer` on the text dataset and `aprun` on the pre-tokenized file give
   identical losses (5 steps, tiny model with the real vocabulary of 128256), and the
   loss goes down over 30 steps. The pre-tokenized file records the pad id (the
   tokenizer's eos_token: Llama 3 names no pad_token), which aprun then pads with unasked.
3. Interrupting `apc data tokenize` (SIGINT) leaves no file under the final name, nor a
   temporary one; a dataset without the template's columns is refused by name.

The tokenizer is ../shared/data/llama3/tokenizer.json (APC_LLAMA3_TOKENIZER overrides);
without it this test FAILS.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.environ.get("APC_LLAMA3_TOKENIZER") or os.path.normpath(
    os.path.join(HERE, "..", "..", "..", "shared", "data", "llama3", "tokenizer.json"))
SEQ, BATCH, ROWS = 64, 4, 300
TEMPLATE = "[SUMMARIZE] {article} [/SUMMARIZE]\n{highlights}"
CONFIG = common.llama_config(vocab_size=128256, hidden_size=32, intermediate_size=64,
                             num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=SEQ)

WORDS = ("the police said on Tuesday that a man , aged 34 , was arrested after the crash "
         "in Manchester . It's the third time this year ; officials don't know why . "
         "Café naïve 東京 🙂 £1,200 (CNN) -- \"quoted\" U.S. 2015").split(" ")


def make_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        # A repetitive pattern so that a tiny model learns something in 30 steps.
        start = rng.randrange(len(WORDS))
        article = " ".join(WORDS[(start + k) % len(WORDS)] for k in range(rng.randint(0, 60)))
        if i % 17 == 0:
            article = ""
        highlights = " ".join(WORDS[(start + 2 * k) % len(WORDS)] for k in range(rng.randint(1, 12)))
        rows.append({"article": article, "highlights": highlights, "id": "%040x" % i})
    return rows


def write_stream(path, rows, string_type, rows_per_batch):
    cols = ("article", "highlights", "id")
    schema = pa.schema([pa.field(c, string_type) for c in cols])
    with pa.OSFile(path, "wb") as sink, ipc.new_stream(sink, schema) as w:
        for i in range(0, len(rows), rows_per_batch):
            chunk = rows[i:i + rows_per_batch]
            w.write_batch(pa.record_batch([pa.array([r[c] for r in chunk], string_type) for c in cols],
                                          schema=schema))


def write_save_to_disk(folder, rows):
    os.makedirs(folder)
    half = len(rows) // 2
    names = ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    write_stream(os.path.join(folder, names[0]), rows[:half], pa.string(), 50)
    write_stream(os.path.join(folder, names[1]), rows[half:], pa.large_string(), 37)
    with open(os.path.join(folder, "state.json"), "w") as f:
        json.dump({"_data_files": [{"filename": n} for n in names], "_split": "train"}, f)
    with open(os.path.join(folder, "dataset_info.json"), "w") as f:
        json.dump({"dataset_name": "cnn_dailymail"}, f)


def read_ids(path):
    with pa.OSFile(path, "rb") as f:
        table = ipc.open_stream(f).read_all()
    if table.schema.field("input_ids").type != pa.list_(pa.int32()):
        raise common.StageFailure("input_ids has type %s" % table.schema.field("input_ids").type)
    return table.column("input_ids").to_pylist()


def losses(out):
    return [float(line.split("| loss ")[1].split(" ")[0]) for line in out.splitlines()
            if line.startswith("step ")]


def main():
    rep = common.Report()
    start = time.time()
    if not os.path.exists(TOKENIZER):
        rep.check("llama3 tokenizer present", False,
                  "%s does not exist (set APC_LLAMA3_TOKENIZER to the Llama 3 tokenizer.json)" % TOKENIZER)
        return rep.summary(start)
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        rep.check("HF tokenizers importable", False, str(e))
        return rep.summary(start)
    hf = Tokenizer.from_file(TOKENIZER)
    rows = make_rows(ROWS, 1)
    with common.temp_root("apc_text_") as root:
        data = os.path.join(root, "cnn")
        write_save_to_disk(data, rows)

        # 1. apc data tokenize vs HF tokenizers
        def tokenize():
            out, err = common.run_tool("apc", ["data", "tokenize", data, "-o", "tok.arrow", "--tokenizer",
                                               TOKENIZER, "--seq-len", str(SEQ), "--threads", "2",
                                               "--rows-per-batch", "64"], root)
            rep.check("tokenize prints throughput", "tok/s" in out and "rows/s" in err, out.strip())
            got = read_ids(os.path.join(root, "tok.arrow"))
            texts = [TEMPLATE.format(**r) for r in rows]
            want = [e.ids[:SEQ] for e in hf.encode_batch(texts, add_special_tokens=True)]
            bad = [i for i in range(len(want)) if i >= len(got) or got[i] != want[i]]
            rep.check("apc data tokenize == HF tokenizers", len(got) == len(want) and not bad,
                      "%d rows, %d differ%s" % (len(got), len(bad),
                                                 (" (first: row %d)" % bad[0]) if bad else ""))
            # The post-processor decides BOS: the comparison above covers it either way.
            rep.info("BOS <|begin_of_text|> first in %d of %d rows (as the post-processor says)"
                     % (sum(1 for r in got if r and r[0] == hf.token_to_id("<|begin_of_text|>")), len(got)))
            rep.check("some rows truncated, some short",
                      any(len(r) == SEQ for r in got) and any(len(r) < SEQ for r in got))
        rep.guard("tokenize", tokenize)

        # 2. aprun on text vs on the pre-tokenized file
        def train():
            common.import_llama3(CONFIG, root, BATCH, SEQ)
            common.apc_compile("m.mlir", "plan.fb", root)
            flags = ["plan.fb", "--lr", "3e-3", "--seed", "3", "--pad-id", "0", "--threads", "2"]
            text_out, _ = common.run_tool("aprun", flags + ["--data", data, "--tokenizer", TOKENIZER,
                                                            "--steps", "30"], root)
            tok_out, _ = common.run_tool("aprun", flags + ["--data", "tok.arrow", "--steps", "5"], root)
            a, b = losses(text_out), losses(tok_out)
            rep.check("text and pre-tokenized losses identical (5 steps)", len(a) == 30 and a[:5] == b,
                      "text %s vs tokens %s" % (a[:5], b))
            first, last = sum(a[:5]) / 5, sum(a[-5:]) / 5
            rep.check("loss goes down over 30 steps", last < first - 0.5,
                      "mean of first 5 %.3f, last 5 %.3f" % (first, last))
            rep.check("aprun reports tokenization", "tokenized " in text_out,
                      [l for l in text_out.splitlines() if l.startswith("tokenized")][:1].__str__())
            rc, _, err = common.run_cmd("aprun", ["plan.fb", "--data", data, "--tokenizer", TOKENIZER,
                                                  "--steps", "1", "--pad-id", "0", "--template", "{title}: {article}"], root)
            rep.check("missing template column refused by name",
                      rc == 1 and "no column 'title'" in err and "'highlights'" in err, err.strip())
            # Llama 3's tokenizer_config.json names no pad_token: its eos pads, said first.
            rc, out, err = common.run_cmd("aprun", ["plan.fb", "--data", data, "--tokenizer", TOKENIZER,
                                                    "--steps", "1"], root)
            eos = hf.token_to_id("<|end_of_text|>")
            rep.check("no pad id: the tokenizer's eos_token pads, said on the first line",
                      rc == 0 and out.splitlines()[:1] == [
                          "aprun: padding with id %d, the tokenizer's eos_token (its tokenizer_config.json "
                          "names no pad_token; padded positions never count in the loss; --pad-id N to "
                          "choose)" % eos], (out + err).strip()[:400])
            # apc data tokenize recorded that pad id in tok.arrow: aprun on it needs no --pad-id,
            # says where the id came from, and trains exactly as with --pad-id <eos>.
            with pa.OSFile(os.path.join(root, "tok.arrow"), "rb") as f:
                meta = ipc.open_stream(f).schema.metadata or {}
            rep.check("tok.arrow records the pad id (apc.pad_id, apc.pad_from)",
                      meta.get(b"apc.pad_id") == str(eos).encode() and meta.get(b"apc.pad_from") == b"eos_token",
                      str({k: v for k, v in meta.items() if k.startswith(b"apc.")}))
            base = ["plan.fb", "--lr", "3e-3", "--seed", "3", "--threads", "2", "--data", "tok.arrow", "--steps", "3"]
            rec_out, _ = common.run_tool("aprun", base, root)
            # Padding is masked by position, so --pad-id 0 gives the same losses; it must not
            # say "recorded" (the flag wins).
            given_out, _ = common.run_tool("aprun", base + ["--pad-id", "0"], root)
            a, b = losses(rec_out), losses(given_out)
            rep.check("no --pad-id on tok.arrow: the recorded id pads, said on the first line; --pad-id 0 "
                      "overrides it silently, with the same losses (1e-6)",
                      rec_out.splitlines()[:1] == [
                          "aprun: padding with id %d, recorded in tok.arrow by apc data tokenize (the "
                          "tokenizer's eos_token; padded positions never count in the loss; --pad-id N "
                          "to choose)" % eos] and "recorded in" not in given_out and len(a) == 3
                      and len(b) == 3 and all(abs(x - y) <= 1e-6 * abs(y) for x, y in zip(a, b)),
                      "%s; %s vs %s" % (rec_out.splitlines()[:1], a, b))
            # A plan's pad_id (apc compile --pad-id) comes before a recorded eos_token, as with --tokenizer.
            common.apc_compile("m.mlir", "plan_pad0.fb", root, extra=["--pad-id", "0"])
            plan_out, _ = common.run_tool("aprun", ["plan_pad0.fb"] + base[1:], root)
            rep.check("a plan's pad_id comes before the recorded eos_token", "recorded in" not in plan_out
                      and losses(plan_out) == b, "%s vs %s" % (losses(plan_out), b))
            # A damaged record is refused by name.
            table = ipc.open_stream(pa.OSFile(os.path.join(root, "tok.arrow"), "rb")).read_all()
            bad = table.replace_schema_metadata({"apc.pad_id": "9999999"})
            with pa.OSFile(os.path.join(root, "bad_pad.arrow"), "wb") as sink, \
                    ipc.new_stream(sink, bad.schema) as w:
                w.write_table(bad)
            rc, _, err = common.run_cmd("aprun", ["plan.fb", "--data", "bad_pad.arrow", "--steps", "1"], root)
            rep.check("a recorded pad id outside the vocabulary is refused by name",
                      rc == 1 and "bad_pad.arrow: its schema metadata 'apc.pad_id' is \"9999999\", not a token "
                      "id below the vocabulary size 128256" in err, err.strip()[:300])
        rep.guard("train", train)

        # 3. SIGINT leaves nothing under the final name
        def interrupt():
            big = os.path.join(root, "big.arrow")
            long_rows = [dict(r, article=(r["article"] + " ") * 8) for r in make_rows(20000, 2)]
            write_stream(big, long_rows * 6, pa.string(), 1000)
            cmd = [common.bin_path("apc"), "data", "tokenize", big, "-o", "big_tok.arrow", "--tokenizer",
                   TOKENIZER, "--threads", "1"]
            p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # Wait for the first progress line, then interrupt.
            line = p.stderr.readline()  # "tokenizing ..."
            line = p.stderr.readline()  # first progress line (every 2 s without a tty)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
            left = [n for n in os.listdir(root) if n.startswith("big_tok")]
            rep.check("SIGINT: exit 130, no output, no temporary file", p.returncode == 130 and not left,
                      "exit %d, files %s, progress %r, stderr %r" % (p.returncode, left, line.strip(),
                                                                     err.decode()[-200:]))
        rep.guard("interrupt", interrupt)
    return rep.summary(start)


if __name__ == "__main__":
    sys.exit(main())
