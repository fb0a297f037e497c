"""Split a sweep into chunks that each fit a memory budget.

A chunk is a contiguous slab of the flattened grid: one index on each of the leading dims and
a range on the next one. Sweeps that write the results table flatten in ``GRID_DIMS`` order
(the table's row order); frontiers-only sweeps in ``REDUCTION_ORDER`` (group dims first), so
that a chunk holds whole groups whenever a group's strategies fit in one. Each chunk is
itself a valid sweep spec (:func:`subspec`), so a chunk runs through exactly the same
evaluate / reduce / write code as a whole sweep does, in this process, a thread, or a dask
worker. This module is the home of the memory-budget rules: the default budget, the check
that the merged tables fit (:func:`check_reduction_size`), and the chunk size
(:func:`plan_rows`): :func:`fit_rows` sizes the chunks to a memory budget with the model of
:func:`dse.grid.chunk_bytes` (a chunk's cost depends on how its configurations split
into groups and strategies, not only on their number), or refuses the sweep up front.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .config import ConfigError, SweepSpec, human_bytes
from .grid import (BYTES_PER_CHUNK, GRID_DIMS, GROUP_DIMS, MERGE_ROW_BYTES,
                   PARTIAL_ROW_BYTES, REDUCTION_ORDER, STRATEGY_DIMS, available_memory_bytes,
                   chunk_bytes, coords, held_bytes, partial_rows, process_bytes)


# Bytes of reduction state per group (best row + a share of frontier rows), for the check
# that the merged tables fit the budget.
BYTES_PER_GROUP = 2048
# Bytes per configuration the breakdown columns add (--breakdown): the kernel's twelve
# float64 and one uint8 outputs, their copy in the dataset (kernel order -> registry
# order) and their Arrow columns and Parquet encoding in a record batch (~97 B each;
# 256 B was set for ten columns, scaled by 12/10)
BREAKDOWN_BYTES = 304
# Chunks are no smaller than this unless the budget forces it (each pays fixed costs).
MIN_CHUNK_ROWS = 1 << 20

@dataclass(frozen=True)
class Chunk:
    """Chunk ``index``: index ranges [start, stop) per grid dim (absent: the whole axis)."""
    index: int
    ranges: tuple  # ((dim, start, stop), ...)

    def sizes(self, full: dict) -> dict:
        out = {d: len(v) for d, v in full.items()}
        for d, a, b in self.ranges:
            out[d] = b - a
        return out

    def offsets(self) -> dict:
        return {d: a for d, a, _ in self.ranges}

    def n_configs(self, full: dict) -> int:
        return int(np.prod(list(self.sizes(full).values())))


def _layout(shape, max_rows: int) -> tuple[int, int]:
    """(k, step): a chunk of at most ``max_rows`` rows of ``shape`` (C order) is one index
    on each of ``shape[:k - 1]``, ``step`` indices of ``shape[k - 1]`` and all of
    ``shape[k:]``; k = 0 when the whole grid fits."""
    max_rows = max(int(max_rows), 1)
    k = len(shape)  # dims[k:] are whole inside a chunk
    while k > 0 and int(np.prod(shape[k - 1:])) <= max_rows:
        k -= 1
    if k == 0:
        return 0, 1
    inner = int(np.prod(shape[k:]))
    return k, max(max_rows // inner, 1)  # indices of dim k-1 per chunk


def n_chunks(shape, max_rows: int) -> int:
    """How many chunks :func:`plan` makes of a grid of ``shape`` (in its chunk order)."""
    k, step = _layout(shape, max_rows)
    if k == 0:
        return 1
    return int(np.prod(shape[:k - 1])) * -(-shape[k - 1] // step)


def largest_chunk(shape, max_rows: int) -> list:
    """The sizes, per dim of ``shape``, of the largest chunk :func:`plan` makes."""
    k, step = _layout(shape, max_rows)
    if k == 0:
        return list(shape)
    return [1] * (k - 1) + [min(step, shape[k - 1])] + list(shape[k:])


def plan(spec: SweepSpec, max_rows: int, dims=GRID_DIMS) -> list[Chunk]:
    """Chunks of at most ``max_rows`` configurations each (at least one row each), slabs
    of the grid flattened in ``dims`` order (a permutation of ``GRID_DIMS``). A chunk's
    ranges name only the dims it does not hold whole (an axis of one value is always
    whole), so a plan of many chunks stays small."""
    c = coords(spec)
    shape = [len(c[d]) for d in dims]
    k, step = _layout(shape, max_rows)
    if k == 0:
        return [Chunk(0, ())]
    split = [i for i in range(k - 1) if shape[i] > 1]
    chunks = []
    for outer in np.ndindex(*[shape[i] for i in split]):
        ranges = tuple((dims[i], int(o), int(o) + 1) for i, o in zip(split, outer))
        for start in range(0, shape[k - 1], step):
            stop = min(start + step, shape[k - 1])
            chunks.append(Chunk(len(chunks), ranges + ((dims[k - 1], start, stop),)))
    return chunks


def _threads() -> int:
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def fit_rows(spec: SweepSpec, results: bool, budget: int, parallel: int, max_rows: int,
             held: int | None = None, threads: int | None = None,
             breakdown: bool = False) -> int:
    """Configurations per chunk, at most ``max_rows``, such that ``parallel`` chunks in
    flight (:func:`dse.grid.chunk_bytes` each, for the largest chunk of the plan), what
    the process holds (``held`` [bytes], default :func:`dse.grid.held_bytes`, plus
    :func:`dse.grid.process_bytes`) and the bookkeeping of all the chunks
    (``BYTES_PER_CHUNK`` each) fit ``budget`` [bytes]. ``threads``: numba threads a chunk
    may use (default: all). ``breakdown``: the chunks carry the breakdown columns
    (:data:`BREAKDOWN_BYTES` more per configuration).

    Raises a one-line ConfigError, before any work, when no chunk size fits (the budget is
    below what the process holds, or the grid needs so many chunks of the largest size
    that fits that their bookkeeping does not), or when ``max_rows`` makes too many
    chunks to keep track of.
    """
    dims = GRID_DIMS if results else REDUCTION_ORDER
    c = coords(spec)
    shape = [len(c[d]) for d in dims]
    n_total = int(np.prod(shape))
    parallel = max(int(parallel), 1)
    threads = threads or _threads()
    held = held_bytes() if held is None else held
    process = process_bytes(results)
    free = budget - held - process

    def in_flight(rows):  # the chunks running and the final tables' writer
        sizes = dict(zip(dims, largest_chunk(shape, rows)))
        extra = BREAKDOWN_BYTES * float(np.prod(list(sizes.values()))) if breakdown else 0.0
        return (min(parallel, n_chunks(shape, rows)) * (chunk_bytes(sizes, results, threads)
                                                        + extra)
                + PARTIAL_ROW_BYTES * partial_rows(sizes))

    def needs(rows):
        return in_flight(rows) + n_chunks(shape, rows) * BYTES_PER_CHUNK

    def largest(room):  # the largest chunk size whose chunks in flight fit (0: none)
        lo, hi = 0, n_total
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if in_flight(mid) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # the bookkeeping grows as the chunks shrink: leave room for that of the last guess
    lo, reserve = largest(free), 0
    for _ in range(8):
        if lo == 0 or needs(lo) <= free:
            break
        reserve = max(reserve * 2, n_chunks(shape, lo) * BYTES_PER_CHUNK)
        lo = largest(free - reserve)
    sizes = " x ".join(f"{d}={n:,}" for d, n in zip(dims, shape) if n > 1) or "one point"
    if lo == 0 or needs(lo) > free:
        best = max(lo, 1)
        raise ConfigError(
            f"{spec.source}: [grid] {sizes} ({n_total:,} configurations) does not fit the "
            f"{human_bytes(budget)} budget: {n_chunks(shape, best):,} chunks of "
            f"{min(best, n_total):,} need about {human_bytes(held + process + needs(best))} "
            f"(the process holds {human_bytes(held)}); raise --memory-limit or shrink the grid")
    rows = min(lo, max(int(max_rows), 1))
    if needs(rows) > free:
        raise ConfigError(
            f"{spec.source}: [grid] {sizes} ({n_total:,} configurations) in chunks of "
            f"{rows:,} makes {n_chunks(shape, rows):,} chunks, whose bookkeeping alone needs "
            f"about {human_bytes(n_chunks(shape, rows) * BYTES_PER_CHUNK)}, more than the "
            f"{human_bytes(budget)} budget allows; raise --chunk-rows (at least "
            f"{_fewest_rows(needs, free, rows, lo):,} fits) or --memory-limit")
    merge = _merge_bytes(shape, dims, rows)
    if merge > free:
        raise ConfigError(
            f"{spec.source}: [grid] {sizes} ({n_total:,} configurations) in chunks of "
            f"{rows:,}: merging the chunks' Pareto and best rows needs about "
            f"{human_bytes(held + process + merge)}, more than the {human_bytes(budget)} "
            "budget; raise --memory-limit or shrink the grid")
    return rows


def _merge_bytes(shape, dims, rows: int) -> float:
    """Peak of merging the partial tables at the end, when chunks split groups: one
    (hardware, model) pair's partial rows at a time (0 when every chunk holds whole
    groups: the partials are then written in turn, never merged)."""
    k, _ = _layout(shape, rows)
    if k == 0 or all(d not in STRATEGY_DIMS for d in dims[:k]):
        return 0.0
    sizes = dict(zip(dims, largest_chunk(shape, rows)))
    full = dict(zip(dims, shape))
    per_pair = n_chunks(shape, rows) / (full["hardware"] * full["model"])
    return MERGE_ROW_BYTES * partial_rows(sizes) * per_pair


def _fewest_rows(needs, free, lo: int, hi: int) -> int:
    """The smallest chunk size in (lo, hi] whose chunks fit (``needs(hi) <= free``)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if needs(mid) <= free:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- budget
def default_budget_bytes() -> int:
    """Half of the memory available now."""
    return available_memory_bytes() // 2


def check_reduction_size(spec: SweepSpec, budget: int) -> None:
    """The merged Pareto / best tables live in memory: refuse grids whose groups do not fit."""
    c = coords(spec)
    groups = int(np.prod([len(c[d]) for d in GROUP_DIMS]))
    if groups * BYTES_PER_GROUP > budget:
        n = spec.n_configs()
        sizes = " x ".join(f"{d}={len(c[d])}" for d in GROUP_DIMS if len(c[d]) > 1)
        sizes = f" ({sizes})" if sizes else ""
        raise ConfigError(
            f"{spec.source}: [grid] has {n:,} configurations in {groups:,} "
            f"group{'s' if groups != 1 else ''}{sizes}: "
            f"their Pareto and best tables need about {human_bytes(groups * BYTES_PER_GROUP)}, "
            f"more than the {human_bytes(budget)} budget; shrink a group axis "
            "(input_tokens, output_tokens, what-if scales) or raise --memory-limit")


def plan_rows(spec: SweepSpec, budget: int, results: bool, parallel: int,
                chunk_rows: int | None, breakdown: bool = False) -> int:
    """Configurations per chunk: what fits the budget beside what this process already
    holds (the interpreter, numba, libraries), at most ``chunk_rows`` when given
    (``breakdown``: with the breakdown columns)."""
    n_total = spec.n_configs()
    rows = int(max(-(-n_total // (4 * parallel)), MIN_CHUNK_ROWS))
    return fit_rows(spec, results, budget, parallel, min(rows, chunk_rows or rows),
                    breakdown=breakdown)


# The SweepSpec field holding each preset axis' loaded presets (in axis order).
PRESET_FIELDS = {"hardware": "hardware", "model": "models", "engine": "engines",
                 "quant": "quants"}


def subspec(spec: SweepSpec, chunk: Chunk) -> SweepSpec:
    """The sweep spec of one chunk: every axis (and a preset axis' presets) restricted to
    the chunk's range."""
    grid = dict(spec.grid)
    what_if = dict(spec.what_if)
    presets = {}
    for dim, a, b in chunk.ranges:
        if dim in what_if:
            what_if[dim] = what_if[dim][a:b]
        else:
            grid[dim] = grid[dim][a:b]
        if dim in PRESET_FIELDS:
            presets[PRESET_FIELDS[dim]] = getattr(spec, PRESET_FIELDS[dim])[a:b]
    return dataclasses.replace(spec, grid=grid, what_if=what_if, **presets)


def spec_hash(spec: SweepSpec, extra: dict | None = None) -> str:
    """A hash of everything that determines a sweep's output (axes, presets, constraints)."""
    payload = {
        "grid": {k: list(v) for k, v in spec.grid.items()},
        "what_if": {k: list(v) for k, v in spec.what_if.items()},
        "constraints": dataclasses.asdict(spec.constraints),
        "hardware": [dataclasses.asdict(h) | {"source": ""} for h in spec.hardware],
        "models": [dataclasses.asdict(m) | {"source": ""} for m in spec.models],
        "engines": [dataclasses.asdict(e) | {"source": ""} for e in spec.engines],
        "quants": [dataclasses.asdict(q) | {"source": ""} for q in spec.quants],
        "extra": extra or {},
    }
    if spec.objectives != type(spec.objectives)():  # the defaults keep earlier hashes
        payload["objectives"] = dataclasses.asdict(spec.objectives)
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
