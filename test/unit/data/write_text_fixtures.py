"""Writes the text-dataset fixtures of TextDatasetTest with pyarrow, in the layout that
Hugging Face `datasets` writes (IPC stream format, many record batches, the
"huggingface" schema metadata, shard names, save_to_disk folders).

Usage: write_text_fixtures.py OUT_DIR

OUT_DIR/expected.json maps each dataset path (relative to OUT_DIR) to the prompts of its
rows under the default template "[SUMMARIZE] {article} [/SUMMARIZE]\\n{highlights}".
"""
import json
import os
import random
import sys

import pyarrow as pa
import pyarrow.ipc as ipc

OUT = sys.argv[1]
rng = random.Random(7)
WORDS = ["the", "court", "said", "on", "Tuesday", "naïve", "café", "東京", "🙂", "", "it's",
         "1,234", "\t", "  ", "end."]


def text(n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def rows(n, start=0):
    out = []
    for i in range(n):
        article = "" if i % 11 == 3 else text(rng.randint(1, 30))
        highlights = "" if i % 13 == 5 else text(rng.randint(1, 8))
        out.append({"article": article, "highlights": highlights, "id": "%040x" % (start + i)})
    return out


def features(string_type):
    value = "large_string" if string_type == pa.large_string() else "string"
    return json.dumps({"info": {"features": {
        c: {"dtype": value, "_type": "Value"} for c in ("article", "highlights", "id")}}})


def write(path, data, string_type=pa.string(), rows_per_batch=7, columns=("article", "highlights", "id")):
    schema = pa.schema([pa.field(c, string_type) for c in columns],
                       metadata={"huggingface": features(string_type)})
    full = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(full) or OUT, exist_ok=True)
    with pa.OSFile(full, "wb") as sink:
        with ipc.new_stream(sink, schema) as writer:
            for i in range(0, len(data), rows_per_batch):
                chunk = data[i:i + rows_per_batch]
                writer.write_batch(pa.record_batch(
                    [pa.array([r[c] for r in chunk], string_type) for c in columns], schema=schema))
    return data


def prompt(r):
    return "[SUMMARIZE] " + r["article"] + " [/SUMMARIZE]\n" + r["highlights"]


expected = {}
expected["multi.arrow"] = [prompt(r) for r in write("multi.arrow", rows(50))]
expected["large.arrow"] = [prompt(r) for r in write("large.arrow", rows(20), pa.large_string(), 3)]
write("other.arrow", [{"text": "a", "summary": "b"}], columns=("text", "summary"))
# Rows 9 and 12 have no highlights (None): refused, not read as "".
with_nulls = rows(15)
for k in (9, 12):
    with_nulls[k]["highlights"] = None
write("nulls.arrow", with_nulls)

shard_rows = []
for k, n in enumerate([9, 0, 12]):  # an empty shard in the middle
    shard_rows += write("shards/cnn_dailymail-train-%05d-of-00003.arrow" % k, rows(n, 100 * k))
expected["shards/cnn_dailymail-train-00001-of-00003.arrow"] = [prompt(r) for r in shard_rows]
expected["shards/cnn_dailymail-train-*.arrow"] = [prompt(r) for r in shard_rows]
write("broken/cnn_dailymail-train-00000-of-00002.arrow", rows(2))

saved = []
# state.json's order is the reading order, whatever the names sort to.
names = ["data-00001-of-00002.arrow", "data-00000-of-00002.arrow"]
for k, name in enumerate(names):
    saved += write("saved/" + name, rows(15 + k, 1000 * k), rows_per_batch=4)
with open(os.path.join(OUT, "saved", "state.json"), "w") as f:
    json.dump({"_data_files": [{"filename": n} for n in names], "_fingerprint": "0",
               "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
               "_output_all_columns": False, "_split": "train"}, f, indent=2)
with open(os.path.join(OUT, "saved", "dataset_info.json"), "w") as f:
    json.dump({"features": {"article": {"dtype": "string", "_type": "Value"}}}, f)
expected["saved"] = [prompt(r) for r in saved]

with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, ensure_ascii=False)
