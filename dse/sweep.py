"""A whole sweep: validate, evaluate, reduce per (hardware, model) block, write Parquet."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from . import io
from .config import SweepSpec
from .evaluate import REASONS, evaluate
from .grid import blocks, check_size
from .reduce import block_best, block_pareto, metrics
from .table import AXIS_COLUMNS, block_batches, schema


# Reductions and derived columns work on blocks of at most this many configurations
# (whole hardware / model groups); fewer, larger blocks pay xarray's fixed costs less often.
BLOCK_ROWS = 1 << 22


@dataclass
class SweepSummary:
    """What a sweep produced; ``seconds`` holds the wall time of each stage."""
    out_dir: Path
    n_configs: int
    n_feasible: int
    n_pareto: int
    n_groups: int
    n_groups_with_best: int
    reason_counts: dict
    seconds: dict = field(default_factory=dict)


def run_sweep(spec: SweepSpec, out_dir, overwrite: bool = False, progress: bool | None = None,
              memory_limit_bytes: int | None = None, results: bool = True) -> SweepSummary:
    """Evaluate ``spec`` and write ``results.parquet``, ``pareto.parquet``, ``best.parquet``.

    Parameters
    ----------
    spec : SweepSpec
    out_dir : path
        Output folder; an existing non-empty one is refused unless ``overwrite``.
    progress : bool or None
        Progress bar; None shows it only on a terminal.
    memory_limit_bytes : int, optional
        Refuse grids needing more than this (default: available memory).
    results : bool
        Write the full ``results.parquet``; False writes only the Pareto and best tables.
    """
    out_dir = Path(out_dir)
    n = check_size(spec, memory_limit_bytes)
    io.check_out_dir(out_dir, overwrite)
    seconds = {}
    t0 = time.perf_counter()
    ds = evaluate(spec)
    seconds["evaluate"] = time.perf_counter() - t0

    meta = io.metadata(spec)
    names = {"hardware": list(ds["hardware"].values), "model": list(ds["model"].values)}
    sch = io.with_metadata(schema(len(names["hardware"]), len(names["model"])), meta)
    staging = io.Staging(out_dir)
    writer = None
    pareto_parts, best_parts = [], []
    reasons = np.zeros(len(REASONS), dtype=np.int64)
    t_reduce = t_write = 0.0
    try:
        stats = [f.name for f in sch if f.name in AXIS_COLUMNS or not pa.types.is_floating(f.type)]
        if results:
            path = staging.file("results.parquet")
            writer = io.BackgroundWriter(io.open_writer(path, sch, stats), path)
        parts = blocks(ds.sizes, BLOCK_ROWS)
        with tqdm(total=n, unit="cfg", unit_scale=True, disable=None if progress is None
                  else not progress, desc="sweep") as bar:
            for sel in parts:
                block = ds.isel(sel) if sel else ds
                t1 = time.perf_counter()
                der = metrics(block)
                t2 = time.perf_counter()
                if writer is not None:
                    for batch in block_batches(block, der, sch, names):
                        writer.write(batch)
                t3 = time.perf_counter()
                # reductions run while the writer thread encodes the queued batches
                pareto_parts.append(block_pareto(block, der))
                best_parts.append(block_best(block, der, spec.constraints))
                block_n = int(np.prod(list(block.sizes.values())))
                codes = np.asarray(der["reason"].values).ravel()
                reasons += np.bincount(codes, minlength=len(REASONS)) * (block_n // codes.size)
                t_write += t3 - t2
                t_reduce += (t2 - t1) + (time.perf_counter() - t3)
                bar.update(block_n)
        if writer is not None:
            writer.close()
        t3 = time.perf_counter()
        pareto = pd.concat(pareto_parts, ignore_index=True)
        best = pd.concat(best_parts, ignore_index=True)
        io.write_table(staging.file("pareto.parquet"), io.frame_to_table(pareto, meta))
        io.write_table(staging.file("best.parquet"), io.frame_to_table(best, meta))
        staging.commit()
        t_write += time.perf_counter() - t3
    except BaseException:
        if writer is not None:
            writer.abandon()
        staging.abort()
        raise
    n_feasible = int(reasons[0])
    reasons[0] = 0
    seconds["reduce"] = t_reduce
    seconds["write"] = t_write
    seconds["total"] = time.perf_counter() - t0
    return SweepSummary(out_dir=out_dir, n_configs=n, n_feasible=n_feasible,
                        n_pareto=len(pareto), n_groups=len(best),
                        n_groups_with_best=int(best["found"].sum()),
                        reason_counts={REASONS[i]: int(c) for i, c in enumerate(reasons) if c},
                        seconds=seconds)
