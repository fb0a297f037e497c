"""An engine's own kernels (configs/engine_kernels/): curves per hardware preset that stand
in for the hardware preset's curves of the same name when that engine serves on it."""
import json
from pathlib import Path

import numpy as np
import pytest

import dse
from dse.cli import main
from dse.config import ConfigError, bundled_dir, load_hardware
from dse.engines import load_engine, load_kernel_set

from grid_strategies import kernel_matches_reference

ROOT = Path(__file__).resolve().parents[1]
CURVE = ("efficiency.moe_compute.work = [1e9, 1e11]\n"
         "efficiency.moe_compute.efficiency = [0.02, 0.05]\n")
POINT = {"model": "deepseek_v3", "batch": 8, "input_tokens": 2000, "output_tokens": 200,
         "tp": 8, "weight_dtype": "fp8"}


def _engine(tmp_path, kernels_line):
    text = (ROOT / "configs" / "engines" / "vllm.toml").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("kernels"))
    text = text.replace('name = "vllm"', 'name = "vllm_test"') + "\n" + kernels_line + "\n"
    path = tmp_path / "e.toml"
    path.write_text(text)
    return path


def _ttft_tpot(hardware, engine, serving="continuous"):
    ds = dse.evaluate(dse.parse_sweep({"grid": {**POINT, "hardware": [hardware],
                                                "engine": [engine], "serving": [serving]}}))
    return float(ds.ttft_s.values.ravel()[0]), float(ds.tpot_s.values.ravel()[0])


def test_an_engine_curve_prices_as_the_same_curve_in_the_hardware_preset(tmp_path):
    # by hand: the engine's moe_compute on h200 must give exactly what a copy of the
    # h200 preset carrying that curve gives under the engine without a kernel set
    (tmp_path / "k.toml").write_text('name = "k"\n[h200]\n' + CURVE)
    with_set = _engine(tmp_path, 'kernels = "k.toml"')
    hw_text = (bundled_dir("hardware") / "h200.toml").read_text()
    hw_text = "\n".join(line for line in hw_text.splitlines()
                        if not line.startswith("efficiency.moe_compute"))
    (tmp_path / "hw").mkdir()
    curved = tmp_path / "hw" / "h200.toml"
    curved.write_text(hw_text + "\n" + CURVE)
    plain = tmp_path / "plain.toml"
    plain.write_text("\n".join(line for line in with_set.read_text().splitlines()
                               if not line.startswith("kernels")) + "\n")
    got = _ttft_tpot("h200", str(with_set))
    want = _ttft_tpot(str(curved), str(plain))
    assert got == pytest.approx(want, rel=1e-12)
    # and the slow curve (2-5 % of peak) does slow the experts down
    assert got[0] > 1.5 * _ttft_tpot("h200", str(plain))[0]


def test_the_curves_apply_only_on_their_hardware_and_only_to_continuous_serving(tmp_path):
    (tmp_path / "k.toml").write_text('name = "k"\n[h200]\n' + CURVE)
    with_set = _engine(tmp_path, 'kernels = "k.toml"')
    plain = tmp_path / "plain.toml"
    plain.write_text("\n".join(line for line in with_set.read_text().splitlines()
                               if not line.startswith("kernels")) + "\n")
    assert _ttft_tpot("b200", str(with_set)) == _ttft_tpot("b200", str(plain))
    assert _ttft_tpot("h200", str(with_set), "static") == \
        _ttft_tpot("h200", str(plain), "static")


def test_the_vllm_set_slows_only_decode_sized_moe_on_hopper(tmp_path):
    # the bundled vLLM preset names the set: DeepSeek-V3's decode (8 tokens a step)
    # streams its experts on vLLM's Triton curve (below the H200 preset's dense-GEMM one),
    # so it decodes slower than a copy of the preset without the set; the prefill
    # (compute-bound, moe_compute: not in the set) and Blackwell stay as they were
    plain = _engine(tmp_path, "")
    assert _ttft_tpot("h200", "vllm")[1] > 1.05 * _ttft_tpot("h200", str(plain))[1]
    assert _ttft_tpot("b200", "vllm") == _ttft_tpot("b200", str(plain))
    # the kernel and the numpy reference price its moe_memory curve alike
    kernel_matches_reference(dse.parse_sweep({"grid": {
        **POINT, "hardware": ["h200", "h100_sxm"], "engine": ["vllm"],
        "serving": ["continuous"], "batch": [1, 64]}}), 1e-9)


def test_kernel_and_reference_agree_with_bundled_kernel_sets():
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h200", "b200", "mi300x"], "model": ["deepseek_v3", "mixtral_8x7b"],
        "engine": ["sglang", "trtllm", "vllm", "roofline"], "serving": ["continuous"],
        "batch": [1, 64], "input_tokens": [512, 8192], "output_tokens": [256],
        "tp": [8], "weight_dtype": ["fp8"]}})
    kernel_matches_reference(spec, 1e-9)


def test_bundled_engines_name_their_kernel_sets_and_the_sets_load():
    sets = {e: load_engine(e).kernels for e in ("sglang", "trtllm", "trtllm_0_17", "vllm",
                                                  "vllm_async", "vllm_0_7", "atom", "roofline")}
    assert sets == {"sglang": "sglang", "trtllm": "trtllm", "trtllm_0_17": "trtllm",
                    "vllm": "vllm", "vllm_async": "vllm", "vllm_0_7": "", "atom": "",
                    "roofline": ""}
    # SGLang's Triton MoE on Hopper only (FlashInfer's TensorRT-LLM-gen MoE on Blackwell)
    assert set(load_kernel_set("sglang")) == {"h100_sxm", "h200"}
    assert set(load_kernel_set("trtllm")) == {"h100_sxm", "h200", "b200", "b300",
                                              "gb200_nvl72", "gb300_nvl72"}
    assert set(load_kernel_set("vllm")) == {"h100_sxm", "h200"}
    for name in ("sglang", "trtllm", "vllm"):
        curves = load_kernel_set(name)
        for hw in curves:
            load_hardware(hw)  # every table names a bundled hardware preset
            # vLLM's: the decode-sized memory curve of its Triton MoE only (it may run
            # DeepGEMM at 128 tokens and more)
            assert set(curves[hw]) == ({"moe_memory"} if name == "vllm"
                                       else {"moe_compute"})
    # TensorRT-LLM's CUTLASS MoE on H200 reaches a lower share of peak at prefill sizes
    # than SGLang's Triton one (aiconfigurator at 8192 tokens, tp 8: 4.98 ms vs 2.22 ms;
    # one expert's GEMM there: 2 x 256 x 768 x 7168 FLOPs)
    def share(curve, work=2.0 * 256 * 768 * 7168):
        return np.interp(np.log10(work), np.log10(curve[0]), curve[1])
    trt, sgl = load_kernel_set("trtllm")["h200"], load_kernel_set("sglang")["h200"]
    assert share(trt["moe_compute"]) < 0.75 * share(sgl["moe_compute"])
    # vLLM's Triton MoE streams a decode step's experts below cuBLASLt's dense-GEMM share
    # (aiconfigurator on H200, tp 8, 8 tokens: 64 experts x 3 x 256 x 7168 fp8 bytes = 352
    # MB in 0.125 ms, ~0.59 of 4.8 TB/s before the operators around it come off)
    vll = load_kernel_set("vllm")["h200"]
    h200 = load_hardware("h200").efficiency_curves
    assert share(vll["moe_memory"], 3.5e8) < 0.85 * share(h200["gemm_memory"], 3.5e8)


@pytest.mark.parametrize("kernels_line, text, needle", [
    ('kernels = "nope"', None, "unknown engine kernel preset; valid: sglang, trtllm, vllm"),
    ('kernels = 5', None, "kernels = 5: expected a preset name or a path"),
    ('kernels = "k.toml"', 'name = "k"\n[h100_sxm]\nefficiency.moe_compute.work = [1e9, 1e8]\n'
     'efficiency.moe_compute.efficiency = [0.2, 0.3]\n', "must be strictly increasing"),
    ('kernels = "k.toml"', 'name = "k"\n[h100_sxm]\nefficiency.moe_fast.work = [1e9]\n'
     'efficiency.moe_fast.efficiency = [0.5]\n', "efficiency.moe_fast"),
    ('kernels = "k.toml"', 'name = "k"\n[h100_sxm]\nspeed = 2\n', "[h100_sxm] speed"),
    ('kernels = "k.toml"', 'name = "k"\nh100_sxm = 3\n', "h100_sxm"),
])
def test_a_bad_kernel_set_is_a_one_line_error(tmp_path, kernels_line, text, needle):
    if text is not None:
        (tmp_path / "k.toml").write_text(text)
    path = _engine(tmp_path, kernels_line)
    with pytest.raises(ConfigError) as err:
        load_engine(str(path))
    msg = str(err.value)
    assert "\n" not in msg and needle in msg, msg


def test_cli_explain_with_an_engine_whose_kernel_set_sits_beside_it(tmp_path, monkeypatch,
                                                                   capsys):
    # as a user meets it: relative paths from a working folder, the set found beside the
    # engine preset that names it; a misspelt set is a one-line error, exit 2
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "k.toml").write_text('name = "k"\n[h200]\n' + CURVE)
    text = _engine(tmp_path, 'kernels = "k.toml"').read_text()
    (tmp_path / "presets" / "e.toml").write_text(text)
    (tmp_path / "presets" / "typo.toml").write_text(text.replace('"k.toml"', '"sglan"'))
    monkeypatch.chdir(tmp_path)
    args = ["explain", "--hardware", "h200", "--model", "deepseek_v3", "--tp", "8",
            "--weight-dtype", "fp8", "--json"]
    assert main([*args, "--engine", "presets/e.toml"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["engine_kernels"] == "k.toml: moe_compute"  # explain names the set
    assert main([*args, "--engine", "presets/typo.toml"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kernels" in err and "did you mean sglang" in err, err
