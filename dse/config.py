"""Load and validate presets and sweep specs: TOML in, frozen dataclasses out.

Every input problem raises :class:`ConfigError` with one line that names the file, the key,
the value and what would be valid. Presets are found by name among the bundled files
(``dse/configs``) or by path (absolute, or relative to the sweep spec / working directory).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .kernels.layout import DTYPE_FALLBACK, DTYPES


class ConfigError(ValueError):
    """Invalid user input: the message is one line naming file, key, value and remedy."""


def _fail(source, key, value, problem):
    raise ConfigError(f"{source}: {key} = {value!r}: {problem}")


# --------------------------------------------------------------------------- file access
def bundled_dir(kind: str) -> Path:
    """Folder of the bundled presets of one kind (``hardware``, ``models``, ``sweeps``)."""
    return Path(str(resources.files("dse.configs").joinpath(kind)))


def bundled_names(kind: str) -> list[str]:
    return sorted(p.stem for p in bundled_dir(kind).glob("*.toml"))


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def resolve_preset(kind: str, ref: str, base_dir: Path | None = None,
                   source: str = "<api>", key: str = "") -> Path:
    """Path of a preset given by bundled name or by file path."""
    if not isinstance(ref, str) or not ref:
        _fail(source, key, ref, "expected a preset name or a path to a .toml file")
    looks_like_path = ref.endswith(".toml") or "/" in ref or "\\" in ref
    if looks_like_path:
        candidates = [Path(ref)]
        if base_dir is not None and not Path(ref).is_absolute():
            candidates.insert(0, base_dir / ref)
        for cand in candidates:
            if cand.is_file():
                return cand
        _fail(source, key, ref, "preset file not found")
    path = bundled_dir(kind) / f"{ref}.toml"
    if not path.is_file():
        _fail(source, key, ref, f"unknown {kind} preset; valid: {', '.join(bundled_names(kind))}"
              " (or a path to a .toml file)")
    return path


# --------------------------------------------------------------------------- field checks
def _check_keys(data: dict, allowed, required, source, section=""):
    prefix = f"[{section}] " if section else ""
    for key in data:
        if key not in allowed:
            _fail(source, prefix + key, data[key],
                  f"unknown key; valid keys: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in data:
            raise ConfigError(f"{source}: {prefix}{key}: missing required key")


def _positive_float(data, key, source, upper=None):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(source, key, value, "must be a positive number")
    if value <= 0 or (upper is not None and value > upper):
        rng = f"in (0, {upper}]" if upper is not None else "positive"
        _fail(source, key, value, f"must be {rng}")
    return float(value)


def _positive_int(data, key, source):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(source, key, value, "must be a positive integer")
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

    ``flops_per_s`` holds the dense peak per precision the chip has natively; :meth:`rate`
    applies the fallback to the next wider precision.
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
    tdp_watts: float = 0.0                  # 0: unknown
    price_per_device_hour_usd: float = 0.0  # 0: unknown (no cost column values)
    source: str = ""

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


def load_hardware(ref: str, base_dir: Path | None = None, source="<api>", key="hardware"):
    """Load a hardware preset by bundled name or path."""
    path = resolve_preset("hardware", ref, base_dir, source, key)
    data = read_toml(path)
    src = str(path)
    allowed = {"name", "description", "scaleup_domain_devices", "tdp_watts", "family",
               "kernel_latency_s",
               "price_per_device_hour_usd", *_HW_FLOAT_KEYS, *_HW_FRACTION_KEYS, *_HW_RATE_KEYS}
    _check_keys(data, allowed, ["name", "flops_per_s_fp32", "scaleup_domain_devices",
                                *_HW_FLOAT_KEYS, *_HW_FRACTION_KEYS], src)
    rates = {d: _positive_float(data, f"flops_per_s_{d}", src)
             for d in DTYPES if f"flops_per_s_{d}" in data}
    family = data.get("family", _guess_family(data.get("name", "")))
    if family not in FAMILY_KERNEL_LATENCY_S:
        _fail(src, "family", family, f"valid: {', '.join(FAMILY_KERNEL_LATENCY_S)}")
    latency = data.get("kernel_latency_s", FAMILY_KERNEL_LATENCY_S[family])
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency < 1:
        _fail(src, "kernel_latency_s", latency, "must be a number of seconds in [0, 1)")
    return Hardware(
        name=_string(data, "name", src),
        description=_string(data, "description", src) if "description" in data else "",
        flops_per_s=rates,
        scaleup_domain_devices=_positive_int(data, "scaleup_domain_devices", src),
        family=family, kernel_latency_s=float(latency),
        **{k: _positive_float(data, k, src) for k in _HW_FLOAT_KEYS},
        **{k: _positive_float(data, k, src, upper=1.0) for k in _HW_FRACTION_KEYS},
        **{k: _positive_float(data, k, src) for k in ("tdp_watts", "price_per_device_hour_usd")
           if k in data},
        source=src,
    )


# --------------------------------------------------------------------------- models
_MODEL_INT_KEYS = ("layers", "hidden_size", "vocab_size")
# may be 0: attention fields in an all-SSM model, ffn_dim in a model without an FFN
_MODEL_COUNT_KEYS = ("heads", "kv_heads", "head_dim", "ffn_dim")


_MODEL_OPTIONAL_INTS = ("experts", "experts_per_token", "moe_ffn_dim", "shared_experts",
                        "shared_expert_ffn_dim", "dense_layers", "sliding_window_tokens",
                        "sliding_window_layers", "kv_lora_rank", "q_lora_rank",
                        "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "ssm_layers",
                        "ssm_state_size", "ssm_expand", "ssm_heads", "ssm_groups",
                        "ssm_conv_kernel", "ssm_dt_rank")
_MLA_KEYS = ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


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
    published_params: float = 0.0
    published_active_params: float = 0.0
    published_active_excludes_embedding: bool = False  # the published active count omits it
    source: str = ""

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
        return self.layers - self.ssm_layers

    @property
    def ffn_layers(self) -> int:
        """Layers with an FFN (dense or MoE)."""
        return self.layers if (self.ffn_dim > 0 or self.is_moe) else 0

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


def load_model(ref: str, base_dir: Path | None = None, source="<api>", key="model"):
    """Load a model preset by bundled name or path."""
    path = resolve_preset("models", ref, base_dir, source, key)
    data = read_toml(path)
    src = str(path)
    allowed = {"name", "description", "tied_embeddings", "gated_ffn", "published_params",
               "published_active_params", "published_active_excludes_embedding",
               *_MODEL_INT_KEYS, *_MODEL_COUNT_KEYS,
               *_MODEL_OPTIONAL_INTS}
    _check_keys(data, allowed, ["name", "tied_embeddings", "gated_ffn", *_MODEL_INT_KEYS,
                                *_MODEL_COUNT_KEYS], src)
    ints = {k: _positive_int(data, k, src) for k in _MODEL_INT_KEYS}
    for k in _MODEL_COUNT_KEYS:
        v = data[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            _fail(src, k, v, "must be a non-negative integer")
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
    if ssm < ints["layers"]:  # some layers attend
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
    mla = [k for k in _MLA_KEYS if k in opt]
    if mla and len(mla) != len(_MLA_KEYS):
        missing = sorted(set(_MLA_KEYS) - set(mla))
        _fail(src, mla[0], opt[mla[0]], f"multi-head latent attention also needs {', '.join(missing)}")
    return Model(
        name=_string(data, "name", src),
        description=_string(data, "description", src) if "description" in data else "",
        tied_embeddings=_bool(data, "tied_embeddings", src),
        gated_ffn=_bool(data, "gated_ffn", src),
        published_params=(_positive_float(data, "published_params", src)
                          if "published_params" in data else 0.0),
        published_active_params=(_positive_float(data, "published_active_params", src)
                                 if "published_active_params" in data else 0.0),
        published_active_excludes_embedding=(
            _bool(data, "published_active_excludes_embedding", src)
            if "published_active_excludes_embedding" in data else False),
        source=src, **ints, **opt,
    )


# --------------------------------------------------------------------------- sweep spec
SAME = "same"  # dtype axis value meaning "the same as the previous precision"

GRID_DEFAULTS = {
    "hardware": ["h100_sxm"], "model": ["llama3_8b"], "batch": [1],
    "input_tokens": [1024], "output_tokens": [256], "tp": [1], "pp": [1], "ep": [1],
    "attention_dp": [1],
    "dp": [1], "weight_dtype": ["bf16"], "act_dtype": [SAME], "kv_dtype": [SAME],
}
INT_AXES = ("batch", "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp", "dp")
DTYPE_AXES = ("weight_dtype", "act_dtype", "kv_dtype")
WHAT_IF_AXES = ("compute_scale", "memory_bandwidth_scale", "scaleup_bandwidth_scale",
                "scaleout_bandwidth_scale", "memory_capacity_scale")
CONSTRAINT_KEYS = ("max_devices", "max_ttft_s", "max_tpot_s")


@dataclass(frozen=True)
class Constraints:
    """Deployment limits applied when picking the best strategy (None: no limit)."""
    max_devices: int | None = None
    max_ttft_s: float | None = None
    max_tpot_s: float | None = None


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: axis values, resolved presets, constraints and provenance."""
    grid: dict                      # axis name -> tuple of values (spec order)
    what_if: dict                   # what-if axis -> tuple of floats
    constraints: Constraints
    hardware: tuple                 # Hardware per grid["hardware"] entry
    models: tuple                   # Model per grid["model"] entry
    source: str = "<api>"
    text: str = ""                  # the spec as written, for Parquet metadata
    preset_texts: dict = field(default_factory=dict)  # preset file -> its text

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
        if (type(v), v) in seen:  # typed: 1 and true are different (and true is invalid)
            _fail(source, prefix + key, raw, f"duplicate value {v!r}")
        seen.add((type(v), v))
    return values


def parse_sweep(data: dict, source: str = "<api>", base_dir: Path | None = None,
                text: str = "") -> SweepSpec:
    """Validate a sweep spec given as a dict (the parsed TOML)."""
    _check_keys(data, {"grid", "what_if", "constraints"}, [], source)
    for sec in ("grid", "what_if", "constraints"):
        if sec in data and not isinstance(data[sec], dict):
            _fail(source, sec, data[sec], "must be a table, e.g. [" + sec + "]")
    grid_in = data.get("grid", {})
    _check_keys(grid_in, GRID_DEFAULTS.keys(), [], source, "grid")
    grid = {}
    for key, default in GRID_DEFAULTS.items():
        values = _axis(grid_in, key, source, "[grid] ") if key in grid_in else list(default)
        if key in INT_AXES:
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    _fail(source, f"[grid] {key}", v, "must be a positive integer")
        elif key in DTYPE_AXES:
            valid = DTYPES if key == "weight_dtype" else (*DTYPES, SAME)
            for v in values:
                if v not in valid:
                    _fail(source, f"[grid] {key}", v, f"unknown precision; valid: {', '.join(valid)}")
        else:
            for v in values:
                if not isinstance(v, str):
                    _fail(source, f"[grid] {key}", v, "must be a preset name or a path")
        grid[key] = tuple(values)

    wi_in = data.get("what_if", {})
    _check_keys(wi_in, WHAT_IF_AXES, [], source, "what_if")
    what_if = {}
    for key in WHAT_IF_AXES:
        values = _axis(wi_in, key, source, "[what_if] ") if key in wi_in else [1.0]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                _fail(source, f"[what_if] {key}", v, "must be a finite number (a scale factor)")
        what_if[key] = tuple(float(v) for v in values)

    c_in = data.get("constraints", {})
    _check_keys(c_in, CONSTRAINT_KEYS, [], source, "constraints")
    cons = Constraints(
        max_devices=_positive_int(c_in, "max_devices", f"{source}: [constraints]")
        if "max_devices" in c_in else None,
        max_ttft_s=_positive_float(c_in, "max_ttft_s", f"{source}: [constraints]")
        if "max_ttft_s" in c_in else None,
        max_tpot_s=_positive_float(c_in, "max_tpot_s", f"{source}: [constraints]")
        if "max_tpot_s" in c_in else None,
    )
    hardware = tuple(load_hardware(r, base_dir, source, "[grid] hardware") for r in grid["hardware"])
    models = tuple(load_model(r, base_dir, source, "[grid] model") for r in grid["model"])
    for kind, presets in (("hardware", hardware), ("model", models)):
        names = [p.name for p in presets]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            _fail(source, f"[grid] {kind}", grid[kind], f"two entries load preset {sorted(dup)[0]!r}")
    preset_texts = {p.source: Path(p.source).read_text() for p in (*hardware, *models)}
    return SweepSpec(grid=grid, what_if=what_if, constraints=cons, hardware=hardware,
                     models=models, source=source, text=text, preset_texts=preset_texts)


def load_sweep(path: str | Path | None = None) -> SweepSpec:
    """Load a sweep spec file; ``None`` loads the bundled default sweep."""
    path = Path(path) if path is not None else bundled_dir("sweeps") / "default.toml"
    data = read_toml(path)
    return parse_sweep(data, source=str(path), base_dir=path.parent,
                       text=path.read_text())
