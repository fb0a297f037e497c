"""Offload to the host tier (the ``offload`` axis, dse/offload.py): what spills, what a
pass costs, where it is infeasible, by hand, against the reference, from the CLI."""
import numpy as np
import pytest

import dse
from dse.cli import main
from dse.config import load_hardware
from dse.evaluate import REASONS, derive
from dse.explain import explain

from conftest import cli_error
from grid_strategies import kernel_matches_reference

GH200 = load_hardware("gh200")
H100 = load_hardware("h100_sxm")


def one(ds, name):
    return float(np.asarray(ds[name]).ravel()[0])


def point(**grid):
    what_if = grid.pop("what_if", {})
    spec = dse.parse_sweep({"grid": grid, "what_if": what_if})
    ds = dse.evaluate(spec)
    return ds, derive(ds)


def test_405b_on_four_gh200_streams_its_spilled_weights_over_nvlink_c2c():
    # the issue's case: Llama-3-405B (bf16) on 4 GH200 (tp 4): 203 GB of weights per device
    # in 86.4 GB of usable HBM; the rest lives in the Grace memory and crosses NVLink-C2C
    # every decode step
    base = dict(hardware="gh200", model="llama3_405b", tp=4, batch=1, input_tokens=1024,
                output_tokens=256, serving="static")
    ds, der = point(**base, offload="weights")
    weights = one(ds, "weight_bytes_per_device")
    usable = GH200.memory_bytes * GH200.memory_usable_fraction
    peak = weights + max(one(ds, "kv_prompt_bytes") + one(ds, "activation_bytes_per_device"),
                         one(ds, "kv_cache_bytes_per_device") + one(ds, "decode_working_bytes"))
    spilled = peak - usable  # by hand: what does not fit
    assert 100e9 < spilled < weights
    assert one(der, "offloaded_bytes_per_device") == pytest.approx(spilled, rel=1e-9)
    assert one(der, "memory_bytes_per_device") <= usable
    assert one(der, "reason") == 0
    # a decode step = the spilled bytes over the host link (450 GB/s at the preset's
    # network efficiency): the device's own step (~0.07 s) hides behind it
    link = GH200.host_link_bytes_per_s * GH200.network_efficiency
    assert one(ds, "tpot_s") == pytest.approx(spilled / link, rel=1e-6)
    assert ds["bound"].attrs["names"][int(one(ds, "bound"))] == "host_link"
    # without offload the same point does not fit
    _, der_none = point(**base, offload="none")
    assert REASONS[int(one(der_none, "reason"))] == "out_of_memory"


def test_offload_is_infeasible_when_the_host_memory_is_exhausted_too():
    # tp 1: 810 GB of weights against 86 GB of HBM and 480 GB of host memory
    _, der = point(hardware="gh200", model="llama3_405b", tp=1, batch=1, input_tokens=128,
                   output_tokens=16, serving=["static", "continuous"], offload="weights")
    assert (np.asarray(der["reason"]) == REASONS.index("out_of_memory")).all()
    assert (np.asarray(der["offloaded_bytes_per_device"]) == 0).all()


def test_static_kv_offload_reads_the_spilled_cache_every_step():
    # Llama-3-8B on one H100 with 8 sequences of 32k + 32k tokens: 69 GB of KV cache at
    # full context and 16 GB of weights against 72 GB usable; the excess lives in host
    # memory (256 GB per GPU)
    base = dict(hardware="h100_sxm", model="llama3_8b", batch=8, input_tokens=32768,
                output_tokens=32768, serving="static")
    ds, der = point(**base, offload="kv")
    usable = H100.memory_bytes * H100.memory_usable_fraction
    w = one(ds, "weight_bytes_per_device")
    dec_excess = w + one(ds, "kv_cache_bytes_per_device") + one(ds, "decode_working_bytes") \
        - usable
    pre_excess = w + one(ds, "kv_prompt_bytes") + one(ds, "activation_bytes_per_device") \
        - usable
    assert dec_excess > 0 and one(der, "reason") == 0
    link = H100.host_link_bytes_per_s * H100.network_efficiency
    ds_none, der_none = point(**base, offload="none")
    assert REASONS[int(one(der_none, "reason"))] == "out_of_memory"
    # a decode step: the device's step or the spilled KV over PCIe, whichever is longer
    assert one(ds, "tpot_s") == pytest.approx(max(one(ds_none, "tpot_s"), dec_excess / link),
                                              rel=1e-9)
    # prefill writes the prompts' spilled KV out while it computes
    assert one(ds, "ttft_s") == pytest.approx(max(one(ds_none, "ttft_s"),
                                                  max(pre_excess, 0.0) / link), rel=1e-9)


def test_continuous_kv_offload_admits_more_requests_and_pays_per_iteration():
    base = dict(hardware="h100_sxm", model="llama3_8b", batch=256, input_tokens=16384,
                output_tokens=512, serving="continuous")
    ds_none, der_none = point(**base, offload="none")
    ds_kv, der_kv = point(**base, offload="kv")
    running_none = one(der_none, "running_requests")
    running_kv = one(der_kv, "running_requests")
    assert running_none < running_kv <= 256
    # KV beyond the device's room crosses PCIe every iteration: at least that per token
    room = (H100.memory_bytes * H100.memory_usable_fraction
            - one(ds_kv, "weight_bytes_per_device") - one(ds_kv, "working_bytes"))
    spilled = running_kv * one(ds_kv, "kv_request_bytes") - room
    assert one(der_kv, "offloaded_bytes_per_device") == pytest.approx(spilled, rel=1e-9)
    link = H100.host_link_bytes_per_s * H100.network_efficiency
    assert one(ds_kv, "tpot_s") >= spilled / link * (1 - 1e-9)
    # weights offload on a point that fits changes nothing
    ds_w, der_w = point(**{**base, "batch": 4, "input_tokens": 1024}, offload="weights")
    ds_n, _ = point(**{**base, "batch": 4, "input_tokens": 1024}, offload="none")
    assert one(der_w, "offloaded_bytes_per_device") == 0
    assert one(ds_w, "tpot_s") == one(ds_n, "tpot_s")


def test_kernel_and_breakdown_match_the_reference_with_offload():
    spec = dse.parse_sweep({
        "grid": {"hardware": ["h100_sxm", "gh200"], "model": ["llama3_70b", "mixtral_8x7b"],
                 "serving": ["static", "continuous"], "offload": ["none", "weights", "kv"],
                 "batch": [1, 48], "tp": [1, 2], "pp": [1, 2], "input_tokens": [2048, 20000],
                 "output_tokens": [8, 64]},
        "what_if": {"memory_capacity_scale": [1.0, 0.5]}})
    fast, ref = kernel_matches_reference(spec, breakdown=(
        "prefill_offload_s", "decode_offload_s", "decode_other_s"))
    offloaded = derive(fast)["offloaded_bytes_per_device"].values
    assert (offloaded > 0).any() and (fast["bound"].values == 3).any()
    assert (fast["bound"].values == ref["bound"].values).mean() > 0.999
    # the classes add up to tpot_s, the offload class holding the host link's wait
    dec = sum(fast[f"decode_{c}_s"] for c in ("attention", "gemm", "moe", "collective",
                                              "other", "offload"))
    tpot = fast["tpot_s"].broadcast_like(dec)
    finite = np.isfinite(tpot.values)
    np.testing.assert_allclose(dec.values[finite], tpot.values[finite], rtol=1e-9)
    assert (fast["decode_offload_s"].values[finite] > 0).any()


def test_explain_shows_the_host_link_and_its_rows_add_up():
    for serving in ("static", "continuous"):
        table, summary = explain(hardware="gh200", model="llama3_405b", tp=4, batch=8,
                                 input_tokens=512, output_tokens=64, serving=serving,
                                 offload="weights")
        host = table[table.op == "host_link"]
        assert len(host) >= 1 and (host.kind == "offload").all()
        assert summary["bound"] == "host_link" and summary["offloaded_bytes_per_device"] > 0
        if serving == "static":
            assert table[table.phase == "decode"].total_s.sum() == pytest.approx(
                summary["tpot_s"], rel=1e-9)
            assert table[table.phase == "prefill"].total_s.sum() == pytest.approx(
                summary["ttft_s"], rel=1e-9)
        else:
            assert table[table.phase == "decode_iteration"].total_s.sum() == pytest.approx(
                summary["decode_iteration_s"], rel=1e-9)


def test_sweep_with_offload_from_a_relative_folder(sweep_here, capsys):
    best, rows = sweep_here(
        '[grid]\nhardware = ["gh200"]\nmodel = ["llama3_405b"]\ntp = [4]\nbatch = [1, 8]\n'
        'input_tokens = [512]\noutput_tokens = [64]\noffload = ["none", "weights"]\n')
    assert set(best["offload"].astype(str)) == {"weights"}
    assert (rows[rows.offload == "weights"].offloaded_bytes_per_device > 0).all()
    assert not rows[rows.offload == "none"].feasible.any()
    # dse explain names the host link's row
    capsys.readouterr()
    assert main(["explain", "--hardware", "gh200", "--model", "llama3_405b", "--tp", "4",
                 "--offload", "weights", "--serving", "static"]) == 0
    assert "host_link" in capsys.readouterr().out


def test_bad_offload_value_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[grid]\noffload = ["disk"]\n')
    line = cli_error(capsys, tmp_path, "sweep", str(tmp_path / "s.toml"), "--out",
                     str(tmp_path / "o"))
    assert "offload" in line and "disk" in line and "weights" in line
