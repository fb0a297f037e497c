"""Continuous serving: the numba kernel (``kernels/grid.py::_continuous`` with the per-op
pricing of ``kernels/serving.py``) against the plain-numpy reference
(``kernels/reference_serving.py``) on hypothesis-generated grids, and the reference's
position counts by hand."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dse
from dse.kernels.reference_serving import _chunk_reads, _decode_context, _prompt_pairs

from grid_strategies import (HARDWARE, MODELS, STRUCTURE, WHAT_IF_SCALES, axis, ints,
                             kernel_matches_reference, trimmed)

ENGINES = ["vllm", "sglang", "trtllm", "roofline", "trtllm_0_17"]  # the last: eager decode
# configurations per drawn grid (before dp), to keep the file fast. An example's time goes
# mostly to its fixed costs (the memory terms and kernel inputs, for both backends): 60
# examples of up to 16,384 points price about 80 % as many configurations as 120 of up to
# 6,000, in about 60 % of the time
MAX_POINTS = 16384


grids = st.fixed_dictionaries({
    "hardware": axis(HARDWARE, 2),
    "model": axis(MODELS, 2),
    "engine": axis(ENGINES, 3),
    "max_batched_tokens": axis([0, 16, 100, 512, 2048, 8192], 3),
    "admission_interval": axis([0, 1, 10, 30], 2),
    "memory_fraction": axis([0.0, 0.3, 0.9], 2),
    "batch": ints(1, 400),
    "input_tokens": ints(1, 6000, 2),
    "output_tokens": st.lists(st.one_of(st.integers(1, 3), st.integers(4, 700)), min_size=1,
                              max_size=3, unique=True),
    **STRUCTURE,
    "what_if": st.fixed_dictionaries({
        **WHAT_IF_SCALES,
        # small capacities admit fewer requests than batch (KV-limited running count),
        # large ones all of them: several running counts per structure point
        "memory_capacity_scale": st.lists(st.sampled_from([0.02, 0.1, 0.3, 1.0, 4.0]),
                                          min_size=1, max_size=3, unique=True),
    }),
})


def compare(spec, rtol=1e-9):
    fast, ref = kernel_matches_reference(spec, rtol)
    # the bound label may legitimately differ only where two resources tie within rounding
    same = fast["bound"].values == ref["bound"].values
    assert same.mean() > 0.999
    return fast


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(grids)
def test_continuous_kernel_matches_reference_on_random_grids(grid):
    axes, what_if = trimmed(grid, MAX_POINTS)
    spec = dse.parse_sweep({"grid": {**axes, "serving": ["continuous"]}, "what_if": what_if})
    compare(spec)


def test_continuous_reference_covers_kv_limited_running_counts():
    # the capacity what-if changes the running count (KV-limited admission: the kernel
    # groups what-if points by it and copies alike ones); both engine modes, chunked and
    # whole prompts, dense and MoE, pipeline and attention-DP parallelism
    spec = dse.parse_sweep({
        "grid": {"hardware": ["h100_sxm"], "model": ["llama3_8b", "mixtral_8x7b"],
                 "serving": ["continuous"], "engine": ["vllm", "sglang", "trtllm"],
                 "batch": [1, 64, 512], "input_tokens": [2048], "output_tokens": [1, 256],
                 "tp": [2], "pp": [1, 2], "attention_dp": [1, 2], "ep": [1, 2],
                 "max_batched_tokens": [0, 512]},
        "what_if": {"memory_capacity_scale": [0.1, 0.2, 1.0, 2.0],
                    "scaleup_bandwidth_scale": [0.5, 1.0]}})
    fast = compare(spec)
    running = np.minimum(fast["batch"], fast["slots"])
    assert np.unique(running.values).size > 4


def test_reference_serves_static_and_continuous_in_one_grid():
    spec = dse.parse_sweep({"grid": {"hardware": ["h100_sxm"], "model": ["qwen3_32b"],
                                     "serving": ["static", "continuous"], "batch": [1, 16],
                                     "input_tokens": [300], "output_tokens": [5, 40],
                                     "tp": [1, 2]}})
    fast = compare(spec)
    static = fast.sel(serving="static")["tpot_s"].values
    continuous = fast.sel(serving="continuous")["tpot_s"].values
    assert not np.allclose(static, continuous)


def test_reference_positions_by_hand():
    # decode contexts 101..104 attended (mean 102.5); capped at a window of 102: 101, 102,
    # 102, 102 -> 101.75
    assert _decode_context(100, 4, 0.0) == 102.5
    assert _decode_context(100, 4, 102.0) == 101.75
    # a 5-token prompt: 1 + 2 + 3 + 4 + 5 = 15 pairs; window 2: 1 + 2 + 2 + 2 + 2 = 9
    assert _prompt_pairs(5, 0.0) == 15
    assert _prompt_pairs(5, 2.0) == 9
    # 12 tokens in 4 chunks of 3 start at 0, 3, 6, 9: 18 cached positions read; window 5:
    # 0 + 3 + 5 + 5 = 13
    assert _chunk_reads(12, 4, 0.0) == 18
    assert _chunk_reads(12, 4, 5.0) == 13
    assert _chunk_reads(12, 1, 0.0) == 0


def test_reference_one_request_on_an_idle_engine_is_a_static_batch_of_one():
    # roofline engine (no overheads, no budget), one client: its whole prompt is one
    # iteration with nothing beside it, so TTFT (one output token) is the static prefill of
    # batch 1; its decodes run alone at the contexts input+1 .. input+n, memory-bound at
    # batch 1 on every step, so TPOT is the static mean step (the continuous reference
    # prices the mean context, the static one steps through every context). Not for
    # state-space layers: a prompt chunk reads and writes the state as a decode step does,
    # where the static prefill writes it once (tests on mamba/jamba would differ by that).
    for model, tp in (("llama3_8b", 1), ("mixtral_8x7b", 2), ("deepseek_v3", 8),
                      ("gemma2_9b", 1), ("gpt_oss_20b", 1)):
        grid = {"hardware": ["h100_sxm"], "model": [model], "engine": ["roofline"],
                "batch": [1], "input_tokens": [1000, 6000], "output_tokens": [1, 17],
                "tp": [tp], "pp": [1, 2], "weight_dtype": ["fp8"]}
        ds = {sv: dse.evaluate(dse.parse_sweep({"grid": {**grid, "serving": [sv]}}),
                               backend="reference") for sv in ("static", "continuous")}
        np.testing.assert_allclose(ds["continuous"]["ttft_s"].values,
                                   ds["static"]["ttft_s"].values, rtol=1e-12)
        np.testing.assert_allclose(ds["continuous"]["tpot_s"].sel(output_tokens=17).values,
                                   ds["static"]["tpot_s"].sel(output_tokens=17).values,
                                   rtol=1e-12)
