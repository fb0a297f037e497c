"""Time per operator class (``--breakdown``): a second kernel over the grid kernel's inputs.

The default sweep never runs this: :func:`evaluate_breakdown` walks the same grid as
``grid.evaluate_grid`` (same inputs, same flat output layout) only when the breakdown
columns are asked for, and times every operator with the grid kernel's own pieces
(``grid._phase_costs``, ``grid._fill_times``, ``grid._ctx_factors``,
``grid.op_time_won``, ``grid.ctx_op_time``; continuous serving:
``serving.structure_units``, ``serving.steady_state``, ``serving.compositions``,
``serving.iteration_terms``, ``serving.term_seconds``, ``serving.serve_weights``), so
there is one statement of the physics; only the sums are kept per class here.

Classes (:data:`CLASSES`, one per op kind, :data:`KIND_CLASS`): ``attention`` (attention
kernels and the state-space / linear-attention scans: the token mixer, as the precision
classes count them), ``gemm`` (every dense projection: QKV, output, dense and shared-expert
FFN, LM head), ``moe`` (the routed experts' GEMMs), ``collective`` (all-reduce,
all-gather, reduce-scatter, all-to-all, pipeline sends) and ``other`` (norms,
embeddings, elementwise kernels such as RoPE, activations, the router and permutation,
sampling; and the engine's per-iteration overhead) and ``offload`` (no operator: the part
of a pass the host link's streaming of offloaded bytes outlasts the device's work,
``dse.offload``).

What the classes add up to, exactly (up to rounding):

- static prefill: ``ttft_s`` = max(path, host) + (micro-batches - 1) x max(stage, host),
  each class its own path + (micro-batches - 1) x stage, ``offload`` the rest (host: the
  host link's seconds per pass, 0 without offload);
- static decode: ``tpot_s`` = the mean step max(path, micro-batches x stage,
  micro-batches x host), each class its share of the side of the first two that wins (its
  path time, or micro-batches x its stage time), ``offload`` the rest;
- continuous: each iteration's time max(path, micro-batches x stage, micro-batches x host)
  + overhead splits the same way (the overhead goes to ``other``); the prefill classes add up to the request's
  prefill iterations in TTFT (``serving.serve_weights``: TTFT less the request overhead,
  the arrival offset and the wait for admission), the decode classes to ``tpot_s`` (the
  mean iteration a decoding request sees, the others' prefill chunks included: a decode
  class counts that op's time in the iterations the request waits through, whichever
  phase's tokens it computes there).

``prefill_bound``: the resource behind most prefill time as ``bound`` is for decode (each
op's time along the pipeline path to its roofline winner; continuous: in the
prefill-carrying iteration).
"""
import numpy as np
from numba import njit, prange

from . import layout as L
from .formulas import expected_tokens
from .grid import (_KIND, host_seconds, _MPATH, _MSTAGE, _N_COSTS, _N_TIMES, _TC1, _TM1,
                   _ctx_factors, _fill_times, _phase_costs, _whatif_groups, ctx_op_time,
                   attention_curved, context_ops, decode_axes, op_time_won, point_setup,
                   what_if_table, winner)
from .layout import (DECODE,
                     EN_EAGER_DECODE, EN_EAGER_OP_S, EN_ITERATION_OVERHEAD_S, EN_MIXED,
                     K_ADMIT, K_ADP, K_BATCH, K_BUDGET, K_ENGINE,
                     K_ALPHA, K_BEAMS, K_CP, K_DRAFT, K_EP, K_LORA_ADAPTERS, K_LORA_RANK, K_GAMMA,
                     K_IMBALANCE, K_INPUT, K_PP, K_PREFIX, K_SERVING,
                     K_TP, OP_KIND, PREFILL,
                     SERVING_CONTINUOUS, W_CAPACITY, W_COMPUTE, W_MEMORY, W_SCALEOUT,
                     W_SCALEUP)
from .serving import (N_COMP, N_TERMS, N_VTIMES, T_C, T_LAT, T_M, T_N, T_NL, T_NO, T_PATH,
                      T_STAGE, admission_interval, compositions, eager_device,
                      iteration_terms, launches,
                      serve_weights, speculation,
                      steady_state,
                      structure_units, term_seconds, unit_times)

CLASSES = ("attention", "gemm", "moe", "collective", "other", "offload")
ATTENTION_CLASS, GEMM_CLASS, MOE_CLASS, COLLECTIVE_CLASS, OTHER_CLASS, OFFLOAD_CLASS = range(
    len(CLASSES))
N_CLASSES = len(CLASSES)
_BY_KIND = {L.ATTENTION: ATTENTION_CLASS, L.SSM: ATTENTION_CLASS, L.GEMM: GEMM_CLASS,
            L.LORA: GEMM_CLASS, L.MOE: MOE_CLASS, L.ALLREDUCE: COLLECTIVE_CLASS,
            L.ALLGATHER: COLLECTIVE_CLASS,
            L.REDUCESCATTER: COLLECTIVE_CLASS, L.ALLTOALL: COLLECTIVE_CLASS,
            L.P2P: COLLECTIVE_CLASS}
CLASS_DOCS = {
    "attention": "attention kernels and state-space / linear-attention scans",
    "gemm": "dense GEMMs (QKV and output projections, dense and shared-expert FFN, LM head, "
            "LoRA adapters)",
    "moe": "the routed experts' GEMMs",
    "collective": "collectives (all-reduce, all-gather, reduce-scatter, all-to-all, "
                  "pipeline sends)",
    "other": "norms, embeddings and elementwise kernels (RoPE, activations, MoE router and "
             "permutation, sampling) and, continuous, the engine's iteration overhead",
    "offload": "the host link's streaming of offloaded weights or KV cache beyond what "
               "the device's work hides (the offload axis)"}
# the class of each op kind (index: layout's kind code); every kind not named is "other"
KIND_CLASS = np.array([_BY_KIND.get(k, OTHER_CLASS) for k in range(len(L.OP_KIND_NAMES))],
                      dtype=np.int64)
# the rows of the breakdown output: prefill's classes, then decode's
PHASES = ("prefill", "decode")
COLUMNS = tuple(f"{ph}_{c}_s" for ph in PHASES for c in CLASSES)
N_ROWS = len(COLUMNS)


@njit(cache=True)
def _classes(costs, n, out):
    """``out[i]``: the class of op ``i`` of a phase's cost table."""
    for i in range(n):
        out[i] = KIND_CLASS[int(costs[i, _KIND])]


@njit(cache=True)
def _static(hw, rates, cost_pre, n_pre, cost_dec, n_dec, micro, s, per_step, output_tokens,
            recip, curves_of, n_struct, st, split, prefill_bound, host, off_st, off_h, off_o,
            wi_slot):
    """Static serving of structure point ``st``: the class sums of ``evaluate_grid``'s
    static branch, in its order of operations for the totals (so the side of
    max(path, micro x stage) that wins is the one the grid kernel took)."""
    """Offload (``host``) is read at ``off_st + h * off_h + o * off_o + wi_slot[wi]``."""
    max_ops = cost_pre.shape[0]
    nout = output_tokens.size
    n_whatif = recip.shape[0]
    cls_pre = np.empty(max_ops, dtype=np.int64)
    cls_dec = np.empty(max_ops, dtype=np.int64)
    _classes(cost_pre, n_pre, cls_pre)
    _classes(cost_dec, n_dec, cls_dec)
    ctx_ops = np.empty(max_ops, dtype=np.int64)
    n_ctx = context_ops(cost_dec, n_dec, ctx_ops)
    t_pre = np.empty((max_ops, _N_TIMES))
    t_dec = np.empty((max_ops, _N_TIMES))
    fac = np.empty((nout, n_ctx, 2))
    p_path = np.empty(N_CLASSES)
    p_stage = np.empty(N_CLASSES)
    d_path = np.empty(N_CLASSES)
    d_stage = np.empty(N_CLASSES)
    o_path = np.empty(N_CLASSES)
    o_stage = np.empty(N_CLASSES)
    won = np.empty(3)
    for h in range(hw.shape[0]):
        _fill_times(cost_pre, n_pre, rates[h], hw[h], t_pre)
        _fill_times(cost_dec, n_dec, rates[h], hw[h], t_dec)
        h_curved = curves_of[h]
        if h_curved:
            for o in range(nout):
                steps = max(float(output_tokens[o]) - 1.0, 1.0)
                for j in range(n_ctx):
                    fac[o, j, 0], fac[o, j, 1] = _ctx_factors(cost_dec, ctx_ops[j], hw[h], s,
                                                              steps)
        for wi in range(n_whatif):
            rcs = recip[wi, W_COMPUTE]
            rms = recip[wi, W_MEMORY]
            rsu = recip[wi, W_SCALEUP]
            rso = recip[wi, W_SCALEOUT]
            if rcs < 0.0 or rms < 0.0 or rsu < 0.0 or rso < 0.0 or recip[wi, W_CAPACITY] < 0.0:
                for o in range(nout):  # invalid what-if point, as ttft_s and tpot_s
                    idx = ((h * n_struct + st) * nout + o) * n_whatif + wi
                    split[:, idx] = np.inf
                    prefill_bound[idx] = 0
                continue
            p_path[:] = 0.0
            p_stage[:] = 0.0
            won[:] = 0.0
            for i in range(n_pre):
                top, w = op_time_won(t_pre, i, rcs, rms, rsu, rso)
                p_path[cls_pre[i]] += t_pre[i, _MPATH] * top
                p_stage[cls_pre[i]] += t_pre[i, _MSTAGE] * top
                won[w] += t_pre[i, _MPATH] * top
            pbound = winner(won[0], won[1], won[2])
            path = 0.0
            stage = 0.0
            d_path[:] = 0.0
            d_stage[:] = 0.0
            for i in range(n_dec):
                if t_dec[i, _TC1] != 0.0 or t_dec[i, _TM1] != 0.0:
                    continue
                top, w = op_time_won(t_dec, i, rcs, rms, rsu, rso)
                path += t_dec[i, _MPATH] * top
                stage += t_dec[i, _MSTAGE] * top
                d_path[cls_dec[i]] += t_dec[i, _MPATH] * top
                d_stage[cls_dec[i]] += t_dec[i, _MSTAGE] * top
            for o in range(nout):
                steps = max(float(output_tokens[o]) - 1.0, 1.0)
                pa = path
                sg = stage
                o_path[:] = d_path
                o_stage[:] = d_stage
                for j in range(n_ctx):
                    i = ctx_ops[j]
                    fc = fac[o, j, 0] * rcs if h_curved else rcs
                    fm = fac[o, j, 1] * rms if h_curved else rms
                    top = ctx_op_time(t_dec, i, fc, fm, s, steps)[0]
                    pa += t_dec[i, _MPATH] * top
                    sg += t_dec[i, _MSTAGE] * top
                    o_path[cls_dec[i]] += t_dec[i, _MPATH] * top
                    o_stage[cls_dec[i]] += t_dec[i, _MSTAGE] * top
                idx = ((h * n_struct + st) * nout + o) * n_whatif + wi
                path_wins = pa >= micro * sg
                for c in range(N_CLASSES):
                    split[c, idx] = p_path[c] + (micro - 1.0) * p_stage[c]
                    split[N_CLASSES + c, idx] = (o_path[c] if path_wins
                                                 else micro * o_stage[c]) / per_step
                # offload: what the host link adds beyond the device's work
                off = off_st + h * off_h + o * off_o + wi_slot[wi]
                h_pre = host_seconds(host[0, off], hw[h])
                h_dec = micro * host_seconds(host[1, off], hw[h])
                p_tot = 0.0
                p_stg = 0.0
                for c in range(N_CLASSES):
                    p_tot += p_path[c]
                    p_stg += p_stage[c]
                split[OFFLOAD_CLASS, idx] = (max(p_tot, h_pre) - p_tot + (micro - 1.0) * (
                    max(p_stg, h_pre) - p_stg))
                step = max(pa, micro * sg)
                split[N_CLASSES + OFFLOAD_CLASS, idx] = (max(step, h_dec) - step) / per_step
                prefill_bound[idx] = pbound


@njit(cache=True)
def terms_split(terms, rows, n_terms, rc, rm, ru, ro, micro, cls_dec, cls_pre, overhead,
                c_path, c_stage, acc, out, host_s=0.0, eager_s=0.0):
    """One iteration's seconds (``serving.iteration_terms``' rows ``terms``, priced as
    ``serving.terms_seconds`` prices them under the what-if reciprocals ``rc`` ... ``ro``,
    in its order) plus the engine's ``overhead`` per class into ``out[N_CLASSES]``: each
    op's seconds times its runs along the path, or micro-batches x its runs in the
    bottleneck stage where the stage side of max(path, micro x stage) wins; the overhead
    in ``other``, and the part of ``host_s`` (the host link's seconds, offload) beyond
    max(path, micro x stage) in ``offload``. Adds the path's roofline winners to ``acc`` (compute, memory,
    network). ``rows``: the op of each row (decode op i, prefill-only op -1 - j).
    ``eager_s``: the engine's seconds per operator launch of an eager iteration; the wait
    for the launches beyond max(path, micro x stage) is ``other``'s
    (``serving.eager_device``)."""
    path = 0.0
    stage = 0.0
    c_path[:] = 0.0
    c_stage[:] = 0.0
    n_path, n_stage = launches(terms, n_terms)
    for q in range(n_terms):
        top, is_c, is_m = term_seconds(terms[q, T_C], terms[q, T_M], terms[q, T_N],
                                       terms[q, T_NO], terms[q, T_NL], terms[q, T_LAT],
                                       rc, rm, ru, ro)
        pt = terms[q, T_PATH] * top
        st = terms[q, T_STAGE] * top
        path += pt
        stage += st
        c = cls_dec[rows[q]] if rows[q] >= 0 else cls_pre[-1 - rows[q]]
        c_path[c] += pt
        c_stage[c] += st
        acc[0 if is_c else (1 if is_m else 2)] += pt
    path_wins = path >= micro * stage
    for c in range(N_CLASSES):
        out[c] = c_path[c] if path_wins else micro * c_stage[c]
    device = eager_device(path, stage, micro, n_path, n_stage, eager_s)
    out[OTHER_CLASS] += overhead + device - max(path, micro * stage)
    out[OFFLOAD_CLASS] = max(host_s - device, 0.0)


@njit(cache=True)
def _continuous(engine_hw, i_e, rates, prog_dec, n_dec, prog_pre, n_pre, engine, v, output_tokens,
                recip, wi_slot, slots, host, st_slot, h_stride, o_stride, n_struct, st, w, a, k,
                quant, dtype_bytes, dtype_bits, split, prefill_bound):
    """Continuous serving of structure point ``st``: per hardware, output length and
    running count (the capacity what-if acts only through it, as in ``grid._continuous``)
    the steady state and its two iterations' op terms once; per what-if point the
    iterations split by class (:func:`terms_split`) and weighted as
    ``serving.serve_times`` weighs their seconds (``serving.serve_weights``); hardware
    rows ``engine_hw[i_e]``'s, the point's engine's."""
    t, p, e, adp = v[K_TP], v[K_PP], v[K_EP], v[K_ADP]
    b, s, budget = v[K_BATCH], v[K_INPUT], v[K_BUDGET]
    max_ops = prog_dec.shape[0]
    u_dec, u_pre, partner, shared, window = structure_units(
        prog_dec, n_dec, prog_pre, n_pre, max_ops, t, p, e, adp, w, a, k, quant, dtype_bytes,
        dtype_bits, v[K_IMBALANCE], v[K_GAMMA], v[K_LORA_RANK], v[K_LORA_ADAPTERS],
        v[K_CP])
    cls_dec = np.empty(max_ops, dtype=np.int64)
    cls_pre = np.empty(max_ops, dtype=np.int64)
    for i in range(n_dec):
        cls_dec[i] = KIND_CLASS[int(prog_dec[i, OP_KIND])]
    for j in range(n_pre):
        cls_pre[j] = KIND_CLASS[int(prog_pre[j, OP_KIND])]
    vt_dec = np.empty((max_ops, N_VTIMES))
    vt_pre = np.empty((max_ops, N_VTIMES))
    c_dec = np.empty(N_COMP)
    c_mix = np.empty(N_COMP)
    terms_dec = np.empty((2 * max_ops, N_TERMS))
    terms_mix = np.empty((2 * max_ops, N_TERMS))
    rows_dec = np.empty(2 * max_ops, dtype=np.int64)
    rows_mix = np.empty(2 * max_ops, dtype=np.int64)
    c_path = np.empty(N_CLASSES)
    c_stage = np.empty(N_CLASSES)
    acc = np.empty(3)
    part_dec = np.empty(N_CLASSES)
    part_mix = np.empty(N_CLASSES)
    overhead = engine[EN_ITERATION_OVERHEAD_S]
    eager_s = engine[EN_EAGER_OP_S]
    interval = admission_interval(v[K_ADMIT], engine)
    mixed = engine[EN_MIXED] > 0.0
    nout = output_tokens.size
    n_whatif = recip.shape[0]
    group = np.empty(n_whatif, dtype=np.int64)
    group_slot = np.empty(n_whatif, dtype=np.int64)
    valid = np.empty(n_whatif, dtype=np.bool_)
    n_grp = _whatif_groups(recip, wi_slot, group, group_slot, valid)
    for h in range(engine_hw.shape[1]):
        hw_h = engine_hw[i_e, h]  # the hardware row with engine i_e's kernel curves
        unit_times(u_dec, n_dec, rates[h], hw_h, vt_dec)
        unit_times(u_pre, n_pre, rates[h], hw_h, vt_pre)
        for o in range(nout):
            new, past, qv, per_step, n_it, n = speculation(
                s, float(output_tokens[o]), v[K_PREFIX], v[K_GAMMA], v[K_ALPHA])
            base = st_slot + h * h_stride + o * o_stride
            row = ((h * n_struct + st) * nout + o) * n_whatif
            for wi in range(n_whatif):
                if not valid[wi]:  # invalid what-if point, as ttft_s and tpot_s
                    split[:, row + wi] = np.inf
                    prefill_bound[row + wi] = 0
            for g in range(n_grp):
                r, r_d, lam, f, prompts, chunks, prefill_iters = steady_state(
                    b, slots[base + group_slot[g]], new, 1.0 + n_it, budget, engine,
                    interval, adp)
                micro = min(p, r)
                ht = micro * host_seconds(host[1, base + group_slot[g]], hw_h)
                share = 1.0 / (micro * adp)
                d_dec = compositions(c_dec, c_mix, r, r_d, f, prompts, chunks, s, n, window,
                                     share, mixed, new, past, qv, v[K_BEAMS], v[K_CP])
                nq_dec = 0
                if d_dec > 0.0:
                    nq_dec = iteration_terms(vt_dec, n_dec, prog_dec, vt_pre, n_pre, prog_pre,
                                             partner, shared, c_dec, t, p, e, adp, terms_dec,
                                             rows_dec, hw_h)
                nq_mix = iteration_terms(vt_dec, n_dec, prog_dec, vt_pre, n_pre, prog_pre,
                                         partner, shared, c_mix, t, p, e, adp, terms_mix,
                                         rows_mix, hw_h)
                pre_mix, seen_dec, seen_mix = serve_weights(r, f, prompts, chunks,
                                                            prefill_iters, n_it, mixed)
                seen_dec /= per_step  # per output token (speculative decoding)
                seen_mix /= per_step
                for wi in range(n_whatif):
                    if group[wi] != g or not valid[wi]:
                        continue
                    rc = recip[wi, W_COMPUTE]
                    rm = recip[wi, W_MEMORY]
                    ru = recip[wi, W_SCALEUP]
                    ro = recip[wi, W_SCALEOUT]
                    part_dec[:] = 0.0
                    if d_dec > 0.0:
                        acc[:] = 0.0
                        terms_split(terms_dec, rows_dec, nq_dec, rc, rm, ru, ro, micro,
                                    cls_dec, cls_pre, overhead, c_path, c_stage, acc, part_dec,
                                    ht, eager_s * engine[EN_EAGER_DECODE])
                    acc[:] = 0.0
                    terms_split(terms_mix, rows_mix, nq_mix, rc, rm, ru, ro, micro, cls_dec,
                                cls_pre, overhead, c_path, c_stage, acc, part_mix, ht,
                                eager_s)
                    idx = row + wi
                    for c in range(N_CLASSES):
                        split[c, idx] = pre_mix * part_mix[c]
                        split[N_CLASSES + c, idx] = (seen_dec * part_dec[c]
                                                     + seen_mix * part_mix[c])
                    prefill_bound[idx] = winner(acc[0], acc[1], acc[2])


@njit(parallel=True, cache=True, error_model="numpy", nogil=True)
def evaluate_breakdown(hw, engine_hw, rates, programs, n_ops, engines, quants, axes,
                       axis_sizes, output_tokens, scales, scale_sizes, slots, slot_strides,
                       host, dtype_bytes, dtype_bits, split, prefill_bound):
    """Fill ``split`` [N_ROWS, points] (seconds per class, rows :data:`COLUMNS`) and
    ``prefill_bound`` [points] (0 compute, 1 memory, 2 network) in place.

    Same inputs and flat point layout as ``grid.evaluate_grid`` ([hardware, model,
    *KERNEL_AXES, output_tokens, *WHAT_IF_AXES], C order); invalid what-if points get
    inf (bound 0), as ``ttft_s`` and ``tpot_s`` do there.
    """
    n_draft = axis_sizes[K_DRAFT]
    n_model = programs.shape[0] // n_draft  # one program per (model, draft model)
    max_ops = programs.shape[2]
    n_ax = axis_sizes.size
    n_struct = n_model
    for j in range(n_ax):
        n_struct *= axis_sizes[j]
    recip, wi_slot = what_if_table(scales, scale_sizes, slot_strides[n_ax + 3:])
    curves_of = attention_curved(hw)
    for st in prange(n_struct):
        v = np.empty(n_ax)
        i_m, st_slot = decode_axes(st, axes, axis_sizes, v, slot_strides[2:n_ax + 2])
        st_slot += i_m * slot_strides[1]
        i_p = i_m * n_draft + int(v[K_DRAFT])  # the program of (model, draft model)
        micro, seqs, w, a, k, q = point_setup(v)
        quant = quants[q]
        n_pre = n_ops[i_p, PREFILL]
        n_dec = n_ops[i_p, DECODE]
        if int(v[K_SERVING]) == SERVING_CONTINUOUS:
            i_e = int(v[K_ENGINE])  # continuous serving prices with its engine's kernels
            _continuous(engine_hw, i_e, rates, programs[i_p, DECODE], n_dec,
                        programs[i_p, PREFILL], n_pre, engines[i_e], v, output_tokens, recip,
                        wi_slot, slots, host, st_slot, slot_strides[0],
                        slot_strides[n_ax + 2], n_struct, st, w, a, k, quant, dtype_bytes,
                        dtype_bits, split, prefill_bound)
            continue
        cost_pre = np.empty((max_ops, _N_COSTS))
        cost_dec = np.empty((max_ops, _N_COSTS))
        _phase_costs(programs[i_p, PREFILL], n_pre, PREFILL, v, seqs, w, a, k, quant,
                     dtype_bytes, dtype_bits, cost_pre)
        _phase_costs(programs[i_p, DECODE], n_dec, DECODE, v, seqs, w, a, k, quant,
                     dtype_bytes, dtype_bits, cost_dec)
        _static(hw, rates, cost_pre, n_pre, cost_dec, n_dec, micro, v[K_INPUT],
                expected_tokens(v[K_GAMMA], v[K_ALPHA]), output_tokens, recip, curves_of,
                n_struct, st, split, prefill_bound, host, st_slot, slot_strides[0],
                slot_strides[n_ax + 2], wi_slot)
