"""Disaggregated prefill/decode serving: a reduction that pairs prefill-pool and decode-pool
points of the grid (the ``[disaggregated]`` spec section).

A disaggregated deployment runs prompts on ``x`` prefill instances and generation on ``y``
decode instances, and ships each prompt's KV cache from one to the other. Each pool is
priced with the grid's static-serving points of the same model and workload:

* a **prefill instance** is a point's devices (tp * attention_dp * pp * cp * dp) running prefill
  passes of ``batch`` prompts: ``P = dp * batch / t_p`` prompts/s, ``t_p = ttft_s`` (the
  static prefill pass) + the engine's ``iteration_overhead_s``;
* a **decode instance** runs decode steps of ``batch`` sequences: ``D = dp * batch /
  ((output_tokens - 1) * t_d)`` requests/s, ``t_d = tpot_s`` + ``iteration_overhead_s``
  (the prefill pool makes each request's first token; the decode pool the other
  ``output_tokens - 1``).

Per chunk, each pool's candidates are pre-filtered to their own frontier per group
(:func:`pool_rows`: prompts/s per device vs 1/t_p, decode tokens/s per device vs 1/t_d, by the
reduction kernel with its sources swapped); the frontiers of all chunks are merged and every
prefill candidate is paired with every decode candidate of the same model, workload,
engine, what-if values and (unless ``mixed_hardware``) hardware (:func:`pair_pools`). The
pool ratio ``x:y`` (each at most ``max_instances``, the total within ``max_devices`` where
possible) maximizes tokens/s per device: the request rate is ``min(x P, y D)``. Then

* ``ttft_s`` = ``request_overhead_s`` + ``rho_p * t_p / 2`` (the mean wait for the pass in
  progress, ``rho_p`` the prefill pool's utilization) + ``t_p`` + the KV transfer;
* KV transfer = link latency + the prompt's KV bytes (at the prefill pool's ``kv_dtype``) /
  (link bandwidth * network_efficiency * what-if scale * shards), over scale-up when both
  pools use one hardware preset and fit in one scale-up domain, else over scale-out;
  ``shards`` = the fewer of the two pools' KV shards per request (each device sends or
  receives its own shard; an MLA latent is replicated over tp: one shard);
* ``tpot_s`` = ``t_d``; ``tokens_per_s_per_device`` = output_tokens * rate / (x * devices_p
  + y * devices_d); cost counts both pools' devices at their own price;
* ``energy_per_token_j`` = (x * devices_p * P_p + y * devices_d * P_d) / (output_tokens *
  rate), each pool's devices drawing idle power plus their busy share of the dynamic range
  (README "Cost and energy"): P_p = idle + (TDP - idle) * rho_p (prefill passes at TDP),
  P_d = idle + (TDP - idle) * u * rho_d (u by the decode point's ``bound``).

Assumptions: transfers overlap compute (engines move KV with RDMA beside the next pass); the
pool that is not the bottleneck is priced at its point's batch (an upper bound on its pass
time); the prefill pass is one pass of ``batch`` whole prompts (the static pass: no chunking
by the engine's token budget); a pool's memory check is the static one (``batch`` sequences
at full context). Groups with ``output_tokens = 1`` need no decode pool and have no rows.
"""
from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from . import compile as comp
from .axes import DEVICE_AXES, SERVING
from .evaluate import (POWER_SHARE_MEMORY_BOUND, REASON_CODE, REASONS, WHAT_IF_DIMS,
                       idle_watts)
from .grid import GROUP_DIMS, STRATEGY_DIMS
from .kernels import layout as L
from .kernels.objectives import (N_LIMITS, N_SOURCES, TPOT, TTFT, flatten_front,
                                 grouped_reduce)
from .kernels.pareto import pareto_sorted
from .reduce import PARETO_SCHEMA, Points, point_rows

ROLES = ("prefill", "decode")
# strategy axes a pool point does not depend on: dp (instances are counted per point) and
# the chunked-prefill budget (static passes ignore it)
REPEATS = ("dp", "max_batched_tokens")
POOL_AXES = tuple(d for d in STRATEGY_DIMS if d != "max_batched_tokens")
# what pairs a prefill with a decode candidate (with hardware unless mixed_hardware)
# the pools' columns while pairing (p_*, d_*) and in the output
POOL_PREFIX = {"p_": "prefill_", "d_": "decode_"}
# pairs priced at once (about 0.5 kB each while pairing)
PAIR_BATCH = 1 << 20
PAIR_KEYS = ("model", "engine", "input_tokens", "output_tokens", *WHAT_IF_DIMS)


def _default_objectives():
    """The reduction kernel's objective arguments for tokens/s per device and per user."""
    from .objectives import Objectives
    best_code, best_sign, codes, signs = Objectives().codes()
    return (best_code, best_sign, np.asarray(codes, dtype=np.int64),
            np.asarray(signs, dtype=np.float64))


_DEFAULT_OBJECTIVES = _default_objectives()


def pool_frontier(pts: Points, role: str):
    """(group, strategy) flat indices of each static-serving group's ``role`` frontier.

    The reduction kernel (:func:`dse.kernels.objectives.grouped_reduce`) with its sources
    swapped: for prefill, ttft as both times and one output token (x = dp * batch / (ttft *
    devices), y = 1 / ttft); for decode, tpot as both and two output tokens (x = dp * batch /
    (tpot * devices), y = 1 / tpot). Feasibility is the static rule."""
    serving = pts.block["serving"].values
    static = np.flatnonzero(serving == SERVING[0])
    n_other = int(np.prod([pts.sizes[d] for d in GROUP_DIMS[GROUP_DIMS.index("serving") + 1:]]))
    g_serving = (np.arange(len(pts.group_offsets)) // n_other) % pts.sizes["serving"]
    groups = np.flatnonzero(np.isin(g_serving, static))
    if groups.size == 0:  # a chunk of continuous-serving groups only
        return groups, groups
    src = TTFT if role == "prefill" else TPOT
    offs = []
    for table in (pts.group_offsets[groups], pts.outer_offsets, pts.inner_offsets):
        table = table.copy()
        table[:, TTFT] = table[:, TPOT] = table[:, src]
        offs.append(table)
    flat = list(pts.flat[:N_SOURCES])
    flat[TTFT] = flat[TPOT] = flat[src]
    n_strat = pts.n_strategies
    front = np.empty((len(groups), n_strat), dtype=np.int32)
    n_front = np.empty(len(groups), dtype=np.int64)
    best = np.empty(len(groups), dtype=np.int64)
    reasons = np.zeros((len(groups), len(REASONS)), dtype=np.int64)
    out = np.full(len(groups), 1 if role == "prefill" else 2, dtype=np.int64)
    grouped_reduce(offs[0], out, offs[1], offs[2],
                   *pts.strategy_products(("dp", "batch")),
                   *pts.strategy_products(DEVICE_AXES), *pts.twins(), *flat,
                   REASON_CODE["what_if_scale_not_positive"], REASON_CODE["out_of_memory"],
                   np.iinfo(np.int64).max, np.inf, np.inf, *_DEFAULT_OBJECTIVES,
                   4 * numba.get_num_threads(), front, n_front, best,
                   np.empty((len(groups), N_LIMITS)), reasons)
    g, s = flatten_front(front, n_front)
    g = groups[g]
    # one point per (group, strategy without dp and the token budget): the repeats tie
    pos = np.array(np.unravel_index(s, [pts.sizes[d] for d in STRATEGY_DIMS]))
    for d in REPEATS:
        pos[STRATEGY_DIMS.index(d)] = 0
    key = np.ravel_multi_index(pos, [pts.sizes[d] for d in STRATEGY_DIMS])
    _, first = np.unique(np.stack([g, key]), axis=1, return_index=True)
    first = np.sort(first)
    return g[first], s[first]


def pool_rows(block, place=None) -> dict:
    """Each role's frontier rows (:data:`dse.reduce.PARETO_SCHEMA`) of an evaluated block."""
    pts = Points(block)
    return {role: point_rows(pts, *pool_frontier(pts, role), place) for role in ROLES}


def lookup(names, presets: dict, field: str) -> np.ndarray:
    """``presets[name].field`` for every entry of ``names`` (float64; NaN for a 0 price or
    TDP); ``field`` None: ``presets[name]`` itself."""
    cat = pd.Categorical(names)
    values = np.array([presets[u] if field is None else getattr(presets[u], field)
                       for u in cat.categories], dtype=float)
    if field in ("price_per_device_hour_usd", "tdp_watts"):
        values[values == 0] = np.nan  # unknown price or TDP: a null, as in the other tables
    return values[cat.codes]


def pool_rates(frame: pd.DataFrame, role: str, engines: dict) -> tuple:
    """(pass time t [s], requests/s per instance) of pool rows (:func:`pool_rows`'s
    columns, as pandas) with the engines' iteration overhead."""
    it = lookup(frame["engine"], engines, "iteration_overhead_s")
    if role == "prefill":
        t = frame["ttft_s"].to_numpy(float) + it
        return t, frame["dp"].to_numpy(float) * frame["batch"].to_numpy(float) / t
    t = frame["tpot_s"].to_numpy(float) + it
    n = frame["output_tokens"].to_numpy(float) - 1.0
    return t, frame["dp"].to_numpy(float) * frame["batch"].to_numpy(float) / (n * t)


def merge_pool(parts, role: str, engines: dict) -> pd.DataFrame:
    """Per group, the frontier of a role's per-chunk rows (one row per pool strategy)."""
    table = pa.concat_tables(parts)
    frame = table.to_pandas()
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(str)
    if frame.empty:
        return frame
    t, rate = pool_rates(frame, role, engines)
    x = rate / frame["devices"].to_numpy(float)
    y = 1.0 / t
    g = frame["_group"].to_numpy()
    order = np.lexsort((frame["_strategy"].to_numpy(), -y, -x, g))
    keep = order[pareto_sorted(g[order], x[order], y[order])]
    frame = frame.iloc[np.sort(keep)]
    return frame.drop_duplicates(["_group", *[d for d in POOL_AXES if d != "dp"]])


def _choose_ratio(rate_p, rate_d, dev_p, dev_d, max_instances: int, cap: float):
    """Instances (x, y) per pair maximizing rate / devices, with rate = min(x rate_p,
    y rate_d), x and y in 1..max_instances and x dev_p + y dev_d <= cap where some ratio
    fits; ``fits``: whether the chosen one does."""
    n = len(rate_p)
    best = np.full(n, -np.inf)
    bx, by = np.ones(n), np.ones(n)
    fits = np.zeros(n, dtype=bool)
    for y in range(1, max_instances + 1):
        ideal = y * rate_d / rate_p
        for x in (np.floor(ideal), np.ceil(ideal)):
            x = np.clip(x, 1, max_instances)
            devs = x * dev_p + y * dev_d
            score = np.minimum(x * rate_p, y * rate_d) / devs
            ok = devs <= cap
            # a ratio that fits the cap beats one that does not; then the higher score
            better = (ok & ~fits) | ((ok == fits) & (score > best))
            best = np.where(better, score, best)
            bx, by = np.where(better, x, bx), np.where(better, y, by)
            fits |= ok
    return bx, by, fits


def _kv_bytes(model, tp, pp, tokens, kv_bytes):
    """One prompt's KV cache on one device of a pool with (tp, pp) [bytes]."""
    return comp.kv_cache_bytes_per_device(model, tp, pp, 1.0, tokens, kv_bytes)


def pair_pools(prefill: pd.DataFrame, decode: pd.DataFrame, spec,
               max_pairs: int = PAIR_BATCH) -> pa.Table:
    """Every prefill candidate paired with every decode candidate of its kind; the rows of
    each group's frontier (tokens/s per device vs per user) and its best pairing under
    ``spec.constraints``, as :data:`DISAGGREGATED_SCHEMA`. Whole groups are paired in
    batches of about ``max_pairs`` pairs, so memory holds one batch's pairs."""
    keys = list(PAIR_KEYS) + ([] if spec.disaggregated.mixed_hardware else ["hardware"])
    decode = decode[decode["output_tokens"] > 1]
    if prefill.empty or decode.empty:
        return DISAGGREGATED_SCHEMA.empty_table()
    both = pd.concat([prefill[keys], decode[keys]], ignore_index=True)
    ids = both.groupby(keys, sort=True, observed=True).ngroup().to_numpy()
    gp, gd = ids[:len(prefill)], ids[len(prefill):]
    n_groups = int(ids.max()) + 1
    pairs = (np.bincount(gp, minlength=n_groups) * np.bincount(gd, minlength=n_groups))
    tables, start, total = [], 0, 0
    for g in range(n_groups):
        total += int(pairs[g])
        if total >= max_pairs or g == n_groups - 1:
            sel = slice(start, g + 1)
            tables.append(_pair_groups(prefill[(gp >= sel.start) & (gp < sel.stop)],
                                       decode[(gd >= sel.start) & (gd < sel.stop)], spec, keys))
            start, total = g + 1, 0
    return pa.concat_tables(tables)


def _pair_groups(prefill: pd.DataFrame, decode: pd.DataFrame, spec, keys) -> pa.Table:
    """:func:`pair_pools` of some whole groups."""
    dis = spec.disaggregated
    if prefill.empty or decode.empty:
        return DISAGGREGATED_SCHEMA.empty_table()
    engines = {e.name: e for e in spec.engines}
    hardware = {h.name: h for h in spec.hardware}
    models = {m.name: m for m in spec.models}
    pool_cols = ["hardware", *POOL_AXES, "devices", "ttft_s", "tpot_s", "bound"]
    p = prefill[keys + [c for c in pool_cols if c not in keys]].add_prefix("p_")
    d = decode[keys + [c for c in pool_cols if c not in keys]].add_prefix("d_")
    m = p.merge(d, left_on=["p_" + k for k in keys], right_on=["d_" + k for k in keys])
    if m.empty:
        return DISAGGREGATED_SCHEMA.empty_table()
    for k in keys:
        m[k] = m.pop("p_" + k)
        del m["d_" + k]
    if "hardware" in keys:
        m["p_hardware"] = m["d_hardware"] = m["hardware"]
    t_p, rate_p = pool_rates(m.rename(columns=lambda c: c[2:] if c.startswith("p_") else c),
                             "prefill", engines)
    t_d, rate_d = pool_rates(m.rename(columns=lambda c: c[2:] if c.startswith("d_") else c),
                             "decode", engines)
    dev_p, dev_d = m["p_devices"].to_numpy(float), m["d_devices"].to_numpy(float)
    cons = spec.constraints
    cap = cons.max_devices if cons.max_devices is not None else np.inf
    x, y, fits = _choose_ratio(rate_p, rate_d, dev_p, dev_d, dis.max_instances, cap)
    rate = np.minimum(x * rate_p, y * rate_d)
    devices = x * dev_p + y * dev_d
    rho_p = rate / (x * rate_p)
    transfer, link = kv_transfer(m, devices, hardware, models,
                                 {q.name: q for q in spec.quants})
    req = lookup(m["engine"], engines, "request_overhead_s")
    out = m["output_tokens"].to_numpy(float)
    ttft = req + rho_p * t_p / 2.0 + t_p + transfer
    price = lambda col: lookup(m[col], hardware, "price_per_device_hour_usd")
    throughput = out * rate
    rho_d = rate / (y * rate_d)
    tdp = lambda col: lookup(m[col], hardware, "tdp_watts")
    idle = lambda col: lookup(m[col], {n: idle_watts(h) for n, h in hardware.items()}, None)
    share_d = np.where(m["d_bound"].astype(str).to_numpy() == "compute", 1.0,
                       POWER_SHARE_MEMORY_BOUND)
    power_p = idle("p_hardware") + (tdp("p_hardware") - idle("p_hardware")) * rho_p
    power_d = idle("d_hardware") + (tdp("d_hardware") - idle("d_hardware")) * share_d * rho_d
    cols = {
        "prefill_instances": x.astype(np.int64), "decode_instances": y.astype(np.int64),
        "devices": devices.astype(np.int64), "ttft_s": ttft, "tpot_s": t_d,
        "prefill_pass_s": t_p, "kv_transfer_s": transfer, "kv_transfer_link": link,
        "e2e_latency_s": ttft + (out - 1.0) * t_d, "requests_per_s": rate,
        "throughput_tokens_per_s": throughput,
        "tokens_per_s_per_device": throughput / devices, "tokens_per_s_per_user": 1.0 / t_d,
        "prefill_utilization": rho_p, "decode_utilization": rho_d,
        "cost_per_million_output_tokens": (x * dev_p * price("p_hardware") + y * dev_d
                                           * price("d_hardware")) / 3600.0 / throughput
        * 1e6,
        "energy_per_token_j": (x * dev_p * power_p + y * dev_d * power_d) / throughput,
    }
    for k, v in cols.items():
        m[k] = v
    ok = (fits & (ttft <= (cons.max_ttft_s or np.inf))
          & (t_d <= (cons.max_tpot_s or np.inf)) & (devices <= cap))
    return _rows(m, keys, ok)


def kv_transfer(m: pd.DataFrame, devices, hardware: dict, models: dict,
                quants: dict | None = None):
    """(KV transfer seconds, link name) per pair: the prompt's KV at the prefill pool's
    KV precision (its quant recipe's, ``p_quant`` in ``quants``, else its kv_dtype) over
    the fewer of the two pools' shards per request."""
    seconds = np.empty(len(m))
    kb = lookup(m["p_kv_dtype"], {d: b for d, b in zip(L.DTYPES, L.DTYPE_BYTES)}, "real")
    if quants and "p_quant" in m:
        cat = pd.Categorical(m["p_quant"])
        recipe = np.array([L.DTYPE_BYTES[L.DTYPE_INDEX[quants[str(u)].kv_cache]]
                           if quants[str(u)].kv_cache else np.nan for u in cat.categories])
        kb = np.where(np.isnan(recipe[cat.codes]), kb, recipe[cat.codes])
    s = m["input_tokens"].to_numpy(float)
    hw = {side: {f: lookup(m[f"{side}_hardware"], hardware, f) for f in (
        "scaleup_bytes_per_s", "scaleout_bytes_per_s", "scaleup_latency_s",
        "scaleout_latency_s", "network_efficiency", "scaleup_domain_devices")}
        for side in ("p", "d")}
    same = (m["p_hardware"] == m["d_hardware"]).to_numpy(bool)
    up = same & (devices <= hw["p"]["scaleup_domain_devices"])
    low = {f: np.minimum(hw["p"][f], hw["d"][f]) for f in (
        "scaleup_bytes_per_s", "scaleout_bytes_per_s", "network_efficiency")}
    bw = low["network_efficiency"] * np.where(
        up, low["scaleup_bytes_per_s"] * m["scaleup_bandwidth_scale"].to_numpy(float),
        low["scaleout_bytes_per_s"] * m["scaleout_bandwidth_scale"].to_numpy(float))
    latency = np.where(up, np.maximum(hw["p"]["scaleup_latency_s"], hw["d"]["scaleup_latency_s"]),
                       np.maximum(hw["p"]["scaleout_latency_s"], hw["d"]["scaleout_latency_s"]))
    for name, idx in m.groupby("model", observed=True).indices.items():
        model = models[name]
        total = _kv_bytes(model, 1.0, 1.0, s[idx], kb[idx])
        shards = [total / _kv_bytes(model, m[f"{side}_tp"].to_numpy(float)[idx],
                                    m[f"{side}_pp"].to_numpy(float)[idx], s[idx], kb[idx])
                  for side in ("p", "d")]
        seconds[idx] = latency[idx] + total / (np.minimum(*shards) * bw[idx])
    return seconds, np.where(up, "scaleup", "scaleout")


def _rows(m: pd.DataFrame, keys: list, ok: np.ndarray) -> pa.Table:
    """Per pairing group: its frontier rows and its best pairing (the most tokens/s per
    device among ``ok``; ties: the shorter TTFT, then the first pair), sorted by group, then
    tokens/s per device descending. Of pairs tied in both frontier objectives (a pool that
    is not the bottleneck at several batches), the frontier keeps the one of shortest
    TTFT."""
    g = m.groupby(keys, sort=True).ngroup().to_numpy()
    xv = m["tokens_per_s_per_device"].to_numpy()
    yv = m["tokens_per_s_per_user"].to_numpy()
    order = np.lexsort((m["ttft_s"].to_numpy(), -yv, -xv, g))
    front = np.zeros(len(m), dtype=bool)
    kept = order[pareto_sorted(g[order], xv[order], yv[order])]
    first = np.ones(kept.size, dtype=bool)  # the first (shortest TTFT) of identical points
    first[1:] = ((g[kept][1:] != g[kept][:-1]) | (xv[kept][1:] != xv[kept][:-1])
                 | (yv[kept][1:] != yv[kept][:-1]))
    front[kept[first]] = True
    best = np.zeros(len(m), dtype=bool)
    cand = order[ok[order]]
    if cand.size:
        first = np.ones(cand.size, dtype=bool)
        first[1:] = g[cand][1:] != g[cand][:-1]
        best[cand[first]] = True
    m = m.assign(on_frontier=front, best=best)
    keep = order[(front | best)[order]]
    m = m.iloc[keep].rename(columns=lambda c: POOL_PREFIX.get(c[:2], "") + c[2:]
                            if c[:2] in POOL_PREFIX else c)
    arrays = []
    for f in DISAGGREGATED_SCHEMA:
        col = m[f.name]
        if pa.types.is_dictionary(f.type):
            arrays.append(pa.array(col.astype(str).tolist(), pa.string()).dictionary_encode())
        else:
            values = col.to_numpy(dtype=f.type.to_pandas_dtype())
            nulls = np.isnan(values) if values.dtype.kind == "f" else None
            arrays.append(pa.array(values, mask=nulls if nulls is not None and nulls.any()
                                   else None))
    return pa.Table.from_arrays(arrays, schema=DISAGGREGATED_SCHEMA)


def _schema() -> pa.Schema:
    """disaggregated.parquet's columns: the pairing group, the two pools' strategies
    (``prefill_*``, ``decode_*``, typed as the Pareto rows; ``*_devices`` per instance),
    then the pairing."""
    strings = pa.dictionary(pa.int32(), pa.string())
    typed = {f.name: f.type for f in PARETO_SCHEMA}
    fields = [pa.field(k, typed[k]) for k in PAIR_KEYS]
    fields += [pa.field("on_frontier", pa.bool_()), pa.field("best", pa.bool_())]
    for side in POOL_PREFIX.values():
        fields += [pa.field(f"{side}{c}", typed[c]) for c in ("hardware", *POOL_AXES)]
        fields += [pa.field(f"{side}devices", pa.int64())]
    fields += [pa.field(n, pa.int64()) for n in ("prefill_instances", "decode_instances",
                                                 "devices")]
    fields += [pa.field(n, pa.float64()) for n in (
        "ttft_s", "tpot_s", "prefill_pass_s", "kv_transfer_s")]
    fields += [pa.field("kv_transfer_link", strings)]
    fields += [pa.field(n, pa.float64()) for n in (
        "e2e_latency_s", "requests_per_s", "throughput_tokens_per_s",
        "tokens_per_s_per_device", "tokens_per_s_per_user", "prefill_utilization",
        "decode_utilization", "cost_per_million_output_tokens", "energy_per_token_j")]
    return pa.schema(fields)


DISAGGREGATED_SCHEMA = _schema()


def _pair_columns() -> dict:
    """disaggregated.parquet's own columns: name -> (unit, description); the pairing keys
    and the metrics the pairs share with the results table are described there."""
    from .glossary import describe
    pool = {}
    for side in ROLES:
        for c in ("hardware", *POOL_AXES):
            d = describe(c)
            pool[f"{side}_{c}"] = (d["unit"], f"{side} pool: {d['description']}")
        pool[f"{side}_devices"] = ("devices", f"devices of one {side} instance (tp * "
                                   "attention_dp * pp * cp * dp of its point)")
        pool[f"{side}_instances"] = ("count", f"{side} instances of the pairing")
        pool[f"{side}_utilization"] = ("fraction (0 to 1)", f"busy share of the {side} "
                                       "pool at the pairing's request rate")
    return pool | {
        "on_frontier": ("", "the pairing is on its group's frontier of tokens/s per "
                        "device vs tokens/s per user"),
        "best": ("", "the group's best pairing (the most tokens/s per device within "
                 "[constraints])"),
        "devices": ("devices", "prefill_instances * prefill_devices + decode_instances * "
                    "decode_devices"),
        "ttft_s": ("s", "time to first token: request overhead + the mean wait for the "
                   "prefill pass in progress + the pass + the KV transfer"),
        "tpot_s": ("s", "time per output token: the decode pool's step"),
        "prefill_pass_s": ("s", "one prefill pass of the prefill point (+ the engine's "
                           "iteration overhead)"),
        "kv_transfer_s": ("s", "shipping one prompt's KV cache from the prefill to the "
                          "decode pool"),
        "kv_transfer_link": ("", "the link the KV cache crosses: scaleup or scaleout"),
    }


PAIR_COLUMNS = _pair_columns()


def closed_loop(clients: float, n: float, x: int, y: int, t_p, t_d, max_prefill_batch: float,
                slots: float, request_overhead_s: float, transfer_s: float) -> dict:
    """A fixed deployment (``x`` prefill, ``y`` decode instances) under ``clients`` closed-
    loop clients whose requests decode ``n`` tokens after the first: the steady state.

    ``t_p(b)``, ``t_d(b)``: pass times [s] of a prefill instance at b prompts and a decode
    instance at b sequences (iteration overhead included); ``max_prefill_batch``: prompts in
    one prefill pass (the engine's token budget); ``slots``: sequences a decode instance
    holds. For a request rate λ, each decode instance runs b_d = λ n t_d(b_d) / y sequences
    (Little's law, at most ``slots``) and each prefill instance batches the prompts that
    arrive during a pass, b_p = λ t_p(b_p) / x (at least 1, at most the budget), busy a
    share ρ = λ t_p(b_p) / (x b_p); TTFT = overhead + ρ t_p / 2 + t_p + transfer as in
    :func:`pair_pools`. λ solves clients = λ (TTFT + n t_d) (bisection). Where a pool
    saturates first, λ is its capacity and the clients beyond it queue before prefill
    (their wait is in TTFT).

    Returns ``requests_per_s``, ``ttft_s``, ``tpot_s``, ``prefill_batch``, ``decode_batch``
    and ``saturated`` (the pool that limits the rate, or "").
    """
    def fixed(f, lo, hi):
        b = lo
        for _ in range(60):
            b_new = min(max(f(b), lo), hi)
            if abs(b_new - b) <= 1e-9 * max(b, 1.0):
                break
            b = b_new
        return b

    def state(lam):
        b_d = fixed(lambda b: lam * n * t_d(b) / y, 0.0, slots)
        b_p = fixed(lambda b: lam * t_p(b) / x, 1.0, max_prefill_batch)
        rho_p = lam * t_p(b_p) / (x * b_p)
        full_d = lam * n * t_d(b_d) / y > slots * (1 + 1e-9)
        ttft = request_overhead_s + min(rho_p, 1.0) * t_p(b_p) / 2 + t_p(b_p) + transfer_s
        return b_p, b_d, ttft, t_d(max(b_d, 1.0)), ("prefill" if rho_p > 1 + 1e-9 else
                                                    "decode" if full_d else "")

    def e2e(lam):
        _, _, ttft, tpot, _ = state(lam)
        return ttft + n * tpot

    # the highest rate both pools sustain
    lo, hi = 0.0, max(x * max_prefill_batch / t_p(max_prefill_batch), 1e-12)
    while not state(hi)[4] and hi < 1e12:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if state(mid)[4] else (mid, hi)
    cap = lo
    if cap * e2e(cap) < clients:  # saturated: the rest of the clients queue
        b_p, b_d, ttft, tpot, which = state(cap)
        ttft += clients / cap - (ttft + n * tpot)
        return dict(requests_per_s=cap, ttft_s=ttft, tpot_s=tpot, prefill_batch=b_p,
                    decode_batch=b_d, saturated=state(hi)[4])
    lo, hi = 0.0, cap
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid * e2e(mid) < clients else (lo, mid)
    b_p, b_d, ttft, tpot, _ = state(lo)
    return dict(requests_per_s=lo, ttft_s=ttft, tpot_s=tpot, prefill_batch=b_p,
                decode_batch=b_d, saturated="")


def first_wave(prompts: int, x: int, t_p, max_prefill_batch: float,
               request_overhead_s: float, transfer_s: float) -> float:
    """Mean TTFT [s] of ``prompts`` requests that reach an idle prefill pool of ``x``
    instances at once: a benchmark run's first wave, its clients all starting together.

    The router deals the prompts out in turn (instance w gets ``prompts // x`` or one more);
    each instance runs passes of at most ``max_prefill_batch`` prompts back to back, and a
    prompt's first token leaves with its pass: the k-th pass of an instance ends at
    t_p(b_1) + ... + t_p(b_k). TTFT = ``request_overhead_s`` + the end of its pass +
    ``transfer_s``. Assumption: later requests arrive as earlier ones finish, spread over
    the time the first wave took to drain, so only the first wave meets a full backlog
    (the steady state of :func:`closed_loop` prices the rest).
    """
    if prompts < 1:
        raise ValueError(f"first_wave: prompts must be >= 1, got {prompts}")
    size = max(1, int(max_prefill_batch))
    total = 0.0
    base, extra = divmod(int(prompts), int(x))
    for count, instances in ((base + 1, extra), (base, x - extra)):
        if count == 0 or instances == 0:
            continue
        clock, left, ends = 0.0, count, 0.0
        while left > 0:
            b = min(size, left)
            clock += float(t_p(b))
            ends += b * clock
            left -= b
        total += instances * ends
    return request_overhead_s + transfer_s + total / prompts


def run_ttft(prompts: int, clients: int, first_s: float, steady_s: float) -> float:
    """Mean TTFT over a benchmark run of ``prompts`` requests from ``clients`` closed-loop
    clients: the first wave (``min(clients, prompts)`` requests at ``first_s``) and the rest
    at the steady state's ``steady_s``."""
    wave = min(clients, prompts)
    return (wave * first_s + (prompts - wave) * steady_s) / prompts
