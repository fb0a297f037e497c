"""Fit a hardware preset's efficiencies and kernel latency to measured kernel timings.

The engine's per-kernel model (kernels/grid.py) is

    t = kernel_latency_s + max(FLOPs / (peak[dtype] * compute_efficiency),
                               bytes / (memory_bytes_per_s * memory_efficiency))

With f' = FLOPs / peak and b' = bytes / bandwidth (times at peak), this is
t = L + max(f' / ec, b' / em): linear in (L, 1/ec, 1/em) once each row is assigned to the
side of the max that wins. The fit alternates assignment and a least-squares solve
weighted by 1/t (relative error, so small decode-shaped kernels count as much as big
ones), starting from the preset's own values.
"""
from __future__ import annotations

import csv
import decimal
import io
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import MIN_PRESET_FLOAT, ConfigError, Hardware, check_preset_name, read_bounded, \
    read_text, shown
from .kernels.layout import DTYPE_BYTES, DTYPE_INDEX

REQUIRED = ("op", "dtype", "latency_s")
# Measured tables (kernel timings here, serving results in dse.validate) are KB to a few
# MB; the bounds refuse a wrong file (a weights file, /dev/zero, a wide export) before
# pandas spends memory and minutes on it.
MAX_TABLE_BYTES = 256 << 20
MAX_TABLE_COLUMNS = 1000


@dataclass
class Fit:
    compute_efficiency: float
    memory_efficiency: float
    kernel_latency_s: float
    rows: int
    median_abs_pct_error: float
    predicted_s: np.ndarray


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def read_table_file(path, what: str, **csv_options) -> pd.DataFrame:
    """The table in the CSV (or ``.parquet``) file ``path``, read within MAX_TABLE_BYTES
    and MAX_TABLE_COLUMNS; ``csv_options`` go to :func:`pandas.read_csv`.

    A missing, empty, non-UTF-8 (CSV), oversized or unparsable file, a folder or a device
    is a one-line :class:`ConfigError` naming the file and ``what`` was expected.
    """
    path = Path(path)
    parquet = path.suffix.lower() == ".parquet"
    if parquet:
        data = read_bounded(path, what, MAX_TABLE_BYTES)
        empty = not data
    else:
        text = read_text(path, what, MAX_TABLE_BYTES).removeprefix("\ufeff")  # Excel's BOM
        empty = not text.strip()
    if empty:
        raise ConfigError(f"{path}: empty file, expected a {what}")
    try:
        if parquet:
            import pyarrow.parquet as pq
            source = pq.ParquetFile(io.BytesIO(data))
            names = source.schema_arrow.names
        else:
            names = next(csv.reader(io.StringIO(text)))
        if len(names) > MAX_TABLE_COLUMNS:
            raise ConfigError(f"{path}: {len(names):,} columns: a {what} has at most "
                              f"{MAX_TABLE_COLUMNS:,}")
        # pandas would rename a second CSV column "x" to "x.1", and the check of the
        # columns would then miss it or call it unknown
        names = [n.strip() for n in names]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ConfigError(f"{path}: column {shown(dup)}: appears twice")
        if parquet:
            return source.read().to_pandas()
        return pd.read_csv(io.StringIO(text), **csv_options)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001  pandas/pyarrow parse errors have many types
        raise ConfigError(f"{path}: cannot read the table: {_one_line(exc)}") from None


def read_table(path) -> pd.DataFrame:
    """The kernel timing table at ``path`` (CSV or ``.parquet``); see :func:`work`."""
    return read_table_file(path, "kernel timing table (CSV or Parquet)")


def _fail(source, i, col, value, problem):
    """Row ``i`` (0-based) is reported as its CSV line, i + 2 (the header is line 1)."""
    value = value.item() if isinstance(value, np.generic) else value
    raise ConfigError(f"{source}: row {i + 2}: {col} = {shown(value)}: {problem}")


def _numbers(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    """Column ``col`` as float64 [rows]; an empty cell is NaN.

    A cell that is not a number (text such as "fast", true/false, a date, a list) is a
    one-line ConfigError naming its row: pandas would either refuse the whole column or
    quietly turn true into 1.0.
    """
    cells = df[col]
    if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells) \
            and not pd.api.types.is_complex_dtype(cells):
        return cells.to_numpy(np.float64, na_value=np.nan)
    # text columns (a CSV column with a non-number in it) and odd Parquet types: by cell
    values = np.full(len(cells), np.nan)
    for i, v in enumerate(cells.tolist()):
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) \
                or (isinstance(v, str) and not v.strip()):
            continue
        ok = isinstance(v, (str, numbers.Real, decimal.Decimal)) and not isinstance(v, bool)
        try:
            values[i] = float(v) if ok else math.nan
        except (ValueError, OverflowError):  # "fast"; an integer beyond float range
            ok = False
        if not ok:
            _fail(source, i, col, v, "must be a number")
    return values


def latencies(df: pd.DataFrame, source: str) -> np.ndarray:
    """The ``latency_s`` column [s]; a cell that is not a positive, finite number is a
    one-line ConfigError naming its row."""
    t = _numbers(df, "latency_s", source)
    bad = ~(np.isfinite(t) & (t > 0))
    if bad.any():
        i = int(np.argmax(bad))
        _fail(source, i, "latency_s", df["latency_s"].iloc[i],
              "must be a positive, finite number of seconds")
    return t


def work(df: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLOPs, bytes and measured latency [s] per row (three float64 arrays [rows]).

    FLOPs and bytes are given directly (``flops``, ``bytes``) or, for ``op = gemm``, from
    ``m``, ``n``, ``k`` (inputs in ``dtype``, output in bf16, fp32 for fp32). Any bad
    column or cell is a one-line ConfigError naming ``source``, the row (its CSV line),
    the column, the value and what is valid.
    """
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"{source}: expected a table (pandas.DataFrame), "
                          f"got {type(df).__name__}")
    names = [str(c) for c in df.columns]
    dup = next((c for c in names if names.count(c) > 1), None)
    if dup is not None:
        raise ConfigError(f"{source}: column {shown(dup)}: appears twice")
    for col in REQUIRED:
        if col not in df.columns:
            raise ConfigError(f"{source}: column {col!r} missing; required: "
                              f"{', '.join(REQUIRED)} and either flops+bytes or m,n,k")
    dtypes = df["dtype"].tolist()
    for i, d in enumerate(dtypes):
        if not isinstance(d, str) or d not in DTYPE_INDEX:
            _fail(source, i, "dtype", d, f"unknown precision; valid: {', '.join(DTYPE_INDEX)}")
    t = latencies(df, source)
    given = {c: _numbers(df, c, source) for c in ("flops", "bytes", "m", "n", "k")
             if c in df.columns}
    for col, v in given.items():
        bad = (v < 0) | np.isinf(v)
        if bad.any():
            i = int(np.argmax(bad))
            _fail(source, i, col, df[col].iloc[i],
                  "must be a non-negative, finite number (or empty where not given)")
    flops = np.full(len(df), np.nan)
    byts = np.full(len(df), np.nan)
    if {"flops", "bytes"} <= set(given):
        flops, byts = given["flops"], given["bytes"]
    if {"m", "n", "k"} <= set(given):
        gemm = (df["op"] == "gemm").to_numpy(bool, na_value=False) & np.isnan(flops)
        m, n, k = given["m"], given["n"], given["k"]
        elem = DTYPE_BYTES[[DTYPE_INDEX[d] for d in dtypes]]
        out = np.where(np.array(dtypes) == "fp32", 4.0, 2.0)
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            flops = np.where(gemm, 2 * m * n * k, flops)
            byts = np.where(gemm, (m * k + k * n) * elem + m * n * out, byts)
        # all three given (the sum of non-negative numbers is never NaN) but no finite work
        overflow = gemm & ~np.isnan(m + n + k) & ~(np.isfinite(flops) & np.isfinite(byts))
        if overflow.any():
            i = int(np.argmax(overflow))
            _fail(source, i, "m, n, k", (float(m[i]), float(n[i]), float(k[i])),
                  "the gemm's FLOPs or bytes overflow float64")
    missing = np.isnan(flops) | np.isnan(byts)
    if missing.any():
        i = int(np.argmax(missing))
        _fail(source, i, "op", df["op"].iloc[i], "give flops and bytes, or m, n, k for a gemm")
    return flops, byts, t


def fit(hw: Hardware, df: pd.DataFrame, source: str = "<table>", iterations: int = 50) -> Fit:
    """Least-squares fit of compute/memory efficiency and kernel latency for ``hw``.

    A fit outside what a hardware preset allows (efficiencies in (0, 1], latency below
    1 s, e.g. when latencies are not in seconds) is a one-line ConfigError.
    """
    flops, byts, t = work(df, source)
    if len(t) < 3:
        raise ConfigError(f"{source}: {len(t)} rows: need at least 3 measured kernels")
    peak = np.array([hw.rate(d) for d in df["dtype"]])
    fc = flops / peak                       # seconds at peak FLOP/s
    bm = byts / hw.memory_bytes_per_s        # seconds at peak bandwidth
    x = np.array([hw.kernel_latency_s, 1 / hw.compute_efficiency, 1 / hw.memory_efficiency])
    w = 1.0 / t
    with np.errstate(over="ignore"):
        scaled = np.column_stack([w, fc * w, bm * w])  # the least-squares system's rows
    bad = ~np.isfinite(scaled).all(axis=1)
    if bad.any():  # LAPACK would print its own complaint on stderr
        i = int(np.argmax(bad))
        _fail(source, i, "latency_s", t[i], "too small for the row's work: the fit overflows")
    with np.errstate(all="ignore"):  # extreme tables overflow; the result is checked below
        try:
            for _ in range(iterations):
                compute = fc * x[1] >= bm * x[2]
                a = np.column_stack([np.ones_like(t), np.where(compute, fc, 0),
                                     np.where(compute, 0, bm)])
                new, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
                # keep the parameters physical: latency >= 0, efficiencies in (0, 1]
                new = np.array([max(new[0], 0.0), max(new[1], 1.0), max(new[2], 1.0)])
                if not compute.any():
                    new[1] = x[1]
                if compute.all():
                    new[2] = x[2]
                if np.allclose(new, x, rtol=1e-12, atol=0):
                    break
                x = new
        except np.linalg.LinAlgError:  # SVD did not converge: pathological rows
            x = np.full(3, np.nan)
        pred = x[0] + np.maximum(fc * x[1], bm * x[2])
        err = float(np.median(np.abs(pred - t) / t) * 100)
    ec, em, latency = 1 / x[1], 1 / x[2], float(x[0])
    # the loop keeps efficiencies <= 1 and latency >= 0; an overflow (NaN) or latencies
    # that are not in seconds can still leave the range a preset allows
    if not (ec >= MIN_PRESET_FLOAT and em >= MIN_PRESET_FLOAT and latency < 1):
        raise ConfigError(f"{source}: the fit gives compute_efficiency {ec:.3g}, "
                          f"memory_efficiency {em:.3g}, kernel_latency_s {latency:.3g}: a "
                          f"preset needs efficiencies in [{MIN_PRESET_FLOAT:g}, 1] and a "
                          "latency below 1 s; check that latency_s is in seconds and the "
                          "work (flops, bytes or m, n, k) is per kernel")
    return Fit(ec, em, latency, len(t), err, pred)


def preset_text(hw: Hardware, result: Fit, table: str, name: str | None) -> str:
    """The base preset's TOML with the fitted keys replaced (or appended) and its efficiency
    curves dropped (the fitted scalars describe every kernel).

    ``name`` (the CLI's ``--name``; None keeps the base name) must be a preset name.
    """
    text = hw.text or read_text(hw.source, "hardware preset (TOML)")
    values = {
        "compute_efficiency": (result.compute_efficiency, "achievable share of peak FLOP/s"),
        "memory_efficiency": (result.memory_efficiency, "achievable share of peak bandwidth"),
        "kernel_latency_s": (result.kernel_latency_s, "fixed seconds per kernel"),
    }
    note = (f"fitted by `dse calibrate` to {table_label(table)} ({result.rows} kernels, "
            f"median abs error {result.median_abs_pct_error:.1f}%)")
    text = with_values(without_curves(text),
                       {k: (v, f"{what}: {note}") for k, (v, what) in values.items()})
    return with_name(text, name)


def without_curves(text: str) -> str:
    """Preset TOML ``text`` without its efficiency curves (``efficiency.<curve>.*`` keys or
    ``[efficiency.<curve>]`` tables): a fit replaces them."""
    kept, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped.startswith("[efficiency.")
        if not skipping and not stripped.startswith("efficiency."):
            kept.append(line)
    return "\n".join(kept).rstrip("\n") + "\n"


def with_name(text: str, name: str | None) -> str:
    """Preset TOML ``text`` renamed to ``name`` (the CLI's ``--name``; None: unchanged)."""
    if name is None:
        return text
    check_preset_name(name, "calibrate", "--name")
    return re.sub(r'^name\s*=.*$', f'name = "{name}"', text, count=1, flags=re.M)


def table_label(table) -> str:
    """A measured table's file name as one printable line (for a preset comment)."""
    label = Path(table).name
    return label if label.isprintable() else shown(label)


def with_values(text: str, values: dict) -> str:
    """Preset TOML ``text`` with each ``key = value  # comment`` line of ``values``
    ({key: (value, comment)}) replaced, or appended when the key is absent."""
    for key, (value, comment) in values.items():
        line = f"{key} = {value:.6g}  # {comment}"
        pattern = re.compile(rf"^{key}\s*=.*$", re.M)
        table = re.search(r"^\s*\[", text, re.M)  # top-level keys go before any [table]
        # a function, not a template: a backslash in the table's name is not an escape
        if pattern.search(text):
            text = pattern.sub(lambda _: line, text, count=1)
        elif table:
            text = text[:table.start()].rstrip("\n") + "\n" + line + "\n\n" + text[table.start():]
        else:
            text = text.rstrip("\n") + "\n" + line + "\n"
    return text
