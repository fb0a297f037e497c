"""Size-dependent efficiency curves (kernels/efficiency.py): the interpolation by hand, the
kernel's per-op times against hand calculations (dse explain), the kernel against the numpy
reference with curves on every op class, and the preset checks."""
import math

import numpy as np
import pytest

from dse.config import ConfigError, load_hardware, parse_sweep
from dse.explain import explain
from dse.grid import hardware_tables
from dse.kernels import layout as L
from dse.kernels.efficiency import curve_efficiency, time_factor
from dse.kernels.reference import efficiency_factor
from conftest import scalar_preset_text
from grid_strategies import kernel_matches_reference

# an H100 SXM with curves: HBM 3.35 TB/s, memory_efficiency 0.8, compute 0.7, network 0.8
CURVES = """
[efficiency.gemm_memory]
work = [1e6, 1e8, 1e9]
efficiency = [0.4, 0.8, 0.9]
source = "test"

[efficiency.gemm_compute]
work = [1e9, 1e12]
efficiency = [0.3, 0.75]

[efficiency.attention_memory]
work = [1e5, 1e9]
efficiency = [0.2, 0.7]

[efficiency.collective_network]
work = [1e3, 1e6, 1e8]
efficiency = [0.05, 0.4, 0.85]

[efficiency.moe_compute]
work = [1e7, 1e10]
efficiency = [0.1, 0.5]

[efficiency.moe_wo_compute]
work = [1e8, 1e11]
efficiency = [0.2, 0.4]

[efficiency.moe_wo_memory]
work = [1e7, 1e10]
efficiency = [0.15, 0.6]
"""


@pytest.fixture
def curved_h100(tmp_path):
    text = scalar_preset_text("h100_sxm").replace('name = "h100_sxm"', 'name = "h100_curved"')
    path = tmp_path / "h100_curved.toml"
    path.write_text(text + CURVES)
    return path


def test_interpolation_by_hand(curved_h100):
    table, _ = hardware_tables([load_hardware(curved_h100)])
    row = table[0]
    mem = L.CURVE_GEMM_MEMORY
    # linear in log10(work): 1e7 lies halfway between 1e6 (0.4) and 1e8 (0.8)
    assert curve_efficiency(row, mem, 1e7) == pytest.approx(0.6, rel=1e-12)
    assert curve_efficiency(row, mem, 10 ** 8.5) == pytest.approx(0.85, rel=1e-12)
    # flat beyond the end knots
    assert curve_efficiency(row, mem, 10.0) == 0.4
    assert curve_efficiency(row, mem, 1e15) == 0.9
    # no curve: the scalar applies (factor exactly 1)
    assert curve_efficiency(row, L.CURVE_ATTENTION_COMPUTE, 1e9) == -1.0
    assert time_factor(row, L.CURVE_ATTENTION_COMPUTE, 1e9, 0.7) == 1.0
    assert time_factor(row, -1, 1e9, 0.7) == 1.0
    assert time_factor(row, mem, 1e7, 0.8) == pytest.approx(0.8 / 0.6, rel=1e-12)
    # the numpy reference restates it with np.interp
    for work in (10.0, 1e6, 3e6, 1e7, 5e8, 1e9, 1e12):
        ref = efficiency_factor(table, np.array([0]), "gemm_memory", np.array([work]),
                                L.HW_MEMORY_EFF)[0]
        assert ref == pytest.approx(time_factor(row, mem, work, 0.8), rel=1e-12)


def test_decode_ops_priced_at_their_curves(curved_h100, h100_scalar):
    # Llama-3-8B decode at batch 1, tp 2, bf16: every GEMM streams its weights at the
    # gemm_memory curve's efficiency for its bytes; the all-reduce's bytes move at the
    # network curve's efficiency for its message; norms keep the scalar 0.8
    table, point = explain(hardware=str(curved_h100), model="llama3_8b", serving="static",
                           tp=2, batch=1, input_tokens=512, output_tokens=64,
                           weight_dtype="bf16")
    dec = table[table.phase == "decode"].set_index("op")
    hw = load_hardware(curved_h100)
    bw = hw.memory_bytes_per_s

    def eff(knots, work):
        return float(np.interp(math.log10(work), np.log10(knots[0]), knots[1]))

    curves = hw.efficiency_curves
    for op in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"):
        b = dec.loc[op, "bytes"]
        assert dec.loc[op, "memory_s"] == pytest.approx(
            b / (bw * eff(curves["gemm_memory"], b)), rel=1e-9), op
    norm = dec.loc["attn_norm"]
    assert norm["memory_s"] == pytest.approx(norm["bytes"] / (bw * 0.8), rel=1e-9)
    # decode attention: its efficiency at the mean context's bytes
    att = dec.loc["attention"]
    assert att["memory_s"] == pytest.approx(
        att["bytes"] / (bw * eff(curves["attention_memory"], att["bytes"])), rel=1e-9)
    # the all-reduce of 4096 x 2 bytes at tp 2: one-shot, one step
    ar = dec.loc["attn_all_reduce"]
    msg = 4096 * 2
    ne = eff(curves["collective_network"], msg)
    assert ar["net_bytes"] == msg
    assert ar["network_s"] == pytest.approx(
        msg / (hw.scaleup_bytes_per_s * ne) + hw.scaleup_latency_s, rel=1e-9)
    # slower than the same point on the scalar preset
    _, plain = explain(hardware=h100_scalar, model="llama3_8b", serving="static", tp=2,
                       batch=1, input_tokens=512, output_tokens=64, weight_dtype="bf16")
    assert point["tpot_s"] > plain["tpot_s"]


def test_flat_curve_at_the_scalar_changes_nothing(tmp_path):
    text = scalar_preset_text("h100_sxm").replace('name = "h100_sxm"', 'name = "h100_flat"')
    path = tmp_path / "h100_flat.toml"
    path.write_text(text + "\n[efficiency.gemm_memory]\nwork = [1e6, 1e9]\n"
                    "efficiency = [0.8, 0.8]\n")
    axes = dict(model="mixtral_8x7b", serving="static", tp=2, batch=4, input_tokens=256,
                output_tokens=32)
    _, flat = explain(hardware=str(path), **axes)
    plain_path = tmp_path / "h100_sxm.toml"
    plain_path.write_text(scalar_preset_text("h100_sxm"))
    _, plain = explain(hardware=str(plain_path), **axes)
    assert flat["tpot_s"] == plain["tpot_s"] and flat["ttft_s"] == plain["ttft_s"]


@pytest.mark.parametrize("serving", ["static", "continuous"])
def test_kernel_matches_reference_with_curves(curved_h100, h100_scalar, serving):
    spec = parse_sweep({"grid": {
        "hardware": [str(curved_h100), h100_scalar],
        "model": ["llama3_8b", "mixtral_8x7b"], "serving": [serving],
        "tp": [1, 2], "ep": [1, 2], "batch": [1, 16], "input_tokens": [100, 2048],
        "output_tokens": [2, 40],
        # bf16 everywhere, and int4 weights with bf16 activations (weight-only experts:
        # the moe_wo_* curves, their dequantization inside)
        "weight_dtype": ["bf16", "int4"], "act_dtype": ["bf16"]}})
    fast, _ = kernel_matches_reference(spec)
    tpot = fast["tpot_s"]
    curved = tpot.sel(hardware="h100_curved").values
    plain = tpot.sel(hardware="h100_sxm").values
    ok = np.isfinite(curved) & np.isfinite(plain)
    assert ok.any() and (curved[ok] != plain[ok]).any()


@pytest.mark.parametrize("tables, problem", [
    ("[efficiency.gemm_flops]\nwork = [1e9]\nefficiency = [0.5]\n", "unknown curve"),
    ("[efficiency.gemm_memory]\nwork = [1e9, 1e6]\nefficiency = [0.5, 0.6]\n",
     "strictly increasing"),
    ("[efficiency.gemm_memory]\nwork = [1e6, 1e9]\nefficiency = [0.5, 1.2]\n", "must be"),
    ("[efficiency.gemm_memory]\nwork = [1e6, 1e9]\nefficiency = [0.5]\n", "one per knot"),
    ("[efficiency.gemm_memory]\nwork = []\nefficiency = []\n", "list of 1 to 8"),
    ("[efficiency.gemm_memory]\nwork = [1e6]\nefficiency = [0.5]\nslope = 2\n",
     "unknown key"),
    ("[efficiency.gemm_memory]\nwork = [-1.0]\nefficiency = [0.5]\n", "must be positive"),
    ("[efficiency.gemm_memory]\nefficiency = [0.5]\n", "missing required key"),
])
def test_bad_curves_are_one_line_errors(tmp_path, tables, problem):
    text = scalar_preset_text("h100_sxm")
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n" + tables)
    with pytest.raises(ConfigError) as err:
        load_hardware(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "efficiency." in message
    assert problem in message


def test_routed_experts_compute_at_one_expert_gemms_efficiency():
    # a grouped GEMM runs as one small GEMM per hit expert: DeepSeek-R1 prefill of 2048
    # tokens at tp 8 on MI355X hits all E(1 - (1 - k/E)^T) ~ 256 experts, each a GEMM of
    # 1/256 of the op's FLOPs, so the compute curve is read there (formulas.moe_gemms)
    from dse.config import load_model
    hw = load_hardware("mi355x")
    knots, eff = hw.efficiency_curves["gemm_compute"]
    table, _ = explain(hardware="mi355x", model="deepseek_r1", weight_dtype="fp8",
                           act_dtype="bf16", quant="fp8_bf16_collectives", tp=8, batch=1,
                           input_tokens=2048, output_tokens=2, serving="static")
    row = table[(table.phase == "prefill") & (table.op == "experts")].iloc[0]
    m = load_model("deepseek_r1")
    hit = m.experts * (1 - (1 - m.experts_per_token / m.experts) ** 2048)
    at = lambda work: float(np.interp(math.log10(work), np.log10(knots), eff))  # noqa: E731
    rate = hw.flops_per_s["fp8"]
    assert row["compute_s"] == pytest.approx(row["flops"] / (rate * at(row["flops"] / hit)),
                                             rel=1e-9)
    # three times the time the op's summed FLOPs would get: prefill MoE compute-bound
    assert row["compute_s"] > 3 * row["flops"] / (rate * at(row["flops"]))
    assert row["bound"] == "compute"


def test_routed_experts_take_their_own_compute_curve_where_a_preset_has_one(tmp_path):
    # a preset with moe_compute prices the routed experts' compute on it when they compute
    # in 8 bits or fewer (read at one expert GEMM's work, as the GEMM curve is) and keeps
    # the GEMM memory curve (no moe_memory); dense GEMMs, 16-bit experts and presets
    # without moe_* take the GEMM curves (the bundled b200 and h200 presets carry
    # moe_compute only, fitted to block-FP8 MoE kernels)
    from dse.config import load_model
    base = scalar_preset_text("h100_sxm")
    gemm = ("[efficiency.gemm_compute]\nwork = [1e9, 1e12]\nefficiency = [0.3, 0.75]\n\n"
            "[efficiency.gemm_memory]\nwork = [1e6, 1e9]\nefficiency = [0.4, 0.9]\n")
    moe = "\n[efficiency.moe_compute]\nwork = [1e9, 1e12]\nefficiency = [0.1, 0.5]\n"
    paths = {}
    for name, extra in (("h100_gemm", gemm), ("h100_moe", gemm + moe)):
        paths[name] = tmp_path / f"{name}.toml"
        paths[name].write_text(base.replace('name = "h100_sxm"', f'name = "{name}"') + "\n"
                               + extra)
    axes = dict(model="mixtral_8x7b", serving="static", weight_dtype="fp8", act_dtype="fp8",
                tp=1, batch=1, input_tokens=2048, output_tokens=2)
    rows = {}
    for name, path in paths.items():
        table, _ = explain(hardware=str(path), **axes)
        rows[name] = table[table.phase == "prefill"].set_index("op")
    m = load_model("mixtral_8x7b")
    hit = m.experts * (1 - (1 - m.experts_per_token / m.experts) ** 2048)
    rate = load_hardware(paths["h100_moe"]).flops_per_s["fp8"]
    e = rows["h100_moe"].loc["experts"]
    one = e["flops"] / hit  # one expert GEMM's work, inside the moe_compute knots
    assert 1e9 < one < 1e12
    want = np.interp(math.log10(one), [9.0, 12.0], [0.1, 0.5])
    assert e["compute_s"] == pytest.approx(e["flops"] / (rate * want), rel=1e-9)
    # the memory side and the dense GEMMs are the GEMM curves' in both presets
    g = rows["h100_gemm"].loc["experts"]
    assert e["memory_s"] == pytest.approx(g["memory_s"], rel=1e-12)
    assert g["compute_s"] == pytest.approx(
        g["flops"] / (rate * np.interp(math.log10(one), [9.0, 12.0], [0.3, 0.75])), rel=1e-9)
    for op in ("qkv_proj", "o_proj", "router"):
        assert rows["h100_moe"].loc[op, "compute_s"] == rows["h100_gemm"].loc[op, "compute_s"]
    # 16-bit experts: the GEMM curves on both presets
    bf16 = {name: explain(hardware=str(path), **{**axes, "weight_dtype": "bf16",
                                                  "act_dtype": "bf16"})[0]
            for name, path in paths.items()}
    e16 = [t[(t.phase == "prefill") & (t.op == "experts")].iloc[0]["compute_s"]
           for t in bf16.values()]
    assert e16[0] == e16[1]
    # the reference restates the fallback: per hardware row, the first curve it carries
    from dse.grid import hardware_tables
    hw, _ = hardware_tables([load_hardware(paths["h100_gemm"]), load_hardware(paths["h100_moe"])])
    f = efficiency_factor(hw, np.array([0, 1]), ("moe_compute", "gemm_compute"), one,
                          L.HW_COMPUTE_EFF)
    ce = load_hardware(paths["h100_moe"]).compute_efficiency
    assert f[0] == pytest.approx(ce / np.interp(math.log10(one), [9.0, 12.0], [0.3, 0.75]))
    assert f[1] == pytest.approx(ce / want)


def test_weight_only_experts_take_their_own_curves_with_the_dequantization_inside(tmp_path):
    # weight-only quantized experts (int4 weights, bf16 activations: the dequantizing
    # grouped kernels of gpt-oss's MXFP4 experts) take moe_wo_compute and moe_wo_memory
    # where a preset carries both: compute at one expert GEMM's work at the bf16 rate,
    # memory at the op's bytes, and no dequantization on top (the curves are fitted to the
    # fused kernels' whole times); with only one of the two, or without them, the op is
    # priced as before (GEMM curves plus the dequantization's vector operations)
    from dse.config import load_model
    base = scalar_preset_text("h100_sxm")
    gemm = ("[efficiency.gemm_compute]\nwork = [1e9, 1e12]\nefficiency = [0.3, 0.75]\n\n"
            "[efficiency.gemm_memory]\nwork = [1e6, 1e9]\nefficiency = [0.4, 0.9]\n")
    wo_c = "\n[efficiency.moe_wo_compute]\nwork = [1e8, 1e11]\nefficiency = [0.2, 0.4]\n"
    wo_m = "\n[efficiency.moe_wo_memory]\nwork = [1e7, 1e10]\nefficiency = [0.15, 0.6]\n"
    paths = {}
    for name, extra in (("h100_gemm", gemm), ("h100_wo", gemm + wo_c + wo_m),
                        ("h100_half", gemm + wo_c)):
        paths[name] = tmp_path / f"{name}.toml"
        paths[name].write_text(base.replace('name = "h100_sxm"', f'name = "{name}"') + "\n"
                               + extra)
    m = load_model("mixtral_8x7b")
    hw = load_hardware(paths["h100_wo"])
    rate, bw = hw.flops_per_s["bf16"], hw.memory_bytes_per_s
    tokens = 512
    axes = dict(model="mixtral_8x7b", weight_dtype="int4", act_dtype="bf16", tp=1, batch=1,
                input_tokens=tokens, output_tokens=2)
    # continuous serving: the iteration's experts op on the three presets
    cont = {name: explain(hardware=str(path), serving="continuous", **axes)[0]
            for name, path in paths.items()}
    cont = {name: t[t.phase == "prefill_iteration"].set_index("op").loc["experts", "time_s"]
            for name, t in cont.items()}
    assert cont["h100_half"] == cont["h100_gemm"] != cont["h100_wo"]
    for serving in ("static",):
        rows = {}
        for name, path in paths.items():
            table, _ = explain(hardware=str(path), serving=serving, **axes)
            rows[name] = table[table.phase == "prefill"].set_index("op").loc["experts"]
        e = rows["h100_wo"]
        hit = m.experts * (1 - (1 - m.experts_per_token / m.experts) ** tokens)
        one = e["flops"] / hit
        assert 1e8 < one < 1e11 and 1e7 < e["bytes"] < 1e10
        want_c = e["flops"] / (rate * np.interp(math.log10(one), [8.0, 11.0], [0.2, 0.4]))
        want_m = e["bytes"] / (bw * np.interp(math.log10(e["bytes"]), [7.0, 10.0],
                                                [0.15, 0.6]))
        assert e["compute_s"] == pytest.approx(want_c, rel=1e-9)  # no dequantization
        assert e["memory_s"] == pytest.approx(want_m, rel=1e-9)
        # one of the two curves only: priced as without them (the GEMM curves, and the
        # dequantization added to the compute time)
        g, half = rows["h100_gemm"], rows["h100_half"]
        assert half["compute_s"] == g["compute_s"] and half["memory_s"] == g["memory_s"]
        gemm_c = g["flops"] / (rate * np.interp(math.log10(one), [9.0, 12.0], [0.3, 0.75]))
        assert g["compute_s"] > gemm_c * (1 + 1e-6)  # the dequantization's vector work
