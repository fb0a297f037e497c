"""An evaluation as one flat pandas table, for notebooks: ``dse.to_frame(ds)`` or
``ds.dse.to_frame()`` on what :func:`dse.evaluate` returns.

The rows and columns are those of the results table (``configurations/``): one row per
configuration, the axes then the metrics, built by the same code (:mod:`dse.table`), so
precisions are the resolved ones (``same`` replaced by the precision it stands for),
``infeasible_reason`` names the reason (null where feasible) and every string column is a
pandas categorical.
"""
from __future__ import annotations

import xarray as xr


def to_frame(ds: xr.Dataset, valid_only: bool = False):
    """One row per configuration of ``ds`` (from :func:`dse.evaluate`).

    Parameters
    ----------
    ds : xarray.Dataset
        An evaluated grid (or a selection of one that keeps every grid dim, e.g.
        ``ds.sel(tp=[2])``).
    valid_only : bool
        Leave out the combinations that are not valid configurations (as ``dse sweep
        --valid-only``: every ``infeasible_reason`` but ``out_of_memory``).

    Returns
    -------
    pandas.DataFrame
        The results table's columns (README "Columns"): times [s], rates [tokens/s],
        memory [bytes], cost [USD per million output tokens], energy [J per output
        token]; strings as categoricals, integers as int64.
    """
    import pyarrow as pa
    from .table import INVALID_CODES, PRESET_AXES, block_batches, columns, schema
    from .tables import to_pandas
    names = {d: [str(v) for v in ds[d].values] for d in PRESET_AXES}
    sch = schema({d: len(v) for d, v in names.items()}, breakdown="prefill_bound" in ds)
    cols = columns(ds, sch, names)
    skip = INVALID_CODES if valid_only else ()
    batches = list(block_batches(cols, sch, names, skip_codes=skip))
    return to_pandas(pa.Table.from_batches(batches, schema=sch))


@xr.register_dataset_accessor("dse")
class DseAccessor:
    """``ds.dse.to_frame()``: :func:`to_frame` of an evaluated dataset."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def to_frame(self, valid_only: bool = False):
        """:func:`to_frame` of this dataset."""
        return to_frame(self._ds, valid_only)
