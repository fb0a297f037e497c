"""Native precisions: each hardware preset names the precisions it computes in, and
activations in any other make a configuration infeasible (``precision_not_supported``);
weight-only formats narrower than the activations stay feasible.

The CLI tests run in a temporary working directory and name their files by relative path,
as a user in their own folder would.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dse
from conftest import cli_error
from dse.cli import main
from dse.config import bundled_dir, bundled_names
from dse.evaluate import REASON_CODE, REASONS, derive

UNSUPPORTED = REASON_CODE["precision_not_supported"]

# Per preset, the precisions with native math (vendor datasheets; the preset files cite
# them): fp4 only on Blackwell and CDNA 4, fp8 from Hopper / Ada / CDNA 3 / Gaudi 2 on,
# int4 on Ampere, Ada and CDNA 2.
NATIVE = {
    "a100_40gb": "fp32 bf16 fp16 int8 int4", "a100_80gb": "fp32 bf16 fp16 int8 int4",
    "b200": "fp32 bf16 fp16 fp8 int8 fp4", "b300": "fp32 bf16 fp16 fp8 int8 fp4",
    "gb200_nvl72": "fp32 bf16 fp16 fp8 int8 fp4", "gb300_nvl72": "fp32 bf16 fp16 fp8 int8 fp4",
    "rtx_pro_6000": "fp32 bf16 fp16 fp8 int8 fp4",
    "gh200": "fp32 bf16 fp16 fp8 int8", "h100_pcie": "fp32 bf16 fp16 fp8 int8",
    "h100_sxm": "fp32 bf16 fp16 fp8 int8", "h200": "fp32 bf16 fp16 fp8 int8",
    "l40s": "fp32 bf16 fp16 fp8 int8 int4",
    "mi250x": "fp32 bf16 fp16 int8 int4", "mi300x": "fp32 bf16 fp16 fp8 int8",
    "mi325x": "fp32 bf16 fp16 fp8 int8", "mi355x": "fp32 bf16 fp16 fp8 int8 fp4",
    "tpu_v4": "fp32 bf16 int8", "tpu_v5e": "fp32 bf16 int8", "tpu_v5p": "fp32 bf16 int8",
    "tpu_v6e": "fp32 bf16 int8",
    "gaudi2": "fp32 bf16 fp8", "gaudi3": "fp32 bf16 fp8",
    "trainium2": "fp32 bf16 fp16 fp8",
    "epyc_9965": "fp32 bf16 int8", "xeon_6980p": "fp32 bf16 fp16 int8",
}


def _point(hardware, weight, act="same", model="llama3_8b"):
    """Reason code and feasibility of one small configuration."""
    spec = dse.parse_sweep({"grid": {"hardware": hardware, "model": model,
                                     "weight_dtype": weight, "act_dtype": act,
                                     "batch": 1, "input_tokens": 128, "output_tokens": 16}})
    der = derive(dse.evaluate(spec))
    return int(der["reason"].values.ravel()[0]), bool(der["feasible"].values.ravel()[0])


# --------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", bundled_names("hardware"))
def test_hardware_preset_states_its_native_precisions(name):
    hw = dse.load_hardware(name)
    assert hw.native_precisions == tuple(NATIVE[name].split())
    # stated in the file, not only implied by the rates: a reader sees the list
    assert re.search(r"^native_precisions = \[", hw.text, re.M)


def test_every_bundled_preset_is_in_the_table():
    assert set(NATIVE) == set(bundled_names("hardware"))


def test_hardware_preset_without_list_takes_its_rates(tmp_path):
    text = (bundled_dir("hardware") / "h100_sxm.toml").read_text()
    path = tmp_path / "my_gpu.toml"
    path.write_text("".join(ln for ln in text.splitlines(keepends=True)
                            if not ln.startswith("native_precisions")))
    assert dse.load_hardware(path).native_precisions == tuple(NATIVE["h100_sxm"].split())


# --------------------------------------------------------------------------- the rule
def test_fp4_activations_on_h100_are_infeasible():
    assert _point("h100_sxm", "fp4") == (UNSUPPORTED, False)          # act "same" = fp4
    assert _point("h100_sxm", "bf16", "fp4") == (UNSUPPORTED, False)
    assert _point("mi300x", "fp4", "fp4") == (UNSUPPORTED, False)
    assert REASONS[UNSUPPORTED] == "precision_not_supported"
    assert REASONS.index("precision_not_supported") < REASONS.index("out_of_memory")


def test_weight_only_fp4_on_h100_is_feasible():
    assert _point("h100_sxm", "fp4", "bf16") == (0, True)
    assert _point("h100_sxm", "int4", "bf16") == (0, True)
    assert _point("mi300x", "fp4", "fp8") == (0, True)


def test_fp4_on_b200_is_feasible():
    assert _point("b200", "fp4") == (0, True)
    assert _point("b200", "fp4", "fp4") == (0, True)


def test_same_activation_precision_follows_the_weights():
    assert _point("a100_80gb", "int4") == (0, True)              # A100 has int4 tensor cores
    assert _point("h100_sxm", "int4") == (UNSUPPORTED, False)    # Hopper has none
    assert _point("a100_80gb", "fp8") == (UNSUPPORTED, False)    # Ampere has no fp8
    assert _point("tpu_v5e", "fp8") == (UNSUPPORTED, False)


def test_precision_comes_before_out_of_memory():
    # 405B in bf16 does not fit one H100 either; the precision is the first reason
    assert _point("h100_sxm", "fp4", "fp4", model="llama3_405b")[0] == UNSUPPORTED
    assert _point("h100_sxm", "bf16", model="llama3_405b")[0] == REASON_CODE["out_of_memory"]


def test_precision_table_keeps_only_its_own_dims():
    c = {"hardware": ["h100_sxm", "b200"], "weight_dtype": ["bf16", "fp4", "int4"],
         "act_dtype": ["bf16", "fp4"]}
    spec = dse.parse_sweep({"grid": {**c, "batch": [1, 8], "tp": [1, 2]}})
    ds = dse.evaluate(spec)
    # no "same" activation: the weights do not matter
    assert ds["precision_reason"].dims == ("hardware", "act_dtype")
    assert ds["precision_reason"].values.tolist() == [[0, UNSUPPORTED], [0, 0]]
    spec = dse.parse_sweep({"grid": {**c, "act_dtype": ["same", "bf16"]}})
    ds = dse.evaluate(spec)
    assert ds["precision_reason"].dims == ("hardware", "weight_dtype", "act_dtype")
    assert ds["precision_reason"].sel(hardware="h100_sxm", act_dtype="same").values.tolist() \
        == [0, UNSUPPORTED, UNSUPPORTED]


# --------------------------------------------------------------------------- tables
SWEEP = """\
[grid]
hardware = ["h100_sxm", "mi300x", "b200"]
model = ["llama3_8b", "mixtral_8x7b"]
batch = [1, 16, 64]
input_tokens = [512]
output_tokens = [128]
tp = [1, 2]
ep = [1, 2]
weight_dtype = ["bf16", "fp8", "fp4", "int4"]
act_dtype = ["same", "bf16"]
kv_dtype = ["same", "fp8"]

[constraints]
max_devices = 8
"""


def _native_act(frame: pd.DataFrame) -> np.ndarray:
    """Whether each row's (effective) activation precision is native on its hardware."""
    return np.array([a in NATIVE[h].split()
                     for h, a in zip(frame["hardware"].astype(str), frame["act_dtype"].astype(str))])


def test_best_and_pareto_never_pick_an_unsupported_precision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text(SWEEP)
    summary = dse.run_sweep(dse.load_sweep("s.toml"), "out", progress=False)
    results = pd.read_parquet("out/configurations")
    native = _native_act(results)
    reason = results["infeasible_reason"].astype(object)
    # the rule, row by row: unsupported activations are infeasible, and only those
    # (structural reasons come first) carry precision_not_supported
    assert not results["feasible"][~native].any()
    assert (reason[native] != "precision_not_supported").all()
    assert set(reason[~native]) <= {"precision_not_supported", "ep_on_dense_model",
                                    "experts_not_divisible_by_ep", "ep_not_divisor_of_tp"}
    assert (reason == "precision_not_supported").sum() > 0
    # the reduction kernel counts the same reasons as the results table
    assert summary.reason_counts == reason.dropna().value_counts().to_dict()
    for name in ("best.parquet", "pareto.parquet"):
        rows = pd.read_parquet(Path("out") / name)
        if "found" in rows:
            rows = rows[rows["found"].astype(bool)]
        assert len(rows) > 0
        assert _native_act(rows).all(), name
    best = pd.read_parquet("out/best.parquet")
    assert set(best.loc[best["hardware"] == "b200", "act_dtype"].astype(str)) == {"fp4"}
    # brute force: the best feasible row per group is the one best.parquet holds
    feasible = results[results["feasible"]]
    keys = ["hardware", "model"]
    top = feasible.groupby(keys, observed=True)["tokens_per_s_per_device"].max()
    got = best.set_index(keys)["tokens_per_s_per_device"]
    for key, value in top.items():
        assert got[key] == value


# --------------------------------------------------------------------------- CLI
def test_list_hardware_shows_native_precisions(capsys):
    assert main(["list", "hardware"]) == 0
    out = capsys.readouterr().out
    assert "native precisions" in out.splitlines()[0]
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    for name, native in NATIVE.items():
        assert f" {native.replace(' ', ',')} " in lines[name], name
    assert "fp4" not in lines["h100_sxm"] and "fp4" not in lines["mi300x"]


def _edit_preset(pattern: str, replacement: str) -> None:
    """my_gpu.toml in the working directory: the bundled h100_sxm with one edit."""
    text = (bundled_dir("hardware") / "h100_sxm.toml").read_text()
    text = text.replace('name = "h100_sxm"', 'name = "my_gpu"')
    edited = re.sub(pattern, replacement, text, count=1, flags=re.M)
    assert edited != text
    Path("my_gpu.toml").write_text(edited)
    Path("s.toml").write_text('[grid]\nhardware = ["my_gpu.toml"]\nmodel = ["llama3_8b"]\n')


@pytest.mark.parametrize("pattern, replacement, parts", [
    pytest.param(r'"int8"\]', '"int8", "fp6"]',
                 ("native_precisions = ['fp32', 'bf16', 'fp16', 'fp8', 'int8', 'fp6']",
                  "unknown precision 'fp6'", "valid: fp32, bf16, fp16, fp8, int8, fp4, int4"),
                 id="unknown_name"),
    pytest.param(r'"int8"\]', '"int8", "fp4"]',
                 ("native_precisions = ", "fp4 has no rate", "flops_per_s_fp4",
                  "precisions with a rate here: fp32, bf16, fp16, fp8, int8"),
                 id="listed_without_rate"),
    pytest.param(r', "int8"\]', ']',
                 ("flops_per_s_int8 = 1978900000000000.0", "int8 is not in native_precisions"),
                 id="rate_not_listed"),
    pytest.param(r'^native_precisions = \[.*?\]', 'native_precisions = "fp8"',
                 ("native_precisions = 'fp8'", "must be a list of precision names", "valid:"),
                 id="not_a_list"),
    pytest.param(r'"int8"\]', '"int8", "int8"]',
                 ("native_precisions = ", "duplicate precision 'int8'"), id="duplicate"),
])
def test_preset_with_bad_native_precisions_is_refused(tmp_path, monkeypatch, capsys,
                                                      pattern, replacement, parts):
    monkeypatch.chdir(tmp_path)
    _edit_preset(pattern, replacement)
    line = cli_error(capsys, tmp_path, "sweep", "s.toml", "--out", "out", "--quiet")
    assert "my_gpu.toml" in line
    for part in parts:
        assert part in line, (part, line)
    assert not os.path.exists("out")
