"""dse calibrate --engine: the fitted overheads recover the ones that made the data."""
import tomllib

import pandas as pd
import pytest

from dse.calibrate import with_values
from dse.cli import main
from dse.config import read_text
from dse.engine_fit import engine_preset_text, fit_engine
from dse.engines import load_engine, parse_engine
from dse.validate import validate

ROWS = [dict(hardware="h100_sxm", model="llama3_8b", weight_dtype="bf16", batch=b,
             input_tokens=s, output_tokens=o, tp=1, serving="continuous", source="synthetic")
        for b in (1, 4, 16, 64) for s, o in ((256, 128), (2048, 256))]


def _preset(folder, name, request, iteration, base="vllm", eager=None):
    values = {"request_overhead_s": (request, "test"), "iteration_overhead_s": (iteration, "test")}
    if eager is not None:
        values["eager_op_s"] = (eager, "test")
    text = with_values(read_text(load_engine(base).source), values)
    text = text.replace(f'name = "{base}"', f'name = "{name}"')
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _measured(folder):
    truth = _preset(folder, "truth", 0.045, 0.0025)
    rows, _ = validate(pd.DataFrame([{**r, "engine": str(truth), "measured_ttft_s": 1.0,
                                      "measured_tpot_s": 1.0} for r in ROWS]))
    table = pd.DataFrame(ROWS)
    table["measured_ttft_s"] = rows["predicted_ttft_s"]
    table["measured_tpot_s"] = rows["predicted_tpot_s"]
    return table


def test_fit_recovers_the_overheads_that_made_the_data(tmp_path):
    table = _measured(tmp_path)
    base = _preset(tmp_path, "base", 0.010, 0.0005)
    table["engine"] = str(base)
    result = fit_engine(load_engine(base), table)
    assert result.rows == len(ROWS)
    assert result.request_overhead_s == pytest.approx(0.045, rel=0.02)
    assert result.iteration_overhead_s == pytest.approx(0.0025, rel=0.02)
    assert result.after[0] < 1.0 and result.after[1] < 1.0 < result.before[1]


def test_calibrate_engine_cli_writes_a_preset_the_sweep_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    table = _measured(tmp_path)
    table["engine"] = "vllm"
    table.to_csv("m.csv", index=False)
    assert main(["calibrate", "m.csv", "--engine", "vllm", "--out", "fit.toml",
                 "--name", "vllm_fit"]) == 0
    fitted = load_engine("fit.toml")
    assert fitted.name == "vllm_fit"
    assert fitted.request_overhead_s == pytest.approx(0.045, rel=0.02)
    assert "fitted by `dse calibrate --engine`" in (tmp_path / "fit.toml").read_text()
    capsys.readouterr()
    assert main(["calibrate", "m.csv", "--engine", "sglang", "--out", "x.toml"]) == 2
    assert "no rows with serving = continuous and engine = sglang" in capsys.readouterr().err
    assert main(["calibrate", "m.csv", "--out", "x.toml"]) == 2
    assert "--hardware" in capsys.readouterr().err and not (tmp_path / "x.toml").exists()


def test_fit_recovers_the_per_launch_cost_of_an_eager_prefill(tmp_path):
    """SGLang prefills eagerly: a short prompt's prefill lasts its launches x eager_op_s
    (Llama-3-8B: a few hundred launches, ~20 ms at SGLang's 48.9 us, above the GPU's few
    ms), a long one its GPU time. The data come from 30 us per launch; the fit starts from
    the preset's 48.9 us and finds it back with the two overheads."""
    truth = _preset(tmp_path, "truth", 0.025, 0.0004, "sglang", 30e-6)
    rows, _ = validate(pd.DataFrame([{**r, "engine": str(truth), "measured_ttft_s": 1.0,
                                      "measured_tpot_s": 1.0} for r in ROWS]))
    table = pd.DataFrame(ROWS)
    table["measured_ttft_s"] = rows["predicted_ttft_s"]
    table["measured_tpot_s"] = rows["predicted_tpot_s"]
    start = _preset(tmp_path, "start", 0.020, 0.0002, "sglang", 48.9e-6)
    table["engine"] = str(start)
    result = fit_engine(load_engine(start), table)
    assert result.eager_op_s == pytest.approx(30e-6, rel=0.05)
    assert result.request_overhead_s == pytest.approx(0.025, rel=0.05)
    assert result.after[0] < 1.0 < result.before[0]
    # the preset written back carries the fitted launch cost
    fitted = parse_engine(tomllib.loads(engine_preset_text(load_engine(start), result, "m.csv")),
                          "fit.toml")
    assert fitted.eager_op_s == pytest.approx(30e-6, rel=0.05)


def test_fit_keeps_an_engine_kernel_set_given_by_a_relative_path(tmp_path):
    # the fit prices trial copies of the preset in a scratch folder: a kernel set named
    # relative to the preset's own folder must still be found (and still apply)
    table = _measured(tmp_path)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "k.toml").write_text(
        'name = "k"\n[h100_sxm]\nefficiency.gemm_compute.work = [1e9, 1e12]\n'
        'efficiency.gemm_compute.efficiency = [0.2, 0.3]\n')
    text = "".join(line for line in _preset(tmp_path, "base", 0.010, 0.0005).read_text()
                   .splitlines(keepends=True) if not line.startswith("kernels")
                   ) + 'kernels = "k.toml"\n'
    base = tmp_path / "presets" / "base.toml"
    base.write_text(text)
    table["engine"] = str(base)
    result = fit_engine(load_engine(base), table)
    assert result.rows == len(ROWS)
    # slower GEMMs than the data's: the fit cannot reach the tiny error it reaches without
    plain = _preset(tmp_path, "plain", 0.010, 0.0005)
    table["engine"] = str(plain)
    assert fit_engine(load_engine(plain), table).after[1] < result.after[1]
