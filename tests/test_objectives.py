"""The [objectives] section: N-dimensional frontiers against brute force, the best table
under a chosen objective, the limits that bind and the picks at the edge of an axis."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from dse.config import ConfigError, parse_sweep
from dse.kernels.pareto import frontier_nd, pareto_sorted_nd
from dse.objectives import OBJECTIVES, CONSTRAINT_ORDER


def brute_nd(vals, ok):
    """Non-dominated among the ``ok`` columns of vals [k, n], every objective maximized."""
    keep = np.zeros(vals.shape[1], dtype=bool)
    for i in np.flatnonzero(ok):
        ge = (vals >= vals[:, [i]]).all(axis=0)
        gt = (vals > vals[:, [i]]).any(axis=0)
        keep[i] = not (ok & ge & gt).any()
    return keep


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(1, 60), st.integers(0, 2**31))
def test_frontier_nd_matches_brute_force(k, n, seed):
    rng = np.random.default_rng(seed)
    vals = rng.integers(0, 5, (k, n)).astype(float)  # few values: ties and duplicates
    ok = rng.random(n) < 0.8
    kept = frontier_nd(vals, np.flatnonzero(ok))
    np.testing.assert_array_equal(kept, np.flatnonzero(brute_nd(vals, ok)))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(1, 4), st.integers(1, 30), st.integers(0, 2**31))
def test_merge_of_sorted_rows_matches_brute_force(k, n_groups, n, seed):
    rng = np.random.default_rng(seed)
    vals = rng.integers(0, 4, (k, n_groups * n)).astype(float)
    group = np.repeat(np.arange(n_groups), n)
    order = np.lexsort((*(-vals[::-1]), group))
    keep = np.zeros(group.size, dtype=bool)
    keep[order] = pareto_sorted_nd(group[order], np.ascontiguousarray(vals[:, order]))
    for g in range(n_groups):
        rows = group == g
        np.testing.assert_array_equal(keep[rows], brute_nd(vals[:, rows], np.ones(n, bool)))


SPEC = {"grid": {"hardware": ["h100_sxm", "mi300x"], "model": ["llama3_8b"],
                 "batch": [1, 4, 16, 64], "input_tokens": [512, 4096], "tp": [1, 2, 4],
                 "weight_dtype": ["bf16", "fp8"]},
        "constraints": {"max_ttft_s": 0.3, "max_tpot_s": 0.02}}
PARETO = ["cost_per_million_output_tokens", "tokens_per_s_per_user", "ttft_s"]


def _signed(df, metric):
    return OBJECTIVES[metric][1] * df[metric].to_numpy(dtype=float)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One sweep with a cost objective and a 3-d frontier, split into many chunks (the
    merges combine partial frontiers and bests), and its full results table."""
    out = tmp_path_factory.mktemp("objectives") / "out"
    spec = parse_sweep(SPEC | {"objectives": {"best": "cost_per_million_output_tokens",
                                              "pareto": PARETO}})
    dse.run_sweep(spec, out, progress=False, chunk_rows=7)
    results = pd.read_parquet(out / "configurations")
    for c in ("hardware", "model", "weight_dtype", "act_dtype", "kv_dtype"):
        results[c] = results[c].astype(str)
    return out, results


GROUP = ["hardware", "model", "input_tokens"]
STRATEGY = ["batch", "tp", "weight_dtype"]


def test_three_metric_frontier_matches_brute_force_over_the_results(swept):
    out, results = swept
    pareto = pd.read_parquet(out / "pareto.parquet")
    feasible = results[results.feasible]
    expected = set()
    for key, grp in feasible.groupby(GROUP):
        vals = np.array([_signed(grp, m) for m in PARETO])
        ok = ~np.isnan(vals).any(axis=0)
        for i in np.flatnonzero(brute_nd(vals, ok)):
            expected.add((*key, *grp.iloc[i][STRATEGY]))
    got = {tuple(r) for r in pareto[GROUP + STRATEGY].astype(
        {"hardware": str, "model": str, "weight_dtype": str}).itertuples(index=False)}
    assert got == expected and len(got) > 0


def _brute_best(grp, cons, metric):
    ok = grp.feasible.to_numpy().copy()
    for limit, col in (("max_devices", "devices"), ("max_ttft_s", "ttft_s"),
                       ("max_tpot_s", "tpot_s")):
        if limit in cons:
            ok &= grp[col].to_numpy() <= cons[limit]
    v = np.where(ok, _signed(grp, metric), -np.inf)
    v = np.where(np.isnan(v), -np.inf, v)
    return (None if not np.isfinite(v.max()) else grp.iloc[int(np.argmax(v))]), v.max()


def test_best_minimizes_the_chosen_objective_and_names_the_binding_limits(swept):
    out, results = swept
    best = pd.read_parquet(out / "best.parquet")
    cons = SPEC["constraints"]
    metric = "cost_per_million_output_tokens"
    assert len(best) == results.groupby(GROUP).ngroups
    n_binding = 0
    for key, grp in results.groupby(GROUP):
        row = best[(best.hardware == key[0]) & (best.model == key[1])
                   & (best.input_tokens == key[2])].iloc[0]
        pick, value = _brute_best(grp, cons, metric)
        assert row.found == (pick is not None)
        if pick is not None:
            assert row[metric] == pytest.approx(pick[metric], rel=1e-12)
        # lifting one limit at a time: binding where the pick gets better
        binding = []
        for limit in CONSTRAINT_ORDER:
            _, lifted = _brute_best(grp, {k: v for k, v in cons.items() if k != limit},
                                    metric)
            if lifted > value + 1e-9 * (abs(value) if np.isfinite(value) else 0.0):
                binding.append(limit)
        got = row.binding_constraints
        assert (got.split(",") if isinstance(got, str) else []) == binding, key
        n_binding += bool(binding)
    assert n_binding > 0  # the limits are tight enough to matter somewhere


def test_edge_axes_flag_picks_at_the_end_of_a_swept_range(swept):
    out, _ = swept
    best = pd.read_parquet(out / "best.parquet")
    for _, row in best[best.found].iterrows():
        flags = set(row.edge_axes.split(",")) if isinstance(row.edge_axes, str) else set()
        assert ("batch=max" in flags) == (row.batch == 64)
        assert ("tp=max" in flags) == (row.tp == 4)
        assert not any(f.endswith("=min") for f in flags)  # batch and tp start at 1
    assert best[~best.found].edge_axes.isna().all()


def test_default_objectives_keep_the_tokens_per_device_pick(tmp_path):
    spec = parse_sweep({"grid": SPEC["grid"]})
    dse.run_sweep(spec, tmp_path / "o", progress=False)
    results = pd.read_parquet(tmp_path / "o" / "configurations")
    best = pd.read_parquet(tmp_path / "o" / "best.parquet")
    top = results[results.feasible].groupby(
        [c for c in GROUP])["tokens_per_s_per_device"].max().to_numpy()
    np.testing.assert_allclose(np.sort(best.tokens_per_s_per_device.to_numpy()),
                               np.sort(top), rtol=1e-12)
    assert best.binding_constraints.isna().all()  # no [constraints]


@pytest.mark.parametrize("section, message", [
    ({"best": "cost"}, "[objectives] best = 'cost': not an objective (did you mean "
                       "cost_per_million_output_tokens?)"),
    ({"pareto": ["ttft_s"]}, "[objectives] pareto = ['ttft_s']: give a list of 2 or more"),
    ({"pareto": ["ttft_s", "ttft_s"]}, "a metric is named twice"),
    ({"pareto": ["ttft_s", 3]}, "[objectives] pareto = 3: not an objective"),
    ({"goal": "ttft_s"}, "[objectives] goal = 'ttft_s': unknown key"),
])
def test_bad_objectives_are_one_line_errors(section, message):
    with pytest.raises(ConfigError) as e:
        parse_sweep({"objectives": section}, source="s.toml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_former_cost_name_is_accepted_as_an_objective():
    """Specs written before the cost column was renamed (issue 15) still parse: the former
    name cost_per_million_tokens stands for cost_per_million_output_tokens."""
    spec = parse_sweep(SPEC | {"objectives": {"best": "cost_per_million_tokens",
                                              "pareto": ["cost_per_million_tokens",
                                                         "ttft_s"]}})
    assert spec.objectives.best == "cost_per_million_output_tokens"
    assert spec.objectives.pareto == ("cost_per_million_output_tokens", "ttft_s")


def test_cli_sweep_with_objectives_in_a_relative_folder(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[grid]\nhardware = ["h100_sxm"]\nmodel = ["llama3_8b"]\nbatch = [1, 8]\n'
        'tp = [1, 2]\n[constraints]\nmax_tpot_s = 0.05\n'
        '[objectives]\nbest = "devices"\npareto = ["tokens_per_s_per_device", '
        '"tokens_per_s_per_user", "e2e_latency_s"]\n')
    r = subprocess.run([sys.executable, "-m", "dse.cli", "sweep", "s.toml", "--out",
                        "results", "--no-results"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    best = pd.read_parquet(tmp_path / "results" / "best.parquet")
    assert (best.devices == 1).all()  # tp 1 meets the TPOT limit and uses fewest devices
    # the printed answer names the objective and shows its column
    assert "best configuration per group (fewest devices within the constraints)" in r.stdout
    assert "Pareto frontiers: tokens/s/device vs tokens/s/user vs latency" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[objectives]\nbest = "throughput"\n')
    r = subprocess.run([sys.executable, "-m", "dse.cli", "sweep", "bad.toml", "--out", "x"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "bad.toml: [objectives] best = 'throughput'" in r.stderr


def test_report_and_metadata_name_the_objectives(swept):
    import json

    import pyarrow.parquet as pq

    from dse.report import write_report
    out, _ = swept
    meta = pq.read_schema(out / "best.parquet").metadata
    assert json.loads(meta[b"dse.objectives"]) == {"best": "cost_per_million_output_tokens",
                                                   "pareto": PARETO}
    write_report(out)
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "The lowest cost per million output tokens within the constraints" in text


def test_energy_objective_matches_brute_force(tmp_path):
    """best = least energy per token, frontier = (energy, tokens/s per user): the kernel's
    restated power model picks what the results table's energy column says, in both
    serving modes (a static batch's prefill at TDP)."""
    grid = dict(SPEC["grid"], serving=["continuous", "static"], hardware=["h100_sxm",
                                                                          "a100_80gb"])
    spec = parse_sweep({"grid": grid, "objectives": {
        "best": "energy_per_token_j", "pareto": ["energy_per_token_j", "tokens_per_s_per_user"]}})
    dse.run_sweep(spec, tmp_path / "e", progress=False, chunk_rows=5)
    results = pd.read_parquet(tmp_path / "e" / "configurations")
    best = pd.read_parquet(tmp_path / "e" / "best.parquet")
    pareto = pd.read_parquet(tmp_path / "e" / "pareto.parquet")
    keys = GROUP + ["serving"]
    feasible = results[results.feasible]
    top = feasible.groupby(keys, observed=True)["energy_per_token_j"].min()
    got = best.set_index(keys)["energy_per_token_j"]
    assert len(top) == len(got) > 0
    for key, value in top.items():
        assert got.loc[key] == pytest.approx(value, rel=1e-12)
    n_expected = 0
    for _, grp in feasible.groupby(keys, observed=True):
        vals = np.array([-grp["energy_per_token_j"].to_numpy(),
                         grp["tokens_per_s_per_user"].to_numpy()])
        n_expected += int(brute_nd(vals, np.ones(len(grp), bool)).sum())
    assert len(pareto) == n_expected
