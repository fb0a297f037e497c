"""Cost and energy (issue 13 item 5): the [cost] section's hourly price, energy_per_token_j
from the power model, the override end to end through `dse sweep`, its errors, and a price
for every NVIDIA, AMD and TPU preset (or a stated reason there is none)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli_error
from dse.cli import main
from dse.config import (ConfigError, bundled_names, load_hardware, owned_hourly_usd,
                        parse_hardware, parse_sweep)
from dse.evaluate import IDLE_FRACTION_OF_TDP, POWER_SHARE_MEMORY_BOUND, derive, evaluate

README = Path(__file__).resolve().parent.parent / "README.md"
GRID = {"hardware": ["h100_sxm"], "model": ["llama3_8b"], "serving": ["static"],
        "batch": [1], "input_tokens": [1024], "output_tokens": [256]}
# NVIDIA, AMD and TPU presets without a bundled price, and why (README "Cost and energy")
UNPRICED = {"mi250x": "no public on-demand list price found"}


# --------------------------------------------------------------------------- hourly price
def test_owned_hourly_usd_by_hand():
    # 20,000 USD over 4 years: 20000 / (4 * 8760) = 0.570776 USD/h; 700 W at PUE 1.3 and
    # 0.08 USD/kWh: 0.7 kW * 1.3 * 0.08 = 0.0728 USD/h; hosting 0.3 USD/h
    assert owned_hourly_usd(20000, 4, 700, 0.08, 1.3, 0.3) == pytest.approx(
        20000 / 35040 + 0.0728 + 0.3, rel=1e-12)
    assert owned_hourly_usd(20000, 4, 700, 0.08, 1.3, 0.3) == pytest.approx(0.9435763, rel=1e-6)
    # one year at 8760 USD: 1 USD/h; 1 kW at PUE 1 and 0.1 USD/kWh: 0.1 USD/h
    assert owned_hourly_usd(8760, 1, 1000, 0.1, 1.0) == pytest.approx(1.0 + 0.1, rel=1e-12)


def test_cost_section_sets_the_hardware_price():
    spec = parse_sweep({"grid": {**GRID, "hardware": ["h100_sxm", "mi300x", "gaudi3"]},
                        "cost": {"h100_sxm": {"price_per_device_hour_usd": 2.49},
                                 "gaudi3": {"purchase_usd": 17520, "amortization_years": 2,
                                            "power_usd_per_kwh": 0.1, "pue": 1.5}}})
    price = {h.name: h.price_per_device_hour_usd for h in spec.hardware}
    # gaudi3: 17520 / (2 * 8760) = 1.0 USD/h + 0.9 kW (TDP 900 W) * 1.5 * 0.1 = 0.135 USD/h
    assert price == pytest.approx({"h100_sxm": 2.49, "mi300x": 6.00, "gaudi3": 1.135})


# --------------------------------------------------------------------------- energy
def _point(grid: dict):
    """(derived metrics, evaluated dataset) of a one-configuration spec, squeezed."""
    ds = evaluate(parse_sweep({"grid": {**GRID, **grid}}))
    return derive(ds).squeeze(), ds.squeeze()


def test_energy_per_token_static_by_hand():
    der, ds = _point({})
    ttft, tpot = float(ds["ttft_s"]), float(ds["tpot_s"])
    assert int(ds["bound"]) == 1  # batch-1 decode of an 8B model: memory-bound
    # h100_sxm: TDP 700 W, no idle_watts -> idle 0.12 * 700 = 84 W
    idle = 84.0
    assert IDLE_FRACTION_OF_TDP * 700 == pytest.approx(idle)
    p_prefill = 700.0                       # the prompt at TDP
    p_decode = idle + (700.0 - idle) * 0.35  # = 84 + 616 * 0.35 = 299.6 W, memory-bound
    assert p_decode == pytest.approx(299.6)
    # one device, one sequence: prefill energy + 255 decode steps, over 256 output tokens
    expected = 1 * (p_prefill * ttft + p_decode * 255 * tpot) / (1 * 1 * 256)
    assert float(der["energy_per_token_j"]) == pytest.approx(expected, rel=1e-12)


def test_energy_per_token_counts_every_device_and_replica():
    der, ds = _point({"hardware": ["h200"], "tp": [2], "dp": [2], "batch": [4],
                      "output_tokens": [8]})
    ttft, tpot, bound = float(ds["ttft_s"]), float(ds["tpot_s"]), int(ds["bound"])
    # h200: idle_watts = 80 in the preset; share 1 when compute-bound, else 0.35
    p_decode = 80.0 + (700.0 - 80.0) * (1.0 if bound == 0 else POWER_SHARE_MEMORY_BOUND)
    # 2 * 2 = 4 devices; 2 replicas * 4 sequences * 8 tokens = 64 output tokens per e2e
    expected = 4 * (700.0 * ttft + p_decode * 7 * tpot) / (2 * 4 * 8)
    assert float(der["energy_per_token_j"]) == pytest.approx(expected, rel=1e-12)


def test_energy_per_token_continuous_is_power_over_throughput():
    der, ds = _point({"serving": ["continuous"], "batch": [16]})
    bound = int(ds["bound"])
    power = 84.0 + 616.0 * (1.0 if bound == 0 else 0.35)  # every iteration at one power
    expected = 1 * power / float(der["throughput_tokens_per_s"])
    assert float(der["energy_per_token_j"]) == pytest.approx(expected, rel=1e-9)


def test_energy_is_nan_without_tdp(tmp_path):
    text = "\n".join(line for line in load_hardware("h100_sxm").text.splitlines()
                     if not line.startswith("tdp_watts")) + "\n"
    (tmp_path / "no_tdp.toml").write_text(text.replace('name = "h100_sxm"', 'name = "no_tdp"'))
    spec = parse_sweep({"grid": {**GRID, "hardware": ["no_tdp.toml"]}}, base_dir=tmp_path)
    der = derive(evaluate(spec))
    assert np.isnan(der["energy_per_token_j"].values).all()
    # the price is still there
    assert np.isfinite(der["cost_per_million_output_tokens"].values).all()


# --------------------------------------------------------------------------- end to end
SPEC = """\
[grid]
hardware = ["h100_sxm", "mi300x"]
model = ["llama3_8b"]
batch = [1, 32]
input_tokens = [512]
output_tokens = [64]

[cost.h100_sxm]
price_per_device_hour_usd = 2.0

[cost.mi300x]
purchase_usd = 26280
amortization_years = 3
power_usd_per_kwh = 0.1
pue = 1.2
"""


def test_cost_override_through_dse_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("spec.toml").write_text(SPEC)
    assert main(["sweep", "spec.toml", "--out", "results", "--quiet"]) == 0
    # mi300x: 26280 / (3 * 8760) = 1.0 USD/h + 0.75 kW * 1.2 * 0.1 = 0.09 USD/h
    price = {"h100_sxm": 2.0, "mi300x": 1.09}
    for name in ("best.parquet", "pareto.parquet"):
        rows = pd.read_parquet(Path("results") / name)
        assert len(rows) and set(rows["hardware"].astype(str)) == set(price)
        hourly = rows["hardware"].astype(str).map(price).to_numpy(float)
        expected = rows["devices"] * hourly / 3600 / rows["throughput_tokens_per_s"] * 1e6
        np.testing.assert_allclose(rows["cost_per_million_output_tokens"], expected, rtol=1e-12)
        assert (rows["energy_per_token_j"] > 0).all()
    # the results dataset: the folder holding the hive partitions (hardware=.../...)
    folder = next(p.parent for p in Path("results").rglob("hardware=*") if "_chunks" not in p.parts)
    table = pd.read_parquet(folder)
    feasible = table[table["feasible"]]
    hourly = feasible["hardware"].astype(str).map(price).to_numpy(float)
    np.testing.assert_allclose(
        feasible["cost_per_million_output_tokens"],
        feasible["devices"] * hourly / 3600 / feasible["throughput_tokens_per_s"] * 1e6,
        rtol=1e-12)


@pytest.mark.parametrize("cost, parts", [
    ("[cost.h100]\nprice_per_device_hour_usd = 2.0\n",
     ("[cost] h100", "not a hardware preset of this sweep", "did you mean h100_sxm", "valid")),
    ("[cost.h100_sxm]\nprice_per_device_hour_usd = 0\n",
     ("[cost.h100_sxm]", "price_per_device_hour_usd = 0", "positive")),
    ("[cost.h100_sxm]\nprice_per_device_hour_usd = \"2.0\"\n",
     ("price_per_device_hour_usd = '2.0'", "positive number")),
    ("[cost.h100_sxm]\nprice_per_hour = 2.0\n",
     ("[cost.h100_sxm] price_per_hour", "unknown key", "valid keys")),
    ("[cost.h100_sxm]\npurchase_usd = 25000\namortization_years = 4\npue = 1.2\n",
     ("[cost.h100_sxm] power_usd_per_kwh", "missing required key")),
    ("[cost.h100_sxm]\npurchase_usd = 25000\namortization_years = 4\npue = 0.9\n"
     "power_usd_per_kwh = 0.1\n", ("pue = 0.9", "at least 1")),
    ("[cost.h100_sxm]\nprice_per_device_hour_usd = 2.0\npue = 1.2\n",
     ("[cost.h100_sxm] pue", "either price_per_device_hour_usd", "not both")),
    ("[cost.h100_sxm]\npurchase_usd = 25000\namortization_years = 400\npue = 1.2\n"
     "power_usd_per_kwh = 0.1\n", ("amortization_years = 400", "[1e-15, 50]")),
    ("[cost]\nh100_sxm = 2.0\n", ("[cost] h100_sxm = 2.0", "must be a table")),
    ("cost = 3\n", ("cost = 3", "must be a table")),
])
def test_bad_cost_section_is_one_line(tmp_path, capsys, cost, parts):
    grid = '[grid]\nhardware = ["h100_sxm"]\nmodel = ["llama3_8b"]\noutput_tokens = [4]\n'
    text = cost + grid if cost.startswith("cost =") else grid + cost
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    line = cli_error(capsys, tmp_path, "sweep", str(spec), "--out", str(tmp_path / "out"))
    assert str(spec) in line
    for part in parts:
        assert part in line, (part, line)


def test_owned_cost_needs_a_tdp(tmp_path):
    text = "\n".join(line for line in load_hardware("h100_sxm").text.splitlines()
                     if not line.startswith("tdp_watts")) + "\n"
    (tmp_path / "no_tdp.toml").write_text(text.replace('name = "h100_sxm"', 'name = "no_tdp"'))
    with pytest.raises(ConfigError, match=r"\[cost.no_tdp\] purchase_usd = 1000: .*tdp_watts"):
        parse_sweep({"grid": {**GRID, "hardware": ["no_tdp.toml"]},
                     "cost": {"no_tdp": {"purchase_usd": 1000, "amortization_years": 3,
                                         "power_usd_per_kwh": 0.1, "pue": 1.2}}},
                    source="s.toml", base_dir=tmp_path)


def test_idle_watts_must_lie_below_tdp():
    data = dict(load_hardware_data("h100_sxm"), idle_watts=700)
    with pytest.raises(ConfigError, match="idle_watts = 700: must be below tdp_watts"):
        parse_hardware(data, "x.toml")
    data.pop("tdp_watts")
    with pytest.raises(ConfigError, match="idle_watts = 700: must be below tdp_watts"):
        parse_hardware(data, "x.toml")


def load_hardware_data(name):
    import tomllib
    return tomllib.loads(load_hardware(name).text)


# --------------------------------------------------------------------------- presets
def test_every_nvidia_amd_tpu_preset_has_a_price_or_a_stated_reason():
    readme = README.read_text()
    for name in bundled_names("hardware"):
        hw = load_hardware(name)
        if hw.family not in ("gpu", "tpu"):  # Gaudi, Trainium and CPUs: priced where public
            continue
        if name in UNPRICED:
            assert hw.price_per_device_hour_usd == 0, name
            assert "price_per_device_hour_usd: not set" in hw.text, name
            row = next(line for line in readme.splitlines() if line.startswith(f"| {name} "))
            assert "unpriced" in row and UNPRICED[name] in row, row
        else:
            assert hw.price_per_device_hour_usd > 0, name
            assert "price_per_device_hour_usd =" in hw.text and "20" in hw.text, name


def test_every_preset_priced_or_says_why():
    for name in bundled_names("hardware"):
        hw = load_hardware(name)
        assert hw.price_per_device_hour_usd > 0 or "price_per_device_hour_usd: not set" in hw.text
        idle = hw.idle_watts or IDLE_FRACTION_OF_TDP * hw.tdp_watts
        assert 0 < idle < hw.tdp_watts, name


def test_disaggregated_energy_by_hand(tmp_path, monkeypatch):
    """A prefill pool of batch-1 tp-1 instances paired with batch-64 tp-2 decode instances:
    each pool's devices at idle plus their busy share of the dynamic range."""
    from dataclasses import replace

    from dse.config import Disaggregation
    from dse.disaggregate import pair_pools
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text('[grid]\nhardware = ["h100_sxm"]\nmodel = ["llama3_8b"]\n'
                              'serving = ["static"]\nbatch = [1, 64]\ninput_tokens = [1024]\n'
                              'output_tokens = [128]\ntp = [1, 2]\n')
    assert main(["sweep", "s.toml", "--out", "out", "--quiet"]) == 0
    folder = next(p.parent for p in Path("out").rglob("hardware=*") if "_chunks" not in p.parts)
    res = pd.read_parquet(folder)
    for c in res.columns:
        if isinstance(res[c].dtype, pd.CategoricalDtype):
            res[c] = res[c].astype(str)
    spec = replace(parse_sweep({"grid": GRID}), disaggregated=Disaggregation(max_instances=6))
    pre = res[(res.batch == 1) & (res.tp == 1)].reset_index(drop=True)
    dec = res[(res.batch == 64) & (res.tp == 2)].reset_index(drop=True)
    row = pair_pools(pre, dec, spec).to_pandas().iloc[0]
    x, y = row.prefill_instances, row.decode_instances
    rho_p, rho_d = row.prefill_utilization, row.decode_utilization
    share = 1.0 if dec.bound.iloc[0] == "compute" else 0.35
    power_p = 84 + (700 - 84) * rho_p            # prefill passes at TDP while busy
    power_d = 84 + (700 - 84) * share * rho_d    # decode steps by the decode point's bound
    expected = (x * 1 * power_p + y * 2 * power_d) / (128 * row.requests_per_s)
    assert row.energy_per_token_j == pytest.approx(expected, rel=1e-12)
