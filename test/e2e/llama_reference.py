#!/usr/bin/env python3
"""Independent plain-PyTorch reference for Hugging Face `LlamaForCausalLM` + causal-LM loss.

This is a numerical oracle for APC's llama3 importer/evaluator. It is written
directly from the Hugging Face Llama semantics (transformers' modeling_llama.py,
modeling_rope_utils.py and loss_utils.py) and shares no code with APC.

Requirements: the system interpreter /usr/bin/python3 with Debian's python3-torch
(tested with torch 1.13, CPU) and python3-numpy. No `transformers` or `safetensors`
package is needed: safetensors I/O is implemented here from the format spec.

Precision: `dtype=torch.float32` follows HF's float32 path (inv_freq, cos/sin and
RMSNorm variance in float32, softmax in float32, logits upcast to float32 for the
loss). `dtype=torch.float64` runs every step in float64 (HF's float32 upcasts become
float64 so the result is a higher-precision oracle rather than an HF bit-replica).
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

# --------------------------------------------------------------------------------------
# safetensors I/O (format: u64le header length N, N bytes JSON header padded with spaces
# to a multiple of 8, then the raw little-endian data section; data_offsets are relative
# to the start of the data section).
# --------------------------------------------------------------------------------------

_ST_TO_NP = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits, converted below
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NP_TO_ST = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}


def bf16_bits_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 array (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bfloat16 bit patterns, round-to-nearest-even, NaN kept quiet."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = x.view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> 16) | 0x0040).astype(np.uint16)
    return out


def _to_numpy(value):
    """Returns (raw little-endian numpy array, safetensors dtype string)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        arr, st = value  # explicit (array, "BF16"/"F32"/...) request
        if st == "BF16":
            return f32_to_bf16_bits(np.asarray(arr, dtype=np.float32)), "BF16"
        return np.asarray(arr, dtype=_ST_TO_NP[st]), st
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return f32_to_bf16_bits(t.float().numpy()), "BF16"
        arr = t.numpy()
    else:
        arr = np.asarray(value)
    if arr.dtype not in _NP_TO_ST:
        raise TypeError("unsupported dtype for safetensors: %s" % arr.dtype)
    return arr, _NP_TO_ST[arr.dtype]


def write_safetensors(path, tensors, metadata=None):
    """Write {name: tensor} to `path`.

    Values may be torch tensors (bfloat16 supported), numpy arrays, or
    (array, "BF16"|"F32"|...) tuples to force the stored dtype.
    """
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr, st = _to_numpy(tensors[name])
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def read_safetensors(path, bf16_as="float32"):
    """Read a safetensors file into {name: numpy array}.

    BF16 tensors are widened exactly to float32 (bf16_as="float32") or returned as
    raw uint16 bits (bf16_as="bits"). Returns (tensors, dtypes) where dtypes maps
    name -> stored safetensors dtype string.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header length %d exceeds file size" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        st = info["dtype"]
        if st not in _ST_TO_NP:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, st))
        shape = tuple(int(s) for s in info["shape"])
        b, e = info["data_offsets"]
        npdt = _ST_TO_NP[st]
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * npdt.itemsize or base + e > len(data):
            raise ValueError("%s: tensor %s has bad data_offsets %s for shape %s dtype %s"
                             % (path, name, info["data_offsets"], shape, st))
        arr = np.frombuffer(data, dtype=npdt, count=count, offset=base + b).reshape(shape).copy()
        if st == "BF16" and bf16_as == "float32":
            arr = bf16_bits_to_f32(arr)
        out[name] = arr
        dtypes[name] = st
    return out, dtypes


# --------------------------------------------------------------------------------------
# Config handling (mirrors LlamaConfig defaults for the fields that matter here)
# --------------------------------------------------------------------------------------

class LlamaDims:
    def __init__(self, cfg):
        self.cfg = cfg
        self.vocab = int(cfg["vocab_size"])
        self.hidden = int(cfg["hidden_size"])
        self.intermediate = int(cfg["intermediate_size"])
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        kv = cfg.get("num_key_value_heads")
        self.kv_heads = int(kv) if kv is not None else self.heads
        hd = cfg.get("head_dim")
        self.head_dim = int(hd) if hd else self.hidden // self.heads  # HF: `or hidden // heads`
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        rope_params = cfg.get("rope_parameters")  # transformers >= 5 layout
        if isinstance(rope_params, dict) and "rope_theta" in rope_params:
            self.rope_theta = float(rope_params["rope_theta"])
        else:
            self.rope_theta = float(cfg.get("rope_theta", 10000.0))
        scaling = cfg.get("rope_scaling")
        if scaling is None and isinstance(rope_params, dict):
            scaling = rope_params
        self.rope_scaling = scaling
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        self.partial_rotary_factor = float(cfg.get("partial_rotary_factor", 1.0))
        if self.heads % self.kv_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if cfg.get("attention_bias", False) or cfg.get("mlp_bias", False):
            raise NotImplementedError("attention_bias/mlp_bias are not supported by this reference")
        if cfg.get("hidden_act", "silu") != "silu":
            raise NotImplementedError("hidden_act %r not supported" % cfg.get("hidden_act"))
        if self.partial_rotary_factor != 1.0:
            raise NotImplementedError("partial_rotary_factor != 1 not supported")


def _rope_type(scaling):
    if not scaling:
        return "default"
    return scaling.get("rope_type", scaling.get("type", "default"))


def default_inv_freq(head_dim, theta, dtype=torch.float32):
    """HF _compute_default_rope_parameters: 1/(base ** (arange(0, dim, 2, int64).float() / dim))."""
    exps = torch.arange(0, head_dim, 2, dtype=torch.int64).to(dtype) / head_dim
    return 1.0 / (theta ** exps)


def llama3_inv_freq(inv_freq, scaling):
    """HF _compute_llama3_parameters applied to the default inv_freq (same dtype)."""
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_context_len = scaling["original_max_position_embeddings"]

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def compute_inv_freq(dims, dtype=torch.float32):
    inv = default_inv_freq(dims.head_dim, dims.rope_theta, dtype)
    rt = _rope_type(dims.rope_scaling)
    if rt == "default":
        return inv
    if rt == "llama3":
        return llama3_inv_freq(inv, dims.rope_scaling)
    raise NotImplementedError("rope_type %r not supported" % rt)


def rope_cos_sin(inv_freq, seq_len, dtype):
    """HF LlamaRotaryEmbedding.forward for positions 0..S-1: returns cos, sin of shape [S, head_dim]."""
    pos = torch.arange(seq_len, dtype=inv_freq.dtype)
    freqs = torch.outer(pos, inv_freq)  # [S, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [S, D]
    return emb.cos().to(dtype), emb.sin().to(dtype)  # attention_scaling == 1.0 for default/llama3


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def apply_rotary(x, cos, sin):
    """x: [B, heads, S, D]; cos/sin: [S, D]."""
    return x * cos + rotate_half(x) * sin


def rms_norm(x, weight, eps):
    """HF LlamaRMSNorm: variance in (at least) float32, weight * normalized.to(input dtype)."""
    in_dtype = x.dtype
    comp = torch.float64 if in_dtype == torch.float64 else torch.float32
    h = x.to(comp)
    var = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(var + eps)
    return weight * h.to(in_dtype)


def repeat_kv(x, n_rep):
    """[B, kv, S, D] -> [B, kv*n_rep, S, D] with head h using kv head h // n_rep."""
    if n_rep == 1:
        return x
    b, kv, s, d = x.shape
    return x[:, :, None, :, :].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)


def attention(x, p, prefix, dims, cos, sin):
    B, S, _ = x.shape
    D = dims.head_dim
    q = F.linear(x, p[prefix + "self_attn.q_proj.weight"]).view(B, S, dims.heads, D).transpose(1, 2)
    k = F.linear(x, p[prefix + "self_attn.k_proj.weight"]).view(B, S, dims.kv_heads, D).transpose(1, 2)
    v = F.linear(x, p[prefix + "self_attn.v_proj.weight"]).view(B, S, dims.kv_heads, D).transpose(1, 2)
    q = apply_rotary(q, cos, sin)
    k = apply_rotary(k, cos, sin)
    n_rep = dims.heads // dims.kv_heads
    k = repeat_kv(k, n_rep)
    v = repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(2, 3)) * (D ** -0.5)
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    soft_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    probs = torch.softmax(scores, dim=-1, dtype=soft_dtype).to(q.dtype)
    out = torch.matmul(probs, v)  # [B, heads, S, D]
    out = out.transpose(1, 2).reshape(B, S, dims.heads * D)
    return F.linear(out, p[prefix + "self_attn.o_proj.weight"])


def mlp(x, p, prefix):
    g = F.linear(x, p[prefix + "mlp.gate_proj.weight"])
    u = F.linear(x, p[prefix + "mlp.up_proj.weight"])
    return F.linear(F.silu(g) * u, p[prefix + "mlp.down_proj.weight"])


def expected_param_shapes(dims):
    H, D, V, I = dims.hidden, dims.head_dim, dims.vocab, dims.intermediate
    shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    for i in range(dims.layers):
        pre = "model.layers.%d." % i
        shapes[pre + "self_attn.q_proj.weight"] = (dims.heads * D, H)
        shapes[pre + "self_attn.k_proj.weight"] = (dims.kv_heads * D, H)
        shapes[pre + "self_attn.v_proj.weight"] = (dims.kv_heads * D, H)
        shapes[pre + "self_attn.o_proj.weight"] = (H, dims.heads * D)
        shapes[pre + "mlp.gate_proj.weight"] = (I, H)
        shapes[pre + "mlp.up_proj.weight"] = (I, H)
        shapes[pre + "mlp.down_proj.weight"] = (H, I)
        shapes[pre + "input_layernorm.weight"] = (H,)
        shapes[pre + "post_attention_layernorm.weight"] = (H,)
    if not dims.tied:
        shapes["lm_head.weight"] = (V, H)
    return shapes


def random_params(dims, seed=0, std=0.1, norm_std=0.1):
    """Random float32 parameters keyed by HF names (numpy arrays)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in expected_param_shapes(dims).items():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            params[name] = (1.0 + norm_std * rng.standard_normal(shape)).astype(np.float32)
        else:
            params[name] = (std * rng.standard_normal(shape)).astype(np.float32)
    return params


def forward_logits(cfg, params, input_ids, dtype=torch.float64):
    """Logits [B, S, V] of LlamaForCausalLM (no cache, positions 0..S-1, causal mask only)."""
    dims = cfg if isinstance(cfg, LlamaDims) else LlamaDims(cfg)
    p = {k: torch.as_tensor(np.asarray(v)).to(dtype) for k, v in params.items()
         if k not in ("input_ids", "labels")}
    return forward_logits_tensors(dims, p, input_ids, dtype)


def forward_logits_tensors(dims, p, input_ids, dtype):
    """forward_logits on {HF name: torch tensor already in `dtype`}; differentiable.

    The tensors may be (views/casts of) autograd leaves: nothing here detaches them.
    With tied embeddings p["model.embed_tokens.weight"] is used for both the lookup
    and the LM head, so its gradient is the sum of both uses.
    """
    for name, shape in expected_param_shapes(dims).items():
        if name not in p:
            raise KeyError("missing parameter %s" % name)
        if tuple(p[name].shape) != tuple(shape):
            raise ValueError("parameter %s has shape %s, expected %s" % (name, tuple(p[name].shape), shape))
    ids = torch.as_tensor(np.asarray(input_ids)).long()
    B, S = ids.shape
    rope_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    inv_freq = compute_inv_freq(dims, rope_dtype)
    cos, sin = rope_cos_sin(inv_freq, S, dtype)

    h = F.embedding(ids, p["model.embed_tokens.weight"])
    for i in range(dims.layers):
        pre = "model.layers.%d." % i
        h = h + attention(rms_norm(h, p[pre + "input_layernorm.weight"], dims.eps), p, pre, dims, cos, sin)
        h = h + mlp(rms_norm(h, p[pre + "post_attention_layernorm.weight"], dims.eps), p, pre)
    h = rms_norm(h, p["model.norm.weight"], dims.eps)
    lm = p["model.embed_tokens.weight"] if dims.tied else p["lm_head.weight"]
    return F.linear(h, lm)


def causal_lm_loss(logits, labels):
    """HF ForCausalLMLoss (num_items_in_batch=None): mean CE of logits[:, :-1] vs labels[:, 1:]."""
    labels = torch.as_tensor(np.asarray(labels)).long()
    logits = logits if logits.dtype == torch.float64 else logits.float()
    V = logits.shape[-1]
    shift_logits = logits[:, :-1, :].reshape(-1, V)
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="mean")


def reference_loss(cfg, params, input_ids, labels, dtype=torch.float64):
    """Scalar loss (python float) of LlamaForCausalLM(input_ids, labels=labels) in `dtype`."""
    with torch.no_grad():
        return float(causal_lm_loss(forward_logits(cfg, params, input_ids, dtype), labels))


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Compute the HF Llama causal-LM loss from a config and a safetensors file")
    ap.add_argument("--config", required=True)
    ap.add_argument("--inputs", required=True, help="safetensors with HF-named params + input_ids + labels")
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f64")
    a = ap.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    t, _ = read_safetensors(a.inputs)
    dt = torch.float64 if a.dtype == "f64" else torch.float32
    print("%.9g" % reference_loss(cfg, t, t["input_ids"], t["labels"], dt))
    sys.exit(0)
