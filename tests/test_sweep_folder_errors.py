"""dse plot and dse report refuse what is not a finished sweep alike: one line on stderr,
exit 2, nothing in the folder added or changed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli_error, copy_sweep, finished_sweep

SPEC = """
[grid]
hardware = ["h100_sxm"]
model = ["llama3_8b"]
batch = [1, 8]
output_tokens = [16]
tp = [1, 2]
"""
COMMANDS = ("plot", "report")


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A working directory with a finished sweep in results/."""
    return finished_sweep(tmp_path_factory.mktemp("folders"), SPEC, "--no-results")


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_folder_that_is_not_a_sweep(here, capsys, command):
    Path("empty").mkdir(exist_ok=True)
    line = cli_error(capsys, here, command, "empty")
    assert "empty: not a dse sweep folder (no manifest.json)" in line


# plot draws a frontier without best.parquet (no stars); the report needs both tables
@pytest.mark.parametrize("command, table", [("plot", "pareto"), ("report", "pareto"),
                                            ("report", "best")])
def test_refuses_missing_table(here, capsys, command, table):
    broken = copy_sweep(f"no_{table}")
    (broken / f"{table}.parquet").unlink()
    line = cli_error(capsys, here, command, f"no_{table}")
    assert f"{Path(f'no_{table}/{table}.parquet')}: missing" in line


@pytest.mark.parametrize("command, table", [("plot", "pareto"), ("report", "pareto"),
                                            ("report", "best")])
def test_refuses_unreadable_table(here, capsys, command, table):
    broken = copy_sweep(f"bad_{table}")
    (broken / f"{table}.parquet").write_bytes(b"not parquet")
    line = cli_error(capsys, here, command, f"bad_{table}")
    assert f"{table}.parquet: not a readable Parquet file" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_unfinished_sweep(here, capsys, command):
    broken = copy_sweep("unfinished")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["complete"] = False
    (broken / "manifest.json").write_text(json.dumps(manifest))
    line = cli_error(capsys, here, command, "unfinished")
    assert "the sweep has not finished" in line and "--resume" in line
