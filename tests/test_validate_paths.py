"""`dse validate` rows that name a hardware preset by its file path give the predictions of
the same preset named by its bundled name (serving rows and disaggregated rows alike)."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from dse.cli import main
from dse.config import bundled_dir
from dse.validate import bundled_measured_path


def _predictions(csv: str, out: str) -> pd.DataFrame:
    assert main(["validate", csv, "--out", out]) == 0
    return pd.read_parquet(f"{out}/validation.parquet")


def test_disaggregated_rows_with_a_preset_path(tmp_path, monkeypatch, capsys):
    table = pd.read_csv(bundled_measured_path().with_name("disaggregated.csv"))
    pick = table[(table.scope == "end_to_end") & (table.prefill_hardware == "h200")].iloc[[0]]
    monkeypatch.chdir(tmp_path)
    shutil.copy(bundled_dir("hardware") / "h200.toml", "my_h200.toml")
    pick.to_csv("by_name.csv", index=False)
    by_path = pick.copy()
    by_path["prefill_hardware"] = "my_h200.toml"
    by_path["decode_hardware"] = "my_h200.toml"
    by_path.to_csv("by_path.csv", index=False)
    a = _predictions("by_name.csv", "a")
    b = _predictions("by_path.csv", "b")
    capsys.readouterr()
    cols = ["predicted_ttft_s", "predicted_tpot_s", "kv_transfer_s"]
    np.testing.assert_allclose(b[cols].to_numpy(float), a[cols].to_numpy(float), rtol=1e-12)
