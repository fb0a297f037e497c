"""Per-device FLOP, byte and network-volume formulas, one branch per operator kind.

``op_cost`` is a scalar numba function called by the grid kernel for every operator of a
program; ``dse.ops`` calls the same function from Python for ``dse explain``. The numpy
reference (``kernels/reference.py``) restates these formulas with array broadcasting so
that the two are checked against each other.

Conventions. T is the number of tokens one device processes in the phase (a micro-batch:
``seqs * input_tokens`` in prefill, ``seqs`` in decode). Weight, activation and KV-cache
elements cost ``wb``, ``ab`` and ``kb`` bytes. Tensor parallelism splits heads and GEMM
columns/rows over ``tp`` devices; experts are split over ``ep`` groups of ``tp / ep``
devices each. A collective's cost here is its message per device and its group; the bytes
each algorithm moves and its latency steps are ``kernels/collectives.py``'s.
"""
import math

import numpy as np
from numba import njit

from .layout import (ALLGATHER, ALLREDUCE, ALLTOALL, ATTENTION, BF16, CDT_ATTENTION,
                     CDT_FRESH, CDT_GEMM, CDT_QUANT, DECODE, DRAFT_DECODE, DRAFT_NONE, OP_DRAFT,
                     ELEMENTWISE, EMBEDDING, GEMM, LORA, SPLIT_EXPERTS, SPLIT_QKV,
                     GROUP_CP, GROUP_EP, GROUP_TP, GROUP_TP_OVER_EP, MOE, NORM, OP_GROUP,
                     OP_CDT, OP_CLASS, OP_KIND, OP_LAYERS, OP_P0, OP_SCOPE, OP_TOKENS, OP_WHEN,
                     P2P, Q_KV,
                     SCOPE_BOUNDARY, SCOPE_LAYER, WHEN_EXCHANGE, WHEN_IN_GROUP, REDUCESCATTER, SSM, SPLIT_COLUMNS, SPLIT_KV, SPLIT_ROWS,
                     TOKENS_LAST)


# Weight-only low precision (weights narrower than the activations the GEMM computes in):
# the kernel dequantizes each weight tile in registers before the tensor-core MMA, once per
# thread-block tile of tokens (Marlin, arXiv:2408.11743: unpack with LOP3, convert, scale).
# Assumptions: DEQUANT_OPS vector operations per weight element, a token tile of
# DEQUANT_TILE_TOKENS (the usual CTA tile M of large-batch kernels), on the chip's
# non-tensor (fp32) units, added to the tensor time (pipelining hides part of it).
DEQUANT_OPS = 4.0
DEQUANT_TILE_TOKENS = 128.0


@njit(cache=True)
def dequant_tiles(tokens):
    """Token tiles that each dequantize the weights once (0 without tokens)."""
    return math.ceil(tokens / DEQUANT_TILE_TOKENS - 1e-12) if tokens > 0.0 else 0.0


@njit(cache=True)
def group_size(group, tp, pp, ep, cp=1.0):
    """Devices in the collective group of an operator."""
    if group == GROUP_TP:
        return tp
    if group == GROUP_EP:
        return ep
    if group == GROUP_TP_OVER_EP:
        return tp / ep
    if group == GROUP_CP:
        return cp
    return 1.0


@njit(cache=True)
def expected_active_experts(experts, top_k, tokens):
    """Expected distinct experts hit by ``tokens`` tokens routing uniformly to top-k of E.

    E * (1 - (1 - k/E)^T): each expert is missed by one token with probability 1 - k/E.
    """
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


@njit(cache=True)
def busiest_group_experts(experts, top_k, tokens, ep):
    """Expected distinct experts hit in the busiest of ``ep`` groups of E / ep experts.

    A step lasts as long as its most loaded expert group. Under uniform routing each expert
    is hit with probability q = 1 - (1 - k/E)^T; treating the experts as independent, a
    group's hits are Binomial(G, q) with G = E / ep, and E[max of ep groups] = sum over
    a = 1..G of 1 - F(a - 1)^ep (F the binomial CDF). The hits are in fact negatively
    correlated (each token picks exactly k experts), which the independent form misses
    when few experts are hit; the busiest group holds at least ceil(hits / ep), which
    restores those cases (T = 1, k = 2, E = ep = 8: exactly 1). Within 7 % of Monte Carlo
    over E = 8..256, k = 1..8, ep = 2..32, T = 1..128, within 4 % but for few hits (T k <
    8 on few groups) (tests/test_expert_load.py). With
    ep = 1 this is :func:`expected_active_experts` exactly.
    """
    if ep <= 1.0:
        return expected_active_experts(experts, top_k, tokens)
    q = 1.0 - (1.0 - top_k / experts) ** tokens
    g = max(math.floor(experts / ep), 1.0)
    n = int(g)
    if q >= 1.0:
        return g
    floor_hits = min(math.ceil(experts * q / ep - 1e-9), g)
    # binomial pmf term by term: pmf(i + 1) = pmf(i) * (n - i) / (i + 1) * q / (1 - q)
    ratio = q / (1.0 - q)
    pmf = (1.0 - q) ** n
    cdf = 0.0
    busiest = 0.0
    for a in range(1, n + 1):
        cdf += pmf                    # F(a - 1)
        if cdf <= 0.0:                # below the support (pmf underflows): surely reached
            busiest += 1.0
        else:
            tail = 1.0 - min(cdf, 1.0) ** ep
            if tail < 1e-12 and pmf < cdf * 1e-12:
                break                 # past the support: the rest adds nothing
            busiest += tail
        pmf *= (n - a + 1.0) / a * ratio
    return max(busiest, floor_hits)


def _max_normal_table(m_max=1024):
    """E[max of m iid standard normals], m = 0..m_max, by quadrature of
    x m phi(x) Phi(x)^(m-1) (0 for m = 0, 1)."""
    x = np.linspace(-9.0, 9.0, 36001)
    cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    out = np.zeros(m_max + 1)
    power = cdf.copy()  # Phi(x)^(m - 1), a running product (pow per m took ~1 s per import)
    for m in range(2, m_max + 1):
        y = x * m * pdf * power
        out[m] = float(((y[1:] + y[:-1]) * 0.5 * np.diff(x)).sum())  # trapezoid rule
        power *= cdf
    return out


MAX_NORMAL = _max_normal_table()


@njit(cache=True)
def expected_max_normal(m):
    """E[max of m iid standard normals] (table to 1024, the asymptotic series beyond)."""
    if m <= 1.0:
        return 0.0
    if m < MAX_NORMAL.size - 1:
        lo = int(m)
        w = m - lo
        return MAX_NORMAL[lo] * (1.0 - w) + MAX_NORMAL[lo + 1] * w
    r = math.sqrt(2.0 * math.log(m))
    return r - (math.log(math.log(m)) + math.log(4.0 * math.pi)) / (2.0 * r) + 0.5772 / r


@njit(cache=True)
def _binomial_max(n, p, groups):
    """E[max of ``groups`` iid Binomial(n, p)] for an integer n: sum over a >= 1 of
    1 - F(a - 1)^groups, from 10 standard deviations below the mean (below that F = 0)."""
    if n <= 0.0:
        return 0.0
    mu = n * p
    sd = math.sqrt(n * p * (1.0 - p))
    a0 = max(math.floor(mu - 10.0 * sd), 0.0)
    # pmf at a0 from log-gamma; the mass below a0 is negligible (< 1e-20)
    pmf = math.exp(math.lgamma(n + 1.0) - math.lgamma(a0 + 1.0) - math.lgamma(n - a0 + 1.0)
                   + a0 * math.log(p) + (n - a0) * math.log1p(-p))
    total = a0
    cdf = 0.0
    a = a0
    while a < n:
        cdf += pmf                    # F(a)
        tail = 1.0 - min(cdf, 1.0) ** groups
        # past the mean, stop once the tail is negligible, or once the pmf is: the summed
        # CDF can settle a few 1e-13 below 1 (rounding), and what it then adds per count is
        # rounding, not probability (it ran to a = n, thousands of counts, for large n)
        if a > mu and (tail < 1e-12 or pmf * groups < 1e-15):
            break
        total += tail                 # P(max >= a + 1)
        pmf *= (n - a) / (a + 1.0) * p / (1.0 - p)
        a += 1.0
    return total


@njit(cache=True)
def busiest_group_load(experts, top_k, tokens, ep):
    """Expected routed token copies of the busiest of ``ep`` expert groups.

    T tokens route k copies each, every copy to a group with probability 1/ep; a step
    computes as long as its busiest group. The copies per group are treated as
    independent Binomial(T k, 1/ep) counts, their expected maximum summed exactly from the
    CDF for up to 40 standard deviations of spread and as mean + sd * E[max of ep normals]
    beyond (the normal limit, where the two agree); at least the even share ceil(T k /
    ep), which restores the fixed total for few copies (T = 1, k = 2, ep = 8: 1).
    Fractional T interpolates between whole copies; ep = 1: T k. Left out: the fixed
    total of T k copies (it raises the maximum of few copies) and the distinctness of a
    token's k picks (it lowers it where a group holds few experts). Within 12 % of a
    Monte Carlo of uniform top-k routing, 5 % but for fewer than ~16 copies
    (tests/test_expert_load.py).
    """
    n = tokens * top_k
    if ep <= 1.0 or n <= 0.0:
        return n
    p = 1.0 / ep
    mu = n * p
    sd = math.sqrt(n * p * (1.0 - p))
    if sd > 40.0:
        return max(mu + sd * expected_max_normal(ep), mu)
    lo = math.floor(n)
    w = n - lo
    m = _group_max(lo, p, ep)
    if w > 0.0:
        m = m * (1.0 - w) + _group_max(lo + 1.0, p, ep) * w
    return max(m, mu)


@njit(cache=True)
def _group_max(n, p, groups):
    """E[max] over the groups for a whole number n of copies, at least the even share."""
    return max(_binomial_max(n, p, groups), math.ceil(n * p - 1e-9))


@njit(cache=True)
def causal_pairs(s, window):
    """Query-key pairs of a causal sequence of ``s`` tokens, each seeing at most ``window``."""
    if window <= 0.0 or s <= window:
        return s * (s + 1.0) / 2.0
    return window * (window + 1.0) / 2.0 + (s - window) * window


@njit(cache=True)
def op_precisions(op, quant, w, a, k, dtype_bits):
    """(weight, activation, KV-cache, compute) precision codes of ``op`` under the quant
    recipe row ``quant`` (``layout.QUANT_FIELDS``): its class's precisions where the recipe
    names them (code >= 0), the grid's ``w``, ``a``, ``k`` otherwise; the compute precision
    by ``OP_CDT`` from those (GEMM: the wider of weight and activation, attention: of
    activation and KV cache, ties to the activation; attention over fresh heads: 16 bits
    or the activation's where wider)."""
    c = 2 * int(op[OP_CLASS])
    wc = int(quant[c]) if quant[c] >= 0.0 else w
    ac = int(quant[c + 1]) if quant[c + 1] >= 0.0 else a
    kc = int(quant[Q_KV]) if quant[Q_KV] >= 0.0 else k
    cdt = int(op[OP_CDT])
    if cdt == CDT_GEMM:
        return wc, ac, kc, ac if dtype_bits[ac] >= dtype_bits[wc] else wc
    if cdt == CDT_ATTENTION:
        return wc, ac, kc, ac if dtype_bits[ac] >= dtype_bits[kc] else kc
    if cdt == CDT_QUANT:  # (class activation, grid activation): see layout.CDT_QUANT
        return ac, a, kc, a
    if cdt == CDT_FRESH:  # 16-bit GEMM outputs: see layout.CDT_FRESH
        return wc, ac, kc, ac if dtype_bits[ac] >= 16 else BF16
    return wc, ac, kc, ac


@njit(cache=True)
def prompt_split(s, cached_fraction):
    """(new, cached) tokens of an ``s``-token prompt whose share ``cached_fraction`` is in
    the KV cache (prefix caching): whole tokens cached, and at least the last token computed
    (engines always run it: its logits give the first output token)."""
    cached = min(math.floor(cached_fraction * s), s - 1.0) if cached_fraction > 0.0 else 0.0
    return s - cached, cached


@njit(cache=True)
def expected_tokens(gamma, alpha):
    """Expected tokens one speculative-decoding step yields: gamma draft tokens, each
    accepted with probability ``alpha`` independently until the first rejection, plus the
    target's own token: (1 - alpha^(gamma + 1)) / (1 - alpha) (Leviathan, Kalman and
    Matias, "Fast Inference from Transformers via Speculative Decoding", ICML 2023, eq. 1);
    gamma + 1 at alpha = 1, 1 without drafting."""
    if gamma <= 0.0:
        return 1.0
    if alpha >= 1.0:
        return gamma + 1.0
    return (1.0 - alpha ** (gamma + 1.0)) / (1.0 - alpha)


@njit(cache=True)
def run_counts(op, pp, ep, adp, gamma=0.0):
    """How often op runs per forward pass along the pipeline path and in the most loaded
    stage: 0 when it does not exist for this expert and attention data parallelism
    (``layout.WHEN_*``). A draft op (``OP_DRAFT``)
    runs only with ``gamma`` > 0 draft tokens, gamma times per decode step and once per
    prefill, all in the last pipeline stage (the MTP module sits after the last layer)."""
    when = int(op[OP_WHEN])
    exchange = ep > 1.0 and adp > 1.0
    if (when == WHEN_EXCHANGE and not exchange) or (when == WHEN_IN_GROUP and exchange):
        return 0.0, 0.0
    draft = int(op[OP_DRAFT])
    if draft != DRAFT_NONE:
        if gamma <= 0.0:
            return 0.0, 0.0
        times = gamma if draft == DRAFT_DECODE else 1.0
        n = op[OP_LAYERS] if int(op[OP_SCOPE]) == SCOPE_LAYER else 1.0
        return times * n, times * n
    scope = int(op[OP_SCOPE])
    if scope == SCOPE_LAYER:
        return op[OP_LAYERS], math.ceil(op[OP_LAYERS] / pp)
    if scope == SCOPE_BOUNDARY:
        return pp - 1.0, 0.0
    return 1.0, 1.0


@njit(cache=True)
def converts_nothing(op, wb, ab):
    """Whether ``op`` is an input quantization (``ops.quantize``) with nothing to convert:
    its class computes in the grid's activation precision (``wb``, ``ab`` as
    :func:`op_precisions` hands them to it), so no kernel runs (its run counts are 0)."""
    return int(op[OP_CDT]) == CDT_QUANT and wb >= ab


@njit(cache=True)
def op_tokens(op, phase, seqs, input_tokens, q):
    """Tokens one op processes per micro-batch: decode ``q`` new tokens per sequence (every
    one sampled: verification scores them all), prefill the prompt's ``input_tokens``, or
    one per sequence for an op on the last position only (``TOKENS_LAST``)."""
    if phase == DECODE:
        return seqs * q
    if int(op[OP_TOKENS]) == TOKENS_LAST:
        return seqs
    return seqs * input_tokens


@njit(cache=True)
def moe_gemms(op, tokens, ep):
    """The expert GEMMs a routed-experts op runs on its busiest device for ``tokens``
    tokens: the distinct experts hit in the busiest of the ep groups (at least 1). A
    grouped GEMM computes as that many small GEMMs of one expert's rows each, so its
    compute efficiency is a GEMM's at one expert's share of the FLOPs, not at their sum
    (measured: DeepGEMM's M-grouped FP8 GEMMs on H800 and AMD aiter's fused MoE on MI325X
    and MI355X, configs/kernels/README.md "Bundled curves"); its memory traffic streams
    all of them at once and keeps the efficiency of the total bytes."""
    if tokens <= 0.0:
        return 1.0
    return max(busiest_group_experts(op[OP_P0 + 2], op[OP_P0 + 3], tokens, ep), 1.0)


@njit(cache=True)
def moe_cost(op, tokens, tp, ep, wb, ab, imbalance):
    """(FLOPs, bytes, dequantization operations) of a routed-experts op over ``tokens``
    tokens on one device (the MoE branch of :func:`op_cost`; the continuous path calls it
    per iteration). P0 = hidden, P1 = expert FFN width, P2 = experts, P3 = top-k, P4 =
    matrices per expert. ``imbalance``: the busiest group's routed copies as a multiple of
    uniform routing's (the ``expert_imbalance`` axis; at most all copies)."""
    h = op[OP_P0]
    f = op[OP_P0 + 1]
    experts = op[OP_P0 + 2]
    k = op[OP_P0 + 3]
    mats = op[OP_P0 + 4]
    # weights: the busiest of the ep groups' distinct experts, each group's over its
    # tp / ep devices (ep * busiest / tp experts' worth per device)
    active = ep * busiest_group_experts(experts, k, tokens, ep)
    if ep <= 1.0:
        flops = 2.0 * tokens * k * h * f * mats / tp
        byts = active * h * f * mats * wb / tp + tokens * k * ab * (2.0 * h / ep + mats * f / tp)
    else:
        # compute and activations: the busiest group's routed copies, over its tp / ep
        # devices (the even share is tokens * k / ep)
        load = min(busiest_group_load(experts, k, tokens, ep) * imbalance, tokens * k)
        flops = 2.0 * load * h * f * mats * ep / tp
        byts = active * h * f * mats * wb / tp + load * ab * (2.0 * h + mats * f * ep / tp)
    dequant = 0.0
    if wb < ab and tokens > 0.0:
        # weight-only: each hit expert's weights, once per tile of the tokens routed to it
        # (a token count so small that no expert is expected to be hit, as a rounding
        # remainder of the serving steady state: one token per hit expert)
        hit = expected_active_experts(experts, k, tokens)
        per_expert = tokens * k / hit if hit > 0.0 else 1.0
        dequant = DEQUANT_OPS * active * h * f * mats / tp * dequant_tiles(per_expert)
    return flops, byts, dequant


@njit(cache=True)
def lora_cost(op, tokens, seqs, tp, ab, rank, adapters):
    """(FLOPs, bytes) of a LoRA op (``layout.LORA``: the adapters of one layer's targeted
    projections) over ``tokens`` tokens of ``seqs`` sequences on one device, at adapter
    ``rank`` r, each sequence using one of ``adapters`` adapters drawn uniformly (Punica,
    Chen et al., MLSys 2024; S-LoRA, Sheng et al., MLSys 2024: one batched shrink x A and
    one expand (x A) B per projection). P0 = the widths every tp device holds whole (the
    inputs K of column-parallel projections, the outputs N of row-parallel ones: their A
    is replicated, B split, or A split and B whole, the expand's partial sums joining
    the base GEMM's all-reduce as vLLM's RowParallelLinearWithLoRA does), P1 = the widths
    split over tp, P2 = the projections. Per device of width D = P0 + P1 / tp: 2 r D FLOPs
    per token; bytes: the distinct adapters the sequences use (A (1 - (1 - 1/A)^seqs),
    the expected distinct of uniform draws), r D elements each, plus per token the inputs
    read and outputs accumulated (D) and the rank-r intermediate written and read per
    projection (2 r P2), all in the activation precision (engines keep adapters in the
    model's dtype). 0 at rank 0 (no LoRA)."""
    if rank <= 0.0 or tokens <= 0.0:
        return 0.0, 0.0
    width = op[OP_P0] + op[OP_P0 + 1] / tp
    hit = expected_active_experts(adapters, 1.0, seqs) if adapters > 1.0 else 1.0
    flops = 2.0 * tokens * rank * width
    byts = (hit * rank * width + tokens * (width + 2.0 * rank * op[OP_P0 + 2])) * ab
    return flops, byts


@njit(cache=True)
def op_cost(op, phase, seqs, input_tokens, tp, pp, ep, wb, ab, kb, imbalance, q=1.0,
            past=0.0, lora_rank=0.0, lora_adapters=1.0, cp=1.0):
    """Per-device cost of one operator for one micro-batch.

    Parameters
    ----------
    op : float64[OP_FIELDS]
        One row of an operator program.
    phase : int
        ``PREFILL`` or ``DECODE``.
    seqs : float
        Sequences in the micro-batch (may be fractional: batch / micro-batches).
    input_tokens : float
        Prompt length [tokens].
    tp, pp, ep : float
        Tensor, pipeline and expert parallel degrees.
    wb, ab, kb : float
        Bytes per weight, activation and KV-cache element [bytes].
    imbalance : float
        The busiest expert group's routed token copies over uniform routing's (>= 1 in
        practice; the ``expert_imbalance`` axis).
    q : float
        Decode: new tokens per sequence in the step (1; gamma + 1 when speculative
        decoding verifies gamma draft tokens). They attend over the context and causally
        over each other in one pass: the cached K/V is read once for all of them.
    past : float
        Prefill: positions already in the KV cache (prefix caching) that the
        ``input_tokens`` new tokens attend over; attention reads their K/V once.
    lora_rank, lora_adapters : float
        LoRA ops (:func:`lora_cost`): the adapters' rank (0: none) and how many distinct
        adapters the sequences draw from.
    cp : float
        Context-parallel devices: the group of ``GROUP_CP`` collectives (the callers
        split the work itself, ``grid._phase_costs``).

    Returns
    -------
    flops0, flops1 : float
        FLOPs = flops0 + flops1 * context [FLOP]; flops1 is non-zero only for decode attention.
    bytes0, bytes1 : float
        Memory traffic = bytes0 + bytes1 * context [bytes].
    net_bytes : float
        The collective's message per device [bytes]: the buffer reduced or gathered, the
        tokens dispatched, the activations sent (``kernels/collectives.py`` prices it).
    group : float
        Devices in the collective group (1: no communication; P2P: 2).
    span : float
        Devices the group spans; it fits the scale-up domain when span <= domain size.
    window : float
        Decode attention sees min(context, window) positions (0: no window).
    dequant : float
        Vector (non-tensor) operations dequantizing weight-only low-precision weights
        (``wb < ab``) [op], priced at the fp32 rate.
    """
    kind = int(op[OP_KIND])
    p0 = op[OP_P0]
    p1 = op[OP_P0 + 1]
    p2 = op[OP_P0 + 2]
    p3 = op[OP_P0 + 3]
    p4 = op[OP_P0 + 4]
    p5 = op[OP_P0 + 5]
    p6 = op[OP_P0 + 6]
    tokens = op_tokens(op, phase, seqs, input_tokens, q)
    flops0 = 0.0
    flops1 = 0.0
    bytes0 = 0.0
    bytes1 = 0.0
    net_bytes = 0.0
    group = 1.0
    span = tp
    window = 0.0
    dequant = 0.0
    weight_only = wb < ab  # weights narrower than the activations: dequantized per tile

    if kind == GEMM:
        # P0 = K, P1 = N, P2 = split mode, P3 = KV-head count for SPLIT_KV / SPLIT_QKV,
        # P5 = the K/V columns of a fused QKV projection (SPLIT_QKV),
        # P4 = groups: a block-diagonal (per-head) GEMM of P4 independent [K, N] matrices,
        # split over tp by groups when the split mode is SPLIT_COLUMNS
        k = p0
        n = p1
        split = int(p2)
        groups = max(p4, 1.0)
        if groups > 1.0:
            if split == SPLIT_COLUMNS:
                groups = groups / tp
        elif split == SPLIT_COLUMNS:
            n = n / tp
        elif split == SPLIT_ROWS:
            k = k / tp
        elif split == SPLIT_KV:
            n = n / min(tp, p3)
        elif split == SPLIT_QKV:  # fused Q and K/V: P1 query columns, P5 K/V columns
            n = n / tp + p5 / min(tp, p3)
        flops0 = 2.0 * tokens * k * n * groups
        bytes0 = (k * n * wb + tokens * (k + n) * ab) * groups
        if weight_only:
            dequant = DEQUANT_OPS * k * n * groups * dequant_tiles(tokens)
    elif kind == ATTENTION:
        # P0 = query heads, P1 = K/V heads read fresh from the projections, P2 = QK head dim,
        # P3 = V head dim, P4 = sliding window (0: none), P5 = cache elements per token
        # (all heads), P6 = heads the cache is split over by tp (<= 1: replicated, as the
        # MLA latent). Flash-style fused: scores never reach memory, each cached K/V element
        # is read once; softmax FLOPs are not counted.
        heads = p0 / tp
        kv_heads = max(p1 / tp, 1.0)
        d_qk = p2
        d_v = p3
        window = p4
        cache = p5 / min(tp, p6) if p6 > 1.0 else p5
        fresh = seqs * ab * (heads * (d_qk + d_v) + kv_heads * (d_qk + d_v))
        cache_write = seqs * cache * kb
        if phase == DECODE:
            # q new tokens at context c .. c + q - 1: q c pairs plus q (q - 1) / 2
            flops1 = 2.0 * seqs * q * heads * (d_qk + d_v)
            flops0 = 2.0 * seqs * heads * (d_qk + d_v) * (q * (q - 1.0) * 0.5)
            bytes0 = (fresh + cache_write) * q
            bytes1 = seqs * cache * kb
        else:
            flops0 = 2.0 * seqs * heads * (d_qk + d_v) * (
                causal_pairs(past + input_tokens, window) - causal_pairs(past, window))
            seen = min(past, window) if window > 0.0 else past
            bytes0 = (fresh + cache_write) * input_tokens + seqs * cache * kb * seen
    elif kind == NORM:
        # fused residual add + RMSNorm: read x and residual, write both; gamma once
        flops0 = 5.0 * tokens * p0
        bytes0 = 4.0 * tokens * p0 * ab + p0 * wb
    elif kind == EMBEDDING:
        # vocab-parallel table: each token's row lives on one of the tp devices
        bytes0 = tokens * p0 * wb / tp + tokens * p0 * ab
    elif kind == MOE:
        flops0, bytes0, dequant = moe_cost(op, tokens, tp, ep, wb, ab, imbalance)
    elif kind == LORA:
        flops0, bytes0 = lora_cost(op, tokens, seqs, tp, ab, lora_rank, lora_adapters)
    elif kind == ELEMENTWISE:
        # a small memory-bound kernel (RoPE, activation, MoE routing and permutation,
        # sampling): P0 elements read and P1 written per token, P2 FLOPs per token, P3
        # the split (SPLIT_COLUMNS: over tp; SPLIT_EXPERTS: the routed copies spread over
        # ep groups), P4 bytes per element (0: the activation precision)
        split = int(p3)
        div = tp if split == SPLIT_COLUMNS else (ep if split == SPLIT_EXPERTS else 1.0)
        if p4 < 0.0:
            # P4 = -1: dynamic quantization of a GEMM's input (ops.quantize), from the
            # grid's activation precision (ab) to its class's narrower one (wb: CDT_QUANT);
            # no kernel at all where the class computes in the grid's precision
            if wb < ab:
                flops0 = tokens * p2 / div
                bytes0 = tokens * (p0 * ab + p1 * wb) / div
        else:
            eb = p4 if p4 > 0.0 else ab
            flops0 = tokens * p2 / div
            bytes0 = tokens * (p0 + p1) * eb / div
    elif kind == SSM:
        # selective state-space scan (Mamba-1/2) after its causal conv (an op of its own):
        # P0 = inner width, P1 = state size N, P2 = conv channels, P3 = conv kernel, P4 =
        # B and C elements per token, P5 = dt elements per token. Heads and channels split
        # over tp. The recurrence h = a*h + b*x, y = C.h is ~6 FLOPs per inner x state
        # element; per token the scan reads x, z, B, C and dt and writes y. The state
        # (inner x N plus kernel-1 conv inputs) is kept in the KV-cache precision instead
        # of a KV cache: decode reads and writes it once per step, prefill writes it once.
        inner = p0 / tp
        channels = p2 / tp
        state = inner * p1 + channels * (p3 - 1.0)
        flops0 = tokens * 6.0 * inner * p1
        streamed = tokens * (3.0 * inner + (p4 + p5) / tp) * ab
        if phase == DECODE or past > 0.0:  # the state is read and written
            bytes0 = 2.0 * seqs * state * kb + streamed
        else:
            bytes0 = seqs * state * kb + streamed
    elif kind == ALLREDUCE or kind == ALLGATHER or kind == REDUCESCATTER:
        # P0 elements per token of the reduced (all-reduce, reduce-scatter) or gathered
        # (all-gather) message; kernels/collectives.py prices it by algorithm. P1: bytes
        # per element (0: the activation precision, -1: the KV cache's); P2: the per-device
        # share (SPLIT_COLUMNS: over tp, SPLIT_KV: over min(tp, P3) heads, as a KV cache).
        # A context-parallel group gathers every member's share: cp times this device's.
        group = group_size(int(op[OP_GROUP]), tp, pp, ep, cp)
        eb = ab if p1 == 0.0 else (kb if p1 < 0.0 else p1)
        split = int(p2)
        per = p0 / tp if split == SPLIT_COLUMNS else (
            p0 / min(tp, p3) if split == SPLIT_KV and p3 > 1.0 else p0)
        net_bytes = tokens * per * eb
        if int(op[OP_GROUP]) == GROUP_CP:
            net_bytes *= cp
            span = tp * cp  # the cp groups of tp devices sit side by side
    elif kind == ALLTOALL:
        # each device dispatches its 1/tp share of the tokens, P0 elements per token
        group = group_size(int(op[OP_GROUP]), tp, pp, ep)
        net_bytes = tokens * p0 * ab / tp
    elif kind == P2P:
        # activations of the micro-batch to the next pipeline stage; stages sit on
        # consecutive devices, so the link is scale-up only if the whole pipeline fits
        group = 2.0
        net_bytes = tokens * p0 * ab
        span = tp * pp * cp
    return flops0, flops1, bytes0, bytes1, net_bytes, group, span, window, dequant

