"""`dse calibrate`: recover known efficiencies and latency from synthetic kernel timings."""
import os
import tomllib

import numpy as np
import pandas as pd
import pytest

import dse
from dse.calibrate import MAX_TABLE_BYTES, fit, preset_text
from conftest import cli_error as _cli_error
from dse.cli import main
from dse.config import parse_hardware


def synthetic(hw, ec=0.62, em=0.85, latency=4.5e-6, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for m in (1, 4, 16, 64, 256, 1024, 4096):
        for n, k in ((4096, 4096), (14336, 4096), (4096, 14336), (1024, 8192)):
            for dtype in ("bf16", "fp8"):
                b = 2 if dtype == "bf16" else 1
                flops = 2 * m * n * k
                byts = (m * k + k * n) * b + m * n * 2
                t = latency + max(flops / (hw.rate(dtype) * ec),
                                  byts / (hw.memory_bytes_per_s * em))
                rows.append({"op": "gemm", "m": m, "n": n, "k": k, "dtype": dtype,
                             "latency_s": t * (1 + rng.normal(0, 0.01))})
    for size in (1e5, 1e6, 1e7, 1e8, 1e9):  # elementwise / copy kernels
        rows.append({"op": "copy", "flops": 0.0, "bytes": size, "dtype": "bf16",
                     "latency_s": latency + size / (hw.memory_bytes_per_s * em)})
    return pd.DataFrame(rows)


def test_calibrate_recovers_parameters():
    hw = dse.load_hardware("h100_sxm")
    r = fit(hw, synthetic(hw))
    assert r.compute_efficiency == pytest.approx(0.62, rel=0.03)
    assert r.memory_efficiency == pytest.approx(0.85, rel=0.03)
    assert r.kernel_latency_s == pytest.approx(4.5e-6, rel=0.1)
    assert r.median_abs_pct_error < 2


def test_calibrate_cli_writes_a_preset_the_sweep_uses(tmp_path):
    hw = dse.load_hardware("h100_sxm")
    table = tmp_path / "kernels.csv"
    synthetic(hw).to_csv(table, index=False)
    out = tmp_path / "h100_fitted.toml"
    assert main(["calibrate", str(table), "--hardware", "h100_sxm", "--out", str(out),
                 "--name", "h100_fitted"]) == 0
    fitted = dse.load_hardware(str(out))
    assert fitted.name == "h100_fitted"
    assert fitted.compute_efficiency == pytest.approx(0.62, rel=0.03)
    spec = dse.parse_sweep({"grid": {"hardware": ["h100_sxm", str(out)]}})
    ds = dse.evaluate(spec)
    assert ds["tpot_s"].sel(hardware="h100_fitted").item() > ds["tpot_s"].sel(
        hardware="h100_sxm").item()  # lower memory efficiency, higher latency


def test_calibrate_bad_table_exits_2(tmp_path, capsys):
    table = tmp_path / "bad.csv"
    pd.DataFrame({"op": ["gemm"] * 3, "dtype": ["bf17"] * 3, "latency_s": [1e-5] * 3,
                  "m": [1] * 3, "n": [2] * 3, "k": [3] * 3}).to_csv(table, index=False)
    assert main(["calibrate", str(table), "--hardware", "h100_sxm",
                 "--out", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err
    assert "bf17" in err and "fp8" in err
    assert not (tmp_path / "x.toml").exists()


# --------------------------------------------------------------------------- bad input
def _calibrate_error(capsys, tmp_path, monkeypatch, table, name="t.csv", *extra):
    """Write ``table`` (a DataFrame, bytes, or a callable making the file) as ``name`` in
    the working directory and run ``dse calibrate`` on it; returns the error line."""
    monkeypatch.chdir(tmp_path)
    if isinstance(table, pd.DataFrame):
        table.to_parquet(name) if name.endswith(".parquet") else table.to_csv(name, index=False)
    elif isinstance(table, bytes):
        (tmp_path / name).write_bytes(table)
    elif table is not None:
        table(tmp_path / name)
    return _cli_error(capsys, tmp_path, "calibrate", name, "--hardware", "h100_sxm",
                      "--out", "x.toml", *extra)


@pytest.fixture(scope="module")
def good():
    return synthetic(dse.load_hardware("h100_sxm"))


@pytest.mark.parametrize("col, row", [("latency_s", 3), ("m", 0), ("n", 7), ("k", 2),
                                      ("flops", 57), ("bytes", 60)])
def test_calibrate_non_numeric_cell_names_row_column_value(tmp_path, monkeypatch, capsys, good,
                                                           col, row):
    table = good.astype({col: object})
    table.loc[row, col] = "fast"
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, table)
    assert f"t.csv: row {row + 2}: {col} = 'fast': must be a number" in msg


@pytest.mark.parametrize("value", ["nan", "inf", "-1e-5", "0"])
def test_calibrate_latency_must_be_positive_and_finite(tmp_path, monkeypatch, capsys, good,
                                                       value):
    table = good.astype({"latency_s": object})
    table.loc[4, "latency_s"] = value
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, table)
    assert "t.csv: row 6: latency_s = " in msg and "positive, finite number of seconds" in msg


def test_calibrate_negative_or_overflowing_work(tmp_path, monkeypatch, capsys, good):
    table = good.copy()
    table.loc[1, "m"] = -4
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, table)
    assert "row 3: m = -4.0: must be a non-negative, finite number" in msg
    table.loc[1, ["m", "n", "k"]] = 1e200
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, table)
    assert "row 3: m, n, k = (1e+200, 1e+200, 1e+200): the gemm's FLOPs or bytes overflow" in msg


@pytest.mark.parametrize("cells", [[3, "bf16", "bf16"], [np.nan, "bf16", "bf16"],
                                   ["bf16", 2.5, "fp8"]])
def test_calibrate_dtype_that_is_not_text_is_one_line(cells):
    table = pd.DataFrame({"op": ["copy"] * 3, "dtype": cells, "latency_s": [1e-5] * 3,
                          "flops": [0.0] * 3, "bytes": [1e6] * 3})
    bad = next(i for i, c in enumerate(cells) if c != "bf16" and c != "fp8")
    with pytest.raises(dse.ConfigError, match=rf"^k.csv: row {bad + 2}: dtype = .*: unknown "
                       "precision; valid: fp32, bf16"):
        fit(dse.load_hardware("h100_sxm"), table, "k.csv")


def _huge(path):
    with open(path, "wb") as f:
        f.truncate(MAX_TABLE_BYTES + 1)  # sparse


@pytest.mark.parametrize("name, make, expected", [
    ("t.csv", lambda p: p.mkdir(), "is a folder, expected a kernel timing table"),
    ("t.csv", None, "file not found"),
    ("t.csv", b"", "empty file, expected a kernel timing table"),
    ("t.csv", b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    ("t.csv", _huge, "a kernel timing table (CSV or Parquet) is at most 268,435,456 bytes"),
    ("t.csv", lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    ("t.csv", lambda p: os.mkfifo(p), "not a regular file"),
    ("t.csv", ",".join(f"c{i}" for i in range(1001)).encode(), "1,001 columns"),
    ("t.csv", b"op,dtype,latency_s,latency_s\ncopy,bf16,1,2\n",
     "column 'latency_s': appears twice"),
    ("t.csv", b'op,dtype\n"gemm,bf16\n', "cannot read the table: Error tokenizing data"),
    ("t.csv", b"op,dtype,latency_s,flops,bytes\n", "0 rows: need at least 3"),
    ("t.parquet", b"PAR1 not a parquet file", "cannot read the table"),
], ids=["folder", "missing", "empty", "binary", "huge", "dev_zero", "fifo", "wide",
        "duplicate", "bad_quote", "header_only", "bad_parquet"])
def test_calibrate_unreadable_table_is_one_line(tmp_path, monkeypatch, capsys, name, make,
                                                expected):
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, make, name)
    assert msg.startswith(f"dse: error: {name}: ") and expected in msg, msg


@pytest.mark.parametrize("column, cells", [
    ("latency_s", [True, False, True]), ("latency_s", [[1e-5], [2e-5], [3e-5]]),
    ("latency_s", pd.to_datetime(["2024-01-01"] * 3)), ("dtype", [["bf16"]] * 3),
    ("flops", [{"a": 1}] * 3),
])
def test_calibrate_parquet_with_odd_types_is_one_line(tmp_path, monkeypatch, capsys, column,
                                                      cells):
    table = pd.DataFrame({"op": ["copy"] * 3, "dtype": ["bf16"] * 3, "latency_s": [1e-5] * 3,
                          "flops": [0.0] * 3, "bytes": [1e6] * 3})
    table[column] = cells
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, table, "t.parquet")
    assert f"t.parquet: row 2: {column} = " in msg


def test_calibrate_name_must_be_a_preset_name(tmp_path, monkeypatch, capsys, good):
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, good, "t.csv", "--name", "../evil")
    assert "--name = '../evil': a preset name is an identifier" in msg


def test_calibrate_fit_outside_a_preset_is_one_line(tmp_path, monkeypatch, capsys, good):
    table = good.assign(latency_s=good["latency_s"] * 1e6)  # microseconds given as seconds
    msg = _calibrate_error(capsys, tmp_path, monkeypatch, table)
    assert "t.csv: the fit gives" in msg and "latency below 1 s" in msg
    tiny = pd.DataFrame({"op": ["copy"] * 3, "dtype": ["bf16"] * 3,
                         "latency_s": [1e-300, 1e-5, 1e-5], "flops": [1e300, 0.0, 0.0],
                         "bytes": [1e6] * 3})
    with pytest.raises(dse.ConfigError, match="row 2: latency_s = 1e-300: too small"):
        fit(dse.load_hardware("h100_sxm"), tiny, "k.csv")


def test_calibrate_odd_table_file_name_gives_valid_toml(good):
    hw = dse.load_hardware("h100_sxm")
    text = preset_text(hw, fit(hw, good), "dir/a\\1\nb.csv", "fitted")
    assert parse_hardware(tomllib.loads(text), "x").name == "fitted"
