"""Reductions of an evaluated grid: Pareto frontiers and best-strategy tables.

Both work per (hardware, model) block of the dataset and group configurations by
``GROUP_DIMS`` (hardware, model, input/output tokens, what-if values); the candidates of a
group are its strategies (``STRATEGY_DIMS``: batch, tp, pp, ep, dp, precisions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .config import Constraints
from .evaluate import REASON_CODE, REASONS, derive
from .grid import GROUP_DIMS, STRATEGY_DIMS, resolve_dtype_names
from .kernels.layout import BOUND_NAMES
from .kernels.objectives import grouped_objectives
from .kernels.pareto import pareto_mask, pareto_sorted

METRICS = ("devices", "ttft_s", "tpot_s", "e2e_latency_s", "throughput_tokens_per_s",
           "tokens_per_s_per_device", "tokens_per_s_per_user", "weight_bytes_per_device",
           "kv_cache_bytes_per_device", "memory_bytes_per_device", "cost_per_million_tokens",
           "bound")


def metrics(block: xr.Dataset) -> xr.Dataset:
    """Kernel outputs and derived columns of a block, without broadcasting."""
    der = derive(block)
    for name in ("ttft_s", "tpot_s", "bound", "weight_bytes_per_device",
                 "kv_cache_bytes_per_device", "activation_bytes_per_device"):
        der[name] = block[name]
    return der


def _offsets(sources, dims, sizes) -> np.ndarray:
    """Flat-index contributions [prod(sizes), n_sources] of every point of ``dims``."""
    shape = [sizes[d] for d in dims]
    out = np.zeros((int(np.prod(shape)), len(sources)), dtype=np.int64)
    grids = np.indices(shape).reshape(len(dims), -1) if dims else np.zeros((0, 1), np.int64)
    for j, (da, arr) in enumerate(sources):
        own = dict(zip(da.dims, (st // arr.itemsize for st in arr.strides)))
        for k, d in enumerate(dims):
            if d in own:
                out[:, j] += grids[k] * own[d]
    return out


def objectives(block: xr.Dataset, cons: Constraints):
    """Tokens/s per device and per user and feasibility of every configuration, each
    [n_groups, n_strategies]; the best strategy per group (-1: none meets the constraints);
    configurations per reason code per group. Numba, no full-size temporaries."""
    names = ("ttft_s", "tpot_s", "weight_bytes_per_device", "kv_cache_bytes_per_device",
             "activation_bytes_per_device", "structural_reason", "what_if_valid",
             "usable_memory_bytes")
    sources = [(block[n], np.ascontiguousarray(block[n].values)) for n in names]
    sizes = block.sizes
    goff = _offsets(sources, GROUP_DIMS, sizes)
    soff = _offsets(sources, STRATEGY_DIMS, sizes)
    n_groups, n_strat = len(goff), len(soff)

    def axis(dims, dim):  # the value of ``dim`` at every point of ``dims``, flat
        shape = [sizes[d] for d in dims]
        values = block[dim].values.astype(np.int64).reshape(
            [sizes[d] if d == dim else 1 for d in dims])
        return np.broadcast_to(values, shape).ravel()

    tp, adp, pp, dp, batch = (axis(STRATEGY_DIMS, d) for d in
                              ("tp", "attention_dp", "pp", "dp", "batch"))
    x = np.empty((n_groups, n_strat))
    y = np.empty((n_groups, n_strat))
    feasible = np.empty((n_groups, n_strat), dtype=np.bool_)
    best = np.empty(n_groups, dtype=np.int64)
    reasons = np.zeros((n_groups, len(REASONS)), dtype=np.int64)
    grouped_objectives(
        goff, axis(GROUP_DIMS, "output_tokens"), soff, dp * batch, tp * adp * pp * dp,
        *(arr.ravel() for _, arr in sources),
        REASON_CODE["what_if_scale_not_positive"], REASON_CODE["out_of_memory"],
        cons.max_devices if cons.max_devices is not None else np.iinfo(np.int64).max,
        cons.max_ttft_s if cons.max_ttft_s is not None else np.inf,
        cons.max_tpot_s if cons.max_tpot_s is not None else np.inf,
        x, y, feasible, best, reasons)
    return x, y, feasible, best, reasons


def _rows(block: xr.Dataset, group_idx, strat_idx, place=None) -> pd.DataFrame:
    """Table rows (axis values + metrics) of the points at (group, strategy) flat indices.

    ``place`` = (offsets, full_sizes) locates a chunk in the whole sweep; the hidden columns
    ``_group`` and ``_strategy`` are the rows' flat indices in the whole sweep, which the
    chunk merges sort and tie-break on. Metrics are derived for the picked points only.
    """
    sizes = block.sizes
    gpos = np.unravel_index(group_idx, [sizes[d] for d in GROUP_DIMS])
    spos = np.unravel_index(strat_idx, [sizes[d] for d in STRATEGY_DIMS])
    pos = dict(zip(GROUP_DIMS, gpos)) | dict(zip(STRATEGY_DIMS, spos))
    offsets, full = place if place is not None else ({}, dict(sizes))
    hidden = {}
    for name, dims in (("_group", GROUP_DIMS), ("_strategy", STRATEGY_DIMS)):
        hidden[name] = np.ravel_multi_index(
            tuple(np.asarray(pos[d]) + offsets.get(d, 0) for d in dims),
            [full[d] for d in dims]).astype(np.int64)
    indexers = {d: xr.DataArray(p, dims="point") for d, p in pos.items()}
    picked = metrics(block.isel(indexers))
    cols = {d: block.coords[d].values[p] for d, p in pos.items()}
    cols["act_dtype"], cols["kv_dtype"] = resolve_dtype_names(
        cols["weight_dtype"], cols["act_dtype"], cols["kv_dtype"])
    for m in METRICS:
        cols[m] = np.broadcast_to(picked[m].values, len(group_idx))
    cols["bound"] = np.asarray(BOUND_NAMES, dtype=object)[cols["bound"]]
    return pd.DataFrame(cols | hidden)


def reduce_block(block: xr.Dataset, cons: Constraints, place=None):
    """Pareto rows, best rows and reason-code counts of an evaluated block.

    Pareto: per group, the feasible points maximizing tokens/s per device and per user.
    Best: per group, the configuration meeting the constraints with the most tokens/s per
    device; groups where nothing qualifies get a row with ``found = False`` and empty
    strategy and metric columns. Ties go to the first strategy in axis order.
    """
    x, y, feasible, best_idx, reasons = objectives(block, cons)
    keep = pareto_mask(x, y, feasible)
    g, s = np.nonzero(keep)
    pareto = _rows(block, g, s, place)
    found = best_idx >= 0
    best = _rows(block, np.arange(len(best_idx)), np.maximum(best_idx, 0), place)
    best.insert(len(GROUP_DIMS), "found", found)
    for col in best.columns[len(GROUP_DIMS) + 1:]:
        if not col.startswith("_"):
            best[col] = best[col].where(found)
    return pareto, best, reasons.sum(axis=0)


HIDDEN = ("_group", "_strategy")


def merge_pareto(parts) -> pd.DataFrame:
    """Frontiers of whole groups from per-chunk frontiers, in (group, strategy) order."""
    df = pd.concat(parts, ignore_index=True)
    if df.empty:
        return df
    x = df["tokens_per_s_per_device"].to_numpy(np.float64)
    y = df["tokens_per_s_per_user"].to_numpy(np.float64)
    g = df["_group"].to_numpy(np.int64)
    order = np.lexsort((-y, -x, g))
    keep = pareto_sorted(g[order], x[order], y[order])
    return (df.iloc[order[keep]].sort_values(["_group", "_strategy"], kind="stable")
            .reset_index(drop=True))


def merge_best(parts) -> pd.DataFrame:
    """Per group, the best of the per-chunk bests (ties: first strategy in axis order)."""
    df = pd.concat(parts, ignore_index=True)
    if df.empty:
        return df
    df = df.sort_values(["_group", "found", "tokens_per_s_per_device", "_strategy"],
                        ascending=[True, False, False, True], na_position="last",
                        kind="stable")
    return df.drop_duplicates("_group").reset_index(drop=True)
