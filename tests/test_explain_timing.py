"""``explain`` uses the sweep's timing path: per phase its rows add up to the sweep's
``ttft_s`` and ``tpot_s`` for the same point, what-if scales included."""
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dse
from dse.config import bundled_names

POINTS = st.fixed_dictionaries({
    "hardware": st.sampled_from(bundled_names("hardware")),
    "model": st.sampled_from(bundled_names("models")),
    "batch": st.sampled_from([1, 3, 8, 64]),
    "input_tokens": st.sampled_from([1, 128, 4096, 70000]),
    "output_tokens": st.sampled_from([1, 2, 300, 5000]),
    "tp": st.sampled_from([1, 2, 8]),
    "pp": st.sampled_from([1, 2, 3]),
    "ep": st.sampled_from([1, 2, 8]),
    "attention_dp": st.sampled_from([1, 2]),
    "weight_dtype": st.sampled_from(["bf16", "fp8", "fp4", "int4"]),
    "kv_dtype": st.sampled_from(["same", "fp8"]),
    "compute_scale": st.sampled_from([1.0, 0.5, 3.0]),
    "memory_bandwidth_scale": st.sampled_from([1.0, 0.25, 2.0]),
    "scaleup_bandwidth_scale": st.sampled_from([1.0, 0.1]),
    "scaleout_bandwidth_scale": st.sampled_from([1.0, 5.0]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(POINTS)
def test_explain_rows_add_up_to_the_sweep(point):
    # static serving's phases (continuous: tests/test_continuous.py); the default is
    # continuous, so pin static
    point = {**point, "serving": "static"}
    table, summary = dse.explain(**point)
    ds = dse.evaluate(dse.parse_sweep({
        "grid": {k: v for k, v in point.items() if not k.endswith("_scale")},
        "what_if": {k: v for k, v in point.items() if k.endswith("_scale")}}))
    for phase, name in (("prefill", "ttft_s"), ("decode", "tpot_s")):
        sweep = float(ds[name].values.ravel()[0])
        rows = float(table.loc[table.phase == phase, "total_s"].sum())
        assert math.isclose(rows, sweep, rel_tol=1e-9), (phase, rows, sweep)
        assert summary[name] == sweep


def test_explain_takes_what_if_scales():
    slow = dse.explain(model="llama3_8b", batch=64, memory_bandwidth_scale=0.5)[1]
    base = dse.explain(model="llama3_8b", batch=64)[1]
    assert slow["tpot_s"] > 1.5 * base["tpot_s"]
