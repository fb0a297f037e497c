"""Serving-engine presets (``configs/engines/``): the fixed costs and batching defaults of
an inference server, which the continuous-batching model prices on top of the model's
forward passes. See ``configs/engines/README.md`` for the fields and their sources."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import (_bool, _check_keys, _fail, _string, check_preset_name, read_toml,
                     resolve_preset)

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
    # decode iterations between admissions of new requests while busy (SGLang
    # --scheduler-recv-interval x --num-continuous-decode-steps); 1: every iteration
    admission_interval: int = 1
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


OPTIONAL = ("eager_op_s", "admission_interval")  # keys a preset may omit (0 and 1)
FIELDS = ("request_overhead_s", "iteration_overhead_s", "chunked_prefill", "mixed_prefill",
          "max_batched_tokens", "max_running_requests")


def parse_engine(data: dict, src: str, text: str = "") -> Engine:
    """Validate an engine preset given as a dict (its parsed TOML) read from ``src``."""
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
        source=src, text=text)


def load_engine(ref, base_dir: Path | None = None, source="<api>", key="engine") -> Engine:
    """Load an engine preset by bundled name or path (a ``Path`` is always a path)."""
    path = resolve_preset("engines", ref, base_dir, source, key)
    data, text = read_toml(path, "engine preset (TOML)")
    return parse_engine(data, str(path), text)
