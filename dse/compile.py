"""Model -> operator program, and the per-device memory formulas.

This is the only module that knows how a transformer is laid out in layers. The program
is the same for prefill and decode today; the phase axis exists so that a model can use
different operators per phase (e.g. absorbed attention weights in decode).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .config import Model
from .kernels import layout as L
from . import ops


def ffn_matrices(model: Model) -> int:
    """Weight matrices per FFN (expert): 3 for gated (SwiGLU), 2 for a plain MLP."""
    return 3 if model.gated_ffn else 2


def _attention_ops(m: Model, phase: int) -> list[ops.Op]:
    """Projections and attention of the attention layers (GQA/MHA, or MLA), per phase."""
    h, n = m.hidden_size, m.attention_layers
    if not n:
        return []
    window_layers = m.window_layers
    global_layers = n - window_layers
    if not m.is_mla:
        d = m.head_dim
        # Q, K and V as one GEMM (the input is read once), as engines fuse them; an output
        # gate (Qwen3-Next, Qwen3.5) adds heads x d gate columns to the query part
        q_columns = m.heads * d * (2 if m.attention_output_gate else 1)
        out = [ops.gemm("qkv_proj", h, q_columns, n, L.SPLIT_QKV, kv_heads=m.kv_heads,
                        kv_columns=2 * m.kv_heads * d)]
        if rotary(m):  # RoPE on the query and key heads (read and written once)
            qk = (m.heads + m.kv_heads) * d
            out.append(ops.elementwise("rope", qk, qk, 3 * qk, n, L.SPLIT_COLUMNS))
        for name, count, window in (("attention", global_layers, 0),
                                    ("attention_window", window_layers, m.sliding_window_tokens)):
            if count:
                out.append(ops.attention(name, m.heads, m.kv_heads, d, d, 2 * m.kv_heads * d,
                                         m.kv_heads, count, window))
        if m.attention_output_gate:
            # o = attention * sigmoid(gate) (arXiv:2505.06708): reads both, writes o; ~5
            # FLOPs per element (the sigmoid and the product)
            hd = m.heads * d
            out.append(ops.elementwise("attn_gate", 2 * hd, hd, 5 * hd, n, L.SPLIT_COLUMNS))
        return out + [ops.gemm("o_proj", m.heads * d, h, n, L.SPLIT_ROWS)]
    # Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434): the cache holds one
    # latent of kv_lora_rank + rope dims per token, shared by all heads and replicated over
    # tp. Prefill decompresses K/V (kv_b) and runs ordinary attention; decode absorbs the
    # up-projections into per-head GEMMs and attends over the latent directly.
    dq = m.qk_nope_head_dim + m.qk_rope_head_dim
    latent = m.kv_lora_rank + m.qk_rope_head_dim
    if m.q_lora_rank:
        # the two down-projections share their input: one GEMM (as SGLang and vLLM fuse
        # q_a and kv_a), then one kernel normalizing both latents
        lat = m.q_lora_rank + m.kv_lora_rank
        out = [ops.gemm("qkv_a_proj", h, m.q_lora_rank + latent, n),
               ops.elementwise("qkv_a_norm", lat, lat, 4 * lat, n),
               ops.gemm("q_b_proj", m.q_lora_rank, m.heads * dq, n, L.SPLIT_COLUMNS)]
    else:
        out = [ops.gemm("q_proj", h, m.heads * dq, n, L.SPLIT_COLUMNS),
               ops.gemm("kv_a_proj", h, latent, n),
               ops.elementwise("kv_a_norm", m.kv_lora_rank, m.kv_lora_rank,
                               4 * m.kv_lora_rank, n)]
    # RoPE on the queries' rotary part (split with the heads) and the shared rotary key
    qk = (m.heads + 1) * m.qk_rope_head_dim
    out.append(ops.elementwise("rope", qk, qk, 3 * qk, n, L.SPLIT_COLUMNS))
    top_k = m.sparse_attention_top_k
    if top_k:
        out += _indexer_ops(m)
    if phase == L.PREFILL and not top_k:
        out += [ops.gemm("kv_b_proj", m.kv_lora_rank, m.heads * (m.qk_nope_head_dim + m.v_head_dim),
                         n, L.SPLIT_COLUMNS),
                ops.attention("attention", m.heads, m.heads, dq, m.v_head_dim, latent, 1, n,
                              fresh=True)]
    else:
        # decode, and DeepSeek Sparse Attention in both phases: each query attends the
        # top-k positions its indexer selected, over the latent (the MQA form of MLA, in
        # which DeepSeek-V3.2 instantiates DSA; vLLM's FlashMLA sparse kernels run prefill
        # and decode this way, head size 576). The window caps the attended positions and
        # the cache positions read at min(context, top-k), which is what the selection does
        # to compute and reads; the cache itself keeps every position
        # (kv_cache_bytes_per_device caps sliding windows only)
        out += [ops.gemm("q_absorb", m.qk_nope_head_dim, m.kv_lora_rank, n, L.SPLIT_COLUMNS,
                         groups=m.heads),
                ops.attention("attention_latent", m.heads, 1, latent, m.kv_lora_rank, latent, 1, n,
                              window=top_k),
                ops.gemm("v_absorb", m.kv_lora_rank, m.v_head_dim, n, L.SPLIT_COLUMNS,
                         groups=m.heads)]
    return out + [ops.gemm("o_proj", m.heads * m.v_head_dim, h, n, L.SPLIT_ROWS)]


# The lightning indexer's v_dim: the attention formula prices 2 x heads x (qk + v) FLOPs per
# query-position pair; with v = 2 that is the q.k dot products (2 x 128 per head) plus 4 per
# head for the ReLU, the head weight and the sum over heads (3) and the top-k selection over
# the scores (~1 per head, i.e. ~64 operations per position). Per token the op then streams
# heads x (128 + 2) query-side elements (q, the head weights and one more per head) and one
# 130-wide key; the 2048 int32 indices it writes per token (8 KB) are not counted.
INDEXER_V_DIM = 2


def _indexer_ops(m: Model) -> list[ops.Op]:
    """The lightning indexer of DeepSeek Sparse Attention (DeepSeek-V3.2-Exp,
    inference/model.py ``Indexer``), in every attention layer.

    I(t, s) = sum over heads j of w(t, j) ReLU(q(t, j) . k(s)), then the top-k positions by
    I. Its q comes from the MLA q latent (wq_b), one k per token from the hidden state (wk,
    LayerNorm, RoPE, Hadamard rotation, fp8 quantization) is cached for every position, and
    the head weights w from weights_proj. Priced as an attention op over every previous
    position (window 0) with ``indexer_heads`` query heads, one K head of
    ``indexer_head_dim`` read fresh and cached per token, replicated over tp like the MLA
    latent, and ``INDEXER_V_DIM`` (above). Approximations:

    - engines replicate the indexer on every tp rank (vLLM and SGLang ReplicatedLinear; the
      reference code's plain Linear): the GEMMs here are replicated, but the attention
      formula splits the query heads over tp, so at tp > 1 the scoring FLOPs are priced at
      1/tp (the replicated cache read, which bounds decode, is not split). Exact at tp = 1
      per attention group, as SGLang's DP-attention deployment runs it (--tp 8 --dp 8).
    - it computes and caches in fp8 (132 bytes per token with the scale); here the cache
      and its reads take the KV-cache precision (kv_dtype fp8: 128 bytes) and the scoring
      the attention compute precision.
    - the fp32 logits the top-k reads back (DeepGEMM fp8_mqa_logits, 8 bytes per pair
      written and read) are not priced; in prefill they are under the compute time.
    """
    n, h = m.attention_layers, m.hidden_size
    heads, d = m.indexer_heads, m.indexer_head_dim
    qk = (heads + 1) * d
    return [
        ops.gemm("indexer_q_proj", m.q_lora_rank or h, heads * d, n),
        ops.gemm("indexer_k_proj", h, d, n),
        ops.gemm("indexer_weights_proj", h, heads, n),
        # k's LayerNorm, RoPE on q and k, the Hadamard rotation (log2 d butterflies) and the
        # fp8 quantization: one pass over q and k, ~12 FLOPs per element
        ops.elementwise("indexer_qk_prep", qk, qk, 12 * qk, n),
        ops.attention("indexer", heads, 1, d, INDEXER_V_DIM, d, 1, n),
    ]


def _ssm_ops(m: Model) -> list[ops.Op]:
    """State-space (Mamba-1/2) mixer layers: in projection, conv + scan, out projection."""
    n = m.ssm_layers
    if not n:
        return []
    h, inner, state = m.hidden_size, m.ssm_inner, m.ssm_state_size
    ch, kernel = m.ssm_conv_channels, m.ssm_conv_kernel
    if m.ssm_heads:  # Mamba-2: one projection gives x, z, B, C and dt (arXiv:2405.21060)
        in_dim = 2 * inner + 2 * m.ssm_groups * state + m.ssm_heads
        out = [ops.gemm("ssm_in_proj", h, in_dim, n, L.SPLIT_COLUMNS)]
        bc, dt = 2 * m.ssm_groups * state, m.ssm_heads  # B, C from the conv; dt per head
    else:  # Mamba-1 (arXiv:2312.00752): x and z, then x_proj -> dt, B, C and dt_proj
        out = [ops.gemm("ssm_in_proj", h, 2 * inner, n, L.SPLIT_COLUMNS),
               ops.gemm("ssm_x_proj", inner, m.dt_rank + 2 * state, n, L.SPLIT_ROWS),
               ops.gemm("ssm_dt_proj", m.dt_rank, inner, n, L.SPLIT_COLUMNS)]
        bc, dt = 2 * state, inner
    # the causal depthwise conv is a kernel of its own (reads and writes its channels);
    # the scan then reads x, z, B, C and dt and writes y (Mamba-1: 6 inner + 2 N per token)
    return out + [ops.elementwise("ssm_conv", ch, ch, 2 * ch * kernel, n, L.SPLIT_COLUMNS),
                  ops.ssm_scan("ssm_scan", inner, state, ch, kernel, n, bc, dt),
                  ops.gemm("ssm_out_proj", inner, h, n, L.SPLIT_ROWS)]


def _linear_attention_ops(m: Model) -> list[ops.Op]:
    """Gated DeltaNet linear-attention layers (Qwen3-Next, Qwen3.5; Yang et al.,
    arXiv:2412.06464): in projection, causal conv, delta-rule recurrence over a fixed-size
    state, gated RMSNorm, out projection.

    The recurrence is priced with the ``ssm_scan`` kind (``kernels/formulas.py``), inner =
    value heads x dv and state size N = dk, which gives it exactly the state engines keep
    per sequence and layer: value heads x dk x dv plus the conv's last kernel - 1 inputs of
    its 2 x key + value channels (vLLM's gated_delta_net_state_shape), read and written
    once per decode step, split over tp with the heads. What that formula misses:

    - FLOPs. Per value head and token the recurrent (decode) form decays the state (dk dv),
      reads it with k (2 dk dv), writes the rank-1 delta update (2 dk dv) and reads it
      with q (2 dk dv): ~7 dk dv against the scan's 6 inner N = 6 dk dv (-14 %). At 2
      bytes per state element read and written that is < 2 FLOP/byte, memory bound on
      every chip, so decode time is unchanged. Prefill runs the chunked (WY) form:
      6 dk dv of state products plus 2 C (3 dk + 2 dv) of intra-chunk ones per token
      (chunk C = 64, dk = dv = 128: ~11 dk dv), of which the scan prices a bit over half;
      that recurrence is ~8 % of a Qwen3-Next linear-attention layer's mixer FLOPs and
      ~4 % of the layer's with its experts.
    - Bytes streamed per token: the scan formula reads x, z, B, C and dt and writes y
      (3 inner + bc + dt). Here bc = q and k (2 x key width), dt = the beta and decay
      gates (2 per value head), x = v and y = o; z (the output gate) is read by the gated
      norm, not the recurrence, so each token streams one value-width vector more than
      the fla kernel does (under 1 % of the state traffic of a decode step).
    - The q/k L2 norms and the gate activations, fused into the recurrence kernel in vLLM
      and SGLang (fused_sigmoid_gating_delta_rule_update), are not priced separately; the
      state stays in the KV-cache precision (Qwen3.5's config asks for an fp32 state,
      mamba_ssm_dtype: run that as kv_dtype = "fp32").
    """
    n = m.linear_attention_layers
    if not n:
        return []
    h, key, value = m.hidden_size, m.linear_key_dim, m.linear_value_dim
    ch, kernel, vh = m.linear_conv_channels, m.linear_conv_kernel, m.linear_value_heads
    return [
        # q, k, v, z and the b/a gates (beta and decay per value head) from one GEMM (HF
        # in_proj_qkvz + in_proj_ba; Qwen3.5 in_proj_qkv, z, b, a): engines that run b/a
        # as a GEMM of their own pay one more small kernel
        ops.gemm("gdn_in_proj", h, 2 * key + 2 * value + 2 * vh, n, L.SPLIT_COLUMNS),
        # the depthwise causal conv over q, k, v (+ SiLU), as Mamba's ssm_conv
        ops.elementwise("gdn_conv", ch, ch, 2 * ch * kernel, n, L.SPLIT_COLUMNS),
        ops.ssm_scan("gdn_recurrence", value, m.linear_key_head_dim, ch, kernel, n,
                     bc=2 * key, dt=2 * vh),
        # RMSNorm over each dv-wide head output times SiLU(z): reads o and z, writes the
        # gated output; ~10 FLOPs per element (square, sum, scale, weight, SiLU, product)
        ops.elementwise("gdn_norm", 2 * value, value, 10 * value, n, L.SPLIT_COLUMNS),
        ops.gemm("gdn_out_proj", value, h, n, L.SPLIT_ROWS),
    ]


def _ffn_ops(m: Model) -> list[ops.Op]:
    """Dense FFN layers and MoE layers (router, routed and shared experts, collectives)."""
    h, mats = m.hidden_size, ffn_matrices(m)
    dense = m.layers - m.moe_layers if m.ffn_dim else 0
    out = []
    if dense:
        out += _gemms_in([
            ops.gemm("gate_up_proj", h, (mats - 1) * m.ffn_dim, dense, L.SPLIT_COLUMNS),
            activation("act", m, m.ffn_dim, dense),
            ops.gemm("down_proj", m.ffn_dim, h, dense, L.SPLIT_ROWS),
            ops.all_reduce("ffn_all_reduce", h, dense)], L.QC_DENSE)
    moe = m.moe_layers
    if moe:
        k = m.experts_per_token
        # the router runs in each attention group on its own tokens; everything after it
        # spans all tp * attention_dp devices
        # routing: softmax / top-k over the fp32 router logits (k ids and weights out),
        # then sorting the routed copies by expert (k ids per token)
        out += [ops.gemm("router", h, m.experts, moe),
                ops.elementwise("moe_topk", m.experts, 2 * k, 4 * m.experts, moe,
                                element_bytes=4.0),
                ops.elementwise("moe_align", k, k, k, moe, element_bytes=4.0)]
        # the routed experts' inputs quantized where the experts' activations are narrower
        # than the grid's: each token's hidden state before the grouped GEMMs, and the
        # routed copies' activations before the down projection (ops.quantize)
        moe_ops = [ops.all_to_all("moe_dispatch", k * h, moe),
                   ops.quantize(ops.gemm("experts", h, 1, moe), L.QC_EXPERTS),
                   ops.moe_experts("experts", h, m.expert_ffn_dim, m.experts, k, mats, moe),
                   activation("experts_act", m, m.expert_ffn_dim, moe, copies=k),
                   ops.quantize(ops.gemm("experts_down", k * m.expert_ffn_dim, 1, moe,
                                         L.SPLIT_ROWS), L.QC_EXPERTS),
                   ops.all_to_all("moe_combine", k * h, moe),
                   # un-permute: the k weighted expert outputs of a token summed into one
                   ops.elementwise("moe_sum", k * h, h, 2 * k * h, moe, L.SPLIT_EXPERTS)]
        if m.shared_ffn_dim:
            moe_ops += _gemms_in([
                ops.gemm("shared_gate_up_proj", h, (mats - 1) * m.shared_ffn_dim, moe,
                         L.SPLIT_COLUMNS),
                activation("shared_act", m, m.shared_ffn_dim, moe),
                ops.gemm("shared_down_proj", m.shared_ffn_dim, h, moe, L.SPLIT_ROWS)],
                L.QC_SHARED)
        # within one attention group (ep == 1, or expert parallelism inside the tp group)
        # every device holds every token: each runs its experts (or expert shards) on them
        # and the partial outputs are all-reduced, as SGLang's forward_normal, vLLM's
        # FusedMoE and TensorRT-LLM without attention DP do; the all-to-alls above run only
        # where experts are spread over several attention groups (layout.WHEN_*)
        moe_ops.append(ops.all_reduce("moe_all_reduce", h, moe, when=L.WHEN_IN_GROUP))
        out += [ops.moe_span(op) for op in moe_ops]
        # with the all-to-alls the combine returns each device's own tokens; an attention
        # group of tp > 1 devices, which all hold the same tokens, gathers their shares
        # back (under attention DP with tp = 1 per group, as SGLang and TensorRT-LLM run
        # DeepSeek, there is nothing to gather: only the two all-to-alls)
        out.append(ops.all_gather("moe_all_gather", h, moe, when=L.WHEN_EXCHANGE))
    return out


def rotary(model: Model) -> bool:
    """Whether attention applies rotary position embeddings (learned absolute positions,
    as in GPT-3 and OPT, are added once with the token embedding instead)."""
    return model.position_embedding == "rope"


def activation(name: str, m: Model, width: int, layers: int, copies: int = 1) -> ops.Op:
    """The FFN activation kernel between the up and down GEMMs: a gated FFN reads gate
    and up (2 x width) and writes width per token (SiLU-and-mul), a plain MLP reads and
    writes width; ``copies`` routed copies per token for experts; split over tp."""
    read = copies * width * (2 if m.gated_ffn else 1)
    return ops.elementwise(name, read, copies * width, 4 * copies * width, layers,
                           L.SPLIT_COLUMNS)


def _gemms_in(op_list: list[ops.Op], qclass: int) -> list[ops.Op]:
    """``op_list`` with its GEMMs in precision class ``qclass`` (``layout.QC_*``), each
    after the kernel that quantizes its input where the class's activations are narrower
    than the grid's (``ops.quantize``: no work otherwise); the other ops keep the class of
    their kind, ``ops.KIND_CLASS``."""
    out = []
    for op in op_list:
        if op.row[L.OP_KIND] == L.GEMM:
            out += [ops.quantize(op, qclass), ops.with_class(op, qclass)]
        else:
            out.append(op)
    return out


def model_ops(model: Model, phase: int = L.PREFILL) -> list[ops.Op]:
    """The operators of one forward pass in ``phase``, in execution order.

    Precision classes (quant recipes, ``layout.QUANT_CLASSES``): the token mixer's
    projections (attention incl. MLA and the sparse-attention indexer, state-space and
    linear-attention in/out projections) are ``attention``; routed experts ``experts``,
    shared-expert GEMMs ``shared_experts``, dense FFN GEMMs ``dense_ffn``, embedding and
    LM head ``lm_head``, every collective and pipeline send ``collectives``; norms, small
    elementwise kernels, the MoE router and the attention/scan kernels themselves (the
    grid's activations over the recipe's KV cache, ``ops.KIND_CLASS``) ``other``.
    """
    h, n = model.hidden_size, model.layers
    return [
        ops.embedding("embedding", h),
        ops.all_reduce("embedding_all_reduce", h, scope=L.SCOPE_ONCE),
        ops.norm("attn_norm", h, n),
        *_gemms_in(_attention_ops(model, phase), L.QC_ATTENTION),
        *_gemms_in(_ssm_ops(model), L.QC_ATTENTION),
        *_gemms_in(_linear_attention_ops(model), L.QC_ATTENTION),
        ops.all_reduce("attn_all_reduce", h, n),
        *([ops.norm("ffn_norm", h, model.ffn_layers)] if model.ffn_layers else []),
        *_ffn_ops(model),
        ops.p2p("pp_send", h),
        ops.norm("final_norm", h, scope=L.SCOPE_ONCE),
        *_gemms_in([ops.gemm("lm_head", h, model.vocab_size, split=L.SPLIT_COLUMNS,
                             scope=L.SCOPE_ONCE, tokens=L.TOKENS_LAST)], L.QC_LM_HEAD),
        ops.all_gather("logits_all_gather", model.vocab_size, scope=L.SCOPE_ONCE,
                       tokens=L.TOKENS_LAST),
        # sampling over the fp32 logits: a softmax pass and a sampling pass read them,
        # the probabilities are written once
        ops.elementwise("sampling", 2 * model.vocab_size, model.vocab_size,
                        5 * model.vocab_size, scope=L.SCOPE_ONCE, tokens=L.TOKENS_LAST,
                        element_bytes=4.0),
    ]


def mtp_ops(model: Model, phase: int = L.PREFILL) -> list[ops.Op]:
    """The multi-token-prediction module (DeepSeek-V3 technical report, arXiv:2412.19437,
    section 2.2) as draft ops (``layout.OP_DRAFT``): the shared embedding of the previous
    token, RMSNorms of it and of the main model's last hidden state, their concatenation
    projected 2h -> h (``eh_proj``, split over tp), one decoder layer of the model's last
    kind (MoE for DeepSeek-V3) per module, and the shared output norm, head and sampling.
    In decode it runs ``spec_tokens`` times per step over one token per sequence
    (recursively drafting); in prefill once over the prompt (its own KV cache). Run only
    with spec_tokens > 0 (``formulas.run_counts``), in the last pipeline stage."""
    if not model.mtp_layers:
        return []
    h = model.hidden_size
    # the module's decoder layer: the model's structure with its layers of the last kind
    layer = replace(model, layers=model.mtp_layers, dense_layers=0, ssm_layers=0, linear_attention_layers=0, sliding_window_layers=0,
                    sliding_window_tokens=0, mtp_layers=0)
    body = [op for op in model_ops(layer, phase) if op.row[L.OP_SCOPE] != L.SCOPE_BOUNDARY]
    # eh_proj is replicated on every device, as SGLang's deepseek_nextn.py and vLLM's
    # deepseek_mtp.py build it (a plain nn.Linear), so no collective follows it
    head = [ops.norm("mtp_enorm", h, scope=L.SCOPE_ONCE),
            ops.norm("mtp_hnorm", h, scope=L.SCOPE_ONCE),
            ops.gemm("mtp_eh_proj", 2 * h, h, scope=L.SCOPE_ONCE)]
    draft = L.DRAFT_DECODE if phase == L.DECODE else L.DRAFT_PREFILL
    out = []
    for op in [*body[:2], *head, *body[2:]]:
        row = op.row.copy()
        row[L.OP_DRAFT] = draft
        out.append(ops.Op(f"mtp_{op.name}" if not op.name.startswith("mtp_") else op.name,
                          row))
    return out


def lora_ops(model: Model) -> list[ops.Op]:
    """LoRA adapters (``layout.LORA``, ``formulas.lora_cost``) on the projections engines
    adapt by default ("all-linear" PEFT targets, vLLM's supported modules): the attention
    layers' Q, K, V (column-parallel: input h whole, outputs split) and O (row-parallel:
    input split, output h whole; MLA: its query and output projections), and the dense FFN's
    gate/up (column-parallel) and down (row-parallel). Left out: routed and shared experts,
    state-space and linear-attention projections, embedding and LM head (not adapted by
    default), and K/V columns replicated once tp exceeds the KV heads (taken as split)."""
    h, out = model.hidden_size, []
    if model.attention_layers:
        if model.is_mla:
            dq = model.qk_nope_head_dim + model.qk_rope_head_dim
            q_cols, o_rows, kv_cols, targets = model.heads * dq, model.heads * model.v_head_dim, 0, 2
        else:
            d = model.head_dim
            q_cols = model.heads * d * (2 if model.attention_output_gate else 1)
            o_rows, kv_cols, targets = model.heads * d, 2 * model.kv_heads * d, 4
        # inputs of the column-parallel ones (h each) and the output of o_proj whole
        out.append(ops.lora("lora_attention", (targets - 1) * h + h, q_cols + kv_cols + o_rows,
                            targets, model.attention_layers))
    dense = model.layers - model.moe_layers if model.ffn_dim else 0
    if dense:
        mats = ffn_matrices(model)
        out.append(ops.lora("lora_ffn", mats * h, mats * model.ffn_dim, mats, dense))
    return out


def cp_ops(model: Model, phase: int) -> list[ops.Op]:
    """Context parallelism's collectives (``layout.GROUP_CP``, cp devices per sequence).

    Prefill (ring attention, Liu et al., arXiv:2310.01889; Meta's pass-KV prefill, Yang
    et al., arXiv:2411.01783): each device computes its 1/cp of every prompt's tokens and
    needs every other device's K/V of each attention layer: ``cp_kv_exchange`` gathers the
    layer's new K/V (its cache elements per token, in the KV precision, split over tp as the
    cache is) over the cp group. It is priced after the attention, not overlapped with it
    (ring attention hides it behind the attention where that takes longer: an upper bound).
    Decode (the KV cache sharded over the cp devices, as vLLM's decode context parallel and
    TensorRT-LLM's Helix run it): each device attends its 1/cp of every context and
    ``cp_attention_combine`` gathers the partial outputs with their log-sum-exp (heads x
    (v dim + 1) fp32 values per token, split over tp) to merge them."""
    n = model.attention_layers
    if not n:
        return []
    if phase == L.PREFILL:
        if model.is_mla:
            cache, heads = model.kv_lora_rank + model.qk_rope_head_dim, 1
        else:
            cache, heads = 2 * model.kv_heads * model.head_dim, model.kv_heads
        return [ops.all_gather("cp_kv_exchange", cache, n, group=L.GROUP_CP,
                               element_bytes=-1.0, split=L.SPLIT_KV, heads=heads)]
    v_dim = model.kv_lora_rank if model.is_mla else model.head_dim
    return [ops.all_gather("cp_attention_combine", model.heads * (v_dim + 1), n,
                           group=L.GROUP_CP, element_bytes=4.0, split=L.SPLIT_COLUMNS)]


def draft_ops(draft: Model, phase: int) -> list[ops.Op]:
    """A separate draft model's forward pass as draft ops (``layout.OP_DRAFT``), as vLLM's
    and TensorRT-LLM's draft-target speculative decoding run it (Leviathan et al., ICML
    2023): ``spec_tokens`` decode passes per step over one token per sequence, one prefill
    over the prompt (its own KV cache), at the target's tp, all in the last pipeline stage
    (its stage boundaries dropped; ``formulas.run_counts``). Named ``draft_*``."""
    kind = L.DRAFT_DECODE if phase == L.DECODE else L.DRAFT_PREFILL
    out = []
    for op in model_ops(draft, phase):
        if op.row[L.OP_SCOPE] == L.SCOPE_BOUNDARY:
            continue
        row = op.row.copy()
        row[L.OP_DRAFT] = kind
        out.append(ops.Op(f"draft_{op.name}", row))
    return out


def program_ops(model: Model, phase: int, lora: bool = False, cp: bool = False,
                draft: Model | None = None) -> list[ops.Op]:
    """A model's operator program in ``phase``: its forward pass, its drafter (``draft``: a
    separate draft model, :func:`draft_ops`; else its MTP module) and, with ``lora`` (a
    sweep with lora_rank > 0), its LoRA adapters (:func:`lora_ops`), with ``cp`` (a sweep
    with cp > 1) context parallelism's collectives (:func:`cp_ops`); both left out
    otherwise, so that sweeps without them walk no extra ops."""
    drafter = draft_ops(draft, phase) if draft is not None else mtp_ops(model, phase)
    return [*model_ops(model, phase), *drafter,
            *(lora_ops(model) if lora else []), *(cp_ops(model, phase) if cp else [])]


def lora_bytes_per_device(model: Model, tp, pp, rank, adapters, act_bytes):
    """The LoRA adapters held on one device [bytes]: ``adapters`` adapters of ``rank``
    (all resident, as vLLM's max_loras slots are), each of its share of the targeted
    projections (:func:`lora_ops`: r x (whole + split / tp) elements per layer) over the
    stage's layers, in the activation precision; 0 at rank 0."""
    total = 0.0
    for op in lora_ops(model):
        width = op.row[L.OP_P0] + op.row[L.OP_P0 + 1] / tp
        total = total + np.ceil(op.row[L.OP_LAYERS] / pp) * width
    return adapters * rank * total * act_bytes


def compile_models(models, lora: bool = False, cp: bool = False,
                   drafts=(None,)) -> tuple[np.ndarray, np.ndarray]:
    """Dense program table for the kernel: one program per (model, draft model) pair,
    model-major (``lora``, ``cp``: with the LoRA ops, with context parallelism's
    collectives, :func:`program_ops`).

    Returns
    -------
    programs : float64 [n_model * n_draft, 2 (prefill, decode), max_ops, OP_FIELDS]
    n_ops : int64 [n_model * n_draft, 2]
    """
    per_model = [[program_ops(m, phase, lora, cp, d) for phase in (L.PREFILL, L.DECODE)]
                 for m in models for d in drafts]
    max_ops = max(len(p) for both in per_model for p in both)
    programs = np.zeros((len(per_model), 2, max_ops, L.OP_FIELDS))
    n_ops = np.zeros((len(per_model), 2), dtype=np.int64)
    for i, both in enumerate(per_model):
        for phase, prog in enumerate(both):
            programs[i, phase, :len(prog)] = np.stack([op.row for op in prog])
            n_ops[i, phase] = len(prog)
    return programs, n_ops


# ----------------------------------------------------------------------------- memory
# The functions below take numpy arrays or xarray DataArrays (they broadcast by name).

def kv_heads_per_device(model: Model, tp):
    """KV heads held per device: split by tp, replicated once tp exceeds them."""
    return np.maximum(model.kv_heads / tp, 1.0)


def cache_elements_per_token(model: Model, tp):
    """KV-cache elements per token per layer on one device (MLA: the replicated latent;
    with sparse attention also the lightning indexer's key, replicated too)."""
    if model.is_mla:
        return (model.kv_lora_rank + model.qk_rope_head_dim + model.indexer_head_dim
                + 0.0 * tp)
    return 2 * model.head_dim * kv_heads_per_device(model, tp)


def attention_params_per_device(model: Model, tp):
    """Attention weights of one layer on one device [parameters]."""
    h = model.hidden_size
    if not model.is_mla:
        d = model.head_dim
        q_and_o = 3 if model.attention_output_gate else 2  # Q (+ gate columns) and O
        return (q_and_o * h * model.heads * d) / tp + h * 2 * d * kv_heads_per_device(model, tp)
    dq = model.qk_nope_head_dim + model.qk_rope_head_dim
    if model.q_lora_rank:  # q_a replicated, its norm, q_b split
        q = h * model.q_lora_rank + model.q_lora_rank + model.q_lora_rank * model.heads * dq / tp
    else:
        q = h * model.heads * dq / tp
    kv_a = h * (model.kv_lora_rank + model.qk_rope_head_dim) + model.kv_lora_rank
    kv_b = model.kv_lora_rank * model.heads * (model.qk_nope_head_dim + model.v_head_dim) / tp
    # the lightning indexer (sparse attention) is replicated on every device
    return q + kv_a + kv_b + model.heads * model.v_head_dim * h / tp + model.indexer_params


def ssm_params(model: Model) -> float:
    """Weights of one state-space mixer layer [parameters]."""
    h, inner, n = model.hidden_size, model.ssm_inner, model.ssm_state_size
    ch, k = model.ssm_conv_channels, model.ssm_conv_kernel
    if model.ssm_heads:  # Mamba-2: in_proj, conv (+bias), dt_bias/A/D per head, norm, out
        return (h * (2 * inner + 2 * model.ssm_groups * n + model.ssm_heads) + ch * (k + 1)
                + 3 * model.ssm_heads + inner + inner * h)
    r = model.dt_rank  # Mamba-1: in_proj, conv, x_proj, dt_proj (+bias), A, D, out
    return (h * 2 * inner + inner * (k + 1) + inner * (r + 2 * n) + r * inner + inner
            + inner * n + inner + inner * h)


def linear_attention_params(model: Model) -> float:
    """Weights of one Gated DeltaNet layer [parameters]: the q, k, v, z and b/a
    projections, the conv (no bias), dt_bias and A_log per value head, the gated norm's dv
    weights and the out projection (HF Qwen3NextGatedDeltaNet)."""
    h, value, vh = model.hidden_size, model.linear_value_dim, model.linear_value_heads
    return (h * (2 * model.linear_key_dim + 2 * value + 2 * vh)
            + model.linear_conv_channels * model.linear_conv_kernel + 2 * vh
            + model.linear_value_head_dim + value * h)


def linear_attention_state(model: Model) -> float:
    """Fixed-size state of one Gated DeltaNet layer for one sequence [elements]: value heads
    x dk x dv plus the conv's last kernel - 1 inputs of each channel."""
    return (model.linear_value_heads * model.linear_key_head_dim * model.linear_value_head_dim
            + model.linear_conv_channels * (model.linear_conv_kernel - 1))


def weight_params_per_device(model: Model, tp, pp, attention_dp=1):
    """Parameters held by one device of the most loaded pipeline stage [parameters].

    Attention and FFN matrices split over tp (KV projections replicate once tp exceeds the
    KV heads; MLA's down-projections are replicated); experts are spread over ep groups of
    tp/ep devices, which again is 1/tp of them per device; routers and norms are
    replicated. Each layer type (dense / MoE FFN) spreads evenly over the pp stages. The
    embedding and LM head are vocab-parallel; with pp > 1 they sit on the first and last
    stage, one matrix each. Under attention data parallelism the attention (and dense) part
    is replicated in every group while the MoE experts spread over tp * attention_dp.
    """
    h = model.hidden_size
    mats = ffn_matrices(model)
    mixers = (np.ceil(model.attention_layers / pp) * attention_params_per_device(model, tp)
              + np.ceil(model.ssm_layers / pp) * ssm_params(model) / tp
              + np.ceil(model.linear_attention_layers / pp) * linear_attention_params(model) / tp)
    norms = np.ceil(model.layers / pp) * h + np.ceil(model.ffn_layers / pp) * h
    dense = mats * h * model.ffn_dim / tp
    moe_devices = tp * attention_dp
    moe = (model.experts * mats * h * model.expert_ffn_dim / moe_devices + h * model.experts
           + mats * h * model.shared_ffn_dim / moe_devices)
    n_dense = model.layers - model.moe_layers if model.ffn_dim else 0
    vocab_mats = 1.0 + ((pp == 1) & (not model.tied_embeddings))  # untied head on the same stage
    return (mixers + norms + np.ceil(n_dense / pp) * dense
            + np.ceil(model.moe_layers / pp) * moe
            + vocab_mats * model.vocab_size * h / tp + h)


def class_params_per_device(model: Model, tp, pp, attention_dp=1) -> dict:
    """The parameters of :func:`weight_params_per_device` that belong to a precision class
    (``layout.QC_*``: what a quant recipe may store in another precision) [parameters]:
    attention (the token mixers: attention incl. MLA and the sparse-attention indexer,
    state-space and linear-attention layers), the routed experts, the shared experts, the
    dense FFN layers, and the embedding and LM head. The rest (norms, routers) takes the
    grid's weight precision."""
    h = model.hidden_size
    mats = ffn_matrices(model)
    moe_devices = tp * attention_dp
    n_dense = model.layers - model.moe_layers if model.ffn_dim else 0
    moe = np.ceil(model.moe_layers / pp)
    vocab_mats = 1.0 + ((pp == 1) & (not model.tied_embeddings))
    return {
        L.QC_ATTENTION: (
            np.ceil(model.attention_layers / pp) * attention_params_per_device(model, tp)
            + np.ceil(model.ssm_layers / pp) * ssm_params(model) / tp
            + np.ceil(model.linear_attention_layers / pp) * linear_attention_params(model) / tp),
        L.QC_EXPERTS: moe * model.experts * mats * h * model.expert_ffn_dim / moe_devices,
        L.QC_SHARED: moe * mats * h * model.shared_ffn_dim / moe_devices,
        L.QC_DENSE: np.ceil(n_dense / pp) * mats * h * model.ffn_dim / tp,
        L.QC_LM_HEAD: vocab_mats * model.vocab_size * h / tp,
    }


def weight_bytes_per_device(model: Model, tp, pp, attention_dp, weight_bytes, class_bytes):
    """Weights held by one device of the most loaded stage [bytes]: the parameters at
    ``weight_bytes`` per parameter (the grid's weight precision), each precision class's
    (:func:`class_params_per_device`) at ``class_bytes[class]`` instead where given (a
    quant recipe). Arrays broadcast; a class at the grid's precision adds exactly 0."""
    total = weight_params_per_device(model, tp, pp, attention_dp) * weight_bytes
    for qclass, params in class_params_per_device(model, tp, pp, attention_dp).items():
        if qclass in class_bytes:
            total = total + params * (class_bytes[qclass] - weight_bytes)
    return total


def total_params(model: Model) -> float:
    """All parameters of the model (tp = pp = 1) [parameters]."""
    return float(weight_params_per_device(model, 1, 1))


def active_params(model: Model) -> float:
    """Parameters touched per token (top-k routed experts only) [parameters]."""
    unused = ((model.experts - model.experts_per_token) * ffn_matrices(model)
              * model.hidden_size * model.expert_ffn_dim * model.moe_layers)
    return total_params(model) - unused


def kv_cache_bytes_per_device(model: Model, tp, pp, batch, context, kv_bytes,
                              attention_dp=1):
    """KV cache of the batch at ``context`` tokens on one device [bytes].

    Sliding-window layers keep at most the window; sparse-attention (DSA) layers keep every
    position, attend only the top-k of them but may select any. Under attention data
    parallelism each group holds the cache of its batch / attention_dp sequences.
    """
    window_layers = model.window_layers
    global_layers = model.attention_layers - window_layers
    positions = np.ceil(global_layers / pp) * context
    if window_layers:
        positions = positions + np.ceil(window_layers / pp) * np.minimum(
            context, model.sliding_window_tokens)
    kv = positions * cache_elements_per_token(model, tp)
    if model.ssm_layers:  # fixed-size state per sequence instead of a cache
        state = (model.ssm_inner * model.ssm_state_size
                 + model.ssm_conv_channels * (model.ssm_conv_kernel - 1)) / tp
        kv = kv + np.ceil(model.ssm_layers / pp) * state + 0.0 * context
    if model.linear_attention_layers:  # Gated DeltaNet: a fixed-size state too, heads over tp
        kv = kv + (np.ceil(model.linear_attention_layers / pp) * linear_attention_state(model)
                   / tp + 0.0 * context)
    return batch / attention_dp * kv * kv_bytes


def activation_bytes_per_device(model: Model, tp, pp, batch, input_tokens, act_bytes,
                                attention_dp=1):
    """Working set of one prefill micro-batch in one layer, plus fp32 logits [bytes].

    An estimate of the live tensors: residual stream and normed input (2h), Q, K and V,
    and the widest FFN intermediate (all matrices' outputs; k copies of the tokens plus the
    shared expert for MoE). The logits of the last positions are held in fp32.
    """
    seqs = batch / np.minimum(pp, batch) / attention_dp
    tokens = seqs * input_tokens
    mats = ffn_matrices(model)
    ffn = mats * model.ffn_dim / tp
    if model.is_moe:
        ffn = np.maximum(ffn, mats * (model.experts_per_token * model.expert_ffn_dim
                                      + model.shared_ffn_dim) / tp)
    if model.is_mla:
        qkv = model.heads * (2 * (model.qk_nope_head_dim + model.qk_rope_head_dim)
                             + model.v_head_dim) / tp
        # sparse attention: the indexer's q and k (replicated; its logits, computed in
        # chunks by the engines, are not counted)
        qkv = qkv + (model.indexer_heads + 1) * model.indexer_head_dim
    else:
        gate = 2 if model.attention_output_gate else 1
        qkv = (gate * model.heads * model.head_dim / tp
               + 2 * model.head_dim * kv_heads_per_device(model, tp))
    if model.linear_attention_layers:  # the Gated DeltaNet in projection's q, k, v, z, b, a
        qkv = np.maximum(qkv, (2 * model.linear_key_dim + 2 * model.linear_value_dim
                               + 2 * model.linear_value_heads) / tp)
    per_token = 2 * model.hidden_size + qkv + ffn
    return tokens * per_token * act_bytes + seqs * model.vocab_size / tp * 4.0
