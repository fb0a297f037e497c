"""Numba kernels and their plain-numpy reference.

Importable as ``dse.kernels``. This package imports only numpy and numba, never ``dse``:
everything it needs arrives as small dense tables whose layout is defined in
:mod:`dse.kernels.layout`.

Compiled kernels are cached (``cache=True``). Numba invalidates a cached function only when
its own source file changes, but the kernels bake in constants from ``layout.py``; so the
cache lives in a folder keyed by a hash of all kernel sources
(``$XDG_CACHE_HOME/dse/numba/<hash>``, default ``~/.cache``), and any change to any kernel
file starts a fresh cache. ``NUMBA_CACHE_DIR``, when set, takes precedence.

Each import marks its folder as used (its modification time); when a fresh folder is
started (after an upgrade), folders of other kernel versions unused for ``STALE_DAYS`` are
removed, so upgrades do not pile up caches.
"""
import hashlib
import os
import shutil
import time
from pathlib import Path

import numba


def _cache_dir() -> Path:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(numba.__version__.encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "dse" / "numba" / digest.hexdigest()[:16]


STALE_DAYS = 30


def _prune_stale(current: Path, max_age_s: float = STALE_DAYS * 86400.0) -> None:
    """Remove the sibling cache folders of ``current`` unused for ``max_age_s``."""
    now = time.time()
    for other in current.parent.glob("*"):
        try:
            if other != current and other.is_dir() and now - other.stat().st_mtime > max_age_s:
                shutil.rmtree(other, ignore_errors=True)
        except OSError:
            pass  # another process removed it, or no permission: not ours to insist


def _use_cache(path: Path) -> None:
    if not path.exists():
        _prune_stale(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.utime(path)  # marks this kernel version's cache as in use
    except OSError:
        pass  # read-only home: numba falls back to compiling without a cache


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(_cache_dir())
    _use_cache(Path(numba.config.CACHE_DIR))
