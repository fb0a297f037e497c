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

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ConfigError, Hardware
from .kernels.layout import DTYPE_BYTES, DTYPE_INDEX

REQUIRED = ("op", "dtype", "latency_s")


@dataclass
class Fit:
    compute_efficiency: float
    memory_efficiency: float
    kernel_latency_s: float
    rows: int
    median_abs_pct_error: float
    predicted_s: np.ndarray


def read_table(path) -> pd.DataFrame:
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except Exception as exc:  # pandas/pyarrow parse errors have many types
        raise ConfigError(f"{path}: cannot read the table: {exc}") from None


def work(df: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes per row: given directly (``flops``, ``bytes``) or, for ``op = gemm``,
    from ``m``, ``n``, ``k`` (inputs in ``dtype``, output in bf16, fp32 for fp32)."""
    for col in REQUIRED:
        if col not in df.columns:
            raise ConfigError(f"{source}: column {col!r} missing; required: "
                              f"{', '.join(REQUIRED)} and either flops+bytes or m,n,k")
    bad = sorted(set(df["dtype"]) - set(DTYPE_INDEX))
    if bad:
        raise ConfigError(f"{source}: dtype = {bad[0]!r}: unknown; valid: {', '.join(DTYPE_INDEX)}")
    flops = np.full(len(df), np.nan)
    byts = np.full(len(df), np.nan)
    if {"flops", "bytes"} <= set(df.columns):
        flops = df["flops"].to_numpy(float)
        byts = df["bytes"].to_numpy(float)
    if {"m", "n", "k"} <= set(df.columns):
        gemm = (df["op"] == "gemm").to_numpy() & np.isnan(flops)
        m, n, k = (df[c].to_numpy(float) for c in ("m", "n", "k"))
        elem = DTYPE_BYTES[[DTYPE_INDEX[d] for d in df["dtype"]]]
        out = np.where(df["dtype"].to_numpy() == "fp32", 4.0, 2.0)
        flops = np.where(gemm, 2 * m * n * k, flops)
        byts = np.where(gemm, (m * k + k * n) * elem + m * n * out, byts)
    missing = np.isnan(flops) | np.isnan(byts)
    if missing.any():
        i = int(np.argmax(missing))
        raise ConfigError(f"{source}: row {i + 2}: op = {df['op'].iloc[i]!r}: give flops and "
                          "bytes, or m, n, k for a gemm")
    t = df["latency_s"].to_numpy(float)
    if (t <= 0).any() or (flops < 0).any() or (byts < 0).any() or not np.isfinite(t).all():
        i = int(np.argmax((t <= 0) | ~np.isfinite(t) | (flops < 0) | (byts < 0)))
        raise ConfigError(f"{source}: row {i + 2}: latency_s = {t[i]!r}: latencies must be "
                          "positive and work non-negative")
    return flops, byts


def fit(hw: Hardware, df: pd.DataFrame, source: str = "<table>", iterations: int = 50) -> Fit:
    """Least-squares fit of compute/memory efficiency and kernel latency for ``hw``."""
    if len(df) < 3:
        raise ConfigError(f"{source}: {len(df)} rows: need at least 3 measured kernels")
    flops, byts = work(df, source)
    t = df["latency_s"].to_numpy(float)
    peak = np.array([hw.rate(d) for d in df["dtype"]])
    fc = flops / peak                       # seconds at peak FLOP/s
    bm = byts / hw.memory_bytes_per_s        # seconds at peak bandwidth
    x = np.array([hw.kernel_latency_s, 1 / hw.compute_efficiency, 1 / hw.memory_efficiency])
    w = 1.0 / t
    for _ in range(iterations):
        compute = fc * x[1] >= bm * x[2]
        a = np.column_stack([np.ones_like(t), np.where(compute, fc, 0), np.where(compute, 0, bm)])
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
    pred = x[0] + np.maximum(fc * x[1], bm * x[2])
    err = float(np.median(np.abs(pred - t) / t) * 100)
    return Fit(1 / x[1], 1 / x[2], float(x[0]), len(t), err, pred)


def preset_text(hw: Hardware, result: Fit, table: str, name: str | None) -> str:
    """The base preset's TOML with the fitted keys replaced (or appended)."""
    text = Path(hw.source).read_text()
    values = {
        "compute_efficiency": (result.compute_efficiency, "achievable share of peak FLOP/s"),
        "memory_efficiency": (result.memory_efficiency, "achievable share of peak bandwidth"),
        "kernel_latency_s": (result.kernel_latency_s, "fixed seconds per kernel"),
    }
    note = (f"fitted by `dse calibrate` to {Path(table).name} ({result.rows} kernels, "
            f"median abs error {result.median_abs_pct_error:.1f}%)")
    for key, (value, what) in values.items():
        line = f"{key} = {value:.6g}  # {what}: {note}"
        pattern = re.compile(rf"^{key}\s*=.*$", re.M)
        text = pattern.sub(line, text) if pattern.search(text) else text.rstrip("\n") + "\n" + line + "\n"
    if name:
        text = re.sub(r'^name\s*=.*$', f'name = "{name}"', text, count=1, flags=re.M)
    return text
