"""`dse calibrate --curves`: recover known efficiency curves from synthetic kernel timings
priced by the engine's own model, write a preset the sweep uses, refuse bad rows."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dse
from conftest import cli_error
from dse.cli import main
from dse.config import ConfigError
from dse.curve_fit import _monotone, fit_curves
from dse.kernels import layout as L
from dse.kernels.collectives import collective_seconds

LATENCY = 3e-6  # the h100_sxm preset's (gpu family) kernel latency


def mem_eff(b):
    return np.interp(np.log10(b), [6, 9], [0.4, 0.9])


def comp_eff(f):
    return np.interp(np.log10(f), [8, 12], [0.2, 0.75])


def net_eff(m):
    return np.interp(np.log10(m), [3, 8], [0.1, 0.85])


def synthetic(hw):
    rows = []
    for m in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        for n, k in ((4096, 4096), (8192, 8192), (1024, 1024), (14336, 4096), (512, 2048)):
            fl = 2 * m * n * k
            by = (m * k + k * n) * 2 + m * n * 2
            t = LATENCY + max(fl / (hw.rate("bf16") * comp_eff(fl)),
                              by / (hw.memory_bytes_per_s * mem_eff(by)))
            rows.append(dict(op="gemm", dtype="bf16", m=m, n=n, k=k, latency_s=t))
    for msg in (1e3, 1e4, 1e5, 1e6, 1e7, 1e8):
        e = net_eff(msg)
        up, out, lat = collective_seconds(L.ALLREDUCE, 8, 8, msg, 8,
                                          1 / (hw.scaleup_bytes_per_s * e),
                                          hw.scaleup_latency_s,
                                          1 / (hw.scaleout_bytes_per_s * e),
                                          hw.scaleout_latency_s)
        rows.append(dict(op="all_reduce", dtype="bf16", devices=8, message_bytes=msg,
                         latency_s=LATENCY + up + out + lat))
    return pd.DataFrame(rows)


def test_fit_recovers_synthetic_curves():
    hw = dse.load_hardware("h100_sxm")
    r = fit_curves(hw, synthetic(hw), latency=LATENCY)
    assert set(r.curves) == {"gemm_compute", "gemm_memory", "collective_network"}
    assert r.median_abs_pct_error < 1.0
    for name, truth in (("gemm_memory", mem_eff), ("gemm_compute", comp_eff)):
        work, eff = r.curves[name]
        inner = (np.array(work) > 10 ** 6.5) & (np.array(work) < 1e11)  # away from the ends
        np.testing.assert_allclose(np.array(eff)[inner], truth(np.array(work)[inner]),
                                   rtol=0.08)
    # efficiencies never fall with the work, and stay in (0, 1]
    for work, eff in r.curves.values():
        assert np.all(np.diff(eff) >= -1e-12) and max(eff) <= 1.0 and min(eff) > 0
        assert np.all(np.diff(work) > 0)


def test_grouped_rows_are_read_at_one_groups_work():
    # routed experts: each of g groups is one small GEMM, so the compute curve is read at
    # FLOPs / g (formulas.moe_gemms); rows made that way are recovered only with `groups`
    hw = dse.load_hardware("h100_sxm")
    rows = []
    for tokens in (64, 256, 1024, 4096, 16384):
        for g in (8, 32, 128):
            fl = 2 * tokens * 8 * 3 * 4096 * 1024  # top-8 copies through 3 expert matrices
            by = g * 3 * 4096 * 1024 * 2 + tokens * 8 * (4096 + 3 * 1024) * 2
            t = LATENCY + max(fl / (hw.rate("bf16") * comp_eff(fl / g)),
                              by / (hw.memory_bytes_per_s * mem_eff(by)))
            rows.append(dict(op="moe", dtype="bf16", flops=fl, bytes=by, groups=g,
                             latency_s=t))
    table = pd.concat([synthetic(hw), pd.DataFrame(rows)], ignore_index=True)
    moe = (table.op == "moe").to_numpy()

    def moe_error(fit):  # median |error| [%] over the grouped rows
        return 100 * np.median(np.abs(fit.predicted_s[moe] / table.latency_s[moe] - 1))

    grouped = moe_error(fit_curves(hw, table, latency=LATENCY))
    summed = moe_error(fit_curves(hw, table.drop(columns="groups"), latency=LATENCY))
    assert grouped < 2.0 and summed > 5 * grouped
    with pytest.raises(ConfigError, match="row 2: groups = 0.5: must be a number of expert "
                                          "GEMMs >= 1"):
        fit_curves(hw, pd.DataFrame(rows).assign(groups=[0.5] + [8] * (len(rows) - 1)),
                   latency=LATENCY)


def test_grouped_rows_fit_curves_of_their_own_on_request():
    # moe_curves: grouped kernels slower than dense GEMMs of the same work (a tenth of
    # the dense compute efficiency) get moe_* curves of their own, and the dense curves
    # are fitted to the dense rows alone; without it one curve pair compromises
    hw = dse.load_hardware("h100_sxm")
    rows = []
    for tokens in (256, 1024, 4096, 16384, 65536):
        for g in (8, 32, 128):
            fl = 2 * tokens * 8 * 3 * 4096 * 1024
            by = g * 3 * 4096 * 1024 * 2 + tokens * 8 * (4096 + 3 * 1024) * 2
            t = LATENCY + max(fl / (hw.rate("bf16") * 0.1 * comp_eff(fl / g)),
                              by / (hw.memory_bytes_per_s * mem_eff(by)))
            rows.append(dict(op="moe", dtype="bf16", flops=fl, bytes=by, groups=g,
                             latency_s=t))
    table = pd.concat([synthetic(hw), pd.DataFrame(rows)], ignore_index=True)
    dense = (table.op == "gemm").to_numpy()
    own = fit_curves(hw, table, latency=LATENCY, moe_curves=True)
    joint = fit_curves(hw, table, latency=LATENCY)
    assert {"moe_compute", "gemm_compute"} <= set(own.curves)
    assert "moe_compute" not in joint.curves
    err = lambda fit, sel: 100 * np.median(np.abs(  # noqa: E731
        fit.predicted_s[sel] / table.latency_s[sel] - 1))
    assert err(own, dense) < 2.0 and err(own, ~dense) < 5.0
    assert err(joint, dense) > 3 * err(own, dense)
    # the moe compute curve sits near a tenth of the dense one at the same work
    (w_m, e_m), (w_g, e_g) = own.curves["moe_compute"], own.curves["gemm_compute"]
    mid = np.sqrt(w_m[0] * w_m[-1])
    ratio = np.interp(np.log10(mid), np.log10(w_m), e_m) / np.interp(
        np.log10(mid), np.log10(w_g), e_g)
    assert 0.05 < ratio < 0.2


def test_weight_only_grouped_rows_fit_the_moe_wo_curves():
    # moe_wo rows (weight-only quantized experts, whole fused-kernel times) fit moe_wo_*
    # curves of their own beside the moe_* ones, recovering a memory efficiency a third
    # of the dense one at the same bytes; without moe_curves they join the GEMM rows
    hw = dse.load_hardware("h100_sxm")
    rows = []
    for tokens in (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144):
        g = 128 * (1 - (1 - 4 / 128) ** tokens)  # experts hit
        fl = 2 * tokens * 4 * 3 * 2880 * 2880
        by = g * 3 * 2880 * 2880 * 0.5625 + tokens * 4 * 2 * (2 * 2880 + 3 * 2880)
        t = LATENCY + max(fl / (hw.rate("bf16") * 0.5 * comp_eff(fl / g)),
                          by / (hw.memory_bytes_per_s * mem_eff(by) / 3))
        rows.append(dict(op="moe_wo", dtype="bf16", flops=fl, bytes=by, groups=g,
                         latency_s=t))
    table = pd.concat([synthetic(hw), pd.DataFrame(rows)], ignore_index=True)
    own = fit_curves(hw, table, latency=LATENCY, moe_curves=True)
    assert {"moe_wo_memory", "gemm_memory"} <= set(own.curves)
    assert "moe_wo_memory" not in fit_curves(hw, table, latency=LATENCY).curves
    wo = (table.op == "moe_wo").to_numpy()
    assert 100 * np.median(np.abs(own.predicted_s[wo] / table.latency_s[wo] - 1)) < 5.0
    w, e = own.curves["moe_wo_memory"]
    mid = np.sqrt(w[0] * w[-1])
    assert np.interp(np.log10(mid), np.log10(w), e) == pytest.approx(mem_eff(mid) / 3,
                                                                     rel=0.15)


def test_monotone_pools_violators():
    np.testing.assert_allclose(_monotone(np.array([3.0, 1.0, 2.0, 0.5]), np.ones(4)),
                               [3.0, 1.5, 1.5, 0.5])
    np.testing.assert_allclose(_monotone(np.array([1.0, 2.0]), np.array([3.0, 1.0])),
                               [1.25, 1.25])


def test_calibrate_curves_cli_relative_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    hw = dse.load_hardware("h100_sxm")
    synthetic(hw).to_csv("kernels.csv", index=False)
    assert main(["calibrate", "kernels.csv", "--hardware", "h100_sxm", "--curves",
                 "--out", "h100_curves.toml", "--name", "h100_curves"]) == 0
    assert "gemm_memory" in capsys.readouterr().out
    fitted = dse.load_hardware("h100_curves.toml")
    assert fitted.name == "h100_curves" and fitted.kernel_latency_s == LATENCY
    assert set(fitted.efficiency_curves) == {"gemm_compute", "gemm_memory",
                                             "collective_network"}
    # refitting a preset that has curves replaces them (no duplicate tables)
    assert main(["calibrate", "kernels.csv", "--hardware", "h100_curves.toml", "--curves",
                 "--out", "again.toml"]) == 0
    assert open("again.toml").read().count("efficiency.gemm_memory.work") == 1
    spec = dse.parse_sweep({"grid": {"hardware": ["h100_curves.toml"], "model": ["llama3_8b"],
                                     "batch": [1], "tp": [2]}})
    assert np.isfinite(dse.evaluate(spec)["tpot_s"].values).all()


def test_calibrate_moe_curves_from_the_cli(tmp_path, monkeypatch, capsys):
    # grouped expert rows at a tenth of the dense efficiency: --moe-curves writes moe_*
    # curves beside the GEMM ones; without --curves the flag is a one-line error
    monkeypatch.chdir(tmp_path)
    hw = dse.load_hardware("h100_sxm")
    rows = [dict(op="moe", dtype="fp8", groups=64, flops=2 * t * 8 * 3 * 4096 * 1024,
                 bytes=64 * 3 * 4096 * 1024, latency_s=LATENCY + 2 * t * 8 * 3 * 4096 * 1024
                 / (hw.rate("fp8") * 0.1 * comp_eff(2 * t * 8 * 3 * 4096 * 1024 / 64)))
            for t in (512, 2048, 8192, 32768, 131072)]
    pd.concat([synthetic(hw), pd.DataFrame(rows)], ignore_index=True).to_csv(
        "kernels.csv", index=False)
    assert main(["calibrate", "kernels.csv", "--hardware", "h100_sxm", "--curves",
                 "--moe-curves", "--out", "moe.toml"]) == 0
    assert "moe_compute" in capsys.readouterr().out
    assert {"gemm_compute", "moe_compute"} <= set(dse.load_hardware("moe.toml")
                                                  .efficiency_curves)
    # the fitted lines copied under [h100_sxm] make an engine kernel set
    # (configs/engines/README.md, "Engine kernel sets")
    from dse.engines import load_kernel_set
    lines = [x for x in Path("moe.toml").read_text().splitlines()
             if x.startswith("efficiency.")]
    Path("set.toml").write_text('name = "mine"\n[h100_sxm]\n' + "\n".join(lines) + "\n")
    assert load_kernel_set("set.toml")["h100_sxm"] == \
        dse.load_hardware("moe.toml").efficiency_curves
    msg = cli_error(capsys, tmp_path, "calibrate", "kernels.csv", "--hardware", "h100_sxm",
                    "--moe-curves", "--out", "x.toml")
    assert "--moe-curves goes with --curves" in msg and not Path("x.toml").exists()


@pytest.mark.parametrize("row, expected", [
    ({"op": "all_reduce", "dtype": "bf16", "devices": 1, "message_bytes": 1e6,
      "latency_s": 1e-5}, "devices = 1"),
    ({"op": "all_reduce", "dtype": "bf16", "devices": 8, "message_bytes": -5,
      "latency_s": 1e-5}, "message_bytes = -5"),
])
def test_bad_collective_rows_are_one_line(tmp_path, monkeypatch, capsys, row, expected):
    hw = dse.load_hardware("h100_sxm")
    monkeypatch.chdir(tmp_path)
    pd.concat([synthetic(hw), pd.DataFrame([row])], ignore_index=True).to_csv(
        "t.csv", index=False)
    msg = cli_error(capsys, tmp_path, "calibrate", "t.csv", "--hardware", "h100_sxm",
                    "--curves", "--out", "x.toml")
    assert expected in msg and "t.csv" in msg and "row 73" in msg


def test_no_curve_rows_is_an_error():
    hw = dse.load_hardware("h100_sxm")
    table = pd.DataFrame([{"op": "copy", "dtype": "bf16", "flops": 0, "bytes": 1e6,
                           "latency_s": 1e-5}] * 3)
    with pytest.raises(ConfigError, match="no curve to fit"):
        fit_curves(hw, table)
