"""Numba kernels and their plain-numpy reference.

Importable as ``dse.kernels``. This package imports only numpy and numba, never ``dse``:
everything it needs arrives as small dense tables whose layout is defined in
:mod:`dse.kernels.layout`.

Compiled kernels are cached (``cache=True``). Numba invalidates a cached function only when
its own source file changes, but the kernels bake in constants from ``layout.py``; so the
cache lives in a folder keyed by a hash of all kernel sources
(``$XDG_CACHE_HOME/dse/numba/<hash>``, default ``~/.cache``), and any change to any kernel
file starts a fresh cache. Inside it the compiled files do not depend on where the
sources are installed: a fresh clone or a new environment with the same kernels loads them
instead of compiling again. ``NUMBA_CACHE_DIR``, when set, takes precedence (with numba's
own per-folder layout).

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


def _share_cache_across_folders() -> None:
    """Make numba file this package's compiled kernels under ``CACHE_DIR/kernels`` whatever
    folder the sources sit in.

    Numba's own locator keys the cache files on the source folder's absolute path, so a
    fresh clone or a new environment with the very same kernels compiled everything again
    (1-2 minutes). ``CACHE_DIR`` is already keyed by the content of every kernel source
    (:func:`_cache_dir`), so its name serves as every file's source stamp. Numba looks for
    a locator class by class in ``CacheImpl._locator_classes``; where its internals differ
    (other numba versions) the default stays.
    """
    from numba.core import caching
    base = (getattr(caching, "UserProvidedCacheLocator", None)
            or getattr(caching, "_UserProvidedCacheLocator", None))
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    if base is None or not isinstance(classes, list):
        return
    here = Path(__file__).resolve().parent
    if any(getattr(c, "dse_kernels", None) == here for c in classes):
        return  # this folder's locator is in place (the package imported twice)

    class SharedCacheLocator(base):
        dse_kernels = here

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = os.path.join(numba.config.CACHE_DIR, "kernels")

        def get_source_stamp(self):
            # the folder above the files: named by the kernel sources' hash
            return os.path.basename(os.path.dirname(self._cache_path))

        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve().parent != here:
                return None  # not one of ours: numba's next locator
            return super().from_function(py_func, py_file)

    classes.insert(0, SharedCacheLocator)


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(_cache_dir())
    _use_cache(Path(numba.config.CACHE_DIR))
    _share_cache_across_folders()
