"""Streaming benchmark: billion-configuration sweeps in bounded memory, and worker scaling.

Run:  python benchmarks/bench_stream.py [--quick]

0. A small warm-up sweep (numba's compile cache), untimed.
1. `benchmarks/sweep_1b.toml` (1.07 B configurations) with --no-results: wall time,
   configs/s, peak RSS (fresh process).
2. `benchmarks/sweep_200m.toml` (239 M configurations) with the full partitioned results
   table: configs/s, bytes on disk per configuration, peak RSS; and, on the same chunks,
   the time pyarrow alone takes to write the same record batches (batches built untimed,
   chunk by chunk), to report end to end / pyarrow alone.
3. Scaling: `benchmarks/sweep_200m.toml` with --no-results on a local dask cluster of 1 and
   of 2 worker processes; as run (the workers share the cores), and with each worker held
   to one core (NUMBA_NUM_THREADS=1), which is what adding a machine looks like.
--quick shrinks every grid (for a smoke run).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUN = """
import json, resource, sys, time, dse
spec = dse.load_sweep({spec!r})
if {quick}:
    import dataclasses
    spec = dataclasses.replace(spec, grid={{**spec.grid, "batch": spec.grid["batch"][:2]}})
t = time.perf_counter()
s = dse.run_sweep(spec, {out!r}, progress=False, results={results}, workers={workers},
                  memory_limit_bytes={budget})
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"n": s.n_configs, "wall": wall, "rss": rss, "chunks": s.n_chunks,
                  "cluster": s.seconds["cluster_start_stop"]}}))
"""

PYARROW_ALONE = """
import json, time, dse
from pathlib import Path
from dse import io
from dse.chunks import plan, subspec
from dse.evaluate import evaluate
from dse.grid import coords
from dse.sweep import partitions
from dse.table import PRESET_AXES, schema
spec = dse.load_sweep({spec!r})
if {quick}:
    import dataclasses
    spec = dataclasses.replace(spec, grid={{**spec.grid, "batch": spec.grid["batch"][:2]}})
manifest = json.loads((Path({out!r}) / "manifest.json").read_text())
full = coords(spec)
names = {{d: list(full[d]) for d in PRESET_AXES}}
sch = io.with_metadata(schema({{d: len(v) for d, v in names.items()}}), io.metadata(spec))
total = 0.0
for chunk in plan(spec, manifest["chunk_rows"]):
    ds = evaluate(subspec(spec, chunk))
    for _, batches, options in partitions(ds, ("hardware", "model"), sch, names):
        batches = list(batches)  # built untimed
        t = time.perf_counter()
        io.write_batches(Path({scratch!r}) / "p.parquet", batches=iter(batches), **options)
        total += time.perf_counter() - t
print(json.dumps({{"write_s": total}}))
"""


def child(code: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budget", default=4_000_000_000, type=int, help="memory budget [bytes]")
    p.add_argument("--parts", default="1,2,3", help="which measurements to run, e.g. 1,3")
    args = p.parse_args()
    parts = {int(x) for x in args.parts.split(",")}
    q = args.quick
    print(f"cpus: {os.cpu_count()}  budget: {args.budget / 1e9:.1f} GB")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # numba compiles on first use (cached after that): warm the cache on a small grid
        # so the figures are steady-state throughput
        w = child(RUN.format(spec=str(HERE / "sweep_10m.toml"), out=str(tmp / "warm"),
                             quick=True, results=True, workers=None, budget=args.budget))
        print(f"warm-up sweep (compiles the kernels if the cache is cold): {w['wall']:.1f} s")
        if 1 in parts:
            r = child(RUN.format(spec=str(HERE / "sweep_1b.toml"), out=str(tmp / "a"), quick=q,
                                 results=False, workers=None, budget=args.budget))
            print(f"1) {r['n']:,} configurations, --no-results: {r['wall']:.1f} s = "
                  f"{r['n'] / r['wall'] / 1e6:.1f} M configs/s, {r['chunks']} chunks, peak RSS "
                  f"{r['rss'] / 1e9:.2f} GB (budget {args.budget / 1e9:.1f} GB)")
        if 2 in parts:
            measure_full_table(tmp, q, args.budget)
        if 3 in parts:
            measure_scaling(tmp, q, args.budget)


def measure_full_table(tmp, q, budget):
    r = child(RUN.format(spec=str(HERE / "sweep_200m.toml"), out=str(tmp / "b"), quick=q,
                         results=True, workers=None, budget=budget))
    size = du(tmp / "b" / "results")
    print(f"2) {r['n']:,} configurations with the full results table: {r['wall']:.1f} s = "
          f"{r['n'] / r['wall'] / 1e6:.2f} M configs/s, {size / r['n']:.2f} bytes on disk "
          f"per configuration ({size / 1e9:.2f} GB), {r['chunks']} chunks, peak RSS "
          f"{r['rss'] / 1e9:.2f} GB")
    (tmp / "scratch").mkdir()
    w = child(PYARROW_ALONE.format(spec=str(HERE / "sweep_200m.toml"), out=str(tmp / "b"),
                                   quick=q, scratch=str(tmp / "scratch")))
    print(f"   pyarrow alone writing the same batches (one thread): {w['write_s']:.1f} s; "
          f"end to end / pyarrow alone = {r['wall'] / w['write_s']:.2f}x")


def measure_scaling(tmp, q, budget):
    # as run (each worker's kernels on its share of this machine's cores), then with every
    # worker held to one core: the second is how the sweep scales when each added worker
    # brings its own core (another machine), which 2 cores here cannot show otherwise
    setups = (("cores shared", None), ("one core per worker", {"NUMBA_NUM_THREADS": "1"}))
    for k, (label, env) in enumerate(setups):
        walls = {}
        for n in (1, 2):
            r = child(RUN.format(spec=str(HERE / "sweep_200m.toml"), out=str(tmp / f"c{k}-{n}"),
                                 quick=q, results=False, workers=n, budget=budget), env)
            walls[n] = r["wall"], r["wall"] - r["cluster"]
            print(f"3) local dask cluster, {n} worker(s), {label}, {r['n']:,} configurations "
                  f"--no-results, {r['chunks']} chunks: {r['wall']:.1f} s = "
                  f"{r['n'] / r['wall'] / 1e6:.1f} M configs/s; without the cluster's start "
                  f"and shutdown ({r['cluster']:.1f} s): {walls[n][1]:.1f} s")
        print(f"   speed-up 2 vs 1 workers ({label}): {walls[1][0] / walls[2][0]:.2f}x, "
              f"{walls[1][1] / walls[2][1]:.2f}x without the cluster's start and shutdown")


if __name__ == "__main__":
    main()
