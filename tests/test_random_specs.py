"""Random sweep specs through the CLI entry point, in-process: valid and invalid values
mixed, every bundled preset, extreme integers and scales.

Each spec either is refused (exit 2, one line, nothing written) or gives outputs that hold
the engine's promises: no NaN, devices = tp * attention_dp * pp * dp, one results row per
grid point, Pareto rows non-dominated in their group, best rows feasible and meeting the
constraints.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.cli import main
from dse.config import INT_AXIS_MAX, bundled_names
from dse.grid import GROUP_DIMS

def ints(key):
    """Values of an integer axis: small ones, and its bound (valid, and far off)."""
    return st.one_of(st.integers(1, 64), st.just(INT_AXIS_MAX[key]))


SCALES = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 1e-6, 1e6]), st.floats(1e-6, 1e6))
DTYPES = st.sampled_from(["bf16", "fp8", "same", "fp4", "int4", "fp32", "int8", "fp16"])
# what makes a value invalid, per kind of key (out of range, wrong type, unknown, ...)
BAD = {
    "int": st.sampled_from([0, -1, (1 << 20) + 1, (1 << 24) + 1, 1 << 31, 1 << 63, 1 << 64,
                            1.5, True, "4", 1.0]),
    "scale": st.sampled_from([0.0, -1.0, 1e-320, 1e7, math.inf, math.nan, True, "1", 1]),
    "dtype": st.sampled_from(["fp7", 8, "BF16", ""]),
    "hardware": st.sampled_from(["no_such_gpu", "x" * 300, 5, "../h100_sxm", "h100_sxm"]),
    "model": st.sampled_from(["../x", "x.toml", "", "llama3_8b"]),
}
INT_KEYS = ("batch", "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp", "dp")
SCALE_KEYS = ("compute_scale", "memory_bandwidth_scale", "memory_capacity_scale",
              "scaleup_bandwidth_scale", "scaleout_bandwidth_scale")
KINDS = {**{k: "int" for k in INT_KEYS}, **{k: "scale" for k in SCALE_KEYS},
         **{k: "dtype" for k in ("weight_dtype", "act_dtype", "kv_dtype")},
         "hardware": "hardware", "model": "model"}


def _axis(values, lo=1, hi=3):
    return st.lists(values, min_size=lo, max_size=hi, unique=True)


VALID = st.fixed_dictionaries({
    "grid": st.fixed_dictionaries({}, optional={
        "hardware": _axis(st.sampled_from(bundled_names("hardware")), 1, 2),
        "model": _axis(st.sampled_from(bundled_names("models")), 1, 2),
        **{k: _axis(ints(k), 1, 3 if k in ("batch", "tp") else 2) for k in INT_KEYS},
        "weight_dtype": _axis(DTYPES.filter(lambda d: d != "same"), 1, 2),
        "act_dtype": _axis(DTYPES, 1, 2), "kv_dtype": _axis(DTYPES, 1, 2)}),
    "what_if": st.fixed_dictionaries({}, optional={k: _axis(SCALES, 1, 2) for k in SCALE_KEYS}),
    "constraints": st.fixed_dictionaries({}, optional={
        "max_devices": st.sampled_from([1, 8, 1 << 60]),
        "max_ttft_s": st.sampled_from([0.5, 10.0, 1e-9]),
        "max_tpot_s": st.sampled_from([0.05, 1.0])}),
})
BAD_CONSTRAINTS = {"max_devices": st.sampled_from([0, 1 << 62, 1.5, True]),
                   "max_ttft_s": st.sampled_from([0.0, -1.0, math.inf, math.nan, "1"]),
                   "max_tpot_s": st.sampled_from([0, -0.5, math.inf])}


@st.composite
def specs(draw):
    """A valid spec, and in about half the draws one invalid value put into it."""
    spec = draw(VALID)
    if draw(st.booleans()):
        key = draw(st.sampled_from([*KINDS, *BAD_CONSTRAINTS]))
        if key in BAD_CONSTRAINTS:
            spec["constraints"][key] = draw(BAD_CONSTRAINTS[key])
        else:
            section = "what_if" if key in SCALE_KEYS else "grid"
            values = list(spec[section].get(key, []))
            values.insert(draw(st.integers(0, len(values))), draw(BAD[KINDS[key]]))
            spec[section][key] = values
    return spec


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else
                                            "-inf" if v == -math.inf else repr(v))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def _toml(spec: dict) -> str:
    lines = []
    for section, table in spec.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _check_outputs(spec: dict, out: Path) -> None:
    results = pd.read_parquet(out / "configurations")
    n = 1
    for section in ("grid", "what_if"):
        for values in spec.get(section, {}).values():
            n *= len(values)
    assert len(results) == n
    numbers = results.select_dtypes("number").drop(columns=["cost_per_million_output_tokens"])
    assert not numbers.isna().any().any(), numbers.columns[numbers.isna().any()].tolist()
    devices = results["tp"] * results["attention_dp"] * results["pp"] * results["dp"]
    assert (results["devices"] == devices).all()
    assert (results[["ttft_s", "tpot_s", "memory_bytes_per_device"]] >= 0).all().all()

    pareto = pd.read_parquet(out / "pareto.parquet")
    if len(pareto):
        assert pareto["feasible"].all() if "feasible" in pareto else True
        groups = [d for d in GROUP_DIMS if d in pareto.columns]
        for _, g in pareto.groupby(groups, observed=True):
            x, y = g["tokens_per_s_per_device"].to_numpy(), g["tokens_per_s_per_user"].to_numpy()
            dominated = ((x[None, :] >= x[:, None]) & (y[None, :] >= y[:, None])
                         & ((x[None, :] > x[:, None]) | (y[None, :] > y[:, None]))).any(axis=1)
            assert not dominated.any()

    best = pd.read_parquet(out / "best.parquet")
    cons = spec.get("constraints", {})
    found = best[best["found"]] if "found" in best else best.iloc[:0]
    if len(found):
        assert (found["devices"] <= cons.get("max_devices", np.inf)).all()
        assert (found["ttft_s"] <= cons.get("max_ttft_s", np.inf)).all()
        assert (found["tpot_s"] <= cons.get("max_tpot_s", np.inf)).all()
        keys = [d for d in GROUP_DIMS if d in found.columns]
        feasible = results[results["feasible"]]
        merged = found.merge(feasible, on=[*keys, "batch", "tp", "pp", "ep", "attention_dp",
                                           "dp", "weight_dtype", "act_dtype", "kv_dtype"],
                             how="left", indicator=True, suffixes=("", "_r"))
        assert (merged["_merge"] == "both").all()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])  # capsys is read per example
@given(specs())
def test_random_specs_refused_in_one_line_or_correct(capsys, spec):
    home = os.getcwd()
    work = tempfile.TemporaryDirectory()
    os.chdir(work.name)
    try:
        Path("s.toml").write_text(_toml(spec))
        rc = main(["sweep", "s.toml", "--out", "out", "--quiet", "--memory-limit", "2GB"])
        err = capsys.readouterr().err
        if os.environ.get("DSE_TRACE_RANDOM_SPECS"):
            print(rc, err.strip()[:150], file=open("/tmp/random_specs.log", "a"))
        if rc == 0:
            assert err == ""
            _check_outputs(spec, Path("out"))
            return
        lines = err.splitlines()
        if rc == 3:  # the sweep ran; nothing is feasible
            assert len(lines) == 1 and "no feasible configuration" in lines[0], err
            _check_outputs(spec, Path("out"))
        else:
            assert rc == 2
            assert len(lines) == 1 and lines[0].startswith("dse: error: "), err
            assert sorted(os.listdir()) == ["s.toml"], lines[0]
    finally:
        os.chdir(home)
        work.cleanup()
