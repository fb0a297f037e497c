"""`dse.validate`: predictions against measured serving results, input checks, output file."""
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dse
from dse.calibrate import MAX_TABLE_BYTES
from conftest import cli_error as _cli_error
from dse.config import ConfigError
from dse.validate import (
    INPUT_COLUMNS,
    PREDICTED_COLUMNS,
    bundled_measured_path,
    format_scorecard,
    load_measured,
    make_scorecard,
    validate,
    write_outputs,
)

BUNDLED = Path(__file__).resolve().parents[1] / "configs" / "validation" / "measured.csv"

SCORE_COLUMNS = [f"{m}_{s}" for m in ("ttft", "tpot")
                 for s in ("n", "median_abs_pct_error", "median_pct_error",
                           "mean_abs_pct_error", "share_within_20pct")]


def small_table():
    """Four rows on two (hardware, model) groups; a mix of TTFT-only, TPOT-only and both."""
    return pd.DataFrame([
        {"hardware": "h100_sxm", "model": "llama3_8b", "weight_dtype": "bf16", "batch": 1,
         "input_tokens": 1024, "output_tokens": 128, "tp": 1, "measured_ttft_s": 0.05,
         "measured_tpot_s": 0.007, "source": "hand-made row 1"},
        {"hardware": "h100_sxm", "model": "llama3_8b", "weight_dtype": "fp8", "batch": 8,
         "input_tokens": 2048, "output_tokens": 256, "tp": 2, "measured_ttft_s": 0.2,
         "measured_tpot_s": np.nan, "source": "hand-made row 2"},
        {"hardware": "a100_80gb", "model": "llama2_7b", "weight_dtype": "bf16", "batch": 4,
         "input_tokens": 512, "output_tokens": 64, "tp": 1, "measured_ttft_s": np.nan,
         "measured_tpot_s": 0.01, "source": "hand-made row 3"},
        {"hardware": "a100_80gb", "model": "llama2_7b", "weight_dtype": "int8",
         "act_dtype": "bf16", "batch": 1, "input_tokens": 5, "output_tokens": 200, "tp": 1,
         "pp": 1, "ep": 1, "measured_ttft_s": 0.03, "measured_tpot_s": 0.006,
         "source": "hand-made row 4"},
    ])


def test_validate_returns_rows_and_scorecard_columns():
    rows, card = validate(small_table())
    assert list(rows.columns) == [*INPUT_COLUMNS, *PREDICTED_COLUMNS]
    assert len(rows) == 4
    # defaults filled in for the optional columns, "same" resolved to the precision used
    assert list(rows["act_dtype"]) == [*rows["weight_dtype"][:3], "bf16"]
    assert list(rows["kv_dtype"]) == list(rows["act_dtype"])
    assert list(rows["pp"]) == [1] * 4 and list(rows["ep"]) == [1] * 4
    assert list(card.columns) == ["hardware", "model", "engine", "batch", "rows",
                                  "infeasible_rows", *SCORE_COLUMNS]
    # batch 1, 8, 4, 1: two load buckets, each a row of its own
    assert card[["hardware", "model", "engine", "batch"]].values.tolist() == [
        ["a100_80gb", "llama2_7b", "all", "all"], ["h100_sxm", "llama3_8b", "all", "all"],
        ["all", "all", "all", "1-4"], ["all", "all", "all", "5-16"],
        ["all", "all", "all", "all"]]


def test_scorecard_rolls_up_per_load():
    """Rows spanning several buckets of concurrent requests get a row per bucket (bounds
    inclusive: 4 is in 1-4, 5 in 5-16, 64 in 17-64, 65 over 64), with that bucket's
    statistics; rows of one bucket get none, and neither does an empty bucket."""
    batch = [1, 4, 5, 16, 17, 64, 65, 512]
    rows = pd.DataFrame({
        "hardware": ["h200"] * 8, "model": ["llama3_8b"] * 8, "engine": ["vllm"] * 8,
        "batch": batch, "feasible": [True] * 7 + [False],
        "ttft_error_pct": [10.0, -30.0, 50.0, np.nan, -5.0, -15.0, -60.0, -80.0],
        "tpot_error_pct": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    card = make_scorecard(rows)
    loads = card[card["batch"] != "all"]
    assert loads["batch"].tolist() == ["1-4", "5-16", "17-64", ">64"]
    assert (loads[["hardware", "model", "engine"]] == "all").all().all()
    assert loads["rows"].tolist() == [2, 2, 2, 2]
    assert loads["infeasible_rows"].tolist() == [0, 0, 0, 1]
    assert loads["ttft_n"].tolist() == [2, 1, 2, 2]
    assert loads["ttft_median_abs_pct_error"].tolist() == pytest.approx([20.0, 50.0, 10.0, 70.0])
    assert loads["ttft_median_pct_error"].tolist() == pytest.approx([-10.0, 50.0, -10.0, -70.0])
    assert loads["tpot_median_abs_pct_error"].tolist() == pytest.approx([1.5, 3.5, 5.5, 7.5])
    assert card.iloc[-1]["batch"] == "all" and card.iloc[-1]["rows"] == 8
    assert ">64" in format_scorecard(card)
    # one bucket only (1, 4): no load rows; a bucket without rows (17-64) is left out
    assert (make_scorecard(rows.iloc[:2])["batch"] == "all").all()
    assert make_scorecard(rows.iloc[[0, 2, 7]])["batch"].tolist()[-4:] == [
        "1-4", "5-16", ">64", "all"]
    # a disaggregated table's rows give their clients as concurrency
    disagg = make_scorecard(rows.rename(columns={"batch": "concurrency"}))
    assert disagg["batch"].tolist() == card["batch"].tolist()
    assert disagg["rows"].tolist() == card["rows"].tolist()


def test_scorecard_rolls_up_per_hardware_and_per_engine():
    """A hardware with several models gets its own row, and so does each engine when the
    rows name more than one; each roll-up's statistics are those of its rows."""
    rows = pd.DataFrame({
        "hardware": ["h100_sxm", "h100_sxm", "h200", "h200"],
        "model": ["llama3_8b", "llama3_70b", "llama3_8b", "llama3_8b"],
        "engine": ["vllm", "sglang", "vllm", "vllm"],
        "feasible": [True] * 4,
        "ttft_error_pct": [10.0, -30.0, 50.0, np.nan],
        "tpot_error_pct": [-5.0, 15.0, np.nan, 40.0]})
    card = make_scorecard(rows)
    keys = card[["hardware", "model", "engine"]].values.tolist()
    assert keys == [["h100_sxm", "llama3_70b", "all"], ["h100_sxm", "llama3_8b", "all"],
                    ["h200", "llama3_8b", "all"], ["h100_sxm", "all", "all"],
                    ["all", "all", "sglang"], ["all", "all", "vllm"], ["all", "all", "all"]]
    h100 = card.iloc[3]
    assert h100["rows"] == 2 and h100["ttft_median_abs_pct_error"] == pytest.approx(20.0)
    vllm = card.iloc[5]
    assert vllm["rows"] == 3 and vllm["ttft_n"] == 2
    assert vllm["ttft_median_abs_pct_error"] == pytest.approx(30.0)
    assert vllm["tpot_median_abs_pct_error"] == pytest.approx(22.5)
    assert "sglang" in format_scorecard(card)


def test_validate_predictions_match_a_direct_evaluation():
    rows, _ = validate(small_table())
    spec = dse.parse_sweep({"grid": {"hardware": "h100_sxm", "model": "llama3_8b",
                                     "weight_dtype": "fp8", "batch": 8, "input_tokens": 2048,
                                     "output_tokens": 256, "tp": 2}})
    ds = dse.evaluate(spec)
    assert rows.loc[1, "predicted_ttft_s"] == pytest.approx(float(ds["ttft_s"].values.ravel()[0]),
                                                            rel=1e-12)
    assert rows.loc[1, "predicted_tpot_s"] == pytest.approx(float(ds["tpot_s"].values.ravel()[0]),
                                                            rel=1e-12)
    for m in ("ttft", "tpot"):
        pred, meas = rows[f"predicted_{m}_s"], rows[f"measured_{m}_s"]
        expect = 100 * (pred - meas) / meas
        np.testing.assert_allclose(rows[f"{m}_error_pct"], expect, rtol=1e-12)
        assert (np.isnan(rows[f"{m}_error_pct"]) == np.isnan(meas)).all()
    assert rows["feasible"].all()
    assert rows["infeasible_reason"].isna().all()


def test_validate_scorecard_overall_matches_hand_computation():
    rows, card = validate(small_table())
    overall = card[(card[["hardware", "model", "engine", "batch"]] == "all").all(axis=1)].iloc[0]
    assert overall["rows"] == 4 and overall["infeasible_rows"] == 0
    for m in ("ttft", "tpot"):
        errs = sorted(abs(e) for e in rows[f"{m}_error_pct"] if not math.isnan(e))
        assert len(errs) == 3
        assert overall[f"{m}_n"] == 3
        assert overall[f"{m}_median_abs_pct_error"] == pytest.approx(errs[1], rel=1e-12)
        signed = sorted(e for e in rows[f"{m}_error_pct"] if not math.isnan(e))
        assert overall[f"{m}_median_pct_error"] == pytest.approx(signed[1], rel=1e-12)
        assert overall[f"{m}_mean_abs_pct_error"] == pytest.approx(sum(errs) / 3, rel=1e-12)
        assert overall[f"{m}_share_within_20pct"] == pytest.approx(
            sum(e <= 20 for e in errs) / 3, rel=1e-12)


def test_validate_scorecard_group_without_a_measurement_is_nan():
    table = small_table().iloc[[2]]  # TPOT only
    _, card = validate(table)
    group = card.iloc[0]
    assert group["ttft_n"] == 0
    assert math.isnan(group["ttft_median_abs_pct_error"])
    assert group["tpot_n"] == 1
    assert "-" in format_scorecard(card)


def test_validate_reports_infeasible_rows_with_finite_predictions():
    table = small_table().iloc[[0]].copy()
    table["model"] = "llama3_405b"  # 810 GB of bf16 weights on one 80 GB GPU
    rows, card = validate(table)
    assert not rows.loc[0, "feasible"]
    assert rows.loc[0, "infeasible_reason"] == "out_of_memory"
    assert np.isfinite(rows.loc[0, "predicted_ttft_s"])
    assert card.iloc[-1]["infeasible_rows"] == 1


def _one_line_error(table, *needles):
    with pytest.raises(ConfigError) as exc:
        validate(table, source="measured.csv")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("measured.csv: ")
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_validate_missing_column():
    _one_line_error(small_table().drop(columns=["batch"]), "'batch'", "missing")


def test_validate_unknown_column():
    table = small_table().rename(columns={"kv_dtype": "kv_dtpye"})
    table["kv_dtpye"] = "fp8"
    _one_line_error(table, "'kv_dtpye'", "unknown column", "kv_dtype")


def test_validate_unknown_hardware():
    table = small_table()
    table.loc[2, "hardware"] = "h100_sxn"
    _one_line_error(table, "row 4", "hardware", "'h100_sxn'", "h100_sxm")


def test_validate_unknown_precision():
    table = small_table()
    table.loc[0, "weight_dtype"] = "bf17"
    _one_line_error(table, "row 2", "weight_dtype", "'bf17'", "fp8")


@pytest.mark.parametrize("bad", [0, -4, 2.5, "eight"])
def test_validate_non_positive_batch(bad):
    table = small_table().astype({"batch": object})
    table.loc[1, "batch"] = bad
    _one_line_error(table, "row 3", "batch", repr(bad), "positive integer")


def test_validate_both_measurements_missing():
    table = small_table()
    table.loc[3, ["measured_ttft_s", "measured_tpot_s"]] = np.nan
    _one_line_error(table, "row 5", "measured_ttft_s", "measured_tpot_s", "both empty")


def test_validate_non_positive_measurement():
    table = small_table()
    table.loc[0, "measured_tpot_s"] = -0.5
    _one_line_error(table, "row 2", "measured_tpot_s", "-0.5", "positive")


def test_validate_missing_source():
    table = small_table()
    table.loc[0, "source"] = " "
    _one_line_error(table, "row 2", "source", "missing")


def test_validate_csv_round_trip_with_empty_cells(tmp_path):
    """A CSV with empty optional cells reads and validates like the frame it came from."""
    path = tmp_path / "m.csv"
    small_table().to_csv(path, index=False)
    rows, _ = validate(load_measured(path), source=str(path))
    direct, _ = validate(small_table())
    pd.testing.assert_frame_equal(rows, direct)


def test_load_measured_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_measured(tmp_path / "nope.csv")


def test_bundled_measured_dataset_loads_and_validates():
    assert bundled_measured_path().resolve() == BUNDLED.resolve()
    table = load_measured(BUNDLED)
    rows, card = validate(table, source=str(BUNDLED))
    assert len(rows) == len(table) > 0
    assert rows["source"].str.strip().str.len().gt(20).all()  # every row cites a source
    for m in ("ttft", "tpot"):
        pred = rows[f"predicted_{m}_s"].to_numpy()
        assert np.isfinite(pred).all() and (pred > 0).all()
    measured = rows[["measured_ttft_s", "measured_tpot_s"]]
    assert measured.notna().any(axis=1).all()
    assert card.iloc[-1]["rows"] == len(rows)
    assert card.iloc[-1]["ttft_n"] + card.iloc[-1]["tpot_n"] == measured.notna().sum().sum()


def test_write_outputs_round_trips(tmp_path):
    rows, card = validate(small_table())
    path = write_outputs(rows, tmp_path / "validation.parquet", scorecard=card,
                         source="hand-made")
    assert path == tmp_path / "validation.parquet"
    assert not list(tmp_path.glob(".*tmp"))  # the temporary name was renamed away
    back = pd.read_parquet(path)
    assert list(back.columns) == list(rows.columns)
    for col in rows.columns:
        if rows[col].dtype == object:  # strings as categoricals, missing ones as nulls
            assert back[col].astype(object).where(back[col].notna(), None).tolist() \
                == rows[col].tolist()
        else:
            np.testing.assert_array_equal(back[col].to_numpy(), rows[col].to_numpy())
    import pyarrow.parquet as pq
    meta = pq.read_schema(path).metadata
    assert meta[b"dse.version"] == dse.__version__.encode()
    assert b"ttft_median_abs_pct_error" in meta[b"dse.validation.scorecard"]


def test_write_outputs_refuses_a_folder(tmp_path):
    from dse.io import OutputError
    rows, _ = validate(small_table().iloc[[0]])
    with pytest.raises(OutputError, match="is a folder"):
        write_outputs(rows, tmp_path)


def test_validate_row_by_row_fallback_gives_the_same_predictions(monkeypatch):
    import dse.validate as v
    grouped, _ = validate(small_table())
    monkeypatch.setattr(v, "MAX_GROUP_CONFIGS", 1)
    per_row, _ = validate(small_table())
    pd.testing.assert_frame_equal(grouped, per_row)


def test_validate_resolves_preset_paths_against_base_dir(tmp_path):
    from dse.config import bundled_dir
    text = (bundled_dir("hardware") / "h100_sxm.toml").read_text()
    (tmp_path / "my_gpu.toml").write_text(text.replace('name = "h100_sxm"', 'name = "my_gpu"'))
    table = small_table().iloc[[0]].copy()
    table["hardware"] = "my_gpu.toml"
    rows, card = validate(table, source="m.csv", base_dir=tmp_path)
    ref, _ = validate(small_table().iloc[[0]])
    assert rows.loc[0, "predicted_tpot_s"] == ref.loc[0, "predicted_tpot_s"]
    assert card.iloc[0]["hardware"] == "my_gpu.toml"


# --------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("col, value, expected", [
    ("batch", 1e20, "batch = 1e+20: above the bound 1,048,576 of batch"),
    ("batch", 2**70, f"batch = {2**70}: above the bound 1,048,576 of batch"),
    ("batch", "1e20", "batch = '1e20': above the bound 1,048,576 of batch"),
    ("batch", "9" * 5000, "batch = '999"),
    ("input_tokens", 2**24 + 1, "above the bound 16,777,216 of input_tokens"),
    ("output_tokens", 2**24 + 1, "above the bound 16,777,216 of output_tokens"),
    ("tp", 2**16 + 1, "above the bound 65,536 of tp"),
    ("pp", 2**8 + 1, "above the bound 256 of pp"),
    ("ep", 2**16 + 1, "above the bound 65,536 of ep"),
    ("tp", True, "tp = True: must be a positive integer (at most 65,536)"),
])
def test_validate_int_axis_beyond_its_bound(col, value, expected):
    table = small_table().astype({col: object})
    table.loc[1, col] = value
    msg = _one_line_error(table, "row 3", col, expected)
    assert len(msg) < 400  # the value is cut, not printed in full


def test_validate_dtype_cell_that_is_an_array_is_one_line():
    table = small_table().astype({"weight_dtype": object})
    table.at[2, "weight_dtype"] = np.array(["bf16", "fp8"])
    _one_line_error(table, "row 4", "weight_dtype", "unknown precision")


def test_validate_cli_huge_batch_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    table = small_table()
    table["batch"] = table["batch"].astype(float)
    table.loc[0, "batch"] = 1e20  # int64 overflow in the evaluation before the bound
    table.to_csv("m.csv", index=False)
    msg = _cli_error(capsys, tmp_path, "validate", "m.csv", "--out", "o")
    assert "m.csv: row 2: batch = 1e+20: above the bound 1,048,576 of batch" in msg


def _huge(path):
    with open(path, "wb") as f:
        f.truncate(MAX_TABLE_BYTES + 1)  # sparse


@pytest.mark.parametrize("name, make, expected", [
    ("m.csv", lambda p: p.mkdir(), "is a folder, expected a measured table"),
    ("m.csv", lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    ("m.csv", _huge, "a measured table (CSV or Parquet) is at most 268,435,456 bytes"),
    ("m.csv", lambda p: p.write_bytes(b"hardware,model\n\xff\xfe\n"), "not UTF-8"),
    ("m.csv", lambda p: p.write_bytes(b"\n \n"), "empty file, expected a measured table"),
    ("m.csv", lambda p: p.write_text(",".join(["x"] * 5000)), "5,000 columns"),
    ("m.csv", lambda p: p.write_text("hardware, batch,batch\n"), "column 'batch': appears twice"),
    ("m.csv", lambda p: p.write_text("\u202e\x00,\U0001F600\n\x01,\x02\n"), "unknown column"),
    ("m.parquet", lambda p: p.write_bytes(b"PAR1"), "cannot read the table"),
], ids=["folder", "dev_zero", "huge", "binary", "blank", "wide", "duplicate", "garbage",
        "bad_parquet"])
def test_validate_cli_unreadable_table_is_one_line(tmp_path, monkeypatch, capsys, name, make,
                                                   expected):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / name)
    msg = _cli_error(capsys, tmp_path, "validate", name, "--out", "o")
    assert msg.startswith(f"dse: error: {name}: ") and expected in msg, msg


@pytest.mark.parametrize("col, cells", [
    ("batch", [[1], [2], [3], [4]]), ("measured_ttft_s", [{"a": 1}] * 4),
    ("tp", [True, False, True, True]), ("input_tokens", [2.0**80] * 4),
])
def test_validate_cli_parquet_with_odd_types_is_one_line(tmp_path, monkeypatch, capsys, col,
                                                         cells):
    monkeypatch.chdir(tmp_path)
    table = small_table()
    table[col] = cells
    table.to_parquet("m.parquet")
    msg = _cli_error(capsys, tmp_path, "validate", "m.parquet", "--out", "o")
    assert f"m.parquet: row 2: {col} = " in msg


# ------------------------------------------------------------------ benchmark protocol
def _run_row(**extra):
    """A continuous TensorRT-LLM row whose token budget holds one prompt per iteration."""
    return {"hardware": "h100_sxm", "model": "llama3_8b", "weight_dtype": "fp8",
            "batch": 16, "input_tokens": 900, "output_tokens": 90, "tp": 1,
            "engine": "trtllm", "max_batched_tokens": 1024, "measured_ttft_s": 0.5,
            "measured_tpot_s": 0.01, "source": "made up", **extra}


def test_validate_prices_a_benchmark_run_where_the_row_gives_one():
    # 16 clients start together and the budget takes one prompt per iteration: the run's
    # first wave queues behind 15 prefills, which the steady state never sees
    rows, _ = validate(pd.DataFrame([_run_row(), _run_row(num_prompts=160,
                                                          length_ratio=0.8)]))
    steady, run = rows.iloc[0], rows.iloc[1]
    assert steady["num_prompts"] == 0 and steady["length_ratio"] == 1.0
    assert steady["predicted_ttft_s"] == steady["steady_ttft_s"]
    assert run["steady_ttft_s"] == pytest.approx(steady["steady_ttft_s"], rel=1e-12)
    assert run["predicted_ttft_s"] > 1.3 * run["steady_ttft_s"]
    # decode is the same physics: the run's TPOT stays near the steady state's
    assert run["predicted_tpot_s"] == pytest.approx(run["steady_tpot_s"], rel=0.15)
    assert run["ttft_error_pct"] == pytest.approx(
        100 * (run["predicted_ttft_s"] / 0.5 - 1), rel=1e-12)
    # the steady-state switch compares every row with the closed form
    flat, _ = validate(pd.DataFrame([_run_row(num_prompts=160, length_ratio=0.8)]),
                       protocol=False)
    assert flat.loc[0, "predicted_ttft_s"] == flat.loc[0, "steady_ttft_s"]


def test_protocol_run_of_one_client_is_the_steady_state():
    # one client never queues: its run's mean TTFT is the idle engine's
    from dse.validate import check_table, protocol_run
    rows = check_table(pd.DataFrame([_run_row(batch=1, num_prompts=20)]))
    ttft, tpot = protocol_run(rows.iloc[0])
    full, _ = validate(pd.DataFrame([_run_row(batch=1)]))
    assert ttft == pytest.approx(full.loc[0, "steady_ttft_s"], rel=0.05)
    assert tpot == pytest.approx(full.loc[0, "steady_tpot_s"], rel=0.05)


@pytest.mark.parametrize("col, bad, say", [
    ("num_prompts", -1, "whole number of prompts"), ("num_prompts", 2.5, "whole number"),
    ("num_prompts", "many", "whole number"), ("length_ratio", 0, "in (0, 1]"),
    ("length_ratio", 1.5, "in (0, 1]"), ("length_ratio", "x", "in (0, 1]"),
    ("memory_fraction", 1.2, "fraction in [0, 1]"), ("memory_fraction", -0.1, "[0, 1]"),
    ("memory_fraction", "most", "--mem-fraction-static")])
def test_validate_bad_protocol_values(col, bad, say):
    with pytest.raises(ConfigError, match=rf"t.csv: row 2: {col} = .*{re.escape(say)}"):
        validate(pd.DataFrame([_run_row(**{col: bad})]), source="t.csv")


def test_cli_validate_steady_state_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame([_run_row(num_prompts=160, length_ratio=0.8)]).to_csv("m.csv", index=False)
    from dse.cli import main
    assert main(["validate", "m.csv", "--out", "v", "--steady-state"]) == 0
    rows = pd.read_parquet("v/validation.parquet")
    assert rows.loc[0, "predicted_ttft_s"] == rows.loc[0, "steady_ttft_s"]
    assert rows.loc[0, "num_prompts"] == 160
    capsys.readouterr()


def test_validate_memory_fraction_column_sets_the_servers_kv_room():
    # a TensorRT-LLM server at free_gpu_memory_fraction 0.05 holds far fewer requests than
    # at its default 0.9: its clients wait, the TTFT grows; empty keeps the default
    rows, _ = validate(pd.DataFrame([_run_row(batch=256), _run_row(batch=256),
                                     _run_row(batch=256, memory_fraction=0.05)]).assign(
        memory_fraction=[None, 0.9, 0.05]))
    assert rows.loc[0, "memory_fraction"] == 0.0
    assert rows.loc[1, "predicted_ttft_s"] == rows.loc[0, "predicted_ttft_s"]
    assert rows.loc[2, "predicted_ttft_s"] > 1.3 * rows.loc[0, "predicted_ttft_s"]


def test_cli_validate_workers_give_the_serial_results(tmp_path, monkeypatch, capsys):
    # the benchmark runs priced in two spawned processes: the same table, row for row, as
    # in this one (the simulator is deterministic), their progress reported either way; a
    # bad count is a one-line error
    monkeypatch.chdir(tmp_path)
    pd.DataFrame([_run_row(num_prompts=40), _run_row(num_prompts=160, length_ratio=0.8),
                  _run_row()]).to_csv("m.csv", index=False)
    from dse.cli import main
    assert main(["validate", "m.csv", "--out", "serial"]) == 0
    # the two runs' progress on stderr (a plain line once done: not a terminal here)
    assert "validate: 2/2 benchmark runs simulated (100%)" in capsys.readouterr().err
    assert main(["validate", "m.csv", "--out", "pool", "--workers", "2"]) == 0
    assert "validate: 2/2 benchmark runs simulated (100%)" in capsys.readouterr().err
    serial = pd.read_parquet("serial/validation.parquet")
    pool = pd.read_parquet("pool/validation.parquet")
    pd.testing.assert_frame_equal(serial, pool)
    assert (serial["predicted_ttft_s"] != serial["steady_ttft_s"]).sum() == 2
    capsys.readouterr()
    assert main(["validate", "m.csv", "--workers", "0"]) == 2
    assert "--workers: '0': expected an integer from 1" in capsys.readouterr().err
