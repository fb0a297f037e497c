"""Parquet output. Nothing else in dse writes to disk.

Files are written under a temporary name and renamed when complete, so a crash never leaves
a half file under a final name. A sweep's manifest (``manifest.json``) lists the chunks whose
files are complete; a resumed sweep deletes everything else it owns and redoes those
chunks.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from . import __version__

COMPRESSION = "zstd"


from .errors import OutputError  # noqa: F401  (re-exported: dse.io.OutputError)


@contextmanager
def atomic(path: Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any error the temporary file is removed; an OSError becomes a one-line OutputError.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give the name of a file to write")
    if path.exists() and not path.is_file():  # a device or pipe is never replaced
        raise OutputError(f"{path}: not a regular file; give the name of a file to write")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OutputError:  # already one line naming the file
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def metadata(spec) -> dict:
    """File-level key/value metadata: engine version, the sweep spec and presets used."""
    return {
        "dse.version": __version__,
        "dse.spec_source": spec.source,
        "dse.spec": spec.text,
        "dse.presets": json.dumps(spec.preset_texts),
        "dse.constraints": json.dumps(vars(spec.constraints)),
        "dse.objectives": json.dumps({"best": spec.objectives.best,
                                      "pareto": list(spec.objectives.pareto)}),
    }


def with_metadata(schema: pa.Schema, meta: dict) -> pa.Schema:
    return schema.with_metadata({k.encode(): v.encode() for k, v in meta.items()})


def write_json(path: Path, data: dict) -> None:
    """Atomically replace ``path`` with ``data`` as JSON."""
    with atomic(path) as tmp:
        # compact: the C encoder (indent= takes the pure-Python one, ~5x slower)
        tmp.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")))


def write_batches(path: Path, schema: pa.Schema, batches, statistics=True,
                  dictionary=None) -> None:
    """Write record batches to ``path`` via a temporary name in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic(path) as tmp:
        writer = open_writer(tmp, schema, statistics, dictionary)
        try:
            for batch in batches:
                writer.write_batch(batch)
        finally:
            writer.close()


def partition_dir(root: Path, values: dict) -> Path:
    """Hive-style ``root/key=value/...`` folder for the partition ``values``."""
    path = root
    for key, value in values.items():
        text = repr(float(value)) if isinstance(value, float) else str(value)
        path = path / f"{key}={text}"
    return path


def _repeating(schema: pa.Schema) -> list[str]:
    """Columns whose values repeat enough for dictionary pages to pay: categorical and
    integer ones (float metrics rarely repeat, and hashing them costs a quarter of the
    write time)."""
    return [f.name for f in schema
            if pa.types.is_dictionary(f.type) or pa.types.is_integer(f.type)]


def open_writer(path: Path, schema: pa.Schema, statistics=True,
                dictionary=None) -> pq.ParquetWriter:
    """A zstd Parquet writer; ``statistics`` may list the columns that get min/max stats,
    ``dictionary`` those that get dictionary pages (default: :func:`_repeating`)."""
    if dictionary is None:
        dictionary = _repeating(schema)
    try:
        # larger write batches encode faster
        return pq.ParquetWriter(path, schema, compression=COMPRESSION,
                                write_statistics=statistics, use_dictionary=dictionary,
                                write_batch_size=64 * 1024)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc}") from None


def frame_to_table(df: pd.DataFrame, meta: dict, columns: dict | None = None) -> pa.Table:
    """Arrow table of a small frame (``dse validate``'s and ``dse recommend``'s rows) in the
    form of every dse file (:func:`dse.glossary.described`: int64 integers, categorical
    strings, nulls for missing values, each column's description and unit; ``columns``:
    the frame's own columns, ``{name: (unit, description)}``), file metadata ``meta``. A
    sweep's tables never pass here: :mod:`dse.reduce` builds its rows as Arrow of a
    declared schema."""
    from .glossary import described
    return described(pa.Table.from_pandas(df, preserve_index=False), columns, meta)


def write_tables(path: Path, tables, meta: dict, drop=(),
                 columns: dict | None = None) -> tuple[int, int]:
    """Write Arrow tables of one schema (a sweep's reduced rows, :mod:`dse.reduce`) to one
    Parquet file via a temporary name, without the columns ``drop``, with metadata ``meta``,
    in the form of every dse file (:func:`dse.glossary.described`; ``columns``: the
    table's own columns, ``{name: (unit, description)}``).

    Returns (rows written, rows whose ``found`` column is true, 0 without one). No tables
    at all make an empty file with no columns.
    """
    from .glossary import described
    rows = found = 0
    writer = None
    with atomic(path) as tmp:
        for table in tables:
            table = described(table.drop_columns(list(drop)), columns, meta)
            if writer is None:
                writer = open_writer(tmp, table.schema)
            writer.write_table(table)
            rows += len(table)
            if "found" in table.column_names:
                found += pa.compute.sum(table["found"]).as_py() or 0
        if writer is None:
            pq.write_table(pa.table({}), tmp)
        else:
            writer.close()
    return rows, found


# The partial tables' IPC compression: LZ4 frames write a sweep's Pareto partials 3-4x
# faster than uncompressed files (a twentieth of the bytes: most columns repeat) and read
# back in a few percent of that; uncompressed where pyarrow was built without LZ4.
IPC_COMPRESSION = "lz4" if pa.Codec.is_available("lz4_frame") else None


def write_arrow(path: Path, table: pa.Table) -> None:
    """Write a table as an LZ4-compressed Arrow IPC file (fast; for a sweep's partial
    tables) via a temporary name in the same folder."""
    options = pa.ipc.IpcWriteOptions(compression=IPC_COMPRESSION)
    with atomic(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema, options=options) as writer:
            writer.write_table(table)


def read_arrow(path: Path) -> pa.Table:
    """A table written by :func:`write_arrow` (compressed or not: a sweep resumed from
    partials written before they were compressed reads them too), memory-mapped (an
    uncompressed file's buffers are its pages; the file may be removed while the table is
    in use)."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def write_table(path: Path, table: pa.Table) -> None:
    """Write a whole table to ``path`` via a temporary name in the same folder."""
    with atomic(path) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION)


def check_preset_out(path: Path, overwrite: bool) -> None:
    """Refuse a preset output that exists (unless ``overwrite``) or is not a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: --out is a folder; give the preset file to write, "
                          "e.g. my_preset.toml")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{path}: exists; pass --overwrite to replace it")
    if not path.absolute().parent.is_dir():
        raise OutputError(f"{path}: folder {path.absolute().parent} does not exist")


def write_preset(path: Path, text: str, parse, overwrite: bool = False):
    """Write a preset file via a temporary name; ``text`` must validate first
    (``parse(data, source, text)``, e.g. ``config.parse_model``), with ``path`` named in
    any message. Returns what ``parse`` returned. An existing file is replaced only with
    ``overwrite``."""
    from .config import parse_toml
    path = Path(path)
    check_preset_out(path, overwrite)
    loaded = parse(parse_toml(text, path), str(path), text)
    with atomic(path) as tmp:
        tmp.write_text(text)
    return loaded


def write_figure(path: Path, figure, fmt: str, **savefig) -> None:
    """Save a matplotlib ``figure`` as ``fmt`` (png, svg) via a temporary name in the same
    folder; ``savefig`` goes to ``Figure.savefig`` (metadata, dpi)."""
    with atomic(path) as tmp:
        figure.savefig(tmp, format=fmt, **savefig)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV via a temporary name in the same folder."""
    with atomic(path) as tmp:
        frame.to_csv(tmp, index=False)
