"""Hypothesis building blocks shared by the kernel-vs-reference tests: the presets and
precisions they draw from, and lists of distinct axis values."""
from hypothesis import strategies as st

HARDWARE = ["h100_sxm", "a100_80gb", "tpu_v5p", "b200", "mi300x", "h200"]
MODELS = ["llama3_8b", "mixtral_8x7b", "llama2_7b", "qwen3_32b", "deepseek_v3", "gemma2_9b",
          "gpt_oss_20b", "llama4_maverick", "mamba2_2_7b", "jamba_v0_1"]
DTYPES = ["fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]


def axis(values, max_size=3):
    """1..max_size distinct values drawn from ``values``."""
    return st.lists(st.sampled_from(values), min_size=1, max_size=max_size, unique=True)


def ints(lo, hi, max_size=3):
    """1..max_size distinct integers in [lo, hi]."""
    return st.lists(st.integers(lo, hi), min_size=1, max_size=max_size, unique=True)
