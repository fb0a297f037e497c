"""Plain-numpy reference for the grid kernel, for tests on small grids.

Written differently from ``kernels/grid.py`` on purpose: whole-array broadcasting over all
axes instead of loops, its own statement of every operator formula, and decode averaged by
explicitly stepping through every context length instead of the closed form. It shares
with the kernel only the table layout (``layout.py``) and the documented semantics; a quant
recipe's per-class precisions are resolved here on their own (:func:`class_precisions`).
Continuous serving is ``reference_serving.py``'s (it reuses :func:`_costs`).
"""
import math

import numpy as np

from . import layout as L
from .breakdown import KIND_CLASS, N_CLASSES, OFFLOAD_CLASS

_N = 17  # hw, w, a, k, quant, tp, pp, ep, adp, batch, input, imbalance, output, cs, ms, su, so


def _ax(values, pos, dtype=None, ndim=_N):
    shape = [1] * ndim
    shape[pos] = len(values)
    return np.asarray(values, dtype=dtype).reshape(shape)


def _busiest_group(experts, k, tokens, ep):
    """E[distinct experts hit in the busiest of ep groups] (arrays broadcast): per distinct
    (tokens, ep), the maximum of ep independent Binomial(E / ep, q) hit counts, q = 1 - (1 -
    k/E)^T, from its CDF written out with binomial coefficients, and at least the groups'
    share ceil(E q / ep); E q (the expected hits) when ep = 1."""
    tokens, ep = np.broadcast_arrays(np.asarray(tokens, float), np.asarray(ep, float))
    pairs, back = np.unique(np.stack([tokens.ravel(), ep.ravel()]), axis=1,
                            return_inverse=True)
    out = np.empty(pairs.shape[1])
    for j, (t, n_groups) in enumerate(pairs.T):
        q = 1 - (1 - k / experts) ** t
        if n_groups <= 1:
            out[j] = experts * q
            continue
        g = int(experts // n_groups)
        cdf = np.cumsum([math.comb(g, i) * q ** i * (1 - q) ** (g - i) for i in range(g + 1)])
        at_least = np.clip(1 - np.minimum(cdf[:g], 1.0) ** n_groups, 0.0, None)
        out[j] = max(at_least.sum(), min(math.ceil(experts * q / n_groups - 1e-9), g))
    return out[back.ravel()].reshape(tokens.shape)


def _collective(kind, n, span, msg, domain, r_up, lat_up, r_out, lat_out):
    """(scale-up, scale-out, latency) seconds of a collective (arrays broadcast), restated
    from kernels/collectives.py: inside one scale-up domain the cheaper of the direct
    algorithms (all-reduce one-shot or two-shot; one step otherwise), across domains the
    hierarchical form with d of the group's devices per domain and g = n / d domains."""
    n, span, msg = np.broadcast_arrays(*(np.asarray(x, float) for x in (n, span, msg)))
    one_domain = span <= domain
    d = np.where(one_domain, n, np.clip(np.floor(n * domain / span), 1.0, n))
    g = n / d
    intra = (d > 1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == L.ALLREDUCE:
            one = ((n - 1) * msg * r_up, 0 * msg, lat_up + 0 * msg)
            two = (2 * (n - 1) / n * msg * r_up, 0 * msg, 2 * lat_up + 0 * msg)
            pick_one = one[0] + one[2] <= two[0] + two[2]
            tree = 2 * np.minimum(g - 1, np.ceil(np.log2(np.maximum(g, 1))))
            hier = (2 * (d - 1) / d * msg * r_up, 2 * (g - 1) / g * msg / d * r_out,
                    2 * intra * lat_up + tree * lat_out)
            parts = [np.where(one_domain, np.where(pick_one, o, t), hh)
                     for o, t, hh in zip(one, two, hier)]
        elif kind == L.ALLTOALL:
            parts = [np.where(one_domain, (n - 1) / n * msg * r_up, (d - 1) / n * msg * r_up),
                     np.where(one_domain, 0.0, (n - d) / n * msg * r_out),
                     np.where(one_domain, lat_up, intra * lat_up + lat_out)]
        elif kind == L.P2P:
            parts = [np.where(one_domain, msg * r_up, 0.0),
                     np.where(one_domain, 0.0, msg * r_out),
                     np.where(one_domain, lat_up, lat_out)]
        else:  # all-gather, reduce-scatter
            parts = [(d - 1) / d * msg * r_up,
                     np.where(one_domain, 0.0, (g - 1) / g * msg / d * r_out),
                     np.where(one_domain, lat_up, intra * lat_up + (g - 1) * lat_out)]
    talks = (n > 1) & (msg > 0)
    return tuple(np.where(talks, x, 0.0) for x in parts)


def moe_gemms(op, tokens, ep):
    """The expert GEMMs of a routed-experts op on its busiest device (arrays broadcast; as
    ``formulas.moe_gemms``): the busiest group's distinct experts, at least 1; its compute
    efficiency is taken at FLOPs / this."""
    hit = _busiest_group(op[L.OP_P0 + 2], op[L.OP_P0 + 3], np.maximum(tokens, 1e-300), ep)
    return np.where(tokens > 0, np.maximum(hit, 1.0), 1.0)


def _busiest_load(experts, k, tokens, ep):
    """E[routed copies of the busiest of ep expert groups] (arrays broadcast): per distinct
    (tokens, ep), the maximum of ep independent Binomial(T k, 1/ep) counts from the whole
    CDF (log-gamma pmf over every count), interpolated between whole copies, at least the
    even share; the normal limit (mean + sd * E[max of ep normals], the kernel's table of
    that expectation) beyond 40 standard deviations; T k when ep = 1."""
    from .formulas import MAX_NORMAL
    tokens, ep = np.broadcast_arrays(np.asarray(tokens, float), np.asarray(ep, float))
    pairs, back = np.unique(np.stack([tokens.ravel(), ep.ravel()]), axis=1,
                            return_inverse=True)

    def whole(n, groups):
        a = np.arange(int(n) + 1, dtype=float)
        lg = np.vectorize(math.lgamma)
        p = 1 / groups
        pmf = np.exp(lg(n + 1) - lg(a + 1) - lg(n - a + 1) + a * math.log(p)
                     + (n - a) * math.log1p(-p))
        cdf = np.minimum(np.cumsum(pmf), 1.0)
        return max((1 - cdf[:-1] ** groups).sum(), math.ceil(n / groups - 1e-9))

    out = np.empty(pairs.shape[1])
    for j, (t, groups) in enumerate(pairs.T):
        n = t * k
        if groups <= 1 or n <= 0:
            out[j] = n
            continue
        sd = math.sqrt(n / groups * (1 - 1 / groups))
        if sd > 40:
            lo = int(groups)
            e_max = MAX_NORMAL[lo] + (MAX_NORMAL[lo + 1] - MAX_NORMAL[lo]) * (groups - lo)
            out[j] = max(n / groups + sd * e_max, n / groups)
            continue
        lo, w = math.floor(n), n - math.floor(n)
        m = whole(lo, groups) if lo > 0 else 0.0
        if w > 0:
            m = m * (1 - w) + whole(lo + 1, groups) * w
        out[j] = max(m, n / groups)
    return out[back.ravel()].reshape(tokens.shape)


# which size-dependent efficiency curves (layout.CURVES) price each op kind, restated; a
# tuple: the first one the hardware row carries (the routed experts' own curves, else the
# GEMM curves)
_KIND_CURVES = {L.GEMM: ("gemm_compute", "gemm_memory", None),
                L.MOE: (("moe_compute", "gemm_compute"), ("moe_memory", "gemm_memory"), None),
                L.ATTENTION: ("attention_compute", "attention_memory", None),
                **{k: (None, None, "collective_network")
                   for k in (L.ALLREDUCE, L.ALLGATHER, L.REDUCESCATTER, L.ALLTOALL, L.P2P)}}


def efficiency_factor(hw, h, curve, work, scalar_field):
    """Seconds at hardware ``h``'s scalar efficiency (column ``scalar_field``) times this
    factor are seconds at curve ``curve``'s efficiency for ``work`` (np.interp over
    log10 work, flat beyond the end knots); 1 without the curve or without work. A tuple
    of curve names: per hardware row, the first it carries."""
    h, work = np.broadcast_arrays(np.asarray(h), np.asarray(work, float))
    factor = np.ones(h.shape)
    if curve is None:
        return factor
    names = (curve,) if isinstance(curve, str) else curve
    cols = [L.HW_CURVES + L.CURVES.index(c) * L.CURVE_WIDTH for c in names]
    for hh in np.unique(h):
        col = next((c for c in cols if hw[hh, c] > 0), cols[-1])
        n = int(hw[hh, col])
        sel = (h == hh) & (work > 0)
        if n == 0 or not sel.any():
            continue
        eff = np.interp(np.log10(work[sel]), hw[hh, col + 1:col + 1 + n],
                        hw[hh, col + 1 + L.CURVE_KNOTS:col + 1 + L.CURVE_KNOTS + n])
        factor[sel] = hw[hh, scalar_field] / eff
    return factor


def roofline_seconds(hw, h, rate, flops, byts, kind, net, group, span, cs, ms, su, so,
                     dequant=0.0, vector_rate=1.0, work=None, low_precision=True,
                     weight_only=False):
    """(compute, memory, network seconds, kernel latency) of one op's costs on hardware
    ``h`` at the what-if scales (arrays broadcast): a collective (``kind``, message ``net``
    bytes over ``group`` devices spread over ``span``) by :func:`_collective`, each link's
    bytes at its scale; kernel latency where the op computes, reads memory or
    communicates. ``dequant``: vector operations of weight dequantization at
    ``vector_rate`` (the fp32 rate), added to the compute time. Compute, memory and link
    efficiency follow the hardware's curves at the op's FLOPs, bytes and message, or at
    ``work`` = (FLOPs, bytes) where given (a decode op at its mean context).
    ``low_precision`` (bool, or an array broadcast with the others): the op computes in 8
    bits or fewer, which the routed experts' own curves (moe_*) require. ``weight_only``
    (bool or array): the op's weights are narrower than its activations: routed experts
    so quantized take the moe_wo_* curves on hardware carrying both, which hold the fused
    kernel's dequantization (``dequant`` is then not added)."""
    c_curve, m_curve, n_curve = _KIND_CURVES.get(kind, (None, None, None))
    w_flops, w_bytes = (flops, byts) if work is None else work
    fc = efficiency_factor(hw, h, c_curve, w_flops, L.HW_COMPUTE_EFF)
    fm = efficiency_factor(hw, h, m_curve, w_bytes, L.HW_MEMORY_EFF)
    if kind == L.MOE and not np.all(low_precision):  # 16-bit experts: the GEMM curves
        fc = np.where(low_precision, fc,
                      efficiency_factor(hw, h, c_curve[-1], w_flops, L.HW_COMPUTE_EFF))
        fm = np.where(low_precision, fm,
                      efficiency_factor(hw, h, m_curve[-1], w_bytes, L.HW_MEMORY_EFF))
    if kind == L.MOE and np.any(weight_only):
        hh = np.asarray(h)
        own = np.ones(hh.shape, dtype=bool)
        for name in ("moe_wo_compute", "moe_wo_memory"):
            own &= hw[hh, L.HW_CURVES + L.CURVES.index(name) * L.CURVE_WIDTH] > 0
        use = np.asarray(weight_only) & own
        fc = np.where(use, efficiency_factor(hw, h, "moe_wo_compute", w_flops,
                                             L.HW_COMPUTE_EFF), fc)
        fm = np.where(use, efficiency_factor(hw, h, "moe_wo_memory", w_bytes,
                                             L.HW_MEMORY_EFF), fm)
        dequant = np.where(use, 0.0, dequant)
    fn = efficiency_factor(hw, h, n_curve, net, L.HW_NETWORK_EFF)
    comp = (flops / (rate * hw[h, L.HW_COMPUTE_EFF]) * fc
            + dequant / (vector_rate * hw[h, L.HW_COMPUTE_EFF])) / cs
    mem = byts / (hw[h, L.HW_MEMORY_BYTES_PER_S] * hw[h, L.HW_MEMORY_EFF] * ms) * fm
    up, out, lat = _collective(
        kind, group, span, net, hw[h, L.HW_SCALEUP_DOMAIN],
        fn / (hw[h, L.HW_SCALEUP_BYTES_PER_S] * hw[h, L.HW_NETWORK_EFF]),
        hw[h, L.HW_SCALEUP_LATENCY_S],
        fn / (hw[h, L.HW_SCALEOUT_BYTES_PER_S] * hw[h, L.HW_NETWORK_EFF]),
        hw[h, L.HW_SCALEOUT_LATENCY_S])
    netw = up / su + out / so + lat
    talks = (np.asarray(group) > 1) & (np.asarray(net) > 0)  # a collective is a kernel too
    kernel = np.where((flops > 0) | (byts > 0) | talks, hw[h, L.HW_KERNEL_LATENCY_S], 0.0)
    return comp, mem, netw, kernel


def _lora(op, tokens, seqs, tp, ab, rank, adapters):
    """(flops, bytes) of a LoRA op, restated from README "LoRA": per device of width
    D = whole + split / tp, 2 r D FLOPs per token; the adapters the sequences use (the
    expected distinct of uniform draws) r D elements each, per token D inputs and outputs
    and 2 r per projection of intermediate; nothing at rank 0."""
    p = op[L.OP_P0:L.OP_P0 + L.OP_N_PARAMS]
    width = p[0] + p[1] / tp
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.where(adapters > 1, adapters * (1 - (1 - 1 / adapters) ** seqs), 1.0)
    on = (rank > 0) & (tokens > 0)
    flops = np.where(on, 2 * tokens * rank * width, 0.0)
    byts = np.where(on, (used * rank * width + tokens * (width + 2 * rank * p[2])) * ab, 0.0)
    return flops, byts


def _costs(op, decode, seqs, s, ctx, tp, pp, ep, wb, ab, kb, imb=1.0, q=1.0, cached=0.0,
           lora_r=0.0, lora_n=1.0, cp=1.0):
    """(flops, bytes, message bytes, group devices, span, dequantization operations) of one
    op; arrays broadcast. Decode: ``q`` new tokens per sequence at context ``ctx`` (a
    speculative step's verified tokens); prefill: positions ``cached`` + 1 .. ``s`` of
    the prompt computed (prefix caching)."""
    kind = int(op[L.OP_KIND])
    p = op[L.OP_P0:L.OP_P0 + L.OP_N_PARAMS]
    if decode:
        tokens = seqs * q
    else:
        new = s - cached
        tokens = seqs if op[L.OP_TOKENS] == L.TOKENS_LAST else seqs * new
    zero = np.zeros_like(tokens * tp * ep * wb * ab * kb)
    flops, byts, net, steps, span, dq = zero, zero, zero, zero, tp + zero, zero
    weight_only = wb < ab  # weights dequantized per tile of 128 tokens (formulas.py)
    tiles = np.ceil(tokens / 128.0 - 1e-12)
    group = {L.GROUP_TP: tp, L.GROUP_EP: ep, L.GROUP_TP_OVER_EP: tp / ep,
             L.GROUP_CP: cp + zero}.get(int(op[L.OP_GROUP]), 1.0 + zero)
    if kind == L.GEMM:
        groups = max(p[4], 1)
        if groups > 1:
            per_dev = groups / tp if p[2] == L.SPLIT_COLUMNS else groups + zero
            rows, cols = p[0] + zero, p[1] + zero
        else:
            per_dev = 1.0
            rows = p[0] / tp if p[2] == L.SPLIT_ROWS else p[0] + zero
            cols = {L.SPLIT_COLUMNS: p[1] / tp, L.SPLIT_KV: p[1] / np.minimum(tp, p[3]),
                    L.SPLIT_QKV: p[1] / tp + p[5] / np.minimum(tp, p[3])}.get(
                int(p[2]), p[1] + zero)
        flops = 2 * tokens * rows * cols * per_dev
        byts = per_dev * (rows * cols * wb + tokens * rows * ab + tokens * cols * ab)
        dq = np.where(weight_only, 4 * rows * cols * per_dev * tiles, 0.0)
    elif kind == L.ATTENTION:
        hq = p[0] / tp
        hkv = np.maximum(p[1] / tp, 1)
        dqk, dv, window = p[2], p[3], p[4]
        cache = p[5] / np.minimum(tp, p[6]) if p[6] > 1 else p[5] + zero
        per_token = (hq + hkv) * (dqk + dv) * ab + cache * kb
        if decode:
            seen = np.minimum(ctx, window) if window > 0 else ctx
            # q queries: q times the context's pairs, plus those among themselves
            flops = 2 * seqs * hq * (q * seen + q * (q - 1) / 2) * (dqk + dv)
            byts = seqs * seen * cache * kb + seqs * per_token * q
        else:
            i = np.arange(1, int(np.max(s)) + 1).reshape((-1,) + (1,) * np.ndim(s))
            seen = np.minimum(i, window) if window > 0 else i
            pairs = np.where((i > cached) & (i <= s), seen, 0).sum(axis=0)
            flops = 2 * seqs * hq * pairs * (dqk + dv)
            held = np.minimum(cached, window) if window > 0 else cached  # read once
            byts = seqs * new * per_token + seqs * held * cache * kb
    elif kind == L.NORM:
        flops = 5 * tokens * p[0]
        byts = tokens * p[0] * ab * 4 + p[0] * wb
    elif kind == L.EMBEDDING:
        byts = tokens * p[0] * (wb / tp + ab)
    elif kind == L.MOE:
        hid, ffn, experts, k, mats = p[:5]
        # the busiest expert group's distinct experts, over its tp / ep devices
        hit = ep * _busiest_group(experts, k, tokens, ep)
        # compute and activations: the busiest group's routed copies (ep = 1: all)
        load = np.where(ep > 1, np.minimum(_busiest_load(experts, k, tokens, ep) * imb,
                                           tokens * k), tokens * k)
        flops = 2 * load * hid * ffn * mats * ep / tp
        byts = hit * mats * hid * ffn * wb / tp + load * ab * (2 * hid + ffn * mats * ep / tp)
        with np.errstate(divide="ignore", invalid="ignore"):  # tokens per hit expert
            hits = experts * (1 - (1 - k / experts) ** tokens)
            routed = np.where(hits > 0, tokens * k / hits, 1.0)
        dq = np.where(weight_only & (tokens > 0),
                      4 * hit * mats * hid * ffn / tp * np.ceil(routed / 128.0 - 1e-12), 0.0)
    elif kind == L.LORA:
        flops, byts = _lora(op, tokens, seqs + zero, tp, ab, lora_r, lora_n)
    elif kind == L.ELEMENTWISE:
        share = {L.SPLIT_COLUMNS: 1 / tp, L.SPLIT_EXPERTS: 1 / ep}.get(int(p[3]), 1.0 + zero)
        if p[4] < 0:  # a GEMM input's quantization (wb: the class's, ab: the grid's)
            flops = np.where(wb < ab, tokens * p[2] * share, 0.0)
            byts = np.where(wb < ab, tokens * (p[0] * ab + p[1] * wb) * share, 0.0)
        else:
            flops = tokens * p[2] * share
            byts = tokens * (p[0] + p[1]) * (p[4] if p[4] > 0 else ab) * share
    elif kind == L.SSM:
        inner, state_n, channels, kernel = p[0] / tp, p[1], p[2] / tp, p[3]
        state = inner * state_n + channels * (kernel - 1)
        flops = tokens * 6 * inner * state_n
        reads = 3 * inner + p[4] / tp + p[5] / tp  # x, z, y; B and C; dt
        byts = np.where(decode or (cached > 0), 2, 1) * seqs * state * kb + tokens * reads * ab
    elif kind in (L.ALLREDUCE, L.ALLGATHER, L.REDUCESCATTER):
        # the message (_collective prices the algorithm): P1 bytes per element (0: the
        # activations', -1: the KV cache's), P2 the share per device; a context-parallel
        # group gathers all cp members' shares
        eb = ab if p[1] == 0 else (kb if p[1] < 0 else p[1])
        per = {L.SPLIT_COLUMNS: p[0] / tp,
               L.SPLIT_KV: p[0] / np.minimum(tp, p[3]) if p[3] > 1 else p[0] + zero}.get(
            int(p[2]), p[0] + zero)
        net = tokens * per * eb
        if op[L.OP_GROUP] == L.GROUP_CP:
            net = net * cp
            span = tp * cp + zero
        steps = group + zero
    elif kind == L.ALLTOALL:
        net = tokens / tp * p[0] * ab
        steps = group + zero
    elif kind == L.P2P:
        net = tokens * p[0] * ab
        steps = 2 + zero
        span = tp * pp * cp + zero
    return flops, byts, net, steps, span, dq


def evaluate_reference(hw, engine_hw, rates, programs, n_ops, engines, quants, axes,
                       axis_sizes, output_tokens, scales, scale_sizes, slots, slot_strides,
                       host, dtype_bytes, dtype_bits, breakdown=False):
    """Same contract as ``grid.evaluate_grid`` but returns shaped arrays: static serving
    here, continuous serving by ``reference_serving.evaluate_continuous``.

    Returns
    -------
    ttft, tpot, bound : [hw, model, serving, engine, w, a, kv, quant, tp, pp, ep, adp, budget,
                         batch, input, imbalance, output, cs, ms, su, so, cap]
    split, prefill_bound : with ``breakdown``, also the seconds per operator class
        [len(breakdown.COLUMNS), *that shape] and the prefill bound codes over it
        (``breakdown.evaluate_breakdown``'s contract, restated)
    """
    v = {name: axes[j, :axis_sizes[j]] for j, name in enumerate(L.KERNEL_AXES)}
    continuous = v["serving"] == L.SERVING_CONTINUOUS
    if continuous.any():
        from .reference_serving import evaluate_continuous
        c_out = evaluate_continuous(
            hw, engine_hw, rates, programs, n_ops, engines, quants, axes, axis_sizes,
            output_tokens, scales, scale_sizes, slots, slot_strides, host, dtype_bytes,
            dtype_bits, breakdown)
        if continuous.all():
            return c_out
        axes = axes.copy()  # the static part: every serving position priced as static
        axes[L.K_SERVING, :axis_sizes[L.K_SERVING]] = L.SERVING_STATIC
        s_out = evaluate_reference(
            hw, engine_hw, rates, programs, n_ops, engines, quants, axes, axis_sizes,
            output_tokens, scales, scale_sizes, slots, slot_strides, host, dtype_bytes,
            dtype_bits, breakdown)
        at = continuous.reshape((1, 1, -1) + (1,) * (c_out[0].ndim - 3))
        return tuple(np.where(at.reshape((1,) * (c.ndim - at.ndim) + at.shape), c, x)
                     for c, x in zip(c_out, s_out))
    sc = [scales[j, :scale_sizes[j]] for j in range(len(L.WHAT_IF_AXES))]
    spec_axes = (L.K_PREFIX, L.K_GAMMA, L.K_ALPHA, L.K_BEAMS, L.K_LORA_RANK,
                 L.K_LORA_ADAPTERS, L.K_CP, L.K_DRAFT)
    if any(axis_sizes[j] > 1 for j in spec_axes):
        # prefix caching, speculative decoding and beams one value at a time, joined along
        # their axes (positions 2 + K in the outputs)
        j = next(j for j in spec_axes if axis_sizes[j] > 1)
        parts = []
        n = int(axis_sizes[j])
        for i in range(n):
            sub, sizes = axes.copy(), axis_sizes.copy()
            sub[j, 0], sizes[j] = axes[j, i], 1
            progs, counts = programs, n_ops
            if j == L.K_DRAFT:  # the programs of draft model i (model-major pairs)
                progs = programs.reshape(-1, n, *programs.shape[1:])[:, i]
                counts = n_ops.reshape(-1, n, *n_ops.shape[1:])[:, i]
                sub[j, 0] = 0.0
            # the host bytes of value i: the offset along the axis (its stride kept)
            parts.append(evaluate_reference(
                hw, engine_hw, rates, progs, counts, engines, quants, sub, sizes, output_tokens,
                scales, scale_sizes, slots, slot_strides,
                host[:, i * slot_strides[2 + j]:], dtype_bytes, dtype_bits, breakdown))
        at = 2 + j
        return tuple(np.concatenate([p[r] for p in parts], axis=at + (1 if r == 3 else 0))
                     for r in range(len(parts[0])))
    # (the draft model is in the programs: one per model here)
    prefix, gamma, alpha, beams, lora_r, lora_n, cp = (float(axes[j, 0])
                                                       for j in spec_axes[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ttft, tpot, bound, split, p_bound, pre_path, pre_stage = _evaluate(
            hw, rates, programs, n_ops, v["batch"], v["input_tokens"], v["expert_imbalance"],
            output_tokens,
            v["tp"], v["pp"], v["ep"], v["attention_dp"], v["weight_dtype"].astype(np.int64),
            v["act_dtype"].astype(np.int64), v["kv_dtype"].astype(np.int64),
            quants[v["quant"].astype(np.int64)], *sc[:4], dtype_bytes, dtype_bits, prefix,
            gamma, alpha, beams, lora_r, lora_n, cp)
    # static serving: no engine or budget dependence, nor on the memory capacity; ttft
    # does not depend on the output length
    valid_cap = (sc[4] > 0).reshape((1,) * (3 + len(L.KERNEL_AXES) + 4) + (-1,))
    per_step = sum(alpha ** i for i in range(int(gamma) + 1))
    ttft = np.repeat(ttft[..., None, :, :, :, :], len(output_tokens), axis=-5)
    pre_path, pre_stage = (np.repeat(x[..., None, :, :, :, :], len(output_tokens), axis=-5)
                           for x in (pre_path, pre_stage))
    p_bound = np.repeat(p_bound[..., None, :, :, :, :], len(output_tokens), axis=-5)
    split = [np.repeat(x[..., None, :, :, :, :], len(output_tokens), axis=-5)
             if i < N_CLASSES else x for i, x in enumerate(split)]

    def grown(x, fill):
        # [hw, model, w, a, k, quant, tp, pp, ep, adp, batch, input, imbalance, ...] -> the
        # kernel's layout: serving and engine after the model, the budget and admission
        # interval before the batch, the prefix, spec-token, acceptance, beam and offload
        # axes (one value each here but offload's) around the imbalance, the memory
        # fraction (static serving does not depend on it) after the draft model, cap last
        x = x[:, :, None, None, :, :, :, :, :, :, :, :, None, None, :, :, None, :, None, None,
              None, None, None, None, None, None, None, ..., None]
        at, mf = 2 + L.K_OFFLOAD, 2 + L.K_MEMORY_FRACTION
        shape = (x.shape[0], x.shape[1], len(v["serving"]), len(v["engine"]), *x.shape[4:12],
                 len(v["max_batched_tokens"]), len(v["admission_interval"]),
                 *x.shape[14:at], len(v["offload"]), *x.shape[at + 1:mf],
                 len(v["memory_fraction"]), *x.shape[mf + 1:-1], len(sc[4]))
        return np.where(valid_cap, np.broadcast_to(x, shape), fill)
    ttft, tpot, bound = grown(ttft, np.inf), grown(tpot, np.inf), grown(bound, 0)
    pre_path, pre_stage = grown(pre_path, np.inf), grown(pre_stage, np.inf)
    # offload: each pass streams its spilled bytes over the host link, overlapped with the
    # device's work (dse/offload.py): a prefill pass lasts max(device, host), a decode step
    # max(device step, micro-batches x host)
    hp, hd = (np.lib.stride_tricks.as_strided(
        host[r], shape=ttft.shape, strides=tuple(int(x) * host.itemsize for x in slot_strides),
        writeable=False) for r in range(2))
    link = (hw[:, L.HW_HOST_BYTES_PER_S] * hw[:, L.HW_NETWORK_EFF]).reshape(
        (-1,) + (1,) * (ttft.ndim - 1))
    micro = np.minimum(_ax(v["pp"], 2 + L.K_PP, float, ttft.ndim),
                       _ax(v["batch"], 2 + L.K_BATCH, float, ttft.ndim))
    with np.errstate(divide="ignore", invalid="ignore"):
        h_pre = np.where(hp > 0, hp / link, 0.0)
        h_dec = micro * np.where(hd > 0, hd / link, 0.0) / per_step
    device_ttft, device_tpot = ttft, tpot
    ttft = np.where(valid_cap, np.maximum(pre_path, h_pre) + (micro - 1) * np.maximum(
        pre_stage, h_pre), np.inf)
    tpot = np.maximum(tpot, h_dec)
    bound = np.where(h_dec > device_tpot, L.BOUND_HOST, bound)
    out = ttft, tpot, bound.astype(np.uint8)
    if not breakdown:
        return out
    split = [grown(x, np.inf) for x in split]
    split[OFFLOAD_CLASS] = np.where(valid_cap, ttft - device_ttft, np.inf)
    split[N_CLASSES + OFFLOAD_CLASS] = np.where(valid_cap, tpot - device_tpot, np.inf)
    return (*out, np.stack(split), grown(p_bound, 0).astype(np.uint8))


def class_precisions(op, recipes, w, a, k, dtype_bits):
    """(weight, activation, KV-cache, compute) precision codes of ``op`` under quant
    recipe rows ``recipes`` [..., QUANT_FIELDS] (arrays broadcast with the grid's resolved
    ``w``, ``a``, ``k``): the recipe's code for the op's class where it is >= 0, the grid's
    otherwise; compute in the wider of weight and activation (GEMM-like ops) or of
    activation and KV cache (attention), ties to the activation, in 16 bits or the
    activation's where wider (attention over fresh heads), or the activation's."""
    c = int(op[L.OP_CLASS])
    wo = np.where(recipes[..., 2 * c] >= 0, recipes[..., 2 * c], w).astype(np.int64)
    ao = np.where(recipes[..., 2 * c + 1] >= 0, recipes[..., 2 * c + 1], a).astype(np.int64)
    ko = np.where(recipes[..., L.Q_KV] >= 0, recipes[..., L.Q_KV], k).astype(np.int64)
    if int(op[L.OP_CDT]) == L.CDT_QUANT:  # (class activation, grid activation, ...)
        grid_a = np.broadcast_to(a, ao.shape).astype(np.int64)
        return ao, grid_a, ko, grid_a
    cdt = {L.CDT_GEMM: np.where(dtype_bits[ao] >= dtype_bits[wo], ao, wo),
           L.CDT_ATTENTION: np.where(dtype_bits[ao] >= dtype_bits[ko], ao, ko),
           L.CDT_FRESH: np.where(dtype_bits[ao] >= 16, ao, L.BF16),
           L.CDT_ACT: ao}[int(op[L.OP_CDT])]
    return wo, ao, ko, cdt


def _evaluate(hw, rates, programs, n_ops, batch, input_tokens, imbalance, output_tokens,
              tp, pp, ep, attention_dp, weight_dtype, act_dtype, kv_dtype, recipes,
              compute_scale, memory_scale, scaleup_scale, scaleout_scale, dtype_bytes,
              dtype_bits, prefix=0.0, gamma=0.0, alpha=0.0, beams=1.0, lora_r=0.0, lora_n=1.0,
              cp=1.0):
    h = _ax(np.arange(hw.shape[0]), 0)
    w = _ax(weight_dtype, 1)
    a = np.where(_ax(act_dtype, 2) < 0, w, _ax(act_dtype, 2))
    k = np.where(_ax(kv_dtype, 3) < 0, a, _ax(kv_dtype, 3))
    # the quant recipes' rows along axis 4, their columns last: q[..., column] is an axis
    q = recipes.reshape((1,) * 4 + (len(recipes),) + (1,) * (_N - 5) + (recipes.shape[1],))
    t, p, e = _ax(tp, 5, float), _ax(pp, 6, float), _ax(ep, 7, float)
    adp = _ax(attention_dp, 8, float)
    b, s, o = _ax(batch, 9, float), _ax(input_tokens, 10, float), _ax(output_tokens, 12, float)
    imb = _ax(imbalance, 11, float)
    cs, ms = _ax(compute_scale, 13), _ax(memory_scale, 14)
    su, so = _ax(scaleup_scale, 15), _ax(scaleout_scale, 16)
    micro = np.minimum(p, b)
    group_seqs = b / micro / adp  # one attention-DP group's sequences per micro-batch
    valid = (cs > 0) & (ms > 0) & (su > 0) & (so > 0)
    n_steps = np.maximum(o - 1, 1)
    full = np.broadcast_shapes(*(x.shape for x in (h, w, a, k, q[..., 0], t, p, e, adp, b, s,
                                                   imb, o, cs, ms, su, so)))

    # prefix caching: whole tokens cached, the last one always computed
    cached = np.minimum(np.floor(prefix * s), s - 1) if prefix > 0 else 0.0 * s
    # speculative decoding: a step verifies gamma + 1 tokens and yields on average
    # sum_{i=0..gamma} alpha^i of them (the draft's first i tokens all accepted)
    per_step = sum(alpha ** i for i in range(int(gamma) + 1))

    def op_costs(op, decode, ctx):
        wo, ao, ko, _ = class_precisions(op, q, w, a, k, dtype_bits)
        wb, ab, kb = dtype_bytes[wo], dtype_bytes[ao], dtype_bytes[ko]
        new_q = 1.0 if op[L.OP_DRAFT] == L.DRAFT_DECODE else gamma + 1.0
        # every beam decodes; context parallelism: a device prefills 1/cp of every prompt
        seqs = group_seqs * beams if decode else group_seqs / cp
        moe = op[L.OP_SPAN] == L.SPAN_MOE  # MoE layers: all groups' tokens, tp * adp devices
        args = (t * adp, p, e, wb, ab, kb, imb, new_q, cached, lora_r, lora_n, cp)
        if not moe:
            args = (t, *args[1:])
        own = seqs * adp if moe else seqs
        out = _costs(op, decode, own, s, ctx, *args)
        if decode and cp > 1:
            # each device attends its 1/cp of the context: the part that grows with it
            at0 = _costs(op, decode, own, s, 0.0 * ctx, *args)
            out = (at0[0] + (out[0] - at0[0]) / cp, at0[1] + (out[1] - at0[1]) / cp,
                   *out[2:])
        return out

    def op_time(op, decode, ctx, work=None):
        f, by, net, steps, span, dq = op_costs(op, decode, ctx)
        if op[L.OP_KIND] == L.MOE:  # compute at one expert GEMM's efficiency
            seqs = group_seqs * beams if decode else group_seqs / cp
            new_q = 1.0 if op[L.OP_DRAFT] == L.DRAFT_DECODE else gamma + 1.0
            tokens = seqs * adp * (new_q if decode else s - cached)
            work = (f / moe_gemms(op, tokens, e), by)
        wc, ac, _, cdt = class_precisions(op, q, w, a, k, dtype_bits)
        return roofline_seconds(hw, h, rates[h, cdt], f, by, int(op[L.OP_KIND]), net, steps,
                                span, cs, ms, su, so, dq, rates[h, L.FP32], work,
                                L.DTYPE_BITS[cdt] <= 8,
                                dtype_bytes[wc] < dtype_bytes[ac])

    def mean_work(op):
        """(FLOPs, bytes) of a decode op averaged over its live steps: the work its
        efficiency is taken at (the mean context)."""
        fs, bs = 0.0, 0.0
        for j in range(1, int(n_steps.max()) + 1):
            f, by, *_ = op_costs(op, True, s + j)
            fs = fs + (j <= n_steps) * f
            bs = bs + (j <= n_steps) * by
        return fs / n_steps, bs / n_steps

    ttft_all, tpot_all, bound_all, split_all, p_bound_all = [], [], [], [], []
    pre_all = []  # the prefill's path and stage seconds (offload's max with the host link)
    for m in range(programs.shape[0]):
        def multipliers(phase):
            out = []
            for op in programs[m, phase, :n_ops[m, phase]]:
                when = op[L.OP_WHEN]
                exchange = (e > 1) & (adp > 1)
                on = np.where(when == L.WHEN_EXCHANGE, exchange,
                              np.where(when == L.WHEN_IN_GROUP, ~exchange, True))
                scope = op[L.OP_SCOPE]
                if op[L.OP_DRAFT] != L.DRAFT_NONE:  # the MTP module, in the last stage
                    runs = (gamma if op[L.OP_DRAFT] == L.DRAFT_DECODE else 1.0) * (
                        op[L.OP_LAYERS] if scope == L.SCOPE_LAYER else 1.0)
                    out.append((op, runs * on * (gamma > 0), runs * on * (gamma > 0)))
                elif scope == L.SCOPE_LAYER:
                    out.append((op, op[L.OP_LAYERS] * on, np.ceil(op[L.OP_LAYERS] / p) * on))
                elif scope == L.SCOPE_BOUNDARY:
                    out.append((op, (p - 1) * on, 0.0 * on))
                else:
                    out.append((op, 1.0 * on, 1.0 * on))
            return out

        path = np.zeros(full)
        stage = np.zeros(full)
        # the breakdown (kernels/breakdown.py): per operator class its path and stage
        # seconds; the prefill's roofline winners along the path
        c_path = np.zeros((N_CLASSES,) + full)
        c_stage = np.zeros((N_CLASSES,) + full)
        p_won = np.zeros((3,) + full)
        for op, wp, wst in multipliers(L.PREFILL):
            comp, mem, netw, kernel = op_time(op, False, None)
            top = np.maximum(np.maximum(comp, mem), netw) + kernel
            path = path + wp * top
            stage = stage + wst * top
            cls = KIND_CLASS[int(op[L.OP_KIND])]
            c_path[cls] += wp * top
            c_stage[cls] += wst * top
            winner = np.where((comp >= mem) & (comp >= netw), 0, np.where(mem >= netw, 1, 2))
            for r in range(3):
                p_won[r] += wp * top * (winner == r)
        ttft = (path + (micro - 1) * stage)[..., 0, :, :, :, :]
        pre_all.append([np.where(valid[..., 0, :, :, :, :], x[..., 0, :, :, :, :], np.inf)
                        for x in np.broadcast_arrays(path, stage)])
        pre_split = [(c_path[c] + (micro - 1) * c_stage[c])[..., 0, :, :, :, :]
                     for c in range(N_CLASSES)]
        p_bound = np.where((p_won[0] >= p_won[1]) & (p_won[0] >= p_won[2]), 0,
                           np.where(p_won[1] >= p_won[2], 1, 2))[..., 0, :, :, :, :]

        path_sum = np.zeros(full)
        stage_sum = np.zeros(full)
        res = np.zeros((3,) + full)
        c_path = np.zeros((N_CLASSES,) + full)
        c_stage = np.zeros((N_CLASSES,) + full)
        works = [mean_work(op) for op, _, _ in multipliers(L.DECODE)]
        for j in range(1, int(n_steps.max()) + 1):
            live = j <= n_steps
            for (op, wp, wst), work in zip(multipliers(L.DECODE), works):
                comp, mem, netw, kernel = op_time(op, True, s + j, work)
                top = np.maximum(np.maximum(comp, mem), netw) + kernel
                path_sum = path_sum + live * wp * top
                stage_sum = stage_sum + live * wst * top
                c_path[KIND_CLASS[int(op[L.OP_KIND])]] += live * wp * top
                c_stage[KIND_CLASS[int(op[L.OP_KIND])]] += live * wst * top
                winner = np.where((comp >= mem) & (comp >= netw), 0, np.where(mem >= netw, 1, 2))
                for r in range(3):
                    res[r] = res[r] + live * wp * top * (winner == r)
        tpot = np.maximum(path_sum / n_steps, micro * stage_sum / n_steps) / per_step
        # each class's share of the side of max(path, micro x stage) that wins
        path_wins = path_sum / n_steps >= micro * stage_sum / n_steps
        dec_split = [np.where(path_wins, c_path[c], micro * c_stage[c]) / n_steps / per_step
                     for c in range(N_CLASSES)]
        bound = np.where((res[0] >= res[1]) & (res[0] >= res[2]), 0,
                         np.where(res[1] >= res[2], 1, 2))
        ttft_all.append(np.where(valid[..., 0, :, :, :, :], ttft, np.inf))
        tpot_all.append(np.where(valid, tpot, np.inf))
        bound_all.append(np.where(valid, bound, 0).astype(np.uint8))
        split_all.append([np.where(valid[..., 0, :, :, :, :], x, np.inf) for x in pre_split]
                         + [np.where(valid, x, np.inf) for x in dec_split])
        p_bound_all.append(np.where(valid[..., 0, :, :, :, :], p_bound, 0))
    return (np.stack(ttft_all, axis=1), np.stack(tpot_all, axis=1),
            np.stack(bound_all, axis=1),
            [np.stack([s[i] for s in split_all], axis=1) for i in range(2 * N_CLASSES)],
            np.stack(p_bound_all, axis=1), np.stack([x[0] for x in pre_all], axis=1),
            np.stack([x[1] for x in pre_all], axis=1))
