"""Writes the Arrow IPC fixtures of apc_data_tests with pyarrow, the independent writer.

Usage: write_arrow_fixtures.py OUT_DIR

Writes OUT_DIR/<name>.arrow (IPC file format) and OUT_DIR/<name>.stream (IPC stream
format, as Hugging Face `datasets` writes it) plus OUT_DIR/expected.json: for each
fixture, its format facts and the rows of every list and string column as pyarrow
reads them back (null rows as null).
"""
import json
import os
import random
import sys

import pyarrow as pa
import pyarrow.ipc as ipc

OUT = sys.argv[1]
expected = {}


def write(name, table_or_batches, schema=None, fmt="stream", **options):
    """Writes batches (or a table) and records the expected rows of the written data."""
    batches = table_or_batches
    if isinstance(table_or_batches, pa.Table):
        schema = table_or_batches.schema
        batches = table_or_batches.to_batches()
    opts = ipc.IpcWriteOptions(**options)
    path = os.path.join(OUT, name)
    open_writer = ipc.new_file if fmt == "file" else ipc.new_stream
    with pa.OSFile(path, "wb") as sink:
        with open_writer(sink, schema, options=opts) as writer:
            for batch in batches:
                writer.write_batch(batch)
    table = pa.Table.from_batches(list(batches), schema=schema)
    columns = {}
    for field in schema:
        if field.name and (
            pa.types.is_list(field.type)
            or pa.types.is_large_list(field.type)
            or pa.types.is_string(field.type)
            or pa.types.is_large_string(field.type)
        ):
            columns[field.name] = table.column(field.name).to_pylist()
    expected[name] = {
        "rows": table.num_rows,
        "batches": len(batches),
        "columns": columns,
    }


# ---- the main token dataset: 5 uneven record batches, nulls, empty rows, strings -----
rng = random.Random(1234)
ROWS_PER_BATCH = [4, 0, 9, 1, 6]  # a zero-length batch included


def token_rows(n, lo, hi, null_every=None, empty_every=None):
    rows = []
    for i in range(n):
        if null_every and i % null_every == null_every - 1:
            rows.append(None)
        elif empty_every and i % empty_every == 0:
            rows.append([])
        else:
            rows.append([rng.randint(lo, hi) for _ in range(rng.randint(1, 7))])
    return rows


TEXTS = ["hello", "", "naïve café", "日本語のテキスト", None, "emoji 🙂 ok", "a", "",
         "line\nbreak", "tab\tsep"]

token_schema = pa.schema(
    [
        pa.field("input_ids", pa.list_(pa.int32())),
        pa.field("labels", pa.list_(pa.int64())),
        pa.field("big", pa.large_list(pa.int64())),
        pa.field("text", pa.string()),
        pa.field("ltext", pa.large_string()),
        pa.field("score", pa.float64()),
    ],
    metadata={"huggingface": json.dumps({"info": {"features": {}}})},
)
token_batches = []
text_index = 0
for n in ROWS_PER_BATCH:
    texts = [TEXTS[(text_index + i) % len(TEXTS)] for i in range(n)]
    text_index += n
    token_batches.append(
        pa.record_batch(
            [
                pa.array(token_rows(n, 0, 50000, null_every=4, empty_every=5),
                         pa.list_(pa.int32())),
                pa.array(token_rows(n, -100, 128000, empty_every=3), pa.list_(pa.int64())),
                pa.array(token_rows(n, -(2**62), 2**62, null_every=3),
                         pa.large_list(pa.int64())),
                pa.array(texts, pa.string()),
                pa.array(list(reversed(texts)), pa.large_string()),
                pa.array([float(i) / 3 for i in range(n)], pa.float64()),
            ],
            schema=token_schema,
        )
    )
write("tokens.stream", token_batches, token_schema)
write("tokens.arrow", token_batches, token_schema, fmt="file")
write("tokens_legacy.stream", token_batches, token_schema, use_legacy_format=True)
write("tokens_v4.stream", token_batches, token_schema, metadata_version=ipc.MetadataVersion.V4)
write("tokens_v4.arrow", token_batches, token_schema, fmt="file",
      metadata_version=ipc.MetadataVersion.V4)

# ---- a sliced table (array offsets not at 0 in memory) --------------------------------
sliced = pa.Table.from_batches(token_batches, schema=token_schema).slice(3, 12)
write("sliced.stream", sliced)
write("sliced.arrow", sliced, fmt="file")

# ---- many small batches --------------------------------------------------------------
many_schema = pa.schema([pa.field("input_ids", pa.list_(pa.int64()))])
many = [
    pa.record_batch([pa.array(token_rows(rng.randint(0, 5), 0, 1000, empty_every=7),
                              pa.list_(pa.int64()))], schema=many_schema)
    for _ in range(200)
]
write("many.stream", many, many_schema)

# ---- every kind of column before the one we read (layout walking) --------------------
n = 5
zoo = pa.table(
    {
        "null": pa.nulls(n),
        "bool": pa.array([True, False, None, True, False]),
        "i8": pa.array([1, -2, 3, None, 5], pa.int8()),
        "u64": pa.array([1, 2, 3, 4, 2**63], pa.uint64()),
        "f32": pa.array([1.0, 2.0, None, 4.0, 5.0], pa.float32()),
        "f64": pa.array([1.5, None, 3.5, 4.5, 5.5]),
        "dec": pa.array([1, 2, 3, 4, 5], pa.decimal128(10, 2)),
        "date": pa.array([1, 2, 3, 4, None], pa.date32()),
        "ts": pa.array([1, 2, 3, 4, 5], pa.timestamp("us", tz="UTC")),
        "dur": pa.array([1, 2, 3, 4, 5], pa.duration("ms")),
        "bin": pa.array([b"a", b"", None, b"xyz", b"\x00"]),
        "lbin": pa.array([b"a", b"", None, b"xyz", b"\x00"], pa.large_binary()),
        "fsb": pa.array([b"ab", b"cd", None, b"ef", b"gh"], pa.binary(2)),
        "struct": pa.array([{"a": 1, "b": "x"}, None, {"a": 3, "b": None},
                            {"a": None, "b": "y"}, {"a": 5, "b": "z"}]),
        "fsl": pa.array([[1.0, 2.0], [3.0, 4.0], None, [5.0, 6.0], [7.0, 8.0]],
                        pa.list_(pa.float32(), 2)),
        "map": pa.array([[("k", 1)], [], None, [("a", 2), ("b", 3)], [("z", 0)]],
                        pa.map_(pa.string(), pa.int64())),
        "sparse": pa.UnionArray.from_sparse(
            pa.array([0, 1, 0, 1, 0], pa.int8()),
            [pa.array([1, 2, 3, 4, 5]), pa.array(["a", "b", "c", "d", "e"])]),
        "dense": pa.UnionArray.from_dense(
            pa.array([0, 1, 0, 1, 0], pa.int8()), pa.array([0, 0, 1, 1, 2], pa.int32()),
            [pa.array([1, 2, 3]), pa.array(["a", "b"])]),
        "list_view": pa.array([[1], [], None, [2, 3], [4]], pa.list_view(pa.int32())),
        "str_view": pa.array(["short", "a string longer than twelve bytes", None, "", "x"],
                             pa.string_view()),
        "ree": pa.RunEndEncodedArray.from_arrays(pa.array([2, 5], pa.int64()),
                                             pa.array(["p", "q"])),
        "nested": pa.array([[[1, 2], [3]], [], None, [[4]], [[], [5]]],
                           pa.list_(pa.list_(pa.int64()))),
        "input_ids": pa.array([[1, 2], [3], [], None, [4, 5, 6]], pa.list_(pa.int64())),
        "text": pa.array(["a", "b", None, "", "é"]),
    }
)
write("zoo.stream", zoo)
write("zoo.arrow", zoo, fmt="file")
expected["zoo.stream"]["types"] = [
    ["null", "null"], ["bool", "bool"], ["i8", "int8"], ["u64", "uint64"],
    ["f32", "float32"], ["f64", "float64"], ["dec", "decimal128(10, 2)"],
    ["date", "date32"], ["ts", "timestamp[us, tz=UTC]"], ["dur", "duration[ms]"],
    ["bin", "binary"], ["lbin", "large_binary"], ["fsb", "fixed_size_binary[2]"],
    ["struct", "struct<a: int64, b: utf8>"], ["fsl", "fixed_size_list<float32>[2]"],
    ["map", "map<utf8, int64>"], ["sparse", "sparse_union<0: int64, 1: utf8>"],
    ["dense", "dense_union<0: int64, 1: utf8>"], ["list_view", "list_view<int32>"],
    ["str_view", "utf8_view"], ["ree", "run_end_encoded<int64, utf8>"],
    ["nested", "list<list<int64>>"], ["input_ids", "list<int64>"], ["text", "utf8"],
]

# ---- refusals ------------------------------------------------------------------------
small = pa.table({"input_ids": pa.array([[1, 2, 3], [4]], pa.list_(pa.int64())),
                  "text": ["a", "b"]})
write("lz4.arrow", small, fmt="file", compression="lz4")
write("zstd.stream", small, compression="zstd")
write("dict.stream", pa.table({
    "cat": pa.array(["x", "y", "x", None]).dictionary_encode(),
    "input_ids": pa.array([[1], [2, 3], [], [4]], pa.list_(pa.int64())),
}))
write("nullvalue.stream", pa.table({
    "input_ids": pa.array([[1, 2], [3, None, 5]], pa.list_(pa.int64())),
    "fine": pa.array([[1], None], pa.list_(pa.int64())),
}))
write("othertypes.stream", pa.table({
    "u16": pa.array([[1, 2]], pa.list_(pa.uint16())),
    "floats": pa.array([[1.0]], pa.list_(pa.float32())),
    "nested": pa.array([[[1]]], pa.list_(pa.list_(pa.int32()))),
    "bin": pa.array([b"x"]),
}))
# pyarrow 17 writes a list array whose offsets do not start at 0 (but whose array
# offset is 0) with the values sliced and the offsets not rebased: an inconsistent
# file that pyarrow itself aborts on. The reader must refuse it cleanly.
write("pyarrow_unrebased.stream", pa.table({
    "input_ids": pa.ListArray.from_arrays(pa.array([2, 4, 5], pa.int32()),
                                          pa.array(range(7), pa.int32())),
}))
# A schema without record batches.
write("empty.stream", [], small.schema)
write("empty.arrow", [], small.schema, fmt="file")

# ---- small files for byte-level tests -------------------------------------------------
# tiny: one list<int64> column [[1, 2], [3]], no nulls (for a hand check of the bytes).
write("tiny.stream", pa.table({"x": pa.array([[1, 2], [3]], pa.list_(pa.int64()))}))
write("tiny.arrow", pa.table({"x": pa.array([[1, 2], [3]], pa.list_(pa.int64()))}),
      fmt="file")
# corrupt: distinctive offsets to find and damage: list<int32> offsets 0,3,7,12,18 and
# large_utf8 offsets 0,5,11,18,26.
corrupt = pa.table({
    "ids": pa.array([[1] * 3, [2] * 4, [3] * 5, [4] * 6], pa.list_(pa.int32())),
    "s": pa.array(["aaaaa", "bbbbbb", "ccccccc", "dddddddd"], pa.large_string()),
})
write("corrupt.stream", corrupt)
write("corrupt.arrow", corrupt, fmt="file")

with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, ensure_ascii=False)
