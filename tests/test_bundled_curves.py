"""The efficiency curves the hardware presets and the engines' kernel sets ship are the
ones benchmarks/fit_efficiency_curves.py fits to configs/kernels/ (a fit anyone can rerun):
its write-back reproduces every preset and set byte for byte."""
import importlib.util
from pathlib import Path

import pandas as pd
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


def test_the_whole_moe_rows_are_fitted_less_the_operators_dse_prices_apart(script):
    # aiconfigurator's DeepSeek MoE rows time the fused kernel (routing, quantization,
    # activation and weighted sum inside); dse prices those as operators of their own, so
    # the fit's target is the measured time less dse's own price of them: the operators'
    # prefill rows in dse explain, here at a token count and on hardware the fit's
    # bytes-per-token table was not read at
    from dse.explain import explain
    table, _ = explain(model="deepseek_r1", hardware="b200", tp=4, serving="static",
                       batch=1, input_tokens=4096, output_tokens=2, weight_dtype="fp8",
                       act_dtype="bf16", kv_dtype="fp8", quant="fp8_bf16_collectives")
    ops = table[(table.phase == "prefill") & table.op.isin(script.MOE_AUX)]
    assert len(ops) == len(script.MOE_AUX)
    price = script.moe_aux_seconds(["b200"], [4096], [4])[0]
    assert price == pytest.approx(float(ops.time_s.sum()), rel=1e-9)
    # a B200 row at tp 4 (n = 3 x 2048 / 4) and 4096 tokens (m = 4096 x 8 / 256)
    rows = script.gemm_rows(["b200"], ["trtllm_deepgemm_fp8_block_moe"])
    g = pd.read_csv(ROOT / "configs" / "kernels" / "gemm.csv")
    g = g[(g.hardware == "b200") & (g.library == "trtllm_deepgemm_fp8_block_moe")]
    at = ((g.n == 1536) & (g.m == 128)).to_numpy()
    assert at.sum() == 1
    assert rows.latency_s.to_numpy()[at][0] == pytest.approx(
        g.measured_time_s.to_numpy()[at][0] - price, rel=1e-12)


def test_the_weight_only_moe_rows_come_off_their_operators_too(script):
    # gpt-oss's MXFP4 experts (bf16 activations: no quantization kernels): routing,
    # permutation, activation and weighted sum; H100's rows are one rank of ep 2 (tp 2:
    # every device holds every token), so 8 tokens send it 4 x 8 / 2 = 16 copies
    from dse.explain import explain
    table, _ = explain(model="gpt_oss_120b", hardware="h100_sxm", tp=2, ep=2,
                       serving="static", batch=1, input_tokens=8, output_tokens=2,
                       weight_dtype="bf16", act_dtype="bf16", kv_dtype="bf16",
                       quant="mxfp4_experts_bf16_attention")
    ops = table[(table.phase == "prefill") & table.op.isin(script.MOE_AUX)]
    assert set(ops.op) == {"moe_topk", "moe_align", "experts_act", "moe_sum"}
    price = script.moe_aux_seconds(["h100_sxm"], [8], [2], [2], model="gpt_oss")[0]
    assert price == pytest.approx(float(ops.time_s.sum()), rel=1e-9)
    rows = script.gemm_rows(["h100_sxm"], script.WO_LIBRARY)
    g = pd.read_csv(ROOT / "configs" / "kernels" / "gemm.csv")
    g = g[(g.hardware == "h100_sxm") & g.library.isin(script.WO_LIBRARY)]
    at = ((g.groups * g.m) == 16).to_numpy()  # 8 tokens: 16 copies on this rank
    assert at.sum() == 1
    assert rows.latency_s.to_numpy()[at][0] == pytest.approx(
        g.measured_time_s.to_numpy()[at][0] - price, rel=1e-12)
