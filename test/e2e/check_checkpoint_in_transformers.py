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
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_common as common  # noqa: E402
import llama_reference as ref  # noqa: E402

RTOL = 1e-5


def case(name, tied, rep):
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
        common.import_llama3(cfg, tmp, batch, seq, out=path("m.mlir"), indent=None)
        common.apc_compile(path("m.mlir"), path("plan.fb"), tmp)
        rng = np.random.default_rng(3)
        rows = [list(rng.integers(1, 97, size=int(n))) for n in rng.integers(3, 12, size=12)]
        common.write_arrow(path("d.arrow"), rows, "int32", stream=True)
        common.run_tool("aprun", [path("plan.fb"), "--data", path("d.arrow"), "--steps", "3", "--lr", "1e-2",
                                  "--pad-id", "0", "--save", path("ck"), "--quiet", "--threads", "1"], tmp)
        ck = path("ck/checkpoint-3")

        model, info = LlamaForCausalLM.from_pretrained(ck, torch_dtype=torch.float32,
                                                       output_loading_info=True)
        missing = info["missing_keys"] + info["unexpected_keys"] + info["mismatched_keys"]
        rep.check(name + "/load", not missing and not info["error_msgs"],
                  "from_pretrained(%s): missing/unexpected/mismatched %s" % (os.path.basename(ck), missing))
        rep.check(name + "/tied", model.config.tie_word_embeddings == tied and
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
        common.run_tool("apc", ["eval", path("m.mlir"), "--inputs", path("in.safetensors"),
                                "-o", path("out.safetensors")], tmp)
        apc_loss = float(ref.read_safetensors(path("out.safetensors"))[0]["loss"])
        rel = abs(apc_loss - hf_loss) / abs(hf_loss)
        rep.check(name + "/loss", rel <= RTOL,
                  "transformers %.9f apc eval %.9f rel %.1e (tolerance %.0e)" % (hf_loss, apc_loss, rel, RTOL))


def main():
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("FAIL: transformers is not installed in %s; run tools/setup.sh" % sys.executable)
        print("0 passed, 1 failed")
        return 1
    rep = common.Report()
    for name, tied in (("untied-llama3rope", False), ("tied", True)):
        try:
            case(name, tied, rep)
        except Exception as e:  # report and count, keep going
            rep.check(name, False, str(e))
    return rep.summary()


if __name__ == "__main__":
    sys.exit(main())
