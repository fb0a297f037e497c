"""Speculative decoding with a separate draft model (the draft_model axis): the draft's
passes per step, its weights and KV cache, the reasons, explain, the reference, the CLI."""
import numpy as np
import pytest

import dse
from dse.evaluate import REASONS, derive

from grid_strategies import kernel_matches_reference

BASE = dict(hardware="h100_sxm", model="llama3_70b", tp=4, batch=1, input_tokens=1024,
            output_tokens=128, serving="static")


def test_a_step_drafts_gamma_tokens_and_verifies_gamma_plus_one():
    table, s = dse.explain(**BASE, draft_model="llama3_2_1b", spec_tokens=4,
                           acceptance_rate=0.8)
    draft = table[table.op.str.startswith("draft_")]
    dec = draft[draft.phase == "decode"]
    # each of the draft's per-layer ops runs 4 x 16 layers per step, its head 4 times
    assert set(dec[dec.op == "draft_qkv_proj"]["count"]) == {4 * 16}
    assert set(dec[dec.op == "draft_lm_head"]["count"]) == {4}
    # prefill: the draft prefills the prompt once (its own KV cache)
    pre = draft[draft.phase == "prefill"]
    assert set(pre[pre.op == "draft_qkv_proj"]["count"]) == {16}
    # the rows add up to one step = tpot x expected tokens (1 + .8 + .64 + .512 + .4096)
    per_step = sum(0.8 ** i for i in range(5))
    assert table[table.phase == "decode"].total_s.sum() == pytest.approx(
        s["tpot_s"] * per_step, rel=1e-9)
    # a 1B draft on a 70B target at acceptance 0.8: a large speed-up at batch 1
    _, plain = dse.explain(**BASE)
    assert 2.0 < plain["tpot_s"] / s["tpot_s"] < 3.36


def test_draft_weights_and_cache_are_held_and_reasons():
    spec = dse.parse_sweep({"grid": {**BASE, "draft_model": ["none", "llama3_2_1b",
                                                             "llama2_7b"],
                                     "spec_tokens": [0, 3]}})
    ds = dse.evaluate(spec)
    der = derive(ds)
    w = ds["weight_bytes_per_device"].squeeze()
    one_b = dse.load_model("llama3_2_1b")
    from dse.compile import weight_bytes_per_device, kv_cache_bytes_per_device
    extra = weight_bytes_per_device(one_b, 4.0, 1.0, 1.0, 2.0, {})
    assert float(w.sel(draft_model="llama3_2_1b") - w.sel(draft_model="none")) == \
        pytest.approx(float(extra), rel=1e-12)
    kv = ds["kv_cache_bytes_per_device"].squeeze()
    assert float(kv.sel(draft_model="llama3_2_1b") - kv.sel(draft_model="none")) == \
        pytest.approx(float(kv_cache_bytes_per_device(one_b, 4.0, 1.0, 1.0, 1024 + 128, 2.0)),
                      rel=1e-12)
    reason = der["reason"].squeeze()
    names = {(d, g): REASONS[int(reason.sel(draft_model=d, spec_tokens=g))]
             for d in ("none", "llama3_2_1b", "llama2_7b") for g in (0, 3)}
    assert names[("none", 0)] == "" and names[("llama3_2_1b", 3)] == ""
    assert names[("none", 3)] == "spec_tokens_without_mtp"  # Llama 3 has no MTP module
    assert names[("llama3_2_1b", 0)] == "draft_model_without_spec_tokens"
    assert names[("llama2_7b", 3)] == "draft_vocab_mismatch"  # 32000 against 128256 tokens


def test_kernel_matches_reference_with_draft_models():
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h100_sxm"], "model": ["llama3_70b"],
        "serving": ["static", "continuous"], "batch": [1, 12], "tp": [2], "pp": [1, 2],
        "draft_model": ["none", "llama3_2_1b", "llama3_2_3b"], "spec_tokens": [2, 5],
        "acceptance_rate": [0.6], "input_tokens": [500], "output_tokens": [7, 17]}})
    kernel_matches_reference(spec, breakdown=("decode_gemm_s",))


def test_one_request_ttft_does_not_jump_with_the_output_length():
    """One client (batch 1) under continuous serving: its prefill iteration carries no
    decodes, whatever the output length. The riding decoders r - (r - r_d) / f are 0 in
    exact arithmetic; a rounding remainder (1e-16) used to charge every decode op's kernel
    latency at some output lengths (17 here: TTFT 0.1048 s against 0.0996 s at 16 and 18)."""
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h100_sxm"], "model": ["llama3_70b"], "serving": ["continuous"],
        "batch": [1], "tp": [2], "draft_model": ["llama3_2_1b"], "spec_tokens": [5],
        "acceptance_rate": [0.6], "input_tokens": [500], "output_tokens": list(range(5, 41))}})
    ttft = dse.evaluate(spec)["ttft_s"].values.ravel()
    assert np.ptp(ttft) <= 1e-9 * ttft.max(), ttft


def test_sweep_with_a_draft_model_from_a_relative_folder(sweep_here):
    best, rows = sweep_here(
        '[grid]\nmodel = ["llama3_70b"]\ntp = [4]\nbatch = [1, 32]\n'
        'draft_model = ["none", "llama3_2_1b"]\nspec_tokens = [0, 4]\n')
    assert set(best.draft_model.astype(str)) <= {"none", "llama3_2_1b"}
    ok = rows[rows.feasible]
    assert set(zip(ok.draft_model.astype(str), ok.spec_tokens)) == {("none", 0),
                                                                     ("llama3_2_1b", 4)}
