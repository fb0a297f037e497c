"""Operator kinds: one constructor per kind, and per-operator costs (for hand checks).

A constructor returns an :class:`Op`, a named row of an operator program: the kind, where it
runs (per layer, once per pass, per pipeline boundary), which tokens it sees, its collective
group, its precision class (``layout.QC_*``: which precisions of a quant recipe it takes)
and its kind-specific parameters. The FLOP/byte/network formulas themselves live in
``dse.kernels.formulas.op_cost`` so that the compiled kernel and this module share one
definition; their derivations are documented there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import layout as L
from .kernels.formulas import op_cost


@dataclass(frozen=True)
class Op:
    name: str
    row: np.ndarray  # float64[OP_FIELDS]

    @property
    def kind(self) -> str:
        return L.OP_KIND_NAMES[int(self.row[L.OP_KIND])]

    @property
    def quant_class(self) -> str:
        """The op's precision class (``layout.QUANT_CLASSES``)."""
        return L.QUANT_CLASSES[int(self.row[L.OP_CLASS])]


# The precision class an op of each kind starts in: collectives carry the collective
# payload, the vocab-parallel embedding goes with the LM head (the vocabulary matrices),
# routed experts the experts class. GEMMs and small kernels start in QC_OTHER (the grid's
# precisions); dse.compile puts each projection GEMM in its class (with_class). The
# attention and state-space / linear-attention scan kernels stay in QC_OTHER: a recipe's
# `attention` precisions are its projections' (the checkpoint's linear layers), while the
# kernels compute on the grid's activations and the recipe's KV cache, as engines serve
# fp8 checkpoints (DeepSeek's block-FP8: FlashMLA / FlashInfer / aiter MLA on bf16 queries
# over an fp8 or bf16 cache, prefill attention in bf16).
KIND_CLASS = {L.ALLREDUCE: L.QC_COLLECTIVES, L.ALLGATHER: L.QC_COLLECTIVES,
              L.REDUCESCATTER: L.QC_COLLECTIVES, L.ALLTOALL: L.QC_COLLECTIVES,
              L.P2P: L.QC_COLLECTIVES, L.EMBEDDING: L.QC_LM_HEAD, L.MOE: L.QC_EXPERTS}


def _op(name, kind, params, layers=0, scope=L.SCOPE_LAYER, tokens=L.TOKENS_ALL,
        group=L.GROUP_NONE, when=L.WHEN_ALWAYS, cdt=L.CDT_GEMM):
    if scope == L.SCOPE_LAYER and layers <= 0:
        raise ValueError(f"op {name}: a per-layer op needs the number of layers it runs in")
    row = np.zeros(L.OP_FIELDS)
    row[[L.OP_KIND, L.OP_SCOPE, L.OP_TOKENS, L.OP_GROUP, L.OP_WHEN, L.OP_CDT, L.OP_LAYERS,
         L.OP_CLASS]] = (kind, scope, tokens, group, when, cdt, layers,
                         KIND_CLASS.get(kind, L.QC_OTHER))
    row[L.OP_P0:L.OP_P0 + len(params)] = params
    return Op(name, row)


def gemm(name, k, n, layers=0, split=L.SPLIT_NONE, kv_heads=0, groups=1, scope=L.SCOPE_LAYER,
         tokens=L.TOKENS_ALL, kv_columns=0):
    """Linear layer [tokens, k] x [k, n] (``groups`` independent ones for per-head GEMMs);
    ``split`` says how tp divides it. A fused QKV projection (``SPLIT_QKV``) has ``n``
    query columns split over tp and ``kv_columns`` K/V columns split over the KV heads."""
    return _op(name, L.GEMM, (k, n, split, kv_heads, groups, kv_columns), layers, scope,
               tokens)


def elementwise(name, read, written, flops, layers=0, split=L.SPLIT_NONE, element_bytes=0.0,
                scope=L.SCOPE_LAYER, tokens=L.TOKENS_ALL):
    """A small memory-bound kernel: ``read`` and ``written`` elements and ``flops`` per
    token; ``split``: SPLIT_COLUMNS over tp, SPLIT_EXPERTS over the ep groups (routed
    copies); ``element_bytes``: 0 for the activation precision (e.g. 4 for fp32 logits)."""
    return _op(name, L.ELEMENTWISE, (read, written, flops, split, element_bytes), layers,
               scope, tokens, cdt=L.CDT_ACT)


# FLOPs per element of a dynamic activation quantization: the absolute max of its group,
# the scale, the scaled conversion
QUANT_FLOPS_PER_ELEMENT = 3.0


def quantize(gemm_op: Op, qclass: int) -> Op:
    """The kernel that quantizes ``gemm_op``'s input, per token (or per group of 128
    elements, as DeepSeek's block-FP8), from the grid's activation precision (the residual
    stream's) to the class ``qclass``'s activation precision, as engines run a separate
    kernel before each linear layer of a dynamically quantized checkpoint (SGLang's and
    vLLM's per_token_group_quant_fp8, TensorRT-LLM's fp8_quantize_1x128 for block-FP8; an
    NVFP4 input's scaled_fp4_quant). It reads the input at the grid's precision and writes
    it at the class's (the scales, 1/128 of the elements, are not counted); where the
    class computes in the grid's precision there is no kernel (zero work, no launch). Its
    input is the GEMM's K per device (K / tp for a row-split GEMM, all groups' inputs for a
    per-head one); scope, layers, tokens and existence follow the GEMM."""
    r = gemm_op.row
    k, split, groups = r[L.OP_P0], int(r[L.OP_P0 + 2]), max(r[L.OP_P0 + 4], 1.0)
    elements = k * groups
    share = L.SPLIT_COLUMNS if split == L.SPLIT_ROWS or (
        groups > 1.0 and split == L.SPLIT_COLUMNS) else L.SPLIT_NONE
    row = np.zeros(L.OP_FIELDS)
    for f in (L.OP_SCOPE, L.OP_TOKENS, L.OP_WHEN, L.OP_LAYERS, L.OP_SPAN, L.OP_DRAFT):
        row[f] = r[f]
    row[[L.OP_KIND, L.OP_GROUP, L.OP_CDT, L.OP_CLASS]] = (L.ELEMENTWISE, L.GROUP_NONE,
                                                           L.CDT_QUANT, qclass)
    row[L.OP_P0:L.OP_P0 + 5] = (elements, elements, QUANT_FLOPS_PER_ELEMENT * elements,
                                share, -1.0)
    return Op(f"{gemm_op.name}_quant", row)


def attention(name, heads, kv_heads, qk_dim, v_dim, cache_per_token, cache_heads, layers,
              window=0, fresh=False):
    """Causal, flash-style fused attention (scores stay on chip).

    ``cache_per_token``: cached elements per token over all heads; ``cache_heads``: heads
    the cache is split over by tp (1: replicated, as the MLA latent); ``window``: sliding
    window [tokens] (0: global); ``fresh``: over heads just projected (MLA prefill), which
    computes in 16 bits whatever the activation and KV-cache precision (layout.CDT_FRESH).
    """
    return _op(name, L.ATTENTION, (heads, kv_heads, qk_dim, v_dim, window, cache_per_token,
                                   cache_heads), layers,
               cdt=L.CDT_FRESH if fresh else L.CDT_ATTENTION)


def ssm_scan(name, inner, state_size, conv_channels, conv_kernel, layers, bc=0, dt=0):
    """Mamba-1/2 selective scan; a fixed-size state (with the causal conv's last inputs)
    instead of a KV cache. ``bc``: B and C elements per token, ``dt``: Δ elements per
    token that the scan reads besides x and z."""
    return _op(name, L.SSM, (inner, state_size, conv_channels, conv_kernel, bc, dt), layers,
               cdt=L.CDT_ACT)


def norm(name, hidden, layers=0, scope=L.SCOPE_LAYER):
    """Fused residual add + RMSNorm over ``hidden`` elements per token."""
    return _op(name, L.NORM, (hidden,), layers, scope, cdt=L.CDT_ACT)


def embedding(name, hidden):
    """Vocab-parallel token embedding lookup."""
    return _op(name, L.EMBEDDING, (hidden,), scope=L.SCOPE_ONCE, cdt=L.CDT_ACT)


def moe_experts(name, hidden, ffn, experts, top_k, matrices, layers):
    """Routed experts as grouped GEMMs (gate/up, activation fused, down)."""
    return _op(name, L.MOE, (hidden, ffn, experts, top_k, matrices), layers)


def lora(name, replicated, split, projections, layers):
    """LoRA adapters of a layer's ``projections`` targeted projections: ``replicated``
    and ``split`` widths (the sums over them of what every tp device holds whole and what
    tp splits, ``formulas.lora_cost``); they run only with lora_rank > 0."""
    return _op(name, L.LORA, (replicated, split, projections), layers, cdt=L.CDT_ACT)


def all_reduce(name, elements_per_token, layers=0, group=L.GROUP_TP, scope=L.SCOPE_LAYER,
               when=L.WHEN_ALWAYS):
    return _op(name, L.ALLREDUCE, (elements_per_token,), layers, scope, group=group, when=when)


def all_gather(name, elements_per_token, layers=0, group=L.GROUP_TP, scope=L.SCOPE_LAYER,
               tokens=L.TOKENS_ALL, when=L.WHEN_ALWAYS, element_bytes=0.0,
               split=L.SPLIT_NONE, heads=0):
    """All-gather of ``elements_per_token`` per token; ``element_bytes``: 0 for the
    activation precision, -1 for the KV cache's; ``split``: the per-device share
    (SPLIT_COLUMNS over tp, SPLIT_KV over min(tp, ``heads``)); ``formulas.op_cost``."""
    return _op(name, L.ALLGATHER, (elements_per_token, element_bytes, split, heads), layers,
               scope, tokens, group, when)


def reduce_scatter(name, elements_per_token, layers=0, group=L.GROUP_TP,
                   scope=L.SCOPE_LAYER, when=L.WHEN_ALWAYS):
    return _op(name, L.REDUCESCATTER, (elements_per_token,), layers, scope, group=group,
               when=when)


def all_to_all(name, elements_per_token, layers, group=L.GROUP_EP, when=L.WHEN_EXCHANGE):
    return _op(name, L.ALLTOALL, (elements_per_token,), layers, group=group, when=when)


def p2p(name, elements_per_token):
    """Activations sent to the next pipeline stage."""
    return _op(name, L.P2P, (elements_per_token,), scope=L.SCOPE_BOUNDARY)


def with_class(op: Op, qclass: int) -> Op:
    """The op in precision class ``qclass`` (``layout.QC_*``)."""
    row = op.row.copy()
    row[L.OP_CLASS] = qclass
    return Op(op.name, row)


def moe_span(op: Op) -> Op:
    """The op as part of an MoE layer: under attention data parallelism it sees the tokens
    of every attention group and spreads over tp * attention_dp devices."""
    row = op.row.copy()
    row[L.OP_SPAN] = L.SPAN_MOE
    return Op(op.name, row)


def op_costs(op: Op, phase: int, seqs: float, input_tokens: float, context: float,
             tp: float, pp: float, ep: float, wb: float, ab: float, kb: float,
             imbalance: float = 1.0) -> dict:
    """FLOPs, bytes and collective message bytes of one op for one micro-batch on one
    device, with the collective's group and span (``kernels/collectives.py`` prices them).

    ``context`` is the attended length of a decode step (ignored in prefill; capped at a
    sliding window).
    """
    f0, f1, b0, b1, nb, group, span, window, dq = op_cost(
        op.row, phase, float(seqs), float(input_tokens), float(tp), float(pp), float(ep),
        wb, ab, kb, float(imbalance))
    seen = min(context, window) if window > 0 else context
    return {"flops": f0 + f1 * seen, "bytes": b0 + b1 * seen, "net_bytes": nb,
            "group_devices": group, "span_devices": span, "dequant_ops": dq}
