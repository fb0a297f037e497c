"""The breakdown columns (``--breakdown``, ``kernels/breakdown.py``): time per operator class
for prefill and decode, and the prefill bound. They add up to TTFT's prefill part and to
TPOT; the kernel matches the numpy reference on hypothesis grids; one configuration by
hand; ``dse explain`` agrees; a sweep writes them from the command line."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dse
from dse.cli import main
from dse.config import ConfigError
from dse.engines import load_engine
from dse.evaluate import derive
from dse.kernels import layout as L
from dse.kernels.breakdown import CLASSES, COLUMNS, KIND_CLASS
from dse.metrics import BREAKDOWN_METRICS, METRIC, breakdown_markdown

from grid_strategies import HARDWARE, MODELS, STRUCTURE, WHAT_IF_SCALES, axis, ints, trimmed

PRE, DEC = COLUMNS[:len(CLASSES)], COLUMNS[len(CLASSES):]


def sums(ds):
    """(prefill classes, decode classes) added up, as arrays over the dataset's dims."""
    return sum(ds[c] for c in PRE), sum(ds[c] for c in DEC)


def test_breakdown_classes_and_columns_are_declared_once():
    # every op kind has one class; the metrics table declares exactly the kernel's rows
    assert len(KIND_CLASS) == len(L.OP_KIND_NAMES)
    named = {L.OP_KIND_NAMES[k]: CLASSES[c] for k, c in enumerate(KIND_CLASS)}
    assert named == {"gemm": "gemm", "attention": "attention", "norm": "other",
                     "embedding": "other", "moe_experts": "moe", "all_reduce": "collective",
                     "all_to_all": "collective", "p2p": "collective",
                     "all_gather": "collective", "ssm_scan": "attention",
                     "reduce_scatter": "collective", "elementwise": "other", "lora": "gemm"}
    assert [m.name for m in BREAKDOWN_METRICS] == [*COLUMNS, "prefill_bound"]
    assert all(m.unit == "s" for m in BREAKDOWN_METRICS[:-1])
    assert not any(m.name in METRIC or m.in_rows for m in BREAKDOWN_METRICS)


def test_breakdown_readme_lists_the_columns():
    from pathlib import Path
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert breakdown_markdown() in readme, "regenerate with dse.metrics.breakdown_markdown()"
    assert "--breakdown" in readme


def test_breakdown_static_adds_up_to_ttft_and_tpot():
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h100_sxm", "mi300x"], "serving": ["static"],
        "model": ["llama3_8b", "mixtral_8x7b", "jamba_v0_1", "deepseek_v3"],
        "batch": [1, 3, 64], "input_tokens": [100, 4000], "output_tokens": [1, 2, 300],
        "tp": [1, 2, 8], "pp": [1, 2, 3], "ep": [1, 8], "offload": ["none", "weights"]}})
    ds = dse.evaluate(spec, breakdown=True)
    pre, dec = sums(ds)
    ok = np.isfinite(ds["ttft_s"])
    assert int(ok.sum()) > 1000
    np.testing.assert_allclose(pre.values[ok.values], ds["ttft_s"].values[ok.values],
                               rtol=1e-9)
    np.testing.assert_allclose(dec.values[ok.values], ds["tpot_s"].values[ok.values],
                               rtol=1e-9)
    for c in COLUMNS:
        assert (ds[c].values[ok.values] >= 0).all() and not np.isnan(ds[c].values).any()
    # every class shows up somewhere, and both bounds
    assert all(float(ds[c].max()) > 0 for c in COLUMNS)
    assert set(np.unique(ds["prefill_bound"].values)) >= {0, 1}


@pytest.mark.parametrize("engine", ["roofline", "vllm", "sglang", "trtllm"])
def test_breakdown_continuous_adds_up_to_the_prefill_part_and_tpot(engine):
    """Continuous serving: the decode classes add up to tpot_s; the prefill classes to the
    request's prefill iterations, which are all of ttft_s when no request overhead, arrival
    offset or admission wait is added (batch 1, or the roofline engine with every client
    admitted), and at most ttft_s otherwise."""
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h100_sxm"], "serving": ["continuous"], "engine": [engine],
        "model": ["llama3_8b", "mixtral_8x7b", "deepseek_v3"], "batch": [1, 4, 256],
        "input_tokens": [100, 3000], "output_tokens": [1, 2, 200], "tp": [1, 8],
        "pp": [1, 2], "ep": [1, 8], "max_batched_tokens": [0, 512]},
        "what_if": {"memory_capacity_scale": [0.1, 1.0]}})
    ds = dse.evaluate(spec, breakdown=True)
    der = derive(ds)
    pre, dec = sums(ds)
    ok = np.isfinite(ds["ttft_s"]) & der["feasible"]
    assert int(ok.sum()) > 100
    np.testing.assert_allclose(dec.where(ok, 1.0), ds["tpot_s"].where(ok, 1.0), rtol=1e-9)
    assert bool((pre <= ds["ttft_s"] * (1 + 1e-12)).where(ok, True).all())
    request_s = load_engine(engine).request_overhead_s
    single = ok & (ds["batch"] == 1)
    np.testing.assert_allclose(pre.where(single, 0.0),
                               (ds["ttft_s"] - request_s).where(single, 0.0), rtol=1e-9)
    if engine == "roofline":  # no overheads: with every client admitted, ttft_s is prefill
        full = ok & (der["running_requests"] == ds["batch"])
        assert int(full.sum()) > 50
        np.testing.assert_allclose(pre.where(full, 1.0), ds["ttft_s"].where(full, 1.0),
                                   rtol=1e-9)
    if load_engine(engine).iteration_overhead_s > 0:  # the overhead is "other"'s
        assert bool((ds["decode_other_s"] > 0).where(ok, True).all())


def test_breakdown_leaves_the_default_outputs_alone():
    spec = dse.parse_sweep({"grid": {"model": ["llama3_8b", "mixtral_8x7b"],
                                     "serving": ["static", "continuous"], "batch": [1, 16],
                                     "tp": [1, 2], "pp": [1, 2]}})
    plain = dse.evaluate(spec)
    both = dse.evaluate(spec, breakdown=True)
    for name in plain.data_vars:
        np.testing.assert_array_equal(plain[name].values, both[name].values)
    assert not set(COLUMNS) & set(plain.data_vars)


# --------------------------------------------------------------- kernel vs reference
AXES = st.fixed_dictionaries({
    "hardware": axis(HARDWARE, 2),
    "model": axis(MODELS, 2),
    "serving": axis(["static", "continuous"], 2),
    "engine": axis(["vllm", "sglang", "trtllm", "roofline"], 2),
    "max_batched_tokens": axis([0, 100, 2048], 2),
    "admission_interval": axis([0, 10], 2),
    "batch": ints(1, 300),
    "input_tokens": ints(1, 3000, 2),
    **STRUCTURE,
    "what_if": st.fixed_dictionaries({
        **{k: v for k, v in WHAT_IF_SCALES.items()},
        "memory_capacity_scale": st.lists(st.sampled_from([0.1, 1.0]), min_size=1,
                                          max_size=2, unique=True)}),
})
# the static reference prices every decode step of the longest output one after another
# (seconds per model at 150 steps, whatever the grid's size): outputs up to 40 tokens where
# the grid serves static (as tests/test_kernel_reference.py draws them), up to 300 where it
# serves continuous alone (that reference's time hardly grows with the output)
LONGEST_OUTPUT = {True: 40, False: 300}


@st.composite
def grids(draw):
    grid = draw(AXES)
    longest = LONGEST_OUTPUT["static" in grid["serving"]]
    grid["output_tokens"] = draw(st.lists(st.one_of(st.integers(1, 3), st.integers(4, longest)),
                                          min_size=1, max_size=2, unique=True))
    return grid


# configurations per drawn grid: the reference prices every one, but its time goes to its
# steps (per model and decode step) more than to the points: 4,000 cost about as much as 1,000
MAX_POINTS = 4000


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(grids())
def test_breakdown_kernel_matches_reference_on_random_grids(grid):
    g, w = trimmed(grid, MAX_POINTS)
    spec = dse.parse_sweep({"grid": g, "what_if": w})
    fast = dse.evaluate(spec, breakdown=True)
    ref = dse.evaluate(spec, backend="reference", breakdown=True)
    for c in COLUMNS:
        a, b = fast[c].values, ref[c].values
        assert not np.isnan(a).any() and not np.isnan(b).any(), c
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
        finite = np.isfinite(a)
        # a class's seconds are a sum of op seconds: relative to the phase's total, as a
        # class that is 0 in one is 0 in the other
        total = sum(fast[x].values for x in (PRE if c in PRE else DEC))[finite]
        np.testing.assert_allclose(a[finite], b[finite], rtol=1e-9, atol=1e-12 * total.max())
    # the bound label may differ only where two resources tie within rounding
    same = fast["prefill_bound"].values == ref["prefill_bound"].values
    assert same.mean() > 0.999


# ------------------------------------------------------------------------ by hand
TOY_HW = """\
name = "toy_hw"
description = "round numbers for a hand calculation"
flops_per_s_fp32 = 1e12
flops_per_s_bf16 = 1e12
native_precisions = ["fp32", "bf16"]
memory_bytes = 80e9
memory_bytes_per_s = 1e12
memory_usable_fraction = 0.9
scaleup_bytes_per_s = 1e11
scaleup_latency_s = 1e-6
scaleup_domain_devices = 8
scaleout_bytes_per_s = 1e10
scaleout_latency_s = 1e-5
compute_efficiency = 1.0
memory_efficiency = 1.0
network_efficiency = 1.0
kernel_latency_s = 0.0
"""
TOY_LM = """\
name = "toy_lm"
description = "one-layer dense model for a hand calculation"
layers = 1
hidden_size = 64
heads = 1
kv_heads = 1
head_dim = 64
ffn_dim = 128
vocab_size = 256
tied_embeddings = false
gated_ffn = false
"""


@pytest.fixture()
def toy(tmp_path):
    (tmp_path / "toy_hw.toml").write_text(TOY_HW)
    (tmp_path / "toy_lm.toml").write_text(TOY_LM)
    return dict(hardware=str(tmp_path / "toy_hw.toml"), model=str(tmp_path / "toy_lm.toml"),
                serving="static", batch=1, input_tokens=8, output_tokens=2)


def test_breakdown_by_hand_one_layer_model(toy):
    """h = 64, one head of 64, FFN 128 (not gated), vocabulary 256, bf16 (2 bytes), one
    layer, tp = pp = 1, batch 1, 8 prompt tokens, 2 output tokens (one decode step at
    context 9). 1 TFLOP/s and 1 TB/s: an op takes max(FLOPs, bytes) picoseconds; no
    kernel latency, no collectives (tp = 1)."""
    ps = 1e-12
    # prefill, T = 8 tokens. GEMM [T, K] x [K, N]: 2 T K N FLOPs, (K N + T (K + N)) 2 bytes
    qkv = max(2 * 8 * 64 * 192, (64 * 192 + 8 * (64 + 192)) * 2)  # 196608 FLOPs > 28672 B
    o = max(2 * 8 * 64 * 64, (64 * 64 + 8 * 128) * 2)               # 65536 > 10240
    up = max(2 * 8 * 64 * 128, (64 * 128 + 8 * 192) * 2)           # 131072 > 19456
    down = max(2 * 8 * 128 * 64, (128 * 64 + 8 * 192) * 2)         # 131072 > 19456
    lm_head = max(2 * 1 * 64 * 256, (64 * 256 + 1 * 320) * 2)       # last token: 33408 B
    gemm = qkv + o + up + down + lm_head
    assert gemm == 557696
    # causal attention over 8 tokens: 36 query-key pairs x 2 x (64 + 64) FLOPs; reads
    # fresh q, k, v, o (4 x 64 elements per token) and writes k, v to the cache
    attention = max(2 * 36 * 128, 8 * (4 * 64 + 128) * 2)           # 9216 > 6144
    # memory-bound small kernels: the embedding row read and written (2 h per token),
    # three add+RMSNorms (read x and residual, write both: 4 h per token, and the h
    # weights), RoPE on q and k (128 elements in and out, 384 FLOPs per token), the
    # activation (128 in and out, 512 FLOPs: a tie goes to compute, the same time) and
    # sampling on the last token's fp32 logits (512 elements read, 256 written)
    norm = max(5 * 8 * 64, 4 * 8 * 64 * 2 + 64 * 2)                # 4224 B
    other = (8 * 64 * 2 * 2 + 3 * norm + max(8 * 384, 8 * 256 * 2)
             + max(8 * 512, 8 * 256 * 2) + max(1280, (512 + 256) * 4))
    assert other == 25984
    # decode, 1 token at context 9: every GEMM reads its weights (memory bound)
    d_gemm = ((64 * 192 + 256) * 2 + (64 * 64 + 128) * 2 + 2 * (64 * 128 + 192) * 2
              + (64 * 256 + 320) * 2)
    assert d_gemm == 100480
    # attention: fresh q, k, v, o and the cache write (768 B), the cache of 9 positions
    # (9 x 128 elements x 2 B): 3072 B > 2304 FLOPs
    d_attention = max(2 * 9 * 128, 768 + 9 * 128 * 2)
    d_norm = max(5 * 64, 4 * 64 * 2 + 64 * 2)                      # 640 B
    d_other = 64 * 2 * 2 + 3 * d_norm + max(384, 512) + max(512, 512) + 3072
    assert d_other == 6272
    _, summary = dse.explain(**toy, breakdown=True)
    expect = {"prefill_gemm_s": gemm, "prefill_attention_s": attention,
              "prefill_other_s": other, "prefill_moe_s": 0, "prefill_collective_s": 0,
              "decode_gemm_s": d_gemm, "decode_attention_s": d_attention,
              "decode_other_s": d_other, "decode_moe_s": 0, "decode_collective_s": 0}
    for name, value in expect.items():
        assert summary[name] == pytest.approx(value * ps, rel=1e-12, abs=1e-30), name
    assert summary["ttft_s"] == pytest.approx((gemm + attention + other) * ps, rel=1e-12)
    assert summary["tpot_s"] == pytest.approx((d_gemm + d_attention + d_other) * ps,
                                              rel=1e-12)
    # prefill: the compute-bound GEMMs, attention and activation (537600 ps) outweigh the
    # memory-bound LM head, norms and small kernels (55296 ps); decode reads memory
    assert summary["prefill_bound"] == "compute" and summary["bound"] == "memory"


def test_breakdown_explain_rows_add_up_by_class():
    """Static, one micro-batch: explain's rows of one op_class add up to its column."""
    axes = dict(hardware="h100_sxm", model="mixtral_8x7b", serving="static", batch=4,
                tp=4, ep=2, input_tokens=700, output_tokens=50)
    table, summary = dse.explain(**axes, breakdown=True)
    per_class = table.groupby(["phase", "op_class"])["total_s"].sum()
    for phase in ("prefill", "decode"):
        for c in CLASSES:
            got = per_class.get((phase, c), 0.0)
            assert summary[f"{phase}_{c}_s"] == pytest.approx(got, rel=1e-9, abs=1e-15)
    assert summary["prefill_collective_s"] > 0 and summary["decode_moe_s"] > 0


def test_breakdown_explain_continuous_iterations_weigh_into_the_columns():
    """Continuous (vLLM: mixed prefill): per class, prefill = the request's prefill
    iterations x the prefill-carrying iteration's seconds of that class; decode = the
    decode-only and prefill-carrying iterations as a decoding request sees them, (1 - f
    (r - 1) / r) and f (r - 1) / r (README "Continuous serving")."""
    axes = dict(hardware="h100_sxm", model="llama3_8b", serving="continuous", batch=16,
                tp=2, input_tokens=1000, output_tokens=100)
    table, s = dse.explain(**axes, breakdown=True)
    per = table.groupby(["phase", "op_class"])["total_s"].sum()
    f, r = s["prefill_iteration_share"], s["running_requests"]
    seen_mix = f * (r - 1) / r
    for c in CLASSES:
        mix = per.get(("prefill_iteration", c), 0.0)
        dec = per.get(("decode_iteration", c), 0.0)
        assert s[f"prefill_{c}_s"] == pytest.approx(
            s["prefill_iterations_per_request"] * mix, rel=1e-9, abs=1e-15)
        assert s[f"decode_{c}_s"] == pytest.approx((1 - seen_mix) * dec + seen_mix * mix,
                                                   rel=1e-9, abs=1e-15)
    # the engine's iteration overhead is "other"'s
    assert per[("decode_iteration", "other")] > load_engine("vllm").iteration_overhead_s


def test_breakdown_explain_cli_json(capsys, toy):
    import json
    args = ["explain", "--hardware", toy["hardware"], "--model", toy["model"], "--serving",
            "static", "--batch", "1", "--input-tokens", "8", "--output-tokens", "2"]
    assert main([*args, "--json", "--breakdown"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["prefill_gemm_s"] == pytest.approx(557696e-12, rel=1e-12)
    assert {r["op_class"] for r in doc["operators"]} >= {"gemm", "attention", "other"}
    assert main([*args, "--json"]) == 0
    assert "prefill_gemm_s" not in json.loads(capsys.readouterr().out)["summary"]


# -------------------------------------------------------------------- end to end
SPEC = """\
[grid]
hardware = ["h100_sxm"]
model = ["llama3_8b", "mixtral_8x7b"]
serving = ["static", "continuous"]
batch = [1, 8]
tp = [1, 2]
pp = [1, 2]
output_tokens = [1, 64]

[what_if]
memory_bandwidth_scale = [1.0, 1.5]
"""


def test_breakdown_sweep_cli_writes_the_columns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC)
    assert main(["sweep", "spec.toml", "--out", "results", "--breakdown", "--quiet"]) == 0
    table = pd.read_parquet("results/configurations")
    names = [m.name for m in BREAKDOWN_METRICS]
    assert list(table.columns[-len(names) - 2:-2]) == names  # before the partition keys
    pre = table[list(PRE)].sum(axis=1)
    dec = table[list(DEC)].sum(axis=1)
    static = table["serving"] == "static"
    np.testing.assert_allclose(pre[static], table["ttft_s"][static], rtol=1e-9)
    np.testing.assert_allclose(dec, table["tpot_s"], rtol=1e-9)
    assert set(table["prefill_bound"].astype(str)) <= {"compute", "memory", "network"}
    # the same spec evaluated in one piece, and its rows, agree with the file
    spec = dse.load_sweep(tmp_path / "spec.toml")
    ds = dse.evaluate(spec, breakdown=True)
    assert float(table["decode_gemm_s"].sum()) == pytest.approx(
        float(ds["decode_gemm_s"].sum()), rel=1e-12)
    # the Pareto and best rows keep their columns; without --breakdown no new column
    assert "decode_gemm_s" not in pd.read_parquet("results/best.parquet").columns
    assert main(["sweep", "spec.toml", "--out", "plain", "--quiet"]) == 0
    plain = pd.read_parquet("plain/configurations")
    assert not set(names) & set(plain.columns)
    assert list(table.columns.drop(names)) == list(plain.columns)


def test_breakdown_streams_in_chunks_and_the_api_takes_it(tmp_path):
    spec = dse.parse_sweep({"grid": {
        "model": ["llama3_8b", "mixtral_8x7b"], "serving": ["static", "continuous"],
        "batch": [1, 4, 16], "tp": [1, 2], "pp": [1, 2], "output_tokens": [1, 64]},
        "what_if": {"compute_scale": [1.0, 2.0]}})
    whole = dse.run_sweep(spec, tmp_path / "whole", progress=False, breakdown=True)
    chunked = dse.run_sweep(spec, tmp_path / "chunked", progress=False, breakdown=True,
                            chunk_rows=7)
    assert chunked.n_chunks > 5
    keys = ["model", "serving", "batch", "tp", "pp", "output_tokens", "compute_scale"]
    a = whole.results().to_table().to_pandas()
    b = chunked.results().to_table().to_pandas()
    a, b = (x.astype({"model": str}).sort_values(keys).reset_index(drop=True) for x in (a, b))
    for c in [*COLUMNS, "prefill_bound"]:
        assert (a[c].astype(str) == b[c].astype(str)).all() if c == "prefill_bound" \
            else np.array_equal(a[c].to_numpy(), b[c].to_numpy()), c
    with pytest.raises(ConfigError, match="--breakdown"):
        dse.run_sweep(spec, tmp_path / "none", progress=False, breakdown=True, results=False)
