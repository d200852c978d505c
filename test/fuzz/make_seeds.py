#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets of test/fuzz (see README.md).

Usage: make_seeds.py OUT_DIR [--apc PATH_TO_apc]

Writes OUT_DIR/<target>/<seed> for every target (OUT_DIR/tokenizer_json/ for
tokenizer_json_fuzz, ...). Needs flatc (plan seeds, from JSON through the schema) and
pyarrow (arrow seeds: run it with the .venv python that tools/setup.sh makes); without
pyarrow the arrow seeds are skipped with a warning. With --apc (or build/bin/apc of the
normal build, when it exists) it also adds real plans compiled from tiny.json. With
Llama 3's tokenizer (APC_LLAMA3_DIR, default /work/shared/data/llama3) it adds a cut-down
copy of its tokenizer.json and its tokenizer_config.json.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- safetensors ------------------------------------------------------------------------

def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds(out):
    put(out, "safetensors", "empty", safetensors_bytes([]))
    put(out, "safetensors", "metadata", safetensors_bytes([], {"format": "pt"}))
    put(out, "safetensors", "f32", safetensors_bytes(
        [("w", "F32", [2, 2], struct.pack("<4f", 1, -2, 3.5, 0))]))
    put(out, "safetensors", "mixed", safetensors_bytes([
        ("a.bf16", "BF16", [3], b"\x80\x3f\x00\x40\xc0\x7f"),
        ("b.f16", "F16", [1, 2], b"\x00\x3c\x00\xc0"),
        ("c.i64", "I64", [2], struct.pack("<2q", -1, 1 << 40)),
        ("d.i32", "I32", [1], struct.pack("<i", 7)),
        ("e.i16", "I16", [1], struct.pack("<h", -3)),
        ("f.i8", "I8", [2], b"\x80\x7f"),
        ("g.u8", "U8", [1], b"\xff"),
        ("h.bool", "BOOL", [2], b"\x00\x01"),
        ("i.f64", "F64", [1], struct.pack("<d", 0.25)),
        ("j.empty", "F32", [0, 4], b""),
    ], {"note": "seed"}))


# ---- arrow ------------------------------------------------------------------------------

def arrow_seeds(out):
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc
    except ImportError:
        print("make_seeds: no pyarrow, skipping the arrow seeds (use .venv/bin/python)",
              file=sys.stderr)
        return

    def write(name, batches, schema, fmt="stream", **options):
        sink = pa.BufferOutputStream()
        opts = ipc.IpcWriteOptions(**options)
        open_writer = ipc.new_file if fmt == "file" else ipc.new_stream
        with open_writer(sink, schema, options=opts) as w:
            for b in batches:
                w.write_batch(b)
        put(out, "arrow", name, sink.getvalue().to_pybytes())

    tokens = pa.schema([("input_ids", pa.list_(pa.int32())), ("text", pa.string())])
    b1 = pa.record_batch([pa.array([[1, 2, 3], [], None], pa.list_(pa.int32())),
                          pa.array(["ab", None, ""])], schema=tokens)
    b0 = pa.record_batch([pa.array([], pa.list_(pa.int32())), pa.array([], pa.string())],
                         schema=tokens)
    b2 = pa.record_batch([pa.array([[4, 5]], pa.list_(pa.int32())), pa.array(["xyz"])],
                         schema=tokens)
    write("stream_int32.arrows", [b1, b0, b2], tokens)
    write("file_int32.arrow", [b1, b2], tokens, fmt="file")
    write("legacy_int32.arrows", [b1], tokens, use_legacy_format=True)
    write("schema_only.arrows", [], tokens)

    wide = pa.schema([("ids", pa.large_list(pa.int64())), ("labels", pa.list_(pa.int64())),
                      ("s", pa.large_string())])
    w1 = pa.record_batch([pa.array([[1 << 40, -1], [0]], pa.large_list(pa.int64())),
                          pa.array([None, [9, 9, 9]], pa.list_(pa.int64())),
                          pa.array(["long", None], pa.large_string())], schema=wide)
    write("stream_int64.arrows", [w1], wide)
    write("file_int64.arrow", [w1], wide, fmt="file")

    # Other types before the columns a trainer reads, as real datasets have.
    other = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "flag": pa.array([True, None]),
        "score": pa.array([0.5, 1.5], pa.float32()),
        "nested": pa.array([{"a": 1, "b": "x"}, None],
                           pa.struct([("a", pa.int32()), ("b", pa.string())])),
        "cat": pa.array(["u", "v"]).dictionary_encode(),
        "fixed": pa.array([[1, 2], [3, 4]], pa.list_(pa.int8(), 2)),
        "map": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int32())),
        "blob": pa.array([b"\x00\x01", None], pa.binary()),
        "input_ids": pa.array([[7], [8, 9]], pa.large_list(pa.int32())),
    })
    write("stream_many_types.arrows", other.to_batches(), other.schema)
    write("file_many_types.arrow", other.to_batches(), other.schema, fmt="file")


# ---- plans ------------------------------------------------------------------------------

def tiny_plan(dp, pp=1):
    """A small plan that LoadedPlan accepts: one parameter, the four inputs, a loss; one
    program per pipeline stage (pp > 1: mesh [dp, pp]), its instructions marked with their
    micro-batch, pass and layer, the embedding a vocabulary block."""
    batch = 2 * dp
    # On a mesh, the embedding is a vocabulary block of axis 0 (the runtime derives its
    # vocab_start from the device's coordinate).
    vocab_block = [{"name": "vocab_shard_axis", "kind": "Int", "i": 0},
                   {"name": "vocab_shard_rows", "kind": "Int", "i": 4}] if dp * pp > 1 else []

    def program(stage):
        return {
            "stage": stage,
            "buffers": [
                {"name": "loss", "dtype": "F32", "kind": "Arena", "offset": 0, "bytes": 4},
                {"name": "input_ids", "dtype": "I64", "shape": [2, 4], "kind": "Input",
                 "bytes": 64, "binding": "InputIds"},
                {"name": "labels", "dtype": "I64", "shape": [2, 4], "kind": "Input",
                 "bytes": 64, "binding": "Labels"},
                {"name": "step", "dtype": "I64", "kind": "Input", "bytes": 8,
                 "binding": "Step"},
                {"name": "lr", "dtype": "F32", "kind": "Input", "bytes": 4,
                 "binding": "LearningRate"},
                {"name": "w", "dtype": "F32", "shape": [4, 2], "kind": "Parameter",
                 "bytes": 32, "parameter": 0},
                {"name": "exp_avg.w", "dtype": "F32", "shape": [4, 2],
                 "kind": "OptimizerState", "bytes": 32, "parameter": 0,
                 "optimizer_slot": "exp_avg"},
                {"name": "w.flat", "dtype": "F32", "shape": [8], "kind": "Alias",
                 "bytes": 32, "alias_of": 5},
                {"name": "%9", "dtype": "BF16", "shape": [2, 4], "kind": "Arena",
                 "offset": 16, "bytes": 16},
                {"name": "grad_norm", "dtype": "F32", "kind": "Arena", "offset": 8,
                 "bytes": 4},
            ],
            "instructions": [
                {"kernel": "embedding", "inputs": [5, 1], "outputs": [8], "flops": 8.0,
                 "micro_batch": 0, "pass": "Forward", "layer": -2,
                 "attributes": [{"name": "axis", "kind": "Int", "i": 0}] + vocab_block},
                {"kernel": "cross_entropy", "inputs": [8, 2], "outputs": [0],
                 "micro_batch": 0, "pass": "Forward", "layer": 1,
                 "attributes": [{"name": "ignore_index", "kind": "Int", "i": -100},
                                {"name": "reduction", "kind": "String", "s": "mean"}]},
                {"kernel": "all_reduce", "inputs": [6], "outputs": [6], "pass": "Step",
                 "attributes": [{"name": "axes", "kind": "Ints", "ints": [0]},
                                {"name": "scale", "kind": "Float", "f": 0.5},
                                {"name": "in_place", "kind": "Bool", "b": True}]},
                {"kernel": "adamw", "inputs": [5, 6, 3, 4], "outputs": [5, 6], "pass": "Step"},
            ],
            "arena_bytes": 32,
            "loss": 0,
            "grad_norm": 9,
        }

    plan = {
        "version": 4,
        "producer": "apc fuzz seed",
        "model": {"architecture": "llama3", "hidden_size": 2, "vocab_size": 4,
                  "rope_type": "default"},
        "parameters": [{"name": "w", "shape": [4, 2], "dtype": "F32", "init": "normal"}],
        "data": {"batch": batch, "seq_len": 4, "pad_id": -1, "ids_dtype": "I64"},
        "precision": "fp32",
        "optimizer": {"name": "adamw", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        "programs": [program(s) for s in range(pp)],
        "predicted": {"flops_per_step": 8.0, "cluster": "cpu:%d" % dp},
    }
    if pp > 1:
        plan["mesh_shape"] = [dp, pp]
        plan["mesh_axes"] = ["dp", "pp"]
        plan["parallel_plan"] = "dp=%d,pp=%d" % (dp, pp)
        plan["pipeline"] = {"stages": [{"first_layer": 0, "num_layers": 1, "embedding": True,
                                        "head": True}] * pp,
                            "micro_batches": 1, "schedule": "1f1b", "recompute": "none"}
    elif dp > 1:
        plan["mesh_shape"] = [dp]
        plan["mesh_axes"] = ["dp"]
        plan["parallel_plan"] = "dp=%d" % dp
    return plan


def plan_seeds(out, apc):
    flatc = shutil.which("flatc")
    schema = os.path.join(SRC, "runtime", "schema", "plan.fbs")
    with tempfile.TemporaryDirectory() as tmp:
        if not flatc:
            print("make_seeds: no flatc, skipping the hand-made plan seeds", file=sys.stderr)
        else:
            for dp, pp in ((1, 1), (2, 1), (2, 2)):
                name = "tiny_dp%d" % dp + ("_pp%d" % pp if pp > 1 else "")
                with open(os.path.join(tmp, name + ".json"), "w") as f:
                    json.dump(tiny_plan(dp, pp), f)
                subprocess.run([flatc, "-b", "-o", tmp, schema,
                                os.path.join(tmp, name + ".json")], check=True)
                with open(os.path.join(tmp, name + ".fb"), "rb") as f:
                    put(out, "plan", name + ".fb", f.read())
        if apc and os.access(apc, os.X_OK):
            config = os.path.join(SRC, "frontends", "llama3", "configs", "tiny.json")
            mlir = os.path.join(tmp, "m.mlir")
            subprocess.run([apc, "import", "llama3", "--config", config, "--batch", "2",
                            "--seq-len", "4", "-o", mlir], check=True,
                           stdout=subprocess.DEVNULL)
            for cluster, name in (("cpu:1", "apc_tiny.fb"), ("cpu:2", "apc_tiny_dp2.fb")):
                fb = os.path.join(tmp, name)
                r = subprocess.run([apc, "compile", mlir, "--cluster", cluster,
                                    "--precision", "fp32", "-o", fb],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if r.returncode == 0:
                    with open(fb, "rb") as f:
                        put(out, "plan", name, f.read())
                else:
                    print("make_seeds: apc compile --cluster %s failed: %s"
                          % (cluster, r.stderr.decode().strip()), file=sys.stderr)


# ---- flags and configs ------------------------------------------------------------------

def flags_seeds(out):
    lines = {
        "ok": "plan.fb\n--data\nd.arrow\n--steps\n10\n--lr=3e-4\n--verbose",
        "extra": "plan.fb\nextra\n--data=x\n--out\ndir\n--\n-not-a-flag",
        "help": "--help",
        "errors": "--steps\n1x\n--lr\nnan\n--verbose=1\n--nope",
        "negative": "plan.fb\n--data\nd\n--steps\n-5\n--lr\n-.5\n-1",
    }
    for name, text in lines.items():
        put(out, "flags", name, text)


def config_seeds(out):
    d = os.path.join(SRC, "frontends", "llama3", "configs")
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name), "rb") as f:
                put(out, "llama3_config", name, f.read())
    put(out, "llama3_config", "minimal.json",
        '{"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, '
        '"num_attention_heads": 2, "vocab_size": 10, "head_dim": 4.0, '
        '"rope_scaling": {"type": "default"}, "rope_theta": null}')



# ---- tokenizer.json and tokenizer_config.json -------------------------------------------

LLAMA3_DIR = os.environ.get("APC_LLAMA3_DIR", "/work/shared/data/llama3")


def byte_char(b):
    """GPT-2's byte-level character of byte b."""
    def direct(k):
        return 0x21 <= k <= 0x7E or 0xA1 <= k <= 0xAC or 0xAE <= k <= 0xFF
    if direct(b):
        return chr(b)
    return chr(256 + sum(1 for k in range(b) if not direct(k)))


def small_tokenizer():
    """The tokenizer of test/unit/tokenizer: bytes 0..255, he ll hell hello lo, <s>."""
    vocab = {byte_char(b): b for b in range(256)}
    vocab.update({"he": 256, "ll": 257, "hell": 258, "hello": 259, "lo": 260})
    return {
        "version": "1.0", "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": " ?\\p{L}+|\\p{N}{1,3}|\\s+(?!\\S)|\\s+|."},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [300],
                                                      "tokens": ["<s>"]}}},
        "decoder": {"type": "ByteLevel"},
        "added_tokens": [
            {"id": 300, "content": "<s>", "special": True, "normalized": False},
            {"id": 301, "content": "<s>>", "special": False, "normalized": False},
            {"id": 302, "content": "[M]", "special": False, "lstrip": True, "rstrip": True,
             "normalized": True}],
        "model": {"type": "BPE", "ignore_merges": False, "vocab": vocab,
                  "merges": ["h e", ["l", "l"], ["he", "ll"], "hell o"]},
    }


def llama3_small(full, keep=1000):
    """Llama 3's tokenizer.json cut to its first `keep` tokens, the merges among them and
    a few added tokens: the real pipeline, small enough to fuzz quickly."""
    t = json.loads(json.dumps(full))
    vocab = {k: v for k, v in t["model"]["vocab"].items() if v < keep}
    merges = []
    for m in t["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    t["added_tokens"] = t["added_tokens"][:4]
    return t


def tokenizer_seeds(out):
    put(out, "tokenizer_json", "small.json", json.dumps(small_tokenizer()))
    t = small_tokenizer()
    t["model"]["ignore_merges"] = True
    t["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}
    t["post_processor"] = {"type": "ByteLevel", "trim_offsets": False}
    t["normalizer"] = {"type": "NFC"}
    put(out, "tokenizer_json", "small_bytelevel.json", json.dumps(t))
    path = os.path.join(LLAMA3_DIR, "tokenizer.json")
    if os.path.exists(path):
        with open(path) as f:
            full = json.load(f)
        small = llama3_small(full)
        put(out, "tokenizer_json", "llama3_small.json", json.dumps(small))
        templated = json.loads(json.dumps(small))
        templated["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [], "special_tokens": {"<|begin_of_text|>": {
                "id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}}
        put(out, "tokenizer_json", "llama3_small_template.json", json.dumps(templated))
    else:
        print("make_seeds: no %s, skipping the Llama 3 tokenizer seeds" % path, file=sys.stderr)

    configs = {
        "string.json": {"pad_token": "<pad>", "model_max_length": 1024},
        "object.json": {"pad_token": {"content": "<|end_of_text|>", "lstrip": False,
                                      "special": True, "__type": "AddedToken"}},
        "null.json": {"pad_token": None, "bos_token": "<s>"},
        "unknown.json": {"pad_token": "<unk>"},
        "bytes.json": {"pad_token": "a"},
        "none.json": {},
    }
    for name, config in configs.items():
        put(out, "tokenizer_config", name, json.dumps(config))
    path = os.path.join(LLAMA3_DIR, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path, "rb") as f:
            put(out, "tokenizer_config", "llama3.json", f.read())


# ---- text datasets: state.json, --template ------------------------------------------

def dataset_seeds(out):
    state = {"_data_files": [{"filename": "data-00000-of-00002.arrow"},
                             {"filename": "data-00001-of-00002.arrow"}],
             "_fingerprint": "0123456789abcdef", "_format_columns": None,
             "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": "train"}
    put(out, "dataset_state", "two_shards.json", json.dumps(state, indent=2))
    put(out, "dataset_state", "bad_names.json",
        json.dumps({"_data_files": [{"filename": "../x.arrow"}, {"filename": "."},
                                    {"name": "y"}, "z"]}))
    put(out, "dataset_state", "empty.json", '{"_data_files": []}')
    templates = {
        "default": "[SUMMARIZE] {article} [/SUMMARIZE]\\n{highlights}",
        "braces": "{{literal}} {a}{b}{a} }}",
        "unclosed": "text {col",
        "stray": "a } b {x}",
        "escapes": "\\t{q}\\\\n\\r{a}\\x",
        "empty": "{}",
    }
    for name, text in templates.items():
        put(out, "prompt_template", name, text)


# ---- checkpoints: trainer_state.json, model.safetensors.index.json --------------------

def checkpoint_seeds(out):
    state = {"step": 10, "epoch": 0, "batch_in_epoch": 10, "seed": 1234, "num_rows": 100,
             "batch": 8, "seq_len": 64, "data": "data/train"}
    put(out, "trainer_state", "ok.json", json.dumps(state, indent=2))
    put(out, "trainer_state", "floats.json",
        json.dumps(dict(state, step=1.5, seed=-1, epoch=1e30)))
    put(out, "trainer_state", "missing.json", json.dumps({"step": 3, "data": 7}))
    index = {"metadata": {"total_size": 123},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors",
                            "model.norm.weight": "sub/model-00002-of-00002.safetensors"}}
    put(out, "safetensors_index", "two_shards.json", json.dumps(index, indent=2))
    put(out, "safetensors_index", "escapes.json",
        json.dumps({"weight_map": {"a": "../a.safetensors", "b": "/b", "c": 3, "d": ""}}))


# ---- the parallel plan (--plan) ------------------------------------------------------

def parallel_plan_seeds(out):
    plans = {
        "text": "dp=2,tp=2,zero=1,sp=on",
        "full": "dp=1,tp=2,pp=4,zero=0,sp=off,mb=4,recompute=selective,stages=1+1+1+1",
        "json": '{"dp": 2, "tp": 4, "zero": 3, "sp": true, "recompute": "full"}',
        "json_stages": '{"pp": 2, "mb": 2, "stages": "3+1"}',
        "errors": "dp=x,tp=-1,,zero=9",
        "blank": "  ",
    }
    for name, text in plans.items():
        put(out, "parallel_plan", name, text)


# ---- the rendezvous store's wire protocol -----------------------------------------------

def store_seeds(out):
    def frame(body):
        return struct.pack(">I", len(body)) + body

    def s(text):
        b = text.encode() if isinstance(text, str) else text
        return struct.pack(">I", len(b)) + b

    def hello(token="fuzz-token", version=1, magic=0x41504353):
        return frame(b"\x01" + struct.pack(">III", magic, version, 3) + s(token))

    requests = (frame(b"\x02" + s("key") + s(b"\x00value")) +
                frame(b"\x03" + struct.pack(">I", 0) + s("key")) +
                frame(b"\x04" + s("counter") + struct.pack(">q", -5)) +
                frame(b"\x05" + struct.pack(">II", 100, 2) + s("key") + s("other")))
    put(out, "store_protocol", "session", hello() + requests)
    put(out, "store_protocol", "wrong_token", hello("guess") + requests)
    put(out, "store_protocol", "old_version", hello(version=0) + requests)
    put(out, "store_protocol", "not_a_client", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    put(out, "store_protocol", "truncated", hello() + frame(b"\x05" + struct.pack(">II", 0, 9)))


# ---- the launcher's environment ---------------------------------------------------------

def launcher_env_seeds(out):
    envs = {
        "torchrun": "RANK=1\nWORLD_SIZE=4\nLOCAL_RANK=1\nLOCAL_WORLD_SIZE=2\n"
                    "MASTER_ADDR=10.0.0.1\nMASTER_PORT=29400\nAPC_JOB_TOKEN=secret",
        "aprun": "RANK=0\nWORLD_SIZE=2\nMASTER_ADDR=127.0.0.1\nMASTER_PORT=40000\n"
                 "APC_LAUNCHER=aprun\nAPC_JOB_TOKEN=t",
        "openmpi": "OMPI_COMM_WORLD_RANK=3\nOMPI_COMM_WORLD_SIZE=8\n"
                   "OMPI_COMM_WORLD_LOCAL_RANK=3\nOMPI_COMM_WORLD_LOCAL_SIZE=4\n"
                   "MASTER_ADDR=host0\nAPC_ALLOW_NO_TOKEN=1\nMASTER_PORT=1",
        "slurm": "SLURM_PROCID=5\nSLURM_NTASKS=8\nSLURM_LOCALID=1\nSLURM_NODEID=2\n"
                 "SLURM_TASKS_PER_NODE=2(x3),2\nSLURM_JOB_NODELIST=node[01-04,07],gpu3\n"
                 "APC_JOB_TOKEN=x",
        "slurm_step": "SLURM_PROCID=0\nSLURM_NPROCS=2\nSLURM_LOCALID=0\n"
                      "SLURM_STEP_TASKS_PER_NODE=1(x2)\nSLURM_STEP_NODELIST=r[1-2]-n[08-09]\n"
                      "SLURM_NTASKS_PER_NODE=1\nAPC_JOB_TOKEN=y\nMASTER_PORT=65536",
        "errors": "RANK=4\nWORLD_SIZE=4\nSLURM_NODELIST=a[1-2\nSLURM_TASKS_PER_NODE=2(x,1",
        "single": "PATH=/usr/bin\nHOME=/root",
    }
    for name, text in envs.items():
        put(out, "launcher_env", name, text)


def mlir_seeds(out):
    """Text inputs (the programs of mlir_seeds/, some with a plan line or the plan set on
    the module as apc-opt reads it) and byte inputs: a seed program, a plan and options,
    then a few mutations (see mlir_fuzz.cpp's readSetup)."""
    import random
    folder = os.path.join(SRC, "test", "fuzz", "mlir_seeds")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            text = f.read()
        stem = name[:-len(".mlir")]
        put(out, "mlir", stem, text)
        for plan in ["dp=2", "tp=2,sp=on", "pp=2,mb=2", "dp=2,zero=1,recompute=full"]:
            put(out, "mlir", stem + "-" + plan.replace(",", "_").replace("=", ""),
                "// plan: %s\n%s" % (plan, text))
        put(out, "mlir", stem + "-on-module",
            text.replace("module {", "module attributes {ap.parallel = #ap.parallel<tp = 2>} {", 1))
    rng = random.Random(12)
    for i in range(24):
        seed = bytes([rng.choice([0, 1, 2, 3, 128, 129, 130, 131])])  # never a text start
        setup = bytes([1 + rng.randrange(255)] + [rng.randrange(256) for _ in range(15)])
        mutations = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 4, 8, 16])))
        put(out, "mlir", "bytes-%02d" % i, seed + setup + mutations)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    default_apc = os.path.join(SRC, "build", "bin", "apc")
    parser.add_argument("--apc", default=default_apc if os.path.exists(default_apc) else None)
    args = parser.parse_args()
    safetensors_seeds(args.out)
    arrow_seeds(args.out)
    plan_seeds(args.out, args.apc)
    flags_seeds(args.out)
    config_seeds(args.out)
    tokenizer_seeds(args.out)
    dataset_seeds(args.out)
    checkpoint_seeds(args.out)
    parallel_plan_seeds(args.out)
    store_seeds(args.out)
    launcher_env_seeds(args.out)
    mlir_seeds(args.out)
    for target in sorted(os.listdir(args.out)):
        print("%s: %d seeds" % (target, len(os.listdir(os.path.join(args.out, target)))))


if __name__ == "__main__":
    main()
