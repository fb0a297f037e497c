"""Pareto frontier kernel against brute force."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.kernels.pareto import PREFILTER_MIN, frontier


def brute(x, y, ok):
    keep = np.zeros_like(ok)
    for i in np.nonzero(ok)[0]:
        dominated = ok & (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))
        keep[i] = not dominated.any()
    return keep


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), st.integers(0, 2**31))
def test_pareto_matches_brute_force(n_groups, n_points, seed):
    rng = np.random.default_rng(seed)
    # few distinct values -> many ties and duplicates
    x = rng.integers(0, 6, (n_groups, n_points)).astype(float)
    y = rng.integers(0, 6, (n_groups, n_points)).astype(float)
    ok = rng.random((n_groups, n_points)) < 0.8
    for g in range(n_groups):
        kept = frontier(x[g], y[g], np.nonzero(ok[g])[0])
        np.testing.assert_array_equal(kept, np.nonzero(brute(x[g], y[g], ok[g]))[0])


@settings(max_examples=40, deadline=None)
@given(st.integers(PREFILTER_MIN, 600), st.integers(0, 2**31), st.sampled_from([3, 50, 0]))
def test_prefiltered_frontier_matches_brute_force(n_points, seed, levels):
    """Groups large enough for the binned pre-filter: ties (few levels), clustered and
    heavy-tailed values (levels=0: log-normal x, so most points share a few bins)."""
    rng = np.random.default_rng(seed)
    if levels:
        x = rng.integers(0, levels, n_points).astype(float)
        y = rng.integers(0, levels, n_points).astype(float)
    else:
        x = rng.lognormal(0, 3, n_points)
        y = 1.0 / (x + rng.random(n_points))
    ok = rng.random(n_points) < 0.9
    kept = frontier(x, y, np.nonzero(ok)[0])
    np.testing.assert_array_equal(kept, np.nonzero(brute(x, y, ok))[0])


def test_pareto_empty_group_keeps_nothing():
    assert frontier(np.ones(3), np.ones(3), np.zeros(0, dtype=np.int64)).size == 0
