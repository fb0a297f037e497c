"""sensitivity.parquet (issue 13 item 6): arc elasticities of the best outcome per what-if,
by hand on a made-up best table and end to end from a sweep."""
import math

import numpy as np
import pandas as pd

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


def test_vectorized_table_equals_a_loop_over_groups():
    # unsorted what-if values, rows in random order, a null key, groups without a best:
    # the same rows, in the same order, as a loop over groups (the previous implementation)
    rng = np.random.default_rng(0)
    n = 300
    best = pd.DataFrame({
        "hardware": pd.Categorical(rng.choice(["a", "b", None], n)),
        "input_tokens": rng.choice([512, 1024], n),
        "compute_scale": rng.choice([2.0, 1.0, 1.5], n),
        "memory_bandwidth_scale": rng.choice([1.25, 0.8, 1.0], n),
        "found": rng.random(n) < 0.8, "batch": rng.choice([1, 8], n),
        "weight_dtype": pd.Categorical(rng.choice(["bf16", "fp8"], n)),
        "tokens_per_s_per_device": rng.random(n), "ttft_s": rng.random(n),
        "tpot_s": rng.random(n)}).drop_duplicates(
            ["hardware", "input_tokens", "compute_scale", "memory_bandwidth_scale"])
    keys = list(best.columns[:4])
    found = best[best.found]
    want = []
    for axis in ("compute_scale", "memory_bandwidth_scale"):
        others = [k for k in keys if k != axis]
        for group, rows in found.groupby(others, dropna=False, observed=True, sort=False):
            rows = rows.sort_values(axis)
            x = rows[axis].to_numpy()
            same = (rows.batch.astype(str) + "|" + rows.weight_dtype.astype(str)).to_numpy()
            for i in range(len(rows) - 1):
                el = [(np.log(rows[m].iloc[i + 1]) - np.log(rows[m].iloc[i]))
                      / (np.log(x[i + 1]) - np.log(x[i])) for m in
                      ("tokens_per_s_per_device", "ttft_s", "tpot_s")]
                want.append({**dict(zip(others, group)), "what_if": axis,
                             "from_value": x[i], "to_value": x[i + 1],
                             "same_strategy": bool(same[i] == same[i + 1]),
                             **dict(zip(["elasticity_tokens_per_s_per_device",
                                         "elasticity_ttft_s", "elasticity_tpot_s"], el))})
    got = sensitivity(best)
    want = pd.DataFrame(want, columns=got.columns)
    assert len(got) > 40 and got.hardware.isna().any()
    pd.testing.assert_frame_equal(got, want, check_exact=True)
