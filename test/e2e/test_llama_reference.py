#!/usr/bin/env python3
"""Self-tests for llama_reference.py (no APC needed).

Checks the plain-PyTorch reference against a second, deliberately different
implementation written with numpy loops and complex numbers:
  * safetensors round trip (F32/F64/F16/BF16/I64/I32, scalar shape, metadata, header alignment);
  * llama3 inv_freq against Meta's per-frequency if/elif formulation;
  * rotate_half RoPE against complex multiplication pairing element j with j + D/2;
  * RMSNorm, GQA attention and the whole forward + loss against a numpy loop model;
  * the loss against a hand-written logsumexp cross-entropy with ignore_index=-100.
Run with /usr/bin/python3 (needs Debian's python3-torch and python3-numpy).
"""

import math
import os
import struct
import sys
import tempfile
import json

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as ref  # noqa: E402
import llama_train_reference as tref  # noqa: E402

FAILURES = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILURES.append(msg)


# ---------------------------------------------------------------- safetensors
def test_safetensors():
    rng = np.random.default_rng(1)
    a32 = rng.standard_normal((3, 5)).astype(np.float32)
    a64 = rng.standard_normal((2, 2))
    a16 = rng.standard_normal((7,)).astype(np.float16)
    ids = rng.integers(0, 100, size=(2, 3)).astype(np.int64)
    i32 = np.array([-1, 2, 3], dtype=np.int32)
    scalar = np.array(3.25, dtype=np.float32)
    bf = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0, 0.0], dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.safetensors")
        ref.write_safetensors(p, {"a32": a32, "a64": a64, "a16": a16, "ids": ids, "i32": i32,
                                  "scalar": scalar, "bf": (bf, "BF16"),
                                  "tbf": torch.tensor([1.5, -0.75]).to(torch.bfloat16)},
                              metadata={"format": "pt"})
        raw = open(p, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        check(n % 8 == 0, "safetensors header length is a multiple of 8")
        hdr = json.loads(raw[8:8 + n])
        check(hdr["scalar"]["shape"] == [] and hdr["bf"]["dtype"] == "BF16" and hdr["ids"]["dtype"] == "I64",
              "safetensors header dtypes/shapes")
        ends = sorted(v["data_offsets"] for k, v in hdr.items() if k != "__metadata__")
        check(ends[0][0] == 0 and all(x[1] == y[0] for x, y in zip(ends, ends[1:])) and ends[-1][1] == len(raw) - 8 - n,
              "safetensors data section is contiguous and fully used")
        t, dts = ref.read_safetensors(p)
        check(np.array_equal(t["a32"], a32) and t["a32"].dtype == np.float32, "F32 round trip")
        check(np.array_equal(t["a64"], a64), "F64 round trip")
        check(np.array_equal(t["a16"], a16), "F16 round trip")
        check(np.array_equal(t["ids"], ids) and t["ids"].dtype == np.int64, "I64 round trip")
        check(np.array_equal(t["i32"], i32), "I32 round trip")
        check(t["scalar"].shape == () and float(t["scalar"]) == 3.25, "scalar round trip")
        # bf-exact values survive; 1e-3 is rounded to the nearest bf16
        exp_bf = torch.tensor(bf).to(torch.bfloat16).float().numpy()
        check(np.array_equal(t["bf"], exp_bf) and dts["bf"] == "BF16", "BF16 write/read matches torch's bfloat16 rounding")
        check(np.array_equal(t["tbf"], np.array([1.5, -0.75], np.float32)), "torch bfloat16 tensor round trip")
    # rounding-to-nearest-even against torch for many random values
    x = (rng.standard_normal(100000) * np.exp(rng.uniform(-20, 20, 100000))).astype(np.float32)
    mine = ref.bf16_bits_to_f32(ref.f32_to_bf16_bits(x))
    check(np.array_equal(mine, torch.tensor(x).to(torch.bfloat16).float().numpy()), "bf16 RNE matches torch on 1e5 values")


# ---------------------------------------------------------------- rope
def llama3_scalar(freqs, factor, low, high, orig):
    """Meta's original apply_scaling (llama-models), one frequency at a time."""
    low_wl, high_wl = orig / low, orig / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(f)
        elif wl > low_wl:
            out.append(f / factor)
        else:
            s = (orig / wl - low) / (high - low)
            out.append((1 - s) * f / factor + s * f)
    return np.array(out)


def test_inv_freq():
    for D, theta, sc in [(16, 10000.0, dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32)),
                         (16, 10000.0, dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=16)),
                         (128, 500000.0, dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192))]:
        base = np.array([1.0 / theta ** (2 * j / D) for j in range(D // 2)])
        got = ref.llama3_inv_freq(ref.default_inv_freq(D, theta, torch.float64), dict(sc, rope_type="llama3")).numpy()
        want = llama3_scalar(base, sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], sc["original_max_position_embeddings"])
        check(np.allclose(got, want, rtol=1e-13, atol=0), "llama3 inv_freq D=%d orig=%d matches scalar formula"
              % (D, sc["original_max_position_embeddings"]))
        got32 = ref.llama3_inv_freq(ref.default_inv_freq(D, theta, torch.float32), dict(sc, rope_type="llama3")).double().numpy()
        check(np.allclose(got32, want, rtol=1e-6, atol=0), "llama3 inv_freq float32 path close to float64")
    # config plumbing: "type" alias and head_dim override
    dims = ref.LlamaDims(dict(vocab_size=5, hidden_size=48, intermediate_size=8, num_hidden_layers=1,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              rope_scaling=dict(type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                                original_max_position_embeddings=32)))
    check(dims.head_dim == 16 and ref.compute_inv_freq(dims, torch.float64).shape == (8,), "head_dim field overrides hidden/heads")
    check(not torch.equal(ref.compute_inv_freq(dims, torch.float64), ref.default_inv_freq(16, 10000.0, torch.float64)),
          "rope_scaling 'type' alias honored")


def test_rope_complex():
    rng = np.random.default_rng(2)
    B, Hh, S, D = 2, 3, 7, 16
    x = rng.standard_normal((B, Hh, S, D))
    inv = ref.llama3_inv_freq(ref.default_inv_freq(D, 10000.0, torch.float64),
                              dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32))
    cos, sin = ref.rope_cos_sin(inv, S, torch.float64)
    got = ref.apply_rotary(torch.tensor(x), cos, sin).numpy()
    half = D // 2
    z = x[..., :half] + 1j * x[..., half:]
    rot = np.exp(1j * np.arange(S)[:, None] * inv.numpy()[None, :])  # [S, D/2]
    zr = z * rot
    want = np.concatenate([zr.real, zr.imag], axis=-1)
    check(np.allclose(got, want, rtol=0, atol=1e-13), "rotate_half RoPE == complex rotation of (x_j, x_{j+D/2})")
    # position 0 is the identity
    check(np.allclose(got[:, :, 0], x[:, :, 0], atol=0), "RoPE at position 0 is identity")


# ---------------------------------------------------------------- numpy loop model
def np_rmsnorm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def np_model_loss(cfg, P, ids, labels):
    """Independent float64 numpy Llama: loops over batch/head/query, complex RoPE."""
    V, H = cfg["vocab_size"], cfg["hidden_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    theta = cfg["rope_theta"]
    freqs = np.array([1.0 / theta ** (2 * j / D) for j in range(D // 2)])
    sc = cfg.get("rope_scaling")
    if sc:
        freqs = llama3_scalar(freqs, sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"],
                              sc["original_max_position_embeddings"])
    P = {k: np.asarray(v, dtype=np.float64) for k, v in P.items()}
    B, S = ids.shape

    def rope(vec, pos):  # vec [D]
        z = (vec[:D // 2] + 1j * vec[D // 2:]) * np.exp(1j * pos * freqs)
        return np.concatenate([z.real, z.imag])

    h = P["model.embed_tokens.weight"][ids]  # [B,S,H]
    for l in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % l
        x = np_rmsnorm(h, P[pre + "input_layernorm.weight"], eps)
        q = x @ P[pre + "self_attn.q_proj.weight"].T
        k = x @ P[pre + "self_attn.k_proj.weight"].T
        v = x @ P[pre + "self_attn.v_proj.weight"].T
        attn = np.zeros((B, S, nh * D))
        group = nh // nkv
        for b in range(B):
            for hd in range(nh):
                kvh = hd // group
                qs = [rope(q[b, t, hd * D:(hd + 1) * D], t) for t in range(S)]
                ks = [rope(k[b, t, kvh * D:(kvh + 1) * D], t) for t in range(S)]
                vs = [v[b, t, kvh * D:(kvh + 1) * D] for t in range(S)]
                for t in range(S):
                    sc_ = np.array([qs[t] @ ks[u] / math.sqrt(D) for u in range(t + 1)])
                    w = np.exp(sc_ - sc_.max())
                    w /= w.sum()
                    attn[b, t, hd * D:(hd + 1) * D] = sum(w[u] * vs[u] for u in range(t + 1))
        h = h + attn @ P[pre + "self_attn.o_proj.weight"].T
        x = np_rmsnorm(h, P[pre + "post_attention_layernorm.weight"], eps)
        g = x @ P[pre + "mlp.gate_proj.weight"].T
        u_ = x @ P[pre + "mlp.up_proj.weight"].T
        h = h + ((g / (1 + np.exp(-g))) * u_) @ P[pre + "mlp.down_proj.weight"].T
    h = np_rmsnorm(h, P["model.norm.weight"], eps)
    lm = P["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else P["lm_head.weight"]
    logits = h @ lm.T
    return hand_loss(logits, labels), logits


def hand_loss(logits, labels):
    total, n = 0.0, 0
    B, S, _ = logits.shape
    for b in range(B):
        for t in range(S - 1):
            y = int(labels[b, t + 1])
            if y == -100:
                continue
            row = logits[b, t]
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            total += lse - row[y]
            n += 1
    return total / n


def base_cfg(**kw):
    cfg = dict(vocab_size=97, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
               tie_word_embeddings=False, hidden_act="silu")
    cfg.update(kw)
    return cfg


def test_full_model():
    sc = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=32)
    cases = [("untied", base_cfg()),
             ("llama3rope", base_cfg(rope_scaling=sc)),
             ("tied", base_cfg(tie_word_embeddings=True, rope_scaling=sc)),
             ("headdim", base_cfg(hidden_size=48, head_dim=16)),
             ("mha", base_cfg(num_key_value_heads=4))]
    for i, (name, cfg) in enumerate(cases):
        dims = ref.LlamaDims(cfg)
        P = ref.random_params(dims, seed=10 + i)
        rng = np.random.default_rng(100 + i)
        ids = rng.integers(0, cfg["vocab_size"], size=(2, 7)).astype(np.int64)
        labels = ids.copy()
        labels[0, -2:] = -100
        want, np_logits = np_model_loss(cfg, P, ids, labels)
        logits64 = ref.forward_logits(cfg, P, ids, torch.float64)
        check(np.allclose(logits64.numpy(), np_logits, rtol=0, atol=1e-12), "%s: float64 logits match numpy loop model" % name)
        got64 = ref.reference_loss(cfg, P, ids, labels, torch.float64)
        got32 = ref.reference_loss(cfg, P, ids, labels, torch.float32)
        check(abs(got64 - want) <= 1e-12 * abs(want), "%s: float64 loss %.12f == numpy %.12f" % (name, got64, want))
        check(abs(got32 - want) <= 2e-6 * abs(want), "%s: float32 loss %.9f ~ numpy (rel %.1e)" % (name, got32, abs(got32 - want) / want))
        check(abs(hand_loss(logits64.numpy(), labels) - got64) <= 1e-13 * got64, "%s: F.cross_entropy == hand logsumexp" % name)
        kept = ref.reference_loss(cfg, P, ids, ids, torch.float64)
        check(abs(kept - got64) > 1e-6, "%s: ignore_index changes the loss (%.6f vs %.6f)" % (name, got64, kept))
        check(2.0 < got64 < 10.0 and np_logits.std() > 0.1, "%s: loss %.3f / logit std %.3f non-trivial" % (name, got64, np_logits.std()))


def test_causality():
    cfg = base_cfg()
    P = ref.random_params(ref.LlamaDims(cfg), seed=3)
    ids = np.random.default_rng(4).integers(0, 97, size=(1, 7))
    ids2 = ids.copy()
    ids2[0, 5] = (ids2[0, 5] + 1) % 97
    a = ref.forward_logits(cfg, P, ids, torch.float64)
    b = ref.forward_logits(cfg, P, ids2, torch.float64)
    check(torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:]), "causal mask: changing token 5 only affects positions >= 5")


# ---------------------------------------------------------------- training step reference
def _tiny_train_setup(tied=False, seed=21):
    cfg = base_cfg(hidden_size=32, intermediate_size=48, num_attention_heads=2, num_key_value_heads=1,
                   tie_word_embeddings=tied)
    dims = ref.LlamaDims(cfg)
    P = ref.random_params(dims, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(0, cfg["vocab_size"], size=(2, 6)).astype(np.int64)
    labels = ids.copy()
    labels[0, -2:] = -100
    return cfg, dims, P, ids, labels


def _grads(cfg, P, ids, labels, dtype=torch.float64):
    """Plain autograd gradients (no optimizer) in `dtype`."""
    dims = ref.LlamaDims(cfg)
    leaves = {n: torch.tensor(np.asarray(v), dtype=dtype, requires_grad=True) for n, v in P.items()}
    loss = ref.causal_lm_loss(ref.forward_logits_tensors(dims, leaves, ids, dtype), labels)
    loss.backward()
    return float(loss), {n: t.grad.numpy().copy() for n, t in leaves.items()}


def test_train_step():
    hyp = dict(beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1)
    for tied in (False, True):
        tag = "tied" if tied else "untied"
        cfg, dims, P, ids, labels = _tiny_train_setup(tied)
        loss64, g = _grads(cfg, P, ids, labels)
        names = tref.param_names(dims)
        check(list(g) == names or set(g) == set(names), "%s: reference parameters are the HF names" % tag)

        # 1 step, no clipping, in float64: torch.optim.AdamW == the hand-written formula
        tr = tref.ReferenceTrainer(cfg, P, dtype=torch.float64, **hyp)
        r1 = tr.step(ids, labels, 3e-3)
        lr = float(np.float32(3e-3))
        ok = abs(r1.loss - loss64) <= 1e-14 * loss64 and r1.step == 1
        worst = 0.0
        for n in names:
            p_new, m, v = tref.adamw_formula(P[n], g[n], 0 * g[n], 0 * g[n], 1, lr, hyp["beta1"], hyp["beta2"],
                                             hyp["eps"], hyp["weight_decay"])
            worst = max(worst, np.abs(r1.params[n] - p_new).max() / np.abs(p_new).max(),
                        np.abs(r1.exp_avg[n] - m).max() / max(np.abs(m).max(), 1e-300),
                        np.abs(r1.exp_avg_sq[n] - v).max() / max(np.abs(v).max(), 1e-300))
        check(ok and worst < 1e-13, "%s: 1 AdamW step == hand formula (float64, worst rel %.1e)" % (tag, worst))

        # step 2 from the state: stateless form (state loaded into a fresh AdamW) == persistent trainer
        rng = np.random.default_rng(5)
        ids2 = rng.integers(0, cfg["vocab_size"], size=ids.shape)
        r2 = tr.step(ids2, ids2, 1e-3)
        inp = tref.pack_train_step_inputs(r1.params, r1.exp_avg, r1.exp_avg_sq, 2, 1e-3, ids2, ids2)
        check(list(inp) != [] and set(inp) == set(tref.train_step_input_names(dims)),
              "%s: packed inputs carry exactly the train_step argument names" % tag)
        # (inputs are packed as float32, APC's types, so this comparison runs in float32)
        t32 = tref.ReferenceTrainer(cfg, P, **hyp)
        a1 = t32.step(ids, labels, 3e-3)
        a2 = t32.step(ids2, ids2, 1e-3)
        s2 = tref.reference_train_step(cfg, tref.pack_train_step_inputs(a1.params, a1.exp_avg, a1.exp_avg_sq, 2,
                                                                        1e-3, ids2, ids2), **hyp)
        same = all(np.array_equal(s2.as_results()[k], a2.as_results()[k]) for k in a2.as_results())
        check(same and s2.step == 2, "%s: stateless step 2 == persistent AdamW step 2 (float32, bitwise)" % tag)
        _, g2 = _grads(cfg, r1.params, ids2, ids2)
        worst = 0.0
        for n in names:
            p_new, m, v = tref.adamw_formula(r1.params[n], g2[n], r1.exp_avg[n], r1.exp_avg_sq[n], 2,
                                             float(np.float32(1e-3)), hyp["beta1"], hyp["beta2"], hyp["eps"],
                                             hyp["weight_decay"])
            worst = max(worst, np.abs(r2.params[n] - p_new).max() / np.abs(p_new).max(),
                        np.abs(r2.exp_avg_sq[n] - v).max() / np.abs(v).max())
        check(worst < 1e-12, "%s: AdamW step 2 (bias correction with step=2) == formula (rel %.1e)" % (tag, worst))

        # clipping: grad_norm is the norm before clipping; the update uses clip_coef * g
        total = math.sqrt(sum(float((x.astype(np.float64) ** 2).sum()) for x in g.values()))
        max_norm = total / 3
        rc = tref.ReferenceTrainer(cfg, P, dtype=torch.float64, max_grad_norm=max_norm, **hyp).step(ids, labels, 3e-3)
        coef = max_norm / (total + 1e-6)
        m_ok = all(np.allclose(rc.exp_avg[n], (1 - hyp["beta1"]) * coef * g[n], rtol=1e-12, atol=1e-300) for n in names)
        check(abs(rc.grad_norm - total) <= 1e-12 * total and m_ok,
              "%s: clip_grad_norm_ returns the pre-clip norm %.6f and scales grads by max/(norm+1e-6)" % (tag, total))
        rn = tref.ReferenceTrainer(cfg, P, dtype=torch.float64, max_grad_norm=10 * total, **hyp).step(ids, labels, 3e-3)
        check(all(np.array_equal(rn.params[n], r1.params[n]) for n in names) and rn.grad_norm == r1.grad_norm,
              "%s: max_grad_norm above the norm changes nothing (clip coef clamped to 1)" % tag)

    # tied: one leaf whose gradient is the sum of the embedding use and the LM-head use
    cfg_t, dims_t, P_t, ids, labels = _tiny_train_setup(True)
    _, gt = _grads(cfg_t, P_t, ids, labels)
    cfg_u = dict(cfg_t, tie_word_embeddings=False)
    P_u = dict(P_t, **{"lm_head.weight": P_t["model.embed_tokens.weight"].copy()})
    lu, gu = _grads(cfg_u, P_u, ids, labels)
    lt = ref.reference_loss(cfg_t, P_t, ids, labels)
    check("lm_head.weight" not in gt and abs(lu - lt) <= 1e-14 * lt and
          np.allclose(gt["model.embed_tokens.weight"], gu["model.embed_tokens.weight"] + gu["lm_head.weight"],
                      rtol=1e-12, atol=1e-15),
          "tied: embed grad == untied embed grad + lm_head grad (one parameter used twice)")
    # autograd wiring vs a central finite difference along a random direction (float64)
    rng = np.random.default_rng(9)
    d = {n: rng.standard_normal(v.shape) for n, v in P_t.items()}
    h = 1e-6
    lp = ref.reference_loss(cfg_t, {n: P_t[n] + h * d[n] for n in P_t}, ids, labels)
    lm = ref.reference_loss(cfg_t, {n: P_t[n] - h * d[n] for n in P_t}, ids, labels)
    fd = (lp - lm) / (2 * h)
    an = sum(float((gt[n] * d[n]).sum()) for n in P_t)
    check(abs(fd - an) <= 1e-6 * abs(an), "tied: directional derivative %.8f == finite difference %.8f" % (an, fd))

    # bf16 compute: f32 leaves/state, loss close to but not equal to f32
    cfg, dims, P, ids, labels = _tiny_train_setup(False)
    rb = tref.ReferenceTrainer(cfg, P, compute_dtype=torch.bfloat16)
    b = rb.step(ids, labels, 1e-3)
    f = tref.ReferenceTrainer(cfg, P).step(ids, labels, 1e-3)
    check(all(t.dtype == torch.float32 for t in rb.leaves.values()) and
          all(s["exp_avg"].dtype == torch.float32 for s in rb.opt.state.values()) and
          0 < abs(b.loss - f.loss) < 0.02 * f.loss,
          "bf16 compute keeps f32 masters/state; loss %.5f vs f32 %.5f" % (b.loss, f.loss))


if __name__ == "__main__":
    torch.set_num_threads(1)
    test_safetensors()
    test_inv_freq()
    test_rope_complex()
    test_causality()
    test_full_model()
    test_train_step()
    if FAILURES:
        print("%d self-test check(s) FAILED" % len(FAILURES))
        sys.exit(1)
    print("all self-tests passed")
