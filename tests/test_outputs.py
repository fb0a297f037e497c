"""The Parquet contract of ``dse sweep`` (and the ``explain`` / ``list`` commands).

One small sweep (2 hardware x 2 models x 192 strategies x 2 what-if values) is run once
per module through the CLI; the tests read its files back (``results/`` as a hive-partitioned
dataset) and check them against brute force in pandas.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import dse
from dse.cli import main

SPEC = """\
# small sweep for the output tests
[grid]
hardware = ["h100_sxm", "a100_80gb"]
model = ["llama3_8b", "mixtral_8x7b"]
batch = [1, 16]
input_tokens = [128, 1024]
output_tokens = [64]
tp = [1, 2, 4]
pp = [1, 2]
ep = [1, 2]
weight_dtype = ["bf16", "fp8"]

[what_if]
memory_bandwidth_scale = [1.0, 1.5]

[constraints]
max_devices = 4
max_tpot_s = 0.05
"""
MAX_DEVICES, MAX_TPOT_S = 4, 0.05

# axis values of SPEC with the defaults filled in; act/kv precisions default to the
# weight precision and are checked separately
AXES = {
    "hardware": ["h100_sxm", "a100_80gb"], "model": ["llama3_8b", "mixtral_8x7b"],
    "batch": [1, 16], "input_tokens": [128, 1024], "output_tokens": [64],
    "tp": [1, 2, 4], "pp": [1, 2], "ep": [1, 2], "attention_dp": [1], "dp": [1],
    "weight_dtype": ["bf16", "fp8"],
    "compute_scale": [1.0], "memory_bandwidth_scale": [1.0, 1.5],
    "memory_capacity_scale": [1.0], "scaleup_bandwidth_scale": [1.0],
    "scaleout_bandwidth_scale": [1.0],
}
AXIS_COLUMNS = ["hardware", "model", "batch", "input_tokens", "output_tokens", "tp", "pp",
                "ep", "attention_dp", "dp", "weight_dtype", "act_dtype", "kv_dtype", "compute_scale",
                "memory_bandwidth_scale", "memory_capacity_scale", "scaleup_bandwidth_scale",
                "scaleout_bandwidth_scale"]
METRIC_COLUMNS = ["devices", "ttft_s", "tpot_s", "e2e_latency_s", "throughput_tokens_per_s",
                  "tokens_per_s_per_device", "tokens_per_s_per_user",
                  "weight_bytes_per_device", "kv_cache_bytes_per_device",
                  "activation_bytes_per_device", "memory_bytes_per_device",
                  "cost_per_million_output_tokens", "feasible", "infeasible_reason", "bound"]
CATEGORICAL = ["hardware", "model", "weight_dtype", "act_dtype", "kv_dtype", "bound",
               "infeasible_reason"]
# results/ is partitioned hive-style by these (folder names, not columns in the files)
PARTITION_BY = ["hardware", "model"]
GROUP = ["hardware", "model", "input_tokens", "output_tokens", "compute_scale",
         "memory_bandwidth_scale", "scaleup_bandwidth_scale", "scaleout_bandwidth_scale",
         "memory_capacity_scale"]
STRATEGY = ["batch", "tp", "pp", "ep", "attention_dp", "dp", "weight_dtype", "act_dtype",
            "kv_dtype"]
# the single-file tables, and everything a sweep leaves in --out (results/, _chunks/: folders)
FILES = ["best.parquet", "pareto.parquet"]
OUT_LISTING = ["best.parquet", "configurations", "manifest.json", "pareto.parquet",
               "sensitivity.parquet"]  # the spec sweeps what-ifs


def _parts(out) -> list:
    """The Parquet part files of ``out/results`` (relative paths, sorted)."""
    root = out / "configurations"
    return sorted(p.relative_to(root) for p in root.rglob("*.parquet"))


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run SPEC once through the CLI; returns (rc, workdir, spec path, out folder)."""
    work = tmp_path_factory.mktemp("sweep")
    spec = work / "spec.toml"
    spec.write_text(SPEC)
    out = work / "out"
    rc = main(["sweep", str(spec), "--out", str(out), "--quiet"])
    return rc, work, spec, out


@pytest.fixture(scope="module")
def out(sweep):
    rc, _, _, out = sweep
    assert rc == 0
    return out


def _normalized(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain strings (NaN kept), integer columns as int64."""
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        elif pd.api.types.is_integer_dtype(df[c].dtype) and not pd.api.types.is_bool_dtype(df[c]):
            df[c] = df[c].astype(np.int64)
    return df


@pytest.fixture(scope="module")
def results(out):
    return _normalized(pd.read_parquet(out / "configurations"))


@pytest.fixture(scope="module")
def pareto(out):
    return _normalized(pd.read_parquet(out / "pareto.parquet"))


@pytest.fixture(scope="module")
def best(out):
    return _normalized(pd.read_parquet(out / "best.parquet"))


# --------------------------------------------------------------------------- files
def test_sweep_writes_expected_outputs(sweep):
    rc, work, _, out = sweep
    assert rc == 0
    assert sorted(os.listdir(out)) == OUT_LISTING
    # the chunks' partial tables are removed once the sweep is complete
    assert (out / "configurations").is_dir() and not (out / "_chunks").exists()
    # no staging folder or temporary file beside --out, nor a temporary file inside it
    assert sorted(os.listdir(work)) == ["out", "spec.toml"]
    assert [p for p in out.rglob("*") if p.name.startswith(".")] == []


def test_results_partitioned_by_hardware_and_model(out):
    # one folder per (hardware, model), holding only part files
    expected = {(f"hardware={h}", f"model={m}") for h in AXES["hardware"] for m in AXES["model"]}
    parts = _parts(out)
    assert parts and {p.parts[:2] for p in parts} == expected
    assert all(len(p.parts) == 3 and p.name.startswith("part-") for p in parts)
    assert sorted(str(p.relative_to(out / "configurations"))
                  for p in (out / "configurations").rglob("*") if p.is_file()) == sorted(map(str, parts))


def test_manifest_lists_finished_chunks(out):
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert isinstance(manifest["spec_hash"], str) and manifest["spec_hash"]
    done = manifest["done"]
    assert done and sum(v["n"] for v in done.values()) == math.prod(
        len(v) for v in AXES.values())
    assert all(set(v) == {"n", "reasons", "files"} for v in done.values())


def test_resume_of_a_finished_sweep_runs_nothing_and_reports_it(sweep):
    rc, work, _, out = sweep
    manifest = (out / "manifest.json").read_bytes()
    s = dse.run_sweep(dse.load_sweep(work / "spec.toml"), out, progress=False, resume=True)
    assert s.n_resumed == s.n_chunks and s.seconds["chunks"] == 0.0
    assert s.n_pareto == len(pd.read_parquet(out / "pareto.parquet"))
    assert s.n_groups == len(pd.read_parquet(out / "best.parquet"))
    assert (out / "manifest.json").read_bytes() == manifest


def _check_metadata(meta, spec_text):
    assert meta[b"dse.version"].decode() == dse.__version__
    assert meta[b"dse.spec"].decode() == spec_text
    presets = json.loads(meta[b"dse.presets"])
    assert any(p.endswith("h100_sxm.toml") for p in presets)
    assert any(p.endswith("mixtral_8x7b.toml") for p in presets)
    assert "h100_sxm.toml" in meta[b"dse.presets"].decode()


@pytest.mark.parametrize("name", FILES)
def test_sweep_file_metadata_explains_itself(out, sweep, name):
    _check_metadata(pq.read_schema(out / name).metadata, sweep[2].read_text())


def test_results_parts_metadata_explains_itself(out, sweep):
    parts = _parts(out)
    assert parts
    for part in parts:
        _check_metadata(pq.read_schema(out / "configurations" / part).metadata, sweep[2].read_text())


# --------------------------------------------------------------------------- results
def test_results_row_count_is_grid_size(out, results):
    n = math.prod(len(v) for v in AXES.values())
    assert sum(pq.read_metadata(out / "configurations" / p).num_rows for p in _parts(out)) == n
    assert len(results) == n


def test_results_has_every_column(results):
    missing = [c for c in AXIS_COLUMNS + METRIC_COLUMNS if c not in results.columns]
    assert missing == []


def test_results_categoricals_dictionary_encoded(out):
    # inside each part file: the categoricals that are not partition columns
    parts = _parts(out)
    assert parts
    for part in parts:
        sch = pq.read_schema(out / "configurations" / part)
        for c in CATEGORICAL:
            if c in PARTITION_BY:
                assert c not in sch.names, (part, c)
            else:
                assert pa.types.is_dictionary(sch.field(c).type), (part, c, sch.field(c).type)


def test_results_partition_columns_come_from_folders(out):
    dataset = pads.dataset(out / "configurations", format="parquet", partitioning="hive")
    for c in PARTITION_BY:
        typ = dataset.schema.field(c).type
        assert pa.types.is_string(typ) or (pa.types.is_dictionary(typ)
                                           and pa.types.is_string(typ.value_type)), (c, typ)
    # each part file's partition values are its folder names; the rows of each
    # (hardware, model) are exactly that pair's share of the grid
    n_per_pair = math.prod(len(v) for k, v in AXES.items() if k not in PARTITION_BY)
    rows = {}
    for fragment in dataset.get_fragments():
        keys = pads.get_partition_keys(fragment.partition_expression)
        folders = [p for p in Path(fragment.path).parts if "=" in p]
        assert folders == [f"{c}={keys[c]}" for c in PARTITION_BY], fragment.path
        pair = tuple(keys[c] for c in PARTITION_BY)
        rows[pair] = rows.get(pair, 0) + fragment.count_rows()
    expected = {(h, m): n_per_pair for h in AXES["hardware"] for m in AXES["model"]}
    assert rows == expected
    frame = dataset.to_table(columns=PARTITION_BY).to_pandas()
    counts = frame.astype(str).groupby(PARTITION_BY).size()
    assert {k: int(v) for k, v in counts.items()} == expected


@pytest.mark.parametrize("name", ["pareto.parquet", "best.parquet"])
def test_reduced_tables_categoricals_dictionary_encoded(out, name):
    sch = pq.read_schema(out / name)
    for c in ("hardware", "model", "weight_dtype", "act_dtype", "kv_dtype", "bound"):
        assert pa.types.is_dictionary(sch.field(c).type), (c, sch.field(c).type)


def test_results_no_nan_in_float_columns(results):
    # cost_per_million_output_tokens is null exactly where the hardware preset has no price
    floats = [c for c in results.columns if pd.api.types.is_float_dtype(results[c])
              and c != "cost_per_million_output_tokens"]
    assert "ttft_s" in floats and "memory_bytes_per_device" in floats
    nan = {c: int(results[c].isna().sum()) for c in floats if results[c].isna().any()}
    assert nan == {}


def test_results_cost_per_million_output_tokens(results):
    import dse
    for hw, rows in results.groupby("hardware", observed=True):
        price = dse.load_hardware(hw).price_per_device_hour_usd
        cost = rows["cost_per_million_output_tokens"]
        if not price:
            assert cost.isna().all()
            continue
        expected = rows["devices"] * price / 3600 / rows["throughput_tokens_per_s"] * 1e6
        np.testing.assert_allclose(cost, expected, rtol=1e-12)


def test_results_every_combination_once(results):
    assert not results.duplicated(AXIS_COLUMNS).any()
    names = list(AXES)
    expected = set(itertools.product(*AXES.values()))
    got = set(results[names].itertuples(index=False, name=None))
    assert got == expected


def test_results_derived_columns_consistent(results):
    r = results
    np.testing.assert_array_equal(r["devices"],
                                  r["tp"] * r["attention_dp"] * r["pp"] * r["dp"])
    np.testing.assert_allclose(r["e2e_latency_s"],
                               r["ttft_s"] + (r["output_tokens"] - 1) * r["tpot_s"], rtol=1e-12)
    np.testing.assert_allclose(r["tokens_per_s_per_user"], 1.0 / r["tpot_s"], rtol=1e-12)
    np.testing.assert_allclose(r["tokens_per_s_per_device"],
                               r["throughput_tokens_per_s"] / r["devices"], rtol=1e-12)
    # memory holds the weights and the KV cache of the running requests: the whole batch
    # (kv_cache_bytes_per_device) for a static batch; under continuous serving (the
    # default) only the running_requests the memory admits, the rest wait
    assert (r["memory_bytes_per_device"]
            >= r["weight_bytes_per_device"]
            + r["kv_cache_bytes_per_device"] * r["running_requests"] / r["batch"]).all()


def test_results_feasible_iff_no_reason(results):
    assert results["feasible"].dtype == bool
    assert (results["feasible"] == results["infeasible_reason"].isna()).all()
    assert results["feasible"].any() and not results["feasible"].all()


def test_results_ep_on_dense_model_infeasible(results):
    rows = results[(results["ep"] == 2) & (results["model"] == "llama3_8b")]
    assert len(rows) > 0 and not rows["feasible"].any()
    # where ep divides tp, the dense model is the only reason; with tp = 1 the earlier
    # check "ep_not_divisor_of_tp" is reported first (first failing check wins)
    divisible = rows["tp"] % rows["ep"] == 0
    assert (rows.loc[divisible, "infeasible_reason"] == "ep_on_dense_model").all()
    assert set(rows.loc[~divisible, "infeasible_reason"]) <= {"ep_not_divisor_of_tp",
                                                               "ep_on_dense_model"}


def test_results_act_and_kv_dtype_default_to_weight(results):
    assert (results["act_dtype"] == results["weight_dtype"]).all()
    assert (results["kv_dtype"] == results["act_dtype"]).all()


# --------------------------------------------------------------------------- pareto
def _dominates(ax, ay, bx, by):
    """[len(a), len(b)] boolean: a[i] dominates b[j] (>= both, > in one)."""
    ax, ay = np.asarray(ax)[:, None], np.asarray(ay)[:, None]
    bx, by = np.asarray(bx)[None, :], np.asarray(by)[None, :]
    return (ax >= bx) & (ay >= by) & ((ax > bx) | (ay > by))


def test_pareto_rows_feasible_in_results(results, pareto):
    assert len(pareto) > 0
    assert not pareto.duplicated(AXIS_COLUMNS).any()
    merged = pareto[AXIS_COLUMNS + ["tokens_per_s_per_device", "tokens_per_s_per_user"]].merge(
        results, on=AXIS_COLUMNS, how="left", suffixes=("", "_results"), validate="1:1")
    assert merged["feasible"].eq(True).all()
    np.testing.assert_array_equal(merged["tokens_per_s_per_device"],
                                  merged["tokens_per_s_per_device_results"])
    np.testing.assert_array_equal(merged["tokens_per_s_per_user"],
                                  merged["tokens_per_s_per_user_results"])


def test_pareto_matches_brute_force(results, pareto):
    feasible = results[results["feasible"]]
    pareto_groups = dict(iter(pareto.groupby(GROUP, dropna=False)))
    n_checked = 0
    for key, grp in feasible.groupby(GROUP):
        front = pareto_groups.get(key)
        assert front is not None, f"group {key} has feasible rows but no frontier"
        # no feasible row strictly dominates a frontier row
        dom = _dominates(grp["tokens_per_s_per_device"], grp["tokens_per_s_per_user"],
                         front["tokens_per_s_per_device"], front["tokens_per_s_per_user"])
        assert not dom.any(axis=0).any(), f"dominated frontier row in group {key}"
        # every feasible row off the frontier is dominated by a frontier row
        on_front = grp[STRATEGY].apply(tuple, axis=1).isin(
            set(front[STRATEGY].itertuples(index=False, name=None)))
        off = grp[~on_front.to_numpy()]
        dom = _dominates(front["tokens_per_s_per_device"], front["tokens_per_s_per_user"],
                         off["tokens_per_s_per_device"], off["tokens_per_s_per_user"])
        assert dom.any(axis=0).all(), f"undominated row dropped in group {key}"
        n_checked += 1
    assert n_checked == len(pareto_groups) > 1


# --------------------------------------------------------------------------- best
def _qualifies(df):
    return df["feasible"] & (df["devices"] <= MAX_DEVICES) & (df["tpot_s"] <= MAX_TPOT_S)


def test_best_one_row_per_group(results, best):
    assert not best.duplicated(GROUP).any()
    groups = set(results[GROUP].drop_duplicates().itertuples(index=False, name=None))
    assert set(best[GROUP].itertuples(index=False, name=None)) == groups
    assert best["found"].dtype == bool


def test_best_matches_brute_force(results, best):
    ok = results[_qualifies(results)]
    expected = ok.groupby(GROUP)["tokens_per_s_per_device"].max()
    assert best["found"].any()
    for _, row in best.iterrows():
        key = tuple(row[GROUP])
        if row["found"]:
            assert key in expected.index
            assert row["tokens_per_s_per_device"] == pytest.approx(expected[key], rel=1e-12)
            assert row["devices"] <= MAX_DEVICES and row["tpot_s"] <= MAX_TPOT_S
        else:
            assert key not in expected.index, f"group {key} has a qualifying row"


def test_best_row_is_a_qualifying_results_row(results, best):
    found = best[best["found"]].copy()
    for c in ("batch", "tp", "pp", "ep", "attention_dp", "dp"):
        found[c] = found[c].astype(np.int64)
    merged = found[AXIS_COLUMNS].merge(results, on=AXIS_COLUMNS, how="left",
                                       validate="1:1")
    assert len(merged) == len(found)
    assert _qualifies(merged).all()


# A sweep where one group cannot meet the constraints: mixtral_8x7b in bf16 does not fit
# one 80 GB device at tp = 1 (about 93 GB of weights), llama3_8b does.
MIXED_SPEC = """\
[grid]
hardware = ["h100_sxm"]
model = ["llama3_8b", "mixtral_8x7b"]
batch = [1, 16]
input_tokens = [128]
output_tokens = [64]

[constraints]
max_devices = 4
"""
NOTHING_FEASIBLE_SPEC = '[grid]\nmodel = ["mixtral_8x7b"]\ninput_tokens = [128]\noutput_tokens = [16]\n'


def test_best_unmet_group_has_found_false_and_empty_columns(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(MIXED_SPEC)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    results = _normalized(pd.read_parquet(tmp_path / "out" / "configurations"))
    best = _normalized(pd.read_parquet(tmp_path / "out" / "best.parquet")).set_index("model")
    assert bool(best.loc["llama3_8b", "found"]) is True
    assert bool(best.loc["mixtral_8x7b", "found"]) is False
    assert not results.loc[results["model"] == "mixtral_8x7b", "feasible"].any()
    empty = best.loc["mixtral_8x7b", STRATEGY + ["devices", "ttft_s", "tpot_s",
                                                 "tokens_per_s_per_device", "bound"]]
    assert empty.isna().all()
    llama = results[(results["model"] == "llama3_8b") & results["feasible"]]
    assert best.loc["llama3_8b", "tokens_per_s_per_device"] == llama[
        "tokens_per_s_per_device"].max()


def _nothing_feasible(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(NOTHING_FEASIBLE_SPEC)
    out = tmp_path / "out"
    rc = main(["sweep", str(spec), "--out", str(out), "--quiet"])
    return rc, spec, out, capsys.readouterr()


def test_sweep_nothing_feasible_exits_3_and_writes_results(tmp_path, capsys):
    rc, spec, out, captured = _nothing_feasible(tmp_path, capsys)
    assert rc == 3  # not an error (2): the sweep ran, nothing fits
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dse: ") and "error" not in lines[0]
    assert str(spec) in lines[0] and "no feasible configuration" in lines[0]
    assert "(by reason: out_of_memory " in lines[0]
    # the tables are still written so the reasons can be inspected (no what-if sweep here:
    # no sensitivity.parquet)
    assert sorted(os.listdir(out)) == [n for n in OUT_LISTING if n != "sensitivity.parquet"]
    results = pd.read_parquet(out / "configurations")
    assert len(results) == 1 and not results["feasible"].any()
    assert len(pd.read_parquet(out / "pareto.parquet")) == 0


def test_pareto_empty_frontier_keeps_categorical_schema(tmp_path, capsys, out):
    rc, _, empty_out, _ = _nothing_feasible(tmp_path, capsys)
    assert rc == 3
    sch = pq.read_schema(empty_out / "pareto.parquet")
    ref = pq.read_schema(out / "pareto.parquet")
    for c in ("hardware", "model", "weight_dtype", "act_dtype", "kv_dtype", "bound"):
        assert pa.types.is_dictionary(sch.field(c).type), (c, sch.field(c).type)
    assert sch.names == ref.names


# --------------------------------------------------------------------------- API
def test_run_sweep_api_matches_cli(sweep, out, tmp_path):
    spec_path = sweep[2]
    out2 = tmp_path / "api_out"
    s = dse.run_sweep(dse.load_sweep(spec_path), out2)
    assert s.n_configs == math.prod(len(v) for v in AXES.values())
    assert sorted(os.listdir(out2)) == OUT_LISTING
    assert _parts(out2) == _parts(out)
    for name in FILES + ["configurations"]:
        pd.testing.assert_frame_equal(pd.read_parquet(out2 / name), pd.read_parquet(out / name))
    assert s.n_feasible == int(pd.read_parquet(out / "configurations")["feasible"].sum())
    assert s.n_pareto == len(pd.read_parquet(out / "pareto.parquet"))
    assert s.n_groups == len(pd.read_parquet(out / "best.parquet"))


def _sorted_frame(path) -> pd.DataFrame:
    df = _normalized(pd.read_parquet(path))
    key = [c for c in AXIS_COLUMNS if c in df.columns]
    return df[sorted(df.columns)].sort_values(key).reset_index(drop=True)


def test_sweep_in_many_chunks_matches_one_chunk(sweep, out, tmp_path):
    # the module's sweep fits one chunk; split into small chunks, the merged Pareto and best
    # tables and the results rows are the same
    spec_path = sweep[2]
    out2 = tmp_path / "chunked"
    assert main(["sweep", str(spec_path), "--out", str(out2), "--quiet",
                 "--chunk-rows", "100"]) == 0
    manifest = json.loads((out2 / "manifest.json").read_text())
    assert manifest["complete"] is True and len(manifest["done"]) > 4
    assert len(manifest["done"]) > len(json.loads((out / "manifest.json").read_text())["done"])
    assert sorted(os.listdir(out2)) == OUT_LISTING
    for name in FILES + ["configurations"]:
        pd.testing.assert_frame_equal(_sorted_frame(out2 / name), _sorted_frame(out / name))


# --------------------------------------------------------------------------- explain / list
EXPLAIN = ["explain", "--model", "llama3_8b", "--hardware", "h100_sxm", "--batch", "1",
           "--input-tokens", "128", "--output-tokens", "64"]


# the phases of explain's rows per serving mode (no flag: the default, continuous)
EXPLAIN_PHASES = {(): {"prefill_iteration", "decode_iteration"},
                  ("--serving", "static"): {"prefill", "decode"}}


@pytest.mark.parametrize("serving", list(EXPLAIN_PHASES))
def test_explain_writes_csv_and_prints_table(tmp_path, capsys, serving):
    csv = tmp_path / "ops.csv"
    rc = main([*EXPLAIN, *serving, "--csv", str(csv)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "prefill" in captured.out and "decode" in captured.out
    assert "ttft_s" in captured.out and "tpot_s" in captured.out
    table = pd.read_csv(csv)
    assert {"phase", "op", "kind", "flops", "bytes", "time_s"} <= set(table.columns)
    assert set(table["phase"]) == EXPLAIN_PHASES[serving]
    assert (table["time_s"] >= 0).all()
    # collectives cost nothing at tp = 1, but every GEMM takes time
    assert (table.loc[table["kind"] == "gemm", "time_s"] > 0).all()


@pytest.mark.parametrize("serving", list(EXPLAIN_PHASES))
def test_explain_writes_parquet(tmp_path, capsys, serving):
    path = tmp_path / "ops.parquet"
    rc = main([*EXPLAIN, *serving, "--parquet", str(path)])
    capsys.readouterr()
    assert rc == 0
    assert os.listdir(tmp_path) == ["ops.parquet"]
    table = pd.read_parquet(path)
    assert {"phase", "op", "kind", "flops", "bytes", "time_s"} <= set(table.columns)
    assert set(table["phase"]) == EXPLAIN_PHASES[serving]


@pytest.mark.parametrize("what, name", [("hardware", "h100_sxm"), ("models", "llama3_8b")])
def test_list_shows_bundled_presets(capsys, what, name):
    rc = main(["list", what])
    captured = capsys.readouterr()
    assert rc == 0
    assert name in captured.out
    assert captured.err == ""


def test_a_sweep_from_before_the_rename_still_reads(tmp_path):
    """Sweeps before 2026-12 named the results table results/: table_dir finds it, so the
    summary's dataset, the report and an overwrite still work on such a folder."""
    from dse.outdir import TABLE_DIR, table_dir
    out = tmp_path / "old"
    s = dse.run_sweep(dse.parse_sweep({"grid": {"batch": [1, 2]}}), out, progress=False)
    assert table_dir(out) == out / TABLE_DIR
    (out / TABLE_DIR).rename(out / "results")  # the old layout
    assert table_dir(out) == out / "results"
    assert s.results().count_rows() == 2
    dse.run_sweep(dse.parse_sweep({"grid": {"batch": [1, 2]}}), out, progress=False,
                  overwrite=True)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [TABLE_DIR]


def test_every_column_says_what_it_means_and_its_unit(out):
    """Self-describing files: each field's Arrow metadata carries a description and a unit
    (empty for names and flags), from the axis registry and the metrics table."""
    for path in (next((out / "configurations").rglob("*.parquet")), out / "pareto.parquet",
                 out / "best.parquet"):
        sch = pq.read_schema(path)
        for f in sch:
            if f.name in ("hardware", "model") and "hardware=" in str(path):
                continue  # hive partition columns live in the folder names
            meta = f.metadata or {}
            assert meta.get(b"description"), (path.name, f.name)
            assert b"unit" in meta, (path.name, f.name)
    sch = pq.read_schema(out / "best.parquet")
    assert sch.field("tpot_s").metadata[b"unit"] == b"s"
    assert sch.field("cost_per_million_output_tokens").metadata[b"unit"] == \
        b"USD per million output tokens"
    assert sch.field("batch").metadata[b"unit"] == b"count"
