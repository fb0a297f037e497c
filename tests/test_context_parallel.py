"""Context parallelism (the cp axis): a prompt's tokens over cp devices with its K/V
exchanged per layer, every context's KV cache sharded over them; by hand, against the
reference and from the CLI."""
import pytest

import dse
from dse.evaluate import REASONS, derive

from grid_strategies import kernel_matches_reference

BASE = dict(hardware="h100_sxm", model="llama3_70b", tp=8, batch=1, input_tokens=32768,
            output_tokens=64, serving="static")


def rows(**axes):
    table, summary = dse.explain(**{**BASE, **axes})
    return {(r.phase, r.op): r for r in table.itertuples()}, summary


def test_the_kv_exchange_and_the_split_by_hand():
    one, s1 = rows(cp=1)
    four, s4 = rows(cp=4)
    # a device prefills 8192 of the 32768 tokens: every GEMM a quarter
    for op in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"):
        assert four[("prefill", op)].flops == pytest.approx(one[("prefill", op)].flops / 4,
                                                            rel=1e-12)
    # causal attention, load-balanced: a quarter of the pairs
    assert four[("prefill", "attention")].flops == pytest.approx(
        one[("prefill", "attention")].flops / 4, rel=1e-12)
    # the K/V of every layer gathered over the 4 devices: 8192 tokens x 2 x 8 KV heads x 128
    # / 8 (tp) elements x 2 bytes from each device, the whole prompt's 4 x that gathered
    ex = four[("prefill", "cp_kv_exchange")]
    assert ex.count == 80 and ex.net_bytes == pytest.approx(4 * 8192 * 256 * 2, rel=1e-12)
    assert ("prefill", "cp_kv_exchange") not in one  # no collective without cp
    # decode: each device attends a quarter of the context (reads 1/4 of the cache), then
    # the partial outputs and log-sum-exps are gathered: 4 x 64 heads / 8 x 129 x 4 bytes
    att1, att4 = one[("decode", "attention")], four[("decode", "attention")]
    assert att4.bytes < att1.bytes / 3
    comb = four[("decode", "cp_attention_combine")]
    assert comb.net_bytes == pytest.approx(4 * 1 * 8 * 129 * 4, rel=1e-12)
    # TTFT about a quarter (the exchange and the LM head aside); devices = tp x cp
    assert s4["ttft_s"] < 0.3 * s1["ttft_s"]
    assert s4["devices"] == 32 and s1["devices"] == 8
    # each rank holds a quarter of the KV cache
    assert s4["kv_cache_bytes_per_device"] == pytest.approx(s1["kv_cache_bytes_per_device"] / 4,
                                                            rel=1e-12)
    for phase, summary in (("decode", s4), ("prefill", s4)):
        total = sum(r.total_s for k, r in four.items() if k[0] == phase)
        assert total == pytest.approx(summary["tpot_s" if phase == "decode" else "ttft_s"],
                                      rel=1e-9)


def test_cp_on_a_recurrent_model_is_not_valid():
    spec = dse.parse_sweep({"grid": {"model": ["jamba_v0_1", "llama3_8b"], "cp": [1, 2]}})
    der = derive(dse.evaluate(spec))
    reason = der["reason"].squeeze()
    assert REASONS[int(reason.sel(model="jamba_v0_1", cp=2))] == "cp_on_recurrent_model"
    # (without cp Jamba does not fit one H100: out of memory, a real configuration)
    assert REASONS[int(reason.sel(model="jamba_v0_1", cp=1))] == "out_of_memory"
    assert int(reason.sel(model="llama3_8b", cp=2)) == 0


def test_kernel_matches_reference_with_cp():
    spec = dse.parse_sweep({
        "grid": {"hardware": ["h100_sxm", "b200"], "model": ["llama3_8b", "deepseek_v3",
                                                             "gemma2_9b"],
                 "serving": ["static", "continuous"], "batch": [1, 6], "tp": [1, 8],
                 "pp": [1, 2], "cp": [2, 4], "input_tokens": [3000, 50000],
                 "output_tokens": [5, 17]},
        "what_if": {"scaleup_domain_scale": [1.0, 0.25]}})
    fast, ref = kernel_matches_reference(spec, breakdown=(
        "prefill_collective_s", "decode_collective_s", "decode_attention_s"))
    assert (fast["bound"].values == ref["bound"].values).mean() > 0.999


def test_sweep_with_cp_from_a_relative_folder(sweep_here):
    best, rows_ = sweep_here(
        '[grid]\nmodel = ["llama3_70b"]\ntp = [8]\ncp = [1, 2, 4]\nbatch = [1]\n'
        'input_tokens = [131072]\noutput_tokens = [128]\n[constraints]\nmax_ttft_s = 5.0\n')
    assert set(rows_.cp) == {1, 2, 4}
    assert (rows_.devices == rows_.tp * rows_.cp).all()
    assert int(best.cp.iloc[0]) > 1  # a 131k prompt within 5 s needs context parallelism


def test_context_parallel_prefill_against_the_published_measurements():
    # configs/validation/context_parallel.csv: Llama 3 405B (FP8 FFN) prefill on 1-16
    # hosts of 8 H100 (Yang et al., arXiv:2411.01783): TTFT at 8K-1M tokens, cp 1-16
    from pathlib import Path
    from dse.validate import load_measured, validate
    path = Path(__file__).parents[1] / "configs" / "validation" / "context_parallel.csv"
    rows, _ = validate(load_measured(path), str(path), path.parent)
    err = rows["ttft_error_pct"].abs()
    assert rows["feasible"].all()
    assert err.median() <= 20 and err.max() <= 35, rows[["cp", "input_tokens",
                                                         "ttft_error_pct"]]
    # the scaling with cp at 128K: TTFT(cp) / TTFT(1) within 30 % of the measured ratio
    at = rows[rows.input_tokens == 131072].set_index("cp")
    ratio = at.predicted_ttft_s / at.predicted_ttft_s[1]
    measured = at.measured_ttft_s / at.measured_ttft_s[1]
    assert ((ratio / measured - 1).abs() <= 0.30).all(), (ratio, measured)
