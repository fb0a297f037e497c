"""`dse calibrate`: recover known efficiencies and latency from synthetic kernel timings."""
import numpy as np
import pandas as pd
import pytest

import dse
from dse.calibrate import fit
from dse.cli import main


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
