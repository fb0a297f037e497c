"""The numba cache folder: one per kernel version, stale ones pruned on upgrade."""
from __future__ import annotations

import os
import time

from dse import kernels


def test_new_cache_folder_prunes_stale_siblings_only(tmp_path):
    root = tmp_path / "numba"
    stale, recent = root / "aaaa", root / "bbbb"
    for d in (stale, recent):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f.nbi").write_bytes(b"x")
    old = time.time() - (kernels.STALE_DAYS + 1) * 86400
    os.utime(stale, (old, old))
    current = root / "cccc"
    kernels._use_cache(current)
    assert current.is_dir() and recent.is_dir() and not stale.exists()


def test_existing_cache_folder_is_marked_used_and_prunes_nothing(tmp_path):
    root = tmp_path / "numba"
    current, stale = root / "cccc", root / "aaaa"
    current.mkdir(parents=True)
    stale.mkdir()
    old = time.time() - (kernels.STALE_DAYS + 1) * 86400
    for d in (current, stale):
        os.utime(d, (old, old))
    kernels._use_cache(current)
    assert stale.exists()  # only a fresh folder (an upgrade) prunes
    assert time.time() - current.stat().st_mtime < 60
