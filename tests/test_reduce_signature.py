"""The reduction kernel is called with writable arrays whatever the grid's shape: numba
types a read-only array differently, so a read-only argument (a broadcast view that needed
no copy) compiled and cached another ``grouped_reduce`` (~35 s on 2 cores) for some grids."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import dse

R = importlib.import_module("dse.reduce")


@pytest.mark.parametrize("grid", [
    {"batch": [1, 2]},                                   # one value on most axes
    {"batch": [1], "tp": [1]},                           # one strategy
    {"input_tokens": [128, 256], "batch": [1, 8], "tp": [1, 2]},
])
def test_grouped_reduce_gets_writable_arrays(grid, tmp_path, monkeypatch):
    seen = []
    original = R.grouped_reduce

    def recording(*args):
        seen.append([i for i, a in enumerate(args)
                     if isinstance(a, np.ndarray) and not a.flags.writeable])
        return original(*args)

    monkeypatch.setattr(R, "grouped_reduce", recording)
    spec = dse.parse_sweep({"grid": grid})
    dse.run_sweep(spec, tmp_path / "out", progress=False, results=False)
    assert seen and all(not ro for ro in seen), f"read-only arguments: {seen}"
