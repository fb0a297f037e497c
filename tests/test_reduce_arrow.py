"""The reduced rows are Arrow tables of one declared schema, from the chunk's partial files
to the final Parquet, and the Arrow merges keep the tables' semantics and dictionaries."""
import pyarrow as pa
import pyarrow.parquet as pq

import dse
from dse import io
from dse.reduce import BEST_SCHEMA, HIDDEN, LIFTED, PARETO_SCHEMA, merge_best, merge_pareto
from dse.kernels.layout import DTYPES

GRID = {"grid": {"hardware": ["h100_sxm", "mi300x"], "model": ["llama3_8b"],
                 "batch": [1, 8, 64], "input_tokens": [512, 4096], "tp": [1, 2, 4],
                 "weight_dtype": ["bf16", "fp8"]},
        # at 1% of its memory no configuration fits: groups without a best row
        "what_if": {"memory_capacity_scale": [1.0, 0.01]}}


def test_reduce_partials_and_final_files_have_the_declared_schema(tmp_path, monkeypatch):
    from dse import sweep as sweep_module
    # keep the partials, which a finished sweep removes
    monkeypatch.setattr(sweep_module, "remove_partials", lambda out_dir: None)
    out = tmp_path / "out"
    s = dse.run_sweep(dse.parse_sweep(GRID), out, progress=False, chunk_rows=10)
    assert s.n_chunks > 2 and s.n_groups_with_best < s.n_groups  # merged; unmet groups
    for name, sch in (("pareto", PARETO_SCHEMA), ("best", BEST_SCHEMA)):
        parts = list((out / "_chunks").glob(f"{name}-*.arrow"))
        assert len(parts) == s.n_chunks
        for part in parts:
            assert io.read_arrow(part).schema.equals(sch), part
        final = pq.read_schema(out / f"{name}.parquet")
        assert final.remove_metadata().equals(pa.schema([f for f in sch
                                                         if f.name not in (*HIDDEN, *LIFTED)]))


def _table(sch: pa.Schema, rows: int, **given) -> pa.Table:
    """``rows`` rows of ``sch``: the ``given`` columns (strings: dictionary arrays built
    with the given dictionary), zeros, False and "x" elsewhere."""
    cols = []
    for f in sch:
        value = given.get(f.name)
        if pa.types.is_dictionary(f.type):
            codes, names = value if value is not None else ([0] * rows, ["x"])
            value = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                                   pa.array(names, pa.string()))
        elif value is None:
            value = [False] * rows if f.type == pa.bool_() else [0] * rows
        cols.append(pa.array(value, f.type) if not isinstance(value, pa.Array) else value)
    return pa.Table.from_arrays(cols, schema=sch)


def test_merge_best_prefers_found_then_throughput_then_first_strategy():
    a = _table(BEST_SCHEMA, 3, _group=[0, 1, 2], _strategy=[5, 5, 5],
               found=[True, False, True], tokens_per_s_per_device=[10.0, None, 7.0])
    b = _table(BEST_SCHEMA, 3, _group=[0, 1, 2], _strategy=[9, 2, 1],
               found=[True, True, True], tokens_per_s_per_device=[20.0, 1.0, 7.0])
    got = merge_best([a, b])
    assert got.column("_group").to_pylist() == [0, 1, 2]
    assert got.column("_strategy").to_pylist() == [9, 2, 1]
    assert got.column("found").to_pylist() == [True, True, True]


def test_merge_pareto_keeps_undominated_rows_in_group_strategy_order():
    a = _table(PARETO_SCHEMA, 2, _group=[0, 0], _strategy=[4, 1],
               tokens_per_s_per_device=[10.0, 5.0], tokens_per_s_per_user=[1.0, 3.0])
    b = _table(PARETO_SCHEMA, 2, _group=[0, 1], _strategy=[2, 0],
               tokens_per_s_per_device=[4.0, 1.0], tokens_per_s_per_user=[2.0, 1.0])
    got = merge_pareto([a, b])  # (4, 2) is dominated by (5, 3)
    assert list(zip(got.column("_group").to_pylist(), got.column("_strategy").to_pylist())) \
        == [(0, 1), (0, 4), (1, 0)]
    assert got.schema.equals(PARETO_SCHEMA)


def test_merge_encodes_strings_as_a_whole_sweep_would():
    """A merged column's dictionary is the one an in-memory pass gives it: precisions (and
    bound) all their declared names in declared order, whichever the rows use (so the
    per-pair tables of one file read back with one set of categories), other axes the
    names the rows use in grid order (first appearance across the parts' dictionaries,
    chunks being in grid order)."""
    shared = ([1, 1], ["bf16", "fp8"])
    a = _table(PARETO_SCHEMA, 2, _group=[0, 1], _strategy=[0, 0], weight_dtype=shared,
               model=([0, 0], ["m1"]), tokens_per_s_per_device=[1.0, 1.0])
    b = _table(PARETO_SCHEMA, 2, _group=[0, 1], _strategy=[1, 1],
               weight_dtype=([1, 0], ["int8", "fp8"]),
               model=([1, 0], ["m2", "m0"]), tokens_per_s_per_device=[2.0, 2.0],
               tokens_per_s_per_user=[-1.0, 1.0])
    got = merge_pareto([a, b])  # group 0: both rows; group 1: b's row dominates a's
    assert got.column("model").to_pylist() == ["m1", "m0", "m2"]
    assert got.column("weight_dtype").to_pylist() == ["fp8", "fp8", "int8"]
    for column, dictionary in (("weight_dtype", list(DTYPES)),        # all, in order
                               ("model", ["m1", "m2", "m0"])):        # the parts' order
        assert got.column(column).num_chunks == 1
        assert got.column(column).chunks[0].dictionary.to_pylist() == dictionary
    assert got.schema.equals(PARETO_SCHEMA)


def test_a_file_merged_pair_by_pair_reads_back_with_one_set_of_precision_categories(
        tmp_path):
    """A frontiers-only sweep writes one merged table per (hardware, model) pair; readers
    unify the parts' dictionaries by first appearance, so each part carries the declared
    names whichever it uses: pair 0 here has only fp8 weights, pair 1 bf16 and fp8."""
    import pandas as pd
    from dse.reduce import NAMED_ORDER
    from dse.sweep import _merged_by_pair
    from dse.table import CATEGORY_NAMES

    def part(groups, weights):
        rows = len(groups)
        named = {c: ([0] * rows, [CATEGORY_NAMES[c][0]]) for c in NAMED_ORDER}
        named["weight_dtype"] = weights
        return _table(PARETO_SCHEMA, rows, **named, _group=groups,
                      _strategy=list(range(rows)),
                      tokens_per_s_per_device=[1.0 + i for i in range(rows)],
                      tokens_per_s_per_user=[float(rows - i) for i in range(rows)])

    parts = [part([0], ([0], ["fp8"])), part([1, 1], ([0, 1], ["bf16", "fp8"]))]
    io.write_tables(tmp_path / "p.parquet", _merged_by_pair(parts, merge_pareto, 1), {})
    got = pd.read_parquet(tmp_path / "p.parquet")
    assert got["weight_dtype"].tolist() == ["fp8", "bf16", "fp8"]
    assert got["weight_dtype"].cat.categories.tolist() == list(DTYPES)
