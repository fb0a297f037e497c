"""Axes -> coordinates and kernel inputs; what-if hardware variants; size checks."""
from __future__ import annotations

import os

import numpy as np

from .config import SAME, WHAT_IF_AXES, SweepSpec
from .kernels import layout as L

# Dims of the full grid in the order of the results table (hardware and model outermost).
STRUCT_DIMS = ("model", "weight_dtype", "act_dtype", "kv_dtype", "tp", "pp", "ep",
               "attention_dp", "batch",
               "input_tokens")
KERNEL_WHAT_IF = ("compute_scale", "memory_bandwidth_scale", "scaleup_bandwidth_scale",
                  "scaleout_bandwidth_scale")
TTFT_DIMS = ("hardware", *STRUCT_DIMS, *KERNEL_WHAT_IF)
TPOT_DIMS = ("hardware", *STRUCT_DIMS, "output_tokens", *KERNEL_WHAT_IF)
GRID_DIMS = (*TPOT_DIMS, "dp", "memory_capacity_scale")
STRATEGY_DIMS = ("batch", "tp", "pp", "ep", "attention_dp", "dp", "weight_dtype",
                 "act_dtype", "kv_dtype")
GROUP_DIMS = tuple(d for d in GRID_DIMS if d not in STRATEGY_DIMS)
# The grid flattened group by group: the chunk order of frontiers-only sweeps.
REDUCTION_ORDER = (*GROUP_DIMS, *STRATEGY_DIMS)

# Peak bytes per configuration of a chunk in flight (kernel outputs, xarray's derived
# columns, the grouped copies the reductions sort, record batches): about 190 measured by
# benchmarks/bench_stream.py on 30 M-configuration chunks; chunks are sized with this.
BYTES_PER_CONFIG = 200
# Frontiers-only chunks hold no per-configuration arrays beyond the kernel outputs (under
# 1 B/config) and the frontier index buffer (at most 4 B/config touched): 24 B/config
# covers them with room, plus the chunk's frontier rows, about 300 B each as DataFrame and
# Arrow partial, budgeted at up to FRONTIER_ROWS_PER_GROUP per group (measured: about 60 per
# group of 13,824 strategies on benchmarks/sweep_1b.toml; a group with a larger frontier
# overshoots the budget by 300 B per extra row).
REDUCE_BYTES_PER_CONFIG = 24
BYTES_PER_FRONTIER_ROW = 300
FRONTIER_ROWS_PER_GROUP = 256


def bytes_per_config(spec, results: bool) -> float:
    """Peak bytes per configuration of a chunk in flight, for sizing chunks to a budget."""
    if results:
        return BYTES_PER_CONFIG
    strategies = int(np.prod([len(v) for d, v in coords(spec).items() if d in STRATEGY_DIMS]))
    return (REDUCE_BYTES_PER_CONFIG
            + BYTES_PER_FRONTIER_ROW * min(strategies, FRONTIER_ROWS_PER_GROUP) / strategies)


def coords(spec: SweepSpec) -> dict:
    """Coordinate values per grid dim (dtype sentinels resolved by :func:`dtype_codes`)."""
    c = {"hardware": [h.name for h in spec.hardware], "model": [m.name for m in spec.models]}
    for d in GRID_DIMS:
        if d in c:
            continue
        c[d] = list(spec.what_if[d]) if d in WHAT_IF_AXES else list(spec.grid[d])
    return c


def dtype_codes(values) -> np.ndarray:
    """Precision names -> kernel codes; ``same`` -> -1 (take the previous precision)."""
    return np.array([-1 if v == SAME else L.DTYPE_INDEX[v] for v in values], dtype=np.int64)


def resolve_dtypes(w, a, k):
    """Effective (weight, act, kv) codes; inputs broadcast, -1 means 'same as previous'."""
    a = np.where(a < 0, w, a)
    k = np.where(k < 0, a, k)
    return w, a, k


def hardware_tables(hardware) -> tuple[np.ndarray, np.ndarray]:
    """Hardware table [n_hw, HW_FIELDS] and peak rates [n_hw, n_dtypes] (fallback applied)."""
    table = np.zeros((len(hardware), L.HW_FIELDS))
    rates = np.zeros((len(hardware), len(L.DTYPES)))
    for i, hw in enumerate(hardware):
        table[i, L.HW_MEMORY_BYTES_PER_S] = hw.memory_bytes_per_s
        table[i, L.HW_SCALEUP_BYTES_PER_S] = hw.scaleup_bytes_per_s
        table[i, L.HW_SCALEUP_LATENCY_S] = hw.scaleup_latency_s
        table[i, L.HW_SCALEUP_DOMAIN] = hw.scaleup_domain_devices
        table[i, L.HW_SCALEOUT_BYTES_PER_S] = hw.scaleout_bytes_per_s
        table[i, L.HW_SCALEOUT_LATENCY_S] = hw.scaleout_latency_s
        table[i, L.HW_COMPUTE_EFF] = hw.compute_efficiency
        table[i, L.HW_MEMORY_EFF] = hw.memory_efficiency
        table[i, L.HW_NETWORK_EFF] = hw.network_efficiency
        table[i, L.HW_KERNEL_LATENCY_S] = hw.kernel_latency_s
        rates[i] = [hw.rate(d) for d in L.DTYPES]
    return table, rates


def available_memory_bytes() -> int:
    """Memory this process may use: MemAvailable from /proc/meminfo, else physical RAM."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
