"""Per-operator breakdown of one configuration (``dse explain``).

The rows come from :func:`dse.kernels.grid.explain_point`, which times each operator with
the pieces the grid kernel uses (costs, rates, what-if scales, the exact mean over decode
steps), so a phase's rows add up to the sweep's ``ttft_s`` and ``tpot_s`` for the same point:
the ``pipeline_fill`` row carries (micro-batches - 1) x the bottleneck stage of prefill, the
``pipeline_wait`` row what a decode step waits beyond the path for the other micro-batches.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .axes import AXES
from .compile import model_ops
from .config import parse_sweep
from .evaluate import derive, evaluate, kernel_inputs, memory_and_validity
from .grid import coords
from .kernels import layout as L
from .kernels.grid import EXPLAIN_FIELDS, explain_point
from .metrics import METRICS
from .table import CATEGORY_NAMES

ROW_FIELDS = ("flops", "bytes", "net_bytes", "compute_s", "memory_s", "network_s",
              "latency_s", "link", "time_s", "count", "stage_count")


def explain(**axes):
    """One configuration's operators with FLOPs, bytes, times and bound, plus totals.

    Parameters
    ----------
    **axes
        One value per axis of the registry (``dse.axes``: hardware, model, batch, tp, ...,
        the what-if scales); an axis not given takes its default.

    Returns
    -------
    table : pandas.DataFrame
        One row per (phase, operator) that runs: ``count`` (runs per forward pass along
        the pipeline path), per-run ``flops``, ``bytes``, ``net_bytes``, ``compute_s``,
        ``memory_s``, ``network_s`` (decode: at the mean context), ``latency_s``,
        ``time_s`` (decode: the mean over the steps), the op's ``bound`` and ``total_s`` =
        count * time_s; then a ``pipeline_fill`` (prefill) and a ``pipeline_wait``
        (decode) row. Per phase, ``total_s`` adds up to ``ttft_s`` and ``tpot_s``.
    summary : dict
        Every output column of the configuration from the grid kernel (ttft_s, tpot_s,
        ...), and ``micro_batches``.
    """
    unknown = sorted(set(axes) - {a.name for a in AXES})
    if unknown:
        raise TypeError(f"explain() got unknown axes {unknown}")
    spec = parse_sweep({
        "grid": {a.name: axes[a.name] for a in AXES if a.section == "grid" and a.name in axes},
        "what_if": {a.name: axes[a.name] for a in AXES
                    if a.section == "what_if" and a.name in axes}})
    m = spec.models[0]
    inp = kernel_inputs(spec, memory_and_validity(spec, coords(spec))["slots"])
    n_pre, n_dec = (int(n) for n in inp["n_ops"][0])
    width = max(n_pre, n_dec)
    rows = {ph: np.zeros((width, EXPLAIN_FIELDS)) for ph in (L.PREFILL, L.DECODE)}
    ttft, tpot, micro, path_pre, stage_pre, path_dec, stage_dec = explain_point(
        inp["hw"][0], inp["rates"][0], inp["programs"][0, L.PREFILL], n_pre,
        inp["programs"][0, L.DECODE], n_dec, inp["axes"][:, 0],
        float(inp["output_tokens"][0]), inp["scales"][:, 0], inp["dtype_bytes"],
        inp["dtype_bits"], rows[L.PREFILL], rows[L.DECODE])
    table = []
    for phase, phase_name in ((L.PREFILL, "prefill"), (L.DECODE, "decode")):
        for op, r in zip(model_ops(m, phase), rows[phase]):
            row = dict(zip(ROW_FIELDS, r))
            if row["count"] == 0:  # inactive here (ep), or no pipeline boundary
                continue
            times = [row["compute_s"], row["memory_s"], row["network_s"]]
            table.append({
                "phase": phase_name, "op": op.name, "kind": op.kind, "count": row["count"],
                **{k: row[k] for k in ("flops", "bytes", "net_bytes")},
                "link": ("scaleout" if row["link"] else "scaleup") if row["net_bytes"] else "",
                **{k: row[k] for k in ("compute_s", "memory_s", "network_s", "latency_s",
                                       "time_s")},
                "bound": L.BOUND_NAMES[int(np.argmax(times))] if row["time_s"] > 0 else "",
                "total_s": row["count"] * row["time_s"]})
        path, stage = (path_pre, stage_pre) if phase == L.PREFILL else (path_dec, stage_dec)
        wait = (micro - 1.0) * stage if phase == L.PREFILL else max(micro * stage - path, 0.0)
        table.append({"phase": phase_name, "op": "pipeline_fill" if phase == L.PREFILL
                      else "pipeline_wait", "kind": "pipeline", "count": 1.0, "flops": 0.0,
                      "bytes": 0.0, "net_bytes": 0.0, "link": "", "compute_s": 0.0,
                      "memory_s": 0.0, "network_s": 0.0, "latency_s": 0.0, "time_s": wait,
                      "bound": "", "total_s": wait})
    ds = evaluate(spec)
    der = derive(ds)
    der["infeasible_reason"] = der["reason"]
    summary = {}
    for m in METRICS:  # every output column of the results table, from the metrics table
        value = np.asarray(der[m.name] if m.name in der else ds[m.name]).ravel()[0]
        if m.dtype == "category":
            value = CATEGORY_NAMES[m.name][int(value)] if m.name != "infeasible_reason" \
                or value else ""
        summary[m.name] = {"int64": int, "float64": float, "bool": bool}.get(
            m.dtype, str)(value)
    summary["micro_batches"] = micro
    return pd.DataFrame(table), summary
