"""Per-operator breakdown of one configuration (``dse explain``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .compile import model_ops
from .config import SAME, parse_sweep
from .evaluate import derive, evaluate
from .metrics import METRICS
from .table import CATEGORY_NAMES
from .kernels import layout as L
from .ops import op_costs


def explain(hardware="h100_sxm", model="llama3_8b", batch=1, input_tokens=1024,
            output_tokens=256, tp=1, pp=1, ep=1, dp=1, attention_dp=1, weight_dtype="bf16",
            act_dtype=SAME, kv_dtype=SAME):
    """One configuration's operators with FLOPs, bytes, times and bound, plus totals.

    Decode rows are one decode step at the mean context input_tokens + output_tokens / 2
    (the kernel averages over every step exactly; for decode these rows are a guide).

    Returns
    -------
    table : pandas.DataFrame
        One row per (phase, operator): ``count`` (runs per forward pass along the pipeline
        path), per-run ``flops``, ``bytes``, ``net_bytes``, ``compute_s``, ``memory_s``,
        ``network_s``, ``time_s``, the op's ``bound``, and ``total_s`` = count * time_s.
    summary : dict
        The configuration's metrics from the grid kernel (ttft_s, tpot_s, ...).
    """
    spec = parse_sweep({"grid": {
        "hardware": hardware, "model": model, "batch": batch, "input_tokens": input_tokens,
        "output_tokens": output_tokens, "tp": tp, "pp": pp, "ep": ep, "dp": dp,
        "attention_dp": attention_dp,
        "weight_dtype": weight_dtype, "act_dtype": act_dtype, "kv_dtype": kv_dtype}})
    hw, m = spec.hardware[0], spec.models[0]
    w = weight_dtype
    a = w if act_dtype == SAME else act_dtype
    k = a if kv_dtype == SAME else kv_dtype
    bits = dict(zip(L.DTYPES, L.DTYPE_BITS))
    wide = {L.CDT_GEMM: a if bits[a] >= bits[w] else w,
            L.CDT_ATTENTION: a if bits[a] >= bits[k] else k, L.CDT_ACT: a}
    nbytes = dict(zip(L.DTYPES, L.DTYPE_BYTES))
    micro = min(pp, batch)
    seqs = batch / micro / attention_dp  # one attention-DP group per micro-batch
    context = input_tokens + output_tokens / 2
    rows = []
    for phase, phase_name in ((L.PREFILL, "prefill"), (L.DECODE, "decode")):
        for op in model_ops(m, phase):
            when = op.row[L.OP_WHEN]
            if (when == L.WHEN_EP and ep == 1) or (when == L.WHEN_NO_EP and ep > 1):
                continue
            scope = op.row[L.OP_SCOPE]
            count = {L.SCOPE_LAYER: op.row[L.OP_LAYERS], L.SCOPE_BOUNDARY: pp - 1}.get(scope, 1)
            if count == 0:
                continue
            moe = op.row[L.OP_SPAN] == L.SPAN_MOE
            c = op_costs(op, phase, seqs * attention_dp if moe else seqs, input_tokens,
                         context, tp * attention_dp if moe else tp, pp, ep,
                         nbytes[w], nbytes[a], nbytes[k])
            compute = c["flops"] / (hw.rate(wide[int(op.row[L.OP_CDT])]) * hw.compute_efficiency)
            memory = c["bytes"] / (hw.memory_bytes_per_s * hw.memory_efficiency)
            up = c["span_devices"] <= hw.scaleup_domain_devices
            link = hw.scaleup_bytes_per_s if up else hw.scaleout_bytes_per_s
            lat = hw.scaleup_latency_s if up else hw.scaleout_latency_s
            network = c["net_bytes"] / (link * hw.network_efficiency) + c["net_steps"] * lat
            latency = hw.kernel_latency_s if c["flops"] > 0 or c["bytes"] > 0 else 0.0
            t = max(compute, memory, network) + latency
            bound = L.BOUND_NAMES[int(np.argmax([compute, memory, network]))] if t > 0 else ""
            rows.append({"phase": phase_name, "op": op.name, "kind": op.kind, "count": count,
                         "flops": c["flops"], "bytes": c["bytes"], "net_bytes": c["net_bytes"],
                         "link": ("scaleup" if up else "scaleout") if c["net_bytes"] else "",
                         "compute_s": compute, "memory_s": memory, "network_s": network,
                         "latency_s": latency,
                         "time_s": t, "bound": bound, "total_s": count * t})
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
    return pd.DataFrame(rows), summary
