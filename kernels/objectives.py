"""Per-group reductions in one pass over the configurations, straight from the small tables.

The reductions need, for every configuration, tokens/s per device and per user, whether it
is feasible and whether it meets the constraints, group by group. Deriving full-size arrays
and transposing them costs more than everything else in a frontiers-only sweep; this kernel
reads the kernel outputs and memory tables through precomputed offsets instead (one base
offset per group; a strategy's offset is the sum of an outer and an inner table's, so the
tables grow with the square root of the strategies, not with them), computes a block of
groups' objectives into per-thread scratch, and reduces them there: Pareto frontier, best
strategy and reason counts. Nothing of the grid's size is written. The arithmetic follows
``dse.evaluate.derived_metrics`` operation by operation, so the values are bit-identical to
the results table's.
"""
import numpy as np
from numba import njit, prange

from .layout import (OBJ_COST, OBJ_DEVICES, OBJ_E2E, OBJ_ENERGY, OBJ_REQUESTS,
                     OBJ_THROUGHPUT, OBJ_TOKENS_PER_DEVICE, OBJ_TOKENS_PER_USER, OBJ_TPOT,
                     OBJ_TTFT)
from .pareto import frontier, frontier_nd

# sources, in the order of the offset tables' first columns
(TTFT, TPOT, WEIGHT, KV, ACT, STRUCTURAL, WHAT_IF_OK, USABLE, SLOTS, SERVING, PRECISION,
 KV_PROMPT, DECODE_WORK, PRICE, BOUND, TDP, IDLE, OFFLOADED) = range(18)
N_SOURCES = 18
# The power model's dynamic share of a step that is not compute-bound (bound code 0 is
# compute): its source is in dse/evaluate.py (energy_per_token_j), which imports it from here
POWER_SHARE_MEMORY_BOUND = 0.35
CONTINUOUS = 1  # the serving code of continuous batching (dse.axes.SERVING)
N_LIMITS = 3    # the [constraints] limits: max devices, max TTFT, max TPOT (dse.objectives)
# Consecutive groups differ in the innermost what-if axes, which are the innermost
# (contiguous) axes of ttft/tpot: a block of groups walked strategy by strategy reuses each
# cache line for the whole block instead of reloading it per group.
GROUP_BLOCK = 16


@njit(inline="always")
def objective(code, ttft_v, tpot_v, e2e, requests, throughput, devices, price, energy):
    """One configuration's value of the metric ``code`` (``layout.OBJ_*``), with the
    arithmetic of ``dse.evaluate.derived_metrics`` (NaN: a cost without a price, an energy
    without a TDP); ``energy`` is computed by the caller (:func:`energy_per_token`)."""
    if code == OBJ_TOKENS_PER_DEVICE:
        return throughput / devices
    if code == OBJ_TOKENS_PER_USER:
        return 1.0 / tpot_v
    if code == OBJ_THROUGHPUT:
        return throughput
    if code == OBJ_REQUESTS:
        return requests
    if code == OBJ_COST:
        return devices * price / 3600.0 / throughput * 1e6
    if code == OBJ_TTFT:
        return ttft_v
    if code == OBJ_TPOT:
        return tpot_v
    if code == OBJ_E2E:
        return e2e
    if code == OBJ_DEVICES:
        return float(devices)
    if code == OBJ_ENERGY:
        return energy
    return np.nan


@njit(inline="always")
def energy_per_token(ttft_v, tpot_v, out, devices, dp_batch, continuous, bound, tdp, idle):
    """``derived_metrics``' energy_per_token_j [J per output token]: every device at the
    prefill power for the TTFT (TDP for a static batch's prefill, else the run power), then
    at the run power (idle + (TDP - idle) x share by the bound) for the decode."""
    decode_s = (out - 1) * (tpot_v if out > 1 else 0.0)
    share = POWER_SHARE_MEMORY_BOUND + (1.0 - POWER_SHARE_MEMORY_BOUND) * (bound == 0)
    p_run = idle + (tdp - idle) * share
    p_prefill = p_run if continuous else tdp
    return devices * (p_prefill * ttft_v + p_run * decode_s) / (1.0 * dp_batch * out)


@njit(inline="always")
def point_code(base, so, structural, what_if_ok, precision, serving, slots, weight,
               kv_prompt, act, kv, decode_work, offloaded, usable, code_what_if, code_oom):
    """A configuration's reason code (0: feasible), read at offsets ``base + so``: the
    structural code, then ``code_what_if``, then ``precision``'s, then ``code_oom`` by the
    serving mode's memory rule."""
    code = structural[base[STRUCTURAL] + so[STRUCTURAL]]
    if code == 0 and not what_if_ok[base[WHAT_IF_OK] + so[WHAT_IF_OK]]:
        code = code_what_if
    if code == 0:
        # precision_not_supported, or 0 where the hardware computes in the activation
        # precision natively
        code = precision[base[PRECISION] + so[PRECISION]]
    if code == 0:
        if serving[base[SERVING] + so[SERVING]] == CONTINUOUS:
            # continuous: KV capacity limits admission; out of memory only when not one
            # request fits
            if slots[base[SLOTS] + so[SLOTS]] < 1.0:
                code = code_oom
        else:
            # static: the larger of the prefill and the decode peak
            memory = weight[base[WEIGHT] + so[WEIGHT]] + max(
                kv_prompt[base[KV_PROMPT] + so[KV_PROMPT]] + act[base[ACT] + so[ACT]],
                kv[base[KV] + so[KV]] + decode_work[base[DECODE_WORK] + so[DECODE_WORK]])
            # less what is offloaded to the host tier
            memory = memory - offloaded[base[OFFLOADED] + so[OFFLOADED]]
            if memory > usable[base[USABLE] + so[USABLE]]:
                code = code_oom
    return code


@njit(inline="always")
def equal_point(vals, ok, j, s, t):
    """Whether strategies s and t of block row j are alike for the frontier: both
    unusable, or both usable with the same objectives."""
    if ok[j, s] != ok[j, t]:
        return False
    if ok[j, s]:
        for k in range(vals.shape[1]):
            if vals[j, k, s] != vals[j, k, t]:
                return False
    return True


@njit(cache=True, nogil=True)
def exact_twins(rank, starts, members, devices, dp_batch):
    """Per point: whether its devices and dp * batch are its representative's times the
    same power of two (its objectives then round as the representative's)."""
    out = np.empty(rank.size, dtype=np.bool_)
    for a in range(rank.size):
        rep = members[starts[rank[a]]]
        hi, lo = max(devices[a], devices[rep]), min(devices[a], devices[rep])
        q = hi // lo
        out[a] = (devices[a] * dp_batch[rep] == devices[rep] * dp_batch[a]
                  and hi == q * lo and q & (q - 1) == 0)
    return out


@njit(cache=True, nogil=True)
def exact_counts(starts, members, exact):
    """Per representative: how many of its points (itself included) are exact twins."""
    out = np.zeros(starts.size - 1, dtype=np.int64)
    for r in range(starts.size - 1):
        for i in range(starts[r], starts[r + 1]):
            out[r] += exact[members[i]]
    return out


@njit(inline="always")
def _twins_of(s, n_inner, outer_rank, outer_is_rep, outer_starts, outer_members, outer_exact,
              inner_rank, inner_is_rep, inner_starts, inner_members, inner_exact, exact_only,
              out, n):
    """Write strategy ``s`` and, if it is a representative, its twins (the exact ones only
    with ``exact_only``) to ``out[n:]`` when ``out`` is given (else only count them);
    returns n plus their number."""
    a, b = s // n_inner, s % n_inner
    if not (outer_is_rep[a] and inner_is_rep[b]):
        if out.size:
            out[n] = s
        return n + 1
    for i in range(outer_starts[outer_rank[a]], outer_starts[outer_rank[a] + 1]):
        for k in range(inner_starts[inner_rank[b]], inner_starts[inner_rank[b] + 1]):
            a2, b2 = outer_members[i], inner_members[k]
            if exact_only and not (outer_exact[a2] and inner_exact[b2]):
                continue
            if out.size:
                out[n] = a2 * n_inner + b2
            n += 1
    return n


@njit(cache=True, nogil=True)
def with_twins(kept, n_inner, outer_rank, outer_is_rep, outer_starts, outer_members,
               outer_exact, inner_rank, inner_is_rep, inner_starts, inner_members,
               inner_exact, exact_only):
    """The strategies ``kept`` with every twin of each representative among them (only the
    exact ones, :func:`exact_twins`, with ``exact_only``), ascending."""
    none = np.empty(0, dtype=np.int64)
    n = 0
    for s in kept:  # count
        n = _twins_of(s, n_inner, outer_rank, outer_is_rep, outer_starts, outer_members,
                      outer_exact, inner_rank, inner_is_rep, inner_starts, inner_members,
                      inner_exact, exact_only, none, n)
    out = np.empty(n, dtype=np.int64)
    n = 0
    for s in kept:  # fill
        n = _twins_of(s, n_inner, outer_rank, outer_is_rep, outer_starts, outer_members,
                      outer_exact, inner_rank, inner_is_rep, inner_starts, inner_members,
                      inner_exact, exact_only, out, n)
    return np.sort(out)


@njit(parallel=True, cache=True, nogil=True)
def grouped_reduce(group_offsets, group_out, outer_offsets, inner_offsets, outer_dp_batch,
                   inner_dp_batch, outer_devices, inner_devices, outer_rank, outer_is_rep,
                   outer_starts, outer_members, inner_rank, inner_is_rep, inner_starts,
                   inner_members, ttft, tpot, weight, kv, act,
                   structural, what_if_ok, usable, slots, serving, precision, kv_prompt,
                   decode_work, price, bound, tdp, idle, offloaded, code_what_if,
                   code_oom, max_devices, max_ttft, max_tpot, best_code, best_sign,
                   obj_codes, obj_signs, n_workers, front, n_front, best, relaxed, reasons):
    """Frontier, best strategy, lifted-constraint bests and reason counts of every group.

    Strategy ``s = a * n_inner + b`` (``n_inner = inner_offsets.shape[0]``): its offset into
    each source is ``outer_offsets[a] + inner_offsets[b]`` ([n_outer | n_inner, >=
    N_SOURCES]), and group g's is ``group_offsets[g]`` [n_groups, >= N_SOURCES]; group_out:
    output tokens per group; dp * batch = ``outer_dp_batch[a] * inner_dp_batch[b]`` and the
    devices (tp * attention_dp * pp * cp * dp) = ``outer_devices[a] * inner_devices[b]``.
    Twins: strategies whose offsets into every source are the same (they differ only in
    dims no source varies along, such as dp) read the same reason code, TTFT and TPOT; the
    representative of outer point a is rank ``outer_rank[a]`` among those with
    ``outer_is_rep`` (the first of its twins), and representative rank r's points are
    ``outer_members[outer_starts[r]:outer_starts[r + 1]]`` (ascending, itself first); the
    same for inner. A twin takes its representative's code, TTFT and TPOT from per-worker
    scratch instead of reading the sources, and the rest (devices, requests, objectives,
    limits) as any point. Where every twin's objectives equal its representative's (dp
    replicas: dp scales requests and devices alike), the frontier is taken over the
    representatives and each kept one's twins join it (identical points are all kept), the
    same set as over every strategy.
    The reason codes are the structural ones, then ``code_what_if``, then ``precision``'s
    (its code where the activation precision has no native math, else 0), then
    ``code_oom``: ``dse.evaluate.derived_metrics``' order.
    Objectives (:func:`objective` codes): the best pick maximizes ``best_sign`` x metric
    ``best_code``; the frontier spans the metrics ``obj_codes`` [k >= 2], each maximized as
    ``obj_signs[i]`` x value. A point whose objective is NaN (a cost without a price) is
    on no frontier and never picked. ``n_workers``: parallel tasks, each with its own
    scratch of min(GROUP_BLOCK, n_groups) x k x n_strategies (a few times the thread count
    balances load).

    Fills front[g, :n_front[g]] (the strategies on group g's frontier of feasible points,
    ascending; ``front`` [n_groups, n_strategies] may be uninitialized: only the entries
    written are touched), best[g] (the first strategy with the highest signed objective
    among those meeting the constraints, -1 when none does), relaxed[g, c] (the highest
    signed objective among feasible points meeting every limit but limit c, in the order
    max devices, max TTFT, max TPOT; -inf where none) and reasons[g, code]
    (configurations per reason code; must start at zero).
    """
    n_groups = group_offsets.shape[0]
    n_outer = outer_offsets.shape[0]
    n_inner = inner_offsets.shape[0]
    n_strat = n_outer * n_inner
    n_obj = obj_codes.shape[0]
    # the default objectives (tokens/s per device and per user, best: per device) take a
    # direct path; a price is read only where an objective is a cost
    default = (n_obj == 2 and obj_codes[0] == OBJ_TOKENS_PER_DEVICE and obj_signs[0] == 1.0
               and obj_codes[1] == OBJ_TOKENS_PER_USER and obj_signs[1] == 1.0
               and best_code == OBJ_TOKENS_PER_DEVICE and best_sign == 1.0)
    priced = best_code == OBJ_COST
    powered = best_code == OBJ_ENERGY
    for k in range(n_obj):
        if obj_codes[k] == OBJ_COST:
            priced = True
        if obj_codes[k] == OBJ_ENERGY:
            powered = True
    limited = (max_devices < np.iinfo(np.int64).max or max_ttft < np.inf
               or max_tpot < np.inf)
    n_outer_rep = outer_starts.shape[0] - 1
    n_inner_rep = inner_starts.shape[0] - 1
    n_rep = n_outer_rep * n_inner_rep
    twins = n_rep < n_strat
    # Twins whose devices and dp * batch are their representative's times one power of two
    # have bit-identical objectives (every objective but throughput, requests and devices is
    # a ratio of the two: scaling both by 2^k rounds alike) and cannot move the best pick or a
    # lifted best (equal, never greater, and the same TTFT and TPOT) unless devices are
    # limited: their scan is skipped, the representative counts their reasons, and the
    # frontier over the representatives takes them in (:func:`with_twins`).
    invariant = best_code != OBJ_THROUGHPUT and best_code != OBJ_REQUESTS \
        and best_code != OBJ_DEVICES
    for k in range(n_obj):
        if obj_codes[k] == OBJ_THROUGHPUT or obj_codes[k] == OBJ_REQUESTS \
                or obj_codes[k] == OBJ_DEVICES:
            invariant = False
    skip = twins and invariant and max_devices == np.iinfo(np.int64).max
    outer_exact = exact_twins(outer_rank, outer_starts, outer_members, outer_devices,
                              outer_dp_batch)
    inner_exact = exact_twins(inner_rank, inner_starts, inner_members, inner_devices,
                              inner_dp_batch)
    outer_like = exact_counts(outer_starts, outer_members, outer_exact)
    inner_like = exact_counts(inner_starts, inner_members, inner_exact)
    block = min(GROUP_BLOCK, n_groups)
    n_blocks = (n_groups + block - 1) // block
    n_workers = max(min(n_workers, n_blocks), 1)
    for w in prange(n_workers):
        # per-worker scratch, reused for each of its blocks
        vals_b = np.empty((block, n_obj, n_strat))
        ok_b = np.empty((block, n_strat), dtype=np.bool_)
        idx = np.empty(n_strat, dtype=np.int64)
        so = np.empty(N_SOURCES, dtype=np.int64)
        best_v = np.empty(block)
        best_s = np.empty(block, dtype=np.int64)
        lift = np.empty((block, N_LIMITS))
        # the representatives' code, TTFT and TPOT (twins only), and whether every twin's
        # objectives equal its representative's
        n_kept = n_rep if twins else 0
        code_r = np.empty((block, n_kept), dtype=np.int8)
        ttft_r = np.empty((block, n_kept))
        tpot_r = np.empty((block, n_kept))
        same = np.empty(block, dtype=np.bool_)
        for blk in range(w, n_blocks, n_workers):
            g0 = blk * block
            g1 = min(g0 + block, n_groups)
            best_v[:] = -np.inf
            best_s[:] = -1
            lift[:] = -np.inf
            same[:] = True
            # structural validity depends on the model only among the group dims: when the
            # block has one model, an invalid strategy is skipped for the whole block
            one_model = True
            for g in range(g0 + 1, g1):
                if group_offsets[g, STRUCTURAL] != group_offsets[g0, STRUCTURAL]:
                    one_model = False
            s = -1
            for a in range(n_outer):
                for b in range(n_inner):
                    s += 1
                    r = outer_rank[a] * n_inner_rep + inner_rank[b]
                    twin = twins and not (outer_is_rep[a] and inner_is_rep[b])
                    # the representative's strategy index
                    s_rep = (outer_members[outer_starts[outer_rank[a]]] * n_inner
                             + inner_members[inner_starts[inner_rank[b]]])
                    if twin and skip and outer_exact[a] and inner_exact[b]:
                        continue  # counted by its representative
                    # configurations this point's reason code counts for
                    n_like = 1
                    if skip and not twin:
                        n_like = outer_like[outer_rank[a]] * inner_like[inner_rank[b]]
                    # (its representative's: a twin reads its code, TTFT and TPOT from
                    # the scratch, the other sources, price, bound and power, from here)
                    for j in range(N_SOURCES):
                        so[j] = outer_offsets[a, j] + inner_offsets[b, j]
                    if not twin:
                        if one_model:
                            code = structural[group_offsets[g0, STRUCTURAL] + so[STRUCTURAL]]
                            if code != 0:
                                for g in range(g0, g1):
                                    reasons[g, code] += n_like
                                    ok_b[g - g0, s] = False
                                    if twins:
                                        code_r[g - g0, r] = code
                                continue
                    devices = outer_devices[a] * inner_devices[b]
                    dp_batch = outer_dp_batch[a] * inner_dp_batch[b]
                    for g in range(g0, g1):
                        base = group_offsets[g]
                        out = group_out[g]
                        j = g - g0
                        if twin:
                            code = np.int64(code_r[j, r])
                            reasons[g, code] += 1
                            if code != 0:
                                ok_b[j, s] = False
                                continue
                            ttft_v = ttft_r[j, r]
                            tpot_v = tpot_r[j, r]
                        else:
                            code = point_code(base, so, structural, what_if_ok, precision,
                                              serving, slots, weight, kv_prompt, act, kv,
                                              decode_work, offloaded, usable, code_what_if,
                                              code_oom)
                            reasons[g, code] += n_like
                            if twins:
                                code_r[j, r] = code
                            if code != 0:
                                ok_b[j, s] = False
                                continue
                            ttft_v = ttft[base[TTFT] + so[TTFT]]
                            tpot_v = tpot[base[TPOT] + so[TPOT]]
                            if twins:
                                ttft_r[j, r] = ttft_v
                                tpot_r[j, r] = tpot_v
                        # as derived_metrics: one output token takes no decode step
                        e2e = ttft_v + (out - 1) * (tpot_v if out > 1 else 0.0)
                        requests = dp_batch / e2e
                        throughput = requests * out  # requests/s x output tokens
                        if default:
                            bv = throughput / devices
                            vals_b[j, 0, s] = bv
                            vals_b[j, 1, s] = 1.0 / tpot_v
                            ok_b[j, s] = True
                        else:
                            price_v = price[base[PRICE] + so[PRICE]] if priced else 0.0
                            energy = 0.0
                            if powered:
                                energy = energy_per_token(
                                    ttft_v, tpot_v, out, devices, dp_batch,
                                    serving[base[SERVING] + so[SERVING]] == CONTINUOUS,
                                    bound[base[BOUND] + so[BOUND]], tdp[base[TDP] + so[TDP]],
                                    idle[base[IDLE] + so[IDLE]])
                            usable_point = True
                            for k in range(n_obj):
                                v = obj_signs[k] * objective(obj_codes[k], ttft_v, tpot_v,
                                                             e2e, requests, throughput,
                                                             devices, price_v, energy)
                                vals_b[j, k, s] = v
                                if v != v:
                                    usable_point = False
                            ok_b[j, s] = usable_point
                            bv = best_sign * objective(best_code, ttft_v, tpot_v, e2e,
                                                       requests, throughput, devices, price_v,
                                                       energy)
                        if twin and not equal_point(vals_b, ok_b, j, s, s_rep):
                            same[j] = False
                        if bv != bv:
                            continue
                        if not limited:
                            if bv > best_v[j]:
                                best_v[j] = bv
                                best_s[j] = s
                            continue
                        ok_dev = devices <= max_devices
                        ok_ttft = ttft_v <= max_ttft
                        ok_tpot = tpot_v <= max_tpot
                        if ok_dev and ok_ttft and ok_tpot and bv > best_v[j]:
                            best_v[j] = bv
                            best_s[j] = s
                        if ok_ttft and ok_tpot and bv > lift[j, 0]:
                            lift[j, 0] = bv
                        if ok_dev and ok_tpot and bv > lift[j, 1]:
                            lift[j, 1] = bv
                        if ok_dev and ok_ttft and bv > lift[j, 2]:
                            lift[j, 2] = bv
            for g in range(g0, g1):
                j = g - g0
                best[g] = best_s[j]
                for c in range(N_LIMITS):
                    relaxed[g, c] = lift[j, c]
                reps = twins and same[j]
                n = 0
                if reps:  # the representatives only; their twins join the frontier below
                    for ra in range(n_outer_rep):
                        for rb in range(n_inner_rep):
                            s = (outer_members[outer_starts[ra]] * n_inner
                                 + inner_members[inner_starts[rb]])
                            if ok_b[j, s]:
                                idx[n] = s
                                n += 1
                else:  # every strategy but the skipped twins (never written)
                    for s in range(n_strat):
                        a, b = s // n_inner, s % n_inner
                        if skip and outer_exact[a] and inner_exact[b] and not (
                                outer_is_rep[a] and inner_is_rep[b]):
                            continue
                        if ok_b[j, s]:
                            idx[n] = s
                            n += 1
                if n_obj == 2:
                    kept = frontier(vals_b[j, 0], vals_b[j, 1], idx[:n])
                else:
                    kept = frontier_nd(vals_b[j], idx[:n])
                if reps or skip:  # every twin of a kept representative, or its exact ones
                    kept = with_twins(kept, n_inner, outer_rank, outer_is_rep, outer_starts,
                                      outer_members, outer_exact, inner_rank, inner_is_rep,
                                      inner_starts, inner_members, inner_exact, not reps)
                n_front[g] = kept.size
                front[g, :kept.size] = kept


@njit(cache=True, nogil=True)
def flatten_front(front, n_front):
    """(group, strategy) index pairs of the frontiers, in (group, strategy) order."""
    total = 0
    for g in range(n_front.size):
        total += n_front[g]
    groups = np.empty(total, dtype=np.int64)
    strategies = np.empty(total, dtype=np.int64)
    k = 0
    for g in range(n_front.size):
        for i in range(n_front[g]):
            groups[k] = g
            strategies[k] = front[g, i]
            k += 1
    return groups, strategies
