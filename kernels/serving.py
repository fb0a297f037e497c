"""Continuous batching in closed form: the steady state of an iteration-level scheduler.

An engine iteration runs one decode token for every running request past its prefill plus
up to the token budget's remainder of prompt prefill (chunked prefill), reading the weights
once for all its tokens; a prompt chunk attends causally over its own already-processed
context. ``batch`` clients each keep one request in flight (a closed loop, as benchmark
clients at fixed concurrency do). The steady state, per replica (README "Continuous
serving" states every assumption; ``kernels/simulate.py`` steps the same scheduler
event by event and the tests check this closed form against it):

  R   = min(batch, slots)          running requests (slots: what KV memory and the engine
                                   admit); batch - R wait for admission
  n   = output_tokens - 1          decode iterations per request
  k   = ceil(S / budget)           prefill iterations per request (1 without chunking)
  R_d = R n / (n + k)              requests decoding (Little's law in iterations)
  lam = R_d / n                    completions per iteration
  f   = min(1, lam k)              share of iterations that carry prefill
  if lam S exceeds the prefill budget (budget - R_d when mixed): prefill-saturated,
  lam = budget / (S + n) and every iteration carries prefill
  tpot = (1 - f') t_decode + f' t_mixed             (mixed: decodes ride every iteration;
                                                     f' = f (R-1)/R: the others' prefill)
  separate prefill iterations (prefill first), pi prompts' worth each: a request's life is
  n decode iterations and the R / pi prefill iterations of all requests,
  tpot = t_decode + (R / pi - k) t_prefill / n
  ttft = request overhead + admission wait (batch - R) / throughput
         + prefill iterations of the request (R_p / lam, = k unsaturated) + half an
         iteration of arrival offset when a request overhead shifts arrivals
         + (interval - 1) / 2 iterations when the scheduler admits new requests only
         every ``interval`` iterations (the admission_interval axis)
         + one iteration with overlap scheduling (the batch after the arrival was formed
         before it)

Costs: each operator's FLOPs and bytes are linear in the iteration's tokens (weights once,
per token, per touched sequence, per attended context position), taken from
:func:`formulas.op_cost` at 0 and 1 tokens; MoE experts (nonlinear in tokens through the
distinct experts hit) call ``op_cost`` at the iteration's token count. The decode program
prices the decode tokens; prompt chunks run through the operators the prefill program
shares with it in the same kernel (one weight read), and through the prefill-only
operators (MLA's decompressed attention) on their own.
"""
import math

import numpy as np
from numba import njit

from .collectives import collective_seconds, domain_split
from .efficiency import has_curve, op_curves, time_factor, wo_curves
from .formulas import (causal_pairs, converts_nothing, dequant_tiles, expected_tokens,
                       lora_cost, moe_cost, moe_gemms, op_cost,
                       op_precisions, prompt_split, run_counts)
from .layout import (DECODE, EN_ADMISSION_INTERVAL, EN_CHUNKED, FP32, EN_MAX_BATCHED_TOKENS,
                     EN_MIXED, EN_PER_RANK, HW_COMPUTE_EFF, HW_KERNEL_LATENCY_S,
                     HW_MEMORY_BYTES_PER_S, HW_MEMORY_EFF,
                     HW_NETWORK_EFF, HW_SCALEOUT_BYTES_PER_S, HW_SCALEOUT_LATENCY_S,
                     HW_SCALEUP_BYTES_PER_S, HW_SCALEUP_DOMAIN, HW_SCALEUP_LATENCY_S, LORA,
                     MOE,
                     DRAFT_DECODE, OP_DRAFT, OP_FIELDS, OP_KIND, OP_SPAN, OP_TOKENS, PREFILL, SPAN_MOE,
                     TOKENS_LAST)

# per-op unit costs [FLOP, bytes] (then seconds, see unit_times)
(U_T, U_X, U_B0, U_BT, U_BSEQ, U_BX, U_NT, U_GROUP, U_SPAN, U_CDT, U_PATH, U_STAGE, U_WIN,
 U_MOE, U_LAST, U_SCALE, U_WORKS, U_KIND, U_DQ, U_IMB, U_WB, U_AB, U_LR, U_LN) = range(24)
N_UNITS = 24
# U_MOE / V_MOE: ops priced per iteration (nonlinear in its tokens): 1 routed experts
# (distinct experts hit), 2 LoRA (distinct adapters used; U_LR, U_LN: rank and adapters)
PER_ITERATION_MOE, PER_ITERATION_LORA = 1.0, 2.0
# per-op unit times [s]: compute per token and per context, memory once / per token / per
# sequence / per context, the collective's message bytes per token, kernel latency,
# counts; the collective's kind, group and span with the links' seconds per byte and per
# step (kernels/collectives.py prices a message of any size); an MoE op's weight and
# activation bytes per element (its class's precisions: it is priced per iteration)
(V_CT, V_CX, V_M0, V_MT, V_MSEQ, V_MX, V_NT, V_UP, V_OUT, V_LAT, V_PATH, V_STAGE, V_WIN,
 V_MOE, V_LAST, V_SCALE, V_RATE, V_MEM, V_KIND, V_GROUP, V_SPAN, V_DOMAIN, V_RUP, V_LUP,
 V_ROUT, V_LOUT, V_DQ, V_RATE32, V_IMB, V_CCURVE, V_MCURVE, V_NCURVE, V_WB, V_AB, V_LR,
 V_LN) = range(36)
N_VTIMES = 36
# composition of one micro-batch of one attention-DP group in one iteration
# (C_QDEC, C_QCTX, C_QCTXW: the decode tokens and attended pairs of the target's ops, which
# verify q = spec_tokens + 1 tokens per decoding request; C_DEC, C_CTX: one token each, as
# the draft ops and the cached-context reads see them)
(C_DEC, C_CTX, C_CTXW, C_PRE, C_PROMPTS, C_PAIRS, C_PAIRSW, C_READ, C_READW, C_TOUCHED,
 C_SAMPLED, C_QDEC, C_QCTX, C_QCTXW) = range(14)
N_COMP = 14


@njit(cache=True)
def unit_costs(program, n_op, t, p, e, adp, w, a, k, quant, dtype_bytes, dtype_bits, imb, gamma,
               out, lora_r=0.0, lora_n=1.0, cp=1.0):
    """Each op's cost as a linear function of an iteration's tokens into ``out[n_op]``, at
    its class's precisions under the quant recipe row ``quant`` (the grid's ``w``, ``a``,
    ``k`` codes where the recipe names none, :func:`formulas.op_precisions`)."""
    for i in range(n_op):
        op = program[i]
        wc, ac, kc, cdt = op_precisions(op, quant, w, a, k, dtype_bits)
        wb = dtype_bytes[wc]
        ab = dtype_bytes[ac]
        kb = dtype_bytes[kc]
        moe_span = int(op[OP_SPAN]) == SPAN_MOE
        tt = t * adp if moe_span else t
        scale = adp if moe_span else 1.0  # an attention group's token is adp tokens here
        z = op_cost(op, DECODE, 0.0, 1.0, tt, p, e, wb, ab, kb, imb, 1.0, 0.0, lora_r, lora_n,
                    cp)
        one = op_cost(op, DECODE, scale, 1.0, tt, p, e, wb, ab, kb, imb, 1.0, 0.0, lora_r,
                      lora_n, cp)
        pre1 = op_cost(op, PREFILL, scale, 1.0, tt, p, e, wb, ab, kb, imb, 1.0, 0.0, 0.0,
                       1.0, cp)
        pre2 = op_cost(op, PREFILL, scale, 2.0, tt, p, e, wb, ab, kb, imb, 1.0, 0.0, 0.0,
                       1.0, cp)
        last = int(op[OP_TOKENS]) == TOKENS_LAST
        out[i, U_T] = one[0] - z[0]
        out[i, U_X] = one[1]
        out[i, U_B0] = z[2]
        per_seq = one[2] - z[2]
        out[i, U_BT] = per_seq if last else pre2[2] - pre1[2]
        out[i, U_BSEQ] = 0.0 if last else per_seq - out[i, U_BT]
        out[i, U_BX] = one[3]
        out[i, U_NT] = one[4] - z[4]
        out[i, U_GROUP] = one[5]
        out[i, U_KIND] = op[OP_KIND]
        # weight-only dequantization per token tile (formulas.DEQUANT_TILE_TOKENS)
        out[i, U_DQ] = one[8] / max(dequant_tiles(scale), 1.0)
        out[i, U_IMB] = imb  # MoE ops price their busiest group per iteration with it
        out[i, U_SPAN] = one[6]
        out[i, U_WIN] = one[7]
        kind = int(op[OP_KIND])
        out[i, U_MOE] = PER_ITERATION_MOE if kind == MOE else (
            PER_ITERATION_LORA if kind == LORA else 0.0)
        out[i, U_LR] = lora_r
        out[i, U_LN] = lora_n
        out[i, U_LAST] = 1.0 if last else 0.0
        out[i, U_SCALE] = scale
        out[i, U_WORKS] = 1.0 if (one[0] > 0.0 or one[1] > 0.0 or one[2] > 0.0
                                  or one[3] > 0.0 or (one[5] > 1.0 and one[4] > 0.0)) else 0.0
        out[i, U_CDT] = cdt
        out[i, U_WB] = wb
        out[i, U_AB] = ab
        out[i, U_PATH], out[i, U_STAGE] = run_counts(op, p, e, adp, gamma)
        if converts_nothing(op, wb, ab):  # an input quantization with nothing to do
            out[i, U_PATH] = 0.0
            out[i, U_STAGE] = 0.0


@njit(cache=True)
def unit_times(units, n_op, rates_h, hw_h, out):
    """:func:`unit_costs` in seconds on one hardware (unscaled by the what-ifs)."""
    ce = hw_h[HW_COMPUTE_EFF]
    mem = hw_h[HW_MEMORY_BYTES_PER_S] * hw_h[HW_MEMORY_EFF]
    r_up = 1.0 / (hw_h[HW_SCALEUP_BYTES_PER_S] * hw_h[HW_NETWORK_EFF])
    r_out = 1.0 / (hw_h[HW_SCALEOUT_BYTES_PER_S] * hw_h[HW_NETWORK_EFF])
    domain = hw_h[HW_SCALEUP_DOMAIN]
    for i in range(n_op):
        rate = rates_h[int(units[i, U_CDT])] * ce
        out[i, V_CT] = units[i, U_T] / rate
        out[i, V_CX] = units[i, U_X] / rate
        out[i, V_M0] = units[i, U_B0] / mem
        out[i, V_MT] = units[i, U_BT] / mem
        out[i, V_MSEQ] = units[i, U_BSEQ] / mem
        out[i, V_MX] = units[i, U_BX] / mem
        out[i, V_NT] = units[i, U_NT]
        group = units[i, U_GROUP]
        d, g = domain_split(group, units[i, U_SPAN], domain)
        talks = group > 1.0 and units[i, U_NT] > 0.0
        # a pipeline send inside the domain has d = 2: the domain_split case needs no P2P
        # exception (across domains d = 1)
        out[i, V_UP] = 1.0 if talks and d > 1.0 else 0.0
        out[i, V_OUT] = 1.0 if talks and g > 1.0 else 0.0
        out[i, V_LAT] = hw_h[HW_KERNEL_LATENCY_S] if units[i, U_WORKS] > 0.0 else 0.0
        out[i, V_PATH] = units[i, U_PATH]
        out[i, V_STAGE] = units[i, U_STAGE]
        out[i, V_WIN] = units[i, U_WIN]
        out[i, V_MOE] = units[i, U_MOE]
        out[i, V_LAST] = units[i, U_LAST]
        out[i, V_SCALE] = units[i, U_SCALE]
        out[i, V_RATE] = 1.0 / rate
        out[i, V_MEM] = 1.0 / mem
        out[i, V_DQ] = units[i, U_DQ] / (rates_h[FP32] * ce)
        out[i, V_RATE32] = 1.0 / (rates_h[FP32] * ce)
        out[i, V_IMB] = units[i, U_IMB]
        out[i, V_WB] = units[i, U_WB]
        out[i, V_AB] = units[i, U_AB]
        out[i, V_LR] = units[i, U_LR]
        out[i, V_LN] = units[i, U_LN]
        out[i, V_KIND] = units[i, U_KIND]
        # curve codes only where this hardware carries the curve (-1: the scalar applies,
        # and the iterations skip the curve lookup)
        wo = units[i, U_WB] < units[i, U_AB]  # weights narrower than the activations
        cc, cm, cn = op_curves(int(units[i, U_KIND]), hw_h, int(units[i, U_CDT]), wo)
        if wo and int(units[i, U_KIND]) == MOE and wo_curves(hw_h):
            # the weight-only experts' own curves hold the fused kernel's dequantization
            out[i, V_DQ] = 0.0
            out[i, V_RATE32] = 0.0
        out[i, V_CCURVE] = cc if has_curve(hw_h, cc) else -1
        out[i, V_MCURVE] = cm if has_curve(hw_h, cm) else -1
        out[i, V_NCURVE] = cn if has_curve(hw_h, cn) else -1
        out[i, V_GROUP] = group
        out[i, V_SPAN] = units[i, U_SPAN]
        out[i, V_DOMAIN] = domain
        out[i, V_RUP] = r_up
        out[i, V_LUP] = hw_h[HW_SCALEUP_LATENCY_S]
        out[i, V_ROUT] = r_out
        out[i, V_LOUT] = hw_h[HW_SCALEOUT_LATENCY_S]


@njit(cache=True, inline="always")
def network_seconds(vt, i, tokens, hw_h):
    """(scale-up, scale-out, latency) seconds of op ``i``'s collective over ``tokens``
    tokens (:func:`kernels.collectives.collective_seconds`) on hardware row ``hw_h``
    (its network efficiency curve, ``kernels/efficiency.py``)."""
    msg = vt[i, V_NT] * tokens
    fn = 1.0
    if vt[i, V_NCURVE] >= 0.0:
        fn = time_factor(hw_h, int(vt[i, V_NCURVE]), msg, hw_h[HW_NETWORK_EFF])
    return collective_seconds(int(vt[i, V_KIND]), vt[i, V_GROUP], vt[i, V_SPAN], msg,
                              vt[i, V_DOMAIN], vt[i, V_RUP] * fn, vt[i, V_LUP],
                              vt[i, V_ROUT] * fn, vt[i, V_LOUT])


@njit(cache=True, inline="always")
def _compute_memory(vt, i, tok, seqs, pairs, reads, hw_h):
    """Unscaled (compute, memory) seconds of non-MoE op ``i`` for an iteration part, each
    at the efficiency of its work there (``kernels/efficiency.py``)."""
    tc = vt[i, V_CT] * tok + vt[i, V_CX] * pairs
    tm = vt[i, V_M0] + vt[i, V_MT] * tok + vt[i, V_MSEQ] * seqs + vt[i, V_MX] * reads
    if vt[i, V_CCURVE] >= 0.0:
        tc *= time_factor(hw_h, int(vt[i, V_CCURVE]), tc / vt[i, V_RATE],
                          hw_h[HW_COMPUTE_EFF])
    if vt[i, V_MCURVE] >= 0.0:
        tm *= time_factor(hw_h, int(vt[i, V_MCURVE]), tm / vt[i, V_MEM], hw_h[HW_MEMORY_EFF])
    if vt[i, V_DQ] != 0.0:
        tc += vt[i, V_DQ] * dequant_tiles(tok * vt[i, V_SCALE])
    return tc, tm


@njit(cache=True)
def _moe_seconds(vt, i, program, tokens, t, p, e, adp, hw_h):
    """Unscaled (compute, memory) seconds of MoE op ``i`` for ``tokens`` routed tokens
    (``formulas.moe_cost`` at the op's weight and activation bytes), each at the efficiency
    of its work."""
    c = moe_cost(program[i], tokens, t * adp, e, vt[i, V_WB], vt[i, V_AB], vt[i, V_IMB])
    # compute at one expert GEMM's efficiency (formulas.moe_gemms), memory at the total's
    fc = time_factor(hw_h, int(vt[i, V_CCURVE]), c[0] / moe_gemms(program[i], tokens, e),
                     hw_h[HW_COMPUTE_EFF])
    fm = time_factor(hw_h, int(vt[i, V_MCURVE]), c[1], hw_h[HW_MEMORY_EFF])
    return c[0] * vt[i, V_RATE] * fc + c[2] * vt[i, V_RATE32], c[1] * vt[i, V_MEM] * fm


@njit(cache=True)
def _lora_seconds(vt, i, program, tokens, seqs, t, hw_h):
    """Unscaled (compute, memory) seconds of LoRA op ``i`` for ``tokens`` tokens of
    ``seqs`` sequences (``formulas.lora_cost``: the distinct adapters they use), each at
    the efficiency of its work."""
    f, b = lora_cost(program[i], tokens, seqs, t, vt[i, V_AB], vt[i, V_LR], vt[i, V_LN])
    fc = time_factor(hw_h, int(vt[i, V_CCURVE]), f, hw_h[HW_COMPUTE_EFF])
    fm = time_factor(hw_h, int(vt[i, V_MCURVE]), b, hw_h[HW_MEMORY_EFF])
    return f * vt[i, V_RATE] * fc, b * vt[i, V_MEM] * fm


@njit(cache=True)
def match_ops(prog_dec, n_dec, prog_pre, n_pre, partner, shared):
    """``partner[i]``: the prefill op identical to decode op ``i`` (-1: none);
    ``shared[j]``: prefill op ``j`` has a decode partner (runs in the same kernel)."""
    for j in range(n_pre):
        shared[j] = False
    for i in range(n_dec):
        partner[i] = -1
        for j in range(n_pre):
            if shared[j]:
                continue
            same = True
            for f in range(OP_FIELDS):
                if prog_dec[i, f] != prog_pre[j, f]:
                    same = False
                    break
            if same:
                partner[i] = j
                shared[j] = True
                break


@njit(cache=True)
def mean_context(s, n, window):
    """Mean over decode steps j = 1..n of the positions attended, min(s + j, window)."""
    if n <= 0.0:
        return 0.0
    if window <= 0.0 or s + n <= window:
        return s + (n + 1.0) * 0.5
    if s + 1.0 >= window:
        return window
    a = window - s  # steps still below the window
    return (a * s + a * (a + 1.0) * 0.5 + (n - a) * window) / n


@njit(cache=True)
def chunk_reads(s, k, window, past=0.0):
    """Cached positions the k chunks of an s-token prompt read, summed: chunk j starts at
    past + j s / k (``past``: a cached prefix) and reads min(start, window) earlier
    positions."""
    c = s / k
    if past > 0.0:
        if window <= 0.0 or past + (k - 1.0) * c <= window:
            return k * past + c * k * (k - 1.0) * 0.5
        if past >= window:
            return k * window
        m = math.ceil((window - past) / c)  # chunks starting below the window
        return m * past + c * m * (m - 1.0) * 0.5 + (k - m) * window
    if window <= 0.0 or (k - 1.0) * c <= window:
        return c * k * (k - 1.0) * 0.5
    m = math.ceil(window / c)  # chunks starting below the window
    return c * m * (m - 1.0) * 0.5 + (k - m) * window


@njit(cache=True)
def composition(out, dec, s, n, prompts, k, touched, sampled, window, share, new, past, q,
                beams, cp=1.0):
    """One micro-batch of one attention group's share ``share`` of an iteration: ``dec``
    decoding requests of ``beams`` sequences each (beam search; 1: none), each sequence
    verifying ``q`` tokens (1 without speculative decoding),
    ``prompts`` prompts' worth of prefill in ``k`` chunks each: the ``new`` tokens of an
    ``s``-token prompt after its ``past`` cached ones (prefix caching). Context parallelism
    (``cp`` devices per sequence): a device computes 1/cp of the prefill (tokens, pairs,
    reads) and attends 1/cp of every decoding context; the decode tokens themselves, the
    sequences touched and the tokens sampled are every device's."""
    seqs = dec * beams  # the decoding sequences
    out[C_DEC] = seqs * share
    out[C_CTX] = seqs * share * mean_context(s, n, 0.0)
    out[C_CTXW] = seqs * share * mean_context(s, n, window)
    intra = q * (q - 1.0) * 0.5  # the verified tokens' causal pairs among themselves
    out[C_QDEC] = seqs * share * q
    out[C_QCTX] = seqs * share * (q * mean_context(s, n, 0.0) + intra)
    out[C_QCTXW] = seqs * share * (q * mean_context(s, n, window) + intra)
    out[C_PRE] = prompts * new * share
    out[C_PROMPTS] = prompts * share
    out[C_PAIRS] = prompts * share * (causal_pairs(past + new, 0.0) - causal_pairs(past, 0.0))
    out[C_PAIRSW] = prompts * share * (causal_pairs(past + new, window)
                                       - causal_pairs(past, window))
    out[C_READ] = prompts * share * chunk_reads(new, k, 0.0, past)
    out[C_READW] = prompts * share * chunk_reads(new, k, window, past)
    out[C_TOUCHED] = (touched + dec * (beams - 1.0)) * share
    out[C_SAMPLED] = (sampled + dec * (beams * q - 1.0)) * share
    if cp > 1.0:
        for c in (C_CTX, C_CTXW, C_QCTX, C_QCTXW, C_PRE, C_PAIRS, C_PAIRSW, C_READ, C_READW):
            out[c] /= cp


@njit(cache=True)
def _op_seconds(vt, i, program, tokens, seqs, sampled, ctx, pairs, reads, rcs, rms, rsu, rso,
                t, p, e, adp, acc, hw_h):
    """Seconds of op ``i`` for an iteration part; adds its roofline winner's share to
    ``acc`` (compute, memory, network)."""
    tok = sampled if vt[i, V_LAST] > 0.0 else tokens
    if vt[i, V_MOE] == PER_ITERATION_LORA:
        tc, tm = _lora_seconds(vt, i, program, tok, seqs, t, hw_h)
        tc *= rcs
        tm *= rms
        tn = 0.0
    elif vt[i, V_MOE] > 0.0:
        tc, tm = _moe_seconds(vt, i, program, tok * vt[i, V_SCALE], t, p, e, adp, hw_h)
        tc *= rcs
        tm *= rms
        tn = 0.0  # experts compute and read; their dispatch and combine are ops of their own
    else:
        tc, tm = _compute_memory(vt, i, tok, seqs, pairs, reads, hw_h)
        tc *= rcs
        tm *= rms
        tn = 0.0
        if vt[i, V_GROUP] > 1.0:
            up, out, lat = network_seconds(vt, i, tok, hw_h)
            tn = up * rsu + out * rso + lat
    if tc >= tm and tc >= tn:
        top = tc + vt[i, V_LAT]
        acc[0] += vt[i, V_PATH] * top
    elif tm >= tn:
        top = tm + vt[i, V_LAT]
        acc[1] += vt[i, V_PATH] * top
    else:
        top = tn + vt[i, V_LAT]
        acc[2] += vt[i, V_PATH] * top
    return top


@njit(cache=True, inline="always")
def eager_device(path, stage, micro, n_path, n_stage, eager_s):
    """Device seconds max(path, micro x stage) of an iteration that runs eagerly (without
    a CUDA graph): the host launches its operators one by one, ``eager_s`` seconds each
    (the engine's ``eager_op_s``), and the device waits when it runs out of launched work,
    so each side lasts at least its launches (``n_path`` along the pipeline path,
    ``n_stage`` in the bottleneck stage) times ``eager_s``. Engines capture CUDA graphs
    for decode-only iterations only; prefill-carrying ones run eagerly (README
    "Continuous serving"). With ``eager_s`` = 0 this is max(path, micro x stage)."""
    return max(max(path, n_path * eager_s), micro * max(stage, n_stage * eager_s))


@njit(cache=True)
def iteration_seconds(vt_dec, n_dec, prog_dec, vt_pre, n_pre, prog_pre, partner, shared, comp,
                      micro, rcs, rms, rsu, rso, t, p, e, adp, acc, op_s, hw_h,
                      eager_s=0.0, eager_decode_s=0.0):
    """Forward time of one iteration of composition ``comp`` (:func:`composition`, one
    micro-batch): max(path, micro * stage) as a static decode step; when it carries
    prefill, at least its operator launches times ``eager_s`` (:func:`eager_device`), a
    decode-only one at least its launches times ``eager_decode_s`` (0: graphed).
    Decode ops price the
    decode tokens and, where the prefill program shares the op, the prompt chunk too.
    ``op_s[i]`` gets decode op i's seconds per run, ``op_s[n_dec + j]`` prefill-only op j's
    (0 where an op does not run in this iteration). The kernel prices many what-if points
    at once with :func:`iteration_terms`; this one-point form serves ``dse explain`` and
    the simulator's per-iteration physics in the tests."""
    op_s[:n_dec + n_pre] = 0.0
    path = 0.0
    stage = 0.0
    n_path = 0.0
    n_stage = 0.0
    dec = comp[C_DEC]
    pre = comp[C_PRE]
    for i in range(n_dec):
        if vt_dec[i, V_PATH] == 0.0 and vt_dec[i, V_STAGE] == 0.0:
            continue
        windowed = vt_dec[i, V_WIN] > 0.0
        ctx = comp[C_CTXW] if windowed else comp[C_CTX]
        draft = int(prog_dec[i, OP_DRAFT]) == DRAFT_DECODE  # one token per request
        qdec = dec if draft else comp[C_QDEC]
        qctx = ctx if draft else comp[C_QCTXW] if windowed else comp[C_QCTX]
        if partner[i] >= 0 and pre > 0.0:
            tokens = qdec + pre
            pairs = qctx + (comp[C_PAIRSW] if windowed else comp[C_PAIRS])
            reads = ctx + (comp[C_READW] if windowed else comp[C_READ])
            seqs = comp[C_TOUCHED]
            sampled = comp[C_SAMPLED]
        else:
            if dec <= 0.0:
                continue
            tokens = qdec
            pairs = qctx
            reads = ctx
            seqs = dec
            sampled = qdec
        top = _op_seconds(vt_dec, i, prog_dec, tokens, seqs, sampled, ctx, pairs, reads,
                          rcs, rms, rsu, rso, t, p, e, adp, acc, hw_h)
        op_s[i] = top
        path += vt_dec[i, V_PATH] * top
        stage += vt_dec[i, V_STAGE] * top
        if top > 0.0:  # launched (:func:`launches`)
            n_path += vt_dec[i, V_PATH]
            n_stage += vt_dec[i, V_STAGE]
    if pre > 0.0:
        for j in range(n_pre):
            if shared[j] or (vt_pre[j, V_PATH] == 0.0 and vt_pre[j, V_STAGE] == 0.0):
                continue
            windowed = vt_pre[j, V_WIN] > 0.0
            pairs = comp[C_PAIRSW] if windowed else comp[C_PAIRS]
            reads = comp[C_READW] if windowed else comp[C_READ]
            top = _op_seconds(vt_pre, j, prog_pre, pre, comp[C_TOUCHED] - dec,
                              comp[C_PROMPTS], 0.0, pairs, reads, rcs, rms, rsu, rso,
                              t, p, e, adp, acc, hw_h)
            op_s[n_dec + j] = top
            path += vt_pre[j, V_PATH] * top
            stage += vt_pre[j, V_STAGE] * top
            if top > 0.0:
                n_path += vt_pre[j, V_PATH]
                n_stage += vt_pre[j, V_STAGE]
        return eager_device(path, stage, micro, n_path, n_stage, eager_s)
    return eager_device(path, stage, micro, n_path, n_stage, eager_decode_s)


@njit(cache=True)
def speculation(s, out_tokens, prefix, gamma, alpha):
    """What prefix caching and speculative decoding change for a request: (prompt tokens
    computed, cached, tokens verified per decode iteration q, expected tokens per decode
    iteration, decode iterations per request n / expected, decode tokens n)."""
    new, past = prompt_split(s, prefix)
    per_step = expected_tokens(gamma, alpha)
    n = out_tokens - 1.0
    return new, past, gamma + 1.0, per_step, n / per_step, n


@njit(cache=True, inline="always")
def admission_interval(value, engine):
    """A point's admission interval: the ``admission_interval`` axis value, 0 meaning the
    engine's default."""
    return value if value > 0.0 else engine[EN_ADMISSION_INTERVAL]


@njit(cache=True)
def rank_factor(engine, adp):
    """How many of the engine's limits (token budget, running cap) one replica holds: its
    attention-DP ranks ``adp`` when each rank schedules on its own (``EN_PER_RANK``), else
    1 (one scheduler for the replica)."""
    return adp if engine[EN_PER_RANK] > 0.0 else 1.0


@njit(cache=True)
def steady_state(batch, slots, s, out_tokens, budget, engine, interval=1.0, adp=1.0):
    """The scheduler's steady state (module docstring) for ``batch`` clients and ``slots``
    admissible requests. Returns (running R, decoding R_d, completions per decode
    iteration lam, prefill-carrying iterations per decode iteration f (mixed: a share <= 1),
    prompts' worth of prefill per prefill-carrying iteration pi, chunks per prompt k,
    prefill-carrying iterations a request spends in prefill). ``interval``: decode
    iterations between admissions; with separate prefill iterations the prompts that
    arrive within one interval are admitted, and prefilled, together. The token budget is
    the replica's: an engine whose limits hold per attention-DP rank (``EN_PER_RANK``)
    schedules ``adp`` times its budget in one iteration of the replica."""
    chunked = engine[EN_CHUNKED] > 0.0
    mixed = engine[EN_MIXED] > 0.0
    c = (budget if budget > 0.0 else engine[EN_MAX_BATCHED_TOKENS]) * rank_factor(engine, adp)
    if c <= 0.0:
        c = np.inf
    r = min(batch, max(slots, 1.0))
    others = (r - 1.0) / r  # a prompt's chunks share iterations with the others' decodes
    n = out_tokens - 1.0
    k = 1.0
    r_d = r * n / (n + 1.0)
    for _ in range(3):  # k depends on the budget the decodes leave (a few rounds settle it)
        room = max(c - r_d * others, 1.0) if mixed else c
        k = float(math.ceil(s / room)) if chunked and room < s else 1.0
        r_d = r * n / (n + k)
    room = max(c - r_d * others, 1.0) if mixed else c
    # prompts' worth one prefill-carrying iteration can hold
    cap = room / s if chunked else max(1.0, math.floor(room / s))
    if n <= 0.0:  # one output token: every request is all prefill
        lam = min(r / k, cap)
        return r, 0.0, lam, 1.0, lam, k, r / lam
    lam = r_d / n
    if not mixed:
        # prefill-only iterations first: every decode iteration advances all decoders, so a
        # request's life has n of them, and all r requests arrive once per life: r / n
        # prompts per decode iteration, pi of them per prefill iteration (those admitted
        # together: an admission interval's worth)
        pi = min(max(r * interval / n, 1.0 / k), cap)
        return r, r_d, lam, r / pi / n, pi, k, k
    if lam > cap:  # prefill-saturated: every iteration carries a full budget of prefill
        lam = max(c / (s + n), 0.0 if chunked else 1.0)
        r_d = min(lam * n, r)
        return r, r_d, lam, 1.0, lam, k, (r - r_d) / lam
    f = min(1.0, lam * k)
    return r, r_d, lam, f, lam / f, k, max(k, (r - r_d) / lam)


# Per-op terms of one iteration (:func:`iteration_terms`), the what-if-independent part of
# :func:`iteration_seconds`: unscaled compute, memory and network seconds, link latency,
# kernel latency, link (0 scale-up, 1 scale-out) and run counts along the path and stage
(T_C, T_M, T_N, T_NO, T_NL, T_LAT, T_PATH, T_STAGE) = range(8)
N_TERMS = 8
LANES = 8  # what-if points per vector block of terms_seconds
RIDING_EPS = 1e-9  # riding decoders below this share of the running requests: none


@njit(cache=True)
def launches(terms, n_terms):
    """Operator launches of an iteration (:func:`iteration_terms`' rows): (along the
    pipeline path, in the bottleneck stage); what :func:`eager_device` multiplies."""
    n_path = 0.0
    n_stage = 0.0
    for q in range(n_terms):
        # an op with no work and no latency launches nothing (a collective of one device)
        if (terms[q, T_C] > 0.0 or terms[q, T_M] > 0.0 or terms[q, T_N] > 0.0
                or terms[q, T_NO] > 0.0 or terms[q, T_NL] > 0.0 or terms[q, T_LAT] > 0.0):
            n_path += terms[q, T_PATH]
            n_stage += terms[q, T_STAGE]
    return n_path, n_stage


@njit(cache=True, inline="always")
def _op_terms(vt, i, tokens, seqs, sampled, pairs, reads, out, q, hw_h):
    """Row ``q`` of ``out``: op ``i``'s terms as :func:`_op_seconds` prices them, before the
    what-if reciprocals (the same operations in the same order: the same bits). An MoE op
    gets its sequences for ``op_cost`` in ``T_C`` (:func:`_moe_terms` completes it)."""
    tok = sampled if vt[i, V_LAST] > 0.0 else tokens
    if vt[i, V_MOE] > 0.0:
        out[q, T_C] = tok * vt[i, V_SCALE]
        out[q, T_M] = seqs  # LoRA: the sequences whose adapters it reads
    else:
        out[q, T_C], out[q, T_M] = _compute_memory(vt, i, tok, seqs, pairs, reads, hw_h)
        if vt[i, V_GROUP] > 1.0:
            out[q, T_N], out[q, T_NO], out[q, T_NL] = network_seconds(vt, i, tok, hw_h)
        else:
            out[q, T_N] = 0.0
            out[q, T_NO] = 0.0
            out[q, T_NL] = 0.0
    out[q, T_LAT] = vt[i, V_LAT]
    out[q, T_PATH] = vt[i, V_PATH]
    out[q, T_STAGE] = vt[i, V_STAGE]


@njit(cache=True)
def _moe_terms(vt, i, program, t, p, e, adp, out, q, hw_h):
    """Row ``q``'s compute, memory and network terms of MoE op ``i`` (distinct experts hit:
    ``op_cost`` at the tokens :func:`_op_terms` left in ``T_C``) or LoRA op ``i``
    (distinct adapters used: the sequences it left in ``T_M``)."""
    if vt[i, V_MOE] == PER_ITERATION_LORA:
        out[q, T_C], out[q, T_M] = _lora_seconds(vt, i, program, out[q, T_C], out[q, T_M], t,
                                                 hw_h)
    else:
        out[q, T_C], out[q, T_M] = _moe_seconds(vt, i, program, out[q, T_C], t, p, e, adp,
                                                hw_h)
    out[q, T_N] = 0.0
    out[q, T_NO] = 0.0
    out[q, T_NL] = 0.0


@njit(cache=True)
def iteration_terms(vt_dec, n_dec, prog_dec, vt_pre, n_pre, prog_pre, partner, shared, comp,
                    t, p, e, adp, out, rows, hw_h):
    """The ops :func:`iteration_seconds` prices for composition ``comp``, in its order, as
    rows of :func:`_op_terms` in ``out``; returns their count. ``rows`` (int64 scratch,
    one per row): the op of each row, decode ops as i, prefill-only ones as -1 - j.
    :func:`terms_seconds` then prices them under any what-if point."""
    q = 0
    dec = comp[C_DEC]
    pre = comp[C_PRE]
    for i in range(n_dec):
        if vt_dec[i, V_PATH] == 0.0 and vt_dec[i, V_STAGE] == 0.0:
            continue
        windowed = vt_dec[i, V_WIN] > 0.0
        ctx = comp[C_CTXW] if windowed else comp[C_CTX]
        draft = int(prog_dec[i, OP_DRAFT]) == DRAFT_DECODE  # one token per request
        qdec = dec if draft else comp[C_QDEC]
        qctx = ctx if draft else comp[C_QCTXW] if windowed else comp[C_QCTX]
        if partner[i] >= 0 and pre > 0.0:
            _op_terms(vt_dec, i, qdec + pre, comp[C_TOUCHED], comp[C_SAMPLED],
                      qctx + (comp[C_PAIRSW] if windowed else comp[C_PAIRS]),
                      ctx + (comp[C_READW] if windowed else comp[C_READ]), out, q, hw_h)
        else:
            if dec <= 0.0:
                continue
            _op_terms(vt_dec, i, qdec, dec, qdec, qctx, ctx, out, q, hw_h)
        rows[q] = i
        q += 1
    if pre > 0.0:
        for j in range(n_pre):
            if shared[j] or (vt_pre[j, V_PATH] == 0.0 and vt_pre[j, V_STAGE] == 0.0):
                continue
            windowed = vt_pre[j, V_WIN] > 0.0
            _op_terms(vt_pre, j, pre, comp[C_TOUCHED] - dec, comp[C_PROMPTS],
                      comp[C_PAIRSW] if windowed else comp[C_PAIRS],
                      comp[C_READW] if windowed else comp[C_READ], out, q, hw_h)
            rows[q] = -1 - j
            q += 1
    for r in range(q):  # MoE and LoRA ops apart: their costs stay out of the loops above
        i = rows[r]
        if i >= 0:
            if vt_dec[i, V_MOE] > 0.0:
                _moe_terms(vt_dec, i, prog_dec, t, p, e, adp, out, r, hw_h)
        elif vt_pre[-1 - i, V_MOE] > 0.0:
            _moe_terms(vt_pre, -1 - i, prog_pre, t, p, e, adp, out, r, hw_h)
    return q


@njit(cache=True, inline="always")
def term_seconds(tcu, tmu, tnu, tno, nl, lat, rc, rm, ru, ro):
    """One op's seconds from its terms (:func:`_op_terms`: unscaled compute, memory,
    scale-up and scale-out network seconds, link and kernel latency) under what-if
    reciprocals ``rc`` ... ``ro``: (seconds, compute wins, memory wins), branch-free (the
    vectorized loop of :func:`terms_seconds` and the breakdown kernel both use it)."""
    tc = tcu * rc
    tm = tmu * rm
    tn = tnu * ru + tno * ro + nl
    is_c = (tc >= tm) & (tc >= tn)
    is_m = (not is_c) & (tm >= tn)
    return (tc if is_c else (tm if is_m else tn)) + lat, is_c, is_m


@njit(cache=True)
def terms_seconds(terms, n_terms, rcs, rms, rsu, rso, m, path, stage, acc_c, acc_m, acc_n):
    """:func:`iteration_seconds`' sums for ``m`` what-if points at once (reciprocals
    ``rcs`` ... ``rso``): adds each op's time times its path and stage counts to ``path``
    and ``stage`` and its path share to its roofline winner's ``acc_*`` (zeroed by the
    caller). Op-outer, point-inner in blocks of ``LANES`` points (the arrays hold ``m``
    rounded up to whole blocks; the caller fills the padding lanes with valid reciprocals):
    the inner loop is branch-free and vectorizes; each point's sums run in the op order of
    :func:`iteration_seconds` (the same bits)."""
    for q in range(n_terms):
        tcu = terms[q, T_C]
        tmu = terms[q, T_M]
        tnu = terms[q, T_N]
        tno = terms[q, T_NO]
        nl = terms[q, T_NL]
        lat = terms[q, T_LAT]
        mp = terms[q, T_PATH]
        ms = terms[q, T_STAGE]
        for j in range(m):
            top, is_c, is_m = term_seconds(tcu, tmu, tnu, tno, nl, lat, rcs[j], rms[j],
                                           rsu[j], rso[j])
            pt = mp * top
            path[j] += pt
            stage[j] += ms * top
            acc_c[j] += pt if is_c else 0.0
            acc_m[j] += pt if is_m else 0.0
            acc_n[j] += 0.0 if (is_c | is_m) else pt


@njit(cache=True)
def compositions(c_dec, c_mix, r, r_d, f, prompts, chunks, s, n, window, share, mixed,
                 new, past, q, beams, cp=1.0):
    """The two iteration kinds of the steady state into ``c_dec`` (decode only) and
    ``c_mix`` (carrying prefill): a decode-only iteration runs while no prompt waits, so
    every running request decodes in it; the r - r_d requests in their prefill are spread
    over the share f of iterations that carry prefill, beside the other decodes when the
    engine mixes them. ``new``, ``past``: a prompt's computed and cached tokens; ``q``:
    tokens verified per decoding sequence; ``beams``: sequences per decoding request;
    ``cp``: context-parallel devices (:func:`composition`). Returns the decode-only iteration's decoders (0:
    there is none)."""
    d_dec = r if n > 0.0 and r_d > 0.0 else 0.0
    if d_dec > 0.0:
        composition(c_dec, d_dec, s, n, 0.0, chunks, d_dec, d_dec, window, share, new, past,
                    q, beams, cp)
    # decodes riding the prefill iteration: r - (r - r_d) / f, which is 0 in exact
    # arithmetic when every request is in its prefill or alone (r = 1); a rounding
    # remainder (1e-16) would charge every decode op's kernel latency, so counts below
    # RIDING_EPS of the running requests are none
    riding = r - (r - r_d) / f if mixed else 0.0
    if riding <= RIDING_EPS * r:
        riding = 0.0
    composition(c_mix, riding, s, n, prompts, chunks, riding + prompts * chunks,
                riding + prompts, window, share, new, past, q, beams, cp)
    return d_dec


@njit(cache=True)
def serve_weights(r, f, prompts, chunks, prefill_iters, n, mixed):
    """How the two iterations make up a request's prefill and the iteration a decoding
    request sees (module docstring): (prefill-carrying iterations in a request's prefill,
    decode-only and prefill-carrying iterations per decode step it sees). TTFT's prefill
    part is the first times the prefill-carrying iteration's seconds, TPOT the second
    and third times the two iterations' (:func:`serve_times`; the breakdown columns,
    ``kernels/breakdown.py``, split both by operator class with the same weights)."""
    if n <= 0.0:  # one output token: prefill iterations only
        return prefill_iters, 0.0, 1.0
    if mixed:  # decodes ride every iteration; a share f carries prefill
        others = (r - 1.0) / r  # a decoding request sees the others' prefill only
        return prefill_iters, 1.0 - f * others, f * others
    # prefill-only iterations first, in bursts between decode iterations: of the r /
    # prompts prefill iterations in a request's life, `chunks` carry its own prompt (and
    # prompts * chunks - 1 others' beside it); the others' remaining prompts are
    # prefilled around its own, half before it on average, and stall its decodes
    bursts = max(r / prompts - chunks, 0.0) / n  # others' per decode iteration
    return chunks + 0.5 * bursts, 1.0, (n - 0.5) * bursts / n


@njit(cache=True)
def serve_times(t_dec, t_mix, b, r, lam, f, prompts, chunks, prefill_iters, n, mixed,
                request_s, interval=1.0, overlap=0.0):
    """(ttft, tpot, completions per second) of the steady state from the two iterations'
    times (overheads included): module docstring, the weights :func:`serve_weights`'.
    ``interval``: iterations between the scheduler's admissions while it is busy (1: every
    iteration boundary); an arriving request waits for the next admission, on average
    half an iteration per iteration of the interval beyond the first, plus half an
    iteration of arrival phase when a request overhead puts arrivals between boundaries.
    ``overlap`` (1: overlap scheduling): the scheduler formed the next batch while the
    current one ran, so an admitted request waits one more iteration before it runs."""
    pre_mix, seen_dec, seen_mix = serve_weights(r, f, prompts, chunks, prefill_iters, n,
                                                mixed)
    prefill = pre_mix * t_mix
    seen = seen_dec * t_dec + seen_mix * t_mix
    if n <= 0.0:
        rate = lam / t_mix
        offset = 0.5 * t_mix
    elif mixed:
        step = (1.0 - f) * t_dec + f * t_mix
        rate = lam / step
        offset = 0.5 * step
    else:
        burst = max(r / prompts - chunks, 0.0) / n * t_mix  # the others' prefill
        rate = r / (n * t_dec + chunks * t_mix + n * burst)
        offset = 0.5 * t_dec
    # a request's prefill (its iterations, or its wait for the budget when saturated), the
    # arrival offset a request overhead puts between iterations (when others keep the
    # engine busy), the wait for a slot while r requests complete at `rate`
    first = prefill + request_s
    if b > 1.0:  # others keep the engine busy: wait for an admission (and, overlapped,
        # the iteration formed before it: two offsets)
        first += ((1.0 if request_s > 0.0 else 0.0) + interval - 1.0 + 2.0 * overlap) \
            * offset
    if b > r:
        first += (b - r) / rate
    return first, seen, rate


@njit(cache=True)
def structure_units_into(prog_dec, n_dec, prog_pre, n_pre, t, p, e, adp, w, a, k, quant,
                         dtype_bytes, dtype_bits, imb, gamma, lora_r, lora_n, cp, u_dec, u_pre,
                         partner, shared):
    """What a structure point fixes for continuous serving, into the given tables: both
    programs' unit costs (:func:`unit_costs`), the prefill op each decode op shares a
    kernel with (``partner``, ``shared``, :func:`match_ops`); returns the model's attention
    window (0: none)."""
    unit_costs(prog_dec, n_dec, t, p, e, adp, w, a, k, quant, dtype_bytes, dtype_bits, imb,
               gamma, u_dec, lora_r, lora_n, cp)
    unit_costs(prog_pre, n_pre, t, p, e, adp, w, a, k, quant, dtype_bytes, dtype_bits, imb,
               gamma, u_pre, lora_r, lora_n, cp)
    match_ops(prog_dec, n_dec, prog_pre, n_pre, partner, shared)
    window = 0.0
    for i in range(n_dec):
        window = max(window, u_dec[i, U_WIN])
    return window


@njit(cache=True)
def structure_units(prog_dec, n_dec, prog_pre, n_pre, width, t, p, e, adp, w, a, k, quant,
                    dtype_bytes, dtype_bits, imb, gamma, lora_r=0.0, lora_n=1.0, cp=1.0):
    """:func:`structure_units_into` into new tables of ``width`` rows: (decode and prefill
    unit costs [width, N_UNITS], ``partner``, ``shared``, the attention window)."""
    u_dec = np.empty((width, N_UNITS))
    u_pre = np.empty((width, N_UNITS))
    partner = np.empty(width, dtype=np.int64)
    shared = np.empty(width, dtype=np.bool_)
    window = structure_units_into(prog_dec, n_dec, prog_pre, n_pre, t, p, e, adp, w, a, k,
                                  quant, dtype_bytes, dtype_bits, imb, gamma, lora_r, lora_n,
                                  cp, u_dec, u_pre, partner, shared)
    return u_dec, u_pre, partner, shared, window
