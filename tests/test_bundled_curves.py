"""The efficiency curves the hardware presets and the engines' kernel sets ship are the
ones benchmarks/fit_efficiency_curves.py fits to configs/kernels/ (a fit anyone can rerun):
its write-back reproduces every preset and set byte for byte."""
import importlib.util
from pathlib import Path

import pytest

from dse.curve_fit import curves_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "fit_efficiency_curves", ROOT / "benchmarks" / "fit_efficiency_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fits(script):
    return script.plans()


def test_every_engine_kernel_set_carries_its_fit(script):
    # the engines' own kernels (configs/engine_kernels/) come from the same fit
    texts = script.kernel_set_texts(script.engine_plans())
    assert set(texts) == {"sglang", "trtllm"}
    for name, text in texts.items():
        assert (ROOT / "configs" / "engine_kernels" / f"{name}.toml").read_text() == text, (
            f"engine_kernels/{name}.toml: rerun python benchmarks/fit_efficiency_curves.py "
            "--write")


def test_every_fitted_preset_carries_its_fit(fits):
    assert set(fits) == {"h100_sxm", "h200", "b200", "b300", "gb200_nvl72", "gb300_nvl72",
                         "mi300x", "mi325x", "mi355x"}
    for preset, (result, note) in fits.items():
        text = (ROOT / "configs" / "hardware" / f"{preset}.toml").read_text()
        assert curves_text(text, result, note) == text, (
            f"{preset}.toml: rerun python benchmarks/fit_efficiency_curves.py --write")


def test_cdna3_and_cdna4_curves_come_from_amd_kernel_rows(fits):
    # the block-scaled FP8 GEMMs and flash attention measured on AMD parts feed a GEMM
    # memory curve and an attention compute curve, not only the compute curve
    for preset in ("mi325x", "mi355x"):
        result, _ = fits[preset]
        assert {"gemm_compute", "gemm_memory", "attention_compute"} <= set(result.curves)
        # decode-sized GEMMs stream their weights well below the scalar 0.8
        assert max(result.curves["gemm_memory"][1]) < 0.8
