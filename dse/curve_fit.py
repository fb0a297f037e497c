"""Fit a hardware preset's size-dependent efficiency curves to measured kernel timings.

The curves (``kernels/efficiency.py``) replace the scalar efficiencies of GEMMs, attention
kernels and collectives by a share of peak that depends on the kernel's work. The model
each measured row is compared with is the engine's:

  GEMM / attention  t = L + max(f' / e_c(FLOPs), b' / e_m(bytes))
  collective        t = L + s + w' / e_n(message)

with f' = FLOPs / peak, b' = bytes / bandwidth, w' the collective's link seconds at full
link bandwidth and s its link-step latency (``kernels/collectives.py``, the algorithm
chosen at full bandwidth), L the kernel latency (fitted by :func:`dse.calibrate.fit`, or
the preset's own). With each row assigned to the side of the max that wins, t - L is
linear in g = 1 / e; g is fitted piecewise-linear in log10(work) (hat functions at
quantile knots of the rows' work, least squares weighted by 1 / t: relative error),
clipped to efficiencies in (0, 1], and the assignment repeated until it settles. The
stored curve interpolates e itself between the knots, as the kernel does; the reported
error is the kernel's.

A ``moe`` row (a grouped GEMM: routed experts) may give ``groups``, the independent expert
GEMMs its FLOPs split into: its compute curve is read at FLOPs / groups, one expert GEMM's
work, as the kernel prices a routed-experts op (``formulas.moe_gemms``); its bytes stay the
total (the experts stream at once).

Rows are classified by ``op``: ``gemm``, ``moe`` and ``moe_wo`` (grouped GEMMs) feed the
gemm_* curves (with ``moe_curves``: ``moe`` rows feed curves of their own, moe_*, which the
kernel gives the routed experts computing in 8 bits or fewer where a preset carries them,
and ``moe_wo`` rows, weight-only quantized experts timed whole, dequantization included,
the moe_wo_* curves),
``attention`` the attention_* curves, ``all_reduce``, ``all_gather``, ``reduce_scatter``
and ``all_to_all`` (columns ``devices``, ``message_bytes``, optional ``nodes``) the
collective curve; other ops only the scalar fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .calibrate import _fail, _numbers, fit, latencies, without_curves, work
from .config import MIN_PRESET_FLOAT, ConfigError, Hardware
from .kernels import layout as L
from .kernels.collectives import collective_seconds

# kernel classes: (ops, compute curve, memory curve)
KERNEL_CLASSES = ((("gemm", "moe", "moe_wo"), "gemm_compute", "gemm_memory"),
                  (("attention",), "attention_compute", "attention_memory"))
MOE_CLASSES = ((("gemm",), "gemm_compute", "gemm_memory"),
               (("moe",), "moe_compute", "moe_memory"),
               (("moe_wo",), "moe_wo_compute", "moe_wo_memory"),
               (("attention",), "attention_compute", "attention_memory"))
GROUPED_OPS = ("moe", "moe_wo")
COLLECTIVE_OPS = {"all_reduce": L.ALLREDUCE, "all_gather": L.ALLGATHER,
                  "reduce_scatter": L.REDUCESCATTER, "all_to_all": L.ALLTOALL}
DEFAULT_KNOTS = 5
MIN_ROWS = 2  # rows a curve needs (fewer: the scalar stays)


@dataclass
class CurveFit:
    curves: dict               # {curve name: (work knots, efficiencies)}
    rows: dict                 # {curve name: rows it was fitted to}
    kernel_latency_s: float
    median_abs_pct_error: float  # over the rows the curves price
    predicted_s: np.ndarray      # per row of the table (NaN: not priced by a curve)


def _hat_basis(x, knots):
    """Piecewise-linear hat functions at ``knots`` evaluated at ``x`` [rows, knots]; flat
    beyond the end knots (the kernel's clamping)."""
    x = np.clip(x, knots[0], knots[-1])
    basis = np.zeros((len(x), len(knots)))
    if len(knots) == 1:
        basis[:, 0] = 1.0
        return basis
    j = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    w = (x - knots[j]) / (knots[j + 1] - knots[j])
    basis[np.arange(len(x)), j] = 1.0 - w
    basis[np.arange(len(x)), j + 1] = w
    return basis


def _knots(x, n_knots):
    """Up to ``n_knots`` knots at quantiles of log-work ``x`` (distinct values)."""
    return np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_knots)))


def _monotone(g, weight):
    """Pool-adjacent-violators: the weighted least-squares non-increasing sequence nearest
    ``g`` (efficiency that does not fall as the work grows)."""
    blocks = []  # [value, weight, count]
    for v, w in zip(g, np.maximum(weight, 1e-12)):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(n, v) for v, _, n in blocks])


def _solve(x, base, rest, t, knots):
    """g = 1 / efficiency at ``knots`` minimizing sum(((base * g(x) - rest) / t)^2), made
    non-increasing (efficiency grows with the work: measured kernels that do not are
    tile or wave effects a few knots cannot follow), clipped to efficiencies in
    [MIN_PRESET_FLOAT, 1]."""
    basis = _hat_basis(x, knots)
    a = basis * (base / t)[:, None]
    g, *_ = np.linalg.lstsq(a, rest / t, rcond=None)
    g = _monotone(np.clip(g, 1.0, 1.0 / MIN_PRESET_FLOAT), (a ** 2).sum(axis=0))
    return np.clip(g, 1.0, 1.0 / MIN_PRESET_FLOAT)


def _efficiency(x, knots, eff):
    """The kernel's interpolation: efficiency linear in log10(work), flat beyond the ends."""
    return np.interp(x, knots, eff)


def kernel_seconds(lat, fc, bm, cwork, byts, compute, memory):
    """(seconds, compute-bound?) of GEMM/attention rows as the engine prices them:
    lat + max(fc / e_c(cwork), bm / e_m(bytes)), fc and bm the rows' seconds at peak,
    cwork the FLOPs the compute curve is read at (a grouped GEMM's: one group's), the
    curves ``compute`` and ``memory`` as (log10 work knots, efficiencies)."""
    tc = fc / _efficiency(np.log10(np.maximum(cwork, 1.0)), *compute)
    tm = bm / _efficiency(np.log10(np.maximum(byts, 1.0)), *memory)
    return lat + np.maximum(tc, tm), tc >= tm


def _fit_two_sided(fc, bm, cwork, byts, t, lat, ce, me, n_knots):
    """Compute and memory curves for one class of kernels (compute read at ``cwork``,
    memory at ``byts``); returns ({side: (log-work knots, efficiencies)}, predicted
    seconds)."""
    xf = np.log10(np.maximum(cwork, 1.0))
    xb = np.log10(np.maximum(byts, 1.0))
    rest = t - lat
    curves = {"compute": (np.array([xf.min()]), np.array([ce])),
              "memory": (np.array([xb.min()]), np.array([me]))}
    compute = fc / ce >= bm / me
    for _ in range(30):
        for side, rows, x, base in (("compute", compute, xf, fc), ("memory", ~compute, xb, bm)):
            if rows.sum() >= MIN_ROWS:
                knots = _knots(x[rows], n_knots)
                g = _solve(x[rows], base[rows], rest[rows], t[rows], knots)
                curves[side] = (knots, 1.0 / g)
        pred, new = kernel_seconds(lat, fc, bm, cwork, byts, curves["compute"],
                                   curves["memory"])
        if (new == compute).all():
            break
        compute = new
    fitted = {side: c for side, c in curves.items()
              if (compute if side == "compute" else ~compute).sum() >= MIN_ROWS}
    return fitted, pred


def _groups(df: pd.DataFrame, source: str) -> np.ndarray:
    """Per row, the independent GEMMs its FLOPs split into: a ``moe`` or ``moe_wo`` row's
    ``groups`` (a number >= 1; empty: 1), 1 for every other row."""
    out = np.ones(len(df))
    if "groups" not in df.columns:
        return out
    g = _numbers(df, "groups", source)
    moe = df["op"].astype(str).isin(GROUPED_OPS).to_numpy()
    bad = moe & ~np.isnan(g) & ~(np.isfinite(g) & (g >= 1))
    if bad.any():
        i = int(np.argmax(bad))
        _fail(source, df.index[i], "groups", df["groups"].iloc[i],
              "must be a number of expert GEMMs >= 1 (or empty: 1)")
    return np.where(moe & ~np.isnan(g), g, 1.0)


def _collective_rows(hw: Hardware, df: pd.DataFrame, source: str):
    """(message bytes, link seconds at full bandwidth, link-step latency) per collective
    row."""
    n = _numbers(df, "devices", source)
    msg = _numbers(df, "message_bytes", source)
    nodes = _numbers(df, "nodes", source) if "nodes" in df.columns else np.ones(len(df))
    base = np.empty(len(df))
    steps = np.empty(len(df))
    for i in range(len(df)):
        if not (np.isfinite(n[i]) and n[i] >= 2 and n[i] == int(n[i])):
            _fail(source, df.index[i], "devices", df["devices"].iloc[i],
                  "a collective needs a whole number of devices >= 2")
        if not (np.isfinite(msg[i]) and msg[i] > 0):
            _fail(source, df.index[i], "message_bytes", df["message_bytes"].iloc[i],
                  "must be a positive number of bytes")
        k = nodes[i] if np.isfinite(nodes[i]) and nodes[i] >= 1 else 1.0
        domain = max(n[i] / k, 1.0)
        up, out, lat = collective_seconds(COLLECTIVE_OPS[df["op"].iloc[i]], n[i], n[i], msg[i],
                                          domain, 1.0 / hw.scaleup_bytes_per_s,
                                          hw.scaleup_latency_s, 1.0 / hw.scaleout_bytes_per_s,
                                          hw.scaleout_latency_s)
        base[i] = up + out
        steps[i] = lat
    return msg, base, steps


def fit_curves(hw: Hardware, df: pd.DataFrame, source: str = "<table>",
               latency: float | None = None, knots: int = DEFAULT_KNOTS,
               moe_curves: bool = False) -> CurveFit:
    """Efficiency curves for ``hw`` from the measured kernels in ``df`` (see the module
    docstring); ``latency``: the kernel latency to fit on top of (None: fitted with the
    scalars by :func:`dse.calibrate.fit` on the non-collective rows); ``moe_curves``: fit
    the ``moe`` rows to moe_compute / moe_memory and the ``moe_wo`` rows to moe_wo_compute
    / moe_wo_memory instead of joining them to the GEMM rows."""
    if "op" not in df.columns:
        raise ConfigError(f"{source}: column 'op' missing; required for curves: op, dtype, "
                          "latency_s and flops+bytes, m,n,k or devices+message_bytes")
    df = df.reset_index(drop=True)
    ops = df["op"].astype(str)
    coll = ops.isin(list(COLLECTIVE_OPS)).to_numpy()
    kern = df[~coll]
    t_all = latencies(df, source)
    if latency is None:
        latency = fit(hw, kern, source).kernel_latency_s if len(kern) >= 3 \
            else hw.kernel_latency_s
    pred = np.full(len(df), np.nan)
    curves, rows = {}, {}
    if len(kern):
        flops, byts, t = work(kern, source)
        cwork = flops / _groups(kern, source)
        peak = np.array([hw.rate(d) for d in kern["dtype"]])
        fc, bm = flops / peak, byts / hw.memory_bytes_per_s
        where = kern.index.to_numpy()
        classes = MOE_CLASSES if moe_curves else KERNEL_CLASSES
        for class_ops, c_name, m_name in classes:
            sel = kern["op"].astype(str).isin(class_ops).to_numpy()
            if sel.sum() < MIN_ROWS:
                continue
            fitted, p = _fit_two_sided(fc[sel], bm[sel], cwork[sel], byts[sel], t[sel],
                                       latency, hw.compute_efficiency, hw.memory_efficiency,
                                       knots)
            pred[where[sel]] = p
            for side, name in (("compute", c_name), ("memory", m_name)):
                if side in fitted:
                    x, e = fitted[side]
                    curves[name] = (tuple(10.0 ** x), tuple(e))
                    rows[name] = int(sel.sum())
    if coll.sum() >= MIN_ROWS:
        cdf = df[coll]
        msg, base, steps = _collective_rows(hw, cdf, source)
        t = t_all[coll]
        x = np.log10(msg)
        k = _knots(x, knots)
        g = _solve(x, base, t - latency - steps, t, k)
        curves["collective_network"] = (tuple(10.0 ** k), tuple(1.0 / g))
        rows["collective_network"] = int(coll.sum())
        pred[coll] = latency + steps + base / _efficiency(x, k, 1.0 / g)
    priced = np.isfinite(pred)
    if not priced.any():
        raise ConfigError(f"{source}: no curve to fit: need at least {MIN_ROWS} rows of op "
                          f"gemm/moe/moe_wo, attention or {'/'.join(COLLECTIVE_OPS)}")
    err = float(np.median(np.abs(pred[priced] - t_all[priced]) / t_all[priced]) * 100)
    return CurveFit(curves, rows, float(latency), err, pred)


def curves_text(text: str, result: CurveFit, note: str) -> str:
    """Preset TOML ``text`` with its efficiency curves replaced by ``result``'s, written as
    top-level dotted keys (``efficiency.gemm_memory.work = [...]``): keys appended to the
    file later stay top-level, as they would not after a ``[table]`` header."""
    return without_curves(text) + _curve_lines(result, note)


def _curve_lines(result: CurveFit, note: str) -> str:
    """``result``'s curves as ``efficiency.<curve>.work / .efficiency / .source`` lines."""
    out = ""
    for name in L.CURVES:
        if name not in result.curves:
            continue
        work_, eff = result.curves[name]
        key = f"efficiency.{name}"
        out += (f"{key}.work = [{', '.join(f'{w:.4g}' for w in work_)}]\n"
                f"{key}.efficiency = [{', '.join(f'{min(e, 1.0):.4g}' for e in eff)}]\n"
                f"{key}.source = \"{note} ({result.rows[name]} rows)\"\n")
    return out


def kernel_set_text(name: str, description: str, header: str, fits: dict) -> str:
    """An engine kernel set's TOML (configs/engine_kernels/, ``dse.engines.load_kernel_set``):
    ``header`` as comment lines, then one ``[<hardware>]`` table of curves per entry of
    ``fits`` {hardware preset: (CurveFit, source note)}."""
    out = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    out += f'name = "{name}"\ndescription = "{description}"\n'
    for hardware, (result, note) in fits.items():
        out += f"\n[{hardware}]\n" + _curve_lines(result, note)
    return out
