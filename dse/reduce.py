"""Reductions of an evaluated grid: Pareto frontiers and best-strategy tables.

Both work per (hardware, model) block of the dataset and group configurations by
``GROUP_DIMS`` (hardware, model, input/output tokens, what-if values); the candidates of a
group are its strategies (``STRATEGY_DIMS``: batch, tp, pp, ep, dp, precisions).

The rows are Arrow tables of a declared schema (:data:`PARETO_SCHEMA`, :data:`BEST_SCHEMA`,
derived from the axis registry and the metrics table), built straight from the kernel's
outputs, written to the chunks' partial files as they are, merged with numpy sorts and
``take`` and written to Parquet without a pandas round trip.
"""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xarray as xr

from .axes import DEVICE_AXES
from .config import Constraints
from .evaluate import METRIC_INPUTS, REASON_CODE, REASONS, derived_metrics
from .grid import GROUP_DIMS, STRATEGY_DIMS, dtype_codes, resolve_dtypes, split_point
from .kernels.gather import offsets
from .kernels.objectives import (N_LIMITS, N_SOURCES, exact_twins, flatten_front,
                                 grouped_reduce)
from .kernels.pareto import pareto_sorted, pareto_sorted_nd
from .metrics import METRICS, NUMERIC
from .objectives import BEST_COLUMNS, CONSTRAINT_ORDER, Objectives
from .table import CATEGORY_NAMES, schema


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
           "usable_memory_bytes", "slots", "serving_code", "precision_reason",
           "kv_prompt_bytes", "decode_working_bytes", "price_per_device_hour_usd",
           "bound", "tdp_watts", "idle_watts", "offloaded_bytes", "kv_request_bytes",
           "working_bytes")


def _twin_table(dims, sizes, free) -> tuple:
    """(rank of each point's representative, is-representative flags, members' CSR starts,
    members) over the points of ``dims`` (C order); a point's representative has every dim
    of ``free`` at index 0."""
    shape = [sizes[d] for d in dims]
    n = int(np.prod(shape))
    rep = np.zeros(n, dtype=np.int64)
    if dims:
        pos = list(np.unravel_index(np.arange(n), shape))
        for i, d in enumerate(dims):
            if d in free:
                pos[i] = np.zeros_like(pos[i])
        rep = np.ravel_multi_index(pos, shape)
    is_rep = rep == np.arange(n)
    rank = np.searchsorted(np.flatnonzero(is_rep), rep).astype(np.int64)
    members = np.argsort(rank, kind="stable").astype(np.int64)
    starts = np.searchsorted(rank[members], np.arange(int(is_rep.sum()) + 1)).astype(np.int64)
    return rank, is_rep, starts, members


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
        # strategy dims no source varies along (dp: it enters only through the devices and
        # requests): their points read the same values, only the counts differ
        self.free_dims = tuple(d for d in STRATEGY_DIMS if all(
            d not in da.dims or arr.strides[da.dims.index(d)] == 0 for da, arr in sources))
        self._twins = None

    def twins(self) -> tuple:
        """The twin tables of :func:`dse.kernels.objectives.grouped_reduce`: per outer and
        per inner point, its representative's rank (the point with every free dim at its
        first value: the same source values, read once per group) and whether it is one,
        then each representative's points (CSR: starts, points ascending, the
        representative first); outer's four arrays, then inner's. Built once per block (the
        reduction and the Pareto rows both read them)."""
        if self._twins is None:
            self._twins = (*_twin_table(self.outer_dims, self.sizes, self.free_dims),
                           *_twin_table(self.inner_dims, self.sizes, self.free_dims))
        return self._twins

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
        # always a fresh writable array: a read-only one (a broadcast view that needed no
        # copy) would make numba compile and cache another grouped_reduce (~35 s)
        return np.broadcast_to(out, shape).copy().ravel()

    def strategy_products(self, names) -> tuple[np.ndarray, np.ndarray]:
        """(outer, inner) factors of the product of the axes ``names`` per strategy."""
        return self.product(self.outer_dims, names), self.product(self.inner_dims, names)

    def reader(self, g, s):
        """``name -> values at the points (g, s)``: per source read, the points' offsets
        into it (three gathers from the offset tables' contiguous column of that source)
        and one gather of its values."""
        a, b = np.divmod(np.asarray(s, dtype=np.int64), len(self.inner_offsets))
        g = np.asarray(g, dtype=np.int64)
        # sources as rows: one source's offsets are contiguous (a strided column gather
        # of the [n, n_sources] tables cost several times more)
        tables = [np.ascontiguousarray(t.T) for t in (self.group_offsets, self.outer_offsets,
                                                      self.inner_offsets)]

        def read(name: str) -> np.ndarray:
            j = SOURCES.index(name)
            at = tables[0][j].take(g) + tables[1][j].take(a) + tables[2][j].take(b)
            return self.flat[j].take(at)
        return read


def reduce_points(pts: Points, cons: Constraints, objectives: Objectives = Objectives()):
    """Frontier (group, strategy) pairs, best strategy per group (-1: none meets the
    constraints), the best signed objective per group with each limit lifted
    ([n_groups, N_LIMITS], -inf: none) and configurations per reason code per group. One
    numba pass, no grid-size temporaries (``front`` is allocated but only touched where
    written)."""
    n_groups, n_strat = len(pts.group_offsets), pts.n_strategies
    best_code, best_sign, codes, signs = objectives.codes()
    dp_batch = pts.strategy_products(("dp", "batch"))
    devices = pts.strategy_products(DEVICE_AXES)
    front = np.empty((n_groups, n_strat), dtype=np.int32)
    n_front = np.empty(n_groups, dtype=np.int64)
    best = np.empty(n_groups, dtype=np.int64)
    relaxed = np.empty((n_groups, N_LIMITS))
    reasons = np.zeros((n_groups, len(REASONS)), dtype=np.int64)
    grouped_reduce(
        pts.group_offsets, pts.axis(GROUP_DIMS, "output_tokens"), pts.outer_offsets,
        pts.inner_offsets, *dp_batch, *devices, *pts.twins(), *pts.flat[:N_SOURCES],
        REASON_CODE["what_if_scale_not_positive"], REASON_CODE["out_of_memory"],
        cons.max_devices if cons.max_devices is not None else np.iinfo(np.int64).max,
        cons.max_ttft_s if cons.max_ttft_s is not None else np.inf,
        cons.max_tpot_s if cons.max_tpot_s is not None else np.inf,
        best_code, best_sign, np.asarray(codes, dtype=np.int64),
        np.asarray(signs, dtype=np.float64),
        4 * numba.get_num_threads(), front, n_front, best, relaxed, reasons)
    g, s = flatten_front(front, n_front)
    return g, s, best, relaxed, reasons


# Metric columns of the Pareto and best rows: numeric ones, categorical ones (``bound``)
ROW_METRICS = tuple(m.name for m in METRICS if m.in_rows and m.name in NUMERIC)
ROW_CATEGORIES = tuple(m.name for m in METRICS if m.in_rows and m.dtype == "category")
# The rows' flat (group, strategy) indices in the whole sweep, which the chunk merges sort
# and tie-break on; the final files leave them out
HIDDEN = ("_group", "_strategy")
# The best rows' hidden per-limit bests (signed objective with that limit lifted), which a
# merge of chunks that split a group's strategies combines before naming the binding limits
LIFTED = tuple(f"_lifted_{c}" for c in CONSTRAINT_ORDER)
DTYPE_DIMS = ("weight_dtype", "act_dtype", "kv_dtype")
# string columns whose dictionaries follow CATEGORY_NAMES' order (the others: grid order)
NAMED_ORDER = (*DTYPE_DIMS, *ROW_CATEGORIES)
STRINGS = pa.dictionary(pa.int32(), pa.string())
def _row_schema(with_found: bool) -> pa.Schema:
    """The Pareto (or, ``with_found``, best) rows' schema: the axes in (group, strategy)
    order (``found`` between them in the best rows), the rows' metrics, then
    :data:`HIDDEN`. Types are the results table's (:func:`dse.table.schema`, from the axis
    registry and the metrics table), with int32 dictionary indices whatever the number of
    names, so every chunk's rows have one type. Every
    column is nullable, as the files have always declared: a group with no qualifying
    configuration has a best row that is null past ``found``, and a hardware preset
    without a price a null cost."""
    results = schema()
    names = [*GROUP_DIMS, *(["found"] if with_found else []), *STRATEGY_DIMS,
             *(m.name for m in METRICS if m.in_rows)]
    fields = [pa.field("found", pa.bool_(), metadata=FOUND_METADATA) if c == "found" else
              pa.field(c, STRINGS if pa.types.is_dictionary(results.field(c).type)
                       else results.field(c).type, metadata=results.field(c).metadata)
              for c in names]
    if with_found:
        fields += [pa.field(c, STRINGS, metadata={"description": doc, "unit": ""})
                   for c, doc in BEST_COLUMNS]
    hidden = [pa.field(h, pa.int64()) for h in HIDDEN]
    if with_found:
        hidden += [pa.field(h, pa.float64()) for h in LIFTED]
    return pa.schema(fields + hidden)


FOUND_METADATA = {"description": "a configuration of the group meets [constraints] (false: "
                  "the strategy and metric columns are null)", "unit": ""}
PARETO_SCHEMA = _row_schema(with_found=False)
BEST_SCHEMA = _row_schema(with_found=True)


def _strings(codes: np.ndarray, names, nulls=None, full=False) -> pa.DictionaryArray:
    """``names[codes]`` dictionary-encoded over the names that occur (in the order of
    ``names``), or with ``full`` over all of ``names`` (the precisions and row categories,
    :data:`NAMED_ORDER`: their categories are the results table's, whichever rows a file
    or a part of one holds), null where ``nulls``. A best row's masked values count as
    occurring, as they always have."""
    used = (np.arange(len(names)) if full else
            np.zeros(1, dtype=np.int64) if len(names) == 1 and len(codes) else
            np.flatnonzero(np.bincount(codes, minlength=len(names))))
    remap = np.zeros(len(names), dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    dictionary = pa.array(np.asarray(names, dtype=object)[used].tolist(), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(remap[codes], mask=nulls), dictionary)


def _numbers(values: np.ndarray, nulls=None) -> pa.Array:
    """``values`` as an Arrow array, null where ``nulls`` and where NaN (a cost without a
    price: the files have always held nulls there, never NaN)."""
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        nulls = nan if nulls is None else nulls | nan
    return pa.array(values, mask=nulls if nulls is not None and nulls.any() else None)


def binding_limits(lifted: np.ndarray, picked: np.ndarray) -> list:
    """Per row, the limits (:data:`CONSTRAINT_ORDER`) whose lifting alone gives a better
    signed objective than ``picked`` (-inf where nothing qualified), comma-separated, or
    None. ``lifted`` [n, N_LIMITS]: the best signed objective with each limit lifted. A
    relative 1e-12 keeps a value recomputed outside the kernel from counting as better."""
    finite = np.where(np.isfinite(picked), picked, 0.0)
    binds = lifted > (picked + 1e-12 * np.abs(finite))[:, None]
    out = [None] * len(picked)
    for i in np.flatnonzero(binds.any(axis=1)):
        out[i] = ",".join(c for c, b in zip(CONSTRAINT_ORDER, binds[i]) if b)
    return out


def edge_labels(values: dict, edges: dict, mask) -> np.ndarray:
    """Per row, ``axis=max`` / ``axis=min`` for each strategy axis whose value is the end of
    its swept range (``edges``: axis -> (lowest, highest) of the whole sweep; min only
    above 1, below which no axis goes), comma-separated, or None (also where ``mask``)."""
    n = len(mask)
    out = np.full(n, "", dtype=object)
    for d, (lo, hi) in edges.items():
        v = values[d]
        for flag, label in ((v == hi, f"{d}=max"), ((v == lo) & (lo > 1), f"{d}=min")):
            out[flag] = out[flag] + ("," + label)
    return np.array([t[1:] if t and not m else None for t, m in zip(out, mask)],
                    dtype=object)


def strategy_edges(grid: dict) -> dict:
    """Strategy axis -> (lowest, highest) value for the numeric strategy axes swept with two
    or more values (what :func:`edge_labels` flags)."""
    out = {}
    for d in STRATEGY_DIMS:
        values = grid.get(d, ())
        if len(set(values)) >= 2 and all(isinstance(v, (int, float)) and not isinstance(
                v, bool) for v in values):
            out[d] = (min(values), max(values))
    return out


def _name_strings(values) -> pa.DictionaryArray:
    return pa.array(list(values), pa.string()).dictionary_encode()


def _strides(dims, full: dict) -> np.ndarray:
    """Flat-index strides of ``dims`` (C order) over the sizes ``full``."""
    return np.cumprod([1] + [full[d] for d in dims[::-1]])[:-1][::-1]


def _flat_index(pos: dict, dims, sizes, offsets: dict, full: dict, n: int) -> np.ndarray:
    """The rows' flat indices over ``dims`` in the whole sweep (C order of the ``full``
    sizes) from their positions ``pos`` in the block (of ``sizes``) placed at ``offsets``:
    what ``np.ravel_multi_index`` gives, summed over the block's dims of several values
    only."""
    strides = _strides(dims, full)
    out = np.full(n, sum(int(offsets.get(d, 0)) * int(st) for d, st in zip(dims, strides)),
                  dtype=np.int64)
    for d, st in zip(dims, strides):
        if sizes[d] > 1:
            out += np.asarray(pos[d], dtype=np.int64) * int(st)
    return out


def point_rows(pts: Points, group_idx, strat_idx, place=None, found=None,
               objectives: Objectives = Objectives(), lifted=None,
               edges: dict | None = None) -> pa.Table:
    """Table rows (axis values + metrics) of the points at (group, strategy) flat indices,
    built as Arrow straight from the block's arrays: :data:`PARETO_SCHEMA`, or with
    ``found`` (bool per row) :data:`BEST_SCHEMA`, the strategy and metric columns null
    where not ``found``.

    ``place`` = (offsets, full_sizes) locates a chunk in the whole sweep; the hidden columns
    ``_group`` and ``_strategy`` are the rows' flat indices in the whole sweep, which the
    chunk merges sort and tie-break on. Metrics are computed for the picked points only, in
    :func:`dse.evaluate.derived_metrics`, so they equal the results table's. Best rows
    (``found`` given) also carry ``lifted`` [n, N_LIMITS] (hidden: the signed objective
    with each limit lifted), the limits that bind (:func:`binding_limits`) and the
    strategy axes at the end of their range (``edges``, :func:`edge_labels`).
    """
    block, sizes = pts.block, pts.sizes
    gpos = np.unravel_index(group_idx, [sizes[d] for d in GROUP_DIMS])
    spos = np.unravel_index(strat_idx, [sizes[d] for d in STRATEGY_DIMS])
    pos = dict(zip(GROUP_DIMS, gpos)) | dict(zip(STRATEGY_DIMS, spos))
    offsets, full = place if place is not None else ({}, dict(sizes))
    cols = {name: pa.array(_flat_index(pos, dims, sizes, offsets, full, len(group_idx)))
            for name, dims in (("_group", GROUP_DIMS), ("_strategy", STRATEGY_DIMS))}
    var = block.variables
    numeric = {d for d in pos if var[d].dtype.kind not in "OUS"}
    # axis values at the rows: the numeric ones and the metrics' inputs (names included);
    # an axis of one value in the block is that value at every row (no gather)
    picked = {d: (np.full(len(p), var[d].values[0], dtype=var[d].dtype) if sizes[d] == 1
                  else var[d].values[p])
              for d, p in pos.items() if d in numeric or d in METRIC_INPUTS}
    # effective precisions ("same" resolved), as codes into the dtype names
    precisions = dict(zip(DTYPE_DIMS, resolve_dtypes(*(dtype_codes(var[d].values)[pos[d]]
                                                       for d in DTYPE_DIMS))))
    nulls = None if found is None or found.all() else ~found

    def axis(d, mask=None):
        if d in precisions:
            return _strings(precisions[d], CATEGORY_NAMES[d], mask, full=True)
        if d in numeric:
            return _numbers(picked[d], mask)
        return _strings(pos[d], var[d].values, mask)

    value = pts.reader(group_idx, strat_idx)

    der = derived_metrics({n: picked[n] if n in picked else value(n) for n in METRIC_INPUTS})
    cols |= {d: axis(d) for d in GROUP_DIMS} | {d: axis(d, nulls) for d in STRATEGY_DIMS}
    cols |= {c: _numbers(der[c] if c in der else value(c), nulls) for c in ROW_METRICS}
    cols |= {c: _strings(value(c), CATEGORY_NAMES[c], nulls, full=True)
             for c in ROW_CATEGORIES}
    sch = PARETO_SCHEMA
    if found is not None:
        cols["found"], sch = pa.array(found), BEST_SCHEMA
        metric = der[objectives.best] if objectives.best in der else value(objectives.best)
        picked_value = np.where(found, objectives.sign(objectives.best) * metric, -np.inf)
        cols |= {h: pa.array(lifted[:, c]) for c, h in enumerate(LIFTED)}
        cols["binding_constraints"] = _name_strings(binding_limits(lifted, picked_value))
        cols["edge_axes"] = _name_strings(edge_labels(picked, edges or {}, ~found))
    return pa.Table.from_arrays([cols[f.name] for f in sch], schema=sch)


# The row columns a dp twin (a strategy that differs from its representative only in the
# dims no source varies along, :class:`Points`) does not share with its representative:
# the counts that scale with dp, besides the devices and those dims' own values.
SCALED = ("throughput_tokens_per_s", "requests_per_s")


def twin_rows(pts: Points, group_idx, strat_idx, place=None) -> pa.Table:
    """:func:`point_rows` of Pareto points built from their representatives' rows where
    every twin's devices and dp x batch are its representative's times a power of two and
    each point's representative is among the points (a frontier over objectives that do
    not scale with dp: tokens/s per device and per user, cost, energy, times): the twin's
    row is its representative's with the devices, the dims no source varies along, the
    rows' flat index and the counts that scale (:data:`SCALED`, by that power of two:
    exactly what :func:`dse.evaluate.derived_metrics` computes) its own. Otherwise, and
    where no dim is free, :func:`point_rows` itself. The same table either way (a sweep's
    Pareto points are mostly dp replicas of a few: this builds a sixth of the rows on
    ``benchmarks/sweep_1b.toml``)."""
    free = [d for d in pts.free_dims if pts.sizes[d] > 1]
    if not free or len(strat_idx) == 0:
        return point_rows(pts, group_idx, strat_idx, place)
    rank_o, _, starts_o, members_o, rank_i, _, starts_i, members_i = pts.twins()
    (dpb_o, dpb_i), (dev_o, dev_i) = (pts.strategy_products(("dp", "batch")),
                                      pts.strategy_products(DEVICE_AXES))
    if not (exact_twins(rank_o, starts_o, members_o, dev_o, dpb_o).all()
            and exact_twins(rank_i, starts_i, members_i, dev_i, dpb_i).all()):
        return point_rows(pts, group_idx, strat_idx, place)
    n_inner, n_strat = len(pts.inner_offsets), pts.n_strategies
    g = np.asarray(group_idx, dtype=np.int64)
    a, b = np.divmod(np.asarray(strat_idx, dtype=np.int64), n_inner)
    rep_a, rep_b = members_o[starts_o[rank_o[a]]], members_i[starts_i[rank_i[b]]]
    own = (rep_a == a) & (rep_b == b)
    key = g * n_strat + rep_a * n_inner + rep_b  # each point's representative's
    keys = key[own]  # the representatives among the points, ascending
    row = np.searchsorted(keys, key)
    if (row >= len(keys)).any() or not np.array_equal(keys[row], key):
        return point_rows(pts, group_idx, strat_idx, place)  # a twin without its own
    table = point_rows(pts, g[own], (a * n_inner + b)[own], place).take(row)
    scale = (dpb_o[a] * dpb_i[b]) / (dpb_o[rep_a] * dpb_i[rep_b])  # a power of two
    cols = {"devices": pa.array(dev_o[a] * dev_i[b])}
    cols |= {c: pc.multiply(table.column(c), pa.array(scale)) for c in SCALED}
    full = place[1] if place is not None else dict(pts.sizes)
    strides = dict(zip(STRATEGY_DIMS, _strides(STRATEGY_DIMS, full)))
    flat = table.column("_strategy").to_numpy()
    for d in free:
        dims, at = (pts.outer_dims, a) if d in pts.outer_dims else (pts.inner_dims, b)
        inner = int(np.prod([pts.sizes[e] for e in dims[dims.index(d) + 1:]]))
        pos = (at // inner) % pts.sizes[d]
        cols[d] = pa.array(pts.block.variables[d].values[pos])
        flat = flat + pos * int(strides[d])
    cols["_strategy"] = pa.array(flat)
    return pa.Table.from_arrays(
        [cols[f.name].cast(f.type) if f.name in cols else table.column(f.name)
         for f in table.schema], schema=table.schema)


def reduce_block(block: xr.Dataset, cons: Constraints, place=None,
                 objectives: Objectives = Objectives(), edges: dict | None = None):
    """Pareto rows, best rows and reason-code counts of an evaluated block.

    Pareto: per group, the feasible points not dominated in ``objectives.pareto`` (by
    default tokens/s per device and per user). Best: per group, the configuration meeting
    the constraints with the best ``objectives.best`` (by default the most tokens/s per
    device); groups where nothing qualifies get a row with ``found = False`` and empty
    strategy and metric columns. Ties go to the first strategy in axis order. ``edges``:
    strategy axis -> (lowest, highest) value of the whole sweep (:func:`edge_labels`).
    """
    pts = Points(block)
    g, s, best_idx, relaxed, reasons = reduce_points(pts, cons, objectives)
    pareto = twin_rows(pts, g, s, place)
    best = point_rows(pts, np.arange(len(best_idx)), np.maximum(best_idx, 0), place,
                      found=best_idx >= 0, objectives=objectives, lifted=relaxed,
                      edges=edges)
    return pareto, best, reasons.sum(axis=0)


def _taken(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The ``rows`` of a concatenation of partial tables, one chunk per column.

    Each string column is encoded as a whole sweep's rows have it (:func:`point_rows`):
    precisions and ``bound`` over all their declared names, the other axes over the values
    that occur in the rows, in grid order (their first appearance across the parts'
    dictionaries: chunks run in grid order). So a sweep merged from chunks writes the
    dictionaries of one evaluated in one piece, and the merged parts of one file (one per
    (hardware, model) pair) share their precisions' dictionaries."""
    out = table.take(rows).combine_chunks()
    for i, f in enumerate(out.schema):
        if pa.types.is_dictionary(f.type):
            strings = out.column(i).cast(pa.string())
            if f.name in NAMED_ORDER:
                dictionary = pa.array(list(CATEGORY_NAMES[f.name]), pa.string())
            else:
                order = dict.fromkeys(v for c in table.column(f.name).chunks
                                      for v in c.dictionary.to_pylist())
                used = set(pc.unique(strings).to_pylist())
                dictionary = pa.array([v for v in order if v in used], pa.string())
            indices = pc.index_in(strings, value_set=dictionary).cast(pa.int32())
            out = out.set_column(i, f, pa.DictionaryArray.from_arrays(
                indices.combine_chunks(), dictionary))
    return out


def _numpy(table: pa.Table, *names) -> list[np.ndarray]:
    """Columns as numpy arrays (float nulls as NaN)."""
    return [table.column(n).to_numpy() for n in names]


def merge_pareto(parts, objectives: Objectives = Objectives()) -> pa.Table:
    """Frontiers of whole groups from per-chunk frontiers, in (group, strategy) order."""
    table = pa.concat_tables(parts)
    if table.num_rows == 0:
        return table
    g, s = _numpy(table, *HIDDEN)
    vals = np.array([objectives.sign(m) * table.column(m).to_numpy().astype(np.float64)
                     for m in objectives.pareto])
    order = np.lexsort((*vals[::-1] * -1, g))  # group, then each objective descending
    if len(vals) == 2:
        kept = pareto_sorted(g[order], vals[0][order], vals[1][order])
    else:
        kept = pareto_sorted_nd(g[order], np.ascontiguousarray(vals[:, order]))
    keep = order[kept]
    return _taken(table, keep[np.lexsort((s[keep], g[keep]))])


def merge_best(parts, objectives: Objectives = Objectives()) -> pa.Table:
    """Per group, the best of the per-chunk bests: found first, then the best objective
    (ties: first strategy in axis order); the limits that bind follow from the parts'
    lifted-limit bests (their maximum)."""
    table = pa.concat_tables(parts)
    if table.num_rows == 0:
        return table
    g, s, found, metric = _numpy(table, *HIDDEN, "found", objectives.best)
    value = objectives.sign(objectives.best) * metric.astype(np.float64)
    order = np.lexsort((s, -value, ~found, g))  # NaN (not found) sorts last
    g = g[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    out = _taken(table, order[first])
    lifted = np.stack([table.column(h).to_numpy()[order] for h in LIFTED], axis=1)
    starts = np.flatnonzero(first)
    lifted = np.maximum.reduceat(lifted, starts, axis=0)
    picked = np.where(found[order][first], value[order][first], -np.inf)
    i = out.schema.get_field_index("binding_constraints")
    return out.set_column(i, out.schema.field(i),
                          _name_strings(binding_limits(lifted, picked)))
