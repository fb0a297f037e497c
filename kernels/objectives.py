"""Per-configuration objectives in (group, strategy) order, straight from the small tables.

The reductions need, for every configuration, tokens/s per device and per user, whether it
is feasible and whether it meets the constraints, laid out as [n_groups, n_strategies].
Deriving full-size arrays and transposing them costs more than everything else in a
frontiers-only sweep; this kernel reads the kernel outputs and memory tables through
precomputed offsets instead (one table of per-strategy offsets, one base offset per group),
in parallel over groups. The arithmetic follows ``dse.evaluate.derive`` operation by
operation, so the values are bit-identical to the results table's.
"""
import numpy as np
from numba import njit, prange

# sources, in the order of the offset tables
TTFT, TPOT, WEIGHT, KV, ACT, STRUCTURAL, WHAT_IF_OK, USABLE = range(8)
N_SOURCES = 8


@njit(parallel=True, cache=True)
def grouped_objectives(group_offsets, group_out, strategy_offsets, strategy_dp_batch,
                       strategy_devices, ttft, tpot, weight, kv, act, structural, what_if_ok,
                       usable, code_what_if, code_oom, max_devices, max_ttft, max_tpot,
                       x, y, feasible, best, reasons):
    """Fill x (tokens/s/device), y (tokens/s/user) and feasible [n_groups, n_strategies],
    best[g] (the first strategy with the highest x among those meeting the constraints, -1
    when none does) and reasons[g, code] (configurations per reason code).

    group_offsets [n_groups, N_SOURCES] and strategy_offsets [n_strategies, N_SOURCES] add
    up to each source's flat index; group_out: output tokens per group; strategy_dp_batch
    (dp * batch) and strategy_devices (tp * attention_dp * pp * dp) per strategy.
    """
    n_groups = x.shape[0]
    n_strat = x.shape[1]
    # Consecutive groups differ in the innermost what-if axes, which are the innermost
    # (contiguous) axes of ttft/tpot: a block of groups walked strategy by strategy reuses
    # each cache line for the whole block instead of reloading it per group.
    block = 16
    n_blocks = (n_groups + block - 1) // block
    for blk in prange(n_blocks):
        g0 = blk * block
        g1 = min(g0 + block, n_groups)
        best_x = np.full(block, -np.inf)
        best_s = np.full(block, -1, dtype=np.int64)
        for s in range(n_strat):
            so = strategy_offsets[s]
            devices = strategy_devices[s]
            dp_batch = strategy_dp_batch[s]
            for g in range(g0, g1):
                base = group_offsets[g]
                out = group_out[g]
                ttft_v = ttft[base[TTFT] + so[TTFT]]
                tpot_v = tpot[base[TPOT] + so[TPOT]]
                e2e = ttft_v + (out - 1) * tpot_v
                throughput = (dp_batch * out) / e2e
                xs = throughput / devices
                x[g, s] = xs
                y[g, s] = 1.0 / tpot_v
                code = structural[base[STRUCTURAL] + so[STRUCTURAL]]
                if code == 0 and not what_if_ok[base[WHAT_IF_OK] + so[WHAT_IF_OK]]:
                    code = code_what_if
                memory = (weight[base[WEIGHT] + so[WEIGHT]] + kv[base[KV] + so[KV]]
                          + act[base[ACT] + so[ACT]])
                if code == 0 and memory > usable[base[USABLE] + so[USABLE]]:
                    code = code_oom
                reasons[g, code] += 1
                ok = code == 0
                feasible[g, s] = ok
                j = g - g0
                if (ok and devices <= max_devices and ttft_v <= max_ttft
                        and tpot_v <= max_tpot and xs > best_x[j]):
                    best_x[j] = xs
                    best_s[j] = s
        for g in range(g0, g1):
            best[g] = best_s[g - g0]
