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


_PROBE = """
import sys
from numba.core import event

class Count(event.Listener):
    n = 0
    def on_start(self, e):
        Count.n += 1
    def on_end(self, e):
        pass

event.register("numba:compile", Count())
sys.path.insert(0, sys.argv[1])
from kernels.formulas import expected_max_normal
print(expected_max_normal(8.0), Count.n)
"""


def test_kernels_compiled_in_one_folder_load_in_another(tmp_path):
    # a fresh clone or a new environment with the same kernel sources loads the compiled
    # kernels instead of compiling them again (numba's own locator keys on the folder)
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    src = Path(kernels.__file__).parent
    for copy in ("a", "b"):
        shutil.copytree(src, tmp_path / copy / "kernels",
                        ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    runs = [subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / copy)], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
            for copy in ("a", "b")]
    assert int(runs[0][1]) > 0        # the first folder compiles
    assert runs[1] == [runs[0][0], "0"]  # the second loads it: same value, no compilation
    assert list((tmp_path / "cache" / "dse" / "numba").glob("*/kernels/*.nbi"))
