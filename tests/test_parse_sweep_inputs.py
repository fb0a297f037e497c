"""dse.parse_sweep takes a spec as a notebook user has it: a dict, TOML text or a path."""
from pathlib import Path

import pytest

import dse
from dse.config import ConfigError


def test_parse_sweep_takes_dict_text_and_path(tmp_path, monkeypatch):
    text = '[grid]\nmodel = ["llama3_8b"]\nbatch = [1, 8]\n'
    assert dse.parse_sweep(text).grid["batch"] == (1, 8)
    assert dse.parse_sweep({"grid": {"batch": [4]}}).grid["batch"] == (4,)
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text('[grid]\nbatch = [2]\n')
    for given in (Path("s.toml"), "s.toml"):
        spec = dse.parse_sweep(given)
        assert spec.grid["batch"] == (2,) and spec.source == "s.toml"


@pytest.mark.parametrize("given, message", [
    ("[grid\n", "<api>: malformed TOML: Expected ']'"),
    (3, "<api>: a sweep spec is a dict, TOML text or a path to a .toml file, not int"),
    ("missing.toml", "missing.toml"),
])
def test_parse_sweep_bad_input_is_one_line(given, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        dse.parse_sweep(given)
    assert message in str(e.value) and "\n" not in str(e.value)
