"""The per-configuration results table as Arrow record batches, built slab by slab.

A slab is a contiguous run of rows of the flattened grid (``GRID_DIMS`` order), so the
full table is never held in memory: each batch broadcasts only its own rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import xarray as xr

from .evaluate import REASONS
from .grid import GRID_DIMS, dtype_codes, resolve_dtypes
from .kernels.gather import Slabs
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
NULLABLE = ("infeasible_reason", "cost_per_million_tokens")
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
    # only these hold nulls; non-nullable columns skip Parquet's definition levels, which
    # cost a third of the write time
    return pa.schema([f.with_nullable(f.name in NULLABLE) for f in fields])


def parquet_options(sch: pa.Schema) -> dict:
    """Keyword arguments of ``io.write_batches`` for (a partition of) the results table:
    min/max statistics on the axis and non-float columns (row-group pruning when a query
    filters on them); dictionary pages on the axes (a handful of distinct values each,
    run-length encoded) and on the categorical and integer columns."""
    return {
        "statistics": [f.name for f in sch
                       if f.name in AXIS_COLUMNS or not pa.types.is_floating(f.type)],
        "dictionary": [f.name for f in sch if f.name in AXIS_COLUMNS
                       or pa.types.is_dictionary(f.type) or pa.types.is_integer(f.type)],
    }


def _dictionary(indices, names):
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(list(names), pa.string()))


def _index_dtype(typ):
    return np.int8 if typ.index_type == pa.int8() else np.int32


def _expanded(da: xr.DataArray, dtype) -> np.ndarray:
    """``da``'s values in ``dtype``, dims in GRID_DIMS order, size-1 dims for the others."""
    own = [d for d in GRID_DIMS if d in da.dims]
    arr = np.asarray(da.variable.transpose(*own).values).astype(dtype, copy=False)
    return arr.reshape([da.sizes[d] if d in da.dims else 1 for d in GRID_DIMS])


def _axis(values, dim: str, dtype) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape([-1 if d == dim else 1 for d in GRID_DIMS])


def block_batches(block: xr.Dataset, der: xr.Dataset, sch: pa.Schema, global_coords: dict,
                  max_rows: int = 1 << 20):
    """Yield record batches of a block's rows, at most ``max_rows`` each.

    Every column is a small array (an axis, or a variable over only the dims it depends on)
    broadcast slab by slab straight into the batch's dtype by a parallel gather: one copy
    per column, no per-slab xarray work. ``global_coords`` maps hardware and model to the
    full sweep's names so the dictionary indices are the same in every batch.
    """
    shape = [block.sizes[d] for d in GRID_DIMS]
    k = len(shape)
    while k > 0 and int(np.prod(shape[k - 1:])) <= max_rows:
        k -= 1
    slabs = Slabs(shape, k)
    small = {}  # column -> array over GRID_DIMS (size 1 where it does not vary)
    dt_dims = ("weight_dtype", "act_dtype", "kv_dtype")
    # precisions: resolve 'same' on the small (weight, act, kv) sub-grid once
    for d, codes in zip(dt_dims, resolve_dtypes(*(
            _axis(dtype_codes(block[d].values), d, np.int64) for d in dt_dims))):
        small[d] = codes.astype(_index_dtype(sch.field(d).type))
    for c in ("hardware", "model"):
        pos = [global_coords[c].index(v) for v in block[c].values]
        small[c] = _axis(pos, c, _index_dtype(sch.field(c).type))
    for c in AXIS_COLUMNS:
        if c not in small:
            small[c] = _axis(block[c].values, c, sch.field(c).type.to_pandas_dtype())
    for c in METRIC_COLUMNS:
        small[c] = _expanded(der[c], sch.field(c).type.to_pandas_dtype())
    small["infeasible_reason"] = _expanded(der["reason"], np.int8)
    small["feasible"] = _expanded(der["feasible"], np.bool_)
    small["bound"] = _expanded(der["bound"], np.int8)
    prepared = {c: slabs.prepare(a) for c, a in small.items()}
    names = {"hardware": global_coords["hardware"], "model": global_coords["model"],
             "bound": BOUND_NAMES, **{d: DTYPES for d in dt_dims}}
    for outer in np.ndindex(*shape[:k]):
        cols = {}
        for c, prep in prepared.items():
            vals = slabs.take(prep, outer)
            if c == "infeasible_reason":
                cols[c] = pa.DictionaryArray.from_arrays(pa.array(vals, mask=vals == 0),
                                                         pa.array(REASONS))
            elif c in names:
                cols[c] = _dictionary(vals, names[c])
            elif c == "cost_per_million_tokens":
                cols[c] = pa.array(vals, mask=np.isnan(vals))  # unknown price -> null
            else:
                cols[c] = pa.array(vals)
        yield pa.RecordBatch.from_arrays([cols[f.name] for f in sch], schema=sch)
