"""A sweep's output folder: checks, the run's exclusive lock, and which files are dse's.

One run at a time: a sweep holds an exclusive ``flock`` on ``DIR/.dse.lock`` from before it
looks at the folder's contents until it returns, so two runs on one folder cannot mix
their files (the second is refused at once). The kernel drops the lock of a process that
dies, so a killed run's lock is taken over by the next one, with a note naming the dead
process. Locks on network file systems are only as good as their ``flock`` support.

``--overwrite`` removes only files dse wrote: the manifest, the final tables beside it,
and, under ``configurations/`` (``results/`` in sweeps before it was renamed) and
``_chunks/``, files named as a sweep names them
(``part-NNNNNN.parquet``, ``pareto-NNNNNN.arrow`` ...) of a chunk the manifest plans. Any
other file in those two folders would be deleted or would pollute the dataset, so it is
refused by name before anything is removed; files elsewhere in ``DIR`` are left alone.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sys
from pathlib import Path

from .errors import OutputError

MANIFEST = "manifest.json"
LOCK = ".dse.lock"
TABLES = ("pareto.parquet", "best.parquet", "disaggregated.parquet", "sensitivity.parquet")
# the results table's dataset: "configurations", so that `--out results` reads
# results/configurations/ (sweeps before 2026-12 wrote it as "results")
TABLE_DIR = "configurations"
LEGACY_TABLE_DIR = "results"
TABLE_DIRS = (TABLE_DIR, LEGACY_TABLE_DIR)
FOLDERS = (*TABLE_DIRS, "_chunks")
# what a sweep writes into DIR (besides the lock)
NAMES = (MANIFEST, *TABLES, *FOLDERS)
# a chunk's files: results parts (hive folders above them) and partial tables, and the
# temporary names io.atomic gives them while they are written
_PART = re.compile(r"\.?part-(\d{6})\.parquet(\.tmp)?")
_PARTIAL = re.compile(r"\.?(?:pareto|best|prefill|decode)-(\d{6})\.arrow(\.tmp)?")
_TABLE_TMP = {f".{name}.tmp" for name in (MANIFEST, *TABLES)}


def table_dir(out_dir: Path) -> Path:
    """The results table's folder of a sweep in ``out_dir``: ``configurations/``, or an
    earlier sweep's ``results/`` where only that exists."""
    out_dir = Path(out_dir)
    new, old = out_dir / TABLE_DIR, out_dir / LEGACY_TABLE_DIR
    return old if not new.exists() and old.is_dir() else new


def check_out_dir(out_dir: Path, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an unusable ``--out`` before any work: a file, a broken symbolic link, a
    missing parent folder, or (without ``overwrite`` / ``resume``) a non-empty folder."""
    try:
        if out_dir.is_symlink() and not out_dir.exists():
            raise OutputError(f"{out_dir}: --out is a symbolic link to nothing (missing "
                              "target or a loop); point it at a folder or remove it")
        if out_dir.exists():
            if not out_dir.is_dir():
                raise OutputError(f"{out_dir}: --out exists and is not a folder")
            if not (overwrite or resume) and _contents(out_dir):
                what = ("holds an unfinished or finished sweep; pass --resume to continue "
                        "it or --overwrite to replace it" if (out_dir / MANIFEST).exists()
                        else "--out folder exists and is not empty; pass --overwrite to "
                        "replace its dse files")
                raise OutputError(f"{out_dir}: {what}")
            return
        parent = out_dir.absolute().parent
        if not parent.is_dir():
            raise OutputError(f"{out_dir}: parent folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"{out_dir}: parent folder {parent} is not writable")
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{out_dir}: cannot use as --out: {exc.strerror or exc}") from None


def _contents(out_dir: Path) -> list[str]:
    """Names in ``out_dir`` besides the lock file."""
    return sorted(n for n in os.listdir(out_dir) if n != LOCK)


class FolderLock:
    """Exclusive lock of one output folder for one run (a context manager)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.fd = None

    def acquire(self) -> "FolderLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"{self.folder}: cannot write in --out: "
                                  f"{exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"{self.folder}: in use by another dse run (process "
                                      f"{holder}); wait for it to end, or choose another "
                                      "--out") from None
                raise OutputError(f"{self.folder}: cannot lock {LOCK}: "
                                  f"{exc.strerror or exc}") from None
            # the holder before us may have unlinked the file between our open and flock:
            # then we hold a lock on a name nobody else sees, so start again
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = os.read(fd, 64).decode("ascii", "replace").strip()
        if previous and previous != str(os.getpid()):
            print(f"dse: note: {self.path}: took over the lock of process {previous}, "
                  "which ended without releasing it", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: the next run creates a fresh file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def read_manifest(out_dir: Path) -> dict:
    """The sweep manifest of ``out_dir``; one-line OutputError if missing or not one."""
    from .config import ConfigError, read_text
    path = out_dir / MANIFEST
    if not path.exists():
        raise OutputError(f"{out_dir}: no {MANIFEST}: nothing to resume (run without "
                          "--resume)")
    try:
        data = json.loads(read_text(path, "dse manifest (JSON)", limit=256 << 20))
    except ConfigError as exc:
        raise OutputError(f"unreadable manifest: {exc}") from None
    except json.JSONDecodeError as exc:
        raise OutputError(f"{path}: unreadable manifest: {exc}") from None
    problem = _manifest_problem(data)
    if problem:
        raise OutputError(f"{path}: not a dse sweep manifest ({problem}); remove it, or "
                          "choose another --out")
    return data


FEASIBLE = "feasible"  # a chunk's reason counts: the key of its feasible configurations


def named_reasons(counts, names) -> dict:
    """A chunk's configurations per reason code (``counts`` in the order of ``names``,
    :data:`dse.evaluate.REASONS`, whose code 0 is feasible) as the manifest holds them:
    ``{"feasible": n, reason name: n, ...}``, the nonzero ones."""
    return {(names[i] or FEASIBLE): int(c) for i, c in enumerate(counts) if c}


def reason_totals(entries, names) -> tuple[int, dict]:
    """(feasible configurations, infeasible reason -> count in the order of ``names``)
    summed over manifest chunk entries. An entry's ``reasons`` is a map (:func:`named_reasons`)
    or, in manifests written before it was, a list of counts in the order of ``names``."""
    totals = {}
    for entry in entries:
        reasons = entry["reasons"]
        if isinstance(reasons, list):  # an earlier manifest
            reasons = {(names[i] if i < len(names) else f"reason {i}") or FEASIBLE: c
                       for i, c in enumerate(reasons)}
        for name, count in reasons.items():
            totals[name] = totals.get(name, 0) + int(count)
    feasible = totals.pop(FEASIBLE, 0)
    rank = {n: i for i, n in enumerate(names)}
    named = {n: c for n, c in sorted(totals.items(), key=lambda kv: rank.get(kv[0], 1 << 30))
             if c}
    return feasible, named


def _manifest_problem(data) -> str | None:
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, expected an object"
    types = {"spec_hash": str, "chunk_rows": int, "done": dict, "complete": bool}
    for key, typ in types.items():
        value = data.get(key)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            return f"{key} missing or not a {typ.__name__}"
    if data["chunk_rows"] < 1:
        return "chunk_rows below 1"
    for index, entry in data["done"].items():
        if not (index.isdigit() and isinstance(entry, dict)
                and isinstance(entry.get("n"), int) and isinstance(entry.get("files"), list)
                and isinstance(entry.get("reasons"), (list, dict))):
            return f"done[{index!r}] malformed"
    return None


def _walk(folder: Path):
    """(path, is_file) of everything under ``folder``, without following symbolic links;
    folders come after their contents."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            yield Path(root) / name, True
        for name in dirs:
            path = Path(root) / name
            yield path, not path.is_dir() or path.is_symlink()


def sweep_files(out_dir: Path, manifest: dict | None, n_chunks: int | None = None):
    """Files in ``out_dir`` a sweep wrote, and the first file that is not dse's but sits
    where a sweep writes (None if there is none).

    Without a manifest no file is dse's, and any of :data:`NAMES` is in the way. With one,
    a chunk file counts when its chunk index is below ``n_chunks`` (default: any index).
    """
    owned = []
    for name in NAMES:
        path = out_dir / name
        if not os.path.lexists(path):
            continue
        if manifest is None:
            return [], path
        if name in FOLDERS:
            if path.is_symlink() or not path.is_dir():
                return owned, path
            pattern = _PART if name in TABLE_DIRS else _PARTIAL
            for sub, is_file in _walk(path):
                if not is_file:  # a folder: hive-style key=value under the table only
                    if name in TABLE_DIRS and "=" in sub.name:
                        continue
                    return owned, sub
                m = pattern.fullmatch(sub.name)
                if m and (n_chunks is None or int(m.group(1)) < n_chunks) \
                        and not sub.is_symlink():
                    owned.append(sub)
                else:
                    return owned, sub
        elif path.is_file() and not path.is_symlink():
            owned.append(path)
        else:
            return owned, path
    owned += [out_dir / n for n in _TABLE_TMP if os.path.lexists(out_dir / n)]
    return owned, None


def remove(files, out_dir: Path) -> None:
    """Delete ``files``, then the folders of :data:`FOLDERS` left empty (bottom up)."""
    for path in files:
        path.unlink(missing_ok=True)
    for name in FOLDERS:
        top = out_dir / name
        if top.is_dir() and not top.is_symlink():
            for sub, is_file in _walk(top):
                if not is_file:
                    _rmdir_if_empty(sub)
            _rmdir_if_empty(top)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty
        pass


def foreign_error(out_dir: Path, path: Path) -> OutputError:
    kind = ("a symbolic link" if path.is_symlink() else
            "a folder" if path.is_dir() else "a file")
    return OutputError(f"{path}: {kind} that dse did not write, where the sweep writes; "
                       "--overwrite and --resume touch only dse's own files: move it, or "
                       "choose another --out")


def remove_incomplete(out_dir: Path, manifest: dict, n_chunks: int) -> None:
    """Before resuming: delete temporary files and the files of chunks that did not finish
    (a chunk's files count only once the manifest lists it as done)."""
    owned, foreign = sweep_files(out_dir, manifest, n_chunks)
    if foreign is not None:
        raise foreign_error(out_dir, foreign)
    done = {int(i) for i in manifest["done"]}
    stale = []
    for path in owned:
        m = _PART.fullmatch(path.name) or _PARTIAL.fullmatch(path.name)
        if m and (m.group(2) or int(m.group(1)) not in done):
            stale.append(path)
        elif path.name in _TABLE_TMP:
            stale.append(path)
    for path in stale:
        path.unlink(missing_ok=True)


def clear(out_dir: Path) -> None:
    """``--overwrite``: remove an earlier sweep's files (only dse's own) from ``out_dir``;
    a file in the way that is not dse's is refused before anything is removed."""
    manifest = None
    if os.path.lexists(out_dir / MANIFEST):
        manifest = read_manifest(out_dir)
    owned, foreign = sweep_files(out_dir, manifest)
    if foreign is not None:
        raise foreign_error(out_dir, foreign)
    remove(owned, out_dir)


def remove_if_empty(out_dir: Path) -> None:
    """Remove ``out_dir`` if nothing is in it (a run that made it and then failed)."""
    _rmdir_if_empty(out_dir)
