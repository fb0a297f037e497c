"""Tables that BI tools and notebooks take as they are (issue 15): every table dse writes
describes each column (description and unit in the field metadata, a glossary in the file
metadata), integers are int64, strings categorical with nulls (never ""); pyarrow, pandas
and DuckDB read each one typed, with no cleaning. Also ``--valid-only``, the manifest's
named reason counts, ``dse.open`` and ``dse.to_frame``.

One sweep (static serving, a dense and a MoE model, ep 1 and 2, two what-if values,
``[disaggregated]``) runs once per module through the CLI in a temporary working
directory, beside ``dse recommend`` and ``dse validate``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import dse
from dse.validate import bundled_measured_path
from dse.cli import main
from dse.config import ConfigError

SPEC = """\
[grid]
hardware = ["h100_sxm", "mi300x"]
model = ["llama3_8b", "mixtral_8x7b"]
serving = ["static"]
engine = ["vllm"]
batch = [1, 16]
input_tokens = [512]
output_tokens = [64]
tp = [1, 2]
ep = [1, 2]
weight_dtype = ["bf16", "fp8"]

[what_if]
memory_bandwidth_scale = [1.0, 1.5]

[constraints]
max_tpot_s = 0.02

[disaggregated]
max_instances = 2
"""
N_CONFIGS = 2 * 2 * 2 * 2 * 2 * 2 * 2


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    work = tmp_path_factory.mktemp("tables")
    old = Path.cwd()
    import os
    os.chdir(work)
    try:
        Path("s.toml").write_text(SPEC)
        assert main(["sweep", "s.toml", "--out", "results", "--valid-only", "--quiet"]) == 0
        assert main(["recommend", "--model", "llama3_8b", "--input-tokens", "512",
                     "--output-tokens", "64", "--hardware", "h100_sxm,mi300x",
                     "--precisions", "fp8", "--max-tpot-s", "0.02", "--out", "rec",
                     "--quiet"]) == 0
        assert main(["validate", str(bundled_measured_path()), "--out", "val"]) == 0
        yield work
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def full(here):
    """The same sweep without --valid-only, through the API."""
    return dse.run_sweep(dse.load_sweep(here / "s.toml"), here / "full", progress=False)


def _files(work: Path) -> list[Path]:
    files = [next((work / "results" / "configurations").rglob("*.parquet"))]
    files += [work / "results" / f"{n}.parquet"
              for n in ("pareto", "best", "disaggregated", "sensitivity")]
    return files + [work / "rec" / "recommend.parquet", work / "val" / "validation.parquet"]


def test_the_sweep_wrote_every_table(here):
    for path in _files(here):
        assert path.is_file() and pq.read_metadata(path).num_rows > 0, path


def test_every_table_says_what_each_column_means_and_its_unit(here):
    from dse.glossary import FILE_KEY
    for path in _files(here):
        sch = pq.read_schema(path)
        glossary = json.loads(sch.metadata[FILE_KEY.encode()])
        for f in sch:
            meta = f.metadata or {}
            assert meta.get(b"description"), (path.name, f.name)
            assert b"unit" in meta, (path.name, f.name)
            assert glossary[f.name] == {"description": meta[b"description"].decode(),
                                        "unit": meta[b"unit"].decode()}, (path.name, f.name)
    units = {f.name: f.metadata[b"unit"].decode()
             for f in pq.read_schema(here / "results" / "best.parquet")}
    assert units["cost_per_million_output_tokens"] == "USD per million output tokens"
    assert units["ttft_s"] == "s" and units["tp"] == "count" and units["hardware"] == ""


def test_every_table_has_int64_counts_categorical_strings_and_no_empty_strings(here):
    for path in _files(here):
        table = pq.read_table(path)
        for f, col in zip(table.schema, table.columns):
            assert not pa.types.is_integer(f.type) or f.type == pa.int64(), (path.name, f)
            assert not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)), \
                (path.name, f)
            if pa.types.is_dictionary(f.type):
                for chunk in col.chunks:
                    assert "" not in chunk.dictionary.to_pylist(), (path.name, f.name)


def test_the_results_reason_is_null_where_feasible(here):
    t = pq.read_table(next((here / "results" / "configurations").rglob("*.parquet")))
    feasible = t.column("feasible").to_numpy(zero_copy_only=False)
    reason = t.column("infeasible_reason")
    assert (reason.is_null().to_numpy(zero_copy_only=False) == feasible).all()


def test_validation_resolves_same_and_holds_nulls(here):
    rows = pd.read_parquet(here / "val" / "validation.parquet")
    for col in ("act_dtype", "kv_dtype"):
        assert "same" not in set(rows[col].astype(str)), col
    assert rows.loc[rows.feasible, "infeasible_reason"].isna().all()


def _duckdb_types(path: Path, hive: bool = False) -> dict:
    import duckdb
    con = duckdb.connect()
    rel = con.read_parquet(str(path), hive_partitioning=hive)
    return dict(zip(rel.columns, (str(t) for t in rel.types)))


def test_duckdb_pandas_and_pyarrow_read_every_table_typed(here):
    """No cleaning: DuckDB sees BIGINT counts, VARCHAR names, DOUBLE measures; pandas
    categoricals, int64 (where no nulls) and floats; pyarrow the written schema."""
    for path in _files(here):
        sch = pq.read_schema(path)
        duck = _duckdb_types(path)
        frame = pd.read_parquet(path)
        for f in sch:
            if pa.types.is_integer(f.type):
                assert duck[f.name] == "BIGINT", (path.name, f.name)
                if not frame[f.name].isna().any():
                    assert frame[f.name].dtype == np.int64, (path.name, f.name)
            elif pa.types.is_dictionary(f.type):
                assert duck[f.name] == "VARCHAR", (path.name, f.name)
                assert isinstance(frame[f.name].dtype, pd.CategoricalDtype), (path.name, f.name)
            elif pa.types.is_floating(f.type):
                assert duck[f.name] == "DOUBLE", (path.name, f.name)
    # the hive-partitioned results table as a whole
    duck = _duckdb_types(here / "results" / "configurations" / "**" / "*.parquet", hive=True)
    assert duck["hardware"] == "VARCHAR" and duck["tp"] == "BIGINT"
    sweep = dse.open(here / "results")
    assert sweep.results.dataset().schema.field("tp").type == pa.int64()
    assert sweep.best.pandas()["tp"].dtype in (np.int64, pd.Int64Dtype())


def test_valid_only_leaves_invalid_combinations_out_but_counts_them(here, full):
    sweep = dse.open(here / "results")
    counts = sweep.reason_counts
    assert sum(counts.values()) == N_CONFIGS
    invalid = sum(n for r, n in counts.items() if r not in ("feasible", "out_of_memory"))
    assert invalid > 0  # ep on the dense model, ep not dividing tp
    assert sweep.results.count() == N_CONFIGS - invalid
    reasons = set(sweep.results.arrow(["infeasible_reason"]).column(0).drop_null()
                  .to_pylist())
    assert reasons <= {"out_of_memory"}
    # the rows left are those of a sweep without --valid-only
    reason = full.results().to_table(columns=["infeasible_reason"]).column(0)
    kept = reason.is_null().to_numpy(zero_copy_only=False) | (
        reason.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False)
        == "out_of_memory")
    assert kept.sum() == sweep.results.count()
    assert full.n_configs == N_CONFIGS and full.reason_counts == {
        r: n for r, n in counts.items() if r != "feasible"}


def test_valid_only_needs_the_results_table(tmp_path):
    with pytest.raises(ConfigError, match="--valid-only"):
        dse.run_sweep(dse.parse_sweep({"grid": {"batch": [1]}}), tmp_path / "x",
                      results=False, valid_only=True)


def test_manifest_names_its_reason_counts_and_old_manifests_still_read(here, tmp_path):
    from dse.report import _reason_counts
    manifest = json.loads((here / "results" / "manifest.json").read_text())
    for entry in manifest["done"].values():
        assert isinstance(entry["reasons"], dict)
        assert sum(entry["reasons"].values()) == entry["n"]
    feasible, named = _reason_counts(manifest)
    # a manifest from before the map: counts listed in REASONS order
    from dse.evaluate import REASONS
    old = json.loads(json.dumps(manifest))
    for entry in old["done"].values():
        entry["reasons"] = [entry["reasons"].get(r or "feasible", 0) for r in REASONS]
    assert _reason_counts(old) == (feasible, named)
    out = tmp_path / "copy"
    import shutil
    shutil.copytree(here / "results", out)
    (out / "manifest.json").write_text(json.dumps(old))
    s = dse.run_sweep(dse.load_sweep(here / "s.toml"), out, progress=False, resume=True,
                      valid_only=True)
    assert s.n_feasible == feasible and s.reason_counts == named


def test_open_gives_lazy_handles_and_an_xarray_view(here):
    sweep = dse.open(here / "results")
    assert sweep.disaggregated is not None and sweep.sensitivity is not None
    best = sweep.best.pandas()
    assert len(best) == sweep.best.count() == pq.read_metadata(
        here / "results" / "best.parquet").num_rows
    rel = sweep.pareto.duckdb()
    assert rel.aggregate("count(*)").fetchall()[0][0] == sweep.pareto.count()
    assert set(sweep.best.glossary()["column"]) == set(best.columns)
    cube = sweep.xarray(columns=["tpot_s", "feasible"])
    assert set(cube.dims) == {"hardware", "model", "batch", "tp", "ep", "weight_dtype",
                              "memory_bandwidth_scale"}
    assert cube["tpot_s"].attrs["unit"] == "s"
    one = cube.sel(hardware="h100_sxm", model="llama3_8b", batch=16, tp=2, ep=1,
                   weight_dtype="fp8", memory_bandwidth_scale=1.5)
    rows = sweep.results.pandas(filter=(pc.field("hardware") == "h100_sxm")
                                & (pc.field("model") == "llama3_8b")
                                & (pc.field("batch") == 16) & (pc.field("tp") == 2)
                                & (pc.field("ep") == 1)
                                & (pc.field("weight_dtype") == "fp8")
                                & (pc.field("memory_bandwidth_scale") == 1.5))
    assert float(one["tpot_s"]) == rows["tpot_s"].item()
    # ep = 2 on the dense model is not a valid combination: --valid-only left it out
    assert np.isnan(float(cube["tpot_s"].sel(hardware="h100_sxm", model="llama3_8b",
                                             batch=16, tp=2, ep=2, weight_dtype="fp8",
                                             memory_bandwidth_scale=1.5)))


def test_open_refuses_a_folder_that_is_not_a_finished_sweep(tmp_path):
    with pytest.raises(dse.OutputError, match="manifest"):
        dse.open(tmp_path)


def test_run_sweep_returns_handles_to_its_tables(full):
    s = full
    assert s.n_configs == N_CONFIGS  # the counts as before
    assert s.tables.best.count() == len(s.best())
    assert s.tables.results.count() == s.results().count_rows() == N_CONFIGS


def test_to_frame_is_the_results_table_of_an_evaluation(here, full):
    spec = dse.load_sweep(here / "s.toml")
    ds = dse.evaluate(spec)
    frame = ds.dse.to_frame()
    assert len(frame) == N_CONFIGS and frame.equals(dse.to_frame(ds))
    assert set(frame["act_dtype"].astype(str)) == {"bf16", "fp8"}  # "same" resolved
    assert isinstance(frame["infeasible_reason"].dtype, pd.CategoricalDtype)
    assert frame.loc[frame.feasible, "infeasible_reason"].isna().all()
    valid = dse.to_frame(ds, valid_only=True)
    assert len(valid) == dse.open(here / "results").results.count()
    written = full.tables.results.pandas()
    key = ["hardware", "model", "batch", "tp", "ep", "weight_dtype", "memory_bandwidth_scale"]
    a = frame.astype({c: str for c in ("hardware", "model", "weight_dtype")}).sort_values(key)
    b = written.astype({c: str for c in ("hardware", "model", "weight_dtype")}
                       ).sort_values(key)
    np.testing.assert_array_equal(a["tpot_s"].to_numpy(), b["tpot_s"].to_numpy())
