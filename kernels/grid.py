"""The grid kernel: roofline times for every configuration of a Cartesian grid.

One compiled kernel serves every model and hardware: models arrive as operator programs
(``kernels/layout.py``), hardware as a table. The kernel walks the *structure* axes (model
and ``layout.KERNEL_AXES``, decoded by one loop, :func:`decode_axes`) in parallel, computes
each operator's FLOPs and bytes once per structure point, and reuses them across the hardware, what-if and
output-length axes, which change only rates and the decode context range.

Timing model (documented in README "Semantics"):
  op time      = kernel_latency (ops that compute or move memory)
                 + max(FLOPs / (peak * compute_eff * compute_scale),
                     bytes / (bandwidth * memory_eff * memory_bandwidth_scale),
                     collective seconds: per link bytes / (link * network_eff * link_scale)
                     + steps * link_latency, algorithm by kernels/collectives.py)
  stage        = sum of ceil(n / pp) * op for ops in n layers + once-per-pass ops
                 (the bottleneck stage, assuming each layer type spreads evenly)
  path         = sum of n * op for ops in n layers + once-per-pass ops
                 + (pp - 1) * stage-boundary sends
  micro-batches m = min(pp, batch), each of batch / m sequences
  ttft         = path + (m - 1) * stage                     (pipeline fill, GPipe-style)
  decode step  = max(path, m * stage)                       (m micro-batches cycle through)
  tpot         = mean decode step over contexts input+1 .. input+output-1, in closed form
"""
import math

import numpy as np
from numba import njit, prange

from .collectives import collective_seconds
from .efficiency import has_curve, op_curves, time_factor, wo_curves
from .formulas import (converts_nothing, expected_tokens, moe_gemms, op_cost,
                       op_precisions, op_tokens, prompt_split, run_counts)
from .serving import (LANES, N_COMP, N_TERMS, N_UNITS, N_VTIMES, V_OUT, V_PATH, V_UP,
                      V_STAGE, admission_interval, compositions, eager_device, launches,
                      speculation, iteration_seconds, iteration_terms, mean_context,
                      serve_times, serve_weights, steady_state, structure_units,
                      structure_units_into, term_seconds, terms_seconds, unit_times)
from .layout import (CURVE_ATTENTION_COMPUTE, CURVE_ATTENTION_MEMORY, DECODE,
                     EN_EAGER_DECODE, EN_EAGER_OP_S, EN_ITERATION_OVERHEAD_S, FP32, EN_MIXED,
                     EN_OVERLAP, EN_REQUEST_OVERHEAD_S,
                     HW_COMPUTE_EFF, HW_HOST_BYTES_PER_S, HW_KERNEL_LATENCY_S,
                     HW_MEMORY_BYTES_PER_S, BOUND_HOST,
                     HW_MEMORY_EFF, HW_NETWORK_EFF, HW_SCALEOUT_BYTES_PER_S,
                     HW_SCALEOUT_LATENCY_S, HW_SCALEUP_BYTES_PER_S, HW_SCALEUP_DOMAIN,
                     HW_SCALEUP_LATENCY_S, K_ACT, K_ADMIT, K_ADP, K_ALPHA, K_BATCH, K_BEAMS,
                     K_BUDGET,
                     K_ENGINE, K_EP, K_GAMMA, K_IMBALANCE, K_INPUT, K_KV, K_LORA_ADAPTERS,
                     K_LORA_RANK, K_PP, K_PREFIX, K_CP, K_DRAFT,
                     K_QUANT, K_SERVING, K_TP, K_WEIGHT, DRAFT_DECODE, MOE, OP_DRAFT,
                     OP_KIND, OP_SPAN, PREFILL,
                     SERVING_CONTINUOUS, SPAN_MOE, W_CAPACITY, W_COMPUTE, W_MEMORY,
                     W_SCALEOUT, W_SCALEUP)

# per-op scratch columns
_TC0, _TC1, _TM0, _TM1, _TNB, _TNO, _TNL, _LINK, _MPATH, _MSTAGE, _TWIN, _TLAT = range(12)
_BLOCK = 64  # structure points per block of the grid kernel's parallel loop
_N_TIMES = 12
(_FLOPS0, _FLOPS1, _BYTES0, _BYTES1, _NET, _GROUP, _SPAN, _CDT, _CPATH, _CSTAGE, _WIN,
 _KIND, _DEQUANT, _GEMMS) = range(14)
_N_COSTS = 14  # _GEMMS: independent GEMMs the op's FLOPs split into (formulas.moe_gemms)


@njit(cache=True)
def winner(compute, memory, network):
    """The bound code (0 compute, 1 memory, 2 network) of the largest time; ties go to the
    earlier resource."""
    if compute >= memory and compute >= network:
        return 0
    return 1 if memory >= network else 2


@njit(cache=True, inline="always")
def line_sum(a0, a1, lo, hi):
    """Sum of a0 + a1 * c over integer c in [lo, hi] (0 when the range is empty)."""
    if hi < lo:
        return 0.0
    count = hi - lo + 1.0
    return count * (a0 + a1 * (lo + hi) * 0.5)


@njit(cache=True, inline="always")
def mean_max_lines(a0, a1, b0, b1, c_lo, n):
    """Mean over integer c in [c_lo, c_lo + n - 1] of max(a0 + a1 c, b0 + b1 c).

    Returns the mean, the part of it contributed by steps where the ``a`` line wins, and
    the share of steps where it wins. Exact: the two lines cross at most once, so each
    side is an arithmetic series.
    """
    c_hi = c_lo + n - 1.0
    d0 = a0 - b0
    d1 = a1 - b1
    if d1 == 0.0:
        if d0 >= 0.0:
            lo, hi = c_lo, c_hi
        else:
            lo, hi = c_lo, c_lo - 1.0
    elif d1 > 0.0:
        lo = max(c_lo, math.ceil(min(max(-d0 / d1, -1e300), 1e300)))
        hi = c_hi
    else:
        lo = c_lo
        hi = min(c_hi, math.floor(min(max(-d0 / d1, -1e300), 1e300)))
    sum_a = line_sum(a0, a1, lo, hi)
    sum_b = line_sum(b0, b1, c_lo, c_hi) - line_sum(b0, b1, lo, hi)
    return (sum_a + sum_b) / n, sum_a / n, max(hi - lo + 1.0, 0.0) / n


@njit(cache=True, inline="always")
def mean_max_lines_capped(a0, a1, b0, b1, c_lo, n, window):
    """:func:`mean_max_lines` with the context capped at ``window`` (0: no cap).

    Steps up to the window grow linearly; steps past it cost the same as at the window.
    """
    c_hi = c_lo + n - 1.0
    if window <= 0.0 or c_hi <= window:
        return mean_max_lines(a0, a1, b0, b1, c_lo, n)
    a_w = a0 + a1 * window
    b_w = b0 + b1 * window
    flat = max(a_w, b_w)
    a_wins = 1.0 if a_w >= b_w else 0.0
    if c_lo > window:
        return flat, flat * a_wins, a_wins
    n_lin = window - c_lo + 1.0
    mean, mean_a, frac_a = mean_max_lines(a0, a1, b0, b1, c_lo, n_lin)
    n_flat = n - n_lin
    return ((mean * n_lin + flat * n_flat) / n, (mean_a * n_lin + flat * a_wins * n_flat) / n,
            (frac_a * n_lin + a_wins * n_flat) / n)


@njit(cache=True)
def _fill_costs(program, n_op, phase, seqs, s, t, p, e, adp, w, a, k, quant, dtype_bytes,
                dtype_bits, imb, q, past, gamma, out, lora_r=0.0, lora_n=1.0, cp=1.0):
    """Per-op costs and multipliers of one phase into ``out[n_op, _N_COSTS]``: each op at
    its class's precisions under the quant recipe row ``quant`` (grid codes ``w``, ``a``,
    ``k`` where the recipe names none, :func:`formulas.op_precisions`). ``s``: the prompt
    tokens computed (prefill) after ``past`` cached ones; ``q``: the new tokens per
    sequence of a decode step (a draft op's: 1); ``gamma``: draft tokens per step;
    ``lora_r``, ``lora_n``: the LoRA adapters' rank and count (LoRA ops); ``cp``: the
    context-parallel group (its collectives)."""
    for i in range(n_op):
        op = program[i]
        wc, ac, kc, cdt = op_precisions(op, quant, w, a, k, dtype_bits)
        wb = dtype_bytes[wc]
        ab = dtype_bytes[ac]
        kb = dtype_bytes[kc]
        qi = 1.0 if int(op[OP_DRAFT]) == DRAFT_DECODE else q
        if int(op[OP_SPAN]) == SPAN_MOE:  # MoE layers see every attention-DP group
            f0, f1, b0, b1, nb, group, span, win, dq = op_cost(
                op, phase, seqs * adp, s, t * adp, p, e, wb, ab, kb, imb, qi, past, lora_r,
                lora_n, cp)
        else:
            f0, f1, b0, b1, nb, group, span, win, dq = op_cost(
                op, phase, seqs, s, t, p, e, wb, ab, kb, imb, qi, past, lora_r, lora_n, cp)
        out[i, _FLOPS0] = f0
        out[i, _FLOPS1] = f1
        out[i, _BYTES0] = b0
        out[i, _BYTES1] = b1
        out[i, _NET] = nb
        out[i, _GROUP] = group
        out[i, _KIND] = op[OP_KIND]
        out[i, _DEQUANT] = dq
        out[i, _SPAN] = span
        out[i, _WIN] = win
        out[i, _CDT] = cdt
        out[i, _CPATH], out[i, _CSTAGE] = run_counts(op, p, e, adp, gamma)
        out[i, _GEMMS] = 1.0
        if int(op[OP_KIND]) == MOE:  # all attention groups' tokens, as op_cost sees them
            out[i, _GEMMS] = moe_gemms(op, op_tokens(op, phase, seqs * adp, s, qi), e)
        if converts_nothing(op, wb, ab):  # an input quantization with nothing to do
            out[i, _CPATH] = 0.0
            out[i, _CSTAGE] = 0.0


@njit(cache=True)
def context_ops(cost_dec, n_dec, out):
    """The decode ops of cost table ``cost_dec`` whose cost grows with the context
    (attention: averaged exactly over the steps) into ``out``; returns their count."""
    n = 0
    for i in range(n_dec):
        if cost_dec[i, _FLOPS1] != 0.0 or cost_dec[i, _BYTES1] != 0.0:
            out[n] = i
            n += 1
    return n


@njit(cache=True)
def _fill_times(costs, n_op, rates_h, hw_h, out):
    """Unscaled compute / memory / network seconds per op on one hardware into ``out``.

    Size-dependent efficiency (``kernels/efficiency.py``) is applied to ops whose work
    does not depend on the context; a decode op that grows with the context gets its
    factors per output length from :func:`_ctx_factors`."""
    ce = hw_h[HW_COMPUTE_EFF]
    me = hw_h[HW_MEMORY_EFF]
    mem = hw_h[HW_MEMORY_BYTES_PER_S] * me
    r_up = 1.0 / (hw_h[HW_SCALEUP_BYTES_PER_S] * hw_h[HW_NETWORK_EFF])
    r_out = 1.0 / (hw_h[HW_SCALEOUT_BYTES_PER_S] * hw_h[HW_NETWORK_EFF])
    for i in range(n_op):
        rate = rates_h[int(costs[i, _CDT])] * ce
        # weight-only ops are the ones that dequantize (formulas.op_cost)
        wo = costs[i, _DEQUANT] > 0.0
        cc, cm, cn = op_curves(int(costs[i, _KIND]), hw_h, int(costs[i, _CDT]), wo)
        # weight-only experts' own curves hold the fused kernel's dequantization
        dq = 0.0 if (wo and int(costs[i, _KIND]) == MOE and wo_curves(hw_h)) else costs[
            i, _DEQUANT]
        fc = 1.0
        fm = 1.0
        if costs[i, _FLOPS1] == 0.0 and costs[i, _BYTES1] == 0.0:
            # a grouped (MoE) GEMM computes at one expert GEMM's efficiency
            fc = time_factor(hw_h, cc, costs[i, _FLOPS0] / costs[i, _GEMMS], ce)
            fm = time_factor(hw_h, cm, costs[i, _BYTES0], me)
        fn = time_factor(hw_h, cn, costs[i, _NET], hw_h[HW_NETWORK_EFF])
        # weight-only dequantization runs on the vector (fp32) units, after the MMAs' time
        out[i, _TC0] = costs[i, _FLOPS0] / rate * fc + dq / (rates_h[FP32] * ce)
        out[i, _TC1] = costs[i, _FLOPS1] / rate
        out[i, _TM0] = costs[i, _BYTES0] / mem * fm
        out[i, _TM1] = costs[i, _BYTES1] / mem
        # size-dependent efficiency (latency-bandwidth model): every kernel that computes,
        # reads memory or communicates takes a fixed latency (launch and tail) on top of
        # its roofline time, so a small kernel reaches only work / (work + rate * latency)
        # of the preset efficiency; a collective adds its link steps' latency to that.
        works = (costs[i, _FLOPS0] > 0.0 or costs[i, _FLOPS1] > 0.0
                 or costs[i, _BYTES0] > 0.0 or costs[i, _BYTES1] > 0.0
                 or (costs[i, _GROUP] > 1.0 and costs[i, _NET] > 0.0))
        out[i, _TLAT] = hw_h[HW_KERNEL_LATENCY_S] if works else 0.0
        out[i, _TNB], out[i, _TNO], out[i, _TNL] = collective_seconds(
            int(costs[i, _KIND]), costs[i, _GROUP], costs[i, _SPAN], costs[i, _NET],
            hw_h[HW_SCALEUP_DOMAIN], r_up * fn, hw_h[HW_SCALEUP_LATENCY_S], r_out * fn,
            hw_h[HW_SCALEOUT_LATENCY_S])
        # link: 0 scale-up only, 1 scale-out only, 2 both (hierarchical)
        out[i, _LINK] = (0.0 if out[i, _TNO] <= 0.0 else (1.0 if out[i, _TNB] <= 0.0 else 2.0))
        out[i, _MPATH] = costs[i, _CPATH]
        out[i, _MSTAGE] = costs[i, _CSTAGE]
        out[i, _TWIN] = costs[i, _WIN]


@njit(cache=True)
def _ctx_factors(costs, i, hw_h, s, steps):
    """(compute, memory) efficiency factors of context-dependent decode op ``i`` over
    ``steps`` decode steps after ``s`` prompt tokens: its work at the mean context."""
    cc, cm, _ = op_curves(int(costs[i, _KIND]), hw_h, int(costs[i, _CDT]),
                          costs[i, _DEQUANT] > 0.0)
    if not (has_curve(hw_h, cc) or has_curve(hw_h, cm)):
        return 1.0, 1.0
    ctx = mean_context(s, steps, costs[i, _WIN])
    return (time_factor(hw_h, cc, costs[i, _FLOPS0] + costs[i, _FLOPS1] * ctx,
                        hw_h[HW_COMPUTE_EFF]),
            time_factor(hw_h, cm, costs[i, _BYTES0] + costs[i, _BYTES1] * ctx,
                        hw_h[HW_MEMORY_EFF]))


@njit(cache=True)
def _op_time(tt, i, rcs, rms, rsu, rso):
    """Seconds of op ``i`` of a phase's time table ``tt`` (:func:`_fill_times`) under the
    what-if reciprocals: the roofline max plus the kernel latency. Context-independent ops
    only (decode attention is averaged over its steps by :func:`mean_max_lines_capped`)."""
    tn = tt[i, _TNB] * rsu + tt[i, _TNO] * rso + tt[i, _TNL]
    return max(tt[i, _TC0] * rcs, tt[i, _TM0] * rms, tn) + tt[i, _TLAT]


@njit(cache=True, inline="always")
def op_time_won(tt, i, rcs, rms, rsu, rso):
    """:func:`_op_time` with its roofline winner: (seconds, 0 compute, 1 memory or 2
    network; ties go to the earlier resource). The grid kernel's decode steps and the
    breakdown kernel (``kernels/breakdown.py``) both time an op by it."""
    tc = tt[i, _TC0] * rcs
    tm = tt[i, _TM0] * rms
    tn = tt[i, _TNB] * rsu + tt[i, _TNO] * rso + tt[i, _TNL]
    lat = tt[i, _TLAT]
    if tc >= tm and tc >= tn:
        return tc + lat, 0
    if tm >= tn:
        return tm + lat, 1
    return tn + lat, 2


@njit(cache=True, inline="always")
def ctx_op_time(tt, i, fc, fm, s, steps):
    """Seconds of context-dependent decode op ``i`` of time table ``tt``, the exact mean
    over ``steps`` decode steps after ``s`` prompt tokens (:func:`mean_max_lines_capped`)
    at compute and memory factors ``fc``, ``fm`` (what-if reciprocals times efficiency):
    (seconds, its compute-bound part, its memory-bound part), kernel latency included."""
    mean, mean_c, frac_c = mean_max_lines_capped(
        tt[i, _TC0] * fc, tt[i, _TC1] * fc, tt[i, _TM0] * fm, tt[i, _TM1] * fm, s + 1.0,
        steps, tt[i, _TWIN])
    lat = tt[i, _TLAT]
    return mean + lat, mean_c + lat * frac_c, mean - mean_c + lat * (1.0 - frac_c)


@njit(cache=True)
def decode_axes(index, values, sizes, out, strides):
    """Values of flat ``index`` over the axes of table ``values`` [n_axes, longest] with
    lengths ``sizes`` (C order: the last axis fastest) into ``out[n_axes]``; returns the
    index over the slower dims left above them and the offset sum(position * strides)."""
    index = np.int64(index)  # a prange index is unsigned: uint64 % int64 would be a float
    offset = np.int64(0)
    for j in range(sizes.size - 1, -1, -1):
        if sizes[j] == 1:  # an axis of one value (most of them): no integer division
            out[j] = values[j, 0]
            continue
        pos = index % sizes[j]
        out[j] = values[j, pos]
        offset += pos * strides[j]
        index //= sizes[j]
    return index, offset


@njit(cache=True)
def point_setup(v):
    """What a structure point's axis values ``v`` (``layout.KERNEL_AXES``) mean for the op
    costs: (micro-batches, sequences per attention-DP group and micro-batch, the grid's
    weight, activation and KV precision codes with "same" resolved, the quant recipe's
    row index)."""
    micro = min(v[K_PP], v[K_BATCH])
    seqs = v[K_BATCH] / micro / v[K_ADP]
    w, a, k = int(v[K_WEIGHT]), int(v[K_ACT]), int(v[K_KV])
    if a < 0:  # -1: same precision as the weights
        a = w
    if k < 0:  # -1: same precision as the activations
        k = a
    return micro, seqs, w, a, k, int(v[K_QUANT])


@njit(cache=True)
def _phase_costs(program, n_op, phase, v, seqs, w, a, k, quant, dtype_bytes, dtype_bits, out):
    """:func:`_fill_costs` of one phase at structure point ``v``: prefill computes the
    prompt's uncached tokens over its cached prefix (``prefix_cached_fraction``), a decode
    step verifies ``spec_tokens`` + 1 tokens per sequence and beam. Context parallelism
    (``cp``): a device prefills 1/cp of every prompt (load-balanced causal attention: 1/cp
    of its pairs, as cp / cp of the sequences), and in decode attends its 1/cp of every
    context (the context-dependent parts of the decode ops)."""
    gamma = v[K_GAMMA]
    cp = v[K_CP]
    if phase == PREFILL:
        new, cached = prompt_split(v[K_INPUT], v[K_PREFIX])
        _fill_costs(program, n_op, phase, seqs / cp, new, v[K_TP], v[K_PP], v[K_EP],
                    v[K_ADP], w, a, k, quant, dtype_bytes, dtype_bits, v[K_IMBALANCE], 1.0,
                    cached, gamma, out, v[K_LORA_RANK], v[K_LORA_ADAPTERS], cp)
    else:  # every beam of a sequence decodes (beam search)
        _fill_costs(program, n_op, phase, seqs * v[K_BEAMS], v[K_INPUT], v[K_TP], v[K_PP],
                    v[K_EP], v[K_ADP], w, a, k, quant, dtype_bytes, dtype_bits,
                    v[K_IMBALANCE], gamma + 1.0, 0.0, gamma, out, v[K_LORA_RANK],
                    v[K_LORA_ADAPTERS], cp)
        if cp > 1.0:
            for i in range(n_op):
                out[i, _FLOPS1] /= cp
                out[i, _BYTES1] /= cp


@njit(cache=True)
def _whatif_groups(recip, wi_slot, group, group_slot, valid):
    """What-if points grouped by their offset into the slots (the capacity scales):
    ``group[wi]``, each group's offset ``group_slot[g]``, ``valid[wi]`` (no scale <= 0).
    Returns the number of groups."""
    n_grp = 0
    for wi in range(recip.shape[0]):
        g = 0
        while g < n_grp and group_slot[g] != wi_slot[wi]:
            g += 1
        if g == n_grp:
            group_slot[g] = wi_slot[wi]
            n_grp += 1
        group[wi] = g
        ok = True
        for j in range(recip.shape[1]):
            if recip[wi, j] < 0.0:
                ok = False
        valid[wi] = ok
    return n_grp


@njit(cache=True)
def _same_rate(x, y, seen):
    """Reciprocals ``x`` and ``y`` price alike: equal, or unseen (finite: 0 * x = 0)."""
    if seen:
        return x == y
    return math.isfinite(x) and math.isfinite(y)


@njit(cache=True)
def _rate_classes(recip, up, out, cls):
    """``cls[wi]``: the first what-if point whose time reciprocals price every op as those of
    ``wi`` do (capacity aside). Scale-up and scale-out reciprocals count only where ``up`` /
    ``out``: on a link no op sends bytes over, the time is its latency alone."""
    for wi in range(recip.shape[0]):
        cls[wi] = wi
        for wj in range(wi):
            if (cls[wj] == wj and recip[wj, W_COMPUTE] == recip[wi, W_COMPUTE]
                    and recip[wj, W_MEMORY] == recip[wi, W_MEMORY]
                    and _same_rate(recip[wj, W_SCALEUP], recip[wi, W_SCALEUP], up)
                    and _same_rate(recip[wj, W_SCALEOUT], recip[wi, W_SCALEOUT], out)):
                cls[wi] = wj
                break


@njit(cache=True)
def _static_links(tt, n_op, up, out):
    """(scale-up, scale-out) after a static phase's time table ``tt``: whether any of its
    ops sends bytes over that link, or'ed into ``up`` / ``out``."""
    for i in range(n_op):
        up = up or tt[i, _TNB] != 0.0
        out = out or tt[i, _TNO] != 0.0
    return up, out


@njit(cache=True)
def _links_used(vt, n_op):
    """(scale-up, scale-out): whether an op that runs sends bytes over that link."""
    up = False
    out = False
    for i in range(n_op):
        if vt[i, V_PATH] != 0.0 or vt[i, V_STAGE] != 0.0:
            up = up or vt[i, V_UP] > 0.0
            out = out or vt[i, V_OUT] > 0.0
    return up, out


@njit(cache=True, inline="always")
def set_lane(recip, wi, m, rc, rm, ru, ro):
    """Lane ``m`` of the what-if reciprocals ``rc`` ... ``ro`` (compute, memory, scale-up,
    scale-out) from what-if point ``wi`` of ``recip``."""
    rc[m] = recip[wi, W_COMPUTE]
    rm[m] = recip[wi, W_MEMORY]
    ru[m] = recip[wi, W_SCALEUP]
    ro[m] = recip[wi, W_SCALEOUT]


@njit(cache=True, inline="always")
def pad_lanes(m, rc, rm, ru, ro):
    """Fill the lanes after the ``m`` used ones up to whole vector blocks of ``LANES`` with
    valid reciprocals (their results are never read); returns the padded count."""
    m_pad = (m + LANES - 1) // LANES * LANES
    for j in range(m, m_pad):
        rc[j] = 1.0
        rm[j] = 1.0
        ru[j] = 1.0
        ro[j] = 1.0
    return m_pad


@njit(cache=True)
def continuous_scratch(max_ops, n_whatif, n_grp):
    """The work tables of :func:`_continuous`, allocated once per block of structure points
    (an allocation per point costs as much as pricing a small one): both programs' unit
    costs, op partners, unit times, the two compositions, their terms and rows, the
    capacity groups' running counts, host seconds and canonical group, the what-if
    points' owners, sources and lanes, the lanes' reciprocals and sums."""
    n_pad = (n_whatif + LANES - 1) // LANES * LANES  # whole vector blocks
    return (np.empty((max_ops, N_UNITS)), np.empty((max_ops, N_UNITS)),
            np.empty(max_ops, dtype=np.int64), np.empty(max_ops, dtype=np.bool_),
            np.empty((max_ops, N_VTIMES)), np.empty((max_ops, N_VTIMES)), np.empty(N_COMP),
            np.empty(N_COMP), np.empty((max_ops, N_TERMS)), np.empty((2 * max_ops, N_TERMS)),
            np.empty(2 * max_ops, dtype=np.int64), np.empty(n_grp), np.empty(n_grp),
            np.empty(n_grp, dtype=np.int64), np.empty(n_whatif * n_grp, dtype=np.int64),
            np.empty(n_whatif, dtype=np.int64), np.empty(n_whatif, dtype=np.int64),
            np.ones(n_pad), np.ones(n_pad), np.ones(n_pad), np.ones(n_pad),
            np.empty((10, n_pad)))


@njit(cache=True)
def _continuous(engine_hw, i_e, rates, prog_dec, n_dec, prog_pre, n_pre, engine, v, output_tokens,
                recip, wi_slot, slots, host, st_slot, h_stride, o_stride, n_struct, st, w, a, k,
                quant, dtype_bytes, dtype_bits, ttft, tpot, bound, classes, group, group_slot,
                valid, n_grp, work):
    """Continuous serving of structure point ``st`` on every hardware, output length and
    what-if point: the steady state of ``kernels.serving`` priced with the op costs.

    Per hardware and output length, the steady state, the iterations' compositions and the
    ops' terms (``serving.iteration_terms``) are computed once per distinct running count
    (the capacity what-if acts only through it) and priced for all what-if points of that
    count in one vectorized pass (``serving.terms_seconds``). Points whose time scales and
    running count price every op alike (a bandwidth scale of a link nothing is sent over, a
    capacity scale that admits the same requests) copy the first one's results. The
    what-if points' capacity groups (``group``, ``group_slot``, ``valid``, ``n_grp``:
    :func:`_whatif_groups`) and classes of alike time scales per link use (``classes``:
    :func:`_rate_classes`) are the grid's; ``work``: :func:`continuous_scratch`. The
    hardware rows are ``engine_hw[i_e]``'s, the point's engine's (read by row: a view of
    the engine's whole table per point costs ~10 % of the kernel's time)."""
    t, p, e, adp = v[K_TP], v[K_PP], v[K_EP], v[K_ADP]
    b, s, budget = v[K_BATCH], v[K_INPUT], v[K_BUDGET]
    (u_dec, u_pre, partner, shared, vt_dec, vt_pre, c_dec, c_mix, terms_dec, terms_mix, rows,
     r_grp, h_grp, canon, owner, source, members, rc, rm, ru, ro, sums) = work
    window = structure_units_into(
        prog_dec, n_dec, prog_pre, n_pre, t, p, e, adp, w, a, k, quant, dtype_bytes,
        dtype_bits, v[K_IMBALANCE], v[K_GAMMA], v[K_LORA_RANK], v[K_LORA_ADAPTERS],
        v[K_CP], u_dec, u_pre, partner, shared)
    request_s = engine[EN_REQUEST_OVERHEAD_S]
    overlap = engine[EN_OVERLAP]
    iteration_s = engine[EN_ITERATION_OVERHEAD_S]
    eager_s = engine[EN_EAGER_OP_S]
    eager_dec = eager_s * engine[EN_EAGER_DECODE]  # decode-only iterations: 0 when graphed
    interval = admission_interval(v[K_ADMIT], engine)
    mixed = engine[EN_MIXED] > 0.0
    nout = output_tokens.size
    n_whatif = recip.shape[0]
    for h in range(engine_hw.shape[1]):
        hw_h = engine_hw[i_e, h]  # the hardware row with engine i_e's kernel curves
        unit_times(u_dec, n_dec, rates[h], hw_h, vt_dec)
        unit_times(u_pre, n_pre, rates[h], hw_h, vt_pre)
        up_d, out_d = _links_used(vt_dec, n_dec)
        up_p, out_p = _links_used(vt_pre, n_pre)
        up = up_d or up_p
        net_out = out_d or out_p
        cls = classes[(1 if up else 0) + (2 if net_out else 0)]
        for o in range(nout):
            # prefix caching and speculative decoding: the prompt tokens computed, the
            # decode iterations a request takes (n_it = n / tokens per step)
            new, past, qv, per_step, n_it, n = speculation(
                s, float(output_tokens[o]), v[K_PREFIX], v[K_GAMMA], v[K_ALPHA])
            base = st_slot + h * h_stride + o * o_stride
            for g in range(n_grp):  # the running count (and offload) decide what slots do
                r_grp[g] = min(b, max(slots[base + group_slot[g]], 1.0))
                h_grp[g] = micro_of(p, r_grp[g]) * host_seconds(host[1, base + group_slot[g]],
                                                               hw_h)
                canon[g] = g
                for g2 in range(g):
                    if r_grp[g2] == r_grp[g] and h_grp[g2] == h_grp[g]:
                        canon[g] = canon[g2]
                        break
            owner[:] = -1
            for wi in range(n_whatif):
                if not valid[wi]:
                    idx = ((h * n_struct + st) * nout + o) * n_whatif + wi
                    ttft[idx] = np.inf
                    tpot[idx] = np.inf
                    bound[idx] = 0
                    source[wi] = -2
                    continue
                key = cls[wi] * n_grp + canon[group[wi]]
                if owner[key] < 0:
                    owner[key] = wi
                    source[wi] = -1
                else:
                    source[wi] = owner[key]
            for g in range(n_grp):
                if canon[g] != g:
                    continue
                m = 0
                for wi in range(n_whatif):
                    if source[wi] == -1 and canon[group[wi]] == g:
                        members[m] = wi
                        set_lane(recip, wi, m, rc, rm, ru, ro)
                        m += 1
                if m == 0:
                    continue
                m_pad = pad_lanes(m, rc, rm, ru, ro)
                slot = slots[base + group_slot[g]]
                r, r_d, lam, f, prompts, chunks, prefill_iters = steady_state(
                    b, slot, new, 1.0 + n_it, budget, engine, interval, adp)
                micro = min(p, r)
                share = 1.0 / (micro * adp)
                sums[:, :m_pad] = 0.0
                d_dec = compositions(c_dec, c_mix, r, r_d, f, prompts, chunks, s, n, window,
                                     share, mixed, new, past, qv, v[K_BEAMS], v[K_CP])
                nd_path = 0.0
                nd_stage = 0.0
                if d_dec > 0.0:
                    nq = iteration_terms(vt_dec, n_dec, prog_dec, vt_pre, n_pre, prog_pre,
                                         partner, shared, c_dec, t, p, e, adp, terms_dec,
                                         rows, hw_h)
                    terms_seconds(terms_dec, nq, rc, rm, ru, ro, m_pad, sums[0], sums[1],
                                  sums[2], sums[3], sums[4])
                    nd_path, nd_stage = launches(terms_dec, nq)
                nq = iteration_terms(vt_dec, n_dec, prog_dec, vt_pre, n_pre, prog_pre,
                                     partner, shared, c_mix, t, p, e, adp, terms_mix, rows,
                                     hw_h)
                terms_seconds(terms_mix, nq, rc, rm, ru, ro, m_pad, sums[5], sums[6], sums[7],
                              sums[8], sums[9])
                n_path, n_stage = launches(terms_mix, nq)
                w_dec = (1.0 - f) if mixed else 1.0
                for j in range(m):
                    t_dec = 0.0
                    ht = h_grp[g]
                    if d_dec > 0.0:
                        t_dec = max(eager_device(sums[0, j], sums[1, j], micro, nd_path,
                                                 nd_stage, eager_dec), ht) + iteration_s
                    t_mix = max(eager_device(sums[5, j], sums[6, j], micro, n_path, n_stage,
                                             eager_s), ht) + iteration_s
                    first, seen, rate = serve_times(t_dec, t_mix, b, r, lam, f, prompts,
                                                    chunks, prefill_iters, n_it, mixed,
                                                    request_s, interval, overlap)
                    idx = ((h * n_struct + st) * nout + o) * n_whatif + members[j]
                    ttft[idx] = first
                    tpot[idx] = seen / per_step
                    bc = w_dec * sums[2, j] + f * sums[7, j]
                    bm = w_dec * sums[3, j] + f * sums[8, j]
                    bn = w_dec * sums[4, j] + f * sums[9, j]
                    bound[idx] = winner(bc, bm, bn)
                    if ht > 0.0:  # offload: the host link's wait beyond the device's work
                        hx = f * max(ht - max(sums[5, j], micro * sums[6, j]), 0.0)
                        if d_dec > 0.0:
                            hx += w_dec * max(ht - max(sums[0, j], micro * sums[1, j]), 0.0)
                        if hx > max(bc, bm, bn):
                            bound[idx] = BOUND_HOST
            row = ((h * n_struct + st) * nout + o) * n_whatif
            for wi in range(n_whatif):
                if source[wi] >= 0:
                    ttft[row + wi] = ttft[row + source[wi]]
                    tpot[row + wi] = tpot[row + source[wi]]
                    bound[row + wi] = bound[row + source[wi]]


@njit(cache=True, inline="always")
def micro_of(pp, running):
    """Micro-batches of an iteration (or a static batch): min(pp, sequences)."""
    return min(pp, running)


@njit(cache=True)
def host_seconds(nbytes, hw_h):
    """Seconds one device's host link takes to stream ``nbytes`` (offload) at the preset's
    network efficiency; 0 without bytes."""
    if nbytes <= 0.0:
        return 0.0
    return nbytes / (hw_h[HW_HOST_BYTES_PER_S] * hw_h[HW_NETWORK_EFF])


@njit(cache=True)
def what_if_table(scales, scale_sizes, slot_strides):
    """The what-if points as reciprocal factors on the unscaled times (-1: a scale <= 0)
    [n_whatif, n_scales] and their offsets into the slots (``slot_strides``: the what-if
    axes' strides)."""
    n_whatif = 1
    for j in range(scale_sizes.size):
        n_whatif *= scale_sizes[j]
    recip = np.empty((n_whatif, scale_sizes.size))
    wi_slot = np.empty(n_whatif, dtype=np.int64)
    sc = np.empty(scale_sizes.size)
    for wi in range(n_whatif):
        rest, wi_slot[wi] = decode_axes(wi, scales, scale_sizes, sc, slot_strides)
        for j in range(sc.size):
            recip[wi, j] = 1.0 / sc[j] if sc[j] > 0.0 else -1.0
    return recip, wi_slot


@njit(cache=True)
def attention_curved(hw):
    """Per hardware row: whether it has an attention efficiency curve
    (kernels/efficiency.py)."""
    curves_of = np.zeros(hw.shape[0], dtype=np.bool_)
    for h in range(hw.shape[0]):
        curves_of[h] = (has_curve(hw[h], CURVE_ATTENTION_COMPUTE)
                        or has_curve(hw[h], CURVE_ATTENTION_MEMORY))
    return curves_of


@njit(cache=True, inline="always")
def _time_row(tt, i):
    """Op ``i``'s entries of time table ``tt`` that a what-if lane prices: unscaled
    compute, memory, scale-up and scale-out seconds, link and kernel latency, runs along
    the path and in the busiest stage."""
    return (tt[i, _TC0], tt[i, _TM0], tt[i, _TNB], tt[i, _TNO], tt[i, _TNL], tt[i, _TLAT],
            tt[i, _MPATH], tt[i, _MSTAGE])


@njit(cache=True)
def _static_sums(t_pre, n_pre, t_dec, n_dec, ctx_ops, n_ctx, fac, curved, rc, rm, ru, ro, m,
                 s, output_tokens, sums, ctx):
    """A static point's op sums for ``m`` what-if classes at once (lanes: reciprocals
    ``rc``, ``rm``, ``ru``, ``ro``): ``sums[:, j]`` = (prefill path, prefill stage, decode
    path, decode stage, and the decode path's compute-, memory- and network-bound parts)
    over the context-independent ops; ``ctx[o, :, j]`` = the decode path, stage, compute
    and memory parts with the context-dependent ops of output length ``output_tokens[o]``
    added (their exact mean over the steps; ``fac``: their efficiency factors on curved
    hardware). Op-outer, lane-inner: the inner loops are branch-free and vectorize; each
    lane sums in op order, as one point priced alone (:func:`_op_time`,
    :func:`op_time_won`: the same bits)."""
    sums[:, :m] = 0.0
    for i in range(n_pre):
        tc0, tm0, tnb, tno, tnl, lat, mp, ms = _time_row(t_pre, i)
        for j in range(m):
            top = max(tc0 * rc[j], tm0 * rm[j], tnb * ru[j] + tno * ro[j] + tnl) + lat
            sums[0, j] += mp * top
            sums[1, j] += ms * top
    for i in range(n_dec):
        if t_dec[i, _TC1] != 0.0 or t_dec[i, _TM1] != 0.0:
            continue
        tc0, tm0, tnb, tno, tnl, lat, mp, ms = _time_row(t_dec, i)
        for j in range(m):
            top, is_c, is_m = term_seconds(tc0, tm0, tnb, tno, tnl, lat, rc[j], rm[j], ru[j],
                                           ro[j])
            pt = mp * top
            sums[2, j] += pt
            sums[3, j] += ms * top
            sums[4, j] += pt if is_c else 0.0
            sums[5, j] += pt if is_m else 0.0
            sums[6, j] += 0.0 if (is_c | is_m) else pt
    for o in range(output_tokens.size):
        steps = max(float(output_tokens[o]) - 1.0, 1.0)
        for j in range(m):
            ctx[o, 0, j] = sums[2, j]
            ctx[o, 1, j] = sums[3, j]
            ctx[o, 2, j] = sums[4, j]
            ctx[o, 3, j] = sums[5, j]
        for jj in range(n_ctx):
            i = ctx_ops[jj]
            mp = t_dec[i, _MPATH]
            ms = t_dec[i, _MSTAGE]
            for j in range(m):
                fc = fac[o, jj, 0] * rc[j] if curved else rc[j]
                fm = fac[o, jj, 1] * rm[j] if curved else rm[j]
                top, top_c, top_m = ctx_op_time(t_dec, i, fc, fm, s, steps)
                ctx[o, 0, j] += mp * top
                ctx[o, 1, j] += ms * top
                ctx[o, 2, j] += mp * top_c
                ctx[o, 3, j] += mp * top_m


@njit(parallel=True, cache=True, error_model="numpy", nogil=True)
def evaluate_grid(hw, engine_hw, rates, programs, n_ops, engines, quants, axes, axis_sizes,
                  output_tokens, scales, scale_sizes, slots, slot_strides, host, dtype_bytes,
                  dtype_bits, ttft, tpot, bound):
    """Fill ``ttft``, ``tpot`` [s] and ``bound`` (0 compute, 1 memory, 2 network) in place.

    ``axes`` / ``axis_sizes``: the values of ``layout.KERNEL_AXES``; ``scales`` /
    ``scale_sizes``: those of ``layout.WHAT_IF_AXES`` (see :func:`decode_axes`).
    ``engines``: the engine table (``layout.EN_*``); ``engine_hw`` [n_engine, *hw.shape]:
    ``hw`` with each engine's own kernel curves, which continuous serving prices with
    (static serving: ``hw``); ``quants``: the quant recipe table
    [n_quant, ``layout.QUANT_FIELDS``] (each op's class precisions, the ``quant`` axis). ``slots``: requests the memory and
    the engine admit (continuous serving), read at offset sum(position * stride) with
    ``slot_strides`` over [hardware, model, *KERNEL_AXES, output_tokens, *WHAT_IF_AXES];
    ``host`` [2, len(slots)]: the bytes a device streams over the host link per prefill and
    per decode pass (offload, ``dse.offload``; continuous iterations: the decode row), read
    at the same offsets (:func:`host_seconds`).
    Flat output layout (C order), ttft, tpot and bound alike:
      [hardware, model, *KERNEL_AXES, output_tokens, *WHAT_IF_AXES]
    """
    n_hw = hw.shape[0]
    n_draft = axis_sizes[K_DRAFT]
    n_model = programs.shape[0] // n_draft  # one program per (model, draft model)
    max_ops = programs.shape[2]
    nout = output_tokens.size
    n_ax = axis_sizes.size
    n_struct = n_model
    for j in range(n_ax):
        n_struct *= axis_sizes[j]
    recip, wi_slot = what_if_table(scales, scale_sizes, slot_strides[n_ax + 3:])
    n_whatif = recip.shape[0]
    curves_of = attention_curved(hw)
    curved = curves_of.any()
    # the what-if classes of alike time reciprocals, per use of the two links (static
    # serving; :func:`_rate_classes`): [neither, scale-up, scale-out, both]
    classes = np.empty((4, n_whatif), dtype=np.int64)
    for combo in range(4):
        _rate_classes(recip, combo % 2 == 1, combo >= 2, classes[combo])
    # continuous serving: the what-if points' capacity groups and validity
    group = np.empty(n_whatif, dtype=np.int64)
    group_slot = np.empty(n_whatif, dtype=np.int64)
    valid = np.empty(n_whatif, dtype=np.bool_)
    n_grp = _whatif_groups(recip, wi_slot, group, group_slot, valid)
    # structure points in blocks: each block allocates its work tables once (an allocation
    # per point costs as much as pricing a small one)
    n_blocks = (n_struct + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        v = np.empty(n_ax)
        cost_pre = np.empty((max_ops, _N_COSTS))
        cost_dec = np.empty((max_ops, _N_COSTS))
        ctx_ops = np.empty(max_ops, dtype=np.int64)
        t_pre = np.empty((max_ops, _N_TIMES))
        t_dec = np.empty((max_ops, _N_TIMES))
        # efficiency factors of the context-dependent ops per output length (curved
        # hardware only: elsewhere they are 1 and never read)
        fac = np.empty((nout if curved else 0, max_ops, 2))
        work = continuous_scratch(max_ops, n_whatif, n_grp)
        # what-if points whose time reciprocals price every op alike (capacity scales, a
        # link no op uses) share one pricing: ``cls`` names the class, ``owner`` its lane,
        # the classes' first valid points' reciprocals (``rc`` ... ``ro``) priced together
        # by :func:`_static_sums` into ``sums`` (prefill path and stage, decode path and
        # stage and its compute / memory / network parts) and ``ctx`` (per output length,
        # the decode path, stage, compute and memory with the context-dependent ops)
        owner = np.empty(n_whatif, dtype=np.int64)
        lane = np.empty(n_whatif, dtype=np.int64)  # each what-if point's class lane
        n_pad = (n_whatif + LANES - 1) // LANES * LANES  # whole vector blocks
        rc = np.ones(n_pad)
        rm = np.ones(n_pad)
        ru = np.ones(n_pad)
        ro = np.ones(n_pad)
        sums = np.empty((7, n_pad))
        ctx = np.empty((nout, 4, n_pad))
        for st in range(blk * _BLOCK, min(n_struct, (blk + 1) * _BLOCK)):
            i_m, st_slot = decode_axes(st, axes, axis_sizes, v, slot_strides[2:n_ax + 2])
            st_slot += i_m * slot_strides[1]
            i_p = i_m * n_draft + int(v[K_DRAFT])  # the program of (model, draft model)
            s = v[K_INPUT]
            micro, seqs, w, a, k, q = point_setup(v)
            quant = quants[q]
            per_step = expected_tokens(v[K_GAMMA], v[K_ALPHA])  # tokens per decode step
            n_pre = n_ops[i_p, PREFILL]
            n_dec = n_ops[i_p, DECODE]
            if int(v[K_SERVING]) == SERVING_CONTINUOUS:
                i_e = int(v[K_ENGINE])
                _continuous(engine_hw, i_e, rates, programs[i_p, DECODE], n_dec,
                            programs[i_p, PREFILL], n_pre, engines[i_e], v, output_tokens,
                            recip, wi_slot,
                            slots, host, st_slot, slot_strides[0], slot_strides[n_ax + 2],
                            n_struct, st, w, a, k, quant, dtype_bytes, dtype_bits, ttft, tpot,
                            bound, classes, group, group_slot, valid, n_grp, work)
                continue
            _phase_costs(programs[i_p, PREFILL], n_pre, PREFILL, v, seqs, w, a, k, quant,
                         dtype_bytes, dtype_bits, cost_pre)
            _phase_costs(programs[i_p, DECODE], n_dec, DECODE, v, seqs, w, a, k, quant,
                         dtype_bytes, dtype_bits, cost_dec)
            # decode ops whose cost grows with the context (attention) are averaged exactly
            n_ctx = context_ops(cost_dec, n_dec, ctx_ops)
            for h in range(n_hw):
                _fill_times(cost_pre, n_pre, rates[h], hw[h], t_pre)
                _fill_times(cost_dec, n_dec, rates[h], hw[h], t_dec)
                up, out = _static_links(t_pre, n_pre, False, False)
                up, out = _static_links(t_dec, n_dec, up, out)
                cls = classes[(1 if up else 0) + (2 if out else 0)]
                owner[:] = -1
                h_curved = curves_of[h]
                if h_curved:
                    for o in range(nout):
                        steps = max(float(output_tokens[o]) - 1.0, 1.0)
                        for j in range(n_ctx):
                            fac[o, j, 0], fac[o, j, 1] = _ctx_factors(cost_dec, ctx_ops[j],
                                                                      hw[h], s, steps)
                m = 0  # lanes: the first valid point of each class
                for wi in range(n_whatif):
                    if (recip[wi, W_COMPUTE] < 0.0 or recip[wi, W_MEMORY] < 0.0
                            or recip[wi, W_SCALEUP] < 0.0 or recip[wi, W_SCALEOUT] < 0.0
                            or recip[wi, W_CAPACITY] < 0.0):
                        lane[wi] = -1  # invalid what-if point: flagged infeasible by the caller
                        continue
                    if owner[cls[wi]] < 0:
                        owner[cls[wi]] = m
                        set_lane(recip, wi, m, rc, rm, ru, ro)
                        m += 1
                    lane[wi] = owner[cls[wi]]
                m_pad = pad_lanes(m, rc, rm, ru, ro)
                _static_sums(t_pre, n_pre, t_dec, n_dec, ctx_ops, n_ctx, fac, h_curved, rc, rm,
                             ru, ro, m_pad, s, output_tokens, sums, ctx)
                for wi in range(n_whatif):
                    src = lane[wi]
                    if src < 0:
                        for o in range(nout):
                            idx = ((h * n_struct + st) * nout + o) * n_whatif + wi
                            ttft[idx] = np.inf
                            tpot[idx] = np.inf
                            bound[idx] = 0
                        continue
                    pre_path = sums[0, src]
                    pre_stage = sums[1, src]
                    r_n = sums[6, src]
                    for o in range(nout):
                        # offload: the host link streams the spilled bytes each pass, overlapped
                        off = st_slot + h * slot_strides[0] + o * slot_strides[n_ax + 2] + \
                            wi_slot[wi]
                        h_pre = host_seconds(host[0, off], hw[h])
                        h_dec = micro * host_seconds(host[1, off], hw[h])
                        first = max(pre_path, h_pre) + (micro - 1.0) * max(pre_stage, h_pre)
                        pa = ctx[o, 0, src]
                        sg = ctx[o, 1, src]
                        oc = ctx[o, 2, src]
                        om = ctx[o, 3, src]
                        idx = ((h * n_struct + st) * nout + o) * n_whatif + wi
                        ttft[idx] = first
                        step = max(pa, micro * sg)
                        tpot[idx] = max(step, h_dec) / per_step
                        bound[idx] = winner(oc, om, r_n) if step >= h_dec else BOUND_HOST


@njit(cache=True, error_model="numpy")
def explain_point(hw_h, rates_h, program_pre, n_pre, program_dec, n_dec, v, quant, out_tokens,
                  sc, dtype_bytes, dtype_bits, rows_pre, rows_dec):
    """One configuration's per-op times, by the same pieces as :func:`evaluate_grid`.

    ``v``: its values of ``layout.KERNEL_AXES``, ``quant``: its quant recipe's row, ``sc``:
    its values of ``layout.WHAT_IF_AXES``.
    Fills ``rows_pre[n_pre, EXPLAIN_FIELDS]`` and ``rows_dec[n_dec, EXPLAIN_FIELDS]``: per
    op its FLOPs, bytes, network bytes (decode: at the mean context), compute, memory and
    network seconds (decode: at the mean context), kernel latency, link (0 scale-up, 1
    scale-out), its time [s] (decode: the exact mean over the steps, as the sweep averages
    it), and its run counts along the pipeline path and in the bottleneck stage. Returns
    (ttft, tpot, micro-batches, prefill path, prefill stage, decode path, decode stage).
    """
    micro, seqs, w, a, k, _ = point_setup(v)
    s = v[K_INPUT]
    n_max = max(n_pre, n_dec)
    costs = np.empty((n_max, _N_COSTS))
    times = np.empty((n_max, _N_TIMES))
    rcs, rms = 1.0 / sc[W_COMPUTE], 1.0 / sc[W_MEMORY]
    rsu, rso = 1.0 / sc[W_SCALEUP], 1.0 / sc[W_SCALEOUT]
    steps = max(float(out_tokens) - 1.0, 1.0)
    mean_ctx = s + 1.0 + (steps - 1.0) * 0.5
    result = np.zeros(4)
    for phase in range(2):
        program = program_pre if phase == PREFILL else program_dec
        n = n_pre if phase == PREFILL else n_dec
        rows = rows_pre if phase == PREFILL else rows_dec
        _phase_costs(program, n, phase, v, seqs, w, a, k, quant, dtype_bytes, dtype_bits,
                     costs)
        _fill_times(costs, n, rates_h, hw_h, times)
        ctx = mean_ctx if phase == DECODE else 0.0
        path = 0.0
        stage = 0.0
        for i in range(n):
            grows = times[i, _TC1] != 0.0 or times[i, _TM1] != 0.0
            c = min(ctx, times[i, _TWIN]) if times[i, _TWIN] > 0.0 else ctx
            fc, fm = rcs, rms
            if phase == DECODE and grows:
                fc, fm = _ctx_factors(costs, i, hw_h, s, steps)
                fc *= rcs
                fm *= rms
            tc = (times[i, _TC0] + times[i, _TC1] * c) * fc
            tm = (times[i, _TM0] + times[i, _TM1] * c) * fm
            tn = times[i, _TNB] * rsu + times[i, _TNO] * rso + times[i, _TNL]
            if phase == DECODE and grows:
                top = ctx_op_time(times, i, fc, fm, s, steps)[0]
            else:
                top = _op_time(times, i, rcs, rms, rsu, rso)
            rows[i, 0] = costs[i, _FLOPS0] + costs[i, _FLOPS1] * c
            rows[i, 1] = costs[i, _BYTES0] + costs[i, _BYTES1] * c
            rows[i, 2] = costs[i, _NET]
            rows[i, 3] = tc
            rows[i, 4] = tm
            rows[i, 5] = tn
            rows[i, 6] = times[i, _TLAT]
            rows[i, 7] = times[i, _LINK]
            rows[i, 8] = top
            rows[i, 9] = times[i, _MPATH]
            rows[i, 10] = times[i, _MSTAGE]
            path += times[i, _MPATH] * top
            stage += times[i, _MSTAGE] * top
        result[2 * phase] = path
        result[2 * phase + 1] = stage
    ttft = result[0] + (micro - 1.0) * result[1]
    # a decode step yields expected_tokens with speculative decoding (1 without)
    tpot = max(result[2], micro * result[3]) / expected_tokens(v[K_GAMMA], v[K_ALPHA])
    return ttft, tpot, micro, result[0], result[1], result[2], result[3]


EXPLAIN_FIELDS = 11


@njit(cache=True, error_model="numpy")
def explain_serving(hw_h, rates_h, program_pre, n_pre, program_dec, n_dec, engine, v, quant,
                    out_tokens, sc, slot, dtype_bytes, dtype_bits, op_dec, op_mix,
                    host_bytes=0.0):
    """One configuration under continuous serving, by the pieces :func:`_continuous` uses:
    per-op seconds per run of the decode-only iteration into ``op_dec[:, 0]`` and of the
    prefill-carrying one into ``op_mix[:, 0]`` (rows: decode ops, then prefill-only ops, as
    ``serving.iteration_seconds``), runs per iteration along the pipeline path into
    ``[:, 1]``; ``host_bytes``: what each pass streams over the host link (offload: an
    iteration lasts at least micro-batches x its seconds). Returns (ttft, tpot,
    completions per second, running, decoding, completions per iteration, share of
    prefill-carrying iterations, prompts per such iteration, chunks per prompt, prefill
    iterations of a request, decode-only and prefill-carrying iteration seconds with the
    engine's iteration overhead, micro-batches, the two iterations' device seconds
    without the host link's wait or the overhead, the prefill-carrying iteration's wait
    for its eager launches beyond its device seconds, ``serving.eager_device``, the
    admission interval, TTFT less the request overhead and the request's own prefill
    iterations: its waits, and the decode-only iteration's eager-launch wait: 0 where the
    engine graphs decode)."""
    micro, seqs, w, a, k, _ = point_setup(v)
    t, p, e, adp = v[K_TP], v[K_PP], v[K_EP], v[K_ADP]
    s = v[K_INPUT]
    width = max(n_pre, n_dec)
    u_dec, u_pre, partner, shared, window = structure_units(
        program_dec, n_dec, program_pre, n_pre, width, t, p, e, adp, w, a, k, quant,
        dtype_bytes, dtype_bits, v[K_IMBALANCE], v[K_GAMMA], v[K_LORA_RANK],
        v[K_LORA_ADAPTERS], v[K_CP])
    vt_dec = np.empty((width, N_VTIMES))
    vt_pre = np.empty((width, N_VTIMES))
    unit_times(u_dec, n_dec, rates_h, hw_h, vt_dec)
    unit_times(u_pre, n_pre, rates_h, hw_h, vt_pre)
    new, past, qv, per_step, n_it, n = speculation(s, out_tokens, v[K_PREFIX], v[K_GAMMA],
                                                   v[K_ALPHA])
    interval = admission_interval(v[K_ADMIT], engine)
    r, r_d, lam, f, prompts, chunks, prefill_iters = steady_state(
        v[K_BATCH], slot, new, 1.0 + n_it, v[K_BUDGET], engine, interval, adp)
    micro = min(p, r)
    share = 1.0 / (micro * adp)
    c_dec = np.zeros(N_COMP)
    c_mix = np.zeros(N_COMP)
    mixed = engine[EN_MIXED] > 0.0
    d_dec = compositions(c_dec, c_mix, r, r_d, f, prompts, chunks, s, n, window, share, mixed,
                         new, past, qv, v[K_BEAMS], v[K_CP])
    rcs, rms = 1.0 / sc[W_COMPUTE], 1.0 / sc[W_MEMORY]
    rsu, rso = 1.0 / sc[W_SCALEUP], 1.0 / sc[W_SCALEOUT]
    acc = np.zeros(3)
    it = engine[EN_ITERATION_OVERHEAD_S]
    t_dec = 0.0
    op_dec[:] = 0.0
    op_mix[:] = 0.0
    seconds = np.zeros(n_dec + n_pre)
    ht = micro * host_seconds(host_bytes, hw_h)
    dev_dec = 0.0
    eager_dec = 0.0
    if d_dec > 0.0:
        dev_dec = iteration_seconds(vt_dec, n_dec, program_dec, vt_pre, n_pre, program_pre,
                                    partner, shared, c_dec, micro, rcs, rms, rsu, rso, t, p,
                                    e, adp, acc, seconds, hw_h)
        eager_dec = iteration_seconds(vt_dec, n_dec, program_dec, vt_pre, n_pre, program_pre,
                                      partner, shared, c_dec, micro, rcs, rms, rsu, rso, t, p,
                                      e, adp, acc, seconds, hw_h, 0.0,
                                      engine[EN_EAGER_OP_S] * engine[EN_EAGER_DECODE])
        t_dec = max(eager_dec, ht) + it
        op_dec[:n_dec + n_pre, 0] = seconds
    dev_mix = iteration_seconds(vt_dec, n_dec, program_dec, vt_pre, n_pre, program_pre,
                                partner, shared, c_mix, micro, rcs, rms, rsu, rso, t, p, e,
                                adp, acc, seconds, hw_h)
    eager_mix = iteration_seconds(vt_dec, n_dec, program_dec, vt_pre, n_pre, program_pre,
                                  partner, shared, c_mix, micro, rcs, rms, rsu, rso, t, p, e,
                                  adp, acc, seconds, hw_h, engine[EN_EAGER_OP_S])
    t_mix = max(eager_mix, ht) + it
    op_mix[:n_dec + n_pre, 0] = seconds
    for i in range(n_dec):
        op_dec[i, 1] = vt_dec[i, V_PATH]
        op_mix[i, 1] = vt_dec[i, V_PATH]
    for j in range(n_pre):
        op_mix[n_dec + j, 1] = vt_pre[j, V_PATH] if not shared[j] else 0.0
    first, seen, rate = serve_times(t_dec, t_mix, v[K_BATCH], r, lam, f, prompts, chunks,
                                    prefill_iters, n_it, mixed, engine[EN_REQUEST_OVERHEAD_S],
                                    interval, engine[EN_OVERLAP])
    # what a request waits beyond the engine's request overhead and its own prefill
    # iterations: arrival phase, admission interval, the iteration an overlap scheduler
    # had formed, KV-capacity queue (a difference of
    # sums: never below 0, where there is no wait it may round to -1e-18)
    own = serve_weights(r, f, prompts, chunks, prefill_iters, n_it, mixed)[0] * t_mix
    wait = max(first - engine[EN_REQUEST_OVERHEAD_S] - own, 0.0)
    return (first, seen / per_step, rate, r, r_d, lam, f, prompts, chunks, prefill_iters,
            t_dec, t_mix, micro, dev_dec, dev_mix, eager_mix - dev_mix, interval, wait,
            eager_dec - dev_dec)
