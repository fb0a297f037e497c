"""Parquet output. Nothing else in dse writes to disk.

Files are written under a temporary name and renamed when complete, so a crash never leaves
a half file under a final name; a sweep's files are staged in a sibling folder and moved
into the output folder only once all of them are written.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__

COMPRESSION = "zstd"


class OutputError(OSError):
    """The output location cannot be used (exists, not writable, disk full)."""


def metadata(spec) -> dict:
    """File-level key/value metadata: engine version, the sweep spec and presets used."""
    return {
        "dse.version": __version__,
        "dse.spec_source": spec.source,
        "dse.spec": spec.text,
        "dse.presets": json.dumps(spec.preset_texts),
        "dse.constraints": json.dumps(vars(spec.constraints)),
    }


def with_metadata(schema: pa.Schema, meta: dict) -> pa.Schema:
    return schema.with_metadata({k.encode(): v.encode() for k, v in meta.items()})


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty output folder unless ``overwrite``."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputError(f"{out_dir}: --out exists and is not a folder")
        if any(out_dir.iterdir()) and not overwrite:
            raise OutputError(f"{out_dir}: --out folder exists and is not empty; "
                              "pass --overwrite to replace its dse files")
    parent = out_dir.resolve().parent
    if not parent.exists():
        raise OutputError(f"{out_dir}: parent folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out_dir}: parent folder {parent} is not writable")


class Staging:
    """A sibling temporary folder whose files move into ``out_dir`` on :meth:`commit`."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        parent = self.out_dir.resolve().parent
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.partial-", dir=parent))
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot create a staging folder: {exc.strerror}") from None

    def file(self, name: str) -> Path:
        return self.path / name

    def commit(self) -> None:
        self.out_dir.mkdir(exist_ok=True)
        for f in sorted(self.path.iterdir()):
            os.replace(f, self.out_dir / f.name)
        self.path.rmdir()

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def open_writer(path: Path, schema: pa.Schema, statistics=True) -> pq.ParquetWriter:
    """A zstd Parquet writer; ``statistics`` may list the columns that get min/max stats."""
    try:
        # dictionary pages only for categorical and integer columns: float metrics rarely
        # repeat enough for a dictionary to pay; larger write batches encode faster
        dictionary = [f.name for f in schema
                      if pa.types.is_dictionary(f.type) or pa.types.is_integer(f.type)]
        return pq.ParquetWriter(path, schema, compression=COMPRESSION,
                                write_statistics=statistics, use_dictionary=dictionary,
                                write_batch_size=64 * 1024)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc}") from None


class BackgroundWriter:
    """Writes record batches on a thread so that encoding overlaps building the next batch.

    Parquet encoding and the numpy/numba work that builds batches both release the GIL.
    An error on the writer thread is raised again from :meth:`write` or :meth:`close`.
    """

    def __init__(self, writer: pq.ParquetWriter, path: Path, depth: int = 2):
        import queue
        import threading
        self._writer = writer
        self._path = path
        self._queue = queue.Queue(maxsize=depth)
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is None:
                try:
                    self._writer.write_batch(batch)
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc

    def _check(self):
        if self._error is not None:
            raise OutputError(f"{self._path}: cannot write: {self._error}")

    def write(self, batch: pa.RecordBatch) -> None:
        self._check()
        self._queue.put(batch)

    def abandon(self) -> None:
        """Stop the thread after an error elsewhere; the file is discarded by the caller."""
        self._error = self._error or RuntimeError("abandoned")
        self._queue.put(None)
        self._thread.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._check()
        self._writer.close()


def frame_to_table(df: pd.DataFrame, meta: dict) -> pa.Table:
    """Arrow table of a small frame: string columns dictionary-encoded, metadata attached."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    # an empty frame has untyped (null) object columns: keep them categorical strings
    cols = [c.cast(pa.string()) if pa.types.is_null(c.type) else c for c in table.columns]
    cols = [c.dictionary_encode() if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
            else c for c in cols]
    table = pa.table(cols, names=table.column_names)
    return table.replace_schema_metadata({k: v for k, v in meta.items()})


def write_table(path: Path, table: pa.Table) -> None:
    """Write a whole table to ``path`` via a temporary name in the same folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp, compression=COMPRESSION)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc}") from None


def write_preset(path: Path, text: str, load, overwrite: bool = False):
    """Write a preset file via a temporary name; it must load (``load(path)``) to be kept.

    Returns what ``load`` returned. An existing file is replaced only with ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; pass --overwrite to replace it")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        loaded = load(str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return loaded


def read_table(path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()
