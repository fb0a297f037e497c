"""The reduction kernel's twins (strategies that differ only in dims no source varies along,
dp on every grid) are a shortcut, not a change: the frontier, best pick, lifted bests and
reason counts are the same as with every strategy read and reduced on its own."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from dse import parse_sweep
from dse.config import Constraints
from dse.evaluate import evaluate
from dse.objectives import Objectives

R = importlib.import_module("dse.reduce")

GRID = {"hardware": ["h100_sxm", "a100_80gb"], "model": ["llama3_8b", "mixtral_8x7b"],
        "serving": ["continuous", "static"], "batch": [1, 8, 64, 512],
        "input_tokens": [512, 8192], "output_tokens": [1, 256], "tp": [1, 2, 8],
        "ep": [1, 2], "kv_dtype": ["bf16", "fp8"]}
WHAT_IF = {"memory_capacity_scale": [0.5, 1.0]}


def _no_twins(pts):
    """Twin tables under which every strategy is its own representative."""
    tables = []
    for dims in (pts.outer_dims, pts.inner_dims):
        n = int(np.prod([pts.sizes[d] for d in dims]))
        ar = np.arange(n, dtype=np.int64)
        tables += [ar, np.ones(n, dtype=bool), np.arange(n + 1, dtype=np.int64), ar.copy()]
    return tuple(tables)


def _reduced(block, cons, objectives, twins):
    pts = R.Points(block)
    if not twins:
        pts.twins = lambda: _no_twins(pts)
    return pts, R.reduce_points(pts, cons, objectives)


@pytest.mark.parametrize("dp", [[1, 2, 4], [3, 1, 6]])
@pytest.mark.parametrize("cons, objectives", [
    (Constraints(), Objectives()),
    (Constraints(max_devices=8, max_ttft_s=2.0, max_tpot_s=0.05), Objectives()),
    (Constraints(max_devices=16), Objectives(best="throughput_tokens_per_s",
                                             pareto=("throughput_tokens_per_s", "devices"))),
    (Constraints(max_tpot_s=0.1), Objectives(best="cost_per_million_output_tokens",
                                             pareto=("cost_per_million_output_tokens",
                                                     "tokens_per_s_per_user", "ttft_s"))),
    # energy reads the bound of the point's own strategy (twins priced one by one: a
    # device limit, or dp values not a power of two apart)
    (Constraints(max_devices=16), Objectives(best="energy_per_token_j",
                                             pareto=("energy_per_token_j",
                                                     "tokens_per_s_per_user"))),
    (Constraints(), Objectives(best="energy_per_token_j",
                               pareto=("energy_per_token_j", "tokens_per_s_per_user"))),
])
def test_twins_reduce_as_every_strategy_does(dp, cons, objectives):
    block = evaluate(parse_sweep({"grid": GRID | {"dp": dp}, "what_if": WHAT_IF}))
    pts, fast = _reduced(block, cons, objectives, twins=True)
    assert pts.free_dims == ("dp",)  # the grid's only strategy dim no source varies along
    _, slow = _reduced(block, cons, objectives, twins=False)
    for got, want in zip(fast, slow):
        np.testing.assert_array_equal(got, want)
    g, s, best, _, reasons = fast
    assert len(g) > 0 and (best >= 0).any() and reasons[:, 1:].sum() > 0


def test_twin_tables():
    """dp innermost among outer dims (sizes batch 2 x dp 3): representatives are dp's
    first index, members listed representative first."""
    rank, is_rep, starts, members = R._twin_table(("batch", "dp"), {"batch": 2, "dp": 3},
                                                  ("dp",))
    np.testing.assert_array_equal(rank, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(is_rep, [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(starts, [0, 3, 6])
    np.testing.assert_array_equal(members, [0, 1, 2, 3, 4, 5])
    rank, is_rep, starts, members = R._twin_table(("dp", "batch"), {"batch": 2, "dp": 3},
                                                  ("dp",))
    np.testing.assert_array_equal(rank, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(members, [0, 2, 4, 1, 3, 5])
    rank, is_rep, starts, members = R._twin_table((), {}, ("dp",))
    np.testing.assert_array_equal(rank, [0])
    np.testing.assert_array_equal(starts, [0, 1])


@pytest.mark.parametrize("dp, fast", [([1, 2, 4], True), ([2, 1, 8], True),
                                      ([3, 1, 6], False)])
def test_twin_rows_are_point_rows(dp, fast, monkeypatch):
    """The Pareto rows built from the dp representatives' rows are the rows built point by
    point, column for column; dp values that are not the first one's times a power of two
    take the point-by-point path."""
    block = evaluate(parse_sweep({"grid": GRID | {"dp": dp}, "what_if": WHAT_IF}))
    pts = R.Points(block)
    g, s, *_ = R.reduce_points(pts, Constraints())
    asked = []
    original = R.point_rows

    def recording(pts, g, s, *args, **kw):
        asked.append(len(g))
        return original(pts, g, s, *args, **kw)

    monkeypatch.setattr(R, "point_rows", recording)
    got = R.twin_rows(pts, g, s, ({"batch": 4}, {**block.sizes, "batch": 12}))
    want = original(pts, g, s, ({"batch": 4}, {**block.sizes, "batch": 12}))
    assert got.schema.equals(want.schema) and len(got) == len(g) > 0
    for name in want.column_names:
        assert got.column(name).equals(want.column(name)), name
    assert asked == ([len(g) // len(dp)] if fast else [len(g)])


def test_sweep_tables_with_and_without_twin_rows(tmp_path, monkeypatch):
    """A sweep in chunks that split the strategies writes the same pareto.parquet with the
    twins' rows as with every row built on its own."""
    spec = parse_sweep({"grid": GRID | {"dp": [1, 2, 4, 8]}, "what_if": WHAT_IF})
    import dse
    dse.run_sweep(spec, tmp_path / "twins", progress=False, results=False, chunk_rows=500)
    monkeypatch.setattr(R, "twin_rows", R.point_rows)
    dse.run_sweep(spec, tmp_path / "plain", progress=False, results=False, chunk_rows=500)
    import pyarrow.parquet as pq
    for name in ("pareto.parquet", "best.parquet"):
        assert pq.read_table(tmp_path / "twins" / name).equals(
            pq.read_table(tmp_path / "plain" / name)), name
