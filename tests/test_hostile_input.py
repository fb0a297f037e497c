"""Hostile input through the real CLI, as a user meets it: in a temporary working directory
with relative paths. Every case ends in exit status 2 with one line on stderr and nothing
written (or in a correct result); the classes of the issue tracker's defect list each
have a test here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dse import executors, outdir
from dse import sweep as sweep_mod
from conftest import cli_error
from dse.cli import main
from dse.config import bundled_dir

SPEC = """\
[grid]
batch = [1, 8]
input_tokens = [128]
output_tokens = [16]
"""


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.toml").write_text(SPEC)
    return tmp_path


def _one_line(capsys, *parts) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dse: error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _refused(capsys, argv, *parts) -> str:
    """``dse argv`` exits 2 with one line holding ``parts`` and changes no file."""
    line = cli_error(capsys, Path("."), *argv)
    for part in parts:
        assert part in line, (part, line)
    return line


def _sweep(*extra, spec="t.toml", out="results"):
    # a fixed budget: the default (half the memory available now) varies with the machine
    budget = () if "--memory-limit" in extra else ("--memory-limit", "2GB")
    return main(["sweep", spec, "--out", out, "--quiet", *budget, *extra])


# --------------------------------------------------------------------------- 1: relative outputs
def test_model_import_and_calibrate_write_relative_outputs(cwd, capsys):
    Path("config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 512, "num_attention_heads": 8,
        "num_key_value_heads": 2, "num_hidden_layers": 4, "intermediate_size": 1024,
        "vocab_size": 1000}))
    assert main(["model", "import", "config.json", "--name", "tiny"]) == 0
    assert main(["model", "import", "config.json", "--name", "tiny2", "--out", "m.toml"]) == 0
    assert Path("tiny.toml").is_file() and Path("m.toml").is_file()
    pd.DataFrame({"op": ["gemm"] * 4, "dtype": ["bf16"] * 4, "m": [1, 16, 256, 4096],
                  "n": [4096] * 4, "k": [4096] * 4,
                  "latency_s": [2e-5, 2.2e-5, 6e-5, 4e-4]}).to_csv("k.csv", index=False)
    assert main(["calibrate", "k.csv", "--hardware", "h100_sxm", "--out", "fit.toml"]) == 0
    Path("s.toml").write_text('[grid]\nhardware = ["fit.toml"]\nmodel = ["m.toml"]\n')
    assert _sweep(spec="s.toml") == 0, capsys.readouterr().err


def test_model_import_error_names_the_output_not_its_temporary(cwd, capsys):
    Path("config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 512, "num_attention_heads": 8,
        "num_key_value_heads": 3, "num_hidden_layers": 4, "intermediate_size": 1024,
        "vocab_size": 1000}))
    line = _refused(capsys, ["model", "import", "config.json", "--out", "m.toml"], "kv_heads")
    assert ".tmp" not in line


# --------------------------------------------------------------------------- 2, 3, 14: values
@pytest.mark.parametrize("line, parts", [
    ("batch = [2147483648]", ("[grid] batch", "2147483648", "1,048,576")),
    ("dp = [2147483648]", ("[grid] dp", "1,048,576")),
    ("batch = [1000000000000000000]", ("[grid] batch",)),
    ("batch = [18446744073709551616]", ("[grid] batch",)),
    ("input_tokens = [16777217]", ("[grid] input_tokens", "16,777,216")),
    ("tp = [-1]", ("[grid] tp", "positive")),
])
def test_integer_axes_beyond_their_bound_are_refused(cwd, capsys, line, parts):
    Path("t.toml").write_text(f"[grid]\n{line}\n")
    _refused(capsys, ["sweep", "t.toml", "--out", "results"], "t.toml", *parts)


@pytest.mark.parametrize("values", ["[0.0]", "[1e-320]", "[-1.0]", "[1e7]", "[1, 1.0]",
                                    "[nan]", "[inf]"])
def test_bad_what_if_scales_are_refused(cwd, capsys, values):
    Path("t.toml").write_text(f"[grid]\noutput_tokens = [1]\n[what_if]\n"
                              f"compute_scale = {values}\n")
    _refused(capsys, ["sweep", "t.toml", "--out", "results"], "[what_if] compute_scale")


def test_extreme_but_valid_values_give_no_nan(cwd, capsys):
    Path("t.toml").write_text(
        "[grid]\nbatch = [1, 1048576]\noutput_tokens = [1, 16777216]\n"
        "dp = [1048576]\n[what_if]\ncompute_scale = [1e-6, 1e6]\n"
        "memory_bandwidth_scale = [1e-6]\nmemory_capacity_scale = [1e6]\n")
    assert _sweep() in (0, 2)  # 2: nothing feasible at these extremes, tables written
    assert "Warning" not in capsys.readouterr().err
    frame = pd.read_parquet("results/configurations")
    numbers = frame.select_dtypes("number").drop(columns=["cost_per_million_output_tokens"])
    assert not numbers.isna().any().any()
    assert (frame["devices"] == frame["tp"] * frame["attention_dp"] * frame["pp"]
            * frame["dp"]).all()
    assert frame["batch"].dtype == np.int64 and frame["devices"].dtype == np.int64


# --------------------------------------------------------------------------- 4: the lock
def test_a_folder_in_use_is_refused(cwd, capsys):
    Path("results").mkdir()
    with outdir.FolderLock(Path("results")):
        assert _sweep() == 2
        _one_line(capsys, "results", "in use", str(os.getpid()))
    assert os.listdir("results") == []


def test_a_dead_runs_lock_is_taken_over_with_a_note(cwd, capsys):
    Path("results").mkdir()
    Path("results/.dse.lock").write_text("999999999\n")
    assert _sweep() == 0
    err = capsys.readouterr().err
    assert "note" in err and "999999999" in err and "Traceback" not in err
    assert not Path("results/.dse.lock").exists()


def test_two_concurrent_sweeps_never_mix(cwd):
    Path("a.toml").write_text(SPEC)
    Path("b.toml").write_text(SPEC.replace("[1, 8]", "[1, 2, 4]"))
    procs = [subprocess.Popen([sys.executable, "-m", "dse.cli", "sweep", spec, "--out",
                               "shared", "--quiet", "--overwrite", "--chunk-rows", "1"],
                              stderr=subprocess.PIPE, text=True)
             for spec in ("a.toml", "b.toml")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "in use" in err and len(err.splitlines()) == 1), err
    manifest = json.loads(Path("shared/manifest.json").read_text())
    assert manifest["complete"]
    rows = {"a.toml": 2, "b.toml": 3}[
        next(s for s in ("a.toml", "b.toml") if Path(s).read_text() == manifest["spec"])]
    assert len(pd.read_parquet("shared/configurations")) == rows
    assert len(manifest["done"]) == rows
    meta = pq.read_schema("shared/pareto.parquet").metadata
    assert meta[b"dse.spec"].decode() == manifest["spec"]


def test_sweep_runs_from_two_threads_never_mix(cwd):
    # the same through the Python API from two threads of one process
    out = {}

    def run(name, text):
        import dse
        spec = dse.parse_sweep(text, source=name)
        try:
            out[name] = dse.run_sweep(spec, "shared", progress=False, overwrite=True,
                                      chunk_rows=1, threads=1)
        except dse.OutputError as exc:
            out[name] = exc

    import tomllib
    threads = [threading.Thread(target=run, args=(n, tomllib.loads(t))) for n, t in (
        ("a", SPEC), ("b", SPEC.replace("[1, 8]", "[1, 2, 4]")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(not isinstance(v, Exception) for v in out.values())
    manifest = json.loads(Path("shared/manifest.json").read_text())
    assert len(pd.read_parquet("shared/configurations")) == len(manifest["done"])


# --------------------------------------------------------------------------- 5, 6: --overwrite
def test_overwrite_refuses_a_foreign_file_in_results(cwd, capsys):
    assert _sweep() == 0
    Path("results/configurations/notes.txt").write_text("mine")
    _refused(capsys, ["sweep", "t.toml", "--out", "results", "--overwrite"], "notes.txt",
             "did not write")


def test_overwrite_refuses_a_foreign_table_without_a_manifest(cwd, capsys):
    Path("results").mkdir()
    pd.DataFrame({"a": [1]}).to_parquet("results/best.parquet")
    _refused(capsys, ["sweep", "t.toml", "--out", "results", "--overwrite"],
             "best.parquet", "did not write")


def test_overwrite_keeps_other_files_and_replaces_dse_ones(cwd, capsys):
    assert _sweep() == 0
    Path("results/mine.txt").write_text("mine")
    Path("t.toml").write_text(SPEC.replace("[1, 8]", "[4]"))
    assert _sweep("--overwrite") == 0
    assert Path("results/mine.txt").read_text() == "mine"
    assert len(pd.read_parquet("results/configurations")) == 1


@pytest.mark.parametrize("extra", [("--memory-limit", "1MB"), ("--memory-limit", "1B"),
                                   ("--partition-by", "nope"), ("--scheduler", "x y")])
def test_overwrite_with_a_bad_option_deletes_nothing(cwd, capsys, extra):
    assert _sweep() == 0
    _refused(capsys, ["sweep", "t.toml", "--out", "results", "--overwrite", *extra])


# --------------------------------------------------------------------------- 7, 9, 11-13
def _binary(name):
    Path(name).write_bytes(bytes(range(256)) * 4)


@pytest.mark.parametrize("setup, argv, parts", [
    (lambda: _binary("b.toml"), ["sweep", "b.toml", "--out", "o"], ("b.toml", "UTF-8")),
    (lambda: (Path("p.toml").write_text(
        (bundled_dir("hardware") / "h100_sxm.toml").read_text()
        .replace('name = "h100_sxm"', "name = 5")),
              Path("s.toml").write_text('[grid]\nhardware = ["p.toml"]\n')),
     ["sweep", "s.toml", "--out", "o"], ("p.toml", "name = 5")),
    (lambda: (Path("p.toml").write_text(
        (bundled_dir("hardware") / "h100_sxm.toml").read_text()
        .replace('name = "h100_sxm"', 'name = "../../evil"')),
              Path("s.toml").write_text('[grid]\nhardware = ["p.toml"]\n')),
     ["sweep", "s.toml", "--out", "o"], ("p.toml", "identifier")),
    (lambda: Path("s.toml").write_text(f'[grid]\nhardware = ["{"a" * 100_000}"]\n'),
     ["sweep", "s.toml", "--out", "o"], ("unknown hardware preset",)),
    (lambda: None, ["sweep", "/dev/zero", "--out", "o"], ("/dev/zero", "regular file")),
    (lambda: Path("big.toml").write_text("#" * 2_000_000), ["sweep", "big.toml", "--out", "o"],
     ("big.toml", "at most")),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--workers", "-1"], ("--workers",)),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--workers", "0"], ("--workers",)),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--chunk-rows", "0"], ("--chunk-rows",)),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--chunk-rows", "-5"], ("--chunk-rows",)),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--memory-limit", "0.5"],
     ("--memory-limit", "0.5")),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--memory-limit", "1e999"],
     ("--memory-limit",)),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--memory-limit", "abc"],
     ("--memory-limit", "abc")),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--memory-limit", "1B"],
     ("1 B budget", "kB")),
    (lambda: None, ["sweep", "t.toml"], ("--out", "required")),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--scheduler", "nonsense"],
     ("--scheduler", "nonsense")),
    (lambda: None, ["sweep", "t.toml", "--out", "o", "--partition-by", "compute_scale"],
     ("--partition-by", "compute_scale", "strings")),
    (lambda: os.symlink("nowhere", "o"), ["sweep", "t.toml", "--out", "o"],
     ("o", "symbolic link")),
    (lambda: (os.symlink("l1", "l2"), os.symlink("l2", "l1")),
     ["sweep", "t.toml", "--out", "l1"], ("l1", "symbolic link")),
    (lambda: None, ["explain", "--batch", "0"], ("--batch 0",)),
    (lambda: None, ["explain", "--tp", "100000"], ("--tp 100000", "65,536")),
    (lambda: None, ["explain", "--weight-dtype", "fp7"], ("--weight-dtype fp7",)),
    (lambda: None, ["explain", "--hardware", "nope"], ("--hardware", "nope")),
    (lambda: None, ["explain", "--csv", "missing/x.csv"], ("missing/x.csv",)),
    (lambda: Path("f").mkdir(), ["explain", "--csv", "f"], ("f", "folder")),
    (lambda: Path("f").mkdir(), ["explain", "--parquet", "f"], ("f", "folder")),
    (lambda: None, ["calibrate", "k.csv", "--hardware", "nope", "--out", "x.toml"],
     ("--hardware", "nope")),
    (lambda: None, ["list", "gpus"], ("gpus",)),
    (lambda: None, ["frobnicate"], ("frobnicate",)),
])
def test_bad_input_is_one_line_and_writes_nothing(cwd, capsys, setup, argv, parts):
    setup()
    _refused(capsys, argv, *parts)


def test_a_read_only_output_folder_is_one_line(cwd, capsys, monkeypatch):
    Path("ro").mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "ro/.dse.lock")

    monkeypatch.setattr(outdir.os, "open", refuse)
    assert _sweep(out="ro") == 2
    _one_line(capsys, "ro", "Permission denied")


def test_overwrite_with_results_a_symbolic_link_is_refused(cwd, capsys, tmp_path):
    assert _sweep() == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    os.rename("results/configurations", "old_results")
    os.symlink(elsewhere, "results/configurations")
    _refused(capsys, ["sweep", "t.toml", "--out", "results", "--overwrite"],
             "symbolic link")
    assert (elsewhere / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("text", ["[]", "{}", '{"spec_hash": 5}', "\xff\xfe"])
def test_a_broken_manifest_is_one_line(cwd, capsys, text):
    assert _sweep() == 0
    Path("results/manifest.json").write_bytes(text.encode("latin-1"))
    for flag in ("--resume", "--overwrite"):
        _refused(capsys, ["sweep", "t.toml", "--out", "results", flag], "manifest")


def test_a_closed_stdout_pipe_ends_quietly(cwd):
    run = subprocess.run(["bash", "-c", f"{sys.executable} -m dse.cli list models | true; "
                          "echo ${PIPESTATUS[0]}"], capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip() == "0"
    assert "Traceback" not in run.stderr and "Error" not in run.stderr


def test_argparse_errors_are_one_line_without_usage(cwd, capsys):
    assert main(["sweep", "--memory-limit", "abc"]) == 2
    line = _one_line(capsys)
    assert "usage" not in line and "--help" in line


# --------------------------------------------------------------------------- 10: Ctrl-C
def test_interrupt_says_what_is_kept_and_how_to_resume(cwd, capsys, monkeypatch):
    real, calls = sweep_mod.run_chunk, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "run_chunk", interrupted)
    Path("t.toml").write_text(SPEC.replace("[1, 8]", "[1, 2, 4, 8]"))
    assert main(["sweep", "t.toml", "--out", "results", "--quiet", "--chunk-rows", "1"]) == 2
    line = _one_line(capsys, "of 4 finished chunks", "--resume",
                     "dse sweep t.toml --out results --resume")
    assert "nothing was written" not in line
    monkeypatch.setattr(sweep_mod, "run_chunk", real)


def test_interrupt_at_start_up_is_one_line(cwd, capsys, monkeypatch):
    import dse.config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dse.config, "load_sweep", interrupted)
    assert _sweep() == 2
    _one_line(capsys, "interrupted")
    assert not Path("results").exists()


# --------------------------------------------------------------------------- 16, 17
def test_partition_by_an_integer_axis_reads_back_as_integers(cwd, capsys):
    assert _sweep("--partition-by", "model,batch") == 0
    frame = pd.read_parquet("results/configurations")
    assert sorted(frame["batch"].astype(int)) == [1, 8]
    assert pd.api.types.is_integer_dtype(frame["batch"].cat.categories) or \
        pd.api.types.is_integer_dtype(frame["batch"])


def test_resume_after_a_comment_only_edit_is_refused(cwd, capsys, monkeypatch):
    real, calls = sweep_mod.run_chunk, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "run_chunk", interrupted)
    assert _sweep("--chunk-rows", "1") == 2
    capsys.readouterr()
    monkeypatch.setattr(sweep_mod, "run_chunk", real)
    Path("t.toml").write_text("# a comment\n" + SPEC)
    _refused(capsys, ["sweep", "t.toml", "--out", "results", "--resume"], "different spec")
    Path("t.toml").write_text(SPEC)
    assert _sweep("--resume") == 0
    texts = {pq.read_schema(p).metadata[b"dse.spec"]
             for p in Path("results").rglob("*.parquet")}
    assert texts == {SPEC.encode()}


def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(cwd, capsys, monkeypatch):
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 1)
    _refused(capsys, ["sweep", "t.toml", "--out", "results", "--scheduler",
                      "tcp://127.0.0.1:1"], "--scheduler", "cannot connect")


@pytest.mark.parametrize("text, parts", [
    ("[grid]\n" + "k" * 100_000 + " = 1\n", ("unknown key", "...")),
    ('[grid]\nhardware = ["a\\u0000b.toml"]\n', ("preset file not found",)),
    ('[grid]\nmodel = ["a\\u0000b"]\n', ("unknown model preset",)),
    ("[grid]\nbatch = 1979-05-27\n", ("[grid] batch", "positive integer")),
    ("[what_if]\ncompute_scale = [1979-05-27]\n", ("compute_scale", "finite number")),
    ("[grid]\nbatch = [[1]]\n", ("[grid] batch", "scalars")),
])
def test_odd_toml_values_are_one_short_line(cwd, capsys, text, parts):
    Path("t.toml").write_text(text)
    line = _refused(capsys, ["sweep", "t.toml", "--out", "results"], *parts)
    assert len(line) < 1000


def test_a_device_is_never_replaced_by_an_output(cwd, capsys):
    pd.DataFrame({"op": ["gemm"] * 3, "dtype": ["bf16"] * 3, "m": [1, 64, 4096],
                  "n": [4096] * 3, "k": [4096] * 3,
                  "latency_s": [2e-5, 3e-5, 4e-4]}).to_csv("k.csv", index=False)
    _refused(capsys, ["calibrate", "k.csv", "--hardware", "h100_sxm", "--out", "/dev/null",
                      "--overwrite"], "/dev/null", "regular file")
    assert Path("/dev/null").is_char_device()


def test_every_command_works_from_a_relative_working_directory(cwd, capsys):
    assert main(["list", "hardware"]) == 0 and main(["list", "models"]) == 0
    assert main(["list", "engines"]) == 0 and "sglang" in capsys.readouterr().out
    assert main(["explain", "--model", "llama3_8b", "--batch", "4", "--csv", "e.csv",
                 "--parquet", "e.parquet"]) == 0
    assert len(pd.read_csv("e.csv")) == len(pd.read_parquet("e.parquet")) > 0
    assert main(["explain", "--spec", "t.toml"]) == 0
    assert main(["validate", "--out", "v"]) == 0
    assert Path("v/validation.parquet").is_file()
    assert _sweep("--no-results", out="r2") == 0
    assert _sweep("--no-results", "--resume", out="r2") == 0  # finished: nothing to redo
    assert capsys.readouterr().err == ""
