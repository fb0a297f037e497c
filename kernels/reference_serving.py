"""Plain-numpy reference of continuous serving, for tests on small grids.

Written differently from ``kernels/grid.py::_continuous`` and the per-op pricing of
``kernels/serving.py`` on purpose: every grid point is one element of flat arrays
(no grouping of what-if points by running count, no classes of alike time scales copying
results, no vector lanes), and each operator's cost in an engine iteration is stated here
from its formula, as ``reference._costs`` states a static phase's, instead of as a linear
function fitted from ``formulas.op_cost`` at 0, 1 and 2 tokens:

- the iteration's tokens: the decoding requests' one token each plus the prefill tokens of
  the prompts' chunks; weights (and every other per-kernel constant) are read once;
- attention: each decode token attends to its context (the decode contexts
  input+1 .. input+output-1 stepped through explicitly, each capped at the layer's window)
  and each prompt's chunks attend causally over the prompt's already-processed context
  (its causal pairs, counted position by position), reading from the KV cache the
  positions before the chunk (the chunks enumerated one by one, each read capped at the
  window); every token's fresh Q/K/V/O and its cache write as in prefill;
- state-space layers: per token as in prefill, and the state read and written once for
  every sequence the iteration touches (a decoding request, or a prompt chunk; as the
  kernel prices it, a prompt's first chunk also reads a state that does not exist yet:
  state bytes once per prompt more than the static prefill: +0.3 % on a batch-1 Mamba-2
  TTFT of a 1000-token prompt);
- MoE: the distinct experts hit by all the iteration's tokens of the micro-batch over every
  attention-DP group; the LM head and its all-gather on one token per decoding request and
  per prompt (the sampled ones); collectives per token of the iteration;
- a decode op whose prefill twin is the same table row (``layout.OP_*``) runs once for the
  decode tokens and the chunks together; prefill-only ops (MLA's decompressed attention) see
  the chunks alone, decode-only ops (MLA's absorbed attention) the decode tokens alone
  (a later chunk reads the earlier chunks' latent cache; decompressing it to K/V again is
  not priced, as in the kernel).

Each op is timed as in the static reference (roofline max plus kernel latency, what-if
scales dividing the rates), an iteration is max(path, micro-batches * stage) plus the
engine's iteration overhead, with min(pp, running) micro-batches.

Shared with the kernel: the table layout (``layout.py``), the static reference's per-op
formulas (``reference._costs``) for the token-linear kinds, and the scheduler's steady state
(``serving.steady_state``: the documented semantics, checked separately against the
discrete-event simulator). The iteration compositions and the TTFT/TPOT algebra of
``serving.compositions`` / ``serving.serve_times`` are restated here with numpy from the
README's "Continuous serving" paragraph. Covers every model kind, engine mode, parallelism
(tp, pp, ep, attention_dp), precision recipe (each op at its class's precisions,
``reference.class_precisions``) and what-if axis the kernel does; each attention op uses its own
window (the kernel takes one window per model, which is what ``dse.compile`` builds).
tests/test_serving_reference.py compares the two on hypothesis grids (rtol 1e-9).
"""
from collections import Counter

import numpy as np

from . import layout as L
from .breakdown import KIND_CLASS, N_CLASSES, OFFLOAD_CLASS, OTHER_CLASS
from .reference import _costs, _lora, class_precisions, moe_gemms, roofline_seconds
from .serving import RIDING_EPS, steady_state


def evaluate_continuous(hw, engine_hw, rates, programs, n_ops, engines, quants, axes,
                        axis_sizes, output_tokens, scales, scale_sizes, slots, slot_strides,
                        host, dtype_bytes, dtype_bits, breakdown=False):
    """Continuous serving on the grid's continuous ``serving`` positions.

    Same inputs as ``grid.evaluate_grid``. Returns ttft, tpot [s] and bound (uint8) over
    [hw, model, *KERNEL_AXES, output, *WHAT_IF_AXES]; NaN (bound 0) at static positions,
    which the caller fills. With ``breakdown``, also the seconds per operator class
    [len(breakdown.COLUMNS), *that shape] and the prefill bound (uint8) over it.
    """
    n_ax = len(L.KERNEL_AXES)
    n_draft = int(axis_sizes[L.K_DRAFT])  # one program per (model, draft model)
    shape = (hw.shape[0], programs.shape[0] // n_draft, *(int(x) for x in axis_sizes),
             len(output_tokens), *(int(x) for x in scale_sizes))
    ttft = np.full(shape, np.nan)
    tpot = np.full(shape, np.nan)
    bound = np.zeros(shape, dtype=np.uint8)
    split = np.full((2 * N_CLASSES, *shape), np.nan)
    p_bound = np.zeros(shape, dtype=np.uint8)
    # (numpy's unravel_index / ravel_multi_index take at most 32 dims; these have more)
    strides = np.cumprod((1, *shape[:0:-1]))[::-1]
    pos = tuple(np.arange(int(np.prod(shape))) // st % n for st, n in zip(strides, shape))
    keep = axes[L.K_SERVING, pos[2 + L.K_SERVING]] == L.SERVING_CONTINUOUS
    pos = tuple(x[keep] for x in pos)
    done = (ttft, tpot, bound, split, p_bound) if breakdown else (ttft, tpot, bound)
    if pos[0].size == 0:
        return done
    flat = sum(p * st for p, st in zip(pos, strides))
    v = {name: axes[j, pos[2 + j]] for j, name in enumerate(L.KERNEL_AXES)}
    sc = [scales[j, pos[3 + n_ax + j]] for j in range(len(L.WHAT_IF_AXES))]
    at_slot = sum(p * slot_strides[d] for d, p in enumerate(pos))
    pt = dict(h=pos[0], out=output_tokens[pos[2 + n_ax]].astype(float), slot=slots[at_slot],
              host_bytes=host[1, at_slot], sc=sc, **v)
    valid = np.all([x > 0 for x in sc], axis=0)
    for m in range(programs.shape[0]):
        at = (pos[1] == m // n_draft) & (v["draft_model"] == m % n_draft)
        if not at.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            first, seen, res, parts, p_res = _serve(
                engine_hw, rates, programs[m], n_ops[m], engines, quants,
                {key: ([x[at] for x in val] if key == "sc" else val[at])
                 for key, val in pt.items()}, dtype_bytes, dtype_bits)
        ttft.reshape(-1)[flat[at]] = np.where(valid[at], first, np.inf)
        tpot.reshape(-1)[flat[at]] = np.where(valid[at], seen, np.inf)
        bound.reshape(-1)[flat[at]] = np.where(valid[at], res, 0)
        for c in range(2 * N_CLASSES):
            split[c].reshape(-1)[flat[at]] = np.where(valid[at], parts[c], np.inf)
        p_bound.reshape(-1)[flat[at]] = np.where(valid[at], p_res, 0)
    return done


def _steady(pt, engines, new, out, interval, budget):
    """``serving.steady_state`` of every point, once per distinct input (``new``: the
    prompt tokens computed, ``out``: 1 + the decode iterations of a request, ``interval``:
    the admission interval, ``budget``: the replica's token budget, resolved here)."""
    keys = np.stack([pt["batch"], pt["slot"], new, out,
                     budget, pt["engine"], interval], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    states = np.array([steady_state(b, slot, s, o, budget, engines[int(e)], n_adm)
                       for b, slot, s, o, budget, e, n_adm in uniq])
    return {name: states[inv.ravel(), j] for j, name in enumerate(
        ("r", "r_d", "lam", "f", "prompts", "chunks", "prefill_iters"))}


def _per_value(fn, *columns):
    """``fn`` of each distinct row of ``columns`` (scalars), spread back over the points."""
    keys = np.stack(np.broadcast_arrays(*columns), axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    return np.array([fn(*row) for row in uniq])[inv.ravel()]


def _capped(x, window):
    return np.minimum(x, window) if window > 0 else x


def _decode_context(s, n, window):
    """Mean over the decode steps j = 1..n of the positions attended, s + j (capped)."""
    if n <= 0:
        return 0.0
    return _capped(s + np.arange(1.0, n + 1.0), window).sum() / n


def _prompt_pairs(s, window, cached=0.0):
    """Query-key pairs of the computed positions ``cached`` + 1 .. s of a causal s-token
    prompt: position i sees i positions (capped)."""
    return _capped(np.arange(cached + 1.0, s + 1.0), window).sum()


def _chunk_reads(s, k, window, cached=0.0):
    """Cached positions the k equal chunks of the s - ``cached`` computed tokens of an
    s-token prompt read: each chunk reads the positions before its start (capped at the
    window)."""
    return _capped(cached + np.arange(int(k)) * ((s - cached) / k), window).sum()


def _iteration_costs(op, it, t, p, e, wb, ab, kb, imb, lora_r=0.0, lora_n=1.0, cp=1.0):
    """(flops, bytes, message bytes, group devices, span, dequantization operations) of one
    op over one micro-batch of one
    iteration ``it`` (dict of the op's tokens, touched sequences, sampled tokens, attended
    positions and cached positions read, per point)."""
    kind = int(op[L.OP_KIND])
    q = op[L.OP_P0:L.OP_P0 + L.OP_N_PARAMS]
    if kind == L.ATTENTION:
        hq = q[0] / t
        hkv = np.maximum(q[1] / t, 1)
        cache = q[5] / np.minimum(t, q[6]) if q[6] > 1 else q[5]
        fresh = (hq + hkv) * (q[2] + q[3]) * ab + cache * kb  # per token, write included
        flops = 2 * hq * (q[2] + q[3]) * it["attended"]
        byts = it["tokens"] * fresh + it["read"] * cache * kb
        zero = np.zeros_like(flops)
        return flops, byts, zero, zero, t + zero, zero
    if kind == L.LORA:  # the distinct adapters of the sequences it touches
        flops, byts = _lora(op, it["tokens"], it["touched"], t, ab, lora_r, lora_n)
        zero = np.zeros_like(flops * byts)
        return flops, byts, zero, zero, t + zero, zero
    if kind == L.SSM:
        inner, channels = q[0] / t, q[2] / t
        state = inner * q[1] + channels * (q[3] - 1)
        flops = it["tokens"] * 6 * inner * q[1]
        byts = 2 * it["touched"] * state * kb + it["tokens"] * (
            3 * inner + (q[4] + q[5]) / t) * ab
        zero = np.zeros_like(flops * byts)
        return flops, byts, zero, zero, t + zero, zero
    # token-linear kinds: the static formulas at the iteration's token count
    tokens = it["sampled"] if op[L.OP_TOKENS] == L.TOKENS_LAST else it["tokens"]
    return _costs(op, True, tokens, None, None, t, p, e, wb, ab, kb, imb, cp=cp)


def _roles(prog_dec, n_dec, prog_pre, n_pre):
    """Ops of an iteration as (row, role): decode ops in order, "both" where the prefill
    program holds the same row (one kernel for decode tokens and chunks), then the prefill
    rows left over ("prefill")."""
    left = Counter(tuple(r) for r in prog_pre[:n_pre])
    out = []
    for row in prog_dec[:n_dec]:
        key = tuple(row)
        if left[key] > 0:
            left[key] -= 1
            out.append((row, "both"))
        else:
            out.append((row, "decode"))
    for row in prog_pre[:n_pre]:
        key = tuple(row)
        if left[key] > 0:
            left[key] -= 1
            out.append((row, "prefill"))
    return out


def _serve(engine_hw, rates, program, n_op, engines, quants, pt, dtype_bytes, dtype_bits):
    """(ttft, tpot, bound) of one model's points ``pt`` (flat arrays of their axis values,
    output length ``out``, admissible requests ``slot`` and what-if scales ``sc``); each
    op at its class's precisions under the point's quant recipe (a row of ``quants``),
    priced on its hardware row with its engine's kernel curves (``engine_hw``)."""
    h = pt["h"]
    # the (engine, hardware) rows of the engines' tables, flat: ``hh`` indexes ``hw``
    hw = engine_hw.reshape(-1, engine_hw.shape[-1])
    hh = pt["engine"].astype(np.int64) * engine_hw.shape[1] + h
    w = pt["weight_dtype"].astype(np.int64)
    a = np.where(pt["act_dtype"] < 0, w, pt["act_dtype"]).astype(np.int64)
    k = np.where(pt["kv_dtype"] < 0, a, pt["kv_dtype"]).astype(np.int64)
    recipes = quants[pt["quant"].astype(np.int64)]  # [points, QUANT_FIELDS]
    t, p, e, adp = pt["tp"], pt["pp"], pt["ep"], pt["attention_dp"]
    s, b = pt["input_tokens"], pt["batch"]
    n = pt["out"] - 1
    # prefix caching: the whole cached tokens of each prompt (the last one always computed)
    cached = np.where(pt["prefix_cached_fraction"] > 0,
                      np.minimum(np.floor(pt["prefix_cached_fraction"] * s), s - 1), 0.0)
    new = s - cached
    # speculative decoding: gamma drafted, q = gamma + 1 verified per decode iteration,
    # sum over i <= gamma of alpha^i expected (every draft token before i accepted)
    gamma, alpha = pt["spec_tokens"], pt["acceptance_rate"]
    beams = pt["beams"]  # sequences a decoding request decodes (beam search)
    q = gamma + 1.0
    per_step = sum(np.where(i <= gamma, alpha ** i, 0.0)
                   for i in range(int(gamma.max(initial=0)) + 1))
    n_it = n / per_step  # decode iterations per request
    cs, ms, su, so = pt["sc"][:4]
    eng = engines[pt["engine"].astype(np.int64)]
    mixed = eng[:, L.EN_MIXED] > 0
    # the admission interval (0: the engine's)
    interval = np.where(pt["admission_interval"] > 0, pt["admission_interval"],
                        eng[:, L.EN_ADMISSION_INTERVAL])
    # the replica's token budget: the axis, else the engine's; times the attention-DP ranks
    # for an engine whose every rank schedules with its own budget
    budget = np.where(pt["max_batched_tokens"] > 0, pt["max_batched_tokens"],
                      eng[:, L.EN_MAX_BATCHED_TOKENS]) * np.where(
        eng[:, L.EN_PER_RANK] > 0, adp, 1.0)
    st = _steady(pt, engines, new, 1.0 + n_it, interval, budget)
    r, r_d, f, pi, chunks = st["r"], st["r_d"], st["f"], st["prompts"], st["chunks"]

    # the two iteration kinds, per micro-batch of one attention-DP group: a decode-only
    # iteration (every running request decodes) and one that carries prefill: pi prompts'
    # worth in chunks of s / chunks, beside the requests not in their prefill when mixed
    micro = np.minimum(p, r)
    share = 1.0 / (micro * adp)
    has_dec = (n > 0) & (r_d > 0)
    riding = np.where(mixed, r - (r - r_d) / f, 0.0)
    riding = np.where(riding > RIDING_EPS * r, riding, 0.0)  # rounding remainders: none
    kinds = {"dec": dict(dec=np.where(has_dec, r, 0.0) * share, prompts=0.0 * s),
             "mix": dict(dec=riding * share, prompts=pi * share)}
    for it in kinds.values():
        it["pre"] = it["prompts"] * new
        it["chunks"] = it["prompts"] * chunks
        it["path"] = np.zeros_like(s)  # the iteration's op seconds along the pipeline path
        it["stage"] = np.zeros_like(s)  # and in the most loaded stage
        it["c_path"] = np.zeros((N_CLASSES,) + s.shape)  # the same per operator class
        it["c_stage"] = np.zeros((N_CLASSES,) + s.shape)
        it["n_path"] = np.zeros_like(s)  # operator launches along the path
        it["n_stage"] = np.zeros_like(s)  # and in the most loaded stage

    seen_windows = {}

    def positions(window):
        """Per point: a decode token's mean attended context, a prompt's causal pairs and
        the cached positions its chunks read, under ``window`` (0: none)."""
        if window not in seen_windows:
            seen_windows[window] = (
                _per_value(lambda s_, n_: _decode_context(s_, n_, window), s, n),
                _per_value(lambda s_, c_: _prompt_pairs(s_, window, c_), s, cached),
                _per_value(lambda s_, k_, c_: _chunk_reads(s_, k_, window, c_), s, chunks,
                           cached))
        return seen_windows[window]

    t_iter = {}
    won = {name: np.zeros((3,) + s.shape) for name in kinds}
    for op, role in _roles(program[L.DECODE], n_op[L.DECODE], program[L.PREFILL],
                           n_op[L.PREFILL]):
        when = op[L.OP_WHEN]
        exchange = (e > 1) & (adp > 1)
        exists = np.where(when == L.WHEN_EXCHANGE, exchange,
                          np.where(when == L.WHEN_IN_GROUP, ~exchange, True))
        scope = op[L.OP_SCOPE]
        draft = op[L.OP_DRAFT]
        if draft != L.DRAFT_NONE:  # the MTP module: gamma drafts a step, once a prompt
            runs = np.where(gamma > 0, gamma if draft == L.DRAFT_DECODE else 1.0, 0.0) * (
                op[L.OP_LAYERS] if scope == L.SCOPE_LAYER else 1.0)
            on_path, in_stage = runs, runs
        elif scope == L.SCOPE_LAYER:
            on_path, in_stage = op[L.OP_LAYERS] + 0 * p, np.ceil(op[L.OP_LAYERS] / p)
        elif scope == L.SCOPE_BOUNDARY:
            on_path, in_stage = p - 1, 0 * p
        else:
            on_path, in_stage = 1 + 0 * p, 1 + 0 * p
        on_path, in_stage = on_path * exists, in_stage * exists
        window = op[L.OP_P0 + 4] if op[L.OP_KIND] == L.ATTENTION else 0.0
        wo, ao, ko, cdt = class_precisions(op, recipes, w, a, k, dtype_bits)
        moe = op[L.OP_SPAN] == L.SPAN_MOE  # every attention group's tokens, tp * adp
        widen = adp if moe else 1.0
        for name, kind in kinds.items():
            dec = kind["dec"] if role != "prefill" else 0.0 * s
            pre = kind["pre"] if role != "decode" else 0.0 * s
            chk = kind["chunks"] if role != "decode" else 0.0 * s
            prm = kind["prompts"] if role != "decode" else 0.0 * s
            mean_ctx, pairs, reads = positions(window)
            # the target's ops verify q tokens of each decoding request, a draft op one
            qq = 1.0 if draft == L.DRAFT_DECODE else q
            seqs = dec * beams
            # context parallelism: a device computes 1/cp of the prefill and attends 1/cp
            # of every context (the decode tokens, touched sequences and samples are all
            # of its group's)
            cp = pt["cp"]
            it = dict(tokens=(seqs * qq + pre / cp) * widen, touched=(seqs + chk) * widen,
                      sampled=(seqs * qq + prm) * widen,
                      attended=(seqs * (qq * mean_ctx + qq * (qq - 1) / 2) + prm * pairs) / cp,
                      read=(seqs * mean_ctx + prm * reads) / cp)
            flops, byts, net, steps, span, dq = _iteration_costs(
                op, it, t * widen, p, e, dtype_bytes[wo], dtype_bytes[ao], dtype_bytes[ko],
                pt["expert_imbalance"], pt["lora_rank"], pt["lora_adapters"], pt["cp"])
            # a routed-experts op computes at one expert GEMM's efficiency (moe_gemms)
            work = ((flops / moe_gemms(op, it["tokens"], e), byts)
                    if op[L.OP_KIND] == L.MOE else None)
            comp, mem, netw, kernel = roofline_seconds(
                hw, hh, rates[h, cdt], flops, byts, int(op[L.OP_KIND]),
                net, steps, span, cs, ms, su, so, dq, rates[h, L.FP32], work,
                L.DTYPE_BITS[cdt] <= 8, dtype_bytes[wo] < dtype_bytes[ao])
            top = np.maximum(np.maximum(comp, mem), netw) + kernel
            runs = (dec > 0) | (pre > 0)
            top = np.where(runs, top, 0.0)
            launched = top > 0  # an op with no work and no latency launches nothing
            kind["n_path"] = kind["n_path"] + np.where(launched, on_path, 0.0)
            kind["n_stage"] = kind["n_stage"] + np.where(launched, in_stage, 0.0)
            kind["path"] = kind["path"] + on_path * top
            kind["stage"] = kind["stage"] + in_stage * top
            kind["c_path"][KIND_CLASS[int(op[L.OP_KIND])]] += on_path * top
            kind["c_stage"][KIND_CLASS[int(op[L.OP_KIND])]] += in_stage * top
            winner = np.where((comp >= mem) & (comp >= netw), 0,
                              np.where(mem >= netw, 1, 2))
            for res in range(3):
                won[name][res] += np.where(winner == res, on_path * top, 0.0)
    parts = {}
    # offload: each micro-batch's pass streams the spilled bytes over the host link
    # (dse/offload.py), overlapped with the device's work
    link = hw[hh, L.HW_HOST_BYTES_PER_S] * hw[hh, L.HW_NETWORK_EFF]
    host_s = micro * np.where(pt["host_bytes"] > 0, pt["host_bytes"] / link, 0.0)
    for name, kind in kinds.items():
        graphed = np.maximum(kind["path"], micro * kind["stage"])
        # the prefill-carrying iteration runs eagerly: each side lasts at least its
        # operator launches times the engine's eager_op_s (decode-only ones are graphed,
        # unless the engine captures no CUDA graphs)
        eager = eng[:, L.EN_EAGER_OP_S] * (1.0 if name == "mix" else
                                           eng[:, L.EN_EAGER_DECODE])
        device = np.maximum(np.maximum(kind["path"], kind["n_path"] * eager),
                            micro * np.maximum(kind["stage"], kind["n_stage"] * eager))
        t_iter[name] = np.maximum(device, host_s) + eng[:, L.EN_ITERATION_OVERHEAD_S]
        # per class: its share of the side of max(path, micro x stage) that wins; the
        # engine's iteration overhead and eager-launch wait are "other"'s, the host link's
        # excess "offload"'s
        wins = kind["path"] >= micro * kind["stage"]
        parts[name] = np.where(wins, kind["c_path"], micro * kind["c_stage"])
        parts[name][OTHER_CLASS] += eng[:, L.EN_ITERATION_OVERHEAD_S] + device - graphed
        parts[name][OFFLOAD_CLASS] = np.maximum(host_s - device, 0.0)
    t_dec = np.where(has_dec, t_iter["dec"], 0.0)
    t_mix = t_iter["mix"]
    first, seen = _serve_times(t_dec, t_mix, b, r, st["lam"], f, pi, chunks,
                               st["prefill_iters"], n_it, mixed,
                               eng[:, L.EN_REQUEST_OVERHEAD_S], interval,
                               eng[:, L.EN_OVERLAP])
    seen = seen / per_step  # per output token
    w_dec = np.where(mixed, 1 - f, 1.0)
    acc = w_dec * np.where(has_dec, won["dec"], 0.0) + f * won["mix"]
    res = np.where((acc[0] >= acc[1]) & (acc[0] >= acc[2]), 0, np.where(acc[1] >= acc[2], 1, 2))
    # offload: host-link bound where its wait beyond the device's work outlasts the
    # largest resource's time (both iterations weighted as for the bound)
    wait = {name: np.maximum(host_s - np.maximum(kind["path"], micro * kind["stage"]), 0.0)
            for name, kind in kinds.items()}
    excess = f * wait["mix"] + w_dec * np.where(has_dec, wait["dec"], 0.0)
    res = np.where((host_s > 0) & (excess > acc.max(axis=0)), L.BOUND_HOST, res)
    # the breakdown: a request's prefill is pre_mix prefill-carrying iterations, the
    # iteration a decoding request sees seen_dec decode-only and seen_mix prefill-carrying
    # ones (the TTFT/TPOT algebra below, term by term)
    pre_mix, seen_dec, seen_mix = _serve_weights(r, f, pi, chunks, st["prefill_iters"], n_it,
                                                 mixed)
    seen_dec, seen_mix = seen_dec / per_step, seen_mix / per_step
    dec_parts = np.where(has_dec, parts["dec"], 0.0)
    split = np.concatenate([pre_mix * parts["mix"],
                            seen_dec * dec_parts + seen_mix * parts["mix"]])
    mix = won["mix"]
    p_res = np.where((mix[0] >= mix[1]) & (mix[0] >= mix[2]), 0,
                     np.where(mix[1] >= mix[2], 1, 2))
    return first, seen, res.astype(np.uint8), split, p_res.astype(np.uint8)


def _serve_weights(r, f, pi, chunks, prefill_iters, n, mixed):
    """How :func:`_serve_times` weighs the two iterations: (prefill-carrying iterations
    of a request's prefill; decode-only and prefill-carrying iterations per decode step a
    request sees)."""
    nn = np.where(n > 0, n, 1.0)
    bursts = np.maximum(r / pi - chunks, 0) / nn  # the others' prefill per decode step
    separate = ~mixed & (n > 0)
    pre_mix = np.where(separate, chunks + 0.5 * bursts, prefill_iters)
    seen_dec = np.where(n > 0, np.where(mixed, 1 - f * (r - 1) / r, 1.0), 0.0)
    seen_mix = np.where(n > 0, np.where(mixed, f * (r - 1) / r, (n - 0.5) * bursts / nn),
                        1.0)
    return pre_mix, seen_dec, seen_mix


def _serve_times(t_dec, t_mix, b, r, lam, f, pi, chunks, prefill_iters, n, mixed, request_s,
                 interval, overlap):
    """TTFT and TPOT of the steady state (README "Continuous serving"); ``interval``:
    iterations between the scheduler's admissions while it is busy; ``overlap``: 1 where
    the engine forms the next batch while one runs."""
    # mixed engines: decodes ride every iteration, a share f carries prefill; a decoding
    # request sees the others' prefill only
    step = (1 - f) * t_dec + f * t_mix
    seen_mixed = (1 - f * (r - 1) / r) * t_dec + f * (r - 1) / r * t_mix
    # prefill first: the others' prompts not prefilled beside the request's own, in bursts
    # between decode iterations, half before its own prefill and the rest stalling decodes
    nn = np.where(n > 0, n, 1.0)
    burst = np.maximum(r / pi - chunks, 0) / nn * t_mix
    separate = n > 0
    seen = np.where(mixed, seen_mixed,
                    np.where(separate, t_dec + (n - 0.5) * burst / nn, t_mix))
    prefill = np.where(mixed | ~separate, prefill_iters * t_mix, chunks * t_mix + 0.5 * burst)
    rate = np.where(mixed, lam / step,
                    np.where(separate, r / (n * t_dec + chunks * t_mix + n * burst),
                             lam / t_mix))
    offset = np.where(mixed, 0.5 * step, np.where(separate, 0.5 * t_dec, 0.5 * t_mix))
    # waiting for the next admission: half an iteration of arrival phase (with a request
    # overhead) and half of each further iteration of the admission interval; overlap
    # scheduling: the whole iteration formed before the admission
    waits = np.where(request_s > 0, 1.0, 0.0) + interval - 1.0 + 2.0 * overlap
    first = prefill + request_s + np.where(b > 1, waits * offset, 0.0) \
        + np.where(b > r, (b - r) / rate, 0.0)
    return first, np.where(n > 0, seen, t_mix)
