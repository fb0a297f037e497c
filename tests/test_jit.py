"""dse.jit.compile_clock measures numba compiling, so a first run can say why it is slow."""
import numpy as np
from numba import njit

from dse.jit import compile_clock


def test_compile_clock_counts_compiling_not_cached_calls():
    @njit
    def inner(x):
        return x * 2.0

    @njit
    def outer(x):  # compiling it compiles inner: one outermost compilation
        return inner(x) + 1.0

    with compile_clock() as clock:
        assert outer(np.float64(1.0)) == 3.0
    assert clock.seconds > 0 and clock.depth == 0
    with compile_clock() as again:
        outer(np.float64(2.0))  # compiled already: no event
    assert again.seconds == 0.0


def test_sweep_summary_reports_compile_seconds(tmp_path):
    import dse
    s = dse.run_sweep(dse.parse_sweep({"grid": {"batch": [1, 2]}}), tmp_path / "o",
                      progress=False)
    assert s.seconds["compile"] >= 0.0 and s.seconds["compile"] <= s.seconds["total"]
