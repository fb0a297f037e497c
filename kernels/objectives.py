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

from .pareto import frontier

# sources, in the order of the offset tables' first columns
(TTFT, TPOT, WEIGHT, KV, ACT, STRUCTURAL, WHAT_IF_OK, USABLE, SLOTS, SERVING, PRECISION,
 KV_PROMPT, DECODE_WORK) = range(13)
N_SOURCES = 13
CONTINUOUS = 1  # the serving code of continuous batching (dse.axes.SERVING)
# Consecutive groups differ in the innermost what-if axes, which are the innermost
# (contiguous) axes of ttft/tpot: a block of groups walked strategy by strategy reuses each
# cache line for the whole block instead of reloading it per group.
GROUP_BLOCK = 16


@njit(parallel=True, cache=True, nogil=True)
def grouped_reduce(group_offsets, group_out, outer_offsets, inner_offsets, outer_dp_batch,
                   inner_dp_batch, outer_devices, inner_devices, ttft, tpot, weight, kv, act,
                   structural, what_if_ok, usable, slots, serving, precision, kv_prompt,
                   decode_work, code_what_if,
                   code_oom, max_devices, max_ttft, max_tpot, n_workers, front, n_front, best,
                   reasons):
    """Frontier, best strategy and reason counts of every group.

    Strategy ``s = a * n_inner + b`` (``n_inner = inner_offsets.shape[0]``): its offset into
    each source is ``outer_offsets[a] + inner_offsets[b]`` ([n_outer | n_inner, >=
    N_SOURCES]), and group g's is ``group_offsets[g]`` [n_groups, >= N_SOURCES]; group_out:
    output tokens per group; dp * batch = ``outer_dp_batch[a] * inner_dp_batch[b]`` and the
    devices (tp * attention_dp * pp * dp) = ``outer_devices[a] * inner_devices[b]``.
    The reason codes are the structural ones, then ``code_what_if``, then ``precision``'s
    (its code where the activation precision has no native math, else 0), then
    ``code_oom``: ``dse.evaluate.derived_metrics``' order.
    Objectives: x = tokens/s per device, y = tokens/s per user. ``n_workers``: parallel
    tasks, each with its own scratch of min(GROUP_BLOCK, n_groups) x n_strategies (a few
    times the thread count balances load).

    Fills front[g, :n_front[g]] (the strategies on group g's frontier of feasible points,
    ascending; ``front`` [n_groups, n_strategies] may be uninitialized: only the entries
    written are touched), best[g] (the first strategy with the highest x among those
    meeting the constraints, -1 when none does) and reasons[g, code] (configurations per
    reason code; must start at zero).
    """
    n_groups = group_offsets.shape[0]
    n_outer = outer_offsets.shape[0]
    n_inner = inner_offsets.shape[0]
    n_strat = n_outer * n_inner
    block = min(GROUP_BLOCK, n_groups)
    n_blocks = (n_groups + block - 1) // block
    n_workers = max(min(n_workers, n_blocks), 1)
    for w in prange(n_workers):
        # per-worker scratch, reused for each of its blocks
        xs_b = np.empty((block, n_strat))
        ys_b = np.empty((block, n_strat))
        ok_b = np.empty((block, n_strat), dtype=np.bool_)
        idx = np.empty(n_strat, dtype=np.int64)
        so = np.empty(N_SOURCES, dtype=np.int64)
        best_x = np.empty(block)
        best_s = np.empty(block, dtype=np.int64)
        for blk in range(w, n_blocks, n_workers):
            g0 = blk * block
            g1 = min(g0 + block, n_groups)
            best_x[:] = -np.inf
            best_s[:] = -1
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
                    for j in range(N_SOURCES):
                        so[j] = outer_offsets[a, j] + inner_offsets[b, j]
                    if one_model:
                        code = structural[group_offsets[g0, STRUCTURAL] + so[STRUCTURAL]]
                        if code != 0:
                            for g in range(g0, g1):
                                reasons[g, code] += 1
                                ok_b[g - g0, s] = False
                            continue
                    devices = outer_devices[a] * inner_devices[b]
                    dp_batch = outer_dp_batch[a] * inner_dp_batch[b]
                    for g in range(g0, g1):
                        base = group_offsets[g]
                        out = group_out[g]
                        j = g - g0
                        code = structural[base[STRUCTURAL] + so[STRUCTURAL]]
                        if code == 0 and not what_if_ok[base[WHAT_IF_OK] + so[WHAT_IF_OK]]:
                            code = code_what_if
                        if code == 0:
                            # precision_not_supported, or 0 where the hardware computes
                            # in the activation precision natively
                            code = precision[base[PRECISION] + so[PRECISION]]
                        if code == 0:
                            if serving[base[SERVING] + so[SERVING]] == CONTINUOUS:
                                # continuous: KV capacity limits admission; out of memory
                                # only when not one request fits
                                if slots[base[SLOTS] + so[SLOTS]] < 1.0:
                                    code = code_oom
                            else:
                                # static: the larger of the prefill and the decode peak
                                memory = weight[base[WEIGHT] + so[WEIGHT]] + max(
                                    kv_prompt[base[KV_PROMPT] + so[KV_PROMPT]]
                                    + act[base[ACT] + so[ACT]],
                                    kv[base[KV] + so[KV]]
                                    + decode_work[base[DECODE_WORK] + so[DECODE_WORK]])
                                if memory > usable[base[USABLE] + so[USABLE]]:
                                    code = code_oom
                        reasons[g, code] += 1
                        if code != 0:
                            ok_b[j, s] = False
                            continue
                        ok_b[j, s] = True
                        ttft_v = ttft[base[TTFT] + so[TTFT]]
                        tpot_v = tpot[base[TPOT] + so[TPOT]]
                        # as derived_metrics: one output token takes no decode step
                        e2e = ttft_v + (out - 1) * (tpot_v if out > 1 else 0.0)
                        throughput = (dp_batch / e2e) * out  # requests/s x output tokens
                        xs = throughput / devices
                        xs_b[j, s] = xs
                        ys_b[j, s] = 1.0 / tpot_v
                        if (devices <= max_devices and ttft_v <= max_ttft
                                and tpot_v <= max_tpot and xs > best_x[j]):
                            best_x[j] = xs
                            best_s[j] = s
            for g in range(g0, g1):
                j = g - g0
                best[g] = best_s[j]
                n = 0
                for s in range(n_strat):
                    if ok_b[j, s]:
                        idx[n] = s
                        n += 1
                kept = frontier(xs_b[j], ys_b[j], idx[:n])
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
