"""Model -> operator program, and the per-device memory formulas.

This is the only module that knows how a transformer is laid out in layers. The program
is the same for prefill and decode today; the phase axis exists so that a model can use
different operators per phase (e.g. absorbed attention weights in decode).
"""
from __future__ import annotations

import numpy as np

from .config import Model
from .kernels import layout as L
from . import ops


def ffn_matrices(model: Model) -> int:
    """Weight matrices per FFN (expert): 3 for gated (SwiGLU), 2 for a plain MLP."""
    return 3 if model.gated_ffn else 2


def model_ops(model: Model) -> list[ops.Op]:
    """The operators of one forward pass, in execution order."""
    h, d, f = model.hidden_size, model.head_dim, model.ffn_dim
    q_dim = model.heads * d
    mats = ffn_matrices(model)
    prog = [
        ops.embedding("embedding", h),
        ops.all_reduce("embedding_all_reduce", h, scope=L.SCOPE_ONCE),
        ops.norm("attn_norm", h),
        ops.gemm("q_proj", h, q_dim, L.SPLIT_COLUMNS),
        ops.gemm("kv_proj", h, 2 * model.kv_heads * d, L.SPLIT_KV, kv_heads=model.kv_heads),
        ops.attention("attention", model.heads, model.kv_heads, d),
        ops.gemm("o_proj", q_dim, h, L.SPLIT_ROWS),
        ops.all_reduce("attn_all_reduce", h),
        ops.norm("ffn_norm", h),
    ]
    if model.is_moe:
        k = model.experts_per_token
        prog += [
            ops.gemm("router", h, model.experts),
            ops.all_to_all("moe_dispatch", k * h),
            ops.moe_experts("experts", h, f, model.experts, k, mats),
            ops.all_to_all("moe_combine", k * h),
            ops.all_gather("moe_all_gather", h, when=L.WHEN_EP),
            ops.all_reduce("ffn_all_reduce", h, when=L.WHEN_NO_EP),
        ]
    else:
        prog += [
            ops.gemm("gate_up_proj", h, (mats - 1) * f, L.SPLIT_COLUMNS),
            ops.gemm("down_proj", f, h, L.SPLIT_ROWS),
            ops.all_reduce("ffn_all_reduce", h),
        ]
    prog += [
        ops.p2p("pp_send", h),
        ops.norm("final_norm", h, scope=L.SCOPE_ONCE),
        ops.gemm("lm_head", h, model.vocab_size, L.SPLIT_COLUMNS, scope=L.SCOPE_ONCE,
                 tokens=L.TOKENS_LAST),
        ops.all_gather("logits_all_gather", model.vocab_size, scope=L.SCOPE_ONCE,
                       tokens=L.TOKENS_LAST),
    ]
    return prog


def compile_models(models) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense program table for the kernel.

    Returns
    -------
    programs : float64 [n_model, 2 (prefill, decode), max_ops, OP_FIELDS]
    n_ops : int64 [n_model, 2]
    layers : int64 [n_model]
    """
    per_model = [model_ops(m) for m in models]
    max_ops = max(len(p) for p in per_model)
    programs = np.zeros((len(models), 2, max_ops, L.OP_FIELDS))
    n_ops = np.zeros((len(models), 2), dtype=np.int64)
    for i, prog in enumerate(per_model):
        rows = np.stack([op.row for op in prog])
        for phase in (L.PREFILL, L.DECODE):
            programs[i, phase, :len(prog)] = rows
            n_ops[i, phase] = len(prog)
    layers = np.array([m.layers for m in models], dtype=np.int64)
    return programs, n_ops, layers


# ----------------------------------------------------------------------------- memory
# The functions below take numpy arrays or xarray DataArrays (they broadcast by name).

def kv_heads_per_device(model: Model, tp):
    """KV heads held per device: split by tp, replicated once tp exceeds them."""
    return np.maximum(model.kv_heads / tp, 1.0)


def weight_params_per_device(model: Model, tp, pp):
    """Parameters held by one device of the most loaded pipeline stage [parameters].

    Attention and FFN matrices split over tp (KV projections replicate once tp exceeds the
    KV heads); experts are spread over ep groups of tp/ep devices, which again is 1/tp of
    them per device. Norm weights are replicated. The embedding and LM head are
    vocab-parallel; with pp > 1 they sit on the first and last stage, one matrix each.
    """
    h, d, f = model.hidden_size, model.head_dim, model.ffn_dim
    mats = ffn_matrices(model)
    attn = (2 * h * model.heads * d) / tp + h * 2 * d * kv_heads_per_device(model, tp) + 2 * h
    if model.is_moe:
        ffn = model.experts * mats * h * f / tp + h * model.experts
    else:
        ffn = mats * h * f / tp
    stage_layers = np.ceil(model.layers / pp)
    vocab_mats = 1.0 + ((pp == 1) & (not model.tied_embeddings))  # untied head on the same stage
    return stage_layers * (attn + ffn) + vocab_mats * model.vocab_size * h / tp + h


def total_params(model: Model) -> float:
    """All parameters of the model (tp = pp = 1) [parameters]."""
    return float(weight_params_per_device(model, 1, 1))


def active_params(model: Model) -> float:
    """Parameters touched per token (top-k experts only) [parameters]."""
    if not model.is_moe:
        return total_params(model)
    unused = (model.experts - model.experts_per_token) * ffn_matrices(model) \
        * model.hidden_size * model.ffn_dim * model.layers
    return total_params(model) - unused


def kv_cache_bytes_per_device(model: Model, tp, pp, batch, context, kv_bytes):
    """KV cache of the whole batch at ``context`` tokens on one device [bytes]."""
    return (batch * context * np.ceil(model.layers / pp) * 2 * model.head_dim
            * kv_heads_per_device(model, tp) * kv_bytes)


def activation_bytes_per_device(model: Model, tp, pp, batch, input_tokens, act_bytes):
    """Working set of one prefill micro-batch in one layer, plus fp32 logits [bytes].

    An estimate of the live tensors: residual stream and normed input (2h), Q (heads*d/tp),
    K and V, and the FFN intermediate (all matrices' outputs; k copies of the tokens for
    MoE). The logits of the last positions are held in fp32.
    """
    seqs = batch / np.minimum(pp, batch)
    tokens = seqs * input_tokens
    d = model.head_dim
    mats = ffn_matrices(model)
    ffn = mats * model.ffn_dim / tp
    if model.is_moe:
        ffn = ffn * model.experts_per_token
    per_token = (2 * model.hidden_size + model.heads * d / tp
                 + 2 * d * kv_heads_per_device(model, tp) + ffn)
    return tokens * per_token * act_bytes + seqs * model.vocab_size / tp * 4.0
