"""The efficiency curves the hardware presets and the engines' kernel sets ship are the
ones benchmarks/fit_efficiency_curves.py fits to configs/kernels/ (a fit anyone can rerun):
its write-back reproduces every preset and set byte for byte."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from dse.curve_fit import curves_text

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(name: str):
    """The script benchmarks/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _benchmark("fit_efficiency_curves")


@pytest.fixture(scope="module")
def fits(script):
    return script.plans()


def test_every_engine_kernel_set_carries_its_fit(script):
    # the engines' own kernels (configs/engine_kernels/) come from the same fit
    texts = script.kernel_set_texts(script.engine_plans())
    assert set(texts) == {"sglang", "trtllm", "vllm"}
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


def _aux_check(script, hardware, libraries, row, tokens, tp, ep, model, explained, ops):
    """The fit's price of the MoE operators dse prices apart equals dse explain's prefill
    rows of them (``explained``: explain's axes; ``ops``: the operators expected), and the
    fitted time of the kernel row picked by ``row`` (a function of gemm.csv's rows) is its
    measured time less that price."""
    from dse.explain import explain
    table, _ = explain(hardware=hardware, tp=tp, ep=ep, serving="static", batch=1,
                       input_tokens=tokens, output_tokens=2, **explained)
    found = table[(table.phase == "prefill") & table.op.isin(script.MOE_AUX)]
    assert set(found.op) == ops
    price = script.moe_aux_seconds([hardware], [tokens], [tp], [ep], model=model)[0]
    assert price == pytest.approx(float(found.time_s.sum()), rel=1e-9)
    fitted = script.gemm_rows([hardware], libraries)
    g = pd.read_csv(ROOT / "configs" / "kernels" / "gemm.csv")
    g = g[(g.hardware == hardware) & g.library.isin(libraries)]
    at = row(g).to_numpy()
    assert at.sum() == 1
    assert fitted.latency_s.to_numpy()[at][0] == pytest.approx(
        g.measured_time_s.to_numpy()[at][0] - price, rel=1e-12)


def test_the_whole_moe_rows_are_fitted_less_the_operators_dse_prices_apart(script):
    # aiconfigurator's DeepSeek MoE rows time the fused kernel (routing, quantization,
    # activation and weighted sum inside); dse prices those as operators of their own, so
    # the fit's target is the measured time less dse's own price of them, here at a token
    # count and on hardware the fit's bytes-per-token table was not read at: a B200 row
    # at tp 4 (n = 3 x 2048 / 4) and 4096 tokens (m = 4096 x 8 / 256)
    _aux_check(script, "b200", ["trtllm_deepgemm_fp8_block_moe"],
               lambda g: (g.n == 1536) & (g.m == 128), 4096, 4, 1, "deepseek",
               script.AUX_MODELS["deepseek"], set(script.MOE_AUX))


def test_the_decode_sized_moe_rows_come_off_their_operators_too(script):
    # vLLM's rows include decode sizes, where the collector's balanced routing hits only
    # some experts: 4 tokens send 4 x 8 = 32 copies to 32 distinct experts (groups 32,
    # m 1); the operators around the experts op are priced at those 4 tokens, not at
    # m x 256 / 8 = 32 (the all-experts reading of the prefill rows)
    _aux_check(script, "h200", ["vllm_triton_fp8_block_moe"],
               lambda g: (g.groups == 32) & (g.n == 768), 4, 8, 1, "deepseek",
               script.AUX_MODELS["deepseek"], set(script.MOE_AUX))


def test_the_weight_only_moe_rows_come_off_their_operators_too(script):
    # gpt-oss's MXFP4 experts (bf16 activations: no quantization kernels): routing,
    # permutation, activation and weighted sum; H100's rows are one rank of ep 2 (tp 2:
    # every device holds every token), so 8 tokens send it 4 x 8 / 2 = 16 copies
    _aux_check(script, "h100_sxm", list(script.WO_LIBRARY),
               lambda g: g.groups * g.m == 16, 8, 2, 2, "gpt_oss",
               script.AUX_MODELS["gpt_oss"],
               {"moe_topk", "moe_align", "experts_act", "moe_sum"})


def test_moe_import_refuses_rows_that_read_fewer_experts_than_they_say():
    # a table whose timings would stream the experts' weights faster than HBM allows was
    # collected with fewer experts hit than the balanced routing's min(8 T, E) (SGLang
    # 0.5.14's DeepSeek rows: group-limited routing); the importer stops with one line
    # naming the table and the row instead of writing them. The bundled rows pass.
    module = _benchmark("import_aiconfigurator_moe")
    g = pd.read_csv(ROOT / "configs" / "kernels" / "gemm.csv")
    bundled = g[g.library.str.endswith("_fp8_block_moe")]
    module.check_weights_read(bundled, "configs/kernels/gemm.csv")
    # 256 experts x 768 x 7168 FP8 bytes (1.41 GB) in 250 us: 5.6 TB/s on a 4.8 TB/s H200
    fast = pd.DataFrame([{"hardware": "h200", "m": 2, "n": 768, "k": 7168, "groups": 256,
                          "measured_time_s": 250e-6}])
    with pytest.raises(SystemExit) as err:
        module.check_weights_read(fast, "moe/sglang/0.5.14/moe_perf.parquet")
    message = str(err.value)
    assert "\n" not in message
    assert "moe/sglang/0.5.14/moe_perf.parquet" in message and "64 tokens" in message
    assert "5.64 TB/s" in message and "4.80 TB/s" in message
    # the same row at 400 us (3.5 TB/s) is a plausible timing
    module.check_weights_read(fast.assign(measured_time_s=400e-6), "ok")
