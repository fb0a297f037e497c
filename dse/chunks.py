"""Split a sweep into chunks that each fit a memory budget.

A chunk is a contiguous slab of the flattened grid: one index on each of the leading dims and
a range on the next one. Sweeps that write the results table flatten in ``GRID_DIMS`` order
(the table's row order); frontiers-only sweeps in ``REDUCTION_ORDER`` (group dims first), so
that a chunk holds whole groups whenever a group's strategies fit in one. Each chunk is
itself a valid sweep spec (:func:`subspec`), so a chunk runs through exactly the same
evaluate / reduce / write code as a whole sweep does, in this process, a thread, or a dask
worker.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .config import SweepSpec
from .grid import GRID_DIMS, coords


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


def plan(spec: SweepSpec, max_rows: int, dims=GRID_DIMS) -> list[Chunk]:
    """Chunks of at most ``max_rows`` configurations each (at least one row each), slabs
    of the grid flattened in ``dims`` order (a permutation of ``GRID_DIMS``)."""
    c = coords(spec)
    shape = [len(c[d]) for d in dims]
    max_rows = max(int(max_rows), 1)
    k = len(shape)  # dims[k:] are whole inside a chunk
    while k > 0 and int(np.prod(shape[k - 1:])) <= max_rows:
        k -= 1
    if k == 0:
        return [Chunk(0, ())]
    inner = int(np.prod(shape[k:]))
    step = max(max_rows // inner, 1)  # indices of dim k-1 per chunk
    chunks = []
    for outer in np.ndindex(*shape[:k - 1]):
        for start in range(0, shape[k - 1], step):
            stop = min(start + step, shape[k - 1])
            ranges = tuple((dims[i], o, o + 1) for i, o in enumerate(outer))
            chunks.append(Chunk(len(chunks), ranges + ((dims[k - 1], start, stop),)))
    return chunks


def subspec(spec: SweepSpec, chunk: Chunk) -> SweepSpec:
    """The sweep spec of one chunk: every axis restricted to the chunk's range."""
    grid = dict(spec.grid)
    what_if = dict(spec.what_if)
    hardware, models = spec.hardware, spec.models
    for dim, a, b in chunk.ranges:
        if dim == "hardware":
            hardware = hardware[a:b]
            grid["hardware"] = grid["hardware"][a:b]
        elif dim == "model":
            models = models[a:b]
            grid["model"] = grid["model"][a:b]
        elif dim in what_if:
            what_if[dim] = what_if[dim][a:b]
        else:
            grid[dim] = grid[dim][a:b]
    return dataclasses.replace(spec, grid=grid, what_if=what_if, hardware=hardware,
                               models=models)


def spec_hash(spec: SweepSpec, extra: dict | None = None) -> str:
    """A hash of everything that determines a sweep's output (axes, presets, constraints)."""
    payload = {
        "grid": {k: list(v) for k, v in spec.grid.items()},
        "what_if": {k: list(v) for k, v in spec.what_if.items()},
        "constraints": dataclasses.asdict(spec.constraints),
        "hardware": [dataclasses.asdict(h) | {"source": ""} for h in spec.hardware],
        "models": [dataclasses.asdict(m) | {"source": ""} for m in spec.models],
        "extra": extra or {},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
