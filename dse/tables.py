"""``dse.open(DIR)``: a finished sweep's tables, read only when asked for.

Each table is a :class:`Table` handle: a ``pyarrow.dataset.Dataset`` (:meth:`Table.dataset`,
lazy: filter and project before reading), an Arrow table, a pandas DataFrame (strings as
categoricals, integers as int64, nullable ``Int64`` where a column holds nulls), or a
DuckDB relation (:meth:`Table.duckdb`; duckdb is imported only then). The results table
(``configurations/``) also reads as an ``xarray.Dataset`` over the swept axes
(:meth:`Sweep.xarray`) for ``.sel(...)`` and plots.

Nothing is read when a folder is opened but its manifest: a results table far larger than
memory is fine as long as it is filtered before it is read.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from . import outdir
from .errors import OutputError

class Table:
    """One table of a sweep folder (a Parquet file, or the hive-partitioned
    ``configurations/`` dataset)."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = Path(path)
        self.partitioned = self.path.is_dir()

    def __repr__(self) -> str:
        return f"<dse table {self.name}: {self.path}>"

    def dataset(self):
        """The table as a lazy ``pyarrow.dataset.Dataset`` (hive partitioning for
        ``configurations/``): filter and project before ``to_table()``."""
        import pyarrow.dataset as pads
        return pads.dataset(self.path, format="parquet",
                            partitioning="hive" if self.partitioned else None)

    @property
    def schema(self):
        """The Arrow schema, each field with its ``description`` and ``unit``."""
        return self.dataset().schema

    def count(self) -> int:
        """Rows [count]."""
        return self.dataset().count_rows()

    def arrow(self, columns=None, filter=None):
        """The rows as a ``pyarrow.Table``: ``columns`` (default all), ``filter`` a
        ``pyarrow.compute`` expression, e.g. ``pc.field("tp") == 2``."""
        return self.dataset().to_table(columns=columns, filter=filter)

    def pandas(self, columns=None, filter=None):
        """The rows as a pandas DataFrame (as :meth:`arrow`): strings as categoricals,
        integers as int64 (nullable Int64 where a column holds nulls)."""
        return to_pandas(self.arrow(columns, filter))

    def duckdb(self, connection=None):
        """The table as a DuckDB relation (lazy; ``.df()``, ``.filter(...)``, or name it
        in SQL after ``connection.register``), on ``connection`` (default: DuckDB's
        default connection). Needs the duckdb package."""
        try:
            import duckdb
        except ImportError:
            raise ImportError("Table.duckdb needs the duckdb package: python3 -m pip "
                              "install duckdb") from None
        con = connection if connection is not None else duckdb.default_connection()
        if self.partitioned:
            return con.read_parquet(str(self.path / "**" / "*.parquet"),
                                    hive_partitioning=True)
        return con.read_parquet(str(self.path))

    def glossary(self):
        """The columns as a pandas DataFrame: ``column``, ``type``, ``unit``,
        ``description`` (from the files' field metadata)."""
        import pandas as pd
        rows = []
        for f in self.schema:
            meta = f.metadata or {}
            rows.append({"column": f.name, "type": str(f.type),
                         "unit": meta.get(b"unit", b"").decode(),
                         "description": meta.get(b"description", b"").decode()})
        return pd.DataFrame(rows)


def to_pandas(table):
    """An Arrow table as pandas with the types of the files: strings as categoricals,
    integers as int64 (nullable Int64 where a column holds nulls)."""
    import pandas as pd
    import pyarrow as pa
    df = table.to_pandas()
    for f in table.schema:
        if pa.types.is_integer(f.type) and table.column(f.name).null_count:
            df[f.name] = table.column(f.name).to_pandas(
                types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        elif pa.types.is_integer(f.type):
            df[f.name] = df[f.name].astype("int64")
    return df


class Sweep:
    """A finished sweep folder (:func:`open`): its tables as :class:`Table` handles
    (``results``, ``pareto``, ``best``; ``disaggregated``, ``sensitivity`` where the
    sweep wrote them, else None), its ``manifest`` and the counts per reason."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.manifest = outdir.read_manifest(self.out_dir)
        if not self.manifest.get("complete"):
            raise OutputError(f"{self.out_dir}: the sweep has not finished; resume it with "
                              "`dse sweep SPEC --out DIR --resume`")
        folder = outdir.table_dir(self.out_dir)
        self.results = Table("configurations", folder) if folder.is_dir() else None
        self.configurations = self.results
        for name in ("pareto", "best", "disaggregated", "sensitivity"):
            path = self.out_dir / f"{name}.parquet"
            setattr(self, name, Table(name, path) if path.is_file() else None)
        if self.pareto is None or self.best is None:
            raise OutputError(f"{self.out_dir}: pareto.parquet or best.parquet is missing; "
                              "run the sweep again with --overwrite")

    def __repr__(self) -> str:
        names = [n for n in ("results", "pareto", "best", "disaggregated", "sensitivity")
                 if getattr(self, n) is not None]
        return f"<dse sweep {self.out_dir}: {', '.join(names)}>"

    @property
    def reason_counts(self) -> dict:
        """Configurations per outcome: ``{"feasible": n, reason: n, ...}`` (every
        configuration of the grid, also those ``--valid-only`` left out of the results
        table)."""
        from .evaluate import REASONS
        feasible, named = outdir.reason_totals(self.manifest["done"].values(), REASONS)
        return {"feasible": feasible, **named}

    def swept_axes(self) -> list:
        """The axes the spec gives two or more values, in the results table's order."""
        from .axes import AXES
        try:
            data = tomllib.loads(self.manifest.get("spec", ""))
        except tomllib.TOMLDecodeError:
            data = {}
        given = {**data.get("grid", {}), **data.get("what_if", {})}
        return [a.name for a in AXES
                if isinstance(given.get(a.name), list) and len(given[a.name]) > 1]

    def xarray(self, columns=None, filter=None):
        """The results table as an ``xarray.Dataset`` over the swept axes
        (:meth:`swept_axes`; the axes with one value become scalar coordinates), for
        ``.sel(hardware="h100_sxm", tp=2)``. ``columns``: the metrics to read (default
        all); ``filter``: a ``pyarrow.compute`` expression applied first. The whole
        selection is read into memory (a dense array over the swept axes: NaN where a
        combination has no row, e.g. after ``--valid-only``). Precisions are the resolved
        ones the rows hold: a swept act_dtype or kv_dtype of ``same`` beside explicit
        values keeps one row per resolved precision."""
        import xarray as xr
        from .axes import AXES
        if self.results is None:
            raise OutputError(f"{self.out_dir}: the sweep wrote no configurations/ (it ran "
                              "with --no-results); run it again without it")
        axes = [a.name for a in AXES]
        names = self.results.schema.names
        wanted = None if columns is None else \
            [c for c in names if c in axes] + [c for c in columns if c not in axes]
        df = to_pandas(self.results.arrow(wanted, filter))
        dims = [d for d in self.swept_axes() if d in df.columns]
        scalars = {}
        for c in [c for c in axes if c in df.columns and c not in dims]:
            values = df[c].dropna().unique()
            if len(values) <= 1:
                scalars[c] = values[0] if len(values) else None
                df = df.drop(columns=c)
        for d in dims:
            if str(df[d].dtype) == "category":
                df[d] = df[d].astype(str)
        df = df.set_index(dims)
        df = df[~df.index.duplicated()]
        ds = xr.Dataset.from_dataframe(df) if dims else xr.Dataset(df.iloc[0].to_dict())
        for f in self.results.schema:
            if f.name in ds.variables and f.metadata:
                ds[f.name].attrs.update({k.decode(): v.decode() for k, v in
                                         f.metadata.items()})
        return ds.assign_coords({k: v for k, v in scalars.items() if v is not None})


def open(path) -> Sweep:  # noqa: A001  (dse.open, like xarray.open_dataset)
    """Open a finished sweep's output folder.

    Parameters
    ----------
    path : path
        The ``--out`` folder of a finished ``dse sweep`` (or ``dse recommend``).

    Returns
    -------
    Sweep
        ``.results`` (``configurations/``, None with ``--no-results``), ``.pareto``,
        ``.best`` (and ``.disaggregated``, ``.sensitivity`` where written) as
        :class:`Table` handles: ``.dataset()`` (pyarrow), ``.duckdb()``, ``.pandas()``,
        ``.arrow()``, ``.glossary()``; ``.xarray()`` the results over the swept axes;
        ``.reason_counts``; ``.manifest``.
    """
    return Sweep(path)
