"""Serving-engine presets (``configs/engines/``): the fixed costs and batching defaults of
an inference server, which the continuous-batching model prices on top of the model's
forward passes. See ``configs/engines/README.md`` for the fields and their sources."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import (_bool, _check_keys, _efficiency_curves, _fail, _string,
                     check_preset_name, read_toml, resolve_preset)

MAX_OVERHEAD_S = 10.0       # a fixed cost beyond this is a typo, not an engine
MAX_LAUNCH_S = 0.01         # a host cost per operator launch beyond this is a typo
MAX_ADMISSION_INTERVAL = 1 << 12  # as the admission_interval axis (dse.axes)
MAX_ENGINE_TOKENS = 1 << 24


@dataclass(frozen=True)
class Engine:
    """One serving engine: per-request and per-iteration overheads [s], chunked prefill,
    whether prefill chunks share iterations with decodes, the default token budget per
    iteration and running-request cap (0: none)."""
    name: str
    description: str
    request_overhead_s: float
    iteration_overhead_s: float
    chunked_prefill: bool
    mixed_prefill: bool
    max_batched_tokens: int
    max_running_requests: int
    # host seconds per operator launch in iterations that carry prefill (they run without
    # CUDA graphs): such an iteration lasts at least its launches x eager_op_s; 0: none
    eager_op_s: float = 0.0
    # whether decode-only iterations are captured as CUDA graphs (False: they run eagerly
    # and pay eager_op_s per launch too, as vLLM --enforce-eager, SGLang
    # --disable-cuda-graph or early TensorRT-LLM PyTorch-backend defaults run)
    decode_cuda_graphs: bool = True
    # decode iterations between admissions of new requests while busy (SGLang
    # --scheduler-recv-interval); 1: every iteration
    admission_interval: int = 1
    # how the engine sizes its KV cache (KV_MEMORY_RULES) from a share of device memory:
    # ((smallest tp, fraction), ...) ascending, the last whose tp <= the point's applies;
    # () : the hardware preset's memory_usable_fraction
    kv_memory: str = "budget"
    memory_fraction: tuple = ()
    # whether max_batched_tokens and max_running_requests hold per attention-DP rank (each
    # rank schedules its own requests: TensorRT-LLM, vLLM) rather than for the replica
    # (SGLang divides its chunked_prefill_size among the ranks)
    per_rank_limits: bool = False
    # overlap scheduling: the scheduler forms the next batch while the current one runs
    # (SGLang's overlap event loop, TensorRT-LLM's overlap scheduler, vLLM's async
    # scheduling), so a request arriving while the engine is busy misses the batch
    # already formed and waits one more iteration for admission
    overlap_scheduling: bool = False
    # the engine's own kernels (``kernels``: a set of configs/engine_kernels/): efficiency
    # curves per hardware preset name, {hardware: {curve: (work, efficiency)}}, which
    # replace that hardware preset's curves of the same name when this engine serves on
    # it (continuous serving); {}: the hardware presets' curves throughout
    kernels: str = ""
    kernel_curves: dict = field(default_factory=dict)
    source: str = "<api>"
    text: str = ""


def _seconds(data, key, src, most=MAX_OVERHEAD_S) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value <= most:
        _fail(src, key, value, f"must be a number of seconds in [0, {most:g}]")
    return float(value)


def _count(data, key, src) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value <= MAX_ENGINE_TOKENS:
        _fail(src, key, value, f"must be an integer in [0, {MAX_ENGINE_TOKENS:,}] (0: no limit)")
    return int(value)


# How an engine turns its memory share f of a device's memory M into KV-cache room (w: the
# weights, a: the activation working set of one iteration) [bytes]:
# - budget: f M - w - a (vLLM: --gpu-memory-utilization covers weights, the profiled peak
#   activations and the KV cache; the hardware's usable share when the engine names none)
# - static: f M - w (SGLang: --mem-fraction-static covers weights and the KV pool; the
#   activations live in the remaining 1 - f)
# - free: f (M - w - a) (TensorRT-LLM: free_gpu_memory_fraction of the memory left free
#   after the weights and a profiling forward pass)
KV_MEMORY_RULES = ("budget", "static", "free")
OPTIONAL = ("eager_op_s", "admission_interval", "kv_memory", "memory_fraction",
            "decode_cuda_graphs", "per_rank_limits", "overlap_scheduling", "kernels")
FIELDS = ("request_overhead_s", "iteration_overhead_s", "chunked_prefill", "mixed_prefill",
          "max_batched_tokens", "max_running_requests")


def parse_engine(data: dict, src: str, text: str = "", base_dir: Path | None = None) -> Engine:
    """Validate an engine preset given as a dict (its parsed TOML) read from ``src``; a
    ``kernels`` path is taken relative to ``base_dir`` first."""
    _check_keys(data, {"name", "description", *OPTIONAL, *FIELDS}, ["name", *FIELDS], src)
    if "admission_interval" in data:
        value = data["admission_interval"]
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 1 <= value <= MAX_ADMISSION_INTERVAL:
            _fail(src, "admission_interval", value,
                  f"must be an integer in [1, {MAX_ADMISSION_INTERVAL}] (decode iterations)")
    return Engine(
        name=check_preset_name(data["name"], src),
        description=_string(data, "description", src) if "description" in data else "",
        request_overhead_s=_seconds(data, "request_overhead_s", src),
        iteration_overhead_s=_seconds(data, "iteration_overhead_s", src),
        chunked_prefill=_bool(data, "chunked_prefill", src),
        mixed_prefill=_bool(data, "mixed_prefill", src),
        max_batched_tokens=_count(data, "max_batched_tokens", src),
        max_running_requests=_count(data, "max_running_requests", src),
        eager_op_s=(_seconds(data, "eager_op_s", src, MAX_LAUNCH_S)
                    if "eager_op_s" in data else 0.0),
        admission_interval=int(data.get("admission_interval", 1)),
        decode_cuda_graphs=(_bool(data, "decode_cuda_graphs", src)
                            if "decode_cuda_graphs" in data else True),
        kv_memory=_kv_memory(data, src),
        memory_fraction=_memory_fraction(data, src),
        per_rank_limits=(_bool(data, "per_rank_limits", src)
                         if "per_rank_limits" in data else False),
        overlap_scheduling=(_bool(data, "overlap_scheduling", src)
                            if "overlap_scheduling" in data else False),
        kernels=str(data.get("kernels", "")),
        kernel_curves=(load_kernel_set(data["kernels"], base_dir, src)
                       if "kernels" in data else {}),
        source=src, text=text)


def load_kernel_set(ref, base_dir: Path | None = None, source="<api>",
                    key="kernels") -> dict:
    """An engine's own kernels, by bundled name (configs/engine_kernels/) or path: one
    table per hardware preset name, each holding ``[<hardware>.efficiency.<curve>]``
    curves as a hardware preset's ``[efficiency.<curve>]`` (configs/engines/README.md).
    Returns {hardware: {curve: (work, efficiency)}}."""
    path = resolve_preset("engine_kernels", ref, base_dir, source, key)
    data, _ = read_toml(path, "engine kernel set (TOML)")
    src = str(path)
    curves = {}
    for name, table in data.items():
        if name in ("name", "description"):
            _string(data, name, src)
            continue
        check_preset_name(name, src, key=name)
        if not isinstance(table, dict):
            _fail(src, name, table, "must be a table [<hardware>.efficiency.<curve>] named "
                  "for a hardware preset")
        _check_keys(table, {"efficiency"}, ["efficiency"], src, name)
        curves[name] = _efficiency_curves(table["efficiency"], f"{src} [{name}]")
    return curves


def _kv_memory(data, src) -> str:
    value = data.get("kv_memory", "budget")
    if value not in KV_MEMORY_RULES:
        _fail(src, "kv_memory", value, f"valid: {', '.join(KV_MEMORY_RULES)}")
    return value


def _memory_fraction(data, src) -> tuple:
    """``memory_fraction``: a fraction in (0, 1], or [[smallest tp, fraction], ...] with
    ascending tp from 1 (an engine whose default depends on the tensor-parallel size)."""
    if "memory_fraction" not in data:
        return ()
    value = data["memory_fraction"]
    pairs = [[1, value]] if not isinstance(value, list) else value

    def fraction(f):
        return not isinstance(f, bool) and isinstance(f, (int, float)) and 0.0 < f <= 1.0
    ok = bool(pairs) and all(
        isinstance(p, list) and len(p) == 2 and not isinstance(p[0], bool)
        and isinstance(p[0], int) and p[0] >= 1 and fraction(p[1]) for p in pairs)
    tps = [p[0] for p in pairs] if ok else []
    if not ok or tps[0] != 1 or tps != sorted(set(tps)):
        _fail(src, "memory_fraction", value,
              "must be a fraction in (0, 1] or [[smallest tp, fraction], ...] with the "
              "smallest tp ascending from 1")
    return tuple((int(t), float(f)) for t, f in pairs)


def memory_fraction_at(engine: Engine, tp):
    """The engine's default memory share at tensor-parallel size ``tp`` (array-like); 0
    where the engine names none (the hardware's usable share applies)."""
    tp = np.asarray(tp, dtype=float)
    out = np.zeros(tp.shape)
    for smallest, f in engine.memory_fraction:
        out = np.where(tp >= smallest, f, out)
    return out


def replica_limits(engine: Engine, max_batched_tokens=0, attention_dp=1) -> tuple[int, int]:
    """(token budget per iteration, running-request cap) of one replica (0: none): the
    ``max_batched_tokens`` axis value, else the engine's budget, and the engine's cap,
    each times the replica's attention-DP ranks where every rank schedules its own
    requests (``per_rank_limits``)."""
    ranks = int(attention_dp) if engine.per_rank_limits else 1
    return (int(max_batched_tokens or engine.max_batched_tokens) * ranks,
            engine.max_running_requests * ranks)


def load_engine(ref, base_dir: Path | None = None, source="<api>", key="engine") -> Engine:
    """Load an engine preset by bundled name or path (a ``Path`` is always a path)."""
    path = resolve_preset("engines", ref, base_dir, source, key)
    data, text = read_toml(path, "engine preset (TOML)")
    return parse_engine(data, str(path), text, path.parent)
