"""What every column of every table dse writes means, and the types it is written in.

A column's description and unit come from the axis registry (:mod:`dse.axes`) or the
metrics table (:mod:`dse.metrics`); a table with columns of its own (the best rows'
``found``, sensitivity, disaggregated pairings, recommendations, validation rows) states
them beside the code that computes them, as ``{name: (unit, description)}``, and passes
them here. :func:`described` gives a table the form every dse file has, so pandas, DuckDB
and pyarrow read it with no cleaning:

* each field's Arrow metadata holds ``description`` and ``unit`` (``""`` for names and
  flags), and the file metadata ``dse.columns`` holds the glossary of all of them (JSON:
  name -> {"description", "unit"});
* integer columns are int64; string columns are dictionary-encoded (int32 indices);
* a missing value is a null, never an empty string, and no dictionary holds ``""``.

This module imports only the registries, so :mod:`dse.io` can use it on any table.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .axes import AXIS
from .metrics import BREAKDOWN_METRICS, METRIC

STRINGS = pa.dictionary(pa.int32(), pa.string())
# the unit of an axis column, by the axis' kind (the metrics table states its own)
AXIS_UNIT = {"int": "count", "scale": "x (factor on the preset's value)",
             "fraction": "fraction (0 to 1)"}
FILE_KEY = "dse.columns"  # file metadata: the glossary of the file's columns
_BREAKDOWN = {m.name: m for m in BREAKDOWN_METRICS}


def describe(name: str, extra: dict | None = None) -> dict:
    """``{"description": ..., "unit": ...}`` of column ``name``: from ``extra`` (the
    table's own columns, ``{name: (unit, description)}``), else the axis registry, else the
    metrics table. Raises KeyError for a column nothing describes (a bug: every column
    written must say what it is)."""
    if extra and name in extra:
        unit, doc = extra[name]
        return {"description": doc, "unit": unit}
    if name in AXIS:
        a = AXIS[name]
        return {"description": f"axis: {a.doc}", "unit": AXIS_UNIT.get(a.kind, "")}
    m = METRIC.get(name) or _BREAKDOWN.get(name)
    if m is None:
        raise KeyError(f"column {name!r} has no description: declare it in the axis "
                       "registry, the metrics table or the table's own columns")
    return {"description": m.doc, "unit": m.unit}


def glossary(schema: pa.Schema) -> str:
    """The file metadata value :data:`FILE_KEY`: JSON name -> {description, unit} of the
    fields of ``schema`` that carry them."""
    out = {}
    for f in schema:
        meta = f.metadata or {}
        if b"description" in meta:
            out[f.name] = {"description": meta[b"description"].decode(),
                           "unit": meta.get(b"unit", b"").decode()}
    return json.dumps(out, sort_keys=True)


def _no_empty_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary column with ``""`` as null and its dictionaries without ``""``."""
    chunks = []
    for chunk in col.chunks:
        names = chunk.dictionary.to_pylist()
        if "" not in names:
            chunks.append(chunk)
            continue
        kept = [n for n in names if n != ""]
        remap = np.array([kept.index(n) if n != "" else -1 for n in names], dtype=np.int32)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        idx = np.where(valid, chunk.indices.fill_null(0).to_numpy(), 0)
        new = remap[idx.astype(np.int64)]
        valid &= new >= 0
        chunks.append(pa.DictionaryArray.from_arrays(
            pa.array(np.maximum(new, 0).astype(np.int32), mask=~valid),
            pa.array(kept, pa.string())))
    return pa.chunked_array(chunks, type=STRINGS)


def _typed(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """``col`` in the type dse writes (see the module docstring)."""
    typ = col.type
    if pa.types.is_integer(typ) and typ != pa.int64():
        return col.cast(pa.int64())
    if pa.types.is_null(typ):  # an empty frame's untyped column: categorical strings
        col = col.cast(pa.string())
        typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        col = col.cast(pa.string())
        empty = pc.equal(col, "")
        col = pc.if_else(empty, pa.scalar(None, pa.string()), col)
        col = col.dictionary_encode()
    if pa.types.is_dictionary(col.type):
        if col.type != STRINGS:
            col = col.cast(STRINGS)
        col = _no_empty_strings(col)
    return col


def described(table: pa.Table, extra: dict | None = None, meta: dict | None = None
              ) -> pa.Table:
    """``table`` typed and described as every dse file is (see the module docstring):
    field metadata from :func:`describe` (``extra``: the table's own columns) where a
    field carries no description yet, file metadata ``meta`` (default: the table's) plus
    the glossary."""
    fields, cols = [], []
    for f, col in zip(table.schema, table.columns):
        col = _typed(col)
        own = f.metadata if f.metadata and b"description" in f.metadata else None
        fields.append(pa.field(f.name, col.type, nullable=True,
                               metadata=own or describe(f.name, extra)))
        cols.append(col)
    schema = pa.schema(fields)
    file_meta = dict(table.schema.metadata or {}) if meta is None else \
        {k.encode() if isinstance(k, str) else k: v.encode() if isinstance(v, str) else v
         for k, v in meta.items()}
    file_meta[FILE_KEY.encode()] = glossary(schema).encode()
    return pa.Table.from_arrays(cols, schema=schema.with_metadata(file_meta))
