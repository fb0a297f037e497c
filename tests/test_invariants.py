"""Physical invariants over a moderate grid."""
import dataclasses

import numpy as np

import dse

SPEC = {
    "grid": {"hardware": ["h100_sxm", "mi300x"], "model": ["llama3_8b", "mixtral_8x7b"],
             "batch": [1, 8, 64], "input_tokens": [256, 4096], "output_tokens": [1, 64],
             "tp": [1, 2, 4, 8], "pp": [1, 2, 4], "ep": [1, 2],
             "weight_dtype": ["bf16", "fp8"]},
    "what_if": {"compute_scale": [0.5, 1.0, 2.0], "memory_bandwidth_scale": [0.8, 1.0, 1.25],
                "scaleup_bandwidth_scale": [0.5, 1.0, 2.0],
                "scaleout_bandwidth_scale": [1.0, 3.0]},
}


def _ds():
    return dse.evaluate(dse.parse_sweep(SPEC))


def test_more_bandwidth_or_flops_is_never_slower():
    ds = _ds()
    for dim in ("compute_scale", "memory_bandwidth_scale", "scaleup_bandwidth_scale",
                "scaleout_bandwidth_scale"):
        for var in ("ttft_s", "tpot_s"):
            diffs = ds[var].diff(dim)
            assert float(diffs.max()) <= 1e-15, (dim, var)


def test_more_tp_or_pp_never_more_weight_bytes_per_device():
    ds = _ds()
    w = ds["weight_bytes_per_device"]
    assert float(w.diff("tp").max()) <= 0
    assert float(w.diff("pp").max()) <= 0


def test_no_nan_anywhere():
    ds = _ds()
    der = dse.derive(ds)
    # price: NaN is the documented "unknown" of presets without a price, and so the cost
    unknown_price = ("price_per_device_hour_usd", "cost_per_million_output_tokens")
    for v in (*ds.data_vars.values(), *der.data_vars.values()):
        if np.issubdtype(v.dtype, np.floating) and v.name not in unknown_price:
            assert not np.isnan(v.values).any(), v.name


def test_invalid_combinations_are_flagged_not_crashing():
    spec = dse.parse_sweep({"grid": {"model": ["llama3_8b", "mixtral_8x7b"], "tp": [3, 4],
                                     "ep": [1, 4, 8], "pp": [1, 64]}})
    # specs refuse a zero scale; one built by hand still gets flagged points, not NaN
    spec = dataclasses.replace(spec, what_if={**spec.what_if, "compute_scale": (0.0, 1.0)})
    der = dse.derive(dse.evaluate(spec))
    for v in der.data_vars.values():
        if np.issubdtype(v.dtype, np.floating) and v.name != "cost_per_million_output_tokens":
            assert not np.isnan(v.values).any(), v.name
    from dse.evaluate import REASONS
    names = {REASONS[c] for c in np.unique(der["reason"].values)}
    assert {"tp_not_divisor_of_heads", "ep_on_dense_model", "ep_not_divisor_of_tp",
            "pp_exceeds_layers", "what_if_scale_not_positive"} <= names
    assert der["feasible"].sel(model="llama3_8b", tp=4, ep=1, pp=1,
                               compute_scale=1.0).all()
