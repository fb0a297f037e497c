"""``sensitivity.parquet``: how the best configuration's outcome responds to each what-if.

For every group of ``best.parquet`` and every what-if axis swept with two or more values,
the arc elasticity of the best tokens/s per device, TTFT and TPOT between consecutive
values of that axis, the other group keys held fixed:

    elasticity = (ln y1 - ln y0) / (ln x1 - ln x0)

(1.0: the metric grows in proportion to the scale; 0: no response; a TPOT elasticity of
-1 means decode time falls in proportion). The best configuration may differ between the
two values (``same_strategy`` says whether it does): the elasticity is that of the best
answer the grid gives, not of one fixed configuration. Groups without a feasible best at
either value are left out.

The table is computed with array operations over all groups at once (a sweep with many
what-if groups has tens of thousands of pairs; a Python loop per group dominated it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .axes import AXES

METRICS = ("tokens_per_s_per_device", "ttft_s", "tpot_s")
STRATEGY = ("batch", "tp", "pp", "ep", "attention_dp", "max_batched_tokens", "dp",
            "weight_dtype", "act_dtype", "kv_dtype", "quant")
FILE = "sensitivity.parquet"
# the table's own columns (the group keys are axes): name -> (unit, description)
COLUMNS = {
    "what_if": ("", "the what-if axis varied between from_value and to_value (its own "
                "column is null on the row)"),
    "from_value": ("x (factor on the preset's value)", "the what-if axis' lower value"),
    "to_value": ("x (factor on the preset's value)", "the what-if axis' next value"),
    "same_strategy": ("", "the best configuration's strategy is the same at both values"),
    **{f"elasticity_{m}": ("", f"arc elasticity of the best configuration's {m}: "
                           "(ln y1 - ln y0) / (ln x1 - ln x0) between from_value and "
                           "to_value (1: proportional)") for m in METRICS},
}


def sensitivity(best: pd.DataFrame) -> pd.DataFrame:
    """The elasticity table of a best table (see the module docstring).

    Parameters
    ----------
    best : pandas.DataFrame
        A best table (``best.parquet``): the group keys, then ``found``, the strategy
        columns and the metrics.

    Returns
    -------
    pandas.DataFrame
        One row per what-if axis (in :data:`dse.axes.AXES` order), group of the other keys
        (in order of first appearance) and pair of consecutive values of the axis within
        the group (ascending): the group keys (the varied axis' own column null), then
        ``what_if``, ``from_value``, ``to_value``, ``same_strategy`` and one
        ``elasticity_<metric>`` per metric of :data:`METRICS`. Empty when no what-if axis
        has two values or no group has a best at two of them.
    """
    keys = list(best.columns[:list(best.columns).index("found")])
    whatifs = [a.name for a in AXES if a.section == "what_if" and a.name in keys
               and best[a.name].nunique() > 1]
    found = best[best["found"]]
    columns = keys + ["what_if", "from_value", "to_value", "same_strategy"] + \
        [f"elasticity_{m}" for m in METRICS]
    strategy = _row_codes([_codes(found[c]) for c in STRATEGY if c in found.columns],
                          len(found))
    codes = {k: _codes(found[k]) for k in keys}
    values = {k: found[k].to_numpy() for k in keys}
    blocks = [_pairs(found, keys, axis, strategy, codes, values) for axis in whatifs]
    blocks = [b for b in blocks if len(b["what_if"])]
    if not blocks:
        return pd.DataFrame([], columns=columns)
    return pd.DataFrame({c: _joined([b[c] for b in blocks]) for c in columns})


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """One column from its blocks, with the dtype its values infer (int64, float64, bool;
    text stays object), as a list of per-pair records would get: the column of the axis a
    block varies is null (NaN) there, so a what-if key column is float64."""
    col = np.concatenate(parts)
    if col.dtype.kind in "iu":
        return col.astype(np.int64)
    if col.dtype.kind == "f":
        return col.astype(np.float64)
    if col.dtype.kind == "b":
        return col
    col = col.astype(object)
    if pd.api.types.infer_dtype(col, skipna=True) == "string":
        return col  # names (nulls among them): the frame makes them its string dtype
    return pd.Series(col, dtype=object).infer_objects().to_numpy()


def _pairs(found: pd.DataFrame, keys: list[str], axis: str, strategy: np.ndarray,
           codes: dict, values: dict) -> np.ndarray:
    """The rows of :func:`sensitivity` for one what-if axis, as an object array.

    Parameters
    ----------
    found : pandas.DataFrame
        The rows of a best table that have a best (``found``).
    keys : list of str
        The group keys of the best table.
    axis : str
        The what-if axis varied (one of ``keys``).
    strategy : numpy.ndarray
        Each row's strategy as a code (:func:`_row_codes` of the :data:`STRATEGY`
        columns): two rows have the same strategy when their codes are equal.
    codes : dict
        Key column -> its values' codes (:func:`_codes`).
    values : dict
        Key column -> its values as a numpy array.

    Returns
    -------
    dict
        Column name -> array, one row per pair of consecutive values of ``axis`` within a
        group of the other keys, for every column of :func:`sensitivity`'s table.
    """
    others = [k for k in keys if k != axis]
    # group number in order of first appearance, as iterating groupby(sort=False) would
    group = _first_appearance(_row_codes([codes[k] for k in others], len(found)))
    x = found[axis].to_numpy(float)
    # by group, then by the axis' value within it (NaN last, as sort_values puts it; a
    # best table has one row per key, so no two rows of a group tie)
    order = np.lexsort((x, group))
    lo, hi = order[:-1], order[1:]
    pair = group[lo] == group[hi]  # consecutive rows of one group: a pair of values
    lo, hi = lo[pair], hi[pair]

    # the group's key values; the varied axis' own column is null (from/to carry it)
    out = {k: np.full(len(lo), np.nan) if k == axis else values[k][lo] for k in keys}
    x0, x1 = x[lo], x[hi]
    out |= {"what_if": np.full(len(lo), axis, dtype=object), "from_value": x0,
            "to_value": x1, "same_strategy": strategy[lo] == strategy[hi]}
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.log(x1) - np.log(x0)
        for m in METRICS:
            y = found[m].to_numpy(float)
            out[f"elasticity_{m}"] = (np.log(y[hi]) - np.log(y[lo])) / dx
    return out


def _codes(column) -> np.ndarray:
    """Integer codes of a column's values: equal values, equal codes; the nulls (None or
    NaN) share one code, as ``groupby(dropna=False)`` groups them."""
    return pd.factorize(column, use_na_sentinel=False)[0].astype(np.int64)


def _row_codes(codes: list, n: int) -> np.ndarray:
    """One code per row for the tuple of its columns' ``codes`` (:func:`_codes` of each):
    two rows get the same code when every column's value is the same; codes are dense
    (below ``n``) in the tuples' lexicographic order. Zeros for no column. The columns
    combine as mixed-radix digits, re-encoded densely before a product of radices could
    overflow."""
    out = np.zeros(n, dtype=np.int64)
    span = 1  # out < span
    for c in codes:
        radix = int(c.max(initial=0)) + 1
        if span * radix >= 2 ** 62:  # re-encode densely first (order kept)
            out = np.unique(out, return_inverse=True)[1].reshape(-1)
            span = int(out.max(initial=0)) + 1
        # mixed radix: the tuple's lexicographic order
        out = out * radix + c
        span *= radix
    return np.unique(out, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _first_appearance(codes: np.ndarray) -> np.ndarray:
    """Renumber ``codes`` 0, 1, ... in order of each code's first row (what
    ``groupby(sort=False).ngroup()`` numbers)."""
    if len(codes) == 0:
        return codes
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)]
