#!/usr/bin/env python3
"""Plain-PyTorch reference for one Llama 3 training step (oracle for `apc compile`).

One step is, exactly as a Hugging Face + torch training loop would do it:
  loss = LlamaForCausalLM causal-LM loss (llama_reference.py: labels shifted inside,
         -100 ignored, mean over kept tokens), computed from float32 leaf parameters;
  loss.backward()                                   (real torch autograd)
  grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or inf)
  torch.optim.AdamW(params, lr, betas, eps, weight_decay).step()   (the real optimizer)
and returns loss, grad_norm, the new parameters and optimizer.state[p]['exp_avg'] /
['exp_avg_sq'] for every parameter, keyed by Hugging Face names.

Tied embeddings (tie_word_embeddings=True): there is one parameter,
"model.embed_tokens.weight", used for both the embedding lookup and the LM head (no
"lm_head.weight" parameter); its gradient is the sum of both uses.

clip_grad_norm_ with max_norm=inf returns the same total norm and multiplies every
gradient by clamp(inf / (norm + 1e-6), max=1) == 1.0 exactly, so "no clipping" and
"clipping" share one code path; the returned norm is always the norm *before* clipping.

Mixed precision (compute_dtype=torch.bfloat16): the leaves (master weights) and the
optimizer state stay float32; the forward casts every parameter to bfloat16 (one cast
per parameter, so a tied embedding is still one leaf), runs in bfloat16 with HF's float32
islands (RMSNorm variance, softmax, loss on float32 logits), and autograd brings the
gradients back to float32 through the casts. This is an emulation used to calibrate the
bf16 tolerance; APC is not required to match it bit for bit.

The interface mirrors APC's `train_step` function (see check_train_step_vs_torch.py):
inputs  = params..., exp_avg.<name>..., exp_avg_sq.<name>..., step (int64 [], 1-based
          number of this update == torch's state['step'] after its increment),
          lr (float32 []), input_ids, labels ([B, S] int64);
results = loss, grad_norm, params..., exp_avg.<name>..., exp_avg_sq.<name>...
"""

import math

import numpy as np
import torch

import llama_reference as ref

ADAMW_DEFAULTS = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)


def param_names(dims):
    """Parameter names in Hugging Face order (the order of APC's train_step arguments)."""
    return list(ref.expected_param_shapes(dims))


def train_step_input_names(dims):
    names = param_names(dims)
    return (names + ["exp_avg." + n for n in names] + ["exp_avg_sq." + n for n in names]
            + ["step", "lr", "input_ids", "labels"])


def train_step_result_names(dims):
    names = param_names(dims)
    return ["loss", "grad_norm"] + names + ["exp_avg." + n for n in names] + ["exp_avg_sq." + n for n in names]


def pack_train_step_inputs(params, exp_avg, exp_avg_sq, step, lr, input_ids, labels):
    """{name: numpy array} in APC's naming, ready for ref.write_safetensors."""
    out = {}
    for n, v in params.items():
        out[n] = np.asarray(v, dtype=np.float32)
        out["exp_avg." + n] = np.asarray(exp_avg[n], dtype=np.float32)
        out["exp_avg_sq." + n] = np.asarray(exp_avg_sq[n], dtype=np.float32)
    out["step"] = np.array(int(step), dtype=np.int64)
    out["lr"] = np.array(lr, dtype=np.float32)
    out["input_ids"] = np.asarray(input_ids, dtype=np.int64)
    out["labels"] = np.asarray(labels, dtype=np.int64)
    return out


class StepResult:
    def __init__(self, loss, grad_norm, params, exp_avg, exp_avg_sq, step):
        self.loss = loss            # python float (value of the float32 loss)
        self.grad_norm = grad_norm  # python float (value of the float32 total norm, before clipping)
        self.params = params        # {name: np.ndarray}, new parameters
        self.exp_avg = exp_avg      # {name: np.ndarray}
        self.exp_avg_sq = exp_avg_sq
        self.step = step            # torch's state['step'] after this update

    def as_results(self):
        """{name: numpy array} in APC's result naming."""
        out = {"loss": np.array(self.loss, dtype=np.float32), "grad_norm": np.array(self.grad_norm, dtype=np.float32)}
        for n in self.params:
            out[n] = self.params[n]
            out["exp_avg." + n] = self.exp_avg[n]
            out["exp_avg_sq." + n] = self.exp_avg_sq[n]
        return out


class ReferenceTrainer:
    """Persistent model + torch.optim.AdamW; `step()` runs one training step.

    dtype: dtype of the leaves and optimizer state (float32 for the oracle; float64 gives a
    higher-precision run used to estimate how far two correct float32 implementations drift).
    compute_dtype: dtype of the forward/backward (default: dtype; bfloat16 for mixed precision).
    """

    def __init__(self, cfg, params, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 max_grad_norm=None, dtype=torch.float32, compute_dtype=None):
        self.dims = cfg if isinstance(cfg, ref.LlamaDims) else ref.LlamaDims(cfg)
        self.names = param_names(self.dims)
        extra = set(params) - set(self.names) - {"input_ids", "labels"}
        if extra:
            raise KeyError("unexpected parameters %s (tied=%s)" % (sorted(extra), self.dims.tied))
        self.dtype = dtype
        self.compute_dtype = compute_dtype or dtype
        self.max_grad_norm = max_grad_norm
        self.leaves = {n: torch.tensor(np.asarray(params[n]), dtype=dtype).requires_grad_(True) for n in self.names}
        self.param_list = [self.leaves[n] for n in self.names]
        # lr is set per step from the step's input; 0.0 here is only a placeholder.
        self.opt = torch.optim.AdamW(self.param_list, lr=0.0, betas=(beta1, beta2), eps=eps,
                                     weight_decay=weight_decay)

    def load_state(self, params, exp_avg, exp_avg_sq, step_done):
        """Set parameters and AdamW state as after `step_done` updates (stateless use)."""
        with torch.no_grad():
            for n in self.names:
                self.leaves[n].copy_(torch.as_tensor(np.asarray(params[n])).to(self.dtype))
        self.opt.state.clear()
        if step_done > 0:
            for n in self.names:
                p = self.leaves[n]
                self.opt.state[p] = {
                    "step": torch.tensor(float(step_done)),  # torch 1.13's non-capturable layout
                    "exp_avg": torch.tensor(np.asarray(exp_avg[n]), dtype=self.dtype),
                    "exp_avg_sq": torch.tensor(np.asarray(exp_avg_sq[n]), dtype=self.dtype),
                }
        else:
            for n in self.names:
                if np.any(np.asarray(exp_avg[n]) != 0) or np.any(np.asarray(exp_avg_sq[n]) != 0):
                    raise ValueError("step 1 needs zero optimizer state (torch initializes it lazily)")

    def loss_tensor(self, input_ids, labels):
        cd = self.compute_dtype
        p = {n: (t if cd == self.dtype else t.to(cd)) for n, t in self.leaves.items()}
        logits = ref.forward_logits_tensors(self.dims, p, input_ids, cd)
        return ref.causal_lm_loss(logits, labels)

    def step(self, input_ids, labels, lr):
        """One training step. `lr` is rounded to float32 first (APC takes lr as a float32 input)."""
        lr = float(np.float32(lr))
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_tensor(input_ids, labels)
        loss.backward()
        for n in self.names:
            if self.leaves[n].grad is None:
                raise RuntimeError("parameter %s got no gradient" % n)
        max_norm = float("inf") if self.max_grad_norm is None else float(self.max_grad_norm)
        total = torch.nn.utils.clip_grad_norm_(self.param_list, max_norm)
        self.opt.step()
        st = [self.opt.state[self.leaves[n]] for n in self.names]
        return StepResult(
            loss=float(loss.detach()),
            grad_norm=float(total),
            params={n: self.leaves[n].detach().clone().numpy() for n in self.names},
            exp_avg={n: s["exp_avg"].detach().clone().numpy() for n, s in zip(self.names, st)},
            exp_avg_sq={n: s["exp_avg_sq"].detach().clone().numpy() for n, s in zip(self.names, st)},
            step=int(round(float(st[0]["step"]))),
        )


def reference_train_step(cfg, inputs, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                         max_grad_norm=None, dtype=torch.float32, compute_dtype=None):
    """Stateless form with APC's exact interface: {input name: array} -> StepResult."""
    dims = cfg if isinstance(cfg, ref.LlamaDims) else ref.LlamaDims(cfg)
    names = param_names(dims)
    params = {n: inputs[n] for n in names}
    tr = ReferenceTrainer(dims, params, beta1, beta2, eps, weight_decay, max_grad_norm, dtype, compute_dtype)
    step = int(np.asarray(inputs["step"]))
    if step < 1:
        raise ValueError("step is the 1-based number of this update, got %d" % step)
    tr.load_state(params, {n: inputs["exp_avg." + n] for n in names},
                  {n: inputs["exp_avg_sq." + n] for n in names}, step - 1)
    res = tr.step(inputs["input_ids"], inputs["labels"], float(np.asarray(inputs["lr"])))
    assert res.step == step
    return res


def adamw_formula(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """AdamW (Loshchilov & Hutter, torch's bias-corrected form) in float64 numpy, for self-tests."""
    p = np.asarray(param, np.float64) * (1.0 - lr * weight_decay)
    m = beta1 * np.asarray(exp_avg, np.float64) + (1.0 - beta1) * grad
    v = beta2 * np.asarray(exp_avg_sq, np.float64) + (1.0 - beta2) * grad * grad
    m_hat = m / (1.0 - beta1 ** step)
    denom = np.sqrt(v) / math.sqrt(1.0 - beta2 ** step) + eps
    return p - lr * m_hat / denom, m, v
