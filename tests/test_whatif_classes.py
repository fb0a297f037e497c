"""What-if points that price every op alike share one pricing in the static kernel
(``kernels.grid._static_sums`` under ``_rate_classes``): capacity scales never change a
time, and a link no op sends bytes over only its latency. Each point of a what-if grid must
equal the same point evaluated alone (a one-point what-if grid, nothing shared)."""
from __future__ import annotations

import itertools

import numpy as np

import dse

GRID = """\
[grid]
hardware = ["h100_sxm"]
model = ["llama3_70b", "mixtral_8x7b"]
serving = ["static"]
batch = [1, 32]
input_tokens = [1024]
output_tokens = [64, 512]
tp = [1, 8, 16]
ep = [1, 2]
weight_dtype = ["fp8"]
"""

WHAT_IF = {"compute_scale": [1.0, 2.0], "memory_bandwidth_scale": [1.0, 1.25],
           "scaleup_bandwidth_scale": [1.0, 2.0], "scaleout_bandwidth_scale": [0.5, 1.0],
           "memory_capacity_scale": [1.0, 1.5]}


def _spec(what_if: dict):
    lines = [f"{k} = {v}" for k, v in what_if.items()]
    return dse.parse_sweep(GRID + "[what_if]\n" + "\n".join(lines) + "\n")


def test_each_what_if_point_equals_it_evaluated_alone():
    ds = dse.evaluate(_spec(WHAT_IF))
    names = list(WHAT_IF)
    for values in itertools.product(*WHAT_IF.values()):
        alone = dse.evaluate(_spec({k: [v] for k, v in zip(names, values)}))
        point = dict(zip(names, values))
        for metric in ("ttft_s", "tpot_s", "bound"):
            got = ds[metric].sel(point).values
            want = alone[metric].sel(point).values
            np.testing.assert_array_equal(got, want, err_msg=f"{metric} at {point}")
    # the shared pricing must not have merged what the scales change: on tp 8 (scale-up
    # collectives) the scale-up bandwidth matters, on tp 1 it does not
    tpot = ds["tpot_s"].sel(model="llama3_70b", batch=32, compute_scale=1.0,
                            memory_bandwidth_scale=1.0, scaleout_bandwidth_scale=1.0,
                            memory_capacity_scale=1.0, output_tokens=512)
    up = tpot.sel(tp=8, ep=1)
    assert np.all(up.sel(scaleup_bandwidth_scale=2.0).values
                  < up.sel(scaleup_bandwidth_scale=1.0).values)
    one = tpot.sel(tp=1, ep=1)
    np.testing.assert_array_equal(one.sel(scaleup_bandwidth_scale=2.0).values,
                                  one.sel(scaleup_bandwidth_scale=1.0).values)
    # tp 16 spans two 8-GPU domains: the scale-out bandwidth matters
    out = ds["tpot_s"].sel(model="llama3_70b", batch=32, tp=16, ep=1, compute_scale=1.0,
                           memory_bandwidth_scale=1.0, scaleup_bandwidth_scale=1.0,
                           memory_capacity_scale=1.0, output_tokens=512)
    assert np.all(out.sel(scaleout_bandwidth_scale=0.5).values
                  > out.sel(scaleout_bandwidth_scale=1.0).values)
