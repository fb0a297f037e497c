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
