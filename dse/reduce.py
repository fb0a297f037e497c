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
from .evaluate import derive
from .grid import GROUP_DIMS, STRATEGY_DIMS, broadcast_flat, resolve_dtype_names
from .kernels.layout import BOUND_NAMES
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


def meets_constraints(der: xr.Dataset, cons: Constraints) -> xr.DataArray:
    """Feasible and within max_devices / max_ttft_s / max_tpot_s (None: no limit)."""
    ok = der["feasible"]
    if cons.max_devices is not None:
        ok = ok & (der["devices"] <= cons.max_devices)
    if cons.max_ttft_s is not None:
        ok = ok & (der["ttft_s"] <= cons.max_ttft_s)
    if cons.max_tpot_s is not None:
        ok = ok & (der["tpot_s"] <= cons.max_tpot_s)
    return ok


def _grouped(da: xr.DataArray, block: xr.Dataset) -> np.ndarray:
    """Broadcast to the block's dims and reshape to [n_groups, n_strategies]."""
    dims = (*GROUP_DIMS, *STRATEGY_DIMS)
    flat = broadcast_flat(da, dims, [block.sizes[d] for d in dims])  # parallel gather
    n_groups = int(np.prod([block.sizes[d] for d in GROUP_DIMS]))
    return flat.reshape(n_groups, -1)


def _rows(der: xr.Dataset, coords, group_idx, strat_idx, sizes, place=None) -> pd.DataFrame:
    """Table rows (axis values + metrics) of the points at (group, strategy) flat indices.

    ``place`` = (offsets, full_sizes) locates a chunk in the whole sweep; the hidden columns
    ``_group`` and ``_strategy`` are the rows' flat indices in the whole sweep, which the
    chunk merges sort and tie-break on.
    """
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
    picked = der[list(METRICS)].isel(indexers, missing_dims="ignore")
    cols = {d: coords[d].values[p] for d, p in pos.items()}
    cols["act_dtype"], cols["kv_dtype"] = resolve_dtype_names(
        cols["weight_dtype"], cols["act_dtype"], cols["kv_dtype"])
    for m in METRICS:
        cols[m] = np.broadcast_to(picked[m].values, len(group_idx))
    cols["bound"] = np.asarray(BOUND_NAMES, dtype=object)[cols["bound"]]
    return pd.DataFrame(cols | hidden)


def block_pareto(block: xr.Dataset, der: xr.Dataset, place=None) -> pd.DataFrame:
    """Frontier of feasible points maximizing tokens/s per device and per user, per group."""
    x = _grouped(der["tokens_per_s_per_device"], block)
    y = _grouped(der["tokens_per_s_per_user"], block)
    ok = _grouped(der["feasible"], block)
    keep = pareto_mask(np.ascontiguousarray(x, dtype=np.float64),
                       np.ascontiguousarray(y, dtype=np.float64), np.ascontiguousarray(ok))
    g, s = np.nonzero(keep)
    return _rows(der, block.coords, g, s, block.sizes, place)


def block_best(block: xr.Dataset, der: xr.Dataset, cons: Constraints,
               place=None) -> pd.DataFrame:
    """Per group, the configuration meeting the constraints with the most tokens/s/device.

    Groups where nothing qualifies get a row with ``found = False`` and empty strategy and
    metric columns. Ties go to the first strategy in axis order (smallest batch, tp, ...).
    """
    x = _grouped(der["tokens_per_s_per_device"], block)
    ok = _grouped(meets_constraints(der, cons), block)
    score = np.where(ok, x, -np.inf)
    best = np.argmax(score, axis=1)
    found = ok[np.arange(len(best)), best]
    rows = _rows(der, block.coords, np.arange(len(best)), best, block.sizes, place)
    rows.insert(len(GROUP_DIMS), "found", found)
    for col in rows.columns[len(GROUP_DIMS) + 1:]:
        if not col.startswith("_"):
            rows[col] = rows[col].where(found)
    return rows


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
