"""Numba kernels and their plain-numpy reference.

Importable as ``dse.kernels``. This package imports only numpy and numba, never ``dse``:
everything it needs arrives as small dense tables whose layout is defined in
:mod:`dse.kernels.layout`.

Compiled kernels are cached (``cache=True``). Numba invalidates a cached function only when
its own source file changes, but the kernels bake in constants from ``layout.py``; so the
cache lives in a folder keyed by a hash of all kernel sources
(``$XDG_CACHE_HOME/dse/numba/<hash>``, default ``~/.cache``), and any change to any kernel
file starts a fresh cache. ``NUMBA_CACHE_DIR``, when set, takes precedence.
"""
import hashlib
import os
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


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(_cache_dir())
