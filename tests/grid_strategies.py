"""Hypothesis building blocks shared by the kernel-vs-reference tests: the presets and
precisions they draw from, and lists of distinct axis values."""
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

import dse

HARDWARE = ["h100_sxm", "a100_80gb", "tpu_v5p", "b200", "mi300x", "h200"]
MODELS = ["llama3_8b", "mixtral_8x7b", "llama2_7b", "qwen3_32b", "deepseek_v3", "gemma2_9b",
          "gpt_oss_20b", "llama4_maverick", "mamba2_2_7b", "jamba_v0_1"]
DTYPES = ["fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]
# precision recipes: the bundled ones and a test recipe that overrides every class in its
# own way (weight only, activation only, KV cache, collectives)
QUANTS = ["uniform", "nvfp4_experts", "mxfp4_experts_bf16_attention", "int4_experts",
          "fp8_bf16_collectives", str(Path(__file__).parent / "quant_mixed.toml")]


def axis(values, max_size=3):
    """1..max_size distinct values drawn from ``values``."""
    return st.lists(st.sampled_from(values), min_size=1, max_size=max_size, unique=True)


def ints(lo, hi, max_size=3):
    """1..max_size distinct integers in [lo, hi]."""
    return st.lists(st.integers(lo, hi), min_size=1, max_size=max_size, unique=True)


def scales(values):
    """1..2 distinct what-if scale values drawn from ``values``."""
    return st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True)


# parallelism and precision axes, as both kernel-vs-reference tests draw them
STRUCTURE = {
    "tp": axis([1, 2, 4, 8, 16, 3], 3),
    "pp": axis([1, 2, 3, 5], 2),
    "ep": axis([1, 2, 4, 8], 2),
    "attention_dp": axis([1, 2, 4], 2),
    "weight_dtype": axis(DTYPES, 2),
    "act_dtype": axis(DTYPES + ["same"], 2),
    "kv_dtype": axis(DTYPES + ["same"], 2),
    "quant": axis(QUANTS, 2),
    # prefix caching, MTP drafts (infeasible on models without MTP, priced all the same),
    # beam search: one value per example (the static reference evaluates these axes one
    # value at a time; tests/test_decoding_features.py sweeps several in one grid)
    "prefix_cached_fraction": axis([0.0, 0.3, 0.9], 1),
    "spec_tokens": axis([0, 1, 3], 1),
    "acceptance_rate": axis([0.5, 0.8, 1.0], 1),
    "beams": axis([1, 2, 4], 1),
    # LoRA adapters (one value per example: the static reference takes them one at a time)
    "lora_rank": axis([0, 8, 64], 1),
    "lora_adapters": axis([1, 3, 100], 1),
    # context parallelism (one value per example, as the static reference takes it)
    "cp": axis([1, 2, 4], 1),
    # a separate draft model (one value per example: the static reference slices the
    # programs by it); with spec_tokens 0 or another vocabulary it is not valid, priced all
    # the same
    "draft_model": axis(["none", "llama3_2_1b", "qwen3_32b"], 1),
    # offload: spills only where a point does not fit (large batches, small chips)
    "offload": axis(["none", "weights", "kv"], 2),
}
# compute and bandwidth what-ifs (1e-6: a chip so slow that compute bounds every op)
WHAT_IF_SCALES = {
    "compute_scale": scales([0.5, 1.0, 3.0, 1e-6]),
    "memory_bandwidth_scale": scales([0.7, 1.0, 2.0]),
    "scaleup_bandwidth_scale": scales([0.25, 1.0]),
    "scaleout_bandwidth_scale": scales([1.0, 4.0]),
    # hardware variants: a domain of 2 or 16 devices, slower or faster link steps
    "scaleup_domain_scale": scales([1.0, 0.25, 2.0]),
    "link_latency_scale": scales([1.0, 0.5, 4.0]),
    # routing skew of MoE models with ep > 1
    "expert_imbalance": scales([1.0, 1.6]),
}


def trimmed(grid, max_points):
    """A drawn grid ({axis: values, "what_if": {axis: values}}) as (grid axes, what-if
    axes), with values dropped from its longest lists until it has at most ``max_points``
    configurations (deterministic: the last value of the first longest list)."""
    lists = {**{k: list(v) for k, v in grid.items() if k != "what_if"},
             **{k: list(v) for k, v in grid["what_if"].items()}}
    while np.prod([len(v) for v in lists.values()]) > max_points:
        longest = max(lists, key=lambda k: len(lists[k]))
        lists[longest].pop()
    return ({k: lists[k] for k in grid if k != "what_if"},
            {k: lists[k] for k in grid["what_if"]})


def kernel_matches_reference(spec, rtol=1e-9, breakdown=()):
    """Evaluate ``spec`` with the numba kernel and the numpy reference: no NaN, infinite in
    the same places, finite times within ``rtol``. With ``breakdown`` (breakdown column
    names), the same evaluations carry the breakdown columns (one per backend for the times
    and the columns) and those are compared too: infinite in the same places, finite values
    within ``rtol`` (and 1e-12 s). Returns (kernel, reference) datasets.

    The static reference's time grows with the models, the values of the axes it takes one
    at a time (lora_rank, cp, draft_model ...) and the decode steps of the longest output,
    which it prices one after another, hardly with the grid's points: the fixed grids keep
    their outputs short."""
    fast = dse.evaluate(spec, breakdown=bool(breakdown))
    ref = dse.evaluate(spec, backend="reference", breakdown=bool(breakdown))
    for name in ("ttft_s", "tpot_s"):
        a, b = fast[name].values, ref[name].values
        assert not np.isnan(a).any() and not np.isnan(b).any()
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
        finite = np.isfinite(a)
        np.testing.assert_allclose(a[finite], b[finite], rtol=rtol)
    for name in breakdown:
        a, b = fast[name].values, ref[name].values
        finite = np.isfinite(a)
        np.testing.assert_array_equal(finite, np.isfinite(b))
        np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=1e-12)
    return fast, ref
