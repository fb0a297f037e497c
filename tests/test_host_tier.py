"""The host tier for offload in the hardware presets: ``host_memory_bytes`` (host DRAM per
device) and ``host_link_bytes_per_s`` (host-to-device link per device, one direction). They
parse from the bundled presets, a bad value is refused with the one-line error that names the
file and key, a GPU preset gives both or neither, and ``dse list hardware`` shows them.

The CLI tests run in a temporary working directory and name their files by relative path,
as a user in their own folder would.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dse
from conftest import cli_error
from dse.cli import main
from dse.config import ConfigError, bundled_dir, bundled_names

HOST_KEYS = ("host_memory_bytes", "host_link_bytes_per_s")


def test_host_tier_gh200_parses_grace_memory_and_nvlink_c2c():
    # NVIDIA GH200 datasheet: up to 480 GB LPDDR5X; NVLink-C2C 900 GB/s bidirectional
    hw = dse.load_hardware("gh200")
    assert hw.host_memory_bytes == 480e9
    assert hw.host_link_bytes_per_s == 450e9


def test_host_tier_eight_gpu_server_is_system_memory_over_eight():
    # NVIDIA DGX H100: 2 TB (2,048 GB of DIMMs) for 8 GPUs; PCIe Gen5 x16: 64 GB/s per direction
    hw = dse.load_hardware("h100_sxm")
    assert hw.host_memory_bytes == 2048e9 / 8
    assert hw.host_link_bytes_per_s == 64e9


def test_host_tier_absent_is_zero():
    for name in ("xeon_6980p", "epyc_9965"):  # a CPU's host memory is its device memory
        hw = dse.load_hardware(name)
        assert hw.host_memory_bytes == 0 and hw.host_link_bytes_per_s == 0


@pytest.mark.parametrize("name", bundled_names("hardware"))
def test_host_tier_gpu_preset_gives_both_keys_or_neither(name):
    hw = dse.load_hardware(name)
    memory, link = hw.host_memory_bytes, hw.host_link_bytes_per_s
    assert (memory > 0) == (link > 0), (name, memory, link)
    if hw.family == "cpu":
        assert memory == 0, "a CPU's host memory is its device memory"
    if memory:
        # a figure per device, not per node or rack, and the link below HBM bandwidth
        assert 32e9 <= memory <= 1e12, name
        assert 16e9 <= link < hw.memory_bytes_per_s, name
    # every key the preset sets carries a source comment, like every other key
    for key in HOST_KEYS:
        for line in hw.text.splitlines():
            if line.startswith(f"{key} ="):
                assert "#" in line and len(line.split("#", 1)[1].strip()) > 20, (name, line)


def test_host_tier_every_bundled_gpu_preset_says_why_when_unset():
    for name in bundled_names("hardware"):
        hw = dse.load_hardware(name)
        if not hw.host_memory_bytes:
            assert re.search(r"^# host_memory_bytes, host_link_bytes_per_s: not set: \S",
                             hw.text, flags=re.M), name


def _write_preset(folder: Path, key: str, value: str) -> Path:
    """my_gpu.toml in ``folder``: the bundled h100_sxm with ``key`` set to ``value``."""
    text = (bundled_dir("hardware") / "h100_sxm.toml").read_text()
    text = text.replace('name = "h100_sxm"', 'name = "my_gpu"')
    edited = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    assert edited != text
    path = folder / "my_gpu.toml"
    path.write_text(edited)
    return path


BAD = [
    pytest.param("-1e9", "= -1000000000.0: must be positive", id="negative"),
    pytest.param('"480e9"', "= '480e9': must be a positive number", id="string"),
    pytest.param("true", "= True: must be a positive number", id="bool"),
]


@pytest.mark.parametrize("key", HOST_KEYS)
@pytest.mark.parametrize("value, problem", BAD)
def test_host_tier_bad_value_is_refused_naming_file_and_key(tmp_path, key, value, problem):
    path = _write_preset(tmp_path, key, value)
    with pytest.raises(ConfigError) as err:
        dse.load_hardware(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key} {problem}"), message


@pytest.mark.parametrize("key", HOST_KEYS)
@pytest.mark.parametrize("value, problem", BAD)
def test_host_tier_bad_value_is_one_cli_line(tmp_path, monkeypatch, capsys, key, value,
                                             problem):
    monkeypatch.chdir(tmp_path)
    _write_preset(Path("."), key, value)
    line = cli_error(capsys, tmp_path, "explain", "--hardware", "my_gpu.toml",
                     "--model", "llama3_8b")
    assert line == f"dse: error: my_gpu.toml: {key} {problem}", line


def test_host_tier_list_hardware_shows_host_columns(capsys):
    assert main(["list", "hardware"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0]
    assert "host GB" in header and "host link GB/s" in header
    start, end = header.index("domain") + len("domain"), header.index("host link GB/s")
    cells = {}
    for line in out[1:]:
        # the two right-aligned columns end where their headers end
        memory = line[start:start + len(" host GB")].strip()
        link = line[start + len(" host GB"):end + len("host link GB/s")].strip()
        cells[line.split()[0]] = (memory, link)
    assert set(cells) == set(bundled_names("hardware"))
    assert cells["gh200"] == ("480", "450")
    assert cells["h100_sxm"] == ("256", "64")
    assert cells["xeon_6980p"] == ("", ""), "blank where the preset has no host tier"
    assert cells["tpu_v5e"] == ("", "")


def test_host_tier_list_hardware_json_carries_both_fields(capsys):
    assert main(["list", "hardware", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name, row in rows.items():
        hw = dse.load_hardware(name)
        assert row["host_memory_bytes"] == hw.host_memory_bytes
        assert row["host_link_bytes_per_s"] == hw.host_link_bytes_per_s
    assert rows["gh200"]["host_memory_bytes"] == 480e9
    assert rows["epyc_9965"]["host_link_bytes_per_s"] == 0
