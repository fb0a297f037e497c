"""Sweep benchmark: compile time, evaluation and end-to-end configs/s, peak RSS.

Run:  python benchmarks/bench_sweep.py [--spec benchmarks/sweep_10m.toml] [--repeats 5]
                                       [--serving static|continuous]

Prints grid size, cold and cached compile time (fresh processes, a fresh numba cache dir
for the cold one), steady-state evaluation configs/s (median), end-to-end configs/s with
reductions and the full Parquet table (median), peak RSS per configuration, the numpy
reference on a subset next to the kernel on the same subset, and the default sweep's wall
time from a warm cache. Timings are medians; the machine is shared, so expect noise.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(code: str, env=None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


FIRST_CALL = """
import json, time, dse
spec = dse.load_sweep({spec!r})
t = time.perf_counter(); dse.evaluate(spec); first = time.perf_counter() - t
print(json.dumps({{"first_evaluate_s": first}}))
"""

END_TO_END = """
import json, resource, tempfile, time, dse
spec = dse.load_sweep({spec!r})
dse.evaluate(spec)
times = []
for _ in range({repeats}):
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter(); s = dse.run_sweep(spec, d + "/out", progress=False)
        times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"times": times, "stages": s.seconds, "rss": rss, "n": spec.n_configs()}}))
"""


PYARROW_ALONE = """
import json, tempfile, time, dse
from dse import io
from dse.chunks import plan, subspec
from dse.grid import coords
from dse.table import PRESET_AXES, batch_rows, block_batches, columns, parquet_options, run_lengths, schema
spec = dse.load_sweep({spec!r})
full = coords(spec)
names = {{d: list(full[d]) for d in PRESET_AXES}}
sch = schema({{d: len(v) for d, v in names.items()}})
batches, runs, rows = [], {{}}, 0
for chunk in plan(spec, 1 << 22):
    block = dse.evaluate(subspec(spec, chunk))
    cols = columns(block, sch, names)
    for c, r in run_lengths(cols).items():  # one file: the shortest run of any block
        runs[c] = min(r, runs.get(c, r))
    rows = max(rows, batch_rows(cols))
    batches += block_batches(cols, sch, names)
times = []
for _ in range({repeats}):
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        w = io.open_writer(d + "/r.parquet", sch, **parquet_options(sch, runs, rows))
        for b in batches:
            w.write_batch(b)
        w.close()
        times.append(time.perf_counter() - t)
print(json.dumps({{"times": times}}))
"""


def with_serving(path: str, serving: str) -> str:
    """A copy of the spec at ``path`` (in a temporary folder) whose ``serving`` axis is
    ``[serving]``; its path."""
    text = Path(path).read_text()
    line = f'serving = ["{serving}"]'
    new, n = re.subn(r'^serving\s*=.*$', line, text, count=1, flags=re.M)
    if n == 0:
        new = text.replace("[grid]\n", f"[grid]\n{line}\n", 1)
    folder = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    out = Path(folder) / Path(path).name
    out.write_text(new)
    return str(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(HERE / "sweep_10m.toml"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--e2e-repeats", type=int, default=3)
    p.add_argument("--serving", choices=("static", "continuous"), default=None,
                   help="replace the spec's serving axis (the bundled specs pin static)")
    args = p.parse_args()
    if args.serving:
        args.spec = with_serving(args.spec, args.serving)

    import numba
    import numpy as np
    import pyarrow
    import xarray

    import dse
    spec = dse.load_sweep(args.spec)
    n = spec.n_configs()
    print(f"grid: {n:,} configurations from {args.spec}")
    print(f"cpus: {os.cpu_count()}  numba threads: {numba.config.NUMBA_NUM_THREADS}  "
          f"python {platform.python_version()}  numpy {np.__version__}  numba "
          f"{numba.__version__}  xarray {xarray.__version__}  pyarrow {pyarrow.__version__}")

    with tempfile.TemporaryDirectory() as cache:
        cold = child(FIRST_CALL.format(spec=args.spec), {"NUMBA_CACHE_DIR": cache})
        warm = child(FIRST_CALL.format(spec=args.spec), {"NUMBA_CACHE_DIR": cache})
    print(f"first evaluate in a fresh process: cold cache {cold['first_evaluate_s']:.2f} s, "
          f"cached {warm['first_evaluate_s']:.2f} s (includes numba start-up)")

    dse.evaluate(spec)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        dse.evaluate(spec)
        times.append(time.perf_counter() - t)
    ev = statistics.median(times)
    print(f"evaluation: median {ev:.3f} s over {args.repeats} runs = {n / ev / 1e6:.1f} M configs/s")

    e2e = child(END_TO_END.format(spec=args.spec, repeats=args.e2e_repeats))
    med = statistics.median(e2e["times"])
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in e2e["stages"].items())
    print(f"end to end (evaluate + Pareto + best + full configurations/ dataset): median {med:.2f} s "
          f"= {n / med / 1e6:.2f} M configs/s  [{stages}]")
    print(f"peak RSS: {e2e['rss'] / 1e6:.0f} MB = {e2e['rss'] / n:.1f} bytes/configuration")
    alone = statistics.median(child(PYARROW_ALONE.format(spec=args.spec,
                                                         repeats=args.e2e_repeats))["times"])
    print(f"pyarrow alone writing the same results table (prebuilt in memory, same writer "
          f"options): median {alone:.2f} s = {n / alone / 1e6:.2f} M configs/s; "
          f"end to end / pyarrow alone = {med / alone:.2f}x")

    # numpy reference vs kernel on the same subset (the reference is whole-array numpy)
    sub_grid = {k: list(v) for k, v in spec.grid.items()}
    sub_grid.update(hardware=sub_grid["hardware"][:1], model=sub_grid["model"][:1],
                    batch=sub_grid["batch"][:3], input_tokens=sub_grid["input_tokens"][:2],
                    output_tokens=sub_grid["output_tokens"][:1])
    sub = dse.parse_sweep({"grid": sub_grid, "what_if": {k: list(v) for k, v in spec.what_if.items()}})
    m = sub.n_configs()
    dse.evaluate(sub)
    k_times, r_times = [], []
    for _ in range(3):
        t = time.perf_counter()
        dse.evaluate(sub)
        k_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        dse.evaluate(sub, backend="reference")
        r_times.append(time.perf_counter() - t)
    kt, rt = statistics.median(k_times), statistics.median(r_times)
    print(f"subset of {m:,} configurations: kernel {m / kt / 1e6:.2f} M configs/s, numpy "
          f"reference {m / rt / 1e6:.3f} M configs/s ({rt / kt:.0f}x)")

    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "dse.cli", "sweep", "--out", f"{d}/warm",
                        "--quiet"], check=True)
        walls = []
        for i in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dse.cli", "sweep", "--out", f"{d}/o{i}",
                            "--quiet"], check=True)
            walls.append(time.perf_counter() - t)
    print(f"default sweep `dse sweep --out DIR`, warm cache: median wall "
          f"{statistics.median(walls):.2f} s (whole process)")


if __name__ == "__main__":
    main()
