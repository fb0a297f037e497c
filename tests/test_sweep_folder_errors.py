"""dse plot and dse report refuse what is not a finished sweep alike: one line on stderr,
exit 2, nothing in the folder added or changed."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from dse.cli import main
from conftest import cli_error

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
def finished(tmp_path_factory):
    """A working directory with a finished sweep in results/."""
    folder = tmp_path_factory.mktemp("folders")
    (folder / "spec.toml").write_text(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["sweep", "spec.toml", "--out", "results", "--quiet",
                         "--no-results"]) == 0
    return folder


@pytest.fixture
def here(finished, monkeypatch):
    monkeypatch.chdir(finished)
    return finished


def _copy(name: str) -> Path:
    """A copy of the finished sweep (to break) in the working directory."""
    shutil.rmtree(name, ignore_errors=True)
    shutil.copytree("results", name)
    return Path(name)


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_folder_that_is_not_a_sweep(here, capsys, command):
    Path("empty").mkdir(exist_ok=True)
    line = cli_error(capsys, here, command, "empty")
    assert "empty: not a dse sweep folder (no manifest.json)" in line


# plot draws a frontier without best.parquet (no stars); the report needs both tables
@pytest.mark.parametrize("command, table", [("plot", "pareto"), ("report", "pareto"),
                                            ("report", "best")])
def test_refuses_missing_table(here, capsys, command, table):
    broken = _copy(f"no_{table}")
    (broken / f"{table}.parquet").unlink()
    line = cli_error(capsys, here, command, f"no_{table}")
    assert f"{Path(f'no_{table}/{table}.parquet')}: missing" in line


@pytest.mark.parametrize("command, table", [("plot", "pareto"), ("report", "pareto"),
                                            ("report", "best")])
def test_refuses_unreadable_table(here, capsys, command, table):
    broken = _copy(f"bad_{table}")
    (broken / f"{table}.parquet").write_bytes(b"not parquet")
    line = cli_error(capsys, here, command, f"bad_{table}")
    assert f"{table}.parquet: not a readable Parquet file" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_unfinished_sweep(here, capsys, command):
    broken = _copy("unfinished")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["complete"] = False
    (broken / "manifest.json").write_text(json.dumps(manifest))
    line = cli_error(capsys, here, command, "unfinished")
    assert "the sweep has not finished" in line and "--resume" in line
