"""sensitivity.parquet (issue 13 item 6): arc elasticities of the best outcome per what-if,
by hand on a made-up best table and end to end from a sweep."""
import math

import numpy as np
import pandas as pd
import pytest

import dse
from dse.sensitivity import sensitivity


def test_elasticity_by_hand():
    # tokens/s grows as bandwidth^0.5, TPOT falls as bandwidth^-1; the strategy changes
    # between 1.2 and 1.5
    x = np.array([1.0, 1.2, 1.5])
    best = pd.DataFrame({"hardware": "h", "model": "m", "memory_bandwidth_scale": x,
                         "found": True, "batch": [8, 8, 16],
                         "tokens_per_s_per_device": 100 * x ** 0.5,
                         "ttft_s": [1.0, 1.0, 1.0], "tpot_s": 0.02 / x})
    s = sensitivity(best)
    assert len(s) == 2 and (s.what_if == "memory_bandwidth_scale").all()
    np.testing.assert_allclose(s.elasticity_tokens_per_s_per_device, 0.5, rtol=1e-12)
    np.testing.assert_allclose(s.elasticity_tpot_s, -1.0, rtol=1e-12)
    np.testing.assert_allclose(s.elasticity_ttft_s, 0.0, atol=1e-15)
    assert s.same_strategy.tolist() == [True, False]
    assert s.from_value.tolist() == [1.0, 1.2] and s.to_value.tolist() == [1.2, 1.5]
    assert s.memory_bandwidth_scale.isna().all()  # the varied axis: from/to carry it


def test_groups_without_a_best_are_left_out():
    best = pd.DataFrame({"hardware": "h", "compute_scale": [1.0, 2.0], "found": [True, False],
                         "tokens_per_s_per_device": [1.0, math.nan], "ttft_s": [1.0, math.nan],
                         "tpot_s": [1.0, math.nan]})
    assert sensitivity(best).empty


def test_sweep_writes_sensitivity_with_what_ifs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = {"model": ["llama3_8b"], "batch": [1, 16], "tp": [1, 2]}
    s = dse.run_sweep(dse.parse_sweep({"grid": grid, "what_if": {
        "memory_bandwidth_scale": [1.0, 1.5], "compute_scale": [1.0, 2.0]}}), "out",
        progress=False)
    sens = pd.read_parquet("out/sensitivity.parquet")
    assert set(sens.what_if) == {"memory_bandwidth_scale", "compute_scale"}
    # per axis: one pair per group of the other keys (2 values of the other what-if)
    assert len(sens) == 4 and sens.elasticity_tokens_per_s_per_device.notna().all()
    # more bandwidth never makes the best slower
    mem = sens[sens.what_if == "memory_bandwidth_scale"]
    assert (mem.elasticity_tokens_per_s_per_device >= 0).all()
    assert s.n_groups == 4
    dse.run_sweep(dse.parse_sweep({"grid": grid}), "plain", progress=False)
    assert not (tmp_path / "plain" / "sensitivity.parquet").exists()
