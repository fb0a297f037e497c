"""Load and validate presets and sweep specs: TOML in, frozen dataclasses out.

Every input problem raises :class:`ConfigError` with one line that names the file, the key,
the value and what would be valid. Presets are found by name among the bundled files
(``dse/configs``) or by path (absolute, or relative to the sweep spec / working directory).
"""
from __future__ import annotations

import difflib
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .axes import AXES, AXIS, MAX_DEVICES, SAME, names  # noqa: F401  (SAME re-exported)
from .kernels.layout import DTYPE_FALLBACK, DTYPES


from .errors import ConfigError  # noqa: F401  (re-exported: dse.config.ConfigError)


# Values are quoted in messages up to this many characters (a message stays one short line
# whatever the input).
MAX_SHOWN_CHARS = 80


def shown(value) -> str:
    """``repr(value)``, cut to :data:`MAX_SHOWN_CHARS` characters, on one line."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS - 3] + "..."


def human_bytes(n: float) -> str:
    """A size in the unit that shows it: "1 B", "512 kB", "1.5 GB" (decimal units)."""
    for scale, unit in ((1e18, "EB"), (1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"),
                        (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _fail(source, key, value, problem):
    raise ConfigError(f"{source}: {key} = {shown(value)}: {problem}")


# --------------------------------------------------------------------------- file access
def bundled_dir(kind: str) -> Path:
    """Folder of the bundled presets of one kind (``hardware``, ``models``, ``engines``,
    ``quant``, ``sweeps``)."""
    return Path(str(resources.files("dse.configs").joinpath(kind)))


def bundled_names(kind: str) -> list[str]:
    return sorted(p.stem for p in bundled_dir(kind).glob("*.toml"))


# Specs, presets and Hugging Face configs are small text files; anything larger is a wrong
# path (a log, a data file, /dev/zero) and is refused before it fills memory.
MAX_TEXT_BYTES = 1 << 20


def read_bounded(path, what: str = "file", limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A folder, a device or pipe (which could block or never end), a missing or unreadable
    file, or one larger than ``limit`` raises a one-line :class:`ConfigError`.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path}: is a folder, expected a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file, expected a {what}")
        if info.st_size > limit:
            raise ConfigError(f"{path}: {info.st_size:,} bytes: a {what} is at most "
                              f"{limit:,} bytes")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew while reading
            raise ConfigError(f"{path}: more than {limit:,} bytes: a {what} is at most "
                              f"{limit:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text(path, what: str = "file", limit: int = MAX_TEXT_BYTES) -> str:
    """:func:`read_bounded` decoded as UTF-8 (a binary file is a one-line ConfigError)."""
    data = read_bounded(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: "
                          f"{data[exc.start:exc.start + 1]!r}); expected a {what}") from None


def parse_toml(text: str, source) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: malformed TOML: {exc}") from None


def read_toml(path: Path, what: str = "TOML file") -> tuple[dict, str]:
    """(parsed TOML, its text) of the file ``path``."""
    text = read_text(path, what)
    return parse_toml(text, path), text


# Preset names become folder names (``configurations/hardware=NAME``) and file names
# (``dse model import`` writes ``NAME.toml``): identifiers only, so a name cannot climb
# out of a folder or hide a separator.
PRESET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME_CHARS = 64


def check_preset_name(name, source, key="name") -> str:
    """``name`` if it is a valid preset name; else a one-line ConfigError."""
    if not isinstance(name, str):
        _fail(source, key, name, "must be a string")
    if len(name) > MAX_NAME_CHARS or not PRESET_NAME.fullmatch(name):
        _fail(source, key, name, f"a preset name is an identifier: letters, digits and _, "
              f"not starting with a digit, at most {MAX_NAME_CHARS} characters")
    return name


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a symlink loop, a NUL character
        return False


def resolve_preset(kind: str, ref, base_dir: Path | None = None,
                   source: str = "<api>", key: str = "", extra: tuple = ()) -> Path:
    """Path of a preset given by bundled name or by file path (a ``Path`` is always a
    path; a string is a path when it ends in .toml or holds a separator). ``extra``: other
    values the key accepts besides presets (named first in the error, e.g. "none")."""
    if isinstance(ref, Path):
        ref_path = ref
    elif not isinstance(ref, str) or not ref:
        _fail(source, key, ref, "expected a preset name or a path to a .toml file")
    elif ref.endswith(".toml") or "/" in ref or "\\" in ref:
        ref_path = Path(ref)
    else:
        ref_path = None
    if ref_path is not None:
        candidates = [ref_path]
        if base_dir is not None and not ref_path.is_absolute():
            candidates.insert(0, base_dir / ref_path)
        for cand in candidates:
            if _is_file(cand):
                return cand
        _fail(source, key, str(ref), "preset file not found")
    path = bundled_dir(kind) / f"{ref}.toml"
    if not PRESET_NAME.fullmatch(ref) or not _is_file(path):
        names = [*extra, *bundled_names(kind)]
        # "models" -> "model", "engine_kernels" -> "engine kernel"
        what = (kind[:-1] if kind.endswith("s") else kind).replace("_", " ")
        _fail(source, key, ref, f"unknown {what} preset{did_you_mean(ref, names)}; valid: "
              f"{', '.join(names)} (or a path to a .toml file)")
    return path


def did_you_mean(name, choices) -> str:
    """" (did you mean X?)" naming up to three of ``choices`` close to ``name`` (a prefix
    either way, or difflib's close matches, ignoring case and - versus _), or ""."""
    if not isinstance(name, str) or not name:
        return ""
    wanted = name.lower().replace("-", "_").replace(".", "_")
    close = [c for c in choices if len(wanted) >= 3 and (c.startswith(wanted)
                                                         or wanted.startswith(c))]
    close += difflib.get_close_matches(wanted, list(choices), n=3, cutoff=0.75)
    picks = list(dict.fromkeys(close))[:3]
    return f" (did you mean {' or '.join(picks)}?)" if picks else ""


# --------------------------------------------------------------------------- field checks
# Bounds of preset numbers: far beyond any real chip or model, and tight enough that every
# time, FLOP and byte count the kernels derive from them stays finite in float64 (a
# denormal bandwidth would make times infinite, a 1e400 count is not a float at all).
MAX_PRESET_INT = (1 << 31) - 1
MIN_PRESET_FLOAT, MAX_PRESET_FLOAT = 1e-15, 1e30
def _check_keys(data: dict, allowed, required, source, section=""):
    prefix = f"[{section}] " if section else ""
    for key in data:
        if key not in allowed:
            name = key if len(key) <= MAX_SHOWN_CHARS else shown(key)
            _fail(source, prefix + name, data[key],
                  f"unknown key{did_you_mean(key, sorted(allowed))}; valid keys: "
                  f"{', '.join(sorted(allowed))}")
    for key in required:
        if key not in data:
            raise ConfigError(f"{source}: {prefix}{key}: missing required key")


def _positive_float(data, key, source, upper=MAX_PRESET_FLOAT):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(source, key, value, "must be a positive number")
    if value <= 0:
        _fail(source, key, value, "must be positive")
    if not MIN_PRESET_FLOAT <= value <= upper:
        _fail(source, key, value, f"must be positive, in [{MIN_PRESET_FLOAT:g}, {upper:g}]")
    return float(value)


def _positive_int(data, key, source, upper=MAX_PRESET_INT):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(source, key, value, "must be a positive integer")
    if value > upper:
        _fail(source, key, value, f"must be at most {upper:,}")
    return int(value)


def _bool(data, key, source):
    value = data[key]
    if not isinstance(value, bool):
        _fail(source, key, value, "must be true or false")
    return value


def _string(data, key, source):
    value = data[key]
    if not isinstance(value, str):
        _fail(source, key, value, "must be a string")
    return value


# --------------------------------------------------------------------------- hardware
_HW_FLOAT_KEYS = ("memory_bytes", "memory_bytes_per_s", "scaleup_bytes_per_s",
                  "scaleup_latency_s", "scaleout_bytes_per_s", "scaleout_latency_s")
_HW_FRACTION_KEYS = ("memory_usable_fraction", "compute_efficiency", "memory_efficiency",
                     "network_efficiency")
_HW_RATE_KEYS = tuple(f"flops_per_s_{d}" for d in DTYPES)

# Per-kernel fixed latency by hardware family, used where a preset does not set
# kernel_latency_s: the time every compute or memory kernel takes on top of its roofline
# time, which makes small, decode-shaped kernels reach a smaller share of peak. Engineering
# defaults of the order of a kernel launch under CUDA/HIP graphs plus tail effects (GPUs;
# e.g. Llama-3-8B batch-1 decode on H100 then lands near the ~6.5 ms/token that serving
# engines report, against 5.6 ms of pure weight streaming), fused XLA programs (TPUs),
# graph-compiled accelerators and fork-join threading (CPUs). Fit your own with
# `dse calibrate`.
FAMILY_KERNEL_LATENCY_S = {"gpu": 3e-6, "tpu": 1e-6, "accelerator": 4e-6, "cpu": 5e-6}


@dataclass(frozen=True)
class Hardware:
    """One accelerator (a single device), all numbers in SI units.

    ``flops_per_s`` holds the dense peak per precision the chip has natively, and only
    those: its keys are :attr:`native_precisions` (a preset's ``native_precisions`` list,
    when given, must name exactly them). :meth:`rate` applies the fallback to the next
    wider precision (weights and KV cache narrower than the activations); activations in
    a precision the chip lacks make a configuration infeasible (``precision_not_supported``).
    """
    name: str
    description: str
    flops_per_s: dict
    memory_bytes: float
    memory_bytes_per_s: float
    memory_usable_fraction: float
    scaleup_bytes_per_s: float
    scaleup_latency_s: float
    scaleup_domain_devices: int
    scaleout_bytes_per_s: float
    scaleout_latency_s: float
    compute_efficiency: float
    memory_efficiency: float
    network_efficiency: float
    family: str = "gpu"
    kernel_latency_s: float = FAMILY_KERNEL_LATENCY_S["gpu"]
    tdp_watts: float = 0.0                  # 0: unknown (no energy column values)
    price_per_device_hour_usd: float = 0.0  # 0: unknown (no cost column values)
    # power with a serving engine loaded and nothing running; 0: IDLE_FRACTION_OF_TDP
    idle_watts: float = 0.0
    # the host tier for offload (the ``offload`` axis), per device: host memory it may spill
    # weights or KV cache to [bytes] and the host-to-device link [bytes/s, one direction];
    # 0: none (nothing can be offloaded)
    host_memory_bytes: float = 0.0
    host_link_bytes_per_s: float = 0.0
    # size-dependent efficiency (kernels/efficiency.py): {curve name: (work, efficiency)}
    # with the knots as tuples; a curve that is absent leaves the scalar efficiency
    efficiency_curves: dict = field(default_factory=dict)
    source: str = ""
    text: str = field(default="", repr=False)  # the preset file as read

    @property
    def native_precisions(self) -> tuple:
        """The precisions the chip computes in natively (those with a rate), widest first."""
        return tuple(d for d in DTYPES if d in self.flops_per_s)

    def rate(self, dtype: str) -> float:
        """Peak dense FLOP/s used for GEMM inputs of ``dtype`` [FLOP/s]."""
        d = dtype
        while d is not None:
            if d in self.flops_per_s:
                return self.flops_per_s[d]
            d = DTYPE_FALLBACK[d]
        raise ConfigError(f"{self.source}: flops_per_s_{dtype}: no rate for this precision "
                          "or any wider one")


def _guess_family(name: str) -> str:
    """Family of a preset that does not say: by its name (tpu_*, xeon_*/epyc_*, gaudi*)."""
    if name.startswith("tpu"):
        return "tpu"
    if name.startswith(("xeon", "epyc")):
        return "cpu"
    if name.startswith(("gaudi", "trainium", "inferentia")):
        return "accelerator"
    return "gpu"


def _check_native_precisions(value, rates: dict, src) -> None:
    """A preset's ``native_precisions``: distinct known precision names, exactly the ones
    with a ``flops_per_s_<precision>`` rate (a native precision without a rate could not be
    priced; a rate of a precision that is not native would never be used)."""
    key = "native_precisions"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(src, key, value, f"must be a list of precision names; valid: {', '.join(DTYPES)}")
    for v in value:
        if v not in DTYPES:
            _fail(src, key, value, f"unknown precision {shown(v)}; valid: {', '.join(DTYPES)}")
    seen = set()
    for v in value:
        if v in seen:
            _fail(src, key, value, f"duplicate precision {shown(v)}")
        seen.add(v)
    for v in value:
        if v not in rates:
            _fail(src, key, value, f"{v} has no rate: give flops_per_s_{v} or drop {v}; "
                  f"precisions with a rate here: {', '.join(rates)}")
    for d, r in rates.items():
        if d not in seen:
            _fail(src, f"flops_per_s_{d}", r, f"{d} is not in native_precisions "
                  f"{shown(value)}: list it or drop the rate (a rate is the peak of a "
                  "precision the chip computes in natively)")


_HW_HOST_KEYS = ("host_memory_bytes", "host_link_bytes_per_s")  # optional: the host tier


def load_hardware(ref, base_dir: Path | None = None, source="<api>", key="hardware"):
    """Load a hardware preset by bundled name or path (a ``Path`` is always a path)."""
    path = resolve_preset("hardware", ref, base_dir, source, key)
    data, text = read_toml(path, "hardware preset (TOML)")
    return parse_hardware(data, str(path), text)


def parse_hardware(data: dict, src: str, text: str = ""):
    """Validate a hardware preset given as a dict (its parsed TOML) read from ``src``."""
    allowed = {"name", "description", "scaleup_domain_devices", "tdp_watts", "family",
               "kernel_latency_s", "native_precisions", "efficiency",
               "price_per_device_hour_usd", "idle_watts", *_HW_HOST_KEYS, *_HW_FLOAT_KEYS,
               *_HW_FRACTION_KEYS,
               *_HW_RATE_KEYS}
    _check_keys(data, allowed, ["name", "flops_per_s_fp32", "scaleup_domain_devices",
                                *_HW_FLOAT_KEYS, *_HW_FRACTION_KEYS], src)
    name = check_preset_name(data["name"], src)
    rates = {d: _positive_float(data, f"flops_per_s_{d}", src)
             for d in DTYPES if f"flops_per_s_{d}" in data}
    if "native_precisions" in data:
        _check_native_precisions(data["native_precisions"], rates, src)
    family = data.get("family", _guess_family(name))
    if family not in FAMILY_KERNEL_LATENCY_S:
        _fail(src, "family", family, f"valid: {', '.join(FAMILY_KERNEL_LATENCY_S)}")
    if "idle_watts" in data:
        idle = _positive_float(data, "idle_watts", src)
        tdp = _positive_float(data, "tdp_watts", src) if "tdp_watts" in data else None
        if tdp is None or idle >= tdp:
            _fail(src, "idle_watts", data["idle_watts"], "must be below tdp_watts "
                  f"({shown(data.get('tdp_watts'))}): the power model spans idle to TDP")
    latency = data.get("kernel_latency_s", FAMILY_KERNEL_LATENCY_S[family])
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency < 1:
        _fail(src, "kernel_latency_s", latency, "must be a number of seconds in [0, 1)")
    return Hardware(
        name=name,
        description=_string(data, "description", src) if "description" in data else "",
        flops_per_s=rates,
        scaleup_domain_devices=_positive_int(data, "scaleup_domain_devices", src),
        family=family, kernel_latency_s=float(latency),
        **{k: _positive_float(data, k, src) for k in _HW_FLOAT_KEYS},
        **{k: _positive_float(data, k, src, upper=1.0) for k in _HW_FRACTION_KEYS},
        **{k: _positive_float(data, k, src) for k in ("tdp_watts", "price_per_device_hour_usd",
                                                      "idle_watts", *_HW_HOST_KEYS)
           if k in data},
        efficiency_curves=(_efficiency_curves(data["efficiency"], src)
                           if "efficiency" in data else {}),
        source=src, text=text,
    )


def _efficiency_curves(tables, src) -> dict:
    """A preset's ``[efficiency.<curve>]`` tables: ``work`` (FLOPs, bytes or message bytes
    per kernel, increasing) and ``efficiency`` (the share of peak reached there, in
    (0, 1]), 1 to ``CURVE_KNOTS`` knots each, and an optional ``source`` text."""
    from .kernels.layout import CURVE_KNOTS, CURVES
    if not isinstance(tables, dict):
        _fail(src, "efficiency", tables, "must be a table of curves ([efficiency.<curve>])")
    curves = {}
    for name, table in tables.items():
        key = f"efficiency.{name}"
        if name not in CURVES:
            _fail(src, key if len(key) <= MAX_SHOWN_CHARS else shown(key), table,
                  f"unknown curve; valid: {', '.join(CURVES)}")
        if not isinstance(table, dict):
            _fail(src, key, table, "must be a table with work = [...] and efficiency = [...]")
        _check_keys(table, {"work", "efficiency", "source"}, ["work", "efficiency"], src, key)
        if "source" in table:
            _string(table, "source", src)
        knots = {}
        for field_ in ("work", "efficiency"):
            values = table[field_]
            if not isinstance(values, list) or not 1 <= len(values) <= CURVE_KNOTS:
                _fail(src, f"{key}.{field_}", values,
                      f"must be a list of 1 to {CURVE_KNOTS} numbers")
            upper = 1.0 if field_ == "efficiency" else MAX_PRESET_FLOAT
            knots[field_] = tuple(_positive_float({f"{key}.{field_}[{i}]": v},
                                                  f"{key}.{field_}[{i}]", src, upper=upper)
                                  for i, v in enumerate(values))
        work, eff = knots["work"], knots["efficiency"]
        if len(work) != len(eff):
            _fail(src, f"{key}.efficiency", list(eff),
                  f"has {len(eff)} values for {len(work)} work knots: give one per knot")
        if any(b <= a for a, b in zip(work, work[1:])):
            _fail(src, f"{key}.work", list(work), "must be strictly increasing")
        curves[name] = (work, eff)
    return curves


# --------------------------------------------------------------------------- models
_MODEL_INT_KEYS = ("layers", "hidden_size", "vocab_size")
# may be 0: attention fields in an all-SSM model, ffn_dim in a model without an FFN
_MODEL_COUNT_KEYS = ("heads", "kv_heads", "head_dim", "ffn_dim")


_MODEL_OPTIONAL_INTS = ("experts", "experts_per_token", "moe_ffn_dim", "shared_experts",
                        "shared_expert_ffn_dim", "dense_layers", "sliding_window_tokens",
                        "sliding_window_layers", "kv_lora_rank", "q_lora_rank",
                        "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "ssm_layers",
                        "ssm_state_size", "ssm_expand", "ssm_heads", "ssm_groups",
                        "ssm_conv_kernel", "ssm_dt_rank", "linear_attention_layers",
                        "linear_key_heads", "linear_value_heads", "linear_key_head_dim",
                        "linear_value_head_dim", "linear_conv_kernel",
                        "sparse_attention_top_k", "indexer_heads", "indexer_head_dim",
                        "mtp_layers")
_MLA_KEYS = ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
# DeepSeek Sparse Attention: the lightning indexer's heads and width, and the top-k it keeps
_SPARSE_KEYS = ("sparse_attention_top_k", "indexer_heads", "indexer_head_dim")


@dataclass(frozen=True)
class Model:
    """A decoder-only transformer: dense or mixture-of-experts (``experts > 0``), with GQA
    or multi-head latent attention (``kv_lora_rank > 0``) and optional sliding windows.

    Optional architecture fields are 0 when unused; see ``configs/models/README.md``.
    """
    name: str
    description: str
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    tied_embeddings: bool
    gated_ffn: bool
    experts: int = 0
    experts_per_token: int = 0
    moe_ffn_dim: int = 0            # routed expert width (0: ffn_dim)
    shared_experts: int = 0         # always-active experts of width moe_ffn_dim
    shared_expert_ffn_dim: int = 0  # total shared-expert width (0: shared_experts * moe width)
    dense_layers: int = 0           # MoE models: layers with a dense FFN of width ffn_dim
    sliding_window_tokens: int = 0
    sliding_window_layers: int = 0  # layers using the window (0 with a window: all)
    kv_lora_rank: int = 0           # MLA: compressed KV width
    q_lora_rank: int = 0            # MLA: compressed Q width (0: plain Q projection)
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    ssm_layers: int = 0             # layers whose mixer is a state-space (Mamba) block
    ssm_state_size: int = 0         # N (d_state)
    ssm_expand: int = 2             # inner width = ssm_expand * hidden_size
    ssm_heads: int = 0              # Mamba-2 heads (0: Mamba-1)
    ssm_groups: int = 1             # Mamba-2 B/C groups
    ssm_conv_kernel: int = 4
    ssm_dt_rank: int = 0            # Mamba-1 dt rank (0: ceil(hidden / 16))
    linear_attention_layers: int = 0  # layers whose mixer is Gated DeltaNet linear attention
    linear_key_heads: int = 0       # Gated DeltaNet query/key heads (linear_num_key_heads)
    linear_value_heads: int = 0     # value heads, a dk x dv state each (linear_num_value_heads)
    linear_key_head_dim: int = 0    # dk (linear_key_head_dim)
    linear_value_head_dim: int = 0  # dv (linear_value_head_dim)
    linear_conv_kernel: int = 4     # short causal conv over q, k, v (linear_conv_kernel_dim)
    attention_output_gate: bool = False  # sigmoid gate on the attention output (Q proj 2x wide)
    # DeepSeek Sparse Attention (DSA, DeepSeek-V3.2): every attention layer attends only the
    # top-k positions its lightning indexer selects. Unlike a sliding window the cache keeps
    # every position (and the indexer's keys besides).
    sparse_attention_top_k: int = 0  # positions attended per query (index_topk; 0: dense)
    indexer_heads: int = 0          # lightning-indexer query heads (index_n_heads)
    indexer_head_dim: int = 0       # lightning-indexer q/k width, cached per token (index_head_dim)
    # multi-token prediction (DeepSeek-V3): modules of one decoder layer each that draft the
    # next tokens for speculative decoding (the spec_tokens axis); not in the main model
    mtp_layers: int = 0             # HF num_nextn_predict_layers
    position_embedding: str = "rope"  # "rope" (rotary, per layer) or "learned" (absolute)
    published_params: float = 0.0
    published_active_params: float = 0.0
    published_active_excludes_embedding: bool = False  # the published active count omits it
    source: str = ""
    text: str = field(default="", repr=False)  # the preset file as read

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def expert_ffn_dim(self) -> int:
        return self.moe_ffn_dim or self.ffn_dim

    @property
    def shared_ffn_dim(self) -> int:
        return self.shared_expert_ffn_dim or self.shared_experts * self.expert_ffn_dim

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def attention_layers(self) -> int:
        return self.layers - self.ssm_layers - self.linear_attention_layers

    @property
    def linear_key_dim(self) -> int:
        """Gated DeltaNet query (and key) width: key heads x dk."""
        return self.linear_key_heads * self.linear_key_head_dim

    @property
    def linear_value_dim(self) -> int:
        """Gated DeltaNet value (and output gate z) width: value heads x dv."""
        return self.linear_value_heads * self.linear_value_head_dim

    @property
    def linear_conv_channels(self) -> int:
        """Channels through the Gated DeltaNet causal conv: q, k and v."""
        return 2 * self.linear_key_dim + self.linear_value_dim

    @property
    def ffn_layers(self) -> int:
        """Layers with an FFN (dense or MoE)."""
        return self.layers if (self.ffn_dim > 0 or self.is_moe) else 0

    @property
    def is_sparse_attention(self) -> bool:
        """DeepSeek Sparse Attention: attention layers attend only the indexer's top-k."""
        return self.sparse_attention_top_k > 0

    @property
    def indexer_params(self) -> int:
        """Lightning-indexer weights of one layer [parameters]: wq_b (q latent -> heads x
        dim), wk (hidden -> dim), its LayerNorm's weight and bias, weights_proj (hidden ->
        heads); 0 without sparse attention."""
        if not self.is_sparse_attention:
            return 0
        hd = self.indexer_heads * self.indexer_head_dim
        return ((self.q_lora_rank or self.hidden_size) * hd
                + self.hidden_size * (self.indexer_head_dim + self.indexer_heads)
                + 2 * self.indexer_head_dim)

    @property
    def window_layers(self) -> int:
        if not self.sliding_window_tokens:
            return 0
        return self.sliding_window_layers or self.attention_layers

    @property
    def ssm_inner(self) -> int:
        return self.ssm_expand * self.hidden_size

    @property
    def ssm_conv_channels(self) -> int:
        """Channels through the causal conv: x (and B, C for Mamba-2)."""
        if self.ssm_heads:
            return self.ssm_inner + 2 * self.ssm_groups * self.ssm_state_size
        return self.ssm_inner

    @property
    def dt_rank(self) -> int:
        return self.ssm_dt_rank or -(-self.hidden_size // 16)


def load_model(ref, base_dir: Path | None = None, source="<api>", key="model",
               extra: tuple = ()):
    """Load a model preset by bundled name or path (a ``Path`` is always a path)."""
    path = resolve_preset("models", ref, base_dir, source, key, extra)
    data, text = read_toml(path, "model preset (TOML)")
    return parse_model(data, str(path), text)


POSITION_EMBEDDINGS = ("rope", "learned")  # rotary in every attention layer / added once


def parse_model(data: dict, src: str, text: str = ""):
    """Validate a model preset given as a dict (its parsed TOML) read from ``src``."""
    allowed = {"name", "description", "tied_embeddings", "gated_ffn", "position_embedding",
               "published_params", "attention_output_gate",
               "published_active_params", "published_active_excludes_embedding",
               *_MODEL_INT_KEYS, *_MODEL_COUNT_KEYS,
               *_MODEL_OPTIONAL_INTS}
    _check_keys(data, allowed, ["name", "tied_embeddings", "gated_ffn", *_MODEL_INT_KEYS,
                                *_MODEL_COUNT_KEYS], src)
    ints = {k: _positive_int(data, k, src) for k in _MODEL_INT_KEYS}
    for k in _MODEL_COUNT_KEYS:
        v = data[k]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_PRESET_INT:
            _fail(src, k, v, f"must be a non-negative integer (at most {MAX_PRESET_INT:,})")
        ints[k] = v
    opt = {k: _positive_int(data, k, src) for k in _MODEL_OPTIONAL_INTS if k in data}
    experts, top_k = opt.get("experts", 0), opt.get("experts_per_token", 0)
    if (experts > 0) != (top_k > 0):
        _fail(src, "experts_per_token", data.get("experts_per_token"),
              "experts and experts_per_token must be given together")
    if top_k > experts:
        _fail(src, "experts_per_token", top_k, f"must not exceed experts = {experts}")
    ssm = opt.get("ssm_layers", 0)
    if ssm > ints["layers"]:
        _fail(src, "ssm_layers", ssm, f"must not exceed layers = {ints['layers']}")
    if ssm and "ssm_state_size" not in opt:
        _fail(src, "ssm_layers", ssm, "state-space layers need ssm_state_size")
    # Gated DeltaNet layers need all of their head counts and widths
    linear = opt.get("linear_attention_layers", 0)
    linear_keys = ("linear_key_heads", "linear_value_heads", "linear_key_head_dim",
                   "linear_value_head_dim")
    if ssm + linear > ints["layers"]:
        _fail(src, "linear_attention_layers", linear, "with ssm_layers must not exceed "
              f"layers = {ints['layers']}")
    given = [k for k in linear_keys if k in opt]
    if linear and len(given) != len(linear_keys):
        missing = [k for k in linear_keys if k not in opt]
        _fail(src, "linear_attention_layers", linear,
              f"linear-attention layers also need {', '.join(missing)}")
    for k in (*given, "linear_conv_kernel"):
        if k in opt and not linear:
            _fail(src, k, opt[k], "needs linear_attention_layers")
    if linear and opt["linear_value_heads"] % opt["linear_key_heads"]:
        _fail(src, "linear_value_heads", opt["linear_value_heads"],
              f"must be a multiple of linear_key_heads = {opt['linear_key_heads']}")
    gate = _bool(data, "attention_output_gate", src) if "attention_output_gate" in data else False
    if gate and ssm + linear >= ints["layers"]:
        _fail(src, "attention_output_gate", gate, "needs attention layers")
    if gate and "kv_lora_rank" in opt:
        _fail(src, "attention_output_gate", gate, "not with multi-head latent attention")
    if ssm + linear < ints["layers"]:  # some layers attend
        for k in ("heads", "kv_heads", "head_dim"):
            if ints[k] <= 0:
                _fail(src, k, ints[k], "must be positive for a model with attention layers")
        if ints["heads"] % ints["kv_heads"]:
            _fail(src, "kv_heads", ints["kv_heads"], f"must divide heads = {ints['heads']}")
    if ints["ffn_dim"] == 0 and "dense_layers" in opt:
        _fail(src, "dense_layers", opt["dense_layers"], "needs ffn_dim > 0")
    for k in ("dense_layers", "sliding_window_layers"):
        if opt.get(k, 0) > ints["layers"]:
            _fail(src, k, opt[k], f"must not exceed layers = {ints['layers']}")
    if "dense_layers" in opt and not experts:
        _fail(src, "dense_layers", opt["dense_layers"], "only for MoE models (set experts)")
    if "sliding_window_layers" in opt and "sliding_window_tokens" not in opt:
        _fail(src, "sliding_window_layers", opt["sliding_window_layers"],
              "needs sliding_window_tokens")
    position = data.get("position_embedding", "rope")
    if position not in POSITION_EMBEDDINGS:
        _fail(src, "position_embedding", position, f"valid: {', '.join(POSITION_EMBEDDINGS)}")
    mla = [k for k in _MLA_KEYS if k in opt]
    if mla and len(mla) != len(_MLA_KEYS):
        missing = sorted(set(_MLA_KEYS) - set(mla))
        _fail(src, mla[0], opt[mla[0]], f"multi-head latent attention also needs {', '.join(missing)}")
    sparse = [k for k in _SPARSE_KEYS if k in opt]
    if sparse and len(sparse) != len(_SPARSE_KEYS):
        missing = [k for k in _SPARSE_KEYS if k not in opt]
        _fail(src, sparse[0], opt[sparse[0]], f"sparse attention also needs {', '.join(missing)}")
    if sparse and not mla:  # DSA is built on MLA (DeepSeek-V3.2, GLM-5)
        _fail(src, sparse[0], opt[sparse[0]], "sparse attention needs multi-head latent "
              "attention (kv_lora_rank, ...)")
    if sparse and "sliding_window_tokens" in opt:  # the kernels take one window per model
        _fail(src, "sparse_attention_top_k", opt["sparse_attention_top_k"],
              "not with sliding_window_tokens")
    return Model(
        name=check_preset_name(data["name"], src),
        description=_string(data, "description", src) if "description" in data else "",
        tied_embeddings=_bool(data, "tied_embeddings", src),
        gated_ffn=_bool(data, "gated_ffn", src),
        position_embedding=position,
        attention_output_gate=gate,
        published_params=(_positive_float(data, "published_params", src)
                          if "published_params" in data else 0.0),
        published_active_params=(_positive_float(data, "published_active_params", src)
                                 if "published_active_params" in data else 0.0),
        published_active_excludes_embedding=(
            _bool(data, "published_active_excludes_embedding", src)
            if "published_active_excludes_embedding" in data else False),
        source=src, text=text, **ints, **opt,
    )


# --------------------------------------------------------------------------- sweep spec
# Axes, their defaults and rules come from the registry (dse.axes); these views keep the
# names the rest of the package and users' code import.
GRID_DEFAULTS = {a.name: list(a.default) for a in AXES if a.section == "grid"}
WHAT_IF_AXES = names(section="what_if")
INT_AXIS_MAX = {a.name: a.bound for a in AXES if a.kind == "int"}
CONSTRAINT_KEYS = ("max_devices", "max_ttft_s", "max_tpot_s")


def int_axis_problem(key: str, value) -> str | None:
    """Why ``value`` is not valid on the integer axis ``key`` (None: it is)."""
    return AXIS[key].problem(value)


@dataclass(frozen=True)
class Constraints:
    """Deployment limits applied when picking the best strategy (None: no limit)."""
    max_devices: int | None = None
    max_ttft_s: float | None = None
    max_tpot_s: float | None = None


# [disaggregated]: its keys, and the most instances of one pool a pairing may use
DISAGGREGATED_KEYS = ("mixed_hardware", "max_instances")
MAX_POOL_INSTANCES = 1024


@dataclass(frozen=True)
class Disaggregation:
    """The ``[disaggregated]`` section: pair prefill-pool and decode-pool points
    (:mod:`dse.disaggregate`). ``mixed_hardware``: the pools may use different hardware
    presets; ``max_instances``: the most instances of either pool in one pairing."""
    mixed_hardware: bool = False
    max_instances: int = 16


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: axis values, resolved presets, constraints and provenance."""
    grid: dict                      # axis name -> tuple of values (spec order)
    what_if: dict                   # what-if axis -> tuple of floats
    constraints: Constraints
    hardware: tuple                 # Hardware per grid["hardware"] entry
    models: tuple                   # Model per grid["model"] entry
    engines: tuple = ()             # Engine per grid["engine"] entry
    quants: tuple = ()              # Quant (precision recipe) per grid["quant"] entry
    drafts: tuple = (None,)         # draft Model (None: "none") per grid["draft_model"] entry
    disaggregated: Disaggregation | None = None  # the [disaggregated] section, if given
    objectives: "Objectives" = None  # the [objectives] section (dse.objectives; defaults)
    source: str = "<api>"
    text: str = ""                  # the spec as written, for Parquet metadata
    preset_texts: dict = field(default_factory=dict)  # preset file -> its text

    def __post_init__(self):
        if self.objectives is None:
            from .objectives import Objectives
            object.__setattr__(self, "objectives", Objectives())

    def n_configs(self) -> int:
        n = 1
        for values in (*self.grid.values(), *self.what_if.values()):
            n *= len(values)
        return n


def _axis(section: dict, key: str, source: str, prefix: str):
    raw = section[key]
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        _fail(source, prefix + key, raw, "empty axis; give at least one value")
    seen = set()
    for v in values:
        if isinstance(v, (list, dict)):
            _fail(source, prefix + key, raw, "values must be scalars")
        # by value (1 and 1.0 are one scale), but true is not 1 (and is refused later)
        same = (bool, v) if isinstance(v, bool) else v
        if same in seen:
            _fail(source, prefix + key, raw, f"duplicate value {shown(v)}")
        seen.add(same)
    return values


def parse_sweep(data, source: str = "<api>", base_dir: Path | None = None,
                text: str = "") -> SweepSpec:
    """Validate a sweep spec given as a dict (the parsed TOML), as TOML text, or as the path
    of a spec file (a ``Path``, or a string naming an existing ``.toml`` file: as
    :func:`load_sweep`)."""
    if isinstance(data, Path) or (isinstance(data, str) and data.strip().endswith(".toml")
                                  and "\n" not in data and "=" not in data):
        return load_sweep(data)
    if isinstance(data, str):
        text = data
        data = parse_toml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep spec is a dict, TOML text or a path to a .toml "
                          f"file, not {type(data).__name__}")
    _check_keys(data, {"grid", "what_if", "constraints", "disaggregated", "cost",
                       "objectives"}, [], source)
    for sec in ("grid", "what_if", "constraints", "disaggregated", "cost", "objectives"):
        if sec in data and not isinstance(data[sec], dict):
            _fail(source, sec, data[sec], "must be a table, e.g. [" + sec + "]")
    grid_in, wi_in = data.get("grid", {}), data.get("what_if", {})
    _check_keys(grid_in, GRID_DEFAULTS.keys(), [], source, "grid")
    _check_keys(wi_in, WHAT_IF_AXES, [], source, "what_if")
    grid, what_if = {}, {}
    for axis in AXES:
        given = grid_in if axis.section == "grid" else wi_in
        prefix = f"[{axis.section}] "
        values = _axis(given, axis.name, source, prefix) if axis.name in given \
            else list(axis.default)
        for v in values:
            problem = axis.problem(v)
            if problem:
                _fail(source, prefix + axis.name, v, problem)
        if axis.section == "grid":
            grid[axis.name] = tuple(values)
        else:
            what_if[axis.name] = tuple(float(v) for v in values)

    c_in = data.get("constraints", {})
    _check_keys(c_in, CONSTRAINT_KEYS, [], source, "constraints")
    cons = Constraints(
        max_devices=_positive_int(c_in, "max_devices", f"{source}: [constraints]", MAX_DEVICES)
        if "max_devices" in c_in else None,
        max_ttft_s=_positive_float(c_in, "max_ttft_s", f"{source}: [constraints]")
        if "max_ttft_s" in c_in else None,
        max_tpot_s=_positive_float(c_in, "max_tpot_s", f"{source}: [constraints]")
        if "max_tpot_s" in c_in else None,
    )
    disaggregated = (_disaggregation(data["disaggregated"], grid, source)
                     if "disaggregated" in data else None)
    from .objectives import parse_objectives
    objectives = parse_objectives(data.get("objectives", {}), source)
    hardware = tuple(load_hardware(r, base_dir, source, "[grid] hardware") for r in grid["hardware"])
    if "cost" in data:
        hardware = apply_cost(hardware, data["cost"], source)
    models = tuple(load_model(r, base_dir, source, "[grid] model") for r in grid["model"])
    from .engines import load_engine
    from .quant import load_quant
    engines = tuple(load_engine(r, base_dir, source, "[grid] engine") for r in grid["engine"])
    quants = tuple(load_quant(r, base_dir, source, "[grid] quant") for r in grid["quant"])
    drafts = tuple(None if r == "none" else load_model(r, base_dir, source, "[grid] draft_model",
                                                          ("none",))
                   for r in grid["draft_model"])
    for kind, presets in (("hardware", hardware), ("model", models), ("engine", engines),
                          ("quant", quants),
                          ("draft_model", [d for d in drafts if d is not None])):
        names = [p.name for p in presets]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            _fail(source, f"[grid] {kind}", grid[kind], f"two entries load preset {sorted(dup)[0]!r}")
    preset_texts = {p.source: p.text for p in (*hardware, *models, *engines, *quants,
                                                *(d for d in drafts if d is not None))}
    return SweepSpec(grid=grid, what_if=what_if, constraints=cons, hardware=hardware,
                     models=models, engines=engines, quants=quants, drafts=drafts,
                     disaggregated=disaggregated, objectives=objectives,
                     source=source, text=text, preset_texts=preset_texts)


def _disaggregation(section: dict, grid: dict, source: str) -> Disaggregation:
    """The validated ``[disaggregated]`` section. The pools' points are static-batch passes
    (a prefill pass of ``batch`` prompts, a decode step of ``batch`` sequences), so the
    grid's serving modes must include "static"."""
    where = f"{source}: [disaggregated]"
    _check_keys(section, DISAGGREGATED_KEYS, [], source, "disaggregated")
    out = Disaggregation(
        mixed_hardware=_bool(section, "mixed_hardware", where)
        if "mixed_hardware" in section else False,
        max_instances=_positive_int(section, "max_instances", where, MAX_POOL_INSTANCES)
        if "max_instances" in section else 16)
    if "static" not in grid["serving"]:
        _fail(source, "[grid] serving", list(grid["serving"]),
              "[disaggregated] prices each pool with static-batch passes (a prefill pass of "
              "batch prompts, a decode step of batch sequences): add \"static\", e.g. "
              "serving = [\"continuous\", \"static\"]")
    return out


# --------------------------------------------------------------------------- [cost]
# [cost.<hardware preset name>]: either the rent, or the cost of owning the device.
COST_RENT_KEYS = ("price_per_device_hour_usd",)
COST_OWN_KEYS = ("purchase_usd", "amortization_years", "power_usd_per_kwh", "pue")
COST_OPTIONAL_KEYS = ("hosting_usd_per_hour",)
COST_KEYS = (*COST_RENT_KEYS, *COST_OWN_KEYS, *COST_OPTIONAL_KEYS)
HOURS_PER_YEAR = 8760.0
# upper bounds that catch unit slips (cents for dollars, months for years) while allowing
# any real deployment
COST_UPPER = {"price_per_device_hour_usd": 1e4, "purchase_usd": 1e8, "amortization_years": 50.0,
              "power_usd_per_kwh": 10.0, "pue": 5.0, "hosting_usd_per_hour": 1e4}


def owned_hourly_usd(purchase_usd: float, amortization_years: float, tdp_watts: float,
                     power_usd_per_kwh: float, pue: float,
                     hosting_usd_per_hour: float = 0.0) -> float:
    """The hourly cost [USD/device-h] of owning a device:

    purchase_usd / (amortization_years * 8760) + tdp_watts / 1000 * pue * power_usd_per_kwh
    + hosting_usd_per_hour

    Straight-line depreciation to zero over the years, no interest or resale value; the
    device draws its TDP every hour of the year (an upper bound: a serving fleet is billed
    for capacity, busy or not), times the facility's power usage effectiveness.
    """
    return (purchase_usd / (amortization_years * HOURS_PER_YEAR)
            + tdp_watts / 1000.0 * pue * power_usd_per_kwh + hosting_usd_per_hour)


def apply_cost(hardware: tuple, section: dict, source: str) -> tuple:
    """``hardware`` with the ``[cost]`` section's price per device-hour in place of the
    presets' own: ``[cost.<preset name>]`` gives ``price_per_device_hour_usd``, or
    ``purchase_usd``, ``amortization_years``, ``power_usd_per_kwh`` and ``pue`` (and
    optionally ``hosting_usd_per_hour``), priced by :func:`owned_hourly_usd`."""
    from dataclasses import replace
    by_name = {h.name: h for h in hardware}
    valid = f"valid: a table per hardware preset of [grid] hardware ({', '.join(by_name)})"
    prices = {}
    for name, table in section.items():
        key = f"[cost] {name if len(name) <= MAX_SHOWN_CHARS else shown(name)}"
        if name not in by_name:
            _fail(source, key, table, f"not a hardware preset of this sweep"
                  f"{did_you_mean(name, sorted(by_name))}; {valid}")
        if not isinstance(table, dict):
            _fail(source, key, table, f"must be a table, e.g. [cost.{name}] with "
                  "price_per_device_hour_usd = 2.5")
        where = f"cost.{name}"
        _check_keys(table, COST_KEYS, [], source, where)
        rent = [k for k in COST_RENT_KEYS if k in table]
        own = [k for k in COST_OWN_KEYS if k in table]
        if rent and (own or "hosting_usd_per_hour" in table):
            extra = (own or ["hosting_usd_per_hour"])[0]
            _fail(source, f"[{where}] {extra}", table[extra], "give either "
                  "price_per_device_hour_usd, or purchase_usd, amortization_years, "
                  "power_usd_per_kwh and pue (an owned device's price), not both")
        if not rent and len(own) < len(COST_OWN_KEYS):
            missing = [k for k in COST_OWN_KEYS if k not in table]
            raise ConfigError(f"{source}: [{where}] {missing[0]}: missing required key; give "
                              "price_per_device_hour_usd, or all of "
                              f"{', '.join(COST_OWN_KEYS)}")
        v = {}
        for k in table:
            v[k] = _positive_float(table, k, f"{source}: [{where}]", COST_UPPER[k])
        if "pue" in v and v["pue"] < 1.0:
            _fail(f"{source}: [{where}]", "pue", table["pue"], "must be at least 1 (facility "
                  "power / IT power; 1.1-1.6 is typical)")
        if rent:
            prices[name] = v["price_per_device_hour_usd"]
            continue
        hw = by_name[name]
        if hw.tdp_watts <= 0:
            _fail(source, f"[{where}] purchase_usd", table["purchase_usd"],
                  f"the power term needs tdp_watts, which preset {name!r} ({hw.source}) "
                  "lacks; add it there or give price_per_device_hour_usd")
        prices[name] = owned_hourly_usd(v["purchase_usd"], v["amortization_years"],
                                        hw.tdp_watts, v["power_usd_per_kwh"], v["pue"],
                                        v.get("hosting_usd_per_hour", 0.0))
    return tuple(replace(h, price_per_device_hour_usd=prices[h.name]) if h.name in prices
                 else h for h in hardware)


def load_sweep(path: str | Path | None = None) -> SweepSpec:
    """Load a sweep spec file; ``None`` loads the bundled default sweep."""
    path = Path(path) if path is not None else bundled_dir("sweeps") / "default.toml"
    data, text = read_toml(path, "sweep spec (TOML)")
    return parse_sweep(data, source=str(path), base_dir=path.parent, text=text)
