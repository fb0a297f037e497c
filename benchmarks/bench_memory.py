"""Memory benchmark: the chunk memory model against measured peaks, and sweeps under a budget.

Run:  python benchmarks/bench_memory.py [--quick]

1. One chunk per grid shape, each in a fresh process (after a warm-up chunk): the peak RSS
   it adds (VmHWM after minus before) against ``dse.grid.chunk_bytes``, frontiers-only and
   with the results table. The shapes span the geometries the model distinguishes: one
   group of many strategies, many groups of one strategy, many groups with large
   frontiers, and a benchmarks/sweep_1b.toml-like mix. estimate / measured should stay
   above 1 (the model is an upper bound; the sweep sizes chunks with it).
2. Whole sweeps (``dse sweep`` in a fresh process) under a --memory-limit: peak RSS of the
   process (VmHWM) against the budget, wall time and chunks.
--quick shrinks every grid (for a smoke run).

Peak RSS is read from /proc/self/status (VmHWM) inside each child: ``ru_maxrss`` of a
child started by fork or vfork starts from its parent's peak.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHUNK = """
import json, sys, tempfile
from pathlib import Path
import numba
import dse
from dse import io, sweep
from dse.chunks import Chunk
from dse.grid import GROUP_DIMS, STRATEGY_DIMS, chunk_bytes, coords

def hwm():
    with open("/proc/self/status") as fh:
        return int([x for x in fh if x.startswith("VmHWM:")][0].split()[1]) * 1024

def run(spec, out):
    c = coords(spec)
    (Path(out) / "_chunks").mkdir(exist_ok=True)
    sweep.run_chunk(spec, Chunk(0, ()), out, results, ("hardware", "model"),
                    {{"hardware": c["hardware"], "model": c["model"]}},
                    {{d: len(v) for d, v in c.items()}}, io.metadata(spec))

results = {results}
run(dse.parse_sweep({{"grid": {{"batch": [1, 2], "input_tokens": [128, 256]}}}}),
    tempfile.mkdtemp())  # warm-up: kernels loaded, libraries initialized
before = hwm()
spec = dse.parse_sweep({grid!r})
run(spec, tempfile.mkdtemp())
sizes = {{d: len(v) for d, v in coords(spec).items()}}
n = lambda dims: int(__import__("numpy").prod([sizes[d] for d in dims]))
print(json.dumps({{"configs": spec.n_configs(), "groups": n(GROUP_DIMS),
                  "strategies": n(STRATEGY_DIMS), "measured": hwm() - before,
                  "estimate": chunk_bytes(sizes, results, numba.get_num_threads())}}))
"""

SWEEP = """
import atexit, sys, time
t = time.perf_counter()
def report():
    with open("/proc/self/status") as fh:
        hwm = int([x for x in fh if x.startswith("VmHWM:")][0].split()[1]) * 1024
    print("RESULT", hwm, time.perf_counter() - t, file=sys.stderr)
atexit.register(report)
from dse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def values(n, start=1, step=1):
    return [start + step * i for i in range(n)]


def shapes(quick: bool) -> dict:
    s = 4 if quick else 1
    return {
        "one group, batch x tp": {"grid": {"batch": values(2000 // s),
                                           "tp": values(2000 // s)}},
        "groups of one strategy": {"grid": {"input_tokens": values(600 // s, 80, 16),
                                            "output_tokens": values(300 // s, 2)}},
        "groups of 64 batch sizes": {"grid": {"input_tokens": values(150 // s, 80, 16),
                                              "output_tokens": values(150, 2),
                                              "batch": values(64)}},
        "sweep_1b-like": {
            "grid": {"model": ["llama3_8b", "mixtral_8x7b"],
                     "batch": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
                     "input_tokens": [256, 1024, 4096, 16384],
                     "output_tokens": [128, 512, 2048, 8192][:4 // s], "tp": [1, 2, 4, 8],
                     "pp": [1, 2], "ep": [1, 2, 4, 8], "dp": [1, 2, 4, 8, 16, 32],
                     "weight_dtype": ["bf16", "fp8"], "kv_dtype": ["bf16", "fp8", "fp4"]},
            "what_if": {"memory_bandwidth_scale": [0.8, 1.0, 1.25]}},
    }


def toml(spec: dict) -> str:
    lines = []
    for section, table in spec.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def child(args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    import numba
    import numpy
    import pyarrow
    print(f"cpus {os.cpu_count()}, numba threads {numba.config.NUMBA_NUM_THREADS}, "
          f"python {platform.python_version()}, numpy {numpy.__version__}, "
          f"numba {numba.__version__}, pyarrow {pyarrow.__version__}")
    print("\n1. one chunk: peak RSS it adds against dse.grid.chunk_bytes")
    print(f"{'shape':26s} {'table':8s} {'configs':>11s} {'groups':>8s} {'strategies':>10s} "
          f"{'measured':>9s} {'estimate':>9s} {'est/meas':>8s}")
    for name, spec in shapes(quick).items():
        for results in (False, True):
            out = child(["-c", CHUNK.format(grid=spec, results=results)])
            if out.returncode:
                raise SystemExit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:26s} {'results' if results else 'none':8s} {r['configs']:>11,} "
                  f"{r['groups']:>8,} {r['strategies']:>10,} {r['measured'] / 1e6:>7.0f}MB "
                  f"{r['estimate'] / 1e6:>7.0f}MB {r['estimate'] / max(r['measured'], 1):>8.2f}")

    print("\n2. sweeps under --memory-limit: peak RSS of the whole process")
    runs = [("one group, batch x tp", "--no-results", "400MB"),
            ("groups of 64 batch sizes", "--no-results", "600MB"),
            ("one group, batch x tp", "", "700MB"),
            ("sweep_1b-like", "--no-results", "1GB")]
    with tempfile.TemporaryDirectory() as tmp:
        for name, flag, budget in runs:
            spec = Path(tmp) / "spec.toml"
            spec.write_text(toml(shapes(quick)[name]))
            out = Path(tmp) / f"out-{len(list(Path(tmp).iterdir()))}"
            proc = child(["-c", SWEEP, "sweep", str(spec), "--out", str(out), "--quiet",
                          "--memory-limit", budget, *([flag] if flag else [])])
            line = [x for x in proc.stderr.splitlines() if x.startswith("RESULT")][-1]
            peak, wall = float(line.split()[1]), float(line.split()[2])
            chunks = (json.loads((out / "manifest.json").read_text())["n_chunks"]
                      if proc.returncode == 0 else "-")
            print(f"{name:26s} {flag or 'results':13s} budget {budget:>6s} peak "
                  f"{peak / 1e6:5.0f} MB  {wall:5.1f} s  {chunks} chunks  rc {proc.returncode}")


if __name__ == "__main__":
    main()
