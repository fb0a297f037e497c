"""The metrics table: every output column besides the axes declared once.

The results table's schema, the Pareto and best rows, ``dse explain``'s summary and the
README's column list (checked by a test) all read :data:`METRICS`. The formulas of the
derived columns are :func:`dse.evaluate.derived_metrics` (one function, so the results
table, the reduced rows and ``derive`` agree bit for bit); ``source`` says where a column's
values come from.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One output column.

    ``dtype``: "int64", "float64", "bool" or "category" (dictionary-encoded names).
    ``source``: "kernel" (the grid kernel's outputs), "memory" (the per-device memory
    terms), "derived" (:func:`dse.evaluate.derived_metrics`). ``in_rows``: also a column of
    the Pareto and best rows. ``nullable``: may hold nulls (what a null means is in
    ``doc``); every other column is declared non-nullable.
    """
    name: str
    unit: str
    dtype: str
    source: str
    doc: str
    nullable: bool = False
    in_rows: bool = True


METRICS = (
    Metric("devices", "devices", "int64", "derived", "tp * attention_dp * pp * cp * dp"),
    Metric("ttft_s", "s", "float64", "kernel",
           "time to first token: the prefill pass (continuous: request overhead, admission "
           "wait and the request's prefill iterations)"),
    Metric("tpot_s", "s", "float64", "kernel",
           "time per output token: the mean decode step (continuous: the mean iteration a "
           "decoding request sees)"),
    Metric("e2e_latency_s", "s", "float64", "derived",
           "ttft_s + (output_tokens - 1) * tpot_s"),
    Metric("throughput_tokens_per_s", "tokens/s", "float64", "derived",
           "dp * batch * output_tokens / e2e_latency_s"),
    Metric("tokens_per_s_per_device", "tokens/s", "float64", "derived",
           "throughput_tokens_per_s / devices"),
    Metric("tokens_per_s_per_user", "tokens/s", "float64", "derived", "1 / tpot_s"),
    Metric("requests_per_s", "requests/s", "float64", "derived",
           "dp * batch / e2e_latency_s (a static batch, or a closed loop of batch clients)"),
    Metric("running_requests", "requests", "int64", "derived",
           "requests running per replica (continuous: those the KV cache and the engine "
           "admit; the rest of batch wait)"),
    Metric("weight_bytes_per_device", "bytes", "float64", "memory",
           "weights held by one device"),
    Metric("kv_cache_bytes_per_device", "bytes", "float64", "memory",
           "KV cache (and state-space state) of the batch at full context"),
    Metric("activation_bytes_per_device", "bytes", "float64", "memory",
           "activation working set", in_rows=False),
    Metric("memory_bytes_per_device", "bytes", "float64", "derived",
           "static: weights + the larger of the prefill peak (the prompts' KV cache + the "
           "prefill activations) and the decode peak (full-context KV cache + one step's "
           "activations); continuous: weights + one iteration's working set + the running "
           "requests' KV cache; less what is offloaded to the host"),
    Metric("offloaded_bytes_per_device", "bytes", "float64", "derived",
           "weights or KV cache the device spills to the hardware's host memory and streams "
           "over the host link every pass (the offload axis; 0: nothing spilled); not in "
           "memory_bytes_per_device", in_rows=False),
    Metric("cost_per_million_output_tokens", "USD per million output tokens", "float64",
           "derived",
           "USD per million output (generated) tokens, prompt tokens not counted: devices * "
           "price_per_device_hour_usd / 3600 / throughput_tokens_per_s * 1e6 (the price: "
           "the spec's [cost] section, else the hardware preset's); null where neither "
           "gives a price", nullable=True),
    Metric("energy_per_token_j", "J", "float64", "derived",
           "joules per output (generated) token, all devices: devices * (P_prefill * ttft_s "
           "+ P_decode * (output_tokens - 1) * tpot_s) / (dp * batch * output_tokens), with "
           "P = idle_watts + (tdp_watts - idle_watts) * u per device, u = 1 when compute-"
           "bound and 0.35 when memory- or network-bound (static prefill: u = 1; decode and "
           "continuous serving: by bound); null where the hardware preset has no "
           "tdp_watts", nullable=True),
    Metric("feasible", "", "bool", "derived", "fits memory and is a valid combination",
           in_rows=False),
    Metric("infeasible_reason", "", "category", "derived",
           "the first reason the point is infeasible; null where feasible", nullable=True,
           in_rows=False),
    Metric("bound", "", "category", "kernel",
           "the resource (compute, memory, network, or host_link: the offload's "
           "streaming outlasting the device's work) behind most decode time"),
)

# Optional columns of the results table, written only when asked for (``dse sweep
# --breakdown``, ``run_sweep(..., breakdown=True)``; ``evaluate(..., breakdown=True)``
# adds them to the dataset): seconds per operator class (``kernels/breakdown.py``, which
# says what each class holds and what the classes add up to) and the prefill bound.
# Source "breakdown": that kernel. Not in the Pareto and best rows.
def _breakdown_metrics() -> tuple:
    from .kernels.breakdown import CLASSES, CLASS_DOCS
    pre = ("prefill time in {}; the six prefill_*_s add up to the prefill part of ttft_s "
           "(static: ttft_s; continuous: the request's prefill iterations, ttft_s less the "
           "request overhead, arrival offset and admission wait)")
    dec = ("decode time per output token in {}; the six decode_*_s add up to tpot_s "
           "(static: the mean decode step; continuous: the mean iteration a decoding "
           "request sees, others' prefill chunks included)")
    return (*(Metric(f"prefill_{c}_s", "s", "float64", "breakdown", pre.format(CLASS_DOCS[c]),
                     in_rows=False) for c in CLASSES),
            *(Metric(f"decode_{c}_s", "s", "float64", "breakdown", dec.format(CLASS_DOCS[c]),
                     in_rows=False) for c in CLASSES),
            Metric("prefill_bound", "", "category", "breakdown",
                   "the resource (compute, memory, network) behind most prefill time "
                   "(continuous: in the prefill-carrying iteration)", in_rows=False))


BREAKDOWN_METRICS = _breakdown_metrics()
# Former names of metrics, still accepted where a spec names a metric ([objectives]):
# old name -> current name. The cost column said nothing of its unit basis (output tokens).
RENAMED = {"cost_per_million_tokens": "cost_per_million_output_tokens"}
METRIC = {m.name: m for m in METRICS}
# the numeric columns, in table order
NUMERIC = tuple(m.name for m in METRICS if m.dtype in ("int64", "float64"))
NULLABLE = tuple(m.name for m in METRICS if m.nullable)


def columns_markdown() -> str:
    """The README's table of the results columns (axes, then metrics); a test keeps the
    README equal to it. Print it with ``python -m dse.metrics``."""
    from .axes import AXES
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    kinds = {"preset": "category", "dtype": "category", "choice": "category", "int": "int64",
             "scale": "float64", "fraction": "float64"}
    for a in AXES:
        lines.append(f"| `{a.name}` | {kinds[a.kind]} | | axis: {a.doc} |")
    for m in METRICS:
        null = " (nullable)" if m.nullable else ""
        lines.append(f"| `{m.name}` | {m.dtype}{null} | {m.unit} | {m.doc} |")
    return "\n".join(lines)


def breakdown_markdown() -> str:
    """The README's table of the ``--breakdown`` columns; a test keeps the README equal to
    it."""
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    for m in BREAKDOWN_METRICS:
        lines.append(f"| `{m.name}` | {m.dtype} | {m.unit} | {m.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(columns_markdown())
