"""`--json` on `dse list`, `dse explain` and `dse validate` (issue 13 item 8): one JSON
document on stdout that matches what the text form and the Python API say."""
import json

import pytest

import dse
from dse.cli import main
from dse.config import bundled_names
from dse.explain import explain


def _json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("what", ["hardware", "models", "engines", "quant"])
def test_list_json_has_every_preset(capsys, what):
    rows = _json(capsys, "list", what, "--json")
    assert [r["name"] for r in rows] == bundled_names(what)
    assert all("text" not in r for r in rows)


def test_list_json_hardware_fields(capsys):
    h100 = {r["name"]: r for r in _json(capsys, "list", "hardware", "--json")}["h100_sxm"]
    hw = dse.load_hardware("h100_sxm")
    assert h100["memory_bytes_per_s"] == hw.memory_bytes_per_s
    assert h100["flops_per_s"]["fp8"] == hw.flops_per_s["fp8"]
    assert set(h100["efficiency_curves"]) == set(hw.efficiency_curves)


def test_explain_json_matches_the_api(capsys):
    axes = dict(hardware="h100_sxm", model="llama3_8b", serving="static", batch=4, tp=2,
                input_tokens=512, output_tokens=64)
    doc = _json(capsys, "explain", "--hardware", "h100_sxm", "--model", "llama3_8b",
                "--serving", "static", "--batch", "4", "--tp", "2", "--input-tokens", "512",
                "--output-tokens", "64", "--json")
    table, summary = explain(**axes)
    assert doc["summary"]["tpot_s"] == pytest.approx(summary["tpot_s"], rel=1e-12)
    assert [r["op"] for r in doc["operators"]] == table["op"].tolist()


def test_validate_json_in_a_working_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from dse.validate import bundled_measured_path
    doc = _json(capsys, "validate", str(bundled_measured_path()), "--out", "val", "--json")
    assert doc["output"] == "val/validation.parquet" and (tmp_path / doc["output"]).is_file()
    assert len(doc["rows"]) == 32 and doc["scorecard"][-1]["hardware"] == "all"
    errs = [r["tpot_error_pct"] for r in doc["rows"]]
    assert any(e is None for e in errs) and any(isinstance(e, float) for e in errs)


def test_run_sweep_returns_handles_to_its_tables(tmp_path, monkeypatch):
    # issue 13 item 8: the Python API hands back the tables, not only counts
    monkeypatch.chdir(tmp_path)
    spec = dse.parse_sweep({"grid": {"model": ["llama3_8b"], "batch": [1, 8], "tp": [1, 2]}})
    s = dse.run_sweep(spec, "out", progress=False)
    assert len(s.pareto()) == s.n_pareto and len(s.best()) == s.n_groups_with_best
    assert s.results().count_rows() == s.n_configs
    s2 = dse.run_sweep(spec, "out2", progress=False, results=False)
    assert s2.results() is None
