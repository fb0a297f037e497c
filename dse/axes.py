"""The axis registry: every grid axis of a sweep declared once.

Spec parsing (defaults, validation rules and bounds, messages), the grid layout the kernels
walk (``dse.grid.GRID_DIMS`` and its sub-tuples), group and strategy dims, the results
schema's axis columns and the ``dse explain`` flags all read this table; nothing else lists
axes. :data:`AXES` is in the order of the results table's columns (the spec's order);
``layout`` gives the order of the flattened grid (slowest first).

Each axis has a ``role``: a *group* axis says which question a configuration answers
(hardware, model, sequence lengths, what-if hardware), a *strategy* axis is one of the
choices compared within a group (batch, parallelism, precisions). Its ``walk`` says how it
enters the evaluation: ``kernel`` (the grid kernel iterates it), ``what_if`` (the kernel
scales a hardware rate by it), ``hardware`` (a variant of the hardware table: the kernel
runs each variant as a hardware of its own, :func:`dse.grid.hardware_variants`) or
``derived`` (only derived columns and checks depend on
it: replicas multiply throughput). ``ttft`` is False for the axes the time to first token
does not depend on (none at present: under continuous serving the output length and the
memory capacity shape the admission wait).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .kernels.layout import DTYPES

SAME = "same"  # dtype axis value meaning "the same as the previous precision"
# What-if scales are factors on a preset's rates and capacity. Far outside [1e-6, 1e6] a
# scale describes no hardware, and times would overflow to infinity or lose all precision
# (a zero or negative rate has no meaning at all).
SCALE_MIN, SCALE_MAX = 1e-6, 1e6


@dataclass(frozen=True)
class Axis:
    """One grid axis: see the module docstring for ``role``, ``walk`` and ``ttft``."""
    name: str
    section: str      # the spec table holding it: "grid" or "what_if"
    kind: str         # "preset", "int", "dtype", "scale", "fraction" or "choice": the value rule
    role: str         # "group" or "strategy"
    walk: str         # "kernel", "what_if" or "derived"
    layout: int       # position in the flattened grid (0: slowest)
    default: tuple
    doc: str
    bound: int = 0    # int axes: the largest valid value
    ttft: bool = True
    dtypes: tuple = ()  # dtype axes: the valid precision names
    minimum: int = 1  # int axes: the smallest valid value
    choices: tuple = ()  # choice axes: the valid names (the kernel gets their index)

    def problem(self, value) -> str | None:
        """Why ``value`` is not valid on this axis (None: it is)."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
                what = "a positive integer" if self.minimum == 1 else \
                    f"an integer >= {self.minimum}"
                return f"must be {what} (at most {self.bound:,})"
            if value > self.bound:
                return f"above the bound {self.bound:,} of {self.name}"
        elif self.kind == "scale":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                return "must be a finite number (a scale factor)"
            if not SCALE_MIN <= value <= SCALE_MAX:
                return f"a scale factor must be in [{SCALE_MIN:g}, {SCALE_MAX:g}]"
        elif self.kind == "fraction":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not 0.0 <= value <= 1.0:
                return "must be a fraction in [0, 1]"
        elif self.kind == "dtype":
            if value not in self.dtypes:
                return f"unknown precision; valid: {', '.join(self.dtypes)}"
        elif self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                return f"valid: {', '.join(self.choices)}"
        elif not isinstance(value, str):
            return "must be a preset name or a path"
        return None


def _int(name, role, layout, bound, doc, default=(1,), walk="kernel", ttft=True, minimum=1):
    return Axis(name, "grid", "int", role, walk, layout, default, doc, bound=bound,
                ttft=ttft, minimum=minimum)


def _fraction(name, layout, doc, default=0.0):
    return Axis(name, "grid", "fraction", "group", "kernel", layout, (default,), doc)


def _scale(name, layout, doc, walk="what_if"):
    return Axis(name, "what_if", "scale", "group", walk, layout, (1.0,), doc)


SERVING = ("static", "continuous")  # the serving modes (dse.axes: the ``serving`` axis)
OFFLOAD = ("none", "kv", "weights")  # what spills to the host tier (the ``offload`` axis)


def _dtype(name, layout, default, doc):
    valid = DTYPES if default != SAME else (*DTYPES, SAME)
    return Axis(name, "grid", "dtype", "strategy", "kernel", layout, (default,), doc,
                dtypes=valid)


# Integer bounds: beyond them a value is a typo, not a deployment (the largest scale-up
# domains hold hundreds of devices and the largest clusters about 1e5, the longest context
# windows are 1e7 tokens, engines run up to a few thousand sequences per replica), and every
# count the engine derives stays exact in int64 and float64:
# devices = tp * attention_dp * pp * cp * dp <= 2^(16+10+8+6+20) = 2^60 < 2^63.
AXES = (
    Axis("hardware", "grid", "preset", "group", "kernel", 0, ("h100_sxm",),
         "accelerator preset (bundled name or path to a .toml file)"),
    Axis("model", "grid", "preset", "group", "kernel", 1, ("llama3_8b",),
         "model preset (bundled name or path to a .toml file)"),
    # Default continuous: online serving engines (vLLM, SGLang, TensorRT-LLM) batch in flight,
    # so that is the realistic answer; static fits offline batch jobs (and is all the numpy
    # reference, kernels/reference.py, covers).
    Axis("serving", "grid", "choice", "group", "kernel", 2, ("continuous",),
         "continuous (default): in-flight batching of `batch` concurrent requests in a closed "
         "loop, as online serving engines run; static: one batch prefilled then decoded "
         "together (offline batch jobs)",
         choices=SERVING),
    Axis("engine", "grid", "preset", "group", "kernel", 3, ("vllm",),
         "serving-engine preset (overheads, batching defaults; continuous serving only)"),
    _int("batch", "strategy", 14, 1 << 20,
         "concurrent sequences per replica (continuous: concurrent requests)"),
    _int("input_tokens", "group", 15, 1 << 24, "prompt tokens per sequence",
         default=(1024,)),
    _fraction("prefix_cached_fraction", 16,
              "share of each prompt already in the KV cache (prefix caching): prefill "
              "computes only the new tokens, attending over the whole prompt; the cached "
              "prefix is held once per replica"),
    _int("output_tokens", "group", 27, 1 << 24, "generated tokens per sequence",
         default=(256,)),
    _int("tp", "strategy", 8, 1 << 16, "tensor-parallel devices"),
    _int("pp", "strategy", 9, 1 << 8, "pipeline stages"),
    _int("ep", "strategy", 10, 1 << 16, "expert-parallel groups of the MoE devices"),
    _int("attention_dp", "strategy", 11, 1 << 10,
         "MoE: attention data-parallel groups of tp devices"),
    _int("max_batched_tokens", "strategy", 12, 1 << 24,
         "continuous: token budget of one engine iteration (chunked-prefill size; 0: the "
         "engine's default)", default=(0,), minimum=0),
    # how often the scheduler admits new requests while it is busy (an engine setting a
    # benchmark run fixes, like the token budget)
    _int("admission_interval", "strategy", 13, 1 << 12,
         "continuous: decode iterations between the scheduler's admissions of new requests "
         "while it is busy (SGLang --scheduler-recv-interval; 0: the engine's default, 1 "
         "for every bundled engine)", default=(0,), minimum=0),
    # speculative decoding: gamma draft tokens per step (the model's MTP module drafts;
    # 0: off), verified in one target pass; the per-token acceptance rate sets the expected
    # tokens per step (a workload property, so a group axis)
    _int("spec_tokens", "strategy", 18, 16,
         "speculative decoding: draft tokens per step by the model's MTP module (0: off)",
         default=(0,), minimum=0),
    _fraction("acceptance_rate", 19, "speculative decoding: probability that each draft "
              "token is accepted", default=0.7),
    # beam search: a workload's decoding choice (quality), so a group axis
    _int("beams", "group", 20, 1 << 10,
         "beam search: beams per sequence (each decodes a token per step over the shared "
         "prompt and its own generated tokens; 1: no beam search)"),
    # offload: a deployment choice, walked by the kernel (its bytes per pass arrive per
    # point from dse/offload.py)
    Axis("offload", "grid", "choice", "strategy", "kernel", 23, ("none",),
         "what does not fit in device memory spills to the hardware's host tier and streams "
         "over the host link every forward pass: none, kv (the KV cache) or weights",
         choices=OFFLOAD),
    # LoRA serving: the adapters' rank and how many distinct adapters the requests use
    # (workload properties: group axes)
    _int("lora_rank", "group", 21, 1 << 12,
         "LoRA: rank of the adapters on the attention and dense FFN projections (0: none)",
         default=(0,), minimum=0),
    _int("lora_adapters", "group", 22, 1 << 16,
         "LoRA: distinct adapters the requests draw from uniformly (all held on the "
         "device)"),
    # context parallelism: a prompt's tokens over cp devices, each holding 1/cp of every
    # sequence's KV cache
    _int("cp", "strategy", 24, 1 << 6,
         "context-parallel devices: each prompt's tokens split over cp devices (K/V "
         "exchanged per layer), every sequence's KV cache sharded over them"),
    # speculative decoding with a separate draft model (a deployment choice)
    Axis("draft_model", "grid", "preset", "strategy", "kernel", 25, ("none",),
         "speculative decoding: the draft model (a model preset name or path; none: the "
         "model's own MTP module drafts, if spec_tokens > 0)"),
    # the engine's memory setting, as a benchmark's launch command fixes it (like the
    # token budget): the KV cache it leaves decides how many requests run at once
    Axis("memory_fraction", "grid", "fraction", "strategy", "kernel", 26, (0.0,),
         "continuous: share of device memory the engine may take (vLLM "
         "--gpu-memory-utilization, SGLang --mem-fraction-static, TensorRT-LLM "
         "kv_cache_config free_gpu_memory_fraction; each engine's rule in "
         "configs/engines/README.md); 0: the engine's default"),
    _int("dp", "strategy", 35, 1 << 20, "independent replicas", walk="derived"),
    _dtype("weight_dtype", 4, "bf16", "weight precision"),
    _dtype("act_dtype", 5, SAME, "activation precision (same: the weight precision)"),
    _dtype("kv_dtype", 6, SAME, "KV-cache precision (same: the activation precision)"),
    # a precision recipe (configs/quant/): per operator class (attention, experts, shared
    # experts, dense FFN, LM head, KV cache, collectives) the precisions that replace the
    # three above; "uniform" replaces none
    Axis("quant", "grid", "preset", "strategy", "kernel", 7, ("uniform",),
         "precision recipe (bundled name or path to a .toml file): per operator class "
         "precisions over weight/act/kv_dtype; uniform: none"),
    _scale("compute_scale", 28, "factor on peak FLOP/s"),
    _scale("memory_bandwidth_scale", 29, "factor on memory bandwidth"),
    _scale("memory_capacity_scale", 32, "factor on memory capacity"),
    _scale("scaleup_bandwidth_scale", 30, "factor on scale-up link bandwidth"),
    _scale("scaleout_bandwidth_scale", 31, "factor on scale-out link bandwidth"),
    _scale("scaleup_domain_scale", 33, "factor on the scale-up domain size (devices per "
           "NVLink-class domain, rounded; e.g. 9 turns an 8-GPU node into NVL72)",
           walk="hardware"),
    _scale("link_latency_scale", 34, "factor on the per-step latency of the scale-up and "
           "scale-out links", walk="hardware"),
    # a what-if of the workload's routing, walked by the kernel (it changes MoE costs)
    _scale("expert_imbalance", 17, "MoE with ep > 1: the busiest expert group's routed "
           "tokens as a multiple of uniform routing's (EPLB's max/mean load ratio; at most "
           "all tokens)", walk="kernel"),
)
AXIS = {a.name: a for a in AXES}
MAX_DEVICES = 1 << 60  # the [constraints] bound, and the most devices any point can have
# the axes whose product is a configuration's devices (derived, reduced, recommended alike)
DEVICE_AXES = ("tp", "attention_dp", "pp", "cp", "dp")


def names(**where) -> tuple:
    """Axis names in column order whose fields equal ``where`` (e.g. ``kind="int"``)."""
    return tuple(a.name for a in AXES
                 if all(getattr(a, k) == v for k, v in where.items()))


def in_layout(dims) -> tuple:
    """``dims`` in the order of the flattened grid."""
    return tuple(sorted(dims, key=lambda d: AXIS[d].layout))
