"""A whole sweep: plan -> execute -> merge.

Plan: the options are checked and the chunks sized to the memory budget
(``dse.chunks``, the home of every budget rule) before the output folder is touched; the
folder is locked and prepared (``dse.outdir``). Execute: the chunks run on an executor
(``dse.executors``: in this thread, a few threads, or dask) with one
:class:`ChunkSettings`. Merge: the final tables are built from the chunks' partials.

Each chunk (``dse.chunks``) is evaluated, reduced to its Pareto and best rows, and, unless
``results=False``, written as hive-partitioned Parquet parts under ``DIR/configurations/``. The
chunk (on its worker) writes its partial tables to ``DIR/_chunks/``; the client records its
completion in ``DIR/manifest.json`` (written atomically), so an interrupted sweep resumes
where it stopped. The final ``pareto.parquet`` and ``best.parquet`` come from the partials:
when every chunk holds whole groups they are the partials in chunk order, streamed while
later chunks run; otherwise they are merged at the end (the frontier of a union is the
frontier of the parts' frontiers, and the best of a group is the best of its parts' bests).
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import threading
import time
from queue import Full, Queue
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from . import __version__, io, outdir
from .chunks import (Chunk, check_reduction_size, default_budget_bytes, plan, plan_rows,
                     spec_hash, subspec)
from .config import ConfigError, SweepSpec, shown
from .executors import check_scheduler, open_executor, parallel_chunks
from .jit import compile_clock
from .evaluate import REASONS, WHAT_IF_DIMS, evaluate
from .grid import GRID_DIMS, GROUP_DIMS, REDUCTION_ORDER, STRATEGY_DIMS, coords
from .reduce import (BEST_SCHEMA, HIDDEN, LIFTED, PARETO_SCHEMA, merge_best, merge_pareto,
                     reduce_block, strategy_edges)
from .disaggregate import PAIR_COLUMNS, ROLES, merge_pool, pair_pools, pool_rows
from .glossary import FILE_KEY, glossary
from .table import (INVALID_CODES, PRESET_AXES, batch_rows, block_batches, columns, parquet_options,
                    run_lengths, schema)

DEFAULT_PARTITION_BY = ("hardware", "model")
# The manifest is rewritten after a chunk finishes unless the time since the last rewrite
# is under this many times what that rewrite took: a rewrite costs O(finished chunks), and
# rewriting after every chunk made sweeps of many small chunks quadratic.
MANIFEST_SHARE = 20


@dataclass
class SweepSummary:
    """What a sweep produced; ``seconds`` holds wall times."""
    out_dir: Path
    n_configs: int
    n_feasible: int
    n_pareto: int
    n_groups: int
    n_groups_with_best: int
    reason_counts: dict
    n_disaggregated: int = 0       # disaggregated.parquet's rows ([disaggregated] only)
    n_disaggregated_best: int = 0  # its groups with a best pairing
    n_chunks: int = 1
    n_resumed: int = 0
    seconds: dict = field(default_factory=dict)

    # the written tables, read when asked for (pandas for the small reductions, a lazy
    # pyarrow dataset for configurations/, which can be far larger than memory)
    def pareto(self):
        """pareto.parquet as a pandas DataFrame."""
        import pandas as pd
        return pd.read_parquet(self.out_dir / "pareto.parquet")

    def best(self):
        """best.parquet as a pandas DataFrame."""
        import pandas as pd
        return pd.read_parquet(self.out_dir / "best.parquet")

    @property
    def tables(self):
        """The written tables as :func:`dse.open` gives them (pyarrow, DuckDB, pandas,
        xarray)."""
        from .tables import Sweep
        return Sweep(self.out_dir)

    def results(self):
        """The results table (``configurations/``) as a lazy ``pyarrow.dataset.Dataset``
        (hive-partitioned; filter and project before ``to_table()``), or None when the sweep
        ran with ``results=False``."""
        import pyarrow.dataset as pads
        folder = outdir.table_dir(self.out_dir)
        return pads.dataset(folder, format="parquet", partitioning="hive") \
            if folder.is_dir() else None


@dataclass
class ChunkResult:
    """What a finished chunk reports back (its tables are already on disk)."""
    index: int
    n_configs: int
    reasons: list
    files: list


def _partial(out_dir: Path, name: str, index: int) -> Path:
    """A chunk's partial ``pareto`` or ``best`` table, or a pool's frontier rows
    (``prefill``, ``decode``: :mod:`dse.disaggregate`) (Arrow IPC)."""
    return out_dir / "_chunks" / f"{name}-{index:06d}.arrow"


def _read_partial(out_dir: Path, name: str, index: int) -> pa.Table:
    """A chunk's partial table in its declared schema (:mod:`dse.reduce`); one written
    before the schema was declared (pandas-made, int8 dictionary indices: a resumed
    sweep's) is cast to it."""
    table = io.read_arrow(_partial(out_dir, name, index))
    sch = BEST_SCHEMA if name == "best" else PARETO_SCHEMA
    return table if table.schema.equals(sch) else table.cast(sch)


def _file_schema(sch: pa.Schema, partition_by) -> pa.Schema:
    return pa.schema([f for f in sch if f.name not in partition_by], metadata=sch.metadata)


def partitions(ds, partition_by: tuple, sch: pa.Schema, names: dict, skip_codes=()):
    """Yield, per partition of a chunk's results (one value of each ``partition_by`` dim):
    the partition's values, and the record batches and writer options of its file (the
    columns ``partition_by`` left out: the folder names hold them; the rows whose reason
    code is in ``skip_codes`` left out)."""
    file_sch = _file_schema(sch, partition_by)
    for combo in np.ndindex(*[ds.sizes[d] for d in partition_by]):
        sel = {d: slice(i, i + 1) for d, i in zip(partition_by, combo)}  # views
        block = ds.isel(sel)
        cols = columns(block, sch, names)
        batches = block_batches(cols, file_sch, names, skip_codes=skip_codes)
        values = {d: block[d].values[0].item() for d in partition_by}
        yield values, batches, {"schema": file_sch,
                                **parquet_options(file_sch, run_lengths(cols), batch_rows(cols))}


@dataclass(frozen=True)
class ChunkSettings:
    """What every chunk of one sweep shares (sent with each chunk to where it runs)."""
    out_dir: str            # the sweep's output folder
    results: bool           # write the results table
    partition_by: tuple     # axes partitioning configurations/
    names: dict             # preset axes' names of the whole sweep (dictionary order)
    full_sizes: dict        # axis sizes of the whole sweep (to place a chunk's rows in it)
    meta: dict              # the sweep's Parquet metadata (:func:`dse.io.metadata`)
    breakdown: bool = False  # configurations/ carries the breakdown columns (--breakdown)
    valid_only: bool = False  # configurations/ leaves out invalid combinations (--valid-only)


def run_chunk(spec: SweepSpec, chunk: Chunk, job: ChunkSettings) -> ChunkResult:
    """Evaluate, reduce and (optionally) write one chunk. Runs anywhere dse is installed."""
    sub = subspec(spec, chunk)
    ds = evaluate(sub, breakdown=job.breakdown)
    place = (chunk.offsets(), job.full_sizes)
    files = []
    out_dir = job.out_dir
    if job.results:
        sch = schema({d: len(v) for d, v in job.names.items()}, job.breakdown)
        sch = io.with_metadata(sch, {**job.meta, FILE_KEY: glossary(sch)})
        # configurations/ (an interrupted sweep from before the rename resumes into results/)
        root = outdir.table_dir(Path(out_dir))
        skip = INVALID_CODES if job.valid_only else ()
        for values, batches, options in partitions(ds, job.partition_by, sch, job.names,
                                                   skip):
            path = io.partition_dir(root, values) / f"part-{chunk.index:06d}.parquet"
            io.write_batches(path, batches=batches, **options)
            files.append(str(path.relative_to(out_dir)))
    pareto, best, counts = reduce_block(ds, spec.constraints, place, spec.objectives,
                                        strategy_edges(spec.grid))
    partials = {"pareto": pareto, "best": best}
    if spec.disaggregated is not None:
        partials |= pool_rows(ds, place)
    # partial tables go to disk here, on the worker: only counts travel to the client
    for name, table in partials.items():
        io.write_arrow(_partial(Path(out_dir), name, chunk.index), table)
    return ChunkResult(chunk.index, int(counts.sum()), counts.tolist(), files)


def rate_text(configs_per_s: float) -> str:
    """A throughput in the unit that shows it: "2.38 M configs/s", "1.9 k configs/s"."""
    for scale, unit in ((1e6, "M "), (1e3, "k ")):
        if configs_per_s >= scale:
            return f"{configs_per_s / scale:.{2 if scale == 1e6 else 1}f} {unit}configs/s"
    return f"{configs_per_s:.0f} configs/s"


class Progress:
    """A tqdm bar on a terminal; a plain line every ``every_s`` seconds otherwise (and
    once done). ``desc`` names the job, ``noun`` what it counts in the plain line and
    ``unit`` in the bar (the defaults: a sweep's configurations, their rate in M or k
    configs/s)."""

    def __init__(self, total: int, done: int, quiet: bool, every_s: float = 10.0,
                 desc: str = "sweep", noun: str = "configurations", unit: str = "cfg"):
        self.total, self.done, self.quiet, self.every_s = total, done, quiet, every_s
        self.desc, self.noun, self.unit = desc, noun, unit
        self.start = time.perf_counter()
        self.last = self.start
        self.start_done = done
        self.bar = None
        if not quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=done, unit=unit, unit_scale=unit == "cfg",
                            desc=desc, file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.quiet or (now - self.last < self.every_s and self.done < self.total):
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        speed = rate_text(rate) if self.unit == "cfg" else f"{rate:.2g}/s"
        print(f"{self.desc}: {self.done:,}/{self.total:,} {self.noun} "
              f"({100 * self.done / self.total:.0f}%), {speed}, "
              f"ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _merged_by_pair(tables, merge, per_pair: int):
    """Merge partial tables one (hardware, model) pair at a time; hidden columns dropped."""
    pending, pair, empty = [], None, None
    for table in tables:
        if table.num_rows == 0:
            empty = table
            continue
        pairs = table.column("_group").to_numpy() // per_pair
        for p in np.unique(pairs):
            part = table.take(np.flatnonzero(pairs == p))
            if pair is not None and p != pair:
                yield _visible(merge(pending))
                pending = []
            pair = p
            pending.append(part)
    if pending:
        yield _visible(merge(pending))
    elif empty is not None:  # nothing anywhere: an empty table that keeps the columns
        yield _visible(empty)


def _visible(table: pa.Table) -> pa.Table:
    """``table`` without the hidden columns (:data:`HIDDEN`, :data:`LIFTED`)."""
    return table.drop_columns([c for c in (*HIDDEN, *LIFTED) if c in table.column_names])


class _Aborted(Exception):
    pass


class _Streamed:
    """A final table (pareto or best) written from the chunks' partials in chunk order by
    a background thread while later chunks still run; renamed into place on
    :meth:`close`, removed on :meth:`abort`."""

    _END, _ABORT = object(), object()

    def __init__(self, path: Path, meta: dict):
        self.queue: Queue = Queue(maxsize=2)  # bounded: a slow writer holds back the chunks
        self.result, self.error = None, None
        self.thread = threading.Thread(target=self._write, args=(path, meta), daemon=True)
        self.thread.start()

    def _tables(self):
        while (item := self.queue.get()) is not self._END:
            if item is self._ABORT:
                raise _Aborted
            yield item

    def _write(self, path, meta):
        try:
            self.result = io.write_tables(path, map(_visible, self._tables()), meta)
        except BaseException as exc:  # re-raised in the sweep's thread by close()
            self.error = exc

    def _offer(self, item) -> None:
        """Queue ``item``, waiting while the queue is full and the writer still runs."""
        while self.thread.is_alive():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except Full:
                continue

    def put(self, table: pa.Table) -> None:
        """Queue the next partial; raises the writer's error, if it failed, at once."""
        if self.error is not None:
            raise self.error
        self._offer(table)
        if self.error is not None:
            raise self.error

    def close(self) -> tuple[int, int]:
        self._offer(self._END)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def abort(self) -> None:
        self._offer(self._ABORT)
        self.thread.join()


def run_sweep(spec: SweepSpec, out_dir, overwrite: bool = False, progress: bool | None = None,
              memory_limit_bytes: int | None = None, results: bool = True,
              resume: bool = False, partition_by=DEFAULT_PARTITION_BY,
              scheduler: str | None = None, workers: int | None = None,
              threads: int | None = None, chunk_rows: int | None = None,
              breakdown: bool = False, valid_only: bool = False) -> SweepSummary:
    """Run a sweep into ``out_dir``: ``configurations/`` (hive-partitioned Parquet, unless
    ``results=False``), ``pareto.parquet``, ``best.parquet`` and ``manifest.json``.

    Parameters
    ----------
    spec : SweepSpec
    out_dir : path
        Output folder; an existing non-empty one is refused unless ``overwrite`` (which
        removes dse's own files there) or ``resume``.
    progress : bool or None
        False silences progress; None shows a bar on a terminal and a periodic log line
        otherwise.
    memory_limit_bytes : int, optional
        Peak memory budget [bytes]; chunks are sized to it (default: half the available
        memory).
    results : bool
        Write the full per-configuration table.
    resume : bool
        Continue an interrupted sweep of the same spec in ``out_dir``.
    partition_by : tuple of str
        Axis columns that partition ``results/`` (hive style).
    scheduler : str, optional
        Address of a running dask.distributed scheduler to run the chunks on.
    workers : int, optional
        Start a local dask cluster of this many worker processes.
    threads : int, optional
        Chunks run concurrently in this process when no dask cluster is used (default 2:
        one chunk's single-threaded steps, Parquet encoding and building its rows,
        overlap the other's; the cores are shared between them).
    chunk_rows : int, optional
        Configurations per chunk, overriding the size derived from the memory budget.
    breakdown : bool
        Add the breakdown columns (``metrics.BREAKDOWN_METRICS``: seconds per operator
        class for prefill and decode, the prefill bound) to ``results/``; a second kernel
        computes them, so a sweep without them pays nothing. Needs ``results``.
    valid_only : bool
        Leave out of ``configurations/`` the combinations that are not valid
        configurations (``table.INVALID_CODES``: every ``infeasible_reason`` but
        ``out_of_memory``, e.g. ep on a dense model); the counts still include them.
        Needs ``results``.

    Returns
    -------
    SweepSummary
        The counts, and handles to the written tables (``pareto()``, ``best()``,
        ``results()``, ``tables``: :func:`dse.open` of ``out_dir``).
    """
    out_dir = Path(out_dir)
    partition_by = tuple(partition_by)
    check_partition_by(partition_by)
    if memory_limit_bytes is not None and not memory_limit_bytes >= 1:
        raise ConfigError(f"memory_limit_bytes = {memory_limit_bytes!r}: expected a "
                          "positive number of bytes")
    if breakdown and not results:
        raise ConfigError("--breakdown adds columns to results/; it needs the results "
                          "table (drop --no-results)")
    if valid_only and not results:
        raise ConfigError("--valid-only leaves rows out of configurations/; it needs the "
                          "results table (drop --no-results)")
    budget = int(memory_limit_bytes or default_budget_bytes())
    check_reduction_size(spec, budget)
    for name, value in (("--workers", workers), ("threads", threads),
                        ("--chunk-rows", chunk_rows)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name} {shown(value)}: expected a positive integer")
    if scheduler is not None:
        check_scheduler(scheduler)
    parallel = parallel_chunks(scheduler, workers, threads)
    key = spec_hash(spec, {"results": results, "partition_by": list(partition_by),
                           "version": __version__, "spec_text": spec.text,
                           # only when set: earlier sweeps' hashes stay valid for --resume
                           **({"breakdown": True} if breakdown else {}),
                           **({"valid_only": True} if valid_only else {})})
    if not resume:
        chunk_rows = plan_rows(spec, budget, results, parallel, chunk_rows, breakdown)
    outdir.check_out_dir(out_dir, overwrite, resume)
    # the cluster before the folder: a scheduler that cannot be reached leaves no trace
    t_start = time.perf_counter()
    executor = open_executor(scheduler, workers, threads)
    t_cluster = time.perf_counter() - t_start
    try:
        with compile_clock() as clock:
            summary = _in_folder(spec, out_dir, overwrite, resume, key, chunk_rows, results,
                                 partition_by, executor, progress, breakdown, valid_only)
    finally:
        t_close = time.perf_counter()
        executor.close()
        t_cluster += time.perf_counter() - t_close
    summary.seconds["cluster_start_stop"] = t_cluster
    # numba compiling the kernels in this process (a first run; 0 from the cache)
    summary.seconds["compile"] = clock.seconds
    summary.seconds["total"] = time.perf_counter() - t_start
    return summary


def _in_folder(spec, out_dir, overwrite, resume, key, chunk_rows, results, partition_by,
               executor, progress, breakdown=False, valid_only=False) -> SweepSummary:
    """Lock ``out_dir``, prepare it (resume, or clear with ``overwrite``) and run."""
    created = not os.path.lexists(out_dir)
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise io.OutputError(f"{out_dir}: cannot create --out: {exc.strerror or exc}") from None
    lock = outdir.FolderLock(out_dir)
    try:
        lock.acquire()
        if resume:
            manifest = outdir.read_manifest(out_dir)
            if manifest.get("complete") and manifest.get("spec_hash") == key:
                lock.release()
                return _finished(out_dir, manifest)
            if manifest.get("spec_hash") != key:
                raise io.OutputError(f"{out_dir}: --resume with a different spec or options "
                                     f"(hash {key} != {manifest.get('spec_hash')} in "
                                     f"{outdir.MANIFEST}); use the original spec, or a new "
                                     "--out")
            chunk_rows = manifest["chunk_rows"]
        else:
            # again under the lock: another run may have filled the folder meanwhile
            outdir.check_out_dir(out_dir, overwrite)
            if overwrite:
                outdir.clear(out_dir)
        chunks = plan(spec, chunk_rows, GRID_DIMS if results else REDUCTION_ORDER)
        if resume:
            outdir.remove_incomplete(out_dir, manifest, len(chunks))
        else:
            manifest = {"engine_version": __version__, "spec_hash": key, "spec": spec.text,
                        "chunk_rows": chunk_rows, "n_chunks": len(chunks),
                        "n_configs": spec.n_configs(), "partition_by": list(partition_by),
                        "results": results, "metadata": io.metadata(spec), "done": {},
                        "complete": False}
            io.write_json(out_dir / outdir.MANIFEST, manifest)
    except BaseException:
        lock.release()
        if created:
            outdir.remove_if_empty(out_dir)
        raise
    try:
        return _run(spec, out_dir, manifest, chunks, results, partition_by, executor,
                    progress, breakdown, valid_only)
    finally:
        lock.release()


def remove_partials(out_dir: Path) -> None:
    """Delete ``_chunks/``: the partials served the merges and a resume; a finished sweep
    needs neither."""
    shutil.rmtree(out_dir / "_chunks", ignore_errors=True)


def _finished(out_dir: Path, manifest: dict) -> SweepSummary:
    """The summary of a sweep that finished before (``--resume`` of a complete sweep: there
    is nothing to run), from its manifest and the files' row counts."""
    import pyarrow.parquet as pq
    n_feasible, reason_counts = outdir.reason_totals(manifest["done"].values(), REASONS)
    best = pq.read_table(out_dir / "best.parquet", columns=["found"]).column("found")
    counts = {}
    if (out_dir / "disaggregated.parquet").exists():
        pairs = pq.read_table(out_dir / "disaggregated.parquet", columns=["best"])
        counts = {"disaggregated": pairs.num_rows,
                  "disaggregated_best": int(pairs.column("best").to_numpy().sum())}
    return SweepSummary(
        out_dir=out_dir, n_configs=int(manifest["n_configs"]), n_feasible=n_feasible,
        n_pareto=pq.read_metadata(out_dir / "pareto.parquet").num_rows,
        n_groups=len(best), n_groups_with_best=int(best.to_numpy().sum()),
        reason_counts=reason_counts,
        n_disaggregated=counts.get("disaggregated", 0),
        n_disaggregated_best=counts.get("disaggregated_best", 0),
        n_chunks=int(manifest["n_chunks"]), n_resumed=len(manifest["done"]),
        seconds={"chunks": 0.0})


def check_partition_by(partition_by: tuple) -> None:
    """Partition keys are axes whose values read back as themselves from folder names:
    categorical and integer axes. A float (what-if) axis would come back as strings
    (hive readers infer only integers and strings)."""
    valid = [d for d in GRID_DIMS if d not in WHAT_IF_DIMS]
    for d in partition_by:
        if d not in valid:
            why = ("a what-if scale: hive readers would read its values back as strings"
                   if d in WHAT_IF_DIMS else "not an axis")
            raise ConfigError(f"--partition-by {shown(d)}: {why}; valid: {', '.join(valid)}")
    if len(set(partition_by)) != len(partition_by):
        raise ConfigError(f"--partition-by {shown(','.join(partition_by))}: an axis is named "
                          "twice")


def interrupted_text(out_dir: Path, resume_command: str) -> str:
    """What an interrupted sweep left in ``out_dir``, and how to continue it."""
    try:
        manifest = outdir.read_manifest(out_dir)
    except io.OutputError:
        return "interrupted before the sweep wrote anything"
    done = len(manifest["done"])
    total = manifest.get("n_chunks", "?")
    configs = sum(v["n"] for v in manifest["done"].values())
    return (f"interrupted; {out_dir} keeps {done} of {total} finished chunks ({configs:,} "
            f"configurations) and its manifest; continue with `{resume_command}`")


def _run(spec, out_dir, manifest, chunks, results, partition_by, executor,
         progress, breakdown=False, valid_only=False) -> SweepSummary:
    """Run the chunks ``manifest`` does not list as done on ``executor``
    (:mod:`dse.executors`), then the final tables."""
    n_total = spec.n_configs()
    full = coords(spec)
    full_sizes = {d: len(v) for d, v in full.items()}
    names = {d: list(full[d]) for d in PRESET_AXES}
    done = {int(i) for i in manifest["done"]}
    todo = [c for c in chunks if c.index not in done]
    (out_dir / "_chunks").mkdir(exist_ok=True)
    lock = threading.Lock()
    t0 = time.perf_counter()
    # one sweep, one metadata: a resumed sweep's files carry what its first run recorded
    meta = manifest.get("metadata") or io.metadata(spec)
    # chunks of whole groups, in group order: the final tables are their partials in turn,
    # streamed as soon as the chunks before them are done
    whole_groups = all(d not in STRATEGY_DIMS for c in chunks for d, _, _ in c.ranges)
    streams = ({n: _Streamed(out_dir / f"{n}.parquet", meta) for n in ("pareto", "best")}
               if whole_groups else {})
    finished, order = set(done), [c.index for c in chunks]
    streamed = 0  # chunks (in plan order) whose partials went to the streams
    bar = Progress(n_total, sum(v["n"] for v in manifest["done"].values()),
                   quiet=progress is False)

    saved = {"at": -float("inf"), "took": 0.0}

    def save_manifest(force: bool = False) -> None:
        """Rewrite the manifest, unless that would spend more than 1/MANIFEST_SHARE of
        the time since the last rewrite (a rewrite costs O(finished chunks))."""
        now = time.perf_counter()
        if force or now - saved["at"] >= MANIFEST_SHARE * saved["took"]:
            io.write_json(out_dir / outdir.MANIFEST, manifest)
            saved["at"] = time.perf_counter()
            saved["took"] = saved["at"] - now

    def finish(r: ChunkResult) -> None:
        with lock:
            manifest["done"][str(r.index)] = {
                "n": r.n_configs, "reasons": outdir.named_reasons(r.reasons, REASONS),
                "files": r.files}
            save_manifest()
        bar.update(r.n_configs)
        finished.add(r.index)
        stream_ready()

    def stream_ready() -> None:
        nonlocal streamed
        while streams and streamed < len(order) and order[streamed] in finished:
            for name, stream in streams.items():
                stream.put(_read_partial(out_dir, name, order[streamed]))
            streamed += 1

    job = ChunkSettings(str(out_dir), results, partition_by, names, full_sizes, meta,
                        breakdown, valid_only)
    try:
        stream_ready()  # a resumed sweep's finished chunks
        for r in executor.map_unordered(run_chunk, [(spec, c, job) for c in todo]):
            finish(r)
        counts = {}
        for name, stream in streams.items():
            counts[name], counts[name + "_found"] = stream.close()
    except BaseException:
        for stream in streams.values():
            stream.abort()
        with lock:  # the chunks finished since the last rewrite
            try:
                save_manifest(force=True)
            except OSError:
                pass  # (a full disk): --resume redoes them
        raise
    finally:
        bar.close()
    t_chunks = time.perf_counter() - t0

    if not whole_groups:
        # groups of one (hardware, model) pair never span two pairs, and chunks run in
        # grid order, so the merge streams pair by pair: memory holds one pair's frontier
        per_pair = int(np.prod([full_sizes[d] for d in GROUP_DIMS[2:]]))
        for name, merge in (("pareto", merge_pareto), ("best", merge_best)):
            merge = functools.partial(merge, objectives=spec.objectives)
            tables = (_read_partial(out_dir, name, c.index) for c in chunks)
            counts[name], counts[name + "_found"] = io.write_tables(
                out_dir / f"{name}.parquet", _merged_by_pair(tables, merge, per_pair), meta)
    if spec.disaggregated is not None:
        engines = {e.name: e for e in spec.engines}
        pools = [merge_pool([_read_partial(out_dir, role, c.index) for c in chunks], role,
                            engines) for role in ROLES]
        pairs = pair_pools(*pools, spec)
        counts["disaggregated"] = io.write_tables(out_dir / "disaggregated.parquet", [pairs],
                                                  meta, columns=PAIR_COLUMNS)[0]
        counts["disaggregated_best"] = int(pairs.column("best").to_numpy().sum())
    if any(len(v) > 1 for v in spec.what_if.values()):
        from .sensitivity import COLUMNS, FILE, sensitivity
        import pandas as pd
        sens = sensitivity(pd.read_parquet(out_dir / "best.parquet"))
        io.write_tables(out_dir / FILE, [pa.Table.from_pandas(sens, preserve_index=False)],
                        meta, columns=COLUMNS)
    manifest["complete"] = True
    io.write_json(out_dir / outdir.MANIFEST, manifest)
    remove_partials(out_dir)

    n_feasible, reason_counts = outdir.reason_totals(manifest["done"].values(), REASONS)
    return SweepSummary(
        out_dir=out_dir, n_configs=n_total, n_feasible=n_feasible,
        n_pareto=counts["pareto"], n_groups=counts["best"],
        n_groups_with_best=counts["best_found"],
        reason_counts=reason_counts,
        n_disaggregated=counts.get("disaggregated", 0),
        n_disaggregated_best=counts.get("disaggregated_best", 0),
        n_chunks=len(chunks), n_resumed=len(done),
        seconds={"chunks": t_chunks})

