"""Evaluate a sweep: run the grid kernel and assemble the metrics as an ``xr.Dataset``.

Each variable carries only the dims it depends on (``ttft_s`` does not depend on
output_tokens or dp; weight bytes depend on neither hardware nor batch), so memory grows
with the grid only through the kernel outputs. :func:`derive` broadcasts a selection of the
dataset to the per-configuration columns of the results table.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from . import compile as comp
from .axes import AXIS, SERVING, in_layout, names
from .config import SweepSpec
from .engines import KV_MEMORY_RULES, memory_fraction_at
from .grid import (GRID_DIMS, HARDWARE_WHAT_IF, KERNEL_WHAT_IF, MEMORY_DIMS, STRUCT_DIMS,
                   broadcast_shape,
                   STRUCTURE_DIMS, hardware_variants,
                   TPOT_DIMS, TTFT_DIMS, coords, engine_hardware, engine_table, dtype_codes,
                   hardware_tables, resolve_dtypes)
from .kernels import layout as L
from .kernels.grid import evaluate_grid
from .offload import PHASES, offload_terms
from .quant import quant_table

REASONS = ("", "ep_not_divisor_of_tp", "ep_on_dense_model", "attention_dp_on_dense_model",
           "experts_not_divisible_by_ep",
           "tp_not_divisor_of_heads", "tp_incompatible_with_kv_heads", "pp_exceeds_layers",
           "what_if_scale_not_positive", "precision_not_supported", "spec_tokens_without_mtp",
           "cp_on_recurrent_model", "draft_vocab_mismatch", "draft_model_without_spec_tokens",
           "out_of_memory")
REASON_CODE = {r: i for i, r in enumerate(REASONS)}
WHAT_IF_DIMS = in_layout(names(kind="scale"))
PRECISION_DIMS = ("hardware", "model", "weight_dtype", "act_dtype", "quant")


def _axis_table(columns) -> tuple[np.ndarray, np.ndarray]:
    """Axis values as one float64 table [n_axes, longest] and their lengths (the layout of
    ``kernels.grid.decode_axes``)."""
    sizes = np.array([len(v) for v in columns], dtype=np.int64)
    table = np.zeros((len(columns), int(sizes.max(initial=1))))
    for j, v in enumerate(columns):
        table[j, :len(v)] = v
    return table, sizes


# The order of the kernel's flat index (kernels/grid.evaluate_grid): slot strides follow it.
KERNEL_ORDER = ("hardware", *STRUCT_DIMS, "output_tokens", *KERNEL_WHAT_IF)


def _axis_values(d: str, values) -> np.ndarray:
    """What the kernel sees of an axis: precision codes, preset or choice indices, numbers."""
    kind = AXIS[d].kind
    if kind == "dtype":
        return dtype_codes(values)
    if kind == "preset":
        return np.arange(len(values), dtype=np.float64)
    if kind == "choice":
        return np.array([AXIS[d].choices.index(v) for v in values], dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def slot_strides(dims: tuple, shape: tuple) -> tuple[np.ndarray, list]:
    """Element strides of an array over ``dims`` (in KERNEL_ORDER) along every kernel dim
    (0 where it does not vary), and the transpose that puts ``dims`` in that order."""
    order = sorted(range(len(dims)), key=lambda i: KERNEL_ORDER.index(dims[i]))
    sizes = [shape[i] for i in order]
    strides = np.zeros(len(KERNEL_ORDER), dtype=np.int64)
    step = 1
    for i, size in zip(reversed(order), reversed(sizes)):
        strides[KERNEL_ORDER.index(dims[i])] = step if size > 1 else 0
        step *= size
    return strides, order


def _with_host(slots: tuple, host: tuple | None) -> tuple:
    """``slots`` and the offload's ``host`` bytes per pass (``dse.offload``: a leading
    phase dim) over the union of their dims (grid order), so that one set of strides reads
    both: (dims, slots, host [phase, ...])."""
    from .grid import GRID_DIMS
    dims, values = slots
    if host is None:
        host = (("phase",), np.zeros(len(PHASES)))
    h_dims, h_values = host
    union = tuple(d for d in GRID_DIMS if d in dims or d in h_dims[1:])
    a = xr.DataArray(values, dims=dims)
    b = xr.DataArray(h_values, dims=h_dims)
    a, b = xr.broadcast(a, b, exclude=("phase",))
    return (union, np.ascontiguousarray(a.transpose(*union).values),
            np.ascontiguousarray(b.transpose("phase", *union).values))


def kernel_inputs(spec: SweepSpec, slots: tuple, host: tuple | None = None) -> dict:
    """The dense arrays the grid kernel (and the numpy reference) take: the kernel and
    what-if axes of the registry (``dse.grid.STRUCT_DIMS``, ``KERNEL_WHAT_IF``) each as one
    table, precisions as codes, presets and choices as indices, one hardware row per
    hardware variant (``dse.grid.HARDWARE_WHAT_IF``; :func:`from_kernel` folds them back)
    and that table once per engine with the engine's own kernel curves
    (``dse.grid.engine_hardware``: continuous serving's); ``slots`` = (dims, array): the
    requests memory and engine admit (:func:`serving_memory`); ``host`` = (("phase",
    *dims), array): the bytes a device streams over the host link per pass
    (``dse.offload``; None: nothing), read with the slots' strides."""
    c = coords(spec)
    hw, rates = hardware_variants(*hardware_tables(spec.hardware),
                                  *(c[d] for d in HARDWARE_WHAT_IF))
    programs, n_ops = comp.compile_models(spec.models, lora=uses_lora(c), cp=uses_cp(c),
                                          drafts=spec.drafts)
    axes, axis_sizes = _axis_table([_axis_values(d, c[d]) for d in STRUCT_DIMS[1:]])
    scales, scale_sizes = _axis_table([c[d] for d in KERNEL_WHAT_IF])
    dims, values, host = _with_host(slots, host)
    if "hardware" in dims:  # each hardware variant admits what its hardware admits
        per = hw.shape[0] // len(spec.hardware)
        values = np.repeat(values, per, axis=dims.index("hardware"))
        host = np.repeat(host, per, axis=1 + dims.index("hardware"))
    strides, order = slot_strides(dims, values.shape)
    return dict(hw=hw, engine_hw=engine_hardware(hw, spec.hardware, spec.engines),
                rates=rates, programs=programs, n_ops=n_ops,
                engines=engine_table(spec.engines), quants=quant_table(spec.quants),
                axes=axes, axis_sizes=axis_sizes,
                output_tokens=np.array(c["output_tokens"], np.int64), scales=scales,
                scale_sizes=scale_sizes,
                slots=np.ascontiguousarray(values.transpose(order), dtype=np.float64).ravel(),
                host=np.ascontiguousarray(host.transpose(0, *(1 + i for i in order)),
                                          dtype=np.float64).reshape(len(PHASES), -1),
                slot_strides=strides, dtype_bytes=L.DTYPE_BYTES, dtype_bits=L.DTYPE_BITS)


def uses_lora(c: dict) -> bool:
    """Whether the grid has LoRA adapters (a lora_rank > 0): the programs then carry the
    LoRA ops (``compile.program_ops``)."""
    return any(r > 0 for r in c["lora_rank"])


def uses_cp(c: dict) -> bool:
    """Whether the grid has context parallelism (a cp > 1): the programs then carry its
    collectives (``compile.cp_ops``)."""
    return any(v > 1 for v in c["cp"])


def kernel_shape(c: dict, dims: tuple) -> tuple:
    """The shape of a kernel output over ``dims``: the hardware variants in place of the
    hardware, the hardware what-if dims left out (:func:`from_kernel` puts them back)."""
    variants = int(np.prod([len(c[d]) for d in HARDWARE_WHAT_IF]))
    return tuple(len(c[d]) * (variants if d == "hardware" else 1) for d in dims
                 if d not in HARDWARE_WHAT_IF)


def from_kernel(x: np.ndarray, c: dict) -> np.ndarray:
    """A kernel output [hardware variants, ...] over its dims with the hardware what-if
    dims last, as the registry orders them (a reshape when they hold one value each)."""
    n = [len(c[d]) for d in HARDWARE_WHAT_IF]
    x = x.reshape(len(c["hardware"]), *n, *x.shape[1:])
    k = len(n)
    return np.ascontiguousarray(np.moveaxis(x, list(range(1, 1 + k)), list(range(-k, 0))))


def run_kernel(inputs: dict, shape_ttft, shape_tpot):
    """Allocate outputs and run the numba kernel; returns (ttft, tpot, bound) arrays."""
    ttft = np.empty(int(np.prod(shape_ttft)))
    tpot = np.empty(int(np.prod(shape_tpot)))
    bound = np.empty(tpot.size, dtype=np.uint8)
    evaluate_grid(**inputs, ttft=ttft, tpot=tpot, bound=bound)
    return ttft.reshape(shape_ttft), tpot.reshape(shape_tpot), bound.reshape(shape_tpot)


def run_breakdown(inputs: dict, shape) -> tuple[np.ndarray, np.ndarray]:
    """The breakdown kernel (``kernels/breakdown.py``) over the grid kernel's ``inputs``:
    (seconds per operator class [N_ROWS, *shape], prefill bound codes [*shape])."""
    from .kernels.breakdown import N_ROWS, evaluate_breakdown
    n = int(np.prod(shape))
    split = np.empty((N_ROWS, n))
    prefill_bound = np.empty(n, dtype=np.uint8)
    evaluate_breakdown(**inputs, split=split, prefill_bound=prefill_bound)
    return split.reshape((N_ROWS, *shape)), prefill_bound.reshape(shape)


def _shaped(values, dim, dims, dtype=None):
    """``values`` of one dim reshaped to broadcast against arrays over ``dims``."""
    shape = [1] * len(dims)
    shape[dims.index(dim)] = len(values)
    return np.asarray(values, dtype=dtype).reshape(shape)


def structural_reasons(models, tp, pp, ep, adp, spec_tokens=(0,), cp=(1,),
                       drafts=(None,)) -> np.ndarray:
    """First invalid-combination reason code per (model, tp, pp, ep, attention_dp,
    spec_tokens, cp, draft_model); 0 when valid."""
    dims = STRUCTURE_DIMS
    tp, pp, ep, adp, spec, cpa = (_shaped(v, d, dims) for v, d in (
        (tp, "tp"), (pp, "pp"), (ep, "ep"), (adp, "attention_dp"),
        (np.asarray(spec_tokens), "spec_tokens"), (np.asarray(cp), "cp")))
    has_draft = _shaped([d is not None for d in drafts], "draft_model", dims)
    out = []
    for m in models:
        checks = [
            ((tp * adp) % ep != 0, "ep_not_divisor_of_tp"),
            ((ep > 1) & (not m.is_moe), "ep_on_dense_model"),
            ((adp > 1) & (not m.is_moe), "attention_dp_on_dense_model"),
            (m.is_moe & (m.experts % ep != 0), "experts_not_divisible_by_ep"),
            # an all-SSM model splits its SSM heads instead (Mamba-1: inner channels)
            ((m.heads or m.ssm_heads or m.ssm_inner) % tp != 0, "tp_not_divisor_of_heads"),
            # linear-attention (Gated DeltaNet) layers split their key heads too
            ((m.linear_key_heads or tp) % tp != 0, "tp_not_divisor_of_heads"),
            ((m.kv_heads % tp != 0) & (tp % max(m.kv_heads, 1) != 0) & (m.kv_heads > 0),
             "tp_incompatible_with_kv_heads"),
            (pp > m.layers, "pp_exceeds_layers"),
            # speculative decoding drafts with the model's MTP module or a draft model
            ((spec > 0) & (m.mtp_layers == 0) & ~has_draft, "spec_tokens_without_mtp"),
            # a draft model proposes tokens of the target's vocabulary, and only drafts
            (_shaped([d is not None and d.vocab_size != m.vocab_size for d in drafts],
                     "draft_model", dims), "draft_vocab_mismatch"),
            (has_draft & (spec == 0), "draft_model_without_spec_tokens"),
            # a recurrent state (SSM, linear attention) is passed along the sequence: its
            # prompt does not split over context-parallel devices
            ((cpa > 1) & bool(m.ssm_layers or m.linear_attention_layers),
             "cp_on_recurrent_model"),
        ]
        code = np.zeros(np.broadcast_shapes(tp.shape, pp.shape, ep.shape, adp.shape,
                                            spec.shape, cpa.shape, has_draft.shape)[1:],
                        dtype=np.uint8)
        for cond, name in checks:
            cond = np.broadcast_to(cond, (1, *code.shape))[0]
            code = np.where((code == 0) & cond, np.uint8(REASON_CODE[name]), code)
        out.append(code)
    return np.stack(out).astype(np.uint8)


def model_classes(model) -> set:
    """The precision classes (``layout.QC_*``) of the ops a model compiles to."""
    return {int(op.row[L.OP_CLASS]) for phase in (L.PREFILL, L.DECODE)
            for op in comp.model_ops(model, phase)}


def precision_reasons(spec: SweepSpec, c: dict) -> tuple[tuple, np.ndarray]:
    """``precision_not_supported`` where the hardware has no native math in an activation
    precision the model computes in, else 0: (dims, uint8 codes).

    The activation precisions are the grid's (``act_dtype``; ``same``: the weight
    precision) and, under a quant recipe (``dse.quant``), the activation precision it names
    for each class the model has ops of (collectives: their payload). The dims are those of
    :data:`PRECISION_DIMS` the codes vary over, and the grid's own size-1 dims:
    weight_dtype only where an activation precision is ``same`` (weight-only formats
    narrower than the activations need no native math of their own; their dequantization
    is priced by the kernel), so the table is at most hardware x model x weight x
    activation precisions x recipes, never broadcast over the grid; model and quant only
    where a recipe makes the codes differ.
    """
    hardware = spec.hardware
    native = np.array([[d in h.flops_per_s for d in L.DTYPES] for h in hardware], dtype=bool)
    native = native.reshape(len(hardware), len(L.DTYPES))
    w = _shaped(dtype_codes(c["weight_dtype"]), "weight_dtype", PRECISION_DIMS)
    a = _shaped(dtype_codes(c["act_dtype"]), "act_dtype", PRECISION_DIMS)
    act = np.where(a < 0, w, a) if (a < 0).any() else a
    ok = native[:, act[0, 0, ..., 0]].reshape(len(hardware), 1, *act.shape[2:4], 1)
    table = quant_table(spec.quants)
    if (table[:, 1:L.Q_KV:2] >= 0).any():  # a recipe names activation precisions
        per = np.ones((len(hardware), len(spec.models), 1, 1, len(spec.quants)), dtype=bool)
        for i, m in enumerate(spec.models):
            for qc in model_classes(m):
                codes = table[:, 2 * qc + 1].astype(np.int64)
                named = codes >= 0
                per[:, i, 0, 0, named] &= native[:, codes[named]]
        ok = ok & per
    codes = np.where(ok, np.uint8(0), np.uint8(REASON_CODE["precision_not_supported"]))
    # model and recipe only where the codes vary over them (as before recipes existed)
    keep = [i for i, d in enumerate(PRECISION_DIMS) if codes.shape[i] > 1
            or (len(c[d]) == 1 and d not in ("model", "quant"))]
    squeezed = tuple(i for i in range(codes.ndim) if i not in keep)
    return (tuple(PRECISION_DIMS[i] for i in keep),
            np.ascontiguousarray(codes.squeeze(squeezed), dtype=np.uint8))


def _own_dims(term, models, dims, c) -> tuple[tuple, np.ndarray]:
    """``term(model)`` (an array over ``dims[1:]``, size 1 where it does not vary) of each
    model, stacked over ``dims[0]`` (the model dim), keeping only the dims the values vary
    over and the grid's own size-1 dims: (dims, array). The models are computed one at a
    time into one array of their union shape (no list of per-model copies)."""
    out = None
    for i, m in enumerate(models):
        value = np.asarray(term(m), dtype=np.float64)
        value = value.reshape((1,) * (len(dims) - 1 - value.ndim) + value.shape)
        if len(models) == 1:
            out = value[None]  # a view: no copy
            break
        shape = value.shape if out is None else np.broadcast_shapes(out.shape[1:], value.shape)
        if out is None or shape != out.shape[1:]:
            grown = np.empty((len(models), *shape))
            if out is not None:
                grown[:i] = out[:i]
            out = grown
        out[i] = value
        del value
    keep = [0] + [i for i in range(1, out.ndim)
                  if out.shape[i] > 1 or len(c[dims[i]]) == 1]
    squeezed = tuple(i for i in range(out.ndim) if i not in keep)
    return tuple(dims[i] for i in keep), np.ascontiguousarray(out.squeeze(squeezed))


# the classes whose weights a recipe may store in its own precision
WEIGHT_CLASSES = (L.QC_ATTENTION, L.QC_EXPERTS, L.QC_SHARED, L.QC_DENSE, L.QC_LM_HEAD)


def _recipe_bytes(spec: SweepSpec, column: int, grid_codes: np.ndarray, dims) -> np.ndarray:
    """Bytes per element of recipe column ``column`` (``layout.QUANT_FIELDS``) over
    ``dims``: the precision the recipe names, the grid's (``grid_codes``, resolved codes
    shaped over ``dims``) where it names none."""
    codes = _shaped(quant_table(spec.quants)[:, column].astype(np.int64), "quant", dims)
    return np.where(codes >= 0, L.DTYPE_BYTES[np.maximum(codes, 0)], L.DTYPE_BYTES[grid_codes])


def recipe_kv_bytes(spec: SweepSpec, k: np.ndarray, dims) -> np.ndarray:
    """KV-cache bytes per element over ``dims`` (with ``quant``): the recipe's KV
    precision, the grid's resolved ``k`` where it names none."""
    return _recipe_bytes(spec, L.Q_KV, k, dims)


def recipe_weight_bytes(spec: SweepSpec, w: np.ndarray, dims) -> dict:
    """Weight bytes per parameter of each class some recipe of the grid names a weight
    precision for (``compile.weight_bytes_per_device``'s ``class_bytes``), over ``dims``."""
    table = quant_table(spec.quants)
    return {qc: _recipe_bytes(spec, 2 * qc, w, dims) for qc in WEIGHT_CLASSES
            if (table[:, 2 * qc] >= 0).any()}


def serving_memory(spec: SweepSpec, c: dict, weights: tuple, capacity: np.ndarray) -> dict:
    """Continuous serving's memory terms: a request's KV cache at full context and the
    working set of one iteration (per device) [bytes], the ``kv_room`` the engine gives the
    KV cache (its rule, ``engines.KV_MEMORY_RULES``, over its share of the device memory
    ``capacity`` [hardware, memory_capacity_scale]: the ``memory_fraction`` axis, else the
    engine's default at the point's tp, else the hardware's usable share) and the ``slots``:
    how many requests that room holds at full context, capped by the replica's
    ``running_cap`` (the engine's running-request limit; < 1 slots: not even one fits,
    ``out_of_memory``).

    The working set is :func:`compile.activation_bytes_per_device` for the iteration's
    tokens: the token budget (``max_batched_tokens``, else the engine's; without a budget
    or chunking, at least one whole prompt), spread over the attention-DP groups. An engine
    whose attention-DP ranks schedule on their own (``per_rank_limits``) holds a budget and
    a running cap per rank (``dse.engines.replica_limits``).
    """
    dims = ("model", "engine", "weight_dtype", "act_dtype", "kv_dtype", "quant", "tp", "pp",
            "attention_dp", "max_batched_tokens", "input_tokens", "output_tokens", "beams",
            "prefix_cached_fraction", "cp", "draft_model", "memory_fraction")
    ax = {d: _shaped(c[d], d, dims, float) for d in ("tp", "pp", "attention_dp",
                                                    "input_tokens", "output_tokens",
                                                    "max_batched_tokens", "beams",
                                                    "prefix_cached_fraction", "cp")}
    w, a, k = resolve_dtypes(*(_shaped(dtype_codes(c[d]), d, dims)
                               for d in ("weight_dtype", "act_dtype", "kv_dtype")))
    ab, kb = L.DTYPE_BYTES[a], recipe_kv_bytes(spec, k, dims)
    s = ax["input_tokens"][0]
    eng = {f: _shaped([getattr(e, f) for e in spec.engines], "engine", dims, float)
           for f in ("max_batched_tokens", "max_running_requests", "chunked_prefill",
                     "per_rank_limits")}
    budget = np.where(ax["max_batched_tokens"] > 0, ax["max_batched_tokens"],
                      eng["max_batched_tokens"])
    # an engine whose attention-DP ranks schedule on their own runs a budget on every rank
    ranks = np.where(eng["per_rank_limits"] > 0, ax["attention_dp"], 1.0)
    tokens = (np.where((budget <= 0) | (eng["chunked_prefill"] == 0), np.maximum(budget, s),
                       budget) * ranks)[0]
    # the replica's running cap (0: none), for the slots here and offload's admission
    running_cap = (("engine", "attention_dp"), (eng["max_running_requests"] * ranks).reshape(
        len(spec.engines), -1))
    tp, pp, adp, cp = ax["tp"][0], ax["pp"][0], ax["attention_dp"][0], ax["cp"][0]
    cached = cached_tokens(s[0], ax["prefix_cached_fraction"][0])
    positions = s - cached + ax["beams"] * ax["output_tokens"]
    # a draft model keeps its own KV cache of the request (on the last stage: pp 1)
    draft_kv = per_draft(spec, dims, lambda d: comp.kv_cache_bytes_per_device(
        d, tp, 1.0, 1.0 / cp, positions[0], kb[0], adp)[None])
    terms = {
        # a request's own KV cache: its uncached prompt tokens and its beams' tokens (its
        # 1/cp share under context parallelism), and its draft model's
        "kv_request_bytes": lambda m: comp.kv_cache_bytes_per_device(
            m, tp, pp, 1.0 / cp, positions[0], kb[0], adp) + (
            draft_kv[0] if np.ndim(draft_kv) else 0.0),
        # batch = pp: one sequence per micro-batch; input = the iteration's tokens (1/cp of
        # them); plus the cached prompt prefix, held once per attention-DP group (prefix
        # caching)
        "working_bytes": lambda m: comp.activation_bytes_per_device(
            m, tp, pp, pp, tokens / cp, ab[0], adp) + shared_prefix_bytes(
            m, tp, pp, adp, cached, kb[0]) / cp,
    }
    out = {name: _own_dims(term, spec.models, dims, c) for name, term in terms.items()}
    # the engine's share of device memory: the axis, else its default at this tp, else
    # (0) the hardware's usable share; and its rule (index into KV_MEMORY_RULES)
    tp_fraction = np.array([memory_fraction_at(e, c["tp"]) for e in spec.engines])
    share = np.where(np.asarray(c["memory_fraction"], float)[None, None, :] > 0,
                     np.asarray(c["memory_fraction"], float)[None, None, :],
                     tp_fraction[:, :, None])
    rule = np.array([KV_MEMORY_RULES.index(e.kv_memory) for e in spec.engines], float)
    union, (mem, hw_share, f, rl, wt, work, kv, cap) = on_union(
        (("hardware", "memory_capacity_scale"), capacity),
        (("hardware",), np.array([h.memory_usable_fraction for h in spec.hardware])),
        (("engine", "tp", "memory_fraction"), share), (("engine",), rule),
        weights, out["working_bytes"], out["kv_request_bytes"], running_cap)
    f = np.where(f > 0, f, hw_share)
    # every term takes part, so the results have the union's full shape (new, writable
    # arrays: the reduction kernel is compiled for writable arrays)
    room = np.where(rl == KV_MEMORY_RULES.index("static"), f * mem - wt,
                    np.where(rl == KV_MEMORY_RULES.index("free"), f * (mem - wt - work),
                             f * mem - wt - work))
    slots = np.floor(room / kv)
    slots = np.maximum(np.where(cap > 0, np.minimum(slots, cap), slots), 0.0)
    room = np.broadcast_to(room, slots.shape)
    return {**out, "kv_room_bytes": (union, np.ascontiguousarray(room, dtype=np.float64)),
            "slots": (union, np.ascontiguousarray(slots, dtype=np.float64)),
            "running_cap": running_cap}


def on_union(*terms) -> tuple[tuple, list]:
    """(dims, arrays): each (dims, values) term transposed to grid order and given size-1
    axes for the dims of the other terms, so that numpy broadcasts them as xarray would
    (the terms carry dims, no coordinates: nothing to align) without its per-operation
    cost. ``dims``: the union of the terms' dims in grid order."""
    union = tuple(d for d in GRID_DIMS if any(d in dims for dims, _ in terms))
    arrays = []
    for dims, values in terms:
        values = np.asarray(values)
        own = [d for d in union if d in dims]
        values = values.transpose([tuple(dims).index(d) for d in own])
        arrays.append(values.reshape([values.shape[own.index(d)] if d in dims else 1
                                      for d in union]))
    return union, arrays


def per_draft(spec: SweepSpec, dims: tuple, term) -> np.ndarray | float:
    """``term(draft)`` (an array over ``dims``, the model dim first) of every draft model,
    joined along the ``draft_model`` dim (0 for "none"); 0.0 when no draft is given."""
    if all(d is None for d in spec.drafts):
        return 0.0
    values = [np.asarray(term(d), dtype=np.float64) if d is not None else np.zeros(())
              for d in spec.drafts]
    shape = list(broadcast_shape((1,) * len(dims), *(v.shape for v in values)))
    axis = dims.index("draft_model")
    return np.concatenate([np.broadcast_to(v, shape) for v in values], axis=axis)


def cached_tokens(input_tokens, fraction):
    """Prompt tokens in the KV cache under prefix caching (``formulas.prompt_split``:
    whole tokens, the last prompt token always computed); arrays broadcast."""
    return np.where(fraction > 0, np.minimum(np.floor(fraction * input_tokens),
                                             input_tokens - 1), 0.0)


def shared_prefix_bytes(model, tp, pp, adp, cached, kv_bytes):
    """The cached prompt prefix's KV cache on one device [bytes]: one copy per
    attention-DP group, shared by its sequences (0 without prefix caching)."""
    return np.where(cached > 0, comp.kv_cache_bytes_per_device(
        model, tp, pp, adp, cached, kv_bytes, adp), 0.0)


def memory_and_validity(spec: SweepSpec, c: dict) -> dict:
    """Per-device memory terms [bytes], usable capacity, structural reason codes and the
    precision check (:func:`precision_reasons`).

    Each memory term carries only the dims among ``MEMORY_DIMS`` it varies over (weights:
    model, precisions, tp, pp, attention_dp; activations not output length or KV
    precision), so a chunk holds one full-size term (the KV cache), not three.
    """
    dims = MEMORY_DIMS
    ax = {d: _shaped(c[d], d, dims, float) for d in ("tp", "pp", "attention_dp", "batch",
                                                     "input_tokens", "output_tokens",
                                                     "beams", "prefix_cached_fraction",
                                                     "lora_rank", "lora_adapters", "cp")}
    w = _shaped(dtype_codes(c["weight_dtype"]), "weight_dtype", dims)
    w, a, k = resolve_dtypes(w, _shaped(dtype_codes(c["act_dtype"]), "act_dtype", dims),
                             _shaped(dtype_codes(c["kv_dtype"]), "kv_dtype", dims))
    wb, ab = L.DTYPE_BYTES[w], L.DTYPE_BYTES[a]
    # a quant recipe's KV-cache and per-class weight precisions (dse.quant)
    kb = recipe_kv_bytes(spec, k, dims)
    class_wb = {qc: b[0] for qc, b in recipe_weight_bytes(spec, w, dims).items()}
    tp, pp, adp, batch = ax["tp"][0], ax["pp"][0], ax["attention_dp"][0], ax["batch"][0]
    # context parallelism: each of the cp devices holds 1/cp of every sequence's KV cache
    # and prefills 1/cp of every prompt
    cp = ax["cp"][0]
    # a sequence holds its prompt once and each beam's generated tokens (beam search; the
    # positions capped together at a sliding window)
    context = ax["input_tokens"][0] + ax["beams"][0] * ax["output_tokens"][0]
    # prefix caching: the cached prompt prefix is held once per attention-DP group (each
    # device of a group holds its share), the rest per sequence
    cached = cached_tokens(ax["input_tokens"][0], ax["prefix_cached_fraction"][0])

    # a draft model's own KV cache and weights (whole on the last stage: pp 1), the same
    # for every target model: computed once, added to each model's terms
    drafted = not all(d is None for d in spec.drafts)
    positions_of = {"context": context, "prompt": ax["input_tokens"][0]}
    draft_kv = {n: per_draft(spec, dims, lambda d: comp.kv_cache_bytes_per_device(
        d, tp, 1.0, batch / cp, positions - cached, kb[0], adp)[None])
        for n, positions in positions_of.items()} if drafted else {}
    draft_weights = per_draft(spec, dims, lambda d: np.asarray(
        comp.weight_bytes_per_device(d, tp, 1.0, adp, wb[0], class_wb))[None])

    def kv(m, which):
        positions = positions_of[which]
        own = comp.kv_cache_bytes_per_device(m, tp, pp, batch / cp, positions - cached, kb[0],
                                             adp)
        if drafted:
            own = own + np.asarray(draft_kv[which])[0]
        if not np.any(cached > 0):  # no prefix caching: no second full-size array
            return own
        shared = shared_prefix_bytes(m, tp, pp, adp, cached, kb[0]) / cp
        if np.broadcast_shapes(own.shape, shared.shape) == own.shape:
            return np.add(own, shared, out=own)  # in place: the KV term is the largest
        return own + shared
    def weights(m):
        held = comp.weight_bytes_per_device(m, tp, pp, adp, wb[0], class_wb)
        if drafted:
            held = held + np.asarray(draft_weights)[0]
        if not uses_lora(c):
            return held
        # LoRA: every adapter held on the device, in the activation precision
        return held + comp.lora_bytes_per_device(m, tp, pp, ax["lora_rank"][0],
                                                 ax["lora_adapters"][0], ab[0])
    terms = {
        "weight_bytes_per_device": weights,
        "kv_cache_bytes_per_device": lambda m: kv(m, "context"),
        "activation_bytes_per_device": lambda m: comp.activation_bytes_per_device(
            m, tp, pp, batch, ax["input_tokens"][0] / cp, ab[0], adp),
        # the static peaks: prefill holds the prompts' KV cache and the prefill
        # activations, decode the full-context KV cache and one step's activations
        "kv_prompt_bytes": lambda m: kv(m, "prompt"),
        "decode_working_bytes": lambda m: comp.activation_bytes_per_device(
            m, tp, pp, batch, 1.0, ab[0], adp),
    }
    scale_ok = np.ones([len(c[d]) for d in WHAT_IF_DIMS], dtype=bool)
    for d in WHAT_IF_DIMS:
        scale_ok &= _shaped(c[d], d, WHAT_IF_DIMS) > 0
    capacity = np.outer([h.memory_bytes for h in spec.hardware], c["memory_capacity_scale"])
    usable = np.outer([h.memory_bytes * h.memory_usable_fraction for h in spec.hardware],
                      c["memory_capacity_scale"])
    weights = _own_dims(terms["weight_bytes_per_device"], spec.models, dims, c)
    memory = {name: weights if name == "weight_bytes_per_device" else
              _own_dims(term, spec.models, dims, c) for name, term in terms.items()}
    memory.update(serving_memory(spec, c, weights, capacity))
    # offload: the spill to the host tier, its bytes per pass, admission with it
    memory.update(offload_terms(spec, c, memory, usable))
    memory.pop("kv_room_bytes")  # in the slots now
    memory.pop("running_cap")
    return {
        **memory,
        # NaN marks an unknown price: the one documented missing value (null in Parquet)
        "price_per_device_hour_usd": (("hardware",), np.array(
            [h.price_per_device_hour_usd or np.nan for h in spec.hardware])),
        # the power model's ends (NaN: no TDP, a null energy column)
        "tdp_watts": (("hardware",), np.array([h.tdp_watts or np.nan for h in spec.hardware])),
        "idle_watts": (("hardware",), np.array([idle_watts(h) for h in spec.hardware])),
        "usable_memory_bytes": (("hardware", "memory_capacity_scale"), usable),
        "structural_reason": (STRUCTURE_DIMS, structural_reasons(
            spec.models, c["tp"], c["pp"], c["ep"], c["attention_dp"], c["spec_tokens"],
            c["cp"], spec.drafts)),
        "what_if_valid": (WHAT_IF_DIMS, scale_ok),
        "precision_reason": precision_reasons(spec, c),
    }


def evaluate(spec: SweepSpec, backend: str = "numba", breakdown: bool = False) -> xr.Dataset:
    """Evaluate every configuration of ``spec``.

    Parameters
    ----------
    spec : SweepSpec
    backend : {"numba", "reference"}
        The compiled kernel, or the plain-numpy reference (small grids only).

    Returns
    -------
    xr.Dataset
        ``ttft_s`` [s] over TTFT_DIMS; ``tpot_s`` [s] and ``bound`` (uint8 code into
        ``BOUND_NAMES``) over TPOT_DIMS; memory terms [bytes] over the dims they depend on;
        ``usable_memory_bytes`` (hardware, memory_capacity_scale); ``structural_reason``
        (model, tp, pp, ep) and ``what_if_valid`` (what-if dims); ``precision_reason``
        (uint8 code, over hardware and the precisions it depends on). Use :func:`derive`
        for the per-configuration columns. With ``breakdown``: the seconds per operator
        class (``kernels.breakdown.COLUMNS``: ``prefill_attention_s`` ...
        ``decode_other_s``) and ``prefill_bound`` (uint8 code) over TPOT_DIMS
        (:func:`add_breakdown`).
    """
    c = coords(spec)
    memory = memory_and_validity(spec, c)
    inputs = kernel_inputs(spec, memory["slots"], memory.pop("host_bytes"))
    parts = None  # the reference's breakdown, when it computes one with the times
    if backend == "numba":
        out = run_kernel(inputs, kernel_shape(c, TTFT_DIMS), kernel_shape(c, TPOT_DIMS))
    elif backend == "reference":
        from .kernels.reference import evaluate_reference
        # one reference pass gives the breakdown too (it prices the same ops)
        out = evaluate_reference(**inputs, breakdown=breakdown)
        parts, out = out[3:] or None, out[:3]
    else:
        raise ValueError(f"backend must be 'numba' or 'reference', not {backend!r}")
    ttft, tpot, bound = (from_kernel(x, c) for x in out)
    ds = xr.Dataset(
        {"ttft_s": (TTFT_DIMS, ttft), "tpot_s": (TPOT_DIMS, tpot),
         "bound": (TPOT_DIMS, bound), **memory,
         # the serving mode as a code (the reduction kernel reads it like a variable)
         "serving_code": (("serving",), np.array([SERVING.index(v) for v in c["serving"]],
                                                 dtype=np.uint8))},
        coords={d: c[d] for d in GRID_DIMS},
    )
    ds["bound"].attrs["names"] = list(L.BOUND_NAMES)
    ds["structural_reason"].attrs["names"] = list(REASONS)
    ds["precision_reason"].attrs["names"] = list(REASONS)
    ds.attrs["n_configs"] = spec.n_configs()
    if breakdown:
        add_breakdown(ds, inputs, c, backend, parts)
    return ds


def add_breakdown(ds: xr.Dataset, inputs: dict, c: dict, backend: str = "numba",
                  parts: tuple | None = None) -> None:
    """The breakdown columns (``dse sweep --breakdown``) into ``ds``: a second kernel, run
    only when they are asked for (the default sweep's kernel is untouched); ``parts``:
    (split, prefill_bound) when the reference already computed them."""
    from .kernels.breakdown import COLUMNS
    shape = kernel_shape(c, TPOT_DIMS)
    if parts:
        split, prefill_bound = parts
    elif backend == "numba":
        split, prefill_bound = run_breakdown(inputs, shape)
    else:
        from .kernels.reference import evaluate_reference
        split, prefill_bound = evaluate_reference(**inputs, breakdown=True)[3:]
    for name, values in zip(COLUMNS, split):
        ds[name] = (TPOT_DIMS, from_kernel(values, c))
    ds["prefill_bound"] = (TPOT_DIMS, from_kernel(prefill_bound, c))
    ds["prefill_bound"].attrs["names"] = list(L.BOUND_NAMES)


# What derived_metrics reads: axes and the evaluated variables.
METRIC_INPUTS = ("serving", "tp", "attention_dp", "pp", "cp", "dp", "batch", "output_tokens",
                 "ttft_s", "tpot_s", "weight_bytes_per_device", "kv_cache_bytes_per_device",
                 "activation_bytes_per_device", "kv_prompt_bytes", "decode_working_bytes",
                 "kv_request_bytes", "working_bytes", "slots",
                 "structural_reason", "what_if_valid", "precision_reason",
                 "usable_memory_bytes", "price_per_device_hour_usd", "bound", "tdp_watts",
                 "idle_watts", "offloaded_bytes")

# The power model of energy_per_token_j (README "Cost and energy"): a device draws
#   P = idle + (TDP - idle) * u
# where u, the dynamic share, follows the resource the timing says the time goes to:
# 1 (TDP) while compute-bound (prefill, large-batch decode: the math units run flat out);
# POWER_SHARE_MEMORY_BOUND while memory-bound (decode streams weights and KV cache through
# HBM with the math units mostly waiting: on an H200, decode of four attention kinds drew
# 137-300 W of its 700 W, Ma et al., "The Illusion of Power Capping in LLM Decode",
# arXiv:2605.11999, 2026; the upper end, (300 - 80) / (700 - 80) = 0.35 with 80 W idle,
# is used); network-bound steps are assumed to draw as memory-bound ones (the devices wait
# on links; no measurement). Indexed by the kernel's bound code (compute, memory, network).
# (the constant lives with the reduction kernel, which restates the model for objectives)
from .kernels.objectives import POWER_SHARE_MEMORY_BOUND  # noqa: E402  (0.35)
POWER_SHARE_BY_BOUND = (1.0, POWER_SHARE_MEMORY_BOUND, POWER_SHARE_MEMORY_BOUND,
                        POWER_SHARE_MEMORY_BOUND)
# Idle power where a preset gives no idle_watts: a fraction of TDP. An H200 with a serving
# engine loaded idles at about 80 W of its 700 W TDP (0.115; measured draw published at
# api.serialalice.pt/alice-benchmark, June 2026); 0.12 is used.
IDLE_FRACTION_OF_TDP = 0.12


def idle_watts(h) -> float:
    """A hardware preset's idle power [W]: ``idle_watts``, else IDLE_FRACTION_OF_TDP of
    its TDP (NaN without a TDP)."""
    if not h.tdp_watts:
        return np.nan
    return h.idle_watts or IDLE_FRACTION_OF_TDP * h.tdp_watts


def derived_metrics(v, where=np.where) -> dict:
    """The per-configuration metrics from ``v``, a mapping of :data:`METRIC_INPUTS` to
    arrays that broadcast together (DataArrays with ``where=xr.where``, or numpy arrays).

    One order of operations for every caller: :func:`derive`, the results table and the
    Pareto/best rows, so the three agree bit for bit.
    """
    out_tok = v["output_tokens"]
    continuous = v["serving"] == "continuous"
    # one output token: no decode step (and no 0 * inf where a time is infinite)
    decode_s = (out_tok - 1) * where(out_tok > 1, v["tpot_s"], 0.0)
    e2e = v["ttft_s"] + decode_s
    devices = v["tp"] * v["attention_dp"] * v["pp"] * v["cp"] * v["dp"]  # DEVICE_AXES
    # each replica serves `batch` requests every e2e seconds: a static batch, or (Little's
    # law) a closed loop of `batch` clients whose requests take e2e each
    requests = v["dp"] * v["batch"] / e2e
    throughput = requests * out_tok
    # continuous: the requests the KV cache and the engine admit run, the rest wait; the
    # memory holds weights, one iteration's working set and the running requests' KV cache.
    # static: weights and the larger of the prefill peak (the prompts' KV cache and the
    # prefill activations) and the decode peak (full-context KV cache, one step's working
    # set)
    running = where(continuous, np.minimum(v["batch"], v["slots"]), v["batch"])
    # power per device [W]: prefill of a static batch at TDP (compute-bound), decode (and
    # every continuous iteration) by the bound the kernel reports (POWER_SHARE_BY_BOUND)
    idle = v["idle_watts"]
    share = POWER_SHARE_MEMORY_BOUND + (1.0 - POWER_SHARE_MEMORY_BOUND) * (v["bound"] == 0)
    p_run = idle + (v["tdp_watts"] - idle) * share
    p_prefill = where(continuous, p_run, v["tdp_watts"])
    memory = where(continuous, v["weight_bytes_per_device"] + v["working_bytes"]
                   + running * v["kv_request_bytes"],
                   v["weight_bytes_per_device"] + np.maximum(
                       v["kv_prompt_bytes"] + v["activation_bytes_per_device"],
                       v["kv_cache_bytes_per_device"] + v["decode_working_bytes"]))
    # what spills to the host tier (the offload axis) is not held by the device
    memory = memory - v["offloaded_bytes"]
    no_room = where(continuous, v["slots"] < 1, memory > v["usable_memory_bytes"])
    reason = v["structural_reason"]
    reason = where((reason == 0) & ~v["what_if_valid"],
                   np.uint8(REASON_CODE["what_if_scale_not_positive"]), reason)
    # activations in a precision the hardware has no native math for (0 where it has)
    reason = where(reason == 0, v["precision_reason"], reason)
    reason = where((reason == 0) & no_room,
                   np.uint8(REASON_CODE["out_of_memory"]), reason).astype(np.uint8)
    return {
        "devices": devices,
        "e2e_latency_s": e2e,
        "throughput_tokens_per_s": throughput,
        "tokens_per_s_per_device": throughput / devices,
        "tokens_per_s_per_user": 1.0 / v["tpot_s"],
        "requests_per_s": requests,
        "running_requests": running,
        "memory_bytes_per_device": memory,
        "offloaded_bytes_per_device": v["offloaded_bytes"],
        "reason": reason,
        "feasible": reason == 0,
        # [USD per 1e6 output tokens]; NaN where the hardware preset has no price
        "cost_per_million_output_tokens": devices * v["price_per_device_hour_usd"] / 3600.0
        / throughput * 1e6,
        # [J per output token]: every device at the prefill power for ttft, then at the
        # decode power for the rest of e2e, per replica's batch of output tokens; NaN
        # where the hardware preset has no TDP
        # (float products: dp * batch * output_tokens may pass 2^63 at the axes' bounds)
        "energy_per_token_j": devices * (p_prefill * v["ttft_s"] + p_run * decode_s)
        / (1.0 * v["dp"] * v["batch"] * out_tok),
    }


def derive(ds: xr.Dataset) -> xr.Dataset:
    """Per-configuration metrics of (a selection of) an evaluated dataset.

    Returns a Dataset with ``devices``, ``e2e_latency_s`` [s], ``throughput_tokens_per_s``,
    ``tokens_per_s_per_device``, ``tokens_per_s_per_user`` [tokens/s],
    ``memory_bytes_per_device`` [bytes], ``reason`` (uint8 code into ``REASONS``),
    ``feasible``, ``cost_per_million_output_tokens`` [USD per 1e6 output tokens] (NaN where the
    hardware has no price) and ``energy_per_token_j`` [J per output token] (NaN where it
    has no TDP); dims are whatever the inputs broadcast to.
    """
    # the arithmetic runs on the variables without their indexes (every operation between
    # indexed operands aligns them, which costs far more than the arithmetic on small
    # selections); the dims still broadcast by name, and the coordinates are put back
    bare = {n: xr.DataArray(ds[n].variable) for n in METRIC_INPUTS}
    out = xr.Dataset(derived_metrics(bare, xr.where))
    return out.assign_coords({c: v for c, v in ds.coords.items()
                              if set(v.dims) <= set(out.dims)})


__import__(f"{__package__}.frame")  # registers ds.dse.to_frame() on the datasets above
