"""Reductions of an evaluated grid: Pareto frontiers and best-strategy tables.

Both work per (hardware, model) block of the dataset and group configurations by
``GROUP_DIMS`` (hardware, model, input/output tokens, what-if values); the candidates of a
group are its strategies (``STRATEGY_DIMS``: batch, tp, pp, ep, dp, precisions).
"""
from __future__ import annotations

import functools

import numba
import numpy as np
import pandas as pd
import xarray as xr

from .config import Constraints
from .evaluate import METRIC_INPUTS, REASON_CODE, REASONS, derived_metrics
from .grid import GROUP_DIMS, STRATEGY_DIMS, dtype_codes, resolve_dtypes, split_point
from .kernels.gather import offsets
from .kernels.layout import BOUND_NAMES, DTYPES
from .kernels.objectives import N_SOURCES, flatten_front, grouped_reduce
from .kernels.pareto import pareto_sorted
from .metrics import METRICS, NUMERIC


def _offsets(sources, dims, sizes) -> np.ndarray:
    """Flat-index contributions [prod(sizes), n_sources] of every point of ``dims``."""
    shape = [sizes[d] for d in dims]
    out = np.empty((int(np.prod(shape)), len(sources)), dtype=np.int64)
    for j, (da, arr) in enumerate(sources):
        own = dict(zip(da.dims, (st // arr.itemsize for st in arr.strides)))
        out[:, j] = offsets(shape, [own.get(d, 0) for d in dims])
    return out


# The block's variables the reductions read; the first N_SOURCES in the kernel's order.
SOURCES = ("ttft_s", "tpot_s", "weight_bytes_per_device", "kv_cache_bytes_per_device",
           "activation_bytes_per_device", "structural_reason", "what_if_valid",
           "usable_memory_bytes", "slots", "serving_code", "bound",
           "price_per_device_hour_usd", "kv_request_bytes", "working_bytes")


class Points:
    """An evaluated block addressed by (group, strategy) flat indices, without broadcasting:
    each source variable's value at (g, s) is ``flat[group_offsets[g] + outer_offsets[a] +
    inner_offsets[b]]`` with ``s = a * n_inner + b``. The strategy dims are split into outer
    and inner dims (:func:`split_point`), so the offset tables hold about twice the square
    root of the strategies' rows, never one row per strategy.
    """

    def __init__(self, block: xr.Dataset):
        self.block = block
        self.sizes = block.sizes
        # Variables, not DataArrays: building a DataArray costs more than a small chunk's
        # whole reduction
        var = block.variables
        sources = [(var[n], np.ascontiguousarray(var[n].values)) for n in SOURCES]
        self.flat = [arr.ravel() for _, arr in sources]
        self.group_offsets = _offsets(sources, GROUP_DIMS, self.sizes)
        k = split_point([self.sizes[d] for d in STRATEGY_DIMS])
        self.outer_dims, self.inner_dims = STRATEGY_DIMS[:k], STRATEGY_DIMS[k:]
        self.outer_offsets = _offsets(sources, self.outer_dims, self.sizes)
        self.inner_offsets = _offsets(sources, self.inner_dims, self.sizes)
        self.n_strategies = len(self.outer_offsets) * len(self.inner_offsets)

    def axis(self, dims, dim) -> np.ndarray:
        """The value of ``dim`` at every point of ``dims`` (flat, int64)."""
        return self.product(dims, (dim,))

    def product(self, dims, names) -> np.ndarray:
        """The product of the axes ``names`` at every point of ``dims`` (flat, int64; 1
        where none of them is among ``dims``)."""
        shape = [self.sizes[d] for d in dims]
        out = np.ones([1] * len(dims), dtype=np.int64)
        for dim in names:
            if dim in dims:
                out = out * self.block.variables[dim].values.astype(np.int64).reshape(
                    [self.sizes[d] if d == dim else 1 for d in dims])
        return np.ascontiguousarray(np.broadcast_to(out, shape)).ravel()

    def strategy_products(self, names) -> tuple[np.ndarray, np.ndarray]:
        """(outer, inner) factors of the product of the axes ``names`` per strategy."""
        return self.product(self.outer_dims, names), self.product(self.inner_dims, names)

    def values(self, name: str, g, s) -> np.ndarray:
        j = SOURCES.index(name)
        a, b = np.divmod(np.asarray(s, dtype=np.int64), len(self.inner_offsets))
        return self.flat[j][self.group_offsets[g, j] + self.outer_offsets[a, j]
                            + self.inner_offsets[b, j]]


def reduce_points(pts: Points, cons: Constraints):
    """Frontier (group, strategy) pairs, best strategy per group (-1: none meets the
    constraints) and configurations per reason code per group. One numba pass, no
    grid-size temporaries (``front`` is allocated but only touched where written)."""
    n_groups, n_strat = len(pts.group_offsets), pts.n_strategies
    dp_batch = pts.strategy_products(("dp", "batch"))
    devices = pts.strategy_products(("tp", "attention_dp", "pp", "dp"))
    front = np.empty((n_groups, n_strat), dtype=np.int32)
    n_front = np.empty(n_groups, dtype=np.int64)
    best = np.empty(n_groups, dtype=np.int64)
    reasons = np.zeros((n_groups, len(REASONS)), dtype=np.int64)
    grouped_reduce(
        pts.group_offsets, pts.axis(GROUP_DIMS, "output_tokens"), pts.outer_offsets,
        pts.inner_offsets, *dp_batch, *devices, *pts.flat[:N_SOURCES],
        REASON_CODE["what_if_scale_not_positive"], REASON_CODE["out_of_memory"],
        cons.max_devices if cons.max_devices is not None else np.iinfo(np.int64).max,
        cons.max_ttft_s if cons.max_ttft_s is not None else np.inf,
        cons.max_tpot_s if cons.max_tpot_s is not None else np.inf,
        4 * numba.get_num_threads(), front, n_front, best, reasons)
    g, s = flatten_front(front, n_front)
    return g, s, best, reasons


@functools.lru_cache(maxsize=4096)
def _categories(names: tuple) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(names))


def _categorical(codes: np.ndarray, names) -> pd.Categorical:
    """``names[codes]`` as a categorical of the names that occur (cheap to build and to
    write: dictionary-encoded in Parquet). The dtypes are cached: validating categories
    costs more than a small chunk's rows."""
    used = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    remap = np.zeros(len(names), dtype=np.int64)
    remap[used] = np.arange(len(used))
    dtype = _categories(tuple(np.asarray(names, dtype=object)[used].tolist()))
    return pd.Categorical.from_codes(remap[codes], dtype=dtype, validate=False)


def _column(values: np.ndarray, positions: np.ndarray):
    """Coordinate values at ``positions``: names as a categorical, numbers as an array."""
    if values.dtype.kind in "OUS":
        return _categorical(positions, values)
    return values[positions]


# Numeric metric columns of the Pareto and best rows, in order (then ``bound``)
ROW_METRICS = tuple(m.name for m in METRICS if m.in_rows and m.name in NUMERIC)


def _rows(pts: Points, group_idx, strat_idx, place=None) -> pd.DataFrame:
    """Table rows (axis values + metrics) of the points at (group, strategy) flat indices.

    ``place`` = (offsets, full_sizes) locates a chunk in the whole sweep; the hidden columns
    ``_group`` and ``_strategy`` are the rows' flat indices in the whole sweep, which the
    chunk merges sort and tie-break on. Metrics are computed for the picked points only, in
    :func:`dse.evaluate.derived_metrics`, so they equal the results table's.
    """
    block, sizes = pts.block, pts.sizes
    gpos = np.unravel_index(group_idx, [sizes[d] for d in GROUP_DIMS])
    spos = np.unravel_index(strat_idx, [sizes[d] for d in STRATEGY_DIMS])
    pos = dict(zip(GROUP_DIMS, gpos)) | dict(zip(STRATEGY_DIMS, spos))
    offsets, full = place if place is not None else ({}, dict(sizes))
    hidden = {}
    for name, dims in (("_group", GROUP_DIMS), ("_strategy", STRATEGY_DIMS)):
        hidden[name] = np.ravel_multi_index(
            tuple(np.asarray(pos[d]) + offsets.get(d, 0) for d in dims),
            [full[d] for d in dims]).astype(np.int64)
    var = block.variables
    cols = {d: _column(var[d].values, p) for d, p in pos.items()}
    # effective precisions ("same" resolved), as categoricals over the dtype names
    codes = resolve_dtypes(*(dtype_codes(var[d].values)[pos[d]]
                             for d in ("weight_dtype", "act_dtype", "kv_dtype")))
    for d, c in zip(("weight_dtype", "act_dtype", "kv_dtype"), codes):
        cols[d] = _categorical(c, DTYPES)

    def value(name):
        return pts.values(name, group_idx, strat_idx)

    der = derived_metrics({n: cols[n] if n in cols else value(n) for n in METRIC_INPUTS})
    metrics = {c: der[c] if c in der else value(c) for c in ROW_METRICS}
    metrics["bound"] = _categorical(value("bound"), BOUND_NAMES)
    return pd.DataFrame(cols | metrics | hidden, copy=False)  # no consolidating copy


def reduce_block(block: xr.Dataset, cons: Constraints, place=None):
    """Pareto rows, best rows and reason-code counts of an evaluated block.

    Pareto: per group, the feasible points maximizing tokens/s per device and per user.
    Best: per group, the configuration meeting the constraints with the most tokens/s per
    device; groups where nothing qualifies get a row with ``found = False`` and empty
    strategy and metric columns. Ties go to the first strategy in axis order.
    """
    pts = Points(block)
    g, s, best_idx, reasons = reduce_points(pts, cons)
    pareto = _rows(pts, g, s, place)
    found = best_idx >= 0
    best = _rows(pts, np.arange(len(best_idx)), np.maximum(best_idx, 0), place)
    best.insert(len(GROUP_DIMS), "found", found)
    for col in best.columns[len(GROUP_DIMS) + 1:]:
        if not col.startswith("_"):
            # nullable integers: one schema whether or not a chunk has unmet groups
            if best[col].dtype.kind in "iu":
                best[col] = best[col].astype("Int64")
            if not found.all():  # (all found: the same column)
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
