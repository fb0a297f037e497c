"""Every bundled preset loads; model sizes match the published parameter counts."""
from pathlib import Path

import numpy as np
import pytest

import dse
from dse.compile import active_params, total_params
from dse.config import bundled_dir, bundled_names, load_sweep


@pytest.mark.parametrize("name", bundled_names("hardware"))
def test_hardware_preset_loads(name):
    hw = dse.load_hardware(name)
    assert hw.name == name
    assert hw.tdp_watts > 0, "every bundled chip cites its TDP"
    for d in ("fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"):
        assert hw.rate(d) > 0


@pytest.mark.parametrize("name", bundled_names("models"))
def test_model_preset_matches_published_params(name):
    m = dse.load_model(name)
    assert m.name == name
    assert m.published_params > 0, "every bundled model cites its published size"
    assert total_params(m) == pytest.approx(m.published_params, rel=0.01)


@pytest.mark.parametrize("name", [n for n in bundled_names("models")
                                  if dse.load_model(n).is_moe])
def test_moe_preset_matches_published_active_params(name):
    m = dse.load_model(name)
    if not m.published_active_params:
        # allowed only with a documented reason (e.g. Grok-1: no precise figure published)
        assert "param-count-note" in Path(m.source).read_text()
        return
    active = active_params(m)
    if m.published_active_excludes_embedding:
        active -= m.vocab_size * m.hidden_size
    assert active == pytest.approx(m.published_active_params, rel=0.01)


def test_mixtral_active_params_match_published():
    # Mistral AI, "Mixtral of experts" (2024): 12.9B active parameters per token
    assert active_params(dse.load_model("mixtral_8x7b")) == pytest.approx(12.9e9, rel=0.01)


@pytest.mark.parametrize("name", bundled_names("models"))
def test_every_model_preset_sweeps(name):
    spec = dse.parse_sweep({"grid": {"model": name, "hardware": "b200", "batch": [1, 32],
                                     "tp": [1, 8], "input_tokens": 512, "output_tokens": 64,
                                     "weight_dtype": ["bf16", "fp4"]}})
    ds = dse.evaluate(spec)
    for var in ("ttft_s", "tpot_s"):
        assert np.isfinite(ds[var].values).all() and (ds[var].values > 0).all()


def test_every_hardware_preset_sweeps():
    spec = dse.parse_sweep({"grid": {"hardware": bundled_names("hardware"),
                                     "model": "llama3_8b", "batch": [1, 64]}})
    ds = dse.evaluate(spec)
    assert np.isfinite(ds["tpot_s"].values).all() and (ds["tpot_s"].values > 0).all()


@pytest.mark.parametrize("name", bundled_names("sweeps"))
def test_sweep_preset_loads(name):
    spec = load_sweep(bundled_dir("sweeps") / f"{name}.toml")
    assert spec.n_configs() > 0


def test_required_presets_exist():
    assert {"a100_80gb", "h100_sxm", "h200", "b200", "mi300x", "tpu_v5p"} <= set(
        bundled_names("hardware"))
    assert len(bundled_names("hardware")) >= 25
    assert {"llama2_7b", "llama3_8b", "llama3_70b", "llama3_405b", "mixtral_8x7b",
            "qwen3_32b"} <= set(bundled_names("models"))


def test_precision_falls_back_to_next_wider():
    a100 = dse.load_hardware("a100_80gb")
    assert a100.rate("fp8") == a100.rate("fp16")
    assert a100.rate("fp4") == a100.rate("fp16")
    h100 = dse.load_hardware("h100_sxm")
    assert h100.rate("fp4") == h100.rate("fp8")


def test_preset_by_path_loads(tmp_path):
    src = bundled_dir("hardware") / "h100_sxm.toml"
    custom = tmp_path / "my_gpu.toml"
    custom.write_text(src.read_text().replace('name = "h100_sxm"', 'name = "my_gpu"'))
    spec = dse.parse_sweep({"grid": {"hardware": [str(custom)]}})
    assert spec.hardware[0].name == "my_gpu"
