"""How long this process spends compiling dse's numba kernels.

The kernels are compiled once per machine and Python environment (``cache=True`` keeps the
machine code beside the sources, or in ``NUMBA_CACHE_DIR``); later runs load them in about
a second. A first sweep that spends half a minute compiling should say so rather than look
10,000x slower than the README says. Numba fires a ``numba:compile`` event around every
compilation (none when a kernel comes from the cache); nested events (a kernel compiling
the functions it calls) are counted once, by their outermost event.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from numba.core import event


class _CompileClock(event.Listener):
    """A numba event listener summing the wall time of outermost compilations (numba's
    compiler lock serializes them, so one depth counter serves every thread)."""

    def __init__(self):
        super().__init__()
        self.depth, self.start, self.seconds = 0, 0.0, 0.0
        self.lock = threading.Lock()

    def on_start(self, event) -> None:
        with self.lock:
            if self.depth == 0:
                self.start = time.perf_counter()
            self.depth += 1

    def on_end(self, event) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                self.seconds += time.perf_counter() - self.start


@contextmanager
def compile_clock():
    """``with compile_clock() as clock: ...``; ``clock.seconds`` is the time numba spent
    compiling (in this process) inside the block: 0 when every kernel came from the
    cache."""
    clock = _CompileClock()
    event.register("numba:compile", clock)
    try:
        yield clock
    finally:
        event.unregister("numba:compile", clock)
