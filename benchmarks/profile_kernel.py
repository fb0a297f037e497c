"""Profile the jitted grid kernel with Linux ``perf``: which numba function the time is in.

Run:  perf record -F 1999 -o perf.data python benchmarks/profile_kernel.py \\
          [--spec benchmarks/sweep_10m.toml] [--serving continuous] [--seconds 10]
      perf report -i perf.data --no-children --sort symbol

``perf`` cannot name jitted code by itself. This script compiles the kernel into a fresh
numba cache folder (a cached kernel keeps no symbol table), writes ``/tmp/perf-<pid>.map``
(the format ``perf report`` reads for JIT code: start, size, name per function, from the
compiled LLVM modules' functions and the JIT engine's addresses), then calls the kernel
(inputs prepared once, as ``bench_continuous.py`` does) for ``--seconds``. Functions numba
inlined (``inline="always"``) or LLVM inlined show under their caller. The first minute or
two is the compile; its samples are Python's and LLVM's, not the kernel's.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(HERE / "sweep_10m.toml"))
    ap.add_argument("--serving", choices=("static", "continuous"), default="continuous")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    # a fresh cache: the compiled modules (and so their function names) stay in memory
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="dse-profile-")
    sys.path.insert(0, str(HERE))
    from numba.core.registry import CPUDispatcher
    bench = importlib.import_module("bench_continuous")

    run = bench.kernel_runner(bench.spec_for(args.spec, args.serving))
    run()  # compile
    functions = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("dse"):
            continue
        for obj in vars(module).values():
            if not isinstance(obj, CPUDispatcher):
                continue
            for result in obj.overloads.values():
                library = result.library
                for fn in library._final_module.functions:
                    if fn.is_declaration:
                        continue
                    address = library._codegen._engine.get_function_address(fn.name)
                    if address:
                        functions[address] = fn.name
    starts = sorted(functions)
    # sizes: up to the next function (the engine lays a library's functions out in order)
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as out:
        for start, end in zip(starts, starts[1:] + [starts[-1] + 4096]):
            out.write(f"{start:x} {end - start:x} {functions[start]}\n")
    print(f"{len(starts)} jitted functions mapped; running the kernel for {args.seconds} s",
          file=sys.stderr)
    t = time.perf_counter()
    calls = 0
    while time.perf_counter() - t < args.seconds:
        run()
        calls += 1
    print(f"{calls} kernel calls", file=sys.stderr)


if __name__ == "__main__":
    main()
