"""Golden outputs: a small sweep's tables (schema and values) must not change unless a
change of results is intended.

Refactors (the axis registry, one timing path, Arrow-built reductions) promise identical
tables; this pins them. Values are compared as digests per column, floats rounded to 12
significant digits (a last-bit difference between numpy builds is not a change of
results). After an intended change, regenerate with::

    DSE_UPDATE_GOLDEN=1 python3 -m pytest -q tests/test_golden.py

and say why in the commit message.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from dse.cli import main

GOLDEN = Path(__file__).parent / "golden" / "small_sweep.json"
SPEC = """\
[grid]
hardware = ["h100_sxm", "mi300x", "tpu_v5e"]
model = ["llama3_8b", "mixtral_8x7b", "deepseek_v3", "jamba_v0_1"]
serving = ["static"]  # pinned: the stored tables are static batches (the default is continuous)
batch = [1, 16, 256]
input_tokens = [128, 8192]
output_tokens = [1, 512]
tp = [1, 2, 8]
pp = [1, 4]
ep = [1, 8]
attention_dp = [1, 2]
dp = [1, 2]
weight_dtype = ["bf16", "fp8", "int4"]
kv_dtype = ["same", "fp8"]

[what_if]
memory_bandwidth_scale = [1.0, 1.5]
memory_capacity_scale = [1.0, 2.0]

[constraints]
max_devices = 32
max_tpot_s = 0.1
"""


def _column_digest(values: pd.Series) -> str:
    if pd.api.types.is_float_dtype(values):
        arr = values.to_numpy(dtype=float, na_value=np.nan)
        text = np.char.mod("%.12g", arr)
    else:
        text = [str(v) for v in values]
    return hashlib.sha256("\x1f".join(text).encode()).hexdigest()[:16]


def _digest(path: Path) -> dict:
    """Schema (names and Arrow types) and per-column value digests of a table."""
    frame = pd.read_parquet(path)
    if path.is_dir():  # hive partitions come back as categoricals: a stable row order
        frame = frame.astype({c: str for c in ("hardware", "model")})
    keys = [c for c in ("hardware", "model", "input_tokens", "output_tokens", "batch", "tp",
                        "pp", "ep", "attention_dp", "dp", "weight_dtype", "act_dtype",
                        "kv_dtype", "compute_scale", "memory_bandwidth_scale",
                        "memory_capacity_scale", "scaleup_bandwidth_scale",
                        "scaleout_bandwidth_scale") if c in frame.columns]
    frame = frame.astype({c: str for c in keys if isinstance(frame[c].dtype,
                                                             pd.CategoricalDtype)})
    frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    schema = pq.read_schema(path if path.is_file() else next(path.rglob("*.parquet")))
    return {"rows": len(frame),
            "schema": [f"{f.name}: {f.type}" for f in schema],
            "columns": {c: _column_digest(frame[c]) for c in frame.columns}}


def test_small_sweep_tables_are_unchanged(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text(SPEC)
    assert main(["sweep", "s.toml", "--out", "out", "--quiet", "--memory-limit", "2GB"]) == 0
    # the key "results" names the results table, whose folder is configurations/
    got = {name: _digest(Path("out") / ("configurations" if name == "results" else name))
           for name in ("results", "pareto.parquet", "best.parquet")}
    if os.environ.get("DSE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    for name in want:
        assert got[name]["rows"] == want[name]["rows"], name
        assert got[name]["schema"] == want[name]["schema"], name
        changed = [c for c in want[name]["columns"]
                   if got[name]["columns"].get(c) != want[name]["columns"][c]]
        assert not changed, f"{name}: values changed in {changed}"
        assert set(got[name]["columns"]) == set(want[name]["columns"]), name
