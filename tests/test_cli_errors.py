"""Bad input to ``dse sweep``: exit status 2, one line on stderr, nothing under --out.

Every case writes its sweep spec to ``tmp_path`` and checks that the message names the
file, the key and the value (and what would be valid where the brief of that check says
so), and that neither the output folder nor a staging folder beside it was left behind.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest

from conftest import cli_error
from dse.cli import main
from dse.config import bundled_dir

# A tiny valid grid: one hardware, one model, one value per axis.
TINY_GRID = """\
[grid]
hardware = ["h100_sxm"]
model = ["llama3_8b"]
batch = [1, 8]
input_tokens = [128]
output_tokens = [16]
"""


# What a completed sweep leaves in --out (configurations/ is a folder; _chunks/ is gone).
OUT_LISTING = ["best.parquet", "configurations", "manifest.json", "pareto.parquet"]

# input_tokens x output_tokens = 2000 x 2000 = 4e6 groups: their Pareto / best state
# (2048 bytes a group, 8.2 GB) does not fit a 1 GB --memory-limit.
_AXIS_2000 = "[" + ", ".join(str(i) for i in range(1, 2001)) + "]"
TOO_MANY_GROUPS = f"[grid]\ninput_tokens = {_AXIS_2000}\noutput_tokens = {_AXIS_2000}\n"


# --------------------------------------------------------------------------- helpers
def _write_spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _snapshot(folder: Path) -> dict:
    """Relative path -> bytes of every file under ``folder`` (dirs as None)."""
    snap = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            snap[os.path.relpath(os.path.join(root, d), folder)] = None
        for f in files:
            p = os.path.join(root, f)
            snap[os.path.relpath(p, folder)] = Path(p).read_bytes()
    return snap


def _run_sweep(capsys, spec, out, *extra):
    rc = main(["sweep", str(spec), "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _assert_one_line_error(err: str, *parts: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("dse: error: "), line
    assert "Traceback" not in err
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"
    return line


def _results_rows(out: Path) -> int:
    """Rows of the hive-partitioned ``out/results`` dataset."""
    return pads.dataset(out / "configurations", format="parquet", partitioning="hive").count_rows()


def _assert_bad_spec(tmp_path, capsys, text, *parts, before=None, extra=()):
    """Write ``text`` as the spec, run the sweep, check exit 2 and an untouched tmp_path."""
    spec = _write_spec(tmp_path, text)
    out = tmp_path / "out"
    if before is None:
        before = set(os.listdir(tmp_path))
    rc, stdout, err = _run_sweep(capsys, spec, out, *extra)
    assert rc == 2
    line = _assert_one_line_error(err, str(spec), *parts)
    assert not out.exists()
    # no staging folder or temporary file left next to --out
    assert set(os.listdir(tmp_path)) == before
    return line


# --------------------------------------------------------------------------- spec syntax
def test_sweep_malformed_toml_exits_2(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, "[grid\nbatch = 1\n", "malformed TOML", "line 1")


def test_sweep_spec_file_missing_exits_2(tmp_path, capsys):
    spec = tmp_path / "does_not_exist.toml"
    out = tmp_path / "out"
    rc, _, err = _run_sweep(capsys, spec, out)
    assert rc == 2
    _assert_one_line_error(err, str(spec), "not found")
    assert not out.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text, parts", [
    pytest.param("[gird]\nbatch = [1]\n",
                 ("gird = {'batch': [1]}", "unknown key", "valid keys",
                  "constraints", "grid", "what_if"), id="top_level_section"),
    pytest.param("[grid]\nbatch_size = [4]\n",
                 ("[grid] batch_size = [4]", "unknown key", "valid keys", "batch",
                  "input_tokens", "weight_dtype"), id="grid_key"),
    pytest.param("[what_if]\nbandwidth_scale = [1.5]\n",
                 ("[what_if] bandwidth_scale = [1.5]", "unknown key", "valid keys",
                  "memory_bandwidth_scale", "compute_scale"), id="what_if_key"),
    pytest.param("[constraints]\nmax_latency_s = 1.0\n",
                 ("[constraints] max_latency_s = 1.0", "unknown key", "valid keys",
                  "max_devices", "max_ttft_s", "max_tpot_s"), id="constraints_key"),
])
def test_sweep_unknown_key_lists_valid_keys(tmp_path, capsys, text, parts):
    _assert_bad_spec(tmp_path, capsys, text, *parts)


# --------------------------------------------------------------------------- presets
def test_sweep_unknown_hardware_lists_valid_names(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, '[grid]\nhardware = ["h100"]\n',
                     "[grid] hardware = 'h100'", "unknown hardware preset", "valid:",
                     "h100_sxm", "a100_80gb", "mi300x")


def test_sweep_unknown_model_lists_valid_names(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, '[grid]\nmodel = ["llama3_9b"]\n',
                     "[grid] model = 'llama3_9b'", "unknown model preset", "valid:",
                     "llama3_8b", "mixtral_8x7b")


def test_sweep_preset_path_missing_exits_2(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, '[grid]\nhardware = ["./nope.toml"]\n',
                     "[grid] hardware = './nope.toml'", "not found")


def _user_preset(tmp_path: Path, edit) -> Path:
    """A copy of the bundled h100_sxm preset under tmp_path, its lines passed through ``edit``."""
    lines = (bundled_dir("hardware") / "h100_sxm.toml").read_text().splitlines(keepends=True)
    path = tmp_path / "my_gpu.toml"
    path.write_text("".join(edit(lines)))
    return path


@pytest.mark.parametrize("edit, parts", [
    pytest.param(lambda lines: [*lines, "hbm_bytes = 80e9\n"],
                 ("hbm_bytes = 80000000000.0", "unknown key", "valid keys", "memory_bytes"),
                 id="unknown_key"),
    pytest.param(lambda lines: [("memory_bytes = -80e9\n" if ln.startswith("memory_bytes =")
                                 else ln) for ln in lines],
                 ("memory_bytes = -80000000000.0", "positive"), id="negative_value"),
    pytest.param(lambda lines: [ln for ln in lines if not ln.startswith("memory_bytes_per_s")],
                 ("memory_bytes_per_s", "missing required key"), id="missing_key"),
])
def test_sweep_bad_user_preset_names_preset_file(tmp_path, capsys, edit, parts):
    preset = _user_preset(tmp_path, edit)
    spec = _write_spec(tmp_path, TINY_GRID.replace('["h100_sxm"]', '["my_gpu.toml"]'))
    out = tmp_path / "out"
    rc, _, err = _run_sweep(capsys, spec, out)
    assert rc == 2
    _assert_one_line_error(err, str(preset), *parts)
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["my_gpu.toml", "spec.toml"]


def test_sweep_user_preset_by_path_loads(tmp_path, capsys):
    # the unedited copy is valid: the failures above come from the edits alone
    _user_preset(tmp_path, lambda lines: lines)
    spec = _write_spec(tmp_path, TINY_GRID.replace('["h100_sxm"]', '["my_gpu.toml"]'))
    rc, _, err = _run_sweep(capsys, spec, tmp_path / "out")
    assert rc == 0, err
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == OUT_LISTING
    assert (out / "configurations").is_dir()
    assert _results_rows(out) == 2


# --------------------------------------------------------------------------- axis values
@pytest.mark.parametrize("line, parts", [
    pytest.param("tp = [0]", ("[grid] tp = 0", "positive integer"), id="tp_zero"),
    pytest.param("batch = [1.5]", ("[grid] batch = 1.5", "positive integer"), id="float"),
    pytest.param('batch = ["8"]', ("[grid] batch = '8'", "positive integer"), id="string"),
    pytest.param("batch = [true]", ("[grid] batch = True", "positive integer"), id="bool"),
    pytest.param("tp = []", ("[grid] tp = []", "empty axis"), id="empty"),
    pytest.param("tp = [1, 1]", ("[grid] tp = [1, 1]", "duplicate value 1"), id="duplicate"),
    pytest.param('weight_dtype = ["bf17"]',
                 ("[grid] weight_dtype = 'bf17'", "unknown precision", "valid:", "fp8",
                  "bf16", "int4"), id="precision"),
])
def test_sweep_bad_axis_value_exits_2(tmp_path, capsys, line, parts):
    _assert_bad_spec(tmp_path, capsys, f"[grid]\n{line}\n", *parts)


def test_sweep_unknown_act_dtype_lists_same(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, '[grid]\nact_dtype = ["bf17"]\n',
                     "[grid] act_dtype = 'bf17'", "unknown precision", "fp8", "same")


def test_sweep_section_not_a_table_exits_2(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, "grid = 3\n", "grid = 3", "must be a table")


def test_sweep_bool_after_int_reports_type_not_duplicate(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, "[grid]\nbatch = [1, true]\n",
                     "[grid] batch = True", "positive integer")


def test_sweep_nonpositive_constraint_exits_2(tmp_path, capsys):
    _assert_bad_spec(tmp_path, capsys, TINY_GRID + "\n[constraints]\nmax_ttft_s = 0\n",
                     "[constraints]", "max_ttft_s = 0", "positive")


def test_sweep_grid_too_large_exits_2(tmp_path, capsys):
    # a grid is evaluated in chunks whatever its number of configurations (here 2000**4 =
    # 1.6e13); what is refused is a number of groups (input_tokens x output_tokens =
    # 4e6 groups) whose Pareto / best tables do not fit the memory budget
    text = TOO_MANY_GROUPS + f"batch = {_AXIS_2000}\ndp = {_AXIS_2000}\n"
    line = _assert_bad_spec(tmp_path, capsys, text, "configurations", "groups",
                            extra=("--memory-limit", "1GB"))
    assert "16,000,000,000,000 configurations" in line
    assert "4,000,000 groups" in line


# --------------------------------------------------------------------------- --out
def _assert_refused_unchanged(capsys, spec, out, *parts):
    """A sweep into ``out`` exits 2 with one line naming ``parts`` and changes nothing."""
    before, listing = _snapshot(out), set(os.listdir(out.parent))
    rc, _, err = _run_sweep(capsys, spec, out)
    assert rc == 2
    _assert_one_line_error(err, str(out), *parts)
    assert _snapshot(out) == before
    assert set(os.listdir(out.parent)) == listing


def test_sweep_nonempty_out_refused_without_overwrite(tmp_path, capsys):
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _assert_refused_unchanged(capsys, spec, out, "not empty", "--overwrite")


def test_sweep_overwrite_keeps_unrelated_files(tmp_path, capsys):
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _, err = _run_sweep(capsys, spec, out, "--overwrite")
    assert rc == 0, err
    assert err == ""
    assert sorted(os.listdir(out)) == sorted(OUT_LISTING + ["notes.txt"])
    assert (out / "notes.txt").read_text() == "keep me"
    assert _results_rows(out) == 2
    assert sorted(os.listdir(tmp_path)) == ["out", "spec.toml"]


def test_sweep_overwrite_replaces_only_dse_outputs(tmp_path, capsys):
    # a second sweep with --overwrite removes the first one's outputs (here a model
    # partition the new grid lacks) but keeps the files dse does not own
    spec = _write_spec(tmp_path, TINY_GRID.replace('["llama3_8b"]',
                                                   '["llama3_8b", "mixtral_8x7b"]'))
    out = tmp_path / "out"
    assert _run_sweep(capsys, spec, out)[0] == 0
    assert (out / "configurations" / "hardware=h100_sxm" / "model=mixtral_8x7b").is_dir()
    (out / "notes.txt").write_text("keep me")
    spec.write_text(TINY_GRID)
    rc, _, err = _run_sweep(capsys, spec, out, "--overwrite")
    assert rc == 0, err
    assert sorted(os.listdir(out)) == sorted(OUT_LISTING + ["notes.txt"])
    assert (out / "notes.txt").read_text() == "keep me"
    assert os.listdir(out / "configurations" / "hardware=h100_sxm") == ["model=llama3_8b"]
    assert _results_rows(out) == 2
    assert len(pd.read_parquet(out / "best.parquet")) == 1


def test_sweep_previous_sweep_refused_without_overwrite_or_resume(tmp_path, capsys):
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "out"
    assert _run_sweep(capsys, spec, out)[0] == 0
    _assert_refused_unchanged(capsys, spec, out, "--resume", "--overwrite")


def test_sweep_out_is_a_file_exits_2(tmp_path, capsys):
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "out"
    out.write_text("not a folder")
    rc, _, err = _run_sweep(capsys, spec, out, "--overwrite")
    assert rc == 2
    _assert_one_line_error(err, str(out), "not a folder")
    assert out.read_text() == "not a folder"
    assert sorted(os.listdir(tmp_path)) == ["out", "spec.toml"]


def test_sweep_out_parent_missing_exits_2(tmp_path, capsys):
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "missing" / "out"
    rc, _, err = _run_sweep(capsys, spec, out)
    assert rc == 2
    _assert_one_line_error(err, str(out), "does not exist")
    assert os.listdir(tmp_path) == ["spec.toml"]


def test_sweep_empty_out_accepted_without_overwrite(tmp_path, capsys):
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = _run_sweep(capsys, spec, out)
    assert rc == 0, err
    assert sorted(os.listdir(out)) == OUT_LISTING


@pytest.mark.parametrize("text, extra, parts", [
    pytest.param("[grid]\ntp = [0]\n", (), ("[grid] tp = 0",), id="bad_axis"),
    pytest.param(TOO_MANY_GROUPS, ("--memory-limit", "1GB"), ("configurations", "groups"),
                 id="too_large"),
])
def test_sweep_bad_spec_with_overwrite_leaves_out_unchanged(tmp_path, capsys, text, extra,
                                                            parts):
    # a previous run's files in --out survive a failed run, even with --overwrite
    spec = _write_spec(tmp_path, TINY_GRID)
    out = tmp_path / "out"
    assert _run_sweep(capsys, spec, out)[0] == 0
    assert sorted(os.listdir(out)) == OUT_LISTING
    (out / "notes.txt").write_text("keep me")
    before, listing = _snapshot(out), set(os.listdir(tmp_path))
    spec.write_text(text)
    rc, _, err = _run_sweep(capsys, spec, out, "--overwrite", *extra)
    assert rc == 2
    _assert_one_line_error(err, str(spec), *parts)
    assert _snapshot(out) == before
    assert set(os.listdir(tmp_path)) == listing


# --------------------------------------------------------------------------- valid input
def test_sweep_single_value_axes_accepted(tmp_path, capsys):
    spec = _write_spec(tmp_path, """\
[grid]
hardware = "h100_sxm"
model = "llama3_8b"
batch = 8
input_tokens = 128
output_tokens = 16
tp = 2
weight_dtype = "fp8"

[what_if]
compute_scale = 1.5

[constraints]
max_devices = 8
""")
    out = tmp_path / "out"
    rc, _, err = _run_sweep(capsys, spec, out)
    assert rc == 0, err
    df = pd.read_parquet(out / "configurations")
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["hardware"], row["model"], row["batch"], row["input_tokens"],
            row["output_tokens"], row["tp"], row["attention_dp"], row["weight_dtype"],
            row["compute_scale"]) == (
        "h100_sxm", "llama3_8b", 8, 128, 16, 2, 1, "fp8", 1.5)


# --------------------------------------------------------------------------- end to end
def test_cli_console_script_exits_2_on_bad_spec(tmp_path):
    spec = _write_spec(tmp_path, "[grid]\ntp = [0]\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "dse.cli", "sweep", str(spec), "--out",
                           str(out)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    _assert_one_line_error(proc.stderr, str(spec), "[grid] tp = 0", "positive integer")
    assert not out.exists()
    assert os.listdir(tmp_path) == ["spec.toml"]


def test_sweep_memory_limit_refuses_a_grid_that_does_not_fit(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text("[grid]\nbatch = [1, 2, 4, 8]\ntp = [1, 2]\n")
    out = tmp_path / "out"
    from dse.cli import main
    # one group needs 2048 bytes of Pareto / best state: more than 100 bytes
    assert main(["sweep", str(spec), "--out", str(out), "--memory-limit", "100B"]) == 2
    err = capsys.readouterr().err.strip()
    assert "configurations" in err and "1 group" in err and "\n" not in err
    assert not out.exists()
    assert main(["sweep", str(spec), "--out", str(out), "--memory-limit", "1GB", "--quiet"]) == 0
    assert _results_rows(out) == 8


def test_sweep_memory_limit_bad_size_exits_2(tmp_path, capsys):
    from dse.cli import main
    assert main(["sweep", "--out", str(tmp_path / "o"), "--memory-limit", "lots"]) == 2
    _assert_one_line_error(capsys.readouterr().err, "--memory-limit", "'lots'")
    assert os.listdir(tmp_path) == []


def test_sweep_no_results_writes_only_reductions(tmp_path):
    from dse.cli import main
    spec = tmp_path / "s.toml"
    spec.write_text("[grid]\nbatch = [1, 8]\ntp = [1, 2]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--no-results", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.parquet", "manifest.json",
                                                     "pareto.parquet"]
    assert len(pd.read_parquet(out / "pareto.parquet")) > 0
    assert len(pd.read_parquet(out / "best.parquet")) == 1


@pytest.mark.parametrize("grid, hint", [
    ('hardware = ["h100"]', "(did you mean h100_pcie or h100_sxm"),
    ('model = ["llama3-70b"]', "(did you mean llama3_70b"),
    ('engine = ["vlm"]', "(did you mean vllm?)"),
    ('batchsize = [1]', "unknown key (did you mean batch?)"),
    # "none" (the model's MTP module) is a valid draft_model besides the presets
    ('draft_model = ["nne"]\nspec_tokens = [2]', "(did you mean none?); valid: none, "),
])
def test_unknown_names_suggest_the_closest(tmp_path, monkeypatch, capsys, grid, hint):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(f"[grid]\n{grid}\n")
    line = cli_error(capsys, tmp_path, "sweep", "spec.toml", "--out", "results")
    assert hint in line and "spec.toml" in line and "valid" in line


@pytest.mark.parametrize("text, expected", [
    ("2GB", 2e9), ("2G", 2e9), ("2g", 2e9), ("2GiB", 2 ** 31), ("2Gi", 2 ** 31),
    ("2000MB", 2e9), ("512MiB", 2 ** 29), ("1.5e9", 1.5e9), ("3TB", 3e12), ("64k", 64e3)])
def test_memory_sizes_in_the_units_people_write(text, expected):
    from dse.cli import parse_bytes
    assert parse_bytes(text) == int(expected)


def test_memory_size_without_a_known_unit_is_refused():
    from dse.cli import parse_bytes
    import argparse
    with pytest.raises(argparse.ArgumentTypeError, match="like 2GB, 512MiB or 1e9"):
        parse_bytes("2 gigs")


@pytest.mark.parametrize("value", ["0.5", "-1e-5", "true", '"fast"'])
def test_engine_eager_op_s_out_of_range_is_one_line(tmp_path, monkeypatch, capsys, value):
    # a host cost per operator launch beyond 10 ms is a typo (seconds for milliseconds)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.toml").write_text(
        'name = "e"\nrequest_overhead_s = 0.0\niteration_overhead_s = 0.0\n'
        'chunked_prefill = true\nmixed_prefill = true\nmax_batched_tokens = 0\n'
        f'max_running_requests = 0\neager_op_s = {value}\n')
    (tmp_path / "spec.toml").write_text('[grid]\nserving = "continuous"\nengine = ["e.toml"]\n')
    line = cli_error(capsys, tmp_path, "sweep", "spec.toml", "--out", "results")
    assert "e.toml" in line and "eager_op_s" in line and "[0, 0.01]" in line
