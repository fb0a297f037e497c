"""Reference-simulator benchmark: the benchmark runs ``dse validate`` simulates.

Run:  python benchmarks/bench_simulate.py [--rows 12] [--repeats 3] [--csv TABLE]

Takes ``--rows`` rows of a measured table that state their benchmark run (``num_prompts``),
evenly spaced over them (a fixed selection: the same rows every time), and prices each
run as ``dse validate`` does (``dse.validate.protocol_run``: the row's per-iteration
physics, ``dse.simulation.point``, stepped by ``dse.kernels.simulate``). Reports the
median over ``--repeats`` of the seconds for all rows, the simulated iterations per second
and the seconds per row, and checks that every repeat gives the same results. The
iterations are counted by wrapping the physics callable, which costs a few percent. The
machine is shared; timings are medians and still noisy.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

import dse.simulation
from dse.validate import check_table, protocol_run

ROOT = Path(__file__).resolve().parent.parent


def counting_point(counter):
    """``dse.simulation.point`` whose iteration_time counts its calls in ``counter``."""
    point = dse.simulation.point

    def wrapped(*args, **kwargs):
        summary, iteration_time, engine, slots = point(*args, **kwargs)

        def counted(*a):
            counter[0] += 1
            return iteration_time(*a)
        return summary, counted, engine, slots
    return wrapped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=str(ROOT / "configs/validation/serving.csv"))
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    path = Path(args.csv)
    rows = check_table(pd.read_csv(path), str(path), path.parent)
    runs = rows[(rows["num_prompts"] > 0) & (rows["serving"] == "continuous")]
    if runs.empty:
        raise SystemExit(f"{path}: no row states a benchmark run (num_prompts)")
    pick = runs.iloc[np.unique(np.linspace(0, len(runs) - 1, min(args.rows, len(runs)))
                               .round().astype(int))]
    counter = [0]
    dse.simulation.point = counting_point(counter)
    protocol_run(pick.iloc[0], path.parent, str(path))  # compile / load the kernels once
    seconds, results = [], None
    for _ in range(args.repeats):
        counter[0] = 0
        t0 = time.perf_counter()
        out = [protocol_run(pick.iloc[i], path.parent, str(path)) for i in range(len(pick))]
        seconds.append(time.perf_counter() - t0)
        if results is not None and out != results:
            raise SystemExit("the simulator gave different results in two repeats")
        results = out
    median = statistics.median(seconds)
    print(f"{len(pick)} benchmark runs of {path.name} ({counter[0]:,} simulated iterations): "
          f"median {median:.2f} s of {args.repeats} = {counter[0] / median:,.0f} "
          f"iterations/s, {median / len(pick):.2f} s per run")


if __name__ == "__main__":
    main()
