"""Disaggregated-serving benchmark: what the ``[disaggregated]`` reduction adds to a sweep.

Run:  python benchmarks/bench_disaggregated.py [--spec benchmarks/sweep_10m.toml] [--repeats 3]

A frontiers-only sweep (``dse.run_sweep(..., results=False)``, as ``dse sweep SPEC --out DIR
--no-results``) of the spec with static serving, without and with a ``[disaggregated]``
section, interleaved in one run: median seconds and configs/s of each, the rows of
``disaggregated.parquet`` and the pairs priced (prefill x decode candidates after the
pre-filter). The machine is shared; timings are medians and still noisy.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tomllib
from pathlib import Path

import pyarrow.parquet as pq

import dse
from dse.config import parse_sweep

HERE = Path(__file__).resolve().parent


def spec_for(path, disaggregated: bool):
    data = tomllib.loads(Path(path).read_text())
    data["grid"]["serving"] = ["static"]
    if disaggregated:
        data["disaggregated"] = {"max_instances": 16}
    return parse_sweep(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(HERE / "sweep_10m.toml"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    specs = {flag: spec_for(args.spec, flag) for flag in (False, True)}
    n = specs[False].n_configs()
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for flag, spec in specs.items():  # warm-up: compile and load the kernels
            dse.run_sweep(spec, Path(tmp) / f"warm{flag}", results=False, progress=False)
        for r in range(args.repeats):
            for flag, spec in specs.items():
                t = time.perf_counter()
                dse.run_sweep(spec, Path(tmp) / f"run{r}{flag}", results=False,
                              progress=False)
                times[flag].append(time.perf_counter() - t)
        rows = pq.read_table(Path(tmp) / "run0True" / "disaggregated.parquet")
    print(f"{args.spec}: {n:,} configurations, static serving, frontiers only, "
          f"median of {args.repeats}")
    for flag, label in ((False, "without [disaggregated]"), (True, "with [disaggregated]")):
        med = statistics.median(times[flag])
        print(f"  {label:<24} {med:6.2f} s  {n / med / 1e6:6.1f} M configs/s")
    best = sum(rows.column("best").to_pylist())
    print(f"  disaggregated.parquet: {rows.num_rows:,} rows, {best} best pairings")


if __name__ == "__main__":
    main()
