"""The per-configuration results table as Arrow record batches, built slab by slab.

A slab is a contiguous run of rows of the flattened grid (``GRID_DIMS`` order), so the
full table is never held in memory: each batch broadcasts only its own rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import xarray as xr

from .axes import AXES, AXIS, names
from .evaluate import METRIC_INPUTS, REASONS, derived_metrics
from .grid import GRID_DIMS, broadcast_shape, dtype_codes, resolve_dtypes
from .kernels.gather import Slabs
from .kernels.layout import BOUND_NAMES, DTYPES
from .glossary import describe
from .metrics import BREAKDOWN_METRICS, METRIC, METRICS, NUMERIC

# results.parquet columns in order: spec axes (dse.axes), then metrics (dse.metrics)
AXIS_COLUMNS = names()
METRIC_COLUMNS = NUMERIC
INT_AXES = names(kind="int")
# the names behind each categorical column's dictionary indices
CATEGORY_NAMES = {"infeasible_reason": REASONS, "bound": BOUND_NAMES,
                  "prefill_bound": BOUND_NAMES, **{d: DTYPES for d in names(kind="dtype")},
                  **{d: AXIS[d].choices for d in names(kind="choice")}}
PRESET_AXES = names(kind="preset")  # their names come with the sweep (global_coords)
# The reason codes of combinations that are not valid configurations (ep on a dense model,
# ep not dividing tp, a precision the hardware has no math for, ...): every reason but
# out_of_memory, which a real configuration has on a device too small for it. ``dse sweep
# --valid-only`` leaves them out of configurations/.
INVALID_CODES = tuple(i for i, r in enumerate(REASONS) if r and r != "out_of_memory")


def _dict_type(n):
    return pa.dictionary(pa.int8() if n < 128 else pa.int32(), pa.string())


_ARROW = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
          "int": pa.int64(), "scale": pa.float64(),
          "fraction": pa.float64()}


def field_metadata(name: str) -> dict:
    """Arrow field metadata of a column: its description and unit (``""`` for names and
    flags), from the axis registry or the metrics table (:func:`dse.glossary.describe`),
    so a BI tool or notebook reading the Parquet files sees what each column means."""
    return describe(name)


def schema(n_presets: dict | None = None, breakdown: bool = False) -> pa.Schema:
    """The results table's schema: the registry's axes, then the metrics table's columns
    (with ``breakdown``, then ``metrics.BREAKDOWN_METRICS``'). Categorical columns are
    dictionary-encoded (a preset axis with ``n_presets[axis]`` names, default 1)."""
    n_presets = n_presets or {}
    fields = []
    for a in AXES:
        typ = (_dict_type(n_presets.get(a.name, 1)) if a.kind == "preset" else
               _dict_type(len(CATEGORY_NAMES[a.name])) if a.kind in ("dtype", "choice") else
               _ARROW[a.kind])
        fields.append(pa.field(a.name, typ, metadata=field_metadata(a.name)))
    for m in (*METRICS, *(BREAKDOWN_METRICS if breakdown else ())):
        typ = _dict_type(len(CATEGORY_NAMES[m.name])) if m.dtype == "category" \
            else _ARROW[m.dtype]
        # only nullable metrics hold nulls; non-nullable columns skip Parquet's definition
        # levels, which cost a third of the write time
        fields.append(pa.field(m.name, typ, nullable=m.nullable,
                               metadata=field_metadata(m.name)))
    return pa.schema([f if f.name in METRIC else f.with_nullable(False) for f in fields])


# A column whose value stays the same for at least this many consecutive rows is written
# with plain encoding: zstd folds the runs nearly as small as a dictionary would, without
# hashing every value. Measured on a 6.6 M-row partition of benchmarks/sweep_200m.toml
# (pyarrow 26, one core): a dictionary costs 70-90 ms per such column, plain 25-50 ms, and
# the file grows by 1.5%. Columns that change every few rows keep the dictionary (plain
# zstd would be 3-50x larger and no faster there). Integer columns (int64) always take the
# dictionary: plain int64 pages fold badly under zstd (on a 1.3 M-row partition of
# benchmarks/sweep_10m.toml the nine integer columns took 3.9 MB and 0.34 s plain, 23 kB
# and 0.09 s as dictionaries).
PLAIN_MIN_RUN = 64
# Rows per record batch of block_batches, and so per row group of a results file.
BATCH_ROWS = 1 << 20


def parquet_options(sch: pa.Schema, runs: dict | None = None,
                    group_rows: int | None = None) -> dict:
    """Keyword arguments of ``io.write_batches`` for (a partition of) the results table.

    Dictionary pages on the categorical and integer columns, and on the (float) axis
    columns unless ``runs`` (:func:`run_lengths`) says a column repeats each value for at
    least ``PLAIN_MIN_RUN`` rows. Min/max statistics on the axis and non-float columns, and
    with ``group_rows`` (rows per row group, :func:`batch_rows`) only on those whose runs
    are at least a row group long: only they can let a query skip row groups, and the
    others' statistics cost a tenth of the write time.
    """
    runs = runs or {}

    def long_runs(name, rows):
        return runs.get(name, 1) >= rows

    return {
        "statistics": [f.name for f in sch
                       if (f.name in AXIS_COLUMNS or not pa.types.is_floating(f.type))
                       and (group_rows is None or long_runs(f.name, group_rows))],
        "dictionary": [f.name for f in sch if pa.types.is_dictionary(f.type)
                       or pa.types.is_integer(f.type)
                       or (f.name in AXIS_COLUMNS and not long_runs(f.name, PLAIN_MIN_RUN))],
    }


def _packed(flags: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(flags, bitorder="little"))  # Arrow's bit order


def _with_nulls(vals: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``vals`` as an Arrow array (no copy), null where not ``valid``. The validity bitmap
    is packed here: ``pa.array(vals, mask=...)`` takes ~100x longer for int8 values."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(vals.dtype), len(vals),
                                 [_packed(valid), pa.py_buffer(vals)])


def _bits(flags: np.ndarray) -> pa.Array:
    """A boolean array from numpy bools (packed here: 10x faster than ``pa.array``)."""
    return pa.Array.from_buffers(pa.bool_(), len(flags), [None, _packed(flags)])


def _index_dtype(typ):
    return np.int8 if typ.index_type == pa.int8() else np.int32


def _expanded(da: xr.DataArray, dtype) -> np.ndarray:
    """``da``'s values in ``dtype``, dims in GRID_DIMS order, size-1 dims for the others."""
    own = [d for d in GRID_DIMS if d in da.dims]
    arr = np.asarray(da.variable.transpose(*own).values).astype(dtype, copy=False)
    return arr.reshape([da.sizes[d] if d in da.dims else 1 for d in GRID_DIMS])


def _axis(values, dim: str, dtype) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape([-1 if d == dim else 1 for d in GRID_DIMS])


def _grid_array(block: xr.Dataset, name: str) -> np.ndarray:
    """An axis or variable of ``block`` over GRID_DIMS (size 1 where it does not vary)."""
    if name in GRID_DIMS:
        return _axis(block[name].values, name, block[name].dtype)
    return _expanded(block[name], block[name].dtype)


def columns(block: xr.Dataset, sch: pa.Schema, global_coords: dict) -> dict[str, np.ndarray]:
    """Every results column of ``block``'s rows as a small array over GRID_DIMS (size 1
    on the dims it does not vary over), in the dtype of its batch column (dictionary
    indices for categorical columns). The metrics are computed here with numpy
    (:func:`dse.evaluate.derived_metrics`). ``global_coords`` maps the preset axes to the
    full sweep's names so the dictionary indices are the same in every batch."""
    small = {}
    dt_dims = ("weight_dtype", "act_dtype", "kv_dtype")
    # precisions: resolve 'same' on the small (weight, act, kv) sub-grid once
    for d, codes in zip(dt_dims, resolve_dtypes(*(
            _axis(dtype_codes(block[d].values), d, np.int64) for d in dt_dims))):
        small[d] = codes.astype(_index_dtype(sch.field(d).type))
    for c in PRESET_AXES:
        pos = [global_coords[c].index(v) for v in block[c].values]
        small[c] = _axis(pos, c, _index_dtype(sch.field(c).type))
    for c in names(kind="choice"):  # serving, offload: indices into the axis' choices
        small[c] = _axis([AXIS[c].choices.index(v) for v in block[c].values], c,
                         _index_dtype(sch.field(c).type))
    for c in AXIS_COLUMNS:
        if c not in small:
            small[c] = _axis(block[c].values, c, sch.field(c).type.to_pandas_dtype())
    der = derived_metrics({n: _grid_array(block, n) for n in METRIC_INPUTS})
    for c in ("ttft_s", "tpot_s", "weight_bytes_per_device", "kv_cache_bytes_per_device",
              "activation_bytes_per_device"):
        der[c] = _grid_array(block, c)
    for c in METRIC_COLUMNS:
        small[c] = der[c].astype(sch.field(c).type.to_pandas_dtype(), copy=False)
    small["infeasible_reason"] = der["reason"].astype(np.int8)
    small["feasible"] = der["feasible"]
    small["bound"] = _grid_array(block, "bound").astype(np.int8)
    for m in BREAKDOWN_METRICS:  # --breakdown: the block carries them
        if m.name in sch.names:
            small[m.name] = _grid_array(block, m.name).astype(
                np.int8 if m.dtype == "category" else np.float64, copy=False)
    return small


def run_lengths(cols: dict[str, np.ndarray]) -> dict[str, int]:
    """Rows per run of one value, per column of :func:`columns`: the rows of the
    flattened block (GRID_DIMS order) spanned by the dims inside the innermost dim the
    column varies over. A column may repeat a value across runs too; this is a lower
    bound on its run length."""
    shape = broadcast_shape(*(a.shape for a in cols.values()))
    runs = {}
    for c, a in cols.items():
        varying = [i for i, s in enumerate(a.shape) if s > 1]
        inner = varying[-1] + 1 if varying else 0
        runs[c] = int(np.prod(shape[inner:]))
    return runs


def _slab_dims(shape, max_rows: int) -> int:
    """How many leading dims a slab indexes one at a time: the rest spans <= max_rows."""
    k = len(shape)
    while k > 0 and int(np.prod(shape[k - 1:])) <= max_rows:
        k -= 1
    return k


def batch_rows(cols: dict[str, np.ndarray], max_rows: int = BATCH_ROWS) -> int:
    """Rows per record batch (and so per Parquet row group) of :func:`block_batches`."""
    shape = broadcast_shape(*(a.shape for a in cols.values()))
    return int(np.prod(shape[_slab_dims(shape, max_rows):]))


def block_batches(cols: dict[str, np.ndarray], sch: pa.Schema, global_coords: dict,
                  max_rows: int = BATCH_ROWS, skip_codes=()):
    """Yield record batches of the rows of a block whose columns are ``cols``
    (:func:`columns`), at most ``max_rows`` each, with the columns of ``sch`` (which may
    leave some out, e.g. the partition columns), without the rows whose reason code is in
    ``skip_codes`` (``--valid-only``: :data:`INVALID_CODES`).

    Each batch is a slab of contiguous rows: every column's small array is broadcast into
    the slab straight in the batch's dtype by a parallel gather, one copy per column and
    no per-slab xarray work; the full table is never held in memory.
    """
    shape = list(broadcast_shape(*(a.shape for a in cols.values())))
    k = _slab_dims(shape, max_rows)
    slabs = Slabs(shape, k)
    prepared = {f.name: slabs.prepare(cols[f.name]) for f in sch}
    names = {**{c: global_coords[c] for c in PRESET_AXES}, **CATEGORY_NAMES}
    dictionaries = {c: pa.array(list(v), pa.string()) for c, v in names.items()}
    reasons = pa.array(list(REASONS[1:]), pa.string())  # code i is name i - 1
    skip = np.asarray(skip_codes, dtype=np.int8)
    reason_rows = slabs.prepare(cols["infeasible_reason"]) if skip.size else None
    for outer in np.ndindex(*shape[:k]):
        keep = None
        if skip.size:
            keep = ~np.isin(slabs.take(reason_rows, outer), skip)
            if not keep.any():
                continue
        out = []
        for c, prep in prepared.items():
            vals = slabs.take(prep, outer)
            # indices are valid by construction: no bounds check (safe=False)
            if c == "infeasible_reason":  # code 0 (feasible) -> null, not a "" name
                out.append(pa.DictionaryArray.from_arrays(
                    _with_nulls(vals - 1, vals != 0), reasons, safe=False))
            elif c in dictionaries:
                out.append(pa.DictionaryArray.from_arrays(pa.array(vals), dictionaries[c],
                                                          safe=False))
            elif c in ("cost_per_million_output_tokens", "energy_per_token_j"):
                # no price or TDP: null
                out.append(_with_nulls(vals, ~np.isnan(vals)))
            elif vals.dtype == np.bool_:
                out.append(_bits(vals))
            else:
                out.append(pa.array(vals))
        batch = pa.RecordBatch.from_arrays(out, schema=sch)
        yield batch if keep is None or keep.all() else batch.filter(pa.array(keep))
