"""--memory-limit bounds the whole process, or the sweep is refused before any work.

Each sweep runs in a fresh process that reports its own peak RSS (VmHWM: since its exec).
Not ``ru_maxrss``: a child started with fork or vfork inherits its parent's peak there, so
under pytest it would report the test runner's memory, not the sweep's. The grids are ones
whose chunks the former per-configuration sizing let grow far past the budget: one group of
millions of strategies, many groups with large frontiers, the results table.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dse
from dse.chunks import fit_rows, largest_chunk, n_chunks, plan
from dse.grid import (GRID_DIMS, GROUP_DIMS, REDUCTION_ORDER, STRATEGY_DIMS, chunk_bytes,
                      coords)

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="peak RSS read from /proc/self/status")

RUN = """
import atexit, sys
def peak():
    with open("/proc/self/status") as fh:
        hwm = [line for line in fh if line.startswith("VmHWM:")][0]
    print("PEAK", int(hwm.split()[1]) * 1024, file=sys.stderr)
atexit.register(peak)
from dse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _values(n, start=1, step=1):
    return "[" + ", ".join(str(start + step * i) for i in range(n)) + "]"


def _sweep(tmp_path, grid: str, *extra):
    """Run ``dse sweep`` on ``grid`` (TOML) in a fresh process: (exit code, stderr lines
    other than the peak, peak RSS [bytes], the output folder)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(grid)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", RUN, "sweep", str(spec), "--out", str(out),
                           "--quiet", *extra], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    peak = [int(line.split()[1]) for line in lines if line.startswith("PEAK ")]
    return proc.returncode, [x for x in lines if not x.startswith("PEAK ")], peak[0], out


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Fill numba's cache first: compiling (LLVM) takes memory the budget does not model,
    and a fresh clone or cache would compile inside the measured process."""
    out = tmp_path_factory.mktemp("warm")
    spec = dse.parse_sweep({"grid": {"batch": [1, 2], "tp": [1, 2]}})
    dse.run_sweep(spec, out / "results", progress=False, chunk_rows=2)
    dse.run_sweep(spec, out / "frontiers", progress=False, results=False, chunk_rows=2)


def _within(tmp_path, grid, budget_text, budget, *extra):
    rc, err, peak, out = _sweep(tmp_path, grid, "--memory-limit", budget_text, *extra)
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["done"]) > 1  # it had to chunk
    assert peak <= budget, f"peak RSS {peak / 1e6:.0f} MB over the {budget_text} budget"
    return manifest


# 4 M configurations in one group (batch x tp): a chunk of part of one group holds
# per-strategy state several times the per-configuration figure (the old sizing made one
# chunk of the whole grid: 626 MB peak against 400 MB)
ONE_GROUP = f"[grid]\nbatch = {_values(2000)}\ntp = {_values(2000)}\n"
# 1.4 M configurations in 22,500 groups of 64 batch sizes, most of them on the frontier
# (old: 858 MB against 500 MB)
BIG_FRONTIERS = (f"[grid]\ninput_tokens = {_values(150, 80, 16)}\n"
                 f"output_tokens = {_values(150, 2)}\nbatch = {_values(64)}\n")
# 1 M configurations with the results table (old: 579 MB against 450 MB)
RESULTS = f"[grid]\nbatch = {_values(1000)}\ntp = {_values(1000)}\n"


def test_memory_budget_one_huge_group_stays_within_the_limit(tmp_path, compiled):
    m = _within(tmp_path, ONE_GROUP, "400MB", 400e6, "--no-results")
    assert sum(v["n"] for v in m["done"].values()) == 4_000_000


def test_memory_budget_groups_with_large_frontiers_stay_within_the_limit(tmp_path, compiled):
    _within(tmp_path, BIG_FRONTIERS, "600MB", 600e6, "--no-results")


def test_memory_budget_results_table_sweep_stays_within_the_limit(tmp_path, compiled):
    _within(tmp_path, RESULTS, "450MB", 450e6)


def _refused(tmp_path, grid, *extra):
    rc, err, _, out = _sweep(tmp_path, grid, *extra)
    assert rc == 2 and len(err) == 1, err
    assert not out.exists()  # refused before any work
    return err[0]


def test_memory_budget_refuses_a_grid_no_chunk_size_fits(tmp_path):
    # 1e12 configurations: even the largest chunk that fits 500 MB makes too many chunks
    grid = (f"[grid]\nbatch = {_values(10_000)}\ntp = {_values(10_000)}\n"
            f"input_tokens = {_values(10_000)}\n")
    line = _refused(tmp_path, grid, "--no-results", "--memory-limit", "500MB")
    for part in ("batch=10,000", "tp=10,000", "input_tokens=10,000",
                 "1,000,000,000,000 configurations", "500 MB budget", "need about"):
        assert part in line, line


def test_memory_budget_refuses_chunk_rows_that_make_too_many_chunks(tmp_path):
    grid = f"[grid]\nbatch = {_values(10_000)}\ntp = {_values(10_000)}\n"
    line = _refused(tmp_path, grid, "--no-results", "--memory-limit", "1GB",
                    "--chunk-rows", "2")
    for part in ("batch=10,000", "50,000,000 chunks", "--chunk-rows", "1 GB budget"):
        assert part in line, line


# --------------------------------------------------------------------------- the model
def _spec(**grid):
    return dse.parse_sweep({"grid": grid})


def test_memory_budget_fit_rows_keeps_every_chunk_within_the_budget():
    spec = _spec(batch=list(range(1, 301)), tp=list(range(1, 301)),
                 input_tokens=[128, 256, 512])
    for results, dims in ((False, REDUCTION_ORDER), (True, GRID_DIMS)):
        rows = fit_rows(spec, results, 700_000_000, 2, 1 << 30, held=300_000_000,
                        threads=2)
        c = coords(spec)
        for chunk in plan(spec, rows, dims):
            sizes = {d: len(v) for d, v in c.items()} | chunk.sizes(c)
            assert 2 * chunk_bytes(sizes, results, 2) < 700_000_000 - 300_000_000


def test_memory_budget_part_of_one_group_costs_more_per_configuration():
    full = {d: 1 for d in GRID_DIMS}
    one_group = full | {"batch": 1000, "tp": 1000}
    many_groups = full | {"batch": 10, "tp": 1000, "input_tokens": 100}
    per_config = [chunk_bytes(s, False, 2) / 1e6 for s in (one_group, many_groups)]
    assert per_config[0] > 1.3 * per_config[1]


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 50, 128, 1000, 5000])
def test_memory_budget_chunk_count_and_largest_chunk_match_the_plan(rows):
    spec = _spec(batch=[1, 2, 4, 8, 16], tp=[1, 2, 4], input_tokens=[128, 256],
                 output_tokens=[16, 32, 64], weight_dtype=["bf16", "fp8"])
    c = coords(spec)
    full = {d: len(v) for d, v in c.items()}
    for dims in (GRID_DIMS, REDUCTION_ORDER):
        chunks = plan(spec, rows, dims)
        shape = [full[d] for d in dims]
        assert len(chunks) == n_chunks(shape, rows)
        biggest = max(chunks, key=lambda ch: ch.n_configs(c))
        assert biggest.n_configs(c) == int(np.prod(largest_chunk(shape, rows))) <= max(rows, 1)
        # a plan's ranges name only the dims a chunk does not hold whole
        for ch in chunks:
            assert all(full[d] > 1 for d, _, _ in ch.ranges)
        assert sum(ch.n_configs(c) for ch in chunks) == spec.n_configs()


def test_memory_budget_chunk_bytes_grows_with_groups_and_strategies():
    base = {d: 1 for d in GRID_DIMS}
    for dim in (*GROUP_DIMS, *STRATEGY_DIMS):
        assert chunk_bytes(base | {dim: 2}, False, 2) > chunk_bytes(base, False, 2)
