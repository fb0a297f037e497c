"""Continuous-serving benchmark: configs/s of the continuous path next to the static one.

Run:  python benchmarks/bench_continuous.py [--spec benchmarks/sweep_10m.toml] [--repeats 7]
                                            [--e2e benchmarks/sweep_1b.toml] [--e2e-hardware 2]

1. The grid kernel alone (``dse.evaluate``'s kernel call, inputs prepared once) and
   ``dse.evaluate`` on ``--spec`` with ep = [1] (valid strategies), static and continuous
   serving interleaved in the same run: median configs/s of each.
2. With ``--e2e``: a frontiers-only sweep (``dse.run_sweep(..., results=False)``, as
   ``dse sweep SPEC --out DIR --no-results``) of that spec with ep = [1] and continuous
   serving (issue 11's speed target: >= 25 M configs/s), optionally on its first
   ``--e2e-hardware`` hardware only to keep the run short: the median of ``--repeats``
   sweeps after a first one, which is reported apart (it also loads the reduction kernels
   from numba's cache, a one-off cost per process).

The machine is shared; timings are medians and still noisy.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
import tomllib
from pathlib import Path

import dse
from dse.config import parse_sweep

HERE = Path(__file__).resolve().parent
E = importlib.import_module("dse.evaluate")


def spec_for(path, serving, hardware=None):
    data = tomllib.loads(Path(path).read_text())
    data["grid"]["ep"] = [1]
    data["grid"]["serving"] = [serving]
    if hardware:
        data["grid"]["hardware"] = data["grid"]["hardware"][:hardware]
    return parse_sweep(data)


def kernel_runner(spec):
    c = E.coords(spec)
    memory = E.memory_and_validity(spec, c)
    inputs = E.kernel_inputs(spec, memory["slots"], memory["host_bytes"])
    shapes = (E.kernel_shape(c, E.TTFT_DIMS), E.kernel_shape(c, E.TPOT_DIMS))
    return lambda: E.run_kernel(inputs, *shapes)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(HERE / "sweep_10m.toml"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--e2e", default=None, help="spec for the frontiers-only sweep")
    ap.add_argument("--e2e-hardware", type=int, default=None,
                    help="only the first N hardware of the --e2e spec")
    args = ap.parse_args()

    modes = ("static", "continuous")
    specs = {m: spec_for(args.spec, m) for m in modes}
    runs = {m: kernel_runner(specs[m]) for m in modes}
    for m in modes:  # compile / warm up
        runs[m]()
        dse.evaluate(specs[m])
    kern = {m: [] for m in modes}
    ev = {m: [] for m in modes}
    for _ in range(args.repeats):  # interleaved: both see the same machine load
        for m in modes:
            kern[m].append(timed(runs[m]))
            ev[m].append(timed(lambda: dse.evaluate(specs[m])))
    print(f"{args.spec} with ep = [1], {args.repeats} repeats, medians")
    for m in modes:
        n = specs[m].n_configs()
        k, e = statistics.median(kern[m]), statistics.median(ev[m])
        print(f"  {m:10s} {n:>12,d} configs  kernel {k:8.4f} s = {n / k / 1e6:7.1f} M/s"
              f"   evaluate {e:8.4f} s = {n / e / 1e6:7.1f} M/s")
    k_s, k_c = statistics.median(kern["static"]), statistics.median(kern["continuous"])
    print(f"  continuous / static kernel time: {k_c / k_s:.2f}")

    if args.e2e:
        spec = spec_for(args.e2e, "continuous", args.e2e_hardware)

        def sweep():
            with tempfile.TemporaryDirectory() as d:
                return timed(lambda: dse.run_sweep(spec, Path(d) / "out", progress=False,
                                                   results=False))
        first = sweep()  # includes loading the reduction kernels from numba's cache
        times = [sweep() for _ in range(args.repeats)]
        n, t = spec.n_configs(), statistics.median(times)
        print(f"{args.e2e} with ep = [1], serving continuous"
              + (f", first {args.e2e_hardware} hardware" if args.e2e_hardware else "")
              + f": frontiers-only sweep {n:,d} configs, median of {args.repeats} "
              f"{t:.2f} s = {n / t / 1e6:.1f} M/s (min {min(times):.2f} s = "
              f"{n / min(times) / 1e6:.1f} M/s; the process's first sweep {first:.2f} s = "
              f"{n / first / 1e6:.1f} M/s)")


if __name__ == "__main__":
    main()
