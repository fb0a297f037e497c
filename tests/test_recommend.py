"""``dse recommend`` (issue 13 item 7): hardware ranked by cost per million tokens within
the SLOs, the replicas a rate needs, hardware where nothing qualifies and why.

One command-line run from a temporary working directory with relative paths ranks two
priced presets and a made-up unpriced one that fits nothing (``tiny_gpu``, 0.2 GB); the
ranking is checked against a brute-force evaluation of the same grid with the Python API,
the replicas by hand. The ranking rules (priced, unpriced, none found; ties) are checked
on made-up best rows, without a sweep.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

import dse
from conftest import cli_error
from dse.cli import main
from dse.config import load_hardware, parse_toml
from dse.recommend import COLUMNS, EDGE_AXES, FILE, build_spec, rank

WORKLOAD = dict(model="llama3_8b", input_tokens=512, output_tokens=64, max_ttft_s=0.5,
                max_tpot_s=0.02)
RATE = 50.0
HARDWARE = ["h100_sxm", "a100_40gb", "./tiny_gpu.toml"]


def _tiny_gpu() -> str:
    """a100_40gb with 0.2 GB of memory and no price: nothing fits on 32 devices."""
    lines = []
    for line in load_hardware("a100_40gb").text.splitlines():
        if line.startswith("name ="):
            line = 'name = "tiny_gpu"'
        elif line.startswith("memory_bytes ="):
            line = "memory_bytes = 2e8"
        elif line.startswith("price_per_device_hour_usd"):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The CLI run: (working dir, exit status, stdout)."""
    here = tmp_path_factory.mktemp("recommend")
    cwd = Path.cwd()
    os.chdir(here)
    try:
        Path("tiny_gpu.toml").write_text(_tiny_gpu())
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["recommend", "--model", WORKLOAD["model"], "--input-tokens", "512",
                         "--output-tokens", "64", "--max-ttft-s", "0.5", "--max-tpot-s",
                         "0.02", "--requests-per-s", str(RATE), "--hardware",
                         ",".join(HARDWARE), "--precisions", "bf16,fp8", "--out", "rec"])
        # the same spec through the Python API, for the brute force (paths as given)
        spec = build_spec(**WORKLOAD, hardware=HARDWARE, precisions=["bf16", "fp8"])
        ds = dse.evaluate(spec)
        m = dse.derive(ds)
    finally:
        os.chdir(cwd)
    return here, code, out.getvalue(), spec, ds, m


def test_recommend_cli_writes_the_ranked_table(run):
    here, code, out, *_ = run
    assert code == 0
    table = pd.read_parquet(here / "rec" / FILE)
    assert list(table.columns) == list(COLUMNS)
    assert table["hardware"].astype(str).tolist()[-1] == "tiny_gpu"
    assert table["rank"].tolist() == [1, 2, 3]
    # the sweep's own tables sit beside it (dse report rec draws them); no results/
    assert (here / "rec" / "best.parquet").is_file() and not (here / "rec" / "configurations").exists()
    lines = out.splitlines()
    assert lines[0].startswith("llama3_8b, 512 in / 64 out tokens, TTFT ≤ 500 ms, TPOT ≤ 20 ms"
                               ", for 50 requests/s: 2 of 3 hardware qualify")
    assert lines[1].split()[:4] == ["#", "hardware", "$/Mtok", "tok/s/dev"]
    first = table.iloc[0]
    assert lines[2].split()[:2] == ["1", first["hardware"]]
    assert "tiny_gpu: out_of_memory (100% of the configurations in its native precisions)" in out
    assert lines[-1] == "next: dse report rec   # its frontiers in a browser"


def test_recommend_ranking_matches_brute_force(run):
    """The cheapest configuration meeting the SLOs of every hardware, by brute force over
    every point of the same grid, and the hardware ordered by its cost."""
    here, _, _, spec, ds, m = run
    table = pd.read_parquet(here / "rec" / FILE)
    feasible, ttft, tpot, cost, tps = xr.broadcast(
        m["feasible"], ds["ttft_s"], ds["tpot_s"], m["cost_per_million_output_tokens"],
        m["tokens_per_s_per_device"])
    brute = {}
    for hw in spec.hardware:
        sel = dict(hardware=hw.name)
        ok = (feasible.sel(sel) & (ttft.sel(sel) <= 0.5) & (tpot.sel(sel) <= 0.02)).values
        brute[hw.name] = (float(cost.sel(sel).values[ok].min()) if ok.any() and
                          hw.price_per_device_hour_usd else None,
                          float(tps.sel(sel).values[ok].max()) if ok.any() else None)
    priced = sorted((c, h) for h, (c, _) in brute.items() if c is not None)
    assert [h for _, h in priced] == table["hardware"].astype(str).tolist()[:len(priced)]
    for row in table.itertuples():
        c, t = brute[str(row.hardware)]
        if c is None:
            assert not row.found and t is None
            continue
        assert row.cost_per_million_output_tokens == pytest.approx(c, rel=1e-12)
        assert row.tokens_per_s_per_device == pytest.approx(t, rel=1e-12)
        # cost per Mtok = price / (3600 tokens/s per device) * 1e6
        assert row.cost_per_million_output_tokens == pytest.approx(
            row.price_per_device_hour_usd / 3600 / row.tokens_per_s_per_device * 1e6,
            rel=1e-12)
        assert row.ttft_s <= 0.5 and row.tpot_s <= 0.02
        # a pick at the largest value swept of a strategy axis says so
        edges = [f"{a}=max" for a in EDGE_AXES
                 if len(spec.grid[a]) > 1 and getattr(row, a) == max(spec.grid[a])]
        assert (row.edge_axes if isinstance(row.edge_axes, str) else None) == \
            (",".join(edges) or None)


def test_recommend_replicas_by_hand(run):
    here, *_ = run
    table = pd.read_parquet(here / "rec" / FILE)
    for row in table[table["found"]].itertuples():
        # one replica: batch clients in a closed loop, each request e2e seconds
        e2e = row.ttft_s + (64 - 1) * row.tpot_s
        assert row.e2e_latency_s == pytest.approx(e2e, rel=1e-12)
        rps = row.batch / e2e
        assert row.requests_per_s_per_replica == pytest.approx(rps, rel=1e-12)
        replicas = math.ceil(RATE / rps)
        assert row.replicas == replicas
        assert replicas * rps >= RATE > (replicas - 1) * rps
        assert row.devices_per_replica == row.tp * row.pp * row.attention_dp
        assert row.devices == replicas * row.devices_per_replica
        assert row.cost_per_hour_usd == pytest.approx(
            row.devices * row.price_per_device_hour_usd, rel=1e-12)


def test_recommend_infeasible_hardware_row(run):
    here, *_ = run
    row = pd.read_parquet(here / "rec" / FILE).iloc[-1]
    assert not row["found"] and row["hardware"] == "tiny_gpu"
    assert row["reason"] == "out_of_memory (100% of the configurations in its native precisions)"
    assert pd.isna(row["cost_per_million_output_tokens"]) and pd.isna(row["tp"])


def test_recommend_refuses_to_overwrite(run, capsys):
    here, *_ = run
    cwd = Path.cwd()
    os.chdir(here)
    try:
        line = cli_error(capsys, here, "recommend", "--model", "llama3_8b", "--input-tokens",
                         "512", "--output-tokens", "64", "--hardware", "h100_sxm", "--out",
                         "rec")
    finally:
        os.chdir(cwd)
    assert "rec: --out folder exists and is not empty; pass --overwrite" in line


def test_recommend_api_binding_slo_and_json(tmp_path, monkeypatch, capsys):
    """No configuration reaches a 0.1 ms TTFT: the row says so with the best TTFT; the
    command exits 3 after printing; --json carries the same rows."""
    monkeypatch.chdir(tmp_path)
    args = ["recommend", "--model", "llama3_8b", "--input-tokens", "512",
            "--output-tokens", "64", "--max-ttft-s", "1e-4", "--hardware", "h100_sxm",
            "--precisions", "bf16", "--out", "r", "--json"]
    assert main(args) == 3
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "no hardware meets the constraints" in captured.err
    (row,) = doc["rows"]
    assert not row["found"] and row["cost_per_million_output_tokens"] is None
    assert row["reason"].startswith("TTFT > 0.1 ms at every feasible configuration (best ")
    table = dse.recommend("llama3_8b", 512, 64, max_ttft_s=1e-4, hardware="h100_sxm",
                          precisions=["bf16"])
    assert table["reason"].tolist() == [row["reason"]]


def test_recommend_rank_rules():
    """Priced by cost (ties: more tokens/s per device), then unpriced by tokens/s per
    device, then none found; a rate of exactly k replicas' worth needs k."""
    spec = build_spec("llama3_8b", 128, 16, hardware=["h100_sxm", "a100_80gb", "gaudi3",
                                                      "mi325x", "h200"])

    def row(hw, found, cost=None, tps=None, rps=None, devices=None):
        base = dict(ttft_s=0.1, tpot_s=0.01, e2e_latency_s=0.25, tokens_per_s_per_user=100.0,
                    tp=1, pp=1, ep=1, attention_dp=1, batch=8, weight_dtype="bf16",
                    act_dtype="bf16", kv_dtype="bf16", bound="memory")
        if not found:
            base = {k: None for k in base}
        return base | dict(hardware=hw, found=found, cost_per_million_output_tokens=cost,
                           tokens_per_s_per_device=tps, requests_per_s=rps, devices=devices,
                           model="llama3_8b", input_tokens=128, output_tokens=16,
                           serving="continuous", engine="vllm")
    best = pd.DataFrame([row("h100_sxm", True, 1.0, 100.0, 4.0, 2),
                         row("a100_80gb", True, 1.0, 200.0, 3.0, 1),
                         row("gaudi3", True, None, 50.0, 1.0, 1),
                         row("mi325x", True, None, 70.0, 1.0, 1),
                         row("h200", False)])
    table = rank(best, spec, requests_per_s=12.0, reasons={"h200": "why"})
    assert table["hardware"].tolist() == ["a100_80gb", "h100_sxm", "mi325x", "gaudi3", "h200"]
    assert table["replicas"].tolist()[:2] == [4, 3]      # 12 / 3 and 12 / 4, exactly
    assert table["devices"].tolist()[:2] == [4, 6]
    assert table["reason"].isna().tolist() == [True] * 4 + [False]
    assert table["reason"].iloc[-1] == "why"
    assert table["cost_per_hour_usd"].iloc[1] == pytest.approx(6 * 6.88)
    one = rank(best, spec)
    assert one.loc[one["found"], "replicas"].tolist() == [1, 1, 1, 1]
    # the printed table: unpriced cost n/a with its footnote, the row without a pick below
    from types import SimpleNamespace
    from dse.recommend import Recommendation, text
    lines = text(Recommendation(table, SimpleNamespace(n_configs=10), spec, Path("rec"),
                                12.0, 0.5)).splitlines()
    assert lines[0].endswith("for 12 requests/s: 4 of 5 hardware qualify (10 configurations "
                             "in 0.5 s)")
    assert [ln.split()[1] for ln in lines[2:6]] == ["a100_80gb", "h100_sxm", "mi325x",
                                                    "gaudi3"]
    assert lines[4].split()[2] == "n/a" and lines[6].startswith("  n/a: the hardware preset")
    assert lines[7:9] == ["no configuration meets the constraints on:", "  h200: why"]


def test_recommend_spec_text_round_trips():
    spec = build_spec(**WORKLOAD, hardware=["h100_sxm"], precisions=["bf16", "fp8"])
    data = parse_toml(spec.text, "recommend")
    assert data["grid"]["model"] == ["llama3_8b"] and data["grid"]["tp"] == [1, 2, 4, 8]
    assert data["grid"]["batch"] == [2 ** i for i in range(10)]
    assert data["constraints"] == {"max_ttft_s": 0.5, "max_tpot_s": 0.02}
    assert "ep" not in data["grid"]  # a dense model: no expert or attention-DP axes
    moe = build_spec("mixtral_8x7b", 512, 64, hardware=["h100_sxm"])
    assert moe.grid["ep"] == (1, 2, 4, 8) and moe.grid["attention_dp"] == (1, 2, 4, 8)
    assert "cpu" not in {load_hardware(h).family for h in build_spec(**WORKLOAD).grid["hardware"]}


def test_recommend_spec_text_nested_tables():
    from dse.recommend import _spec_text
    data = {"grid": {"hardware": ["h100_sxm"], "batch": [1, 2]},
            "cost": {"h100_sxm": {"price_per_device_hour_usd": 2.5}},
            "constraints": {"max_tpot_s": 0.05}}
    assert parse_toml(_spec_text(data, "a\nb"), "t") == data


def test_recommend_spec_base(tmp_path):
    path = tmp_path / "base.toml"
    path.write_text('[grid]\nhardware = ["h100_sxm"]\ntp = [1, 2]\nbatch = [8]\n'
                    '[what_if]\nmemory_bandwidth_scale = [1.0, 1.5]\n')
    with pytest.raises(dse.ConfigError, match=r"\[what_if\] memory_bandwidth_scale has 2 "
                       "values"):
        build_spec("llama3_8b", 512, 64, spec=path)
    path.write_text('[grid]\nhardware = ["h100_sxm"]\ntp = [1, 2]\nbatch = [8]\n')
    spec = build_spec("llama3_8b", 512, 64, max_tpot_s=0.05, spec=path)
    assert spec.grid["tp"] == (1, 2) and spec.grid["batch"] == (8,)
    assert spec.constraints.max_tpot_s == 0.05
    # the axes the spec leaves unset get the recommend grid
    assert spec.grid["pp"] == (1, 2, 4, 8) and spec.grid["weight_dtype"] == ("bf16", "fp8",
                                                                          "int8", "fp4")
    assert build_spec("llama3_8b", 512, 64, precisions=["bf16"], spec=path).grid[
        "weight_dtype"] == ("bf16",)


@pytest.mark.parametrize("argv, expected", [
    (["--model", "llama3-70b"], "--model = 'llama3-70b': unknown model preset (did you mean "
                                "llama3_70b"),
    (["--hardware", "h100"], "--hardware = 'h100': unknown hardware preset (did you mean "
                             "h100_pcie or h100_sxm"),
    (["--input-tokens", "0"], "argument --input-tokens: '0': expected an integer from 1"),
    (["--max-ttft-s", "-1"], "argument --max-ttft-s: '-1': expected a positive number"),
    (["--max-tpot-s", "nan"], "argument --max-tpot-s: 'nan': expected a positive number"),
    (["--requests-per-s", "0"], "argument --requests-per-s: '0': expected a positive number"),
    (["--precisions", "fp9"], "--precisions 'fp9': not a precision; valid: fp32"),
    (["--hardware", ","], "--hardware: empty; give one or more hardware presets"),
    (["--max-devices", "0"], "argument --max-devices: '0': expected an integer from 1"),
])
def test_recommend_errors(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    base = {"--model": "llama3_8b", "--input-tokens": "512", "--output-tokens": "64",
            "--hardware": "h100_sxm"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    line = cli_error(capsys, tmp_path, "recommend", *[x for kv in base.items() for x in kv])
    assert expected in line


def test_recommend_missing_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = cli_error(capsys, tmp_path, "recommend", "--input-tokens", "512",
                     "--output-tokens", "64")
    assert "--model: missing" in line


def test_recommend_report_option_writes_the_page(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["recommend", "--model", "llama3_8b", "--input-tokens", "512",
                 "--output-tokens", "64", "--hardware", "h100_sxm", "--precisions", "bf16",
                 "--out", "rec", "--report", "--quiet"])
    assert code == 0 and Path("rec/report.html").is_file()
    capsys.readouterr()
    code = main(["recommend", "--model", "llama3_8b", "--input-tokens", "512",
                 "--output-tokens", "64", "--hardware", "h100_sxm", "--precisions", "bf16",
                 "--out", "rec", "--report", "--overwrite"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == (f"next: open {Path('rec/report.html')} in a browser   # "
                                    "the frontiers behind the ranking")
