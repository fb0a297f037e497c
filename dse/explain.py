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
from .compile import program_ops
from .config import parse_sweep
from .engines import replica_limits
from .evaluate import (METRIC_INPUTS, derived_metrics, evaluate, kernel_inputs,
                       memory_and_validity, uses_cp, uses_lora)
from .grid import coords
from .kernels import layout as L
from .kernels.breakdown import CLASSES, KIND_CLASS
from .kernels.grid import EXPLAIN_FIELDS, explain_point, explain_serving, host_seconds
from .metrics import BREAKDOWN_METRICS, METRICS
from .table import CATEGORY_NAMES

_LINKS = ("scaleup", "scaleout", "scaleup+scaleout")  # a hierarchical collective uses both
ROW_FIELDS = ("flops", "bytes", "net_bytes", "compute_s", "memory_s", "network_s",
              "latency_s", "link", "time_s", "count", "stage_count")


def explain(*, breakdown: bool = False, base_dir=None, source: str = "<api>", **axes):
    """One configuration's operators with FLOPs, bytes, times and bound, plus totals.

    Parameters
    ----------
    breakdown : bool
        Add the sweep's breakdown columns (``metrics.BREAKDOWN_METRICS``: seconds per
        operator class, the prefill bound) to the summary, from the breakdown kernel.
    base_dir, source
        Where preset paths resolve first, and the name errors give (as ``parse_sweep``).
    **axes
        One value per axis of the registry (``dse.axes``: hardware, model, batch, tp, ...,
        the what-if scales); an axis not given takes its default.

    Returns
    -------
    table : pandas.DataFrame
        Static serving (``serving="static"``): one row per (phase, operator) that runs:
        its ``kind`` and ``op_class`` (the breakdown's class, ``kernels.breakdown``),
        ``count`` (runs per forward pass along the pipeline path), per-run ``flops``,
        ``bytes``, ``net_bytes`` (a collective's message per device), ``link`` (scaleup,
        scaleout, or both for a hierarchical collective), ``compute_s``, ``memory_s``,
        ``network_s`` (decode: at the mean context), ``latency_s``, ``time_s`` (decode: the mean over the steps), the
        op's ``bound`` and ``total_s`` = count * time_s; then a ``pipeline_fill`` (prefill)
        and a ``pipeline_wait`` (decode) row. Per phase, ``total_s`` adds up to ``ttft_s``
        and ``tpot_s`` (with ``spec_tokens`` > 0 a decode step yields
        ``formulas.expected_tokens`` tokens: its rows add up to that times ``tpot_s``). Continuous serving (``serving="continuous"``, the default): one row
        per operator of each iteration kind, ``decode_iteration`` and ``prefill_iteration``
        (count and time per run; FLOPs, bytes and the roofline sides are not split there,
        NaN), then ``pipeline_wait`` and the engine's ``iteration_overhead``; per iteration
        kind ``total_s`` adds up to ``decode_iteration_s`` / ``prefill_iteration_s``.
    summary : dict
        Every output column of the configuration from the grid kernel (ttft_s, tpot_s,
        ...), and ``micro_batches``; continuous serving adds the steady state
        (:data:`SERVING_FIELDS`: completions per second and per iteration, decoding
        requests, the share of iterations carrying prefill, prompts per such iteration,
        chunks per prompt, a request's prefill iterations, both iterations' seconds, the
        admission interval, ``ttft_wait_s``: TTFT less the engine's request overhead
        and the request's own prefill iterations, i.e. its waits for an iteration
        boundary, the next admission and free KV capacity, and ``token_budget``: the
        replica's prompt-plus-decode tokens per iteration, 0 for none,
        :func:`dse.engines.replica_limits`) and ``engine_kernels``: the engine's kernel
        set and the curves of it in effect on this hardware ("" for none);
        with ``breakdown``, then the breakdown columns. A phase's (static) or iteration
        kind's (continuous) ``total_s`` of the rows of one ``op_class`` is that class's
        share before pipelining: with one micro-batch, static ``prefill_<class>_s`` and
        ``decode_<class>_s`` are those sums.
    """
    unknown = sorted(set(axes) - {a.name for a in AXES})
    if unknown:
        raise TypeError(f"explain() got unknown axes {unknown}")
    spec = parse_sweep({
        "grid": {a.name: axes[a.name] for a in AXES if a.section == "grid" and a.name in axes},
        "what_if": {a.name: axes[a.name] for a in AXES
                    if a.section == "what_if" and a.name in axes}},
        source=source, base_dir=base_dir)
    memory = memory_and_validity(spec, coords(spec))
    inp = kernel_inputs(spec, memory["slots"], memory["host_bytes"])
    # offload: what one device streams over the host link per prefill / decode pass
    host = inp["host"][:, 0]
    if spec.grid["serving"][0] == "continuous":
        table, extra = _continuous_rows(spec, inp, float(inp["slots"][0]), float(host[1]))
    else:
        table, extra = _static_rows(spec, inp, host)
    ds = evaluate(spec, breakdown=breakdown)
    # one configuration: the derived metrics on its plain values (the same function as
    # derive(), without building a Dataset of one-entry dims around every result)
    der = derived_metrics({n: np.asarray(ds[n]).ravel()[0] for n in METRIC_INPUTS})
    der["infeasible_reason"] = der["reason"]
    summary = {}
    for m in METRICS:  # every output column of the results table, from the metrics table
        value = np.asarray(der[m.name] if m.name in der else ds[m.name]).ravel()[0]
        if m.dtype == "category":
            value = CATEGORY_NAMES[m.name][int(value)] if m.name != "infeasible_reason" \
                or value else ""
        summary[m.name] = {"int64": int, "float64": float, "bool": bool}.get(
            m.dtype, str)(value)
    summary.update(extra)
    for m in BREAKDOWN_METRICS if breakdown else ():
        value = np.asarray(ds[m.name]).ravel()[0]
        summary[m.name] = (CATEGORY_NAMES[m.name][int(value)] if m.dtype == "category"
                           else float(value))
    return pd.DataFrame(table), summary


def op_class(op) -> str:
    """The breakdown class (``kernels.breakdown.CLASSES``) of an operator."""
    return CLASSES[KIND_CLASS[int(op.row[L.OP_KIND])]]


def _host_row(phase: str, nbytes: float, seconds: float) -> dict:
    """The ``host_link`` row of a phase or iteration: the part of a pass the host link's
    streaming of ``nbytes`` offloaded bytes per pass outlasts the device's work."""
    return {"phase": phase, "op": "host_link", "kind": "offload", "op_class": "offload",
            "count": 1.0, **_NOT_SPLIT, "bytes": nbytes, "time_s": seconds,
            "total_s": seconds}


def _static_rows(spec, inp, host) -> tuple[list, dict]:
    """Per-op rows of a static batch: prefill, then the mean decode step; with offload a
    ``host_link`` row per phase (``host``: bytes per prefill and decode pass)."""
    m = spec.models[0]
    n_pre, n_dec = (int(n) for n in inp["n_ops"][0])
    width = max(n_pre, n_dec)
    rows = {ph: np.zeros((width, EXPLAIN_FIELDS)) for ph in (L.PREFILL, L.DECODE)}
    ttft, tpot, micro, path_pre, stage_pre, path_dec, stage_dec = explain_point(
        inp["hw"][0], inp["rates"][0], inp["programs"][0, L.PREFILL], n_pre,
        inp["programs"][0, L.DECODE], n_dec, inp["axes"][:, 0], inp["quants"][0],
        float(inp["output_tokens"][0]), inp["scales"][:, 0], inp["dtype_bytes"],
        inp["dtype_bits"], rows[L.PREFILL], rows[L.DECODE])
    table = []
    for phase, phase_name in ((L.PREFILL, "prefill"), (L.DECODE, "decode")):
        ops_of = program_ops(m, phase, uses_lora(coords(spec)), uses_cp(coords(spec)),
                             spec.drafts[0])
        for op, r in zip(ops_of, rows[phase]):
            row = dict(zip(ROW_FIELDS, r))
            if row["count"] == 0:  # inactive here (ep), or no pipeline boundary
                continue
            times = [row["compute_s"], row["memory_s"], row["network_s"]]
            table.append({
                "phase": phase_name, "op": op.name, "kind": op.kind, "op_class": op_class(op),
                "count": row["count"],
                **{k: row[k] for k in ("flops", "bytes", "net_bytes")},
                "link": _LINKS[int(row["link"])] if row["net_bytes"] else "",
                **{k: row[k] for k in ("compute_s", "memory_s", "network_s", "latency_s",
                                       "time_s")},
                "bound": L.BOUND_NAMES[int(np.argmax(times))] if row["time_s"] > 0 else "",
                "total_s": row["count"] * row["time_s"]})
        path, stage = (path_pre, stage_pre) if phase == L.PREFILL else (path_dec, stage_dec)
        wait = (micro - 1.0) * stage if phase == L.PREFILL else max(micro * stage - path, 0.0)
        table.append({"phase": phase_name, "op": "pipeline_fill" if phase == L.PREFILL
                      else "pipeline_wait", "kind": "pipeline", "op_class": "",
                      "count": 1.0, "flops": 0.0,
                      "bytes": 0.0, "net_bytes": 0.0, "link": "", "compute_s": 0.0,
                      "memory_s": 0.0, "network_s": 0.0, "latency_s": 0.0, "time_s": wait,
                      "bound": "", "total_s": wait})
        if host[phase] > 0.0:  # offload: the host link's wait beyond the device's work
            h = host_seconds(float(host[phase]), inp["hw"][0])
            if phase == L.PREFILL:
                extra = (max(path, h) - path) + (micro - 1.0) * (max(stage, h) - stage)
            else:
                step = max(path, micro * stage)
                extra = max(step, micro * h) - step
            table.append(_host_row(phase_name, float(host[phase]), extra))
    return table, {"micro_batches": micro}


_NOT_SPLIT = {"flops": np.nan, "bytes": np.nan, "net_bytes": np.nan, "link": "",
              "compute_s": np.nan, "memory_s": np.nan, "network_s": np.nan,
              "latency_s": np.nan, "bound": ""}
SERVING_FIELDS = ("completions_per_s", "decoding_requests",
                  "completions_per_iteration", "prefill_iteration_share",
                  "prompts_per_prefill_iteration", "chunks_per_prompt",
                  "prefill_iterations_per_request", "decode_iteration_s",
                  "prefill_iteration_s", "admission_interval", "ttft_wait_s",
                  "token_budget", "engine_kernels", "micro_batches")
# explain_serving's result positions of SERVING_FIELDS (token_budget, engine_kernels:
# computed here)
_SERVING_AT = {"completions_per_s": 2, "decoding_requests": 4,
               "completions_per_iteration": 5, "prefill_iteration_share": 6,
               "prompts_per_prefill_iteration": 7, "chunks_per_prompt": 8,
               "prefill_iterations_per_request": 9, "decode_iteration_s": 10,
               "prefill_iteration_s": 11, "admission_interval": 16, "ttft_wait_s": 17,
               "micro_batches": 12}


def _continuous_rows(spec, inp, slot: float, host: float) -> tuple[list, dict]:
    """Per-op rows of continuous serving's two iteration kinds (decode only, carrying
    prefill; ``kernels.grid.explain_serving``) and the steady state's composition. Per
    iteration, ``total_s`` adds up to the iteration's time (engine overhead included;
    with offload, ``host``: bytes per pass, a ``host_link`` row)."""
    m = spec.models[0]
    n_pre, n_dec = (int(n) for n in inp["n_ops"][0])
    ops = {ph: program_ops(m, ph, uses_lora(coords(spec)), uses_cp(coords(spec)),
                           spec.drafts[0])
           for ph in (L.PREFILL, L.DECODE)}
    rows = {k: np.zeros((n_dec + n_pre, 2)) for k in ("decode", "mixed")}
    engine = inp["engines"][0]
    result = explain_serving(
        inp["engine_hw"][0, 0], inp["rates"][0], inp["programs"][0, L.PREFILL], n_pre,
        inp["programs"][0, L.DECODE], n_dec, engine, inp["axes"][:, 0], inp["quants"][0],
        float(inp["output_tokens"][0]), inp["scales"][:, 0], slot, inp["dtype_bytes"],
        inp["dtype_bits"], rows["decode"], rows["mixed"], host)
    # the replica's token budget per iteration (0: none): the axis, else the engine's, on
    # every attention-DP rank where the engine schedules per rank
    point = coords(spec)
    budget, _ = replica_limits(spec.engines[0], int(point["max_batched_tokens"][0]),
                               int(point["attention_dp"][0]))
    # the engine's own kernel curves in effect on this hardware (dse.engines kernel sets)
    preset = spec.engines[0]
    mine = preset.kernel_curves.get(spec.hardware[0].name, {})
    computed = {"token_budget": float(budget),
                "engine_kernels": f"{preset.kernels}: {', '.join(sorted(mine))}" if mine
                else ""}
    extra = {name: computed[name] if name in computed else result[_SERVING_AT[name]]
             for name in SERVING_FIELDS}
    times = {"decode": result[10], "mixed": result[11]}
    labels = {"decode": "decode_iteration", "mixed": "prefill_iteration"}
    table = []
    for kind in ("decode", "mixed"):
        if times[kind] <= 0.0:
            continue
        named = [*ops[L.DECODE], *ops[L.PREFILL]]
        for op, (sec, count) in zip(named, rows[kind]):
            if sec > 0.0 and count > 0.0:
                table.append({"phase": labels[kind], "op": op.name, "kind": op.kind,
                              "op_class": op_class(op), "count": count, **_NOT_SPLIT,
                              "time_s": sec,
                              "total_s": count * sec})
        overhead = float(engine[L.EN_ITERATION_OVERHEAD_S])
        ops_s = sum(r["total_s"] for r in table if r["phase"] == labels[kind])
        # the device's work (offload: the pass lasts max(it, the host link))
        device = float(result[13] if kind == "decode" else result[14])
        # a prefill-carrying iteration runs eagerly (a decode-only one too where the engine
        # captures no CUDA graphs): the host's operator launches beyond the device's work
        # (engine eager_op_s, kernels/serving.eager_device)
        eager = float(result[15] if kind == "mixed" else result[18])
        engine_rows = [("pipeline_wait", device - ops_s), ("iteration_overhead", overhead)]
        if eager > 0.0:
            engine_rows.insert(1, ("eager_launch_wait", eager))
        for name, value in engine_rows:
            table.append({"phase": labels[kind], "op": name, "kind": "engine",
                          "op_class": "" if name == "pipeline_wait" else "other",
                          "count": 1.0,
                          **_NOT_SPLIT, "time_s": value, "total_s": value})
        if host > 0.0:
            table.append(_host_row(labels[kind], host,
                                   times[kind] - overhead - device - eager))
    return table, extra
