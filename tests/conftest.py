import contextlib
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

import dse
from dse.cli import main


def small_spec(**grid):
    """A sweep spec from keyword axes ([what_if] via what_if=..., [constraints] via constraints=...)."""
    what_if = grid.pop("what_if", {})
    constraints = grid.pop("constraints", {})
    data = {"grid": grid}
    if what_if:
        data["what_if"] = what_if
    if constraints:
        data["constraints"] = constraints
    return dse.parse_sweep(data)


@pytest.fixture
def spec_factory():
    return small_spec


def cli_error(capsys, folder, *argv) -> str:
    """Run the CLI on ``argv``; assert exit 2, one stderr line, no traceback and no file
    added, changed or removed under ``folder``. Returns the line."""
    def listing():
        return {p: p.read_bytes() if p.is_file() and not p.is_symlink() else None
                for p in sorted(folder.rglob("*"))}
    before = listing()
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("dse: error: "), err
    assert "Traceback" not in err
    assert listing() == before
    return lines[0]


def scalar_preset_text(name: str) -> str:
    """Bundled hardware preset ``name`` without its efficiency curves (the scalar model the
    hand calculations price)."""
    from dse.config import load_hardware
    return "\n".join(line for line in load_hardware(name).text.splitlines()
                     if not line.strip().startswith("efficiency.")) + "\n"


@pytest.fixture(scope="session")
def h100_scalar(tmp_path_factory):
    """Path of the h100_sxm preset without its efficiency curves."""
    path = tmp_path_factory.mktemp("presets") / "h100_sxm.toml"
    path.write_text(scalar_preset_text("h100_sxm"))
    return str(path)


def finished_sweep(folder: Path, spec: str, *options: str) -> Path:
    """``folder`` made a working directory holding spec.toml (``spec``) and its finished
    sweep in results/ (``dse sweep spec.toml --out results --quiet *options`` run there,
    its printed answer dropped). Returns ``folder``."""
    (folder / "spec.toml").write_text(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["sweep", "spec.toml", "--out", "results", "--quiet", *options]) == 0
    return folder


@pytest.fixture
def sweep_here(tmp_path, monkeypatch):
    """``sweep_here(spec, *options)`` runs ``dse sweep spec.toml --out results --quiet
    *options`` as a user would, with relative paths from the test's ``tmp_path`` made its
    working directory (``finished_sweep``), and returns (best, configurations): the sweep's
    best.parquet and configurations/ read back from there as DataFrames."""
    monkeypatch.chdir(tmp_path)

    def run(spec: str, *options: str):
        finished_sweep(tmp_path, spec, *options)
        return pd.read_parquet("results/best.parquet"), pd.read_parquet("results/configurations")
    return run


@pytest.fixture
def here(sweep_folder, monkeypatch):
    """The module's ``sweep_folder`` fixture (a folder from ``finished_sweep``) as the
    working directory of the test."""
    monkeypatch.chdir(sweep_folder)
    return sweep_folder


def copy_sweep(name: str) -> Path:
    """A copy of results/ (the finished sweep, to break) named ``name`` in the working
    directory, replacing any earlier copy."""
    shutil.rmtree(name, ignore_errors=True)
    shutil.copytree("results", name)
    return Path(name)
