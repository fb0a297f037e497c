"""``dse sweep`` prints its answer: the best configuration per group, where the files are,
the next command; ``--json`` the same as one JSON object; ``--quiet`` nothing.

Sweeps run in-process in a temporary working directory with relative paths. The spec has
six groups (2 hardware x 3 input lengths), one more than the table shows.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import cli_error
from dse.answer import SHOWN_GROUPS, _seconds
from dse.cli import main

SPEC = """\
[grid]
hardware = ["h100_sxm", "a100_80gb"]
model = ["llama3_8b"]
batch = [1, 8]
input_tokens = [128, 256, 512]
output_tokens = [16]
tp = [1, 2]
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("spec.toml").write_text(SPEC)
    return tmp_path


def _sweep(capsys, *argv):
    """(exit status, stdout without the first run's compile note, stderr)."""
    code = main(["sweep", "spec.toml", *argv])
    out, err = capsys.readouterr()
    out = "".join(line for line in out.splitlines(keepends=True)
                  if not line.startswith("(first run: numba compiled"))
    return code, out, err


def _best_rows(path) -> list[dict]:
    """best.parquet as dicts, NaN as None (what JSON can hold)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in pq.read_table(path).to_pylist()]


def test_sweep_answer_table_files_and_next_command(here, capsys):
    code, out, _ = _sweep(capsys, "--out", "results")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("24 configurations (") and lines[0].endswith("-> results/")
    assert lines[1].startswith("best configuration per group")
    head = lines[2].split()
    assert head[:5] == ["model", "in/out", "tokens", "hardware", "strategy"]
    assert head[-4:] == ["tokens/s/device", "TTFT", "TPOT", "why"]
    best = _best_rows("results/best.parquet")
    assert len(best) == 6
    rows = lines[3:3 + SHOWN_GROUPS]
    for line, row in zip(rows, best):
        assert re.split(" {2,}", line.strip()) == [
            row["model"], f"{row['input_tokens']}/{row['output_tokens']}", row["hardware"],
            f"tp={row['tp']} batch={row['batch']} {row['weight_dtype']}",
            f"{row['tokens_per_s_per_device']:,.0f}", _seconds(row["ttft_s"]),
            _seconds(row["tpot_s"]), f"at the edge: {row['edge_axes'].replace(',', ', ')}"]
    # the columns line up
    assert len({line.index("tp=") for line in rows}) == 1
    assert len({line.index("at the edge") for line in rows}) == 1
    more = f"  … and 1 more group (all in {Path('results/best.parquet')})"
    assert lines[3 + SHOWN_GROUPS] == more
    rest = "\n".join(lines[4 + SHOWN_GROUPS:])
    for path in ("results/configurations/", "results/pareto.parquet", "results/best.parquet",
                 "results/manifest.json"):
        assert str(Path(path)) in rest
    assert lines[-1].startswith("next: dse report results")
    assert "dse plot results" in lines[-1]


def test_sweep_json_matches_best_parquet(here, capsys):
    code, out, _ = _sweep(capsys, "--out", "results", "--json")
    assert code == 0
    data = json.loads(out)  # one object, nothing else on stdout
    assert data["best"] == _best_rows("results/best.parquet")
    assert data["best_left_out"] == 0
    assert data["n_configs"] == 24 and data["n_groups"] == 6
    assert data["n_groups_with_best"] == sum(r["found"] for r in data["best"])
    assert data["n_pareto"] == pq.read_metadata("results/pareto.parquet").num_rows
    assert data["files"] == {"results": str(Path("results/configurations")),
                             "pareto": str(Path("results/pareto.parquet")),
                             "best": str(Path("results/best.parquet")),
                             "manifest": str(Path("results/manifest.json"))}
    assert all(Path(p).exists() for p in data["files"].values())
    assert data["next"] == "dse report results"
    assert data["seconds"]["total"] > 0


def test_sweep_json_without_results_lists_only_written_files(here, capsys):
    code, out, _ = _sweep(capsys, "--out", "tables", "--json", "--no-results")
    assert code == 0
    assert set(json.loads(out)["files"]) == {"pareto", "best", "manifest"}


def test_sweep_quiet_prints_nothing(here, capsys):
    code, out, err = _sweep(capsys, "--out", "results", "--quiet")
    assert (code, out, err) == (0, "", "")


def test_sweep_json_and_quiet_refused(here, capsys):
    line = cli_error(capsys, here, "sweep", "spec.toml", "--out", "results", "--json",
                     "--quiet")
    assert "--json" in line and "--quiet" in line


def test_sweep_answer_when_no_configuration_meets_the_constraints(here, capsys):
    Path("spec.toml").write_text(SPEC + "\n[constraints]\nmax_tpot_s = 1e-6\n")
    code, out, _ = _sweep(capsys, "--out", "results")
    assert code == 0
    rows = out.splitlines()[3:3 + SHOWN_GROUPS]
    assert all("none meets the constraints" in r for r in rows)
    code, out, _ = _sweep(capsys, "--out", "again", "--json")
    assert [r["found"] for r in json.loads(out)["best"]] == [False] * 6


def test_sweep_json_when_nothing_is_feasible(here, capsys):
    Path("spec.toml").write_text('[grid]\nhardware = ["h100_sxm"]\nmodel = ["llama3_70b"]\n')
    code, out, err = _sweep(capsys, "--out", "results", "--json")
    assert code == 3
    # stderr: the progress line (not a terminal), then the one-line notice
    assert err.splitlines()[-1].startswith("dse: ")
    assert "no feasible configuration" in err
    data = json.loads(out)
    assert data["n_feasible"] == 0 and data["reason_counts"]["out_of_memory"] == 1
    assert [r["found"] for r in data["best"]] == [False]


def test_sweep_report_option_writes_the_page_in_the_same_command(here, capsys):
    code, out, _ = _sweep(capsys, "--out", "with_report", "--report")
    assert code == 0
    page = Path("with_report/report.html")
    assert page.is_file() and "<html" in page.read_text(encoding="utf-8")[:200].lower()
    lines = out.splitlines()
    assert any(line.strip().startswith(str(page)) and "HTML report" in line
               for line in lines)
    assert lines[-1] == f"next: open {page} in a browser; dse plot with_report for PNG/SVG"
    code, out, _ = _sweep(capsys, "--out", "with_report", "--report", "--json",
                          "--overwrite")
    data = json.loads(out)
    assert data["files"]["report"] == str(page) and data["next"] == f"open {page}"
