"""Disaggregated prefill/decode serving (``[disaggregated]``, dse.disaggregate): one pairing
by hand, the pools' pre-filter against pairing every point with every point, and the
section end to end from the CLI (relative paths, chunks, errors)."""
import itertools

import numpy as np
import pandas as pd
import pytest

import dse
from dse.cli import main
from dse.disaggregate import pair_pools

from conftest import cli_error

SPEC = """
[grid]
hardware = ["h100_sxm"]
model = ["llama3_8b"]
serving = ["static"]
engine = ["{engine}"]
batch = [1, 4, 16, 64]
input_tokens = [1024]
output_tokens = [128]
tp = [1, 2]
dp = [1, 2]
max_batched_tokens = [0, 2048]

[constraints]
max_ttft_s = 0.5
max_tpot_s = 0.03

[disaggregated]
max_instances = 6
"""


def _sweep(tmp_path, monkeypatch, text, *options):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(text)
    assert main(["sweep", "s.toml", "--out", "out", "--quiet", *options]) == 0
    return (pd.read_parquet("out/disaggregated.parquet"),
            _plain(pd.read_parquet("out/configurations")))


def _plain(frame):
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(str)
    return frame


def _pools(results):
    """Every feasible static point as a candidate of both pools (no pre-filter; dp and the
    token budget repeat a point: an instance is one point of the first dp)."""
    pts = results[(results.serving == "static") & results.feasible
                  & (results.max_batched_tokens == results.max_batched_tokens.min())
                  & (results.dp == results.dp.min())]
    return pts.reset_index(drop=True)


def test_one_pairing_by_hand(tmp_path, monkeypatch):
    _, results = _sweep(tmp_path, monkeypatch, SPEC.format(engine="sglang"))
    spec = dse.load_sweep(tmp_path / "s.toml")
    pts = _pools(results)
    pre = pts[(pts.batch == 1) & (pts.tp == 1) & (pts.dp == 1)]
    dec = pts[(pts.batch == 64) & (pts.tp == 2) & (pts.dp == 1)]
    row = pair_pools(pre, dec, spec).to_pandas().iloc[0]

    eng = spec.engines[0]
    hw = spec.hardware[0]
    t_p = pre.ttft_s.iloc[0] + eng.iteration_overhead_s
    t_d = dec.tpot_s.iloc[0] + eng.iteration_overhead_s
    r_p, r_d = 1 / t_p, 64 / (127 * t_d)        # prompts/s, requests/s per instance
    # the ratio by brute force: x prefill instances of 1 device, y decode ones of 2
    x, y = max(itertools.product(range(1, 7), range(1, 7)),
               key=lambda xy: (min(xy[0] * r_p, xy[1] * r_d) / (xy[0] + 2 * xy[1]),
                               -xy[1]))
    assert (row.prefill_instances, row.decode_instances) == (x, y)
    rate = min(x * r_p, y * r_d)
    devices = x + 2 * y
    assert row.devices == devices
    # Llama-3-8B: 32 layers x 8 KV heads x 128 dims x (K, V) x 2 bytes per token
    kv = 32 * 8 * 128 * 2 * 2 * 1024
    link = "scaleup" if devices <= hw.scaleup_domain_devices else "scaleout"
    bw, lat = ((hw.scaleup_bytes_per_s, hw.scaleup_latency_s) if link == "scaleup"
               else (hw.scaleout_bytes_per_s, hw.scaleout_latency_s))
    transfer = lat + kv / (1 * bw * hw.network_efficiency)   # tp 1 -> one shard
    assert row.kv_transfer_link == link
    assert row.kv_transfer_s == pytest.approx(transfer, rel=1e-12)
    rho = rate / (x * r_p)
    ttft = eng.request_overhead_s + rho * t_p / 2 + t_p + transfer
    assert row.ttft_s == pytest.approx(ttft, rel=1e-12)
    assert row.tpot_s == pytest.approx(t_d, rel=1e-12)
    assert row.requests_per_s == pytest.approx(rate, rel=1e-12)
    assert row.tokens_per_s_per_device == pytest.approx(128 * rate / devices, rel=1e-12)
    assert row.e2e_latency_s == pytest.approx(ttft + 127 * t_d, rel=1e-12)
    assert row.prefill_utilization == pytest.approx(rho, rel=1e-12)
    assert min(row.prefill_utilization, row.decode_utilization) <= 1.0
    assert max(row.prefill_utilization, row.decode_utilization) == pytest.approx(1.0)


@pytest.mark.parametrize("mixed", [False, True])
def test_prefiltered_pools_match_pairing_every_point(tmp_path, monkeypatch, mixed):
    text = SPEC.format(engine="vllm").replace('["h100_sxm"]', '["h100_sxm", "h200"]')
    if mixed:
        text += "mixed_hardware = true\n"
    out, results = _sweep(tmp_path, monkeypatch, text)
    spec = dse.load_sweep(tmp_path / "s.toml")
    pts = _pools(results)
    brute = pair_pools(pts, pts, spec).to_pandas()
    # pairing in batches of a few groups gives the same table
    small = pair_pools(pts, pts, spec, max_pairs=50).to_pandas()
    pd.testing.assert_frame_equal(brute, small)
    cols = ["prefill_hardware", "decode_hardware", "devices", "ttft_s", "tpot_s",
            "tokens_per_s_per_device", "tokens_per_s_per_user"]
    for flag in ("on_frontier", "best"):
        a = out[out[flag]][cols].astype(str).sort_values(cols).reset_index(drop=True)
        b = brute[brute[flag]][cols].astype(str).sort_values(cols).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
    assert out.best.sum() == (1 if mixed else 2)          # one group per hardware unless mixed
    best = out[out.best]
    assert (best.ttft_s <= 0.5).all() and (best.tpot_s <= 0.03).all()
    if not mixed:
        assert (out.prefill_hardware == out.decode_hardware).all()
    # the frontier: no row dominated in (tokens/s per device, per user) within its group
    f = out[out.on_frontier]
    for _, g in f.groupby(["prefill_hardware"] if not mixed else ["model"]):
        x, y = g.tokens_per_s_per_device.to_numpy(), g.tokens_per_s_per_user.to_numpy()
        dominated = ((x[:, None] <= x[None]) & (y[:, None] <= y[None])
                     & ((x[:, None] < x[None]) | (y[:, None] < y[None]))).any(axis=1)
        assert not dominated.any()


def test_chunked_sweep_matches_one_chunk(tmp_path, monkeypatch):
    text = SPEC.format(engine="trtllm").replace('serving = ["static"]',
                                                'serving = ["continuous", "static"]')
    one, _ = _sweep(tmp_path, monkeypatch, text)
    assert main(["sweep", "s.toml", "--out", "chunked", "--quiet", "--chunk-rows", "7"]) == 0
    many = pd.read_parquet("chunked/disaggregated.parquet")
    pd.testing.assert_frame_equal(one, many)
    assert len(one) > 0 and one.best.sum() == 1


def test_disaggregation_beats_aggregated_static_at_a_ttft_limit(tmp_path, monkeypatch):
    """Llama-3-70B fp8, 2048 in / 256 out, TTFT <= 1 s on H100: separate pools serve more
    tokens per device than the best static batch (whose batch-64 prefill takes seconds)."""
    text = """
[grid]
hardware = ["h100_sxm"]
model = ["llama3_70b"]
serving = ["static"]
engine = ["roofline"]
batch = [1, 4, 16, 64, 256]
input_tokens = [2048]
output_tokens = [256]
tp = [1, 2, 4, 8]
weight_dtype = ["fp8"]
[constraints]
max_ttft_s = 1.0
max_tpot_s = 0.05
[disaggregated]
"""
    out, _ = _sweep(tmp_path, monkeypatch, text)
    best = pd.read_parquet("out/best.parquet")
    dis = out[out.best].iloc[0]
    assert dis.tokens_per_s_per_device > 2 * best.tokens_per_s_per_device.iloc[0]
    assert dis.ttft_s <= 1.0 and dis.tpot_s <= 0.05


def test_disaggregated_section_errors(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    base = SPEC.format(engine="vllm")
    for text, needle in (
            (base.replace('serving = ["static"]', 'serving = ["continuous"]'),
             'add "static"'),
            (base.replace("max_instances = 6", "max_instances = 0"), "max_instances = 0: must be a positive integer"),
            (base + "mixed_hardware = 1\n", "must be true or false"),
            (base + "ratio = 2\n", "unknown key")):
        spec.write_text(text)
        line = cli_error(capsys, tmp_path, "sweep", str(spec), "--out", str(tmp_path / "o"))
        assert needle in line and "s.toml" in line, line


def test_closed_loop_by_hand():
    """Constant pass times: below saturation λ solves C = λ (o + ρ t_p / 2 + t_p + k + n t_d)
    with ρ = λ t_p / x (a quadratic); beyond it the prefill pool's capacity x / t_p sets λ
    and the clients' queue shows in TTFT."""
    from dse.disaggregate import closed_loop
    t_p, t_d, o, k, n, x, y = 0.2, 0.01, 0.03, 0.005, 99, 2, 1
    c = 8
    s = closed_loop(c, n, x, y, lambda b: t_p, lambda b: t_d, 1.0, 1e9, o, k)
    a, b = t_p * t_p / (2 * x), o + t_p + k + n * t_d   # a λ² + b λ - C = 0
    lam = (-b + np.sqrt(b * b + 4 * a * c)) / (2 * a)
    assert s["requests_per_s"] == pytest.approx(lam, rel=1e-9)
    assert s["ttft_s"] == pytest.approx(o + lam * t_p / x * t_p / 2 + t_p + k, rel=1e-9)
    assert s["tpot_s"] == t_d and s["saturated"] == ""
    assert s["decode_batch"] == pytest.approx(lam * n * t_d / y, rel=1e-9)
    c = 1000                                          # far beyond x / t_p = 10 requests/s
    s = closed_loop(c, n, x, y, lambda b: t_p, lambda b: t_d, 1.0, 1e9, o, k)
    assert s["saturated"] == "prefill"
    assert s["requests_per_s"] == pytest.approx(x / t_p, rel=1e-6)
    assert s["ttft_s"] + n * t_d == pytest.approx(c / (x / t_p), rel=1e-6)
    s = closed_loop(c, n, x, y, lambda b: t_p, lambda b: t_d, 1.0, 5.0, o, k)
    assert s["saturated"] == "decode"                  # 5 slots: 5 / (n t_d) requests/s
    assert s["requests_per_s"] == pytest.approx(5 / (n * t_d), rel=1e-6)


def test_validate_disaggregated_rows_from_the_cli(tmp_path, monkeypatch, capsys):
    """A disaggregated measured table (prefill_*/decode_* columns) through `dse validate`
    with relative paths: one prediction per end-to-end row, pool-only rows skipped."""
    from dse.validate import bundled_measured_path
    src = bundled_measured_path().with_name("disaggregated.csv")
    table = pd.read_csv(src)
    pick = pd.concat([table[table.scope == "end_to_end"].iloc[[0, 60]],
                      table[table.scope != "end_to_end"].iloc[[0]]])
    monkeypatch.chdir(tmp_path)
    pick.to_csv("d.csv", index=False)
    assert main(["validate", "d.csv", "--out", "v"]) == 0
    out = capsys.readouterr().out
    assert "gpt_oss_120b" in out and "deepseek_r1" in out
    rows = pd.read_parquet("v/validation.parquet")
    assert len(rows) == 2
    assert np.isfinite(rows[["predicted_ttft_s", "predicted_tpot_s"]].to_numpy()).all()
    assert (rows.predicted_ttft_s > rows.kv_transfer_s).all()
    assert rows.infeasible_reason.isna().all()
    bad = pick.copy()
    bad.loc[bad.index[0], "prefill_workers"] = 0
    bad.to_csv("bad.csv", index=False)
    line = cli_error(capsys, tmp_path, "validate", "bad.csv")
    assert "bad.csv: row 2: prefill_workers = 0" in line


def test_validate_disaggregated_prefill_passes_pay_their_eager_launches():
    """An SGLang prefill pool runs prefill without CUDA graphs: a short prompt's pass lasts
    its operator launches x eager_op_s (as aggregated serving prices it), so the predicted
    TTFT is at least the request overhead plus that floor."""
    from dse.engines import load_engine
    from dse.validate import bundled_measured_path
    from dse.validate_disaggregated import (_prefill_launches, check_table,
                                            validate_disaggregated)
    table = pd.read_csv(bundled_measured_path().with_name("disaggregated.csv"))
    rows = table[(table.scope == "end_to_end") & (table.engine == "sglang")
                 & (table.input_tokens <= 256)].iloc[[0]]
    rec = check_table(rows, "d.csv")[0]
    launches = _prefill_launches(rec, "d.csv", None)
    eng = load_engine("sglang")
    # hundreds of launches: several ops in each of the model's layers
    assert launches > 300
    out, _ = validate_disaggregated(rows, source="d.csv")
    floor = eng.request_overhead_s + launches * eng.eager_op_s
    assert out.loc[0, "predicted_ttft_s"] >= floor


def test_first_wave_by_hand():
    """A run's first wave: prompts dealt out in turn over x instances, each running passes
    of at most the budget back to back; a prompt's TTFT = overhead + the end of its pass +
    transfer. 8 prompts, 2 instances, 3 per pass: each instance runs passes of 3 and 1."""
    from dse.disaggregate import first_wave, run_ttft
    o, k = 0.03, 0.005
    assert first_wave(8, 2, lambda b: 0.2, 3, o, k) == pytest.approx(
        o + k + 2 * (3 * 0.2 + 1 * 0.4) / 8, rel=1e-12)
    t_p = lambda b: 0.1 + 0.05 * b                     # passes of 3 (0.25 s), then 1 (0.15 s)
    assert first_wave(8, 2, t_p, 3, o, k) == pytest.approx(
        o + k + 2 * (3 * 0.25 + 1 * 0.40) / 8, rel=1e-12)
    # 7 prompts over 2: one instance gets 4 (3 + 1), the other 3 (one pass)
    assert first_wave(7, 2, t_p, 3, o, k) == pytest.approx(
        o + k + ((3 * 0.25 + 1 * 0.40) + 3 * 0.25) / 7, rel=1e-12)
    # fewer prompts than instances: one pass of 1 each
    assert first_wave(1, 4, t_p, 3, o, k) == pytest.approx(o + k + 0.15, rel=1e-12)
    with pytest.raises(ValueError):
        first_wave(0, 1, t_p, 3, o, k)
    # the run's mean: min(clients, prompts) requests in the first wave, the rest steady
    assert run_ttft(10, 4, 1.0, 0.1) == pytest.approx((4 * 1.0 + 6 * 0.1) / 10)
    assert run_ttft(3, 4, 1.0, 0.1) == pytest.approx(1.0)


def test_validate_disaggregated_prices_the_runs_first_wave(tmp_path, monkeypatch, capsys):
    """A row that states its run (``num_prompts``) is priced as the run: its first wave of
    ``concurrency`` prompts meets an idle prefill pool at once, the rest the steady state;
    without it the prediction is the steady state. A bad count is a one-line error."""
    from dse.validate import bundled_measured_path
    from dse.validate_disaggregated import validate_disaggregated
    table = pd.read_csv(bundled_measured_path().with_name("disaggregated.csv"))
    # long prompts, long outputs: the steady state is below saturation
    row = table[(table.scope == "end_to_end") & (table.num_prompts > 0)
                & (table.input_tokens > 1000) & (table.output_tokens > 400)].iloc[[0]]
    c = int(row.concurrency.iloc[0])
    steady = row.assign(num_prompts=np.nan)
    whole = row.assign(num_prompts=c)                  # every request in the first wave
    out, _ = validate_disaggregated(pd.concat([steady, row, whole]), source="d.csv")
    s, run, first = out.predicted_ttft_s
    assert s == pytest.approx(out.steady_ttft_s[0], rel=1e-12)
    assert (out.steady_ttft_s == out.steady_ttft_s[0]).all()
    assert not out.saturated.any()
    assert first > s                                  # a backlog of c prompts at once
    n = int(row.num_prompts.iloc[0])
    assert run == pytest.approx((c * first + (n - c) * s) / n, rel=1e-9)
    monkeypatch.chdir(tmp_path)
    row.assign(num_prompts=-1).to_csv("bad.csv", index=False)
    line = cli_error(capsys, tmp_path, "validate", "bad.csv")
    assert "bad.csv: row 2: num_prompts = -1" in line
