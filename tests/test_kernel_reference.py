"""The numba grid kernel against the plain-numpy reference on hypothesis-generated grids."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dse
from dse.kernels.grid import mean_max_lines, mean_max_lines_capped

from grid_strategies import (HARDWARE, MODELS, STRUCTURE, WHAT_IF_SCALES, axis, ints,
                             kernel_matches_reference, trimmed)

# configurations per drawn grid: the few grids of 10^4-10^6 points would take most of the
# file's time. Below that the static reference's time goes more to its steps (every decode
# step of every model) than to the points: 20 examples of up to 8,000 points price about as
# many configurations as 40 of up to 4,000, in half the time
MAX_POINTS = 8000

grids = st.fixed_dictionaries({
    "hardware": axis(HARDWARE, 2),
    "model": axis(MODELS, 2),
    "batch": ints(1, 300),
    "input_tokens": ints(1, 5000, 2),
    "output_tokens": ints(1, 40, 2),
    **STRUCTURE,
    "what_if": st.fixed_dictionaries({
        **WHAT_IF_SCALES,
        # a smaller memory makes large points spill (the offload axis)
        "memory_capacity_scale": st.lists(st.sampled_from([1.0, 0.1]), min_size=1,
                                          max_size=2, unique=True),
    }),
})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids)
def test_kernel_matches_reference_on_random_grids(grid):
    # static serving here (continuous: tests/test_serving_reference.py against the same
    # reference, tests/test_continuous.py against the simulator)
    axes, what_if = trimmed(grid, MAX_POINTS)
    spec = dse.parse_sweep({"grid": {**axes, "serving": ["static"]}, "what_if": what_if})
    fast, ref = kernel_matches_reference(spec)
    # the bound label may legitimately differ only where two resources tie within rounding
    same = fast["bound"].values == ref["bound"].values
    assert same.mean() > 0.999


def test_mean_max_lines_matches_stepping():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a0, b0 = rng.uniform(-5, 5, 2)
        a1, b1 = rng.uniform(-1, 1, 2)
        lo = float(rng.integers(0, 20))
        n = float(rng.integers(1, 30))
        c = np.arange(lo, lo + n)
        lines_a, lines_b = a0 + a1 * c, b0 + b1 * c
        mean, mean_a, frac_a = mean_max_lines(a0, a1, b0, b1, lo, n)
        assert np.isclose(mean, np.maximum(lines_a, lines_b).mean(), rtol=1e-12, atol=1e-12)
        assert np.isclose(mean_a, np.where(lines_a >= lines_b, lines_a, 0).mean(),
                          rtol=1e-9, atol=1e-9)
        assert np.isclose(frac_a, (lines_a >= lines_b).mean(), atol=1.5 / n)


def test_mean_max_lines_capped_matches_stepping():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a0, b0 = rng.uniform(0, 5, 2)
        a1, b1 = rng.uniform(0, 1, 2)
        lo = float(rng.integers(1, 40))
        n = float(rng.integers(1, 60))
        window = float(rng.integers(1, 80))
        c = np.minimum(np.arange(lo, lo + n), window)
        mean, _, _ = mean_max_lines_capped(a0, a1, b0, b1, lo, n, window)
        assert np.isclose(mean, np.maximum(a0 + a1 * c, b0 + b1 * c).mean(), rtol=1e-12)
