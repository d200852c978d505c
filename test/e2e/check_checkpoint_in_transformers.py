#!/usr/bin/env python3
"""aprun checkpoints load in Hugging Face transformers and mean the same model.

For a tiny Llama 3 (untied with llama3 rope scaling, and tied): train a few steps with
aprun and save a checkpoint; load the checkpoint folder with
`transformers.LlamaForCausalLM.from_pretrained` (no missing or unexpected keys); compute
the loss of a fixed batch with transformers' own forward and causal-LM loss, and with
`apc eval` of the imported forward on the checkpoint's weights. They must agree to 1e-5
relative in f32: transformers is the independent implementation of record here.
Needs .venv/bin/python (torch, pyarrow, transformers from tools/test-requirements.txt).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_reference as ref  # noqa: E402

BIN = os.environ.get("APC_BIN_DIR", os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "bin"))
RTOL = 1e-5
results = []


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr))
    return p.stdout


def check(name, ok, detail):
    results.append(ok)
    print("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail))


def case(name, tied):
    from transformers import LlamaForCausalLM
    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 97,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": tied, "initializer_range": 0.1,
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}
    batch, seq = 2, 8
    with tempfile.TemporaryDirectory() as tmp:
        path = lambda f: os.path.join(tmp, f)
        json.dump(cfg, open(path("config.json"), "w"))
        run([os.path.join(BIN, "apc"), "import", "llama3", "--config", path("config.json"),
             "--batch", str(batch), "--seq-len", str(seq), "-o", path("m.mlir")])
        run([os.path.join(BIN, "apc"), "compile", path("m.mlir"), "--cluster", "cpu:1",
             "--precision", "fp32", "-o", path("plan.fb")])
        rng = np.random.default_rng(3)
        rows = [list(rng.integers(1, 97, size=int(n))) for n in rng.integers(3, 12, size=12)]
        table = pa.table({"input_ids": pa.array(rows, type=pa.list_(pa.int32()))})
        with ipc.new_stream(path("d.arrow"), table.schema) as w:
            w.write_table(table)
        run([os.path.join(BIN, "aprun"), path("plan.fb"), "--data", path("d.arrow"), "--steps", "3",
             "--lr", "1e-2", "--pad-id", "0", "--save", path("ck"), "--quiet", "--threads", "1"])
        ck = path("ck/checkpoint-3")

        model, info = LlamaForCausalLM.from_pretrained(ck, torch_dtype=torch.float32,
                                                       output_loading_info=True)
        missing = info["missing_keys"] + info["unexpected_keys"] + info["mismatched_keys"]
        check(name + "/load", not missing and not info["error_msgs"],
              "from_pretrained(%s): missing/unexpected/mismatched %s" % (os.path.basename(ck), missing))
        check(name + "/tied", model.config.tie_word_embeddings == tied and
              (model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()) == tied,
              "tie_word_embeddings %s" % model.config.tie_word_embeddings)

        ids = torch.tensor(rng.integers(0, 97, size=(batch, seq)), dtype=torch.int64)
        labels = ids.clone()
        labels[0, -3:] = -100
        with torch.no_grad():
            hf_loss = float(model(input_ids=ids, labels=labels, use_cache=False).loss)
        weights, _ = ref.read_safetensors(os.path.join(ck, "model.safetensors"))
        weights["input_ids"] = ids.numpy()
        weights["labels"] = labels.numpy()
        ref.write_safetensors(path("in.safetensors"), weights)
        run([os.path.join(BIN, "apc"), "eval", path("m.mlir"), "--inputs", path("in.safetensors"),
             "-o", path("out.safetensors")])
        apc_loss = float(ref.read_safetensors(path("out.safetensors"))[0]["loss"])
        rel = abs(apc_loss - hf_loss) / abs(hf_loss)
        check(name + "/loss", rel <= RTOL,
              "transformers %.9f apc eval %.9f rel %.1e (tolerance %.0e)" % (hf_loss, apc_loss, rel, RTOL))


def main():
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("FAIL: transformers is not installed in %s; run tools/setup.sh" % sys.executable)
        print("0 passed, 1 failed")
        return 1
    for name, tied in (("untied-llama3rope", False), ("tied", True)):
        try:
            case(name, tied)
        except Exception as e:  # report and count, keep going
            check(name, False, str(e))
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
