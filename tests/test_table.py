"""How the results table is laid out: slab copies, run lengths and the per-column Parquet
encodings and statistics chosen from them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from dse import io
from dse.grid import GRID_DIMS, coords
from dse.kernels.gather import Slabs
from dse.sweep import partitions
from dse.table import PLAIN_MIN_RUN, PRESET_AXES, block_batches, columns, run_lengths, schema


@st.composite
def broadcast_cases(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=6))
    small = [n if draw(st.booleans()) else 1 for n in shape]
    k = draw(st.integers(0, len(shape)))
    inner = draw(st.integers(1, 40))
    return tuple(shape), tuple(small), k, inner


@settings(max_examples=200, deadline=None)
@given(broadcast_cases())
def test_slabs_equal_numpy_broadcast(case):
    shape, small_shape, k, inner = case
    small = np.arange(np.prod(small_shape), dtype=np.float64).reshape(small_shape)
    slabs = Slabs(shape, k, inner_rows=inner)
    prep = slabs.prepare(small)
    full = np.broadcast_to(small, shape)
    for outer in np.ndindex(*shape[:k]):
        np.testing.assert_array_equal(slabs.take(prep, outer), full[outer].ravel())


def test_run_lengths_hand_case():
    # rows of shape (2, 3, 4) in C order: a column over dim 0 repeats 12 times, over dim 1
    # 4 times, over the last dim once; a constant spans all 24 rows
    cols = {"a": np.zeros((2, 1, 1)), "b": np.zeros((1, 3, 1)), "c": np.zeros((1, 1, 4)),
            "ab": np.zeros((2, 3, 1)), "k": np.zeros((1, 1, 1))}
    assert run_lengths(cols) == {"a": 12, "b": 4, "c": 1, "ab": 4, "k": 24}


SPEC = {"grid": {"hardware": ["h100_sxm"], "model": ["llama3_8b"],
                 "batch": [1, 2, 4, 8, 16, 32, 64, 128], "input_tokens": [128, 1024],
                 "output_tokens": [64, 256], "tp": [1, 2], "dp": [1, 2, 4]},
        "what_if": {"memory_capacity_scale": [1.0, 0.1]}}


def _partition(tmp_path):
    spec = dse.parse_sweep(SPEC)
    ds = dse.evaluate(spec)
    c = coords(spec)
    names = {d: list(c[d]) for d in PRESET_AXES}
    sch = schema()
    [(values, batches, options)] = partitions(ds, ("hardware", "model"), sch,
                                              names)
    path = tmp_path / "p.parquet"
    io.write_batches(path, batches=batches, **options)
    cols = columns(ds, sch, names)
    return path, run_lengths(cols), options, ds, names, sch, cols


def test_long_runs_plain_short_runs_dictionary(tmp_path):
    path, runs, options, *_ = _partition(tmp_path)
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    encodings = {n: meta.row_group(0).column(i).encodings for i, n in enumerate(names)}
    # compute_scale (a float axis) keeps one value throughout: long runs, plain pages;
    # dp and memory_capacity_scale change every row or two: dictionary pages
    assert runs["compute_scale"] >= PLAIN_MIN_RUN \
        and "PLAIN_DICTIONARY" not in encodings["compute_scale"] \
        and "RLE_DICTIONARY" not in encodings["compute_scale"]
    # integer columns (int64) take the dictionary whatever their runs: plain int64 pages
    # fold badly under zstd
    assert runs["tp"] >= PLAIN_MIN_RUN and "RLE_DICTIONARY" in encodings["tp"]
    for name in ("dp", "memory_capacity_scale"):
        assert runs[name] < PLAIN_MIN_RUN
        assert "RLE_DICTIONARY" in encodings[name] or "PLAIN_DICTIONARY" in encodings[name]
    for name in ("weight_dtype", "bound", "infeasible_reason"):  # categoricals: always
        assert "RLE_DICTIONARY" in encodings[name] or "PLAIN_DICTIONARY" in encodings[name]


def test_statistics_only_where_they_can_skip_row_groups(tmp_path):
    path, runs, options, *_ = _partition(tmp_path)
    meta = pq.ParquetFile(path).metadata
    rows = meta.row_group(0).num_rows
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    stats = {n: meta.row_group(0).column(i).is_stats_set for i, n in enumerate(names)}
    assert stats["weight_dtype"] and stats["attention_dp"]  # constant in the file
    assert runs["dp"] < rows and not stats["dp"]
    assert not stats["ttft_s"]  # float metrics never


def test_written_partition_reads_back_as_broadcast_grid(tmp_path):
    path, runs, options, ds, names, sch, cols = _partition(tmp_path)
    got = pq.read_table(path)
    want = pa.Table.from_batches(list(block_batches(cols, sch, names)))
    for name in got.column_names:
        assert got[name].to_pylist() == want[name].to_pylist(), name
    # spot check against the dataset: the rows follow GRID_DIMS order
    flat = {d: np.broadcast_to(ds[d].values.reshape(
        [-1 if e == d else 1 for e in GRID_DIMS]), [ds.sizes[e] for e in GRID_DIMS]).ravel()
        for d in ("batch", "tp", "dp", "memory_capacity_scale")}
    for d, v in flat.items():
        np.testing.assert_array_equal(got[d].to_numpy(), v)
