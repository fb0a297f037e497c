"""The per-configuration results table as Arrow record batches, built slab by slab.

A slab is a contiguous run of rows of the flattened grid (``GRID_DIMS`` order), so the
full table is never held in memory: each batch broadcasts only its own rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import xarray as xr

from .evaluate import REASONS
from .grid import GRID_DIMS, broadcast_flat, dtype_codes, resolve_dtypes
from .kernels.layout import BOUND_NAMES, DTYPES

# results.parquet columns in order: spec axes, then metrics
AXIS_COLUMNS = ("hardware", "model", "batch", "input_tokens", "output_tokens", "tp", "pp",
                "ep", "attention_dp", "dp", "weight_dtype", "act_dtype", "kv_dtype",
                "compute_scale",
                "memory_bandwidth_scale", "memory_capacity_scale", "scaleup_bandwidth_scale",
                "scaleout_bandwidth_scale")
METRIC_COLUMNS = ("devices", "ttft_s", "tpot_s", "e2e_latency_s", "throughput_tokens_per_s",
                  "tokens_per_s_per_device", "tokens_per_s_per_user",
                  "weight_bytes_per_device", "kv_cache_bytes_per_device",
                  "activation_bytes_per_device", "memory_bytes_per_device",
                  "cost_per_million_tokens")
INT_AXES = ("batch", "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp", "dp")


def _dict_type(n):
    return pa.dictionary(pa.int8() if n < 128 else pa.int32(), pa.string())


def schema(n_hardware: int = 1, n_model: int = 1) -> pa.Schema:
    fields = []
    for c in AXIS_COLUMNS:
        if c == "hardware":
            fields.append(pa.field(c, _dict_type(n_hardware)))
        elif c == "model":
            fields.append(pa.field(c, _dict_type(n_model)))
        elif c.endswith("_dtype"):
            fields.append(pa.field(c, _dict_type(len(DTYPES))))
        elif c in INT_AXES:
            fields.append(pa.field(c, pa.int32()))
        else:
            fields.append(pa.field(c, pa.float64()))
    for c in METRIC_COLUMNS:
        fields.append(pa.field(c, pa.int32() if c == "devices" else pa.float64()))
    fields += [pa.field("feasible", pa.bool_()),
               pa.field("infeasible_reason", _dict_type(len(REASONS))),
               pa.field("bound", _dict_type(len(BOUND_NAMES)))]
    return pa.schema(fields)


def _dictionary(indices, names, typ):
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(list(names), pa.string()))


def _index_dtype(typ):
    return np.int8 if typ.index_type == pa.int8() else np.int32


def block_batches(block: xr.Dataset, der: xr.Dataset, sch: pa.Schema, global_coords: dict,
                  max_rows: int = 1 << 20):
    """Yield record batches of a block's rows, at most ``max_rows`` each.

    Every column is built by broadcasting a small array (an axis, or a variable over only
    the dims it depends on) straight into the batch's dtype: one copy per column.
    ``global_coords`` maps hardware and model to the full sweep's names so the dictionary
    indices are the same in every batch.
    """
    shape = [block.sizes[d] for d in GRID_DIMS]
    k = len(shape)
    while k > 0 and int(np.prod(shape[k - 1:])) <= max_rows:
        k -= 1
    variables = {**{c: der[c] for c in METRIC_COLUMNS},
                 "reason": der["reason"], "feasible": der["feasible"], "bound": der["bound"]}
    # precisions: resolve 'same' on the small (weight, act, kv) sub-grid once
    dt_dims = ("weight_dtype", "act_dtype", "kv_dtype")
    w, a, kv = resolve_dtypes(*(
        dtype_codes(block[d].values).reshape([-1 if d == e else 1 for e in dt_dims])
        for d in dt_dims))
    resolved = {d: xr.DataArray(np.broadcast_to(v, tuple(block.sizes[e] for e in dt_dims)),
                                dims=dt_dims) for d, v in zip(dt_dims, (w, a, kv))}
    for outer in np.ndindex(*shape[:k]):
        sel = {GRID_DIMS[i]: slice(o, o + 1) for i, o in enumerate(outer)}
        slab_shape = tuple([1] * k + shape[k:])
        sub = block.isel(sel)

        def column(da, dtype):
            small = da.isel(sel, missing_dims="ignore")
            return broadcast_flat(small.astype(dtype, copy=False), GRID_DIMS, slab_shape)

        cols = {}
        for c in AXIS_COLUMNS:
            typ = sch.field(c).type
            if c in dt_dims:
                cols[c] = _dictionary(column(resolved[c], _index_dtype(typ)), DTYPES, typ)
            elif c in ("hardware", "model"):
                pos = [global_coords[c].index(v) for v in sub[c].values]
                da = xr.DataArray(np.array(pos), dims=c)
                cols[c] = _dictionary(broadcast_flat(da.astype(_index_dtype(typ)), GRID_DIMS,
                                                     slab_shape), global_coords[c], typ)
            else:
                cols[c] = pa.array(broadcast_flat(sub[c].astype(typ.to_pandas_dtype()),
                                                  GRID_DIMS, slab_shape))
        for name, da in variables.items():
            if name == "reason":
                vals = column(da, np.int8)
                cols["infeasible_reason"] = pa.DictionaryArray.from_arrays(
                    pa.array(vals, mask=vals == 0), pa.array(REASONS))
            elif name == "bound":
                cols["bound"] = _dictionary(column(da, np.int8), BOUND_NAMES,
                                            sch.field("bound").type)
            elif name == "cost_per_million_tokens":
                vals = column(da, np.float64)
                cols[name] = pa.array(vals, mask=np.isnan(vals))  # unknown price -> null
            else:
                cols[name] = pa.array(column(da, sch.field(name).type.to_pandas_dtype()))
        yield pa.RecordBatch.from_arrays([cols[f.name] for f in sch], schema=sch)
