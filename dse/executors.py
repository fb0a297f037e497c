"""Where a sweep's chunks run: one small interface, three places.

An executor maps a function over calls and yields the results as the calls finish:
:class:`InProcess` (one after another in this thread), :class:`Threads` (a few chunks at
once in this process, each with its share of the cores) and :class:`Dask` (a
dask.distributed cluster: a local one of N worker processes, or a scheduler's address).
``dse.sweep`` picks one with :func:`open_executor` and never looks inside.
"""
from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numba

from .config import ConfigError, shown

# dask's own protocols; anything else in --scheduler is a typo
SCHEDULER_ADDRESS = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d{1,5})?/?")
# seconds to wait for a --scheduler to answer
CONNECT_TIMEOUT_S = 10


def _on_cores(cores, fn, *args):
    """``fn(*args)`` with its numba kernels on ``cores`` threads (None: all). Chunks that
    run side by side (pool threads, local dask workers) each get their share of the cores:
    OpenMP workers of several kernels competing for the same cores spin and starve
    everything else, the Parquet encoders first. numba's thread count is per thread."""
    if cores is not None:
        numba.set_num_threads(max(1, min(cores, numba.config.NUMBA_NUM_THREADS)))
    return fn(*args)


def _share(parallel: int) -> int:
    """Cores per chunk when ``parallel`` chunks run at once on this machine."""
    return max(1, (os.cpu_count() or 1) // parallel)


class InProcess:
    """Calls one after another in this thread (numba starts slower in a pool thread)."""
    parallel = 1
    remote = False

    def map_unordered(self, fn, calls):
        for args in calls:
            yield fn(*args)

    def close(self) -> None:
        pass


class Threads(InProcess):
    """Up to ``parallel`` calls at once in a thread pool, each kernel on its share of the
    cores; a single call runs in this thread."""

    def __init__(self, parallel: int):
        self.parallel = parallel
        self.cores = _share(parallel)

    def map_unordered(self, fn, calls):
        calls = deque(calls)
        if len(calls) <= 1 or self.parallel <= 1:
            yield from super().map_unordered(fn, calls)
            return
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            pending = set()
            while calls or pending:
                while calls and len(pending) < self.parallel:
                    pending.add(pool.submit(_on_cores, self.cores, fn, *calls.popleft()))
                complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in complete:
                    yield fut.result()


class Dask(InProcess):
    """Calls on a dask.distributed cluster; a local cluster's workers share this
    machine's cores, a remote cluster's keep theirs."""

    def __init__(self, client, cluster, parallel: int, remote: bool):
        self.client, self.cluster = client, cluster
        self.parallel, self.remote = parallel, remote
        self.cores = None if remote else _share(parallel)

    def map_unordered(self, fn, calls):
        from dask.distributed import as_completed
        futures = [self.client.submit(_on_cores, self.cores, fn, *args, pure=False)
                   for args in calls]
        for fut in as_completed(futures):
            yield fut.result()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def check_scheduler(address) -> None:
    if not isinstance(address, str) or not SCHEDULER_ADDRESS.fullmatch(address):
        raise ConfigError(f"--scheduler {shown(address)}: not a dask scheduler address; "
                          "expected e.g. tcp://HOST:8786")


def parallel_chunks(scheduler, workers, threads) -> int:
    """Chunks in flight at once (sizes each chunk's share of the memory budget)."""
    if scheduler is not None:
        return 1  # a remote cluster's size is unknown here: size chunks per worker
    return workers or threads or 2


def open_executor(scheduler=None, workers=None, threads=None):
    """The executor for these options (a dask client is connected here, so an unreachable
    scheduler fails before anything is written)."""
    parallel = parallel_chunks(scheduler, workers, threads)
    if scheduler is None and not workers:
        return Threads(parallel)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--workers / --scheduler need dask.distributed: pip install "
                          "'llm-dse[distributed]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001  dask raises OSError, TimeoutError, ValueError ...
            raise ConfigError(f"--scheduler {shown(scheduler)}: cannot connect: "
                              f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
        return Dask(client, None, parallel, remote=True)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    return Dask(Client(cluster), cluster, parallel, remote=False)
