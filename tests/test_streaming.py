"""Chunked, resumable and distributed sweeps give the same tables as one in-memory pass."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import dse
import dse.sweep as sweep_mod
from dse.grid import bytes_per_config
from dse.io import OutputError

# both serving modes: static and continuous groups in one sweep
GRID = {
    "grid": {"hardware": ["h100_sxm", "mi300x"], "model": ["llama3_8b", "mixtral_8x7b"],
             "serving": ["continuous", "static"],
             "batch": [1, 8, 64], "input_tokens": [512, 4096], "output_tokens": [128],
             "tp": [1, 2, 4, 8], "pp": [1, 2], "ep": [1, 2], "dp": [1, 2],
             "weight_dtype": ["bf16", "fp8"]},
    "what_if": {"memory_bandwidth_scale": [1.0, 1.5]},
    "constraints": {"max_devices": 8, "max_tpot_s": 0.05},
}
KEYS = ["hardware", "model", "batch", "input_tokens", "output_tokens", "tp", "pp", "ep",
        "attention_dp", "dp", "weight_dtype", "act_dtype", "kv_dtype", "compute_scale",
        "memory_bandwidth_scale", "memory_capacity_scale", "scaleup_bandwidth_scale",
        "scaleout_bandwidth_scale"]
SMALL = 500  # configurations per chunk: many chunks on this 3,072-configuration grid


def _spec():
    return dse.parse_sweep(GRID)


def _tables(out: Path):
    res = pd.read_parquet(out / "configurations")
    for c in ("hardware", "model"):
        res[c] = res[c].astype(str)
    for c in res.columns:
        if isinstance(res[c].dtype, pd.CategoricalDtype):
            res[c] = res[c].astype(object)
    res = res[sorted(res.columns)].sort_values(KEYS).reset_index(drop=True)
    return res, pd.read_parquet(out / "pareto.parquet"), pd.read_parquet(out / "best.parquet")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    s = dse.run_sweep(_spec(), out, progress=False, memory_limit_bytes=8 * 10**9)
    assert s.n_chunks == 1
    return _tables(out)


def _assert_same(out, reference):
    for got, want in zip(_tables(out), reference):
        pd.testing.assert_frame_equal(got, want, check_categorical=False)


def test_chunked_sweep_equals_in_memory(tmp_path, reference):
    s = dse.run_sweep(_spec(), tmp_path / "out", progress=False,
                      chunk_rows=SMALL, threads=2)
    assert s.n_chunks > 4
    _assert_same(tmp_path / "out", reference)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["done"]) == s.n_chunks


def test_interrupted_sweep_resumes_to_the_same_tables(tmp_path, reference, monkeypatch):
    out = tmp_path / "out"
    real = sweep_mod.run_chunk
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the sweep
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "run_chunk", crashing)
    with pytest.raises(KeyboardInterrupt):
        dse.run_sweep(_spec(), out, progress=False, chunk_rows=SMALL, threads=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["done"]) == 3
    # the final tables stream while chunks run: interrupted, they leave nothing behind
    assert not (out / "pareto.parquet").exists()
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(sweep_mod, "run_chunk", real)
    s = dse.run_sweep(_spec(), out, progress=False, resume=True)
    assert s.n_resumed == 3
    _assert_same(out, reference)


def test_killed_process_resumes_to_the_same_tables(tmp_path, reference):
    spec_file = tmp_path / "spec.toml"
    lines = []
    for section, values in GRID.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    spec_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dse.cli", "sweep", str(spec_file), "--out", str(out),
           "--quiet", "--chunk-rows", "100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            done = json.loads((out / "manifest.json").read_text())["done"]
        except (OSError, ValueError, KeyError):
            done = {}
        if len(done) >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the sweep finished before it could be killed")
    # only complete parts remain; no temporary files are mistaken for results
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"]
    assert subprocess.run(cmd + ["--resume"]).returncode == 0
    _assert_same(out, reference)
    assert not list(out.rglob("*.tmp"))


def test_resume_with_a_changed_spec_is_refused(tmp_path):
    out = tmp_path / "out"
    dse.run_sweep(_spec(), out, progress=False)
    changed = dict(GRID, grid=dict(GRID["grid"], batch=[1, 8]))
    with pytest.raises(OutputError, match="different spec"):
        dse.run_sweep(dse.parse_sweep(changed), out, progress=False, resume=True)


def test_existing_sweep_without_resume_or_overwrite_is_refused(tmp_path):
    out = tmp_path / "out"
    dse.run_sweep(_spec(), out, progress=False)
    with pytest.raises(OutputError, match="--resume"):
        dse.run_sweep(_spec(), out, progress=False)


def test_two_worker_local_cluster_gives_identical_tables(tmp_path, reference):
    pytest.importorskip("dask.distributed")
    s = dse.run_sweep(_spec(), tmp_path / "out", progress=False, workers=2,
                      chunk_rows=SMALL)
    assert s.n_chunks > 1
    _assert_same(tmp_path / "out", reference)


def test_memory_budget_respected_on_a_grid_larger_than_it(tmp_path):
    # 40 M configurations need more than the 600 MB budget leaves beside the process
    spec_file = tmp_path / "big.toml"
    spec_file.write_text(
        '[grid]\nhardware = ["h100_sxm", "h200"]\n'
        'model = ["llama3_8b", "llama3_70b", "mixtral_8x7b"]\n'
        "batch = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]\n"
        "input_tokens = [512, 1024, 2048, 4096, 8192, 32768]\n"
        "output_tokens = [128, 512, 2048]\ntp = [1, 2, 4, 8]\npp = [1, 2]\nep = [1, 2, 4, 8]\n"
        'dp = [1, 2, 4, 8]\nweight_dtype = ["bf16", "fp8"]\nkv_dtype = ["bf16", "fp8"]\n'
        "[what_if]\nmemory_bandwidth_scale = [0.8, 1.0, 1.25]\n"
        "compute_scale = [1.0, 1.5, 2.0, 2.5]\nmemory_capacity_scale = [1.0, 1.25, 1.5]\n"
        "scaleup_bandwidth_scale = [1.0, 2.0]\n")
    spec = dse.load_sweep(spec_file)
    assert spec.n_configs() * bytes_per_config(spec, results=False) > 400e6
    code = (
        "import resource, sys, dse\n"
        f"s = dse.run_sweep(dse.load_sweep({str(spec_file)!r}), {str(tmp_path / 'out')!r},"
        " progress=False, results=False, memory_limit_bytes=600_000_000)\n"
        # VmHWM: ru_maxrss of a child starts at its parent's peak
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(s.n_chunks, int(peak.split()[1]) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    n_chunks, peak = int(out[0]), int(out[1])
    assert n_chunks > 1
    assert peak < 600_000_000, f"peak RSS {peak / 1e6:.0f} MB over the 600 MB budget"


def test_no_results_writes_only_reductions(tmp_path, reference):
    out = tmp_path / "out"
    dse.run_sweep(_spec(), out, progress=False, results=False)
    assert not (out / "configurations").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "pareto.parquet"), reference[1])


@pytest.mark.parametrize("chunk_rows", [SMALL, 100])
def test_chunked_frontiers_only_sweep_equals_in_memory(tmp_path, reference, chunk_rows):
    """Frontiers-only sweeps chunk group by group: 500 rows hold whole groups (the partials
    are concatenated), 100 rows split a group's strategies (the partials are merged)."""
    s = dse.run_sweep(_spec(), tmp_path / "out", progress=False, results=False,
                      chunk_rows=chunk_rows)
    assert s.n_chunks > 4
    for name, want in zip(("pareto", "best"), reference[1:]):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / f"{name}.parquet"),
                                      want)


@pytest.mark.parametrize("results", [True, False])
def test_best_table_keeps_one_schema_when_only_some_chunks_have_unmet_groups(tmp_path,
                                                                             results):
    # chunk 1: llama3_8b (a best strategy), chunk 2: llama3_405b (too big for 2 H100s)
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h100_sxm"], "model": ["llama3_8b", "llama3_405b"], "batch": [1, 8],
        "input_tokens": [1024], "output_tokens": [128], "tp": [1, 2], "pp": [1], "ep": [1],
        "dp": [1], "weight_dtype": ["bf16"], "kv_dtype": ["bf16"]}})
    s = dse.run_sweep(spec, tmp_path / "out", progress=False, results=results, chunk_rows=4)
    assert s.n_chunks == 2
    best = pd.read_parquet(tmp_path / "out" / "best.parquet")
    assert best["found"].tolist() == [True, False]
    assert best["batch"].tolist()[0] == 8 and pd.isna(best["batch"].tolist()[1])


def test_partition_by_is_configurable(tmp_path):
    out = tmp_path / "out"
    dse.run_sweep(_spec(), out, progress=False, partition_by=("model", "batch"))
    dirs = sorted(p.relative_to(out / "configurations").as_posix()
                  for p in (out / "configurations").glob("*/*"))
    assert dirs[0] == "model=llama3_8b/batch=1"
    assert len(pd.read_parquet(out / "configurations")) == _spec().n_configs()


def test_progress_log_line_when_not_a_terminal(tmp_path, capsys):
    dse.run_sweep(_spec(), tmp_path / "out", progress=None)
    err = capsys.readouterr().err
    assert "configurations (100%)" in err and "configs/s" in err and "ETA" in err
    dse.run_sweep(_spec(), tmp_path / "out2", progress=False)
    assert capsys.readouterr().err == ""


def test_results_dataset_reads_in_duckdb_and_pyarrow(tmp_path):
    import pyarrow.dataset as pads
    out = tmp_path / "out"
    dse.run_sweep(_spec(), out, progress=False)
    n = _spec().n_configs()
    assert pads.dataset(out / "configurations", partitioning="hive").count_rows() == n
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"select count(*), count(distinct hardware || model) from read_parquet("
                      f"'{out}/configurations/**/*.parquet', hive_partitioning = true)").fetchall()
    assert rows == [(n, 4)]


def test_full_disk_stops_with_a_clear_error_and_keeps_complete_chunks(tmp_path, reference,
                                                                      monkeypatch):
    import errno
    import dse.io as dio
    out = tmp_path / "out"
    real = dio.open_writer
    calls = {"n": 0}

    def full_disk(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dio, "open_writer", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        dse.run_sweep(_spec(), out, progress=False, chunk_rows=SMALL, threads=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert 0 < len(manifest["done"]) < 7
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(dio, "open_writer", real)
    dse.run_sweep(_spec(), out, progress=False, resume=True)
    _assert_same(out, reference)


def test_failed_final_table_write_stops_the_sweep_with_a_clear_error(tmp_path, reference,
                                                                    monkeypatch):
    import errno
    import dse.io as dio
    out = tmp_path / "out"
    real = dio.write_tables

    def failing(path, tables, *args, **kwargs):
        if path.name == "best.parquet":
            next(iter(tables))
            raise OutputError(f"{path}: cannot write: "
                              f"{OSError(errno.ENOSPC, 'No space left on device').strerror}")
        return real(path, tables, *args, **kwargs)

    monkeypatch.setattr(dio, "write_tables", failing)
    with pytest.raises(OutputError, match="No space left on device"):
        dse.run_sweep(_spec(), out, progress=False, chunk_rows=SMALL, threads=2)
    assert not (out / "best.parquet").exists() and not list(out.rglob("*.tmp"))
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    monkeypatch.setattr(dio, "write_tables", real)
    dse.run_sweep(_spec(), out, progress=False, resume=True)
    _assert_same(out, reference)
