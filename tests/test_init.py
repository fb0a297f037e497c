"""`dse init`: a commented starter spec with every key, that `dse sweep` runs as written and
with its optional sections uncommented."""
import tomllib

from conftest import cli_error
from dse.axes import AXES
from dse.cli import main
from dse.objectives import Objectives
from dse.config import CONSTRAINT_KEYS, DISAGGREGATED_KEYS, parse_sweep
from dse.init import starter_spec


def test_init_writes_a_spec_the_sweep_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "spec.toml"]) == 0
    assert "dse sweep spec.toml" in capsys.readouterr().out
    data = tomllib.loads((tmp_path / "spec.toml").read_text())
    for axis in AXES:  # every axis of the registry, at its default
        assert data[axis.section][axis.name] == list(axis.default), axis.name
    assert main(["sweep", "spec.toml", "--out", "results", "--quiet"]) == 0
    assert (tmp_path / "results" / "best.parquet").is_file()


def test_optional_sections_parse_when_uncommented():
    text = starter_spec()
    for key in (*CONSTRAINT_KEYS, *DISAGGREGATED_KEYS, "[constraints]", "[disaggregated]",
                "[objectives]", "best", "pareto"):
        assert f"# {key}" in text
    opened = "\n".join(line[2:] if line.startswith(("# [", "# max_", "# mixed_", "# price_",
                                                     "# best =", "# pareto ="))
                       else line for line in text.splitlines())
    opened = opened.replace('serving = ["continuous"]', 'serving = ["continuous", "static"]')
    spec = parse_sweep(tomllib.loads(opened))
    assert spec.constraints.max_devices == 8 and spec.disaggregated is not None
    assert spec.hardware[0].price_per_device_hour_usd == 2.5  # [cost.h100_sxm]
    assert spec.objectives == Objectives()  # the defaults, written out


def test_init_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text("# mine\n")
    line = cli_error(capsys, tmp_path, "init")
    assert "sweep.toml" in line and "--overwrite" in line
    assert (tmp_path / "sweep.toml").read_text() == "# mine\n"
    assert main(["init", "--overwrite"]) == 0
    assert "[grid]" in (tmp_path / "sweep.toml").read_text()
