"""Axes -> coordinates and kernel inputs; what-if hardware variants; size checks."""
from __future__ import annotations

import os

import numpy as np

from .axes import AXIS, SAME, in_layout, names
from .config import WHAT_IF_AXES, SweepSpec
from .kernels import layout as L

# Dims of the full grid in the order it is flattened (the results table's row order;
# hardware and model outermost), all from the axis registry (dse.axes).
GRID_DIMS = in_layout(names())
# The dims the kernel's outputs carry: the time to first token over the axes it depends
# on, the decode step time over those and output_tokens.
TPOT_DIMS = tuple(d for d in GRID_DIMS if AXIS[d].walk != "derived")
TTFT_DIMS = tuple(d for d in TPOT_DIMS if AXIS[d].ttft)
KERNEL_WHAT_IF = tuple(d for d in GRID_DIMS if AXIS[d].walk == "what_if")
# What-ifs that change how collectives run (the scale-up domain, link latencies): the
# kernel sees each combination as a hardware variant (hardware_variants), outermost, and
# dse.evaluate moves these dims back to the end of the outputs
HARDWARE_WHAT_IF = tuple(d for d in GRID_DIMS if AXIS[d].walk == "hardware")
# The model's structure and the strategy the kernel walks (all but hardware and the
# hardware what-ifs)
STRUCT_DIMS = tuple(d for d in TTFT_DIMS if AXIS[d].walk == "kernel"
                    and d not in ("hardware", "output_tokens"))
# The kernel decodes these by position (kernels.layout names the slots): a registry
# axis the kernel walks must have its slot there, in the same order.
if STRUCT_DIMS != ("model", *L.KERNEL_AXES) or KERNEL_WHAT_IF != L.WHAT_IF_AXES:
    raise ImportError("dse.axes and dse.kernels.layout disagree on the kernel's axes: "
                      f"{STRUCT_DIMS[1:]} / {KERNEL_WHAT_IF} against layout.KERNEL_AXES "
                      f"{L.KERNEL_AXES} / layout.WHAT_IF_AXES {L.WHAT_IF_AXES}")
STRATEGY_DIMS = names(role="strategy")
GROUP_DIMS = tuple(d for d in GRID_DIMS if d not in STRATEGY_DIMS)
# The grid flattened group by group: the chunk order of frontiers-only sweeps.
REDUCTION_ORDER = (*GROUP_DIMS, *STRATEGY_DIMS)

# Dims of the evaluated memory terms and structural checks (dse.evaluate): the KV cache
# varies over all of MEMORY_DIMS, the activations not over output length or KV precision.
MEMORY_DIMS = ("model", "weight_dtype", "act_dtype", "kv_dtype", "quant", "tp", "pp",
               "attention_dp", "batch", "input_tokens", "output_tokens", "beams",
               "prefix_cached_fraction", "lora_rank", "lora_adapters", "cp", "draft_model")
# the working set takes the grid's activation precision, whatever the recipe (dse.quant)
ACTIVATION_DIMS = tuple(d for d in MEMORY_DIMS
                        if d not in ("kv_dtype", "quant", "output_tokens", "beams",
                                     "prefix_cached_fraction", "lora_rank", "lora_adapters",
                                     "cp", "draft_model"))
KV_PROMPT_DIMS = tuple(d for d in MEMORY_DIMS  # KV at the prompt
                       if d not in ("output_tokens", "beams", "lora_rank", "lora_adapters",
                                    "cp", "draft_model"))
STRUCTURE_DIMS = ("model", "tp", "pp", "ep", "attention_dp", "spec_tokens", "cp",
                  "draft_model")

# Peak memory of a chunk in flight, term by term [bytes per point of the dims named], as
# :func:`chunk_bytes` adds them up. Measured with benchmarks/bench_memory.py (peak RSS of
# one chunk in a fresh process, against this estimate, on grids of one huge group, of many
# one-strategy groups and in between); each term is rounded up.
# - kernel outputs: ttft (float64) over TTFT_DIMS; tpot (float64) and bound (uint8) over
#   TPOT_DIMS
TTFT_BYTES, TPOT_BYTES = 8, 9
# - memory terms: the KV cache and one temporary of its size while it is computed, and
#   the activations; structural reason codes and the int64 temporaries of their checks
KV_BYTES, ACTIVATION_BYTES, STRUCTURE_BYTES = 16, 8, 24
# - offload (dse/offload.py, only where the offload axis holds more than one value): the
#   spill, host bytes per pass, slots and about a dozen temporaries of their size over the
#   memory dims, hardware, capacity, serving, engine and offload (an estimate, not measured)
OFFLOAD_BYTES = 128
OFFLOAD_DIMS = (*MEMORY_DIMS, "hardware", "memory_capacity_scale", "serving", "engine",
                "offload")
# - the reduction's per-thread scratch: x, y (float64) and a feasible flag per (group of
#   a block, strategy), and per worker a candidate index and the frontier pre-filter's
#   survivors (int64); where dp has several values, a code (int8), TTFT and TPOT per
#   (group of a block, dp representative) (the twins' values, kernels/objectives.py)
SCRATCH_BYTES, WORKER_BYTES, TWIN_BYTES = 17, 16, 17
# - per group: its offsets, counts, and best row (Arrow row table and partial); per
#   frontier row: indices, metrics, Arrow row table and partial (640 B for the 30 row
#   columns before continuous serving; 768 B since the rows carry 35: the 640 B estimate
#   let tests/test_memory_budget.py's 22,500 large-frontier groups peak at 617 MB in a
#   600 MB budget, 768 B keeps them inside; 864 B since the rows carry 39 (the prefix,
#   speculative-decoding and beam axes): 768 B let them peak at 603 MB; 1088 B since
#   they carry 44 (offload, LoRA, context parallelism, draft model): 864 B let them peak
#   at 610 MB, 960 B at 619 MB)
GROUP_BYTES, FRONTIER_ROW_BYTES = 1024, 1088
# A group's frontier in a chunk is taken to hold at most max(FRONTIER_ROWS_PER_GROUP,
# 2 * batch values * dp values) of its strategies: the batch size trades throughput per
# device for speed per user, and dp replicas tie (every dp of a frontier point is on it).
# Measured: 84 of 13,824 strategies for 12 batch x 6 dp values (benchmarks/sweep_1b.toml's
# strategy axes), 424 of 8,192 for 256 batch x 32 tp, 524 of 1,024 for 32 batch x 32 dp,
# 13 of 6,272 for 8 batch values over tp, ep, attention_dp and pp; every one of 64 batch
# values alone. A larger frontier overshoots the estimate by FRONTIER_ROW_BYTES per row.
FRONTIER_ROWS_PER_GROUP = 64
# - with the results table: each record batch (up to table.BATCH_ROWS rows) as Arrow
#   columns, the derived columns it is gathered from and its Parquet encoding (measured
#   150-270 B per row of a full batch), and a share per configuration beyond a batch
RESULTS_BATCH_BYTES, RESULTS_BYTES = 288, 16
# - the final tables' writer (dse.sweep): it reads a finished chunk's partial tables
#   back and re-encodes them while later chunks run (a partial row is about 220 B of
#   Arrow; up to three copies: the one read, the one encoded and the next one queued);
#   merging chunks' partials at the end holds one (hardware, model) pair's rows as
#   DataFrames, their concatenation and sorted copy (measured about 1 kB per row)
PARTIAL_ROW_BYTES, MERGE_ROW_BYTES = 768, 1280
# Pages of the (n_groups, n_strategies) frontier index that a group touches (int32; only
# the entries written are resident).
FRONT_PAGE_BYTES = 8192
# What the process holds beyond what it held before the first chunk (numba's loaded
# kernels and LLVM, Arrow's and the allocator's pools, the pool threads): measured about
# 100 MB frontiers-only and 160 MB with the results table on a tiny sweep run first in
# its process; a process that has run the kernels before holds them already.
PROCESS_BYTES = {False: 128_000_000, True: 192_000_000}
WARM_PROCESS_BYTES = 32_000_000
# Per row of the reduction's strategy offset tables (dse.reduce.Points: ten int64 offsets
# and two int64 products; about twice the square root of a chunk's strategies).
STRATEGY_ROW_BYTES = 128
# Bookkeeping per chunk for the whole sweep: its plan entry, its manifest entry (dicts and
# the manifest's JSON text), the scheduler's lists (measured about 1.2 kB; file names of
# the results table's parts come on top).
BYTES_PER_CHUNK = 4096


def process_bytes(results: bool) -> int:
    """What a sweep adds to this process besides its chunks (:data:`PROCESS_BYTES`, or
    :data:`WARM_PROCESS_BYTES` once the kernels have run in it)."""
    from .kernels.grid import evaluate_grid
    from .kernels.objectives import grouped_reduce
    if evaluate_grid.overloads and grouped_reduce.overloads:
        return WARM_PROCESS_BYTES
    return PROCESS_BYTES[results]


def split_point(sizes) -> int:
    """Where to cut a list of dim sizes (C order) into outer and inner dims so that the two
    per-dim-product tables (outer product + inner product rows) are smallest."""
    best, best_k = None, 0
    for k in range(len(sizes) + 1):
        rows = int(np.prod(sizes[:k])) + int(np.prod(sizes[k:]))
        if best is None or rows < best:
            best, best_k = rows, k
    return best_k


def _count(sizes: dict, dims) -> float:
    return float(np.prod([sizes[d] for d in dims]))


def frontier_rows(sizes: dict) -> float:
    """Estimated Pareto rows of one group of a chunk whose dims have ``sizes``."""
    return min(_count(sizes, STRATEGY_DIMS),
               max(FRONTIER_ROWS_PER_GROUP, 2 * sizes["batch"] * sizes["dp"]))


def partial_rows(sizes: dict) -> float:
    """Estimated rows of a chunk's partial tables (Pareto and best)."""
    return _count(sizes, GROUP_DIMS) * (1 + frontier_rows(sizes))


def chunk_bytes(sizes: dict, results: bool, threads: int) -> float:
    """Estimated peak bytes of one chunk in flight whose dims have ``sizes`` (evaluated
    arrays, the reduction's tables, scratch and rows, and the results table's batches),
    reduced with ``threads`` numba threads. Grows with the chunk's configurations, its
    strategies and its groups, each counted at what they cost (a chunk of one group of
    many strategies costs several times the same configurations in many groups)."""
    from .kernels.objectives import GROUP_BLOCK
    from .table import BATCH_ROWS

    def n(dims):
        return _count(sizes, dims)

    rows, n_s, n_g = n(GRID_DIMS), n(STRATEGY_DIMS), n(GROUP_DIMS)
    evaluated = (TTFT_BYTES * n(TTFT_DIMS) + TPOT_BYTES * n(TPOT_DIMS)
                 + KV_BYTES * n(MEMORY_DIMS) + ACTIVATION_BYTES * n(ACTIVATION_DIMS)
                 + ACTIVATION_BYTES * n(KV_PROMPT_DIMS)
                 + STRUCTURE_BYTES * n(STRUCTURE_DIMS))
    if sizes["offload"] > 1:  # dse.offload's spill terms and their temporaries
        evaluated += OFFLOAD_BYTES * n(OFFLOAD_DIMS)
    workers = min(threads, -(-n_g // GROUP_BLOCK))
    n_rep = n_s // sizes["dp"] if sizes["dp"] > 1 else 0
    scratch = ((min(n_g, GROUP_BLOCK * threads) * SCRATCH_BYTES + workers * WORKER_BYTES) * n_s
               + min(n_g, GROUP_BLOCK * threads) * TWIN_BYTES * n_rep)
    strategy_sizes = [sizes[d] for d in STRATEGY_DIMS]
    k = split_point(strategy_sizes)
    tables = STRATEGY_ROW_BYTES * (np.prod(strategy_sizes[:k]) + np.prod(strategy_sizes[k:]))
    reduced = (n_g * (GROUP_BYTES + min(4 * n_s, FRONT_PAGE_BYTES)
                      + frontier_rows(sizes) * FRONTIER_ROW_BYTES) + scratch + tables)
    written = (RESULTS_BATCH_BYTES * min(rows, BATCH_ROWS) + RESULTS_BYTES * rows
               if results else 0.0)
    return evaluated + reduced + written


def bytes_per_config(spec, results: bool, threads: int | None = None) -> float:
    """Peak bytes per configuration of the whole grid as one chunk (see
    :func:`chunk_bytes`; smaller chunks of many groups cost about as much per
    configuration, those of part of one group more)."""
    import numba
    sizes = {d: len(v) for d, v in coords(spec).items()}
    threads = threads or numba.config.NUMBA_NUM_THREADS
    return chunk_bytes(sizes, results, threads) / spec.n_configs()


def coords(spec: SweepSpec) -> dict:
    """Coordinate values per grid dim (dtype sentinels resolved by :func:`dtype_codes`)."""
    c = {"hardware": [h.name for h in spec.hardware], "model": [m.name for m in spec.models],
         "engine": [e.name for e in spec.engines], "quant": [q.name for q in spec.quants],
         "draft_model": ["none" if d is None else d.name for d in spec.drafts]}
    for d in GRID_DIMS:
        if d in c:
            continue
        c[d] = list(spec.what_if[d]) if d in WHAT_IF_AXES else list(spec.grid[d])
    return c


def broadcast_shape(*shapes) -> tuple:
    """The shape ``shapes`` broadcast to, as ``np.broadcast_shapes`` but for any number of
    dims (numpy's broadcast object stops at 32; the grid has more)."""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, n in enumerate(shape, ndim - len(shape)):
            if n != 1:
                if out[i] not in (1, n):
                    raise ValueError(f"shapes {shapes} do not broadcast")
                out[i] = n
    return tuple(out)


def dtype_codes(values) -> np.ndarray:
    """Precision names -> kernel codes; ``same`` -> -1 (take the previous precision)."""
    return np.array([-1 if v == SAME else L.DTYPE_INDEX[v] for v in values], dtype=np.int64)


def resolve_dtypes(w, a, k):
    """Effective (weight, act, kv) codes; inputs broadcast, -1 means 'same as previous'."""
    a = np.where(a < 0, w, a)
    k = np.where(k < 0, a, k)
    return w, a, k


def engine_table(engines) -> np.ndarray:
    """Engine table [n_engine, ENGINE_FIELDS] (``layout.EN_*``)."""
    table = np.zeros((max(len(engines), 1), L.ENGINE_FIELDS))
    for i, e in enumerate(engines):
        table[i, L.EN_REQUEST_OVERHEAD_S] = e.request_overhead_s
        table[i, L.EN_ITERATION_OVERHEAD_S] = e.iteration_overhead_s
        table[i, L.EN_CHUNKED] = float(e.chunked_prefill)
        table[i, L.EN_MIXED] = float(e.mixed_prefill)
        table[i, L.EN_MAX_BATCHED_TOKENS] = e.max_batched_tokens
        table[i, L.EN_EAGER_OP_S] = e.eager_op_s
        table[i, L.EN_ADMISSION_INTERVAL] = e.admission_interval
        table[i, L.EN_EAGER_DECODE] = float(not e.decode_cuda_graphs)
        table[i, L.EN_PER_RANK] = float(e.per_rank_limits)
        table[i, L.EN_OVERLAP] = float(e.overlap_scheduling)
    return table


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
        table[i, L.HW_HOST_BYTES_PER_S] = hw.host_link_bytes_per_s
        write_curves(table[i], hw.efficiency_curves)
        rates[i] = [hw.rate(d) for d in L.DTYPES]
    return table, rates


def write_curves(row: np.ndarray, curves: dict) -> None:
    """Write efficiency ``curves`` {name: (work, efficiency)} into hardware table ``row``
    (``layout.CURVES`` columns), replacing what those curves held."""
    for name, (work, eff) in curves.items():
        col = L.HW_CURVES + L.CURVES.index(name) * L.CURVE_WIDTH
        work, eff = list(work), list(eff)
        pad = L.CURVE_KNOTS - len(work)  # fewer knots: the last repeats (never read)
        row[col] = len(work)
        row[col + 1:col + 1 + L.CURVE_KNOTS] = np.log10(work + work[-1:] * pad)
        row[col + 1 + L.CURVE_KNOTS:col + 1 + 2 * L.CURVE_KNOTS] = eff + eff[-1:] * pad
        row[col + 1 + 2 * L.CURVE_KNOTS:col + L.CURVE_WIDTH] = work + work[-1:] * pad


def engine_hardware(table: np.ndarray, hardware, engines) -> np.ndarray:
    """The hardware table once per engine [n_engine, rows, HW_FIELDS]: each engine's own
    kernel curves (``Engine.kernel_curves``) in place of the hardware preset's of the same
    name on the rows of the hardware they name (``table`` holds len(hardware) equal blocks
    of rows: the hardware variants); continuous serving prices with its engine's table."""
    out = np.broadcast_to(table, (len(engines), *table.shape)).copy()
    per = table.shape[0] // max(len(hardware), 1)
    for e, engine in enumerate(engines):
        for i, hw in enumerate(hardware):
            curves = engine.kernel_curves.get(hw.name)
            if curves:
                for row in out[e, i * per:(i + 1) * per]:
                    write_curves(row, curves)
    return out


def hardware_variants(table: np.ndarray, rates: np.ndarray, domain_scale, latency_scale):
    """The hardware table and rates with one row per (hardware, scaleup_domain_scale,
    link_latency_scale), in that order (C order): the scale-up domain scaled and rounded
    (at least one device), both links' per-step latency scaled. A scale <= 0 (an invalid
    what-if point, flagged by dse.evaluate) gets infinite latencies."""
    sd = np.asarray(domain_scale, float).reshape(1, -1, 1)
    sl = np.asarray(latency_scale, float).reshape(1, 1, -1)
    shape = (table.shape[0], sd.shape[1], sl.shape[2])
    out = np.broadcast_to(table[:, None, None, :], (*shape, table.shape[1])).copy()
    ok = (sd > 0) & (sl > 0)
    out[..., L.HW_SCALEUP_DOMAIN] = np.maximum(np.round(out[..., L.HW_SCALEUP_DOMAIN] * sd), 1)
    for f in (L.HW_SCALEUP_LATENCY_S, L.HW_SCALEOUT_LATENCY_S):
        out[..., f] = np.where(ok, out[..., f] * sl, np.inf)
    per_row = sd.shape[1] * sl.shape[2]
    return (out.reshape(-1, table.shape[1]), np.repeat(rates, per_row, axis=0))


def _proc_kb(path: str, key: str) -> int | None:
    """The ``key:`` field of a /proc file in bytes (given there in kB); None if unread."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def held_bytes() -> int:
    """Memory this process holds now [bytes]: VmRSS from /proc/self/status, else its peak
    (``ru_maxrss``, which a child process inherits from the parent it was forked from, so
    it can be far above what the child ever held)."""
    rss = _proc_kb("/proc/self/status", "VmRSS")
    if rss is not None:
        return rss
    import resource
    import sys
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def available_memory_bytes() -> int:
    """Memory this process may use: MemAvailable from /proc/meminfo, else physical RAM."""
    available = _proc_kb("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
