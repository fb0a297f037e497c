"""``dse recommend``: which hardware serves one model and workload within the SLOs at the
lowest cost per million tokens, with which strategy, and how many devices a request rate
needs.

It builds a sweep spec in memory (:func:`build_spec`: the hardware, a strategy grid the
model allows, the workload and the SLOs as ``[constraints]``), runs it with
:func:`dse.sweep.run_sweep` like ``dse sweep`` (frontiers and best tables only, no
``configurations/``) into the output folder, and ranks the rows of ``best.parquet``: one group per
hardware. Within one hardware the price per device-hour is a constant, so
cost per million tokens = price / (3600 · tokens/s per device) · 1e6 and the best row (the
most tokens/s per device meeting the constraints) is also the cheapest one; the tests check
that against a brute-force evaluation of the same grid.

Ranking: hardware with a price by cost per million tokens (ties: more tokens/s per device),
then hardware without a price by tokens/s per device, then hardware where nothing meets the
SLOs, with the reason (:func:`why_not`, from an in-memory evaluation of that hardware's
grid). For a target rate R: replicas = ceil(R / requests_per_s of one replica), devices =
replicas · devices per replica, cost per hour = devices · price.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .answer import _precision, _usd
from .errors import ConfigError, OutputError

FILE = "recommend.parquet"
DEFAULT_OUT = "recommend"
# the strategy grid (continuous serving, the engine's default token budget)
BATCHES = tuple(2 ** i for i in range(10))          # 1 .. 512 concurrent requests
TP = (1, 2, 4, 8)                                    # inside one 8-device node
PP = (1, 2, 4, 8)
ATTENTION_DP = (1, 2, 4, 8)                          # MoE models only
EP = (1, 2, 4, 8, 16, 32, 64)                        # MoE: those dividing the experts
# weight precisions tried (activations and KV cache the same); one a chip lacks native
# math for drops out for that chip (precision_not_supported)
DEFAULT_PRECISIONS = ("bf16", "fp8", "int8", "fp4")
# a rate's replicas: ceil(R / rate of one replica), with this relative slack so that a
# quotient of 2.0000000001 from rounding is 2 replicas
CEIL_SLACK = 1e-9
COLUMNS = (
    "rank", "hardware", "found", "cost_per_million_output_tokens", "tokens_per_s_per_device",
    "tokens_per_s_per_user", "ttft_s", "tpot_s", "e2e_latency_s",
    "requests_per_s_per_replica", "tp", "pp", "ep", "attention_dp", "batch",
    "weight_dtype", "act_dtype", "kv_dtype", "devices_per_replica", "replicas", "devices",
    "price_per_device_hour_usd", "cost_per_hour_usd", "energy_per_token_j", "bound",
    "edge_axes", "reason", "model", "input_tokens", "output_tokens", "serving", "engine")
# recommend.parquet's own columns: name -> (unit, description) (the others are the
# results table's axes and metrics)
COLUMN_DOCS = {
    "rank": ("count", "1 = the cheapest hardware within the constraints (priced hardware by "
             "cost, then unpriced by tokens/s per device, then hardware where nothing "
             "qualifies)"),
    "found": ("", "a configuration of this hardware meets the constraints (false: the "
              "strategy and metric columns are null and reason says why)"),
    "requests_per_s_per_replica": ("requests/s", "requests_per_s of one replica"),
    "devices_per_replica": ("devices", "tp * attention_dp * pp * cp * dp of the pick"),
    "replicas": ("count", "replicas the request rate needs: ceil(requests_per_s / "
                 "requests_per_s_per_replica); 1 without a rate"),
    "devices": ("devices", "replicas * devices_per_replica"),
    "price_per_device_hour_usd": ("USD per device-hour", "the price behind the cost"),
    "cost_per_hour_usd": ("USD per hour", "devices * price_per_device_hour_usd"),
    "edge_axes": ("", "the strategy axes whose swept range the pick sits at the end of "
                  "(axis=max or axis=min), comma-separated; null when none"),
    "reason": ("", "why nothing qualifies on this hardware; null where found"),
}
INT_COLUMNS = ("tp", "pp", "ep", "attention_dp", "batch", "devices_per_replica", "replicas",
               "devices")
# strategy axes whose swept range a pick may sit at the end of (edge_axes)
EDGE_AXES = ("tp", "pp", "ep", "attention_dp", "batch")
# group axes other than hardware: one value each (a recommendation is for one workload)
SINGLE = ("model", "input_tokens", "output_tokens", "serving", "engine")


def default_hardware() -> list[str]:
    """The bundled accelerator presets with a price (no CPUs), in bundled order."""
    from .config import bundled_names, load_hardware
    out = []
    for name in bundled_names("hardware"):
        h = load_hardware(name)
        if h.family != "cpu" and h.price_per_device_hour_usd > 0:
            out.append(name)
    return out


def _positive(value, key: str, integer: bool = False):
    """``value`` if it is a positive finite number (an integer where ``integer``)."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or \
        (integer and not isinstance(value, int)) or not math.isfinite(value) or value <= 0
    if bad:
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{key} {value!r}: expected {what}")
    return value


def _strategy_axes(model, precisions) -> dict:
    """The strategy axes for ``model``: tp and pp values its layers and heads allow, ep and
    attention_dp for MoE models (1 for dense ones), batch 1..512, the weight precisions."""
    import numpy as np
    from .evaluate import structural_reasons
    one = np.array([1])
    tp = [t for t in TP if structural_reasons([model], np.array([t]), one, one, one).max() == 0]
    pp = [p for p in PP if p <= model.layers]
    axes = {"tp": tp or [1], "pp": pp, "batch": list(BATCHES),
            "weight_dtype": list(precisions)}
    if model.is_moe:
        axes["ep"] = [e for e in EP if model.experts % e == 0
                      and e <= max(TP) * max(ATTENTION_DP)]
        axes["attention_dp"] = list(ATTENTION_DP)
    return axes


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _spec_text(data: dict, header: str) -> str:
    """The spec ``data`` as TOML text (for the files' metadata: a file explains itself).
    JSON strings, numbers, booleans and arrays of them are valid TOML; a table in a table
    (``[cost.h100_sxm]``) becomes a sub-table."""
    lines = [f"# {line}" for line in header.splitlines()]

    def table(path: str, values: dict) -> None:
        lines.extend(["", f"[{path}]"])
        lines.extend(f"{_toml_key(k)} = {json.dumps(v)}" for k, v in values.items()
                     if not isinstance(v, dict))
        for k, v in values.items():
            if isinstance(v, dict):
                table(f"{path}.{_toml_key(k)}", v)
    for section, values in data.items():
        table(_toml_key(section), values)
    return "\n".join(lines) + "\n"


def build_spec(model: str | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None, max_ttft_s: float | None = None,
               max_tpot_s: float | None = None, hardware=None, precisions=None,
               engine: str | None = None, max_devices: int | None = None,
               spec: str | Path | None = None, flags: bool = False):
    """The sweep spec ``dse recommend`` runs: a :class:`dse.config.SweepSpec` built from a
    dict with :func:`dse.config.parse_sweep` (the same checks as a spec file).

    Without ``spec``: hardware (default :func:`default_hardware`) × the model's strategy
    grid (:func:`_strategy_axes`) × the workload, continuous serving with ``engine``
    (default vllm), ``[constraints]`` from the SLOs. With ``spec`` (a TOML file): its
    sections as the base, the strategy grid for the axes its ``[grid]`` leaves unset; the
    arguments given replace its keys, and every group axis but hardware (model, workload,
    serving, engine, what-ifs) must then have one value.
    ``flags``: name the options as command-line flags in messages.
    """
    import copy
    from .axes import AXIS
    from .config import DTYPES, load_hardware, load_model, parse_sweep, read_toml
    name = (lambda k: "--" + k.replace("_", "-")) if flags else (lambda k: k)
    source = "command line" if flags else "<api>"
    base, base_dir, header = {}, None, "dse recommend: a sweep spec built in memory"
    if spec is not None:
        path = Path(spec)
        base, _ = read_toml(path, "sweep spec (TOML)")
        base, base_dir = copy.deepcopy(base), path.parent
        header = f"dse recommend: the sweep spec {path} with the command's options"
    if "objectives" in base:
        raise ConfigError(f"{spec}: [objectives]: dse recommend keeps per hardware the most "
                          "tokens/s per device meeting the constraints (the lowest cost per "
                          "million tokens at a fixed price); remove the section")
    grid = base.setdefault("grid", {})
    if not isinstance(grid, dict):
        parse_sweep(base, str(spec), base_dir)  # its one-line message
    for key, value in (("model", model), ("input_tokens", input_tokens),
                       ("output_tokens", output_tokens)):
        if value is None:
            if key not in grid:
                raise ConfigError(f"{name(key)}: missing; give the "
                                  f"{key.replace('_', ' ')} to recommend for")
            continue
        if key == "model":
            load_model(value, source=source, key=name(key))
        else:
            problem = AXIS[key].problem(value) if not isinstance(value, bool) else \
                "must be an integer"
            if problem:
                raise ConfigError(f"{name(key)} {value!r}: {problem}")
        grid[key] = [value]
    for key, value in (("max_ttft_s", max_ttft_s), ("max_tpot_s", max_tpot_s)):
        if value is not None:
            base.setdefault("constraints", {})[key] = float(_positive(value, name(key)))
    if max_devices is not None:
        base.setdefault("constraints", {})["max_devices"] = _positive(
            max_devices, name("max_devices"), integer=True)
    if hardware is not None:
        hardware = [hardware] if isinstance(hardware, str) else list(hardware)
        if not hardware:
            raise ConfigError(f"{name('hardware')}: empty; give one or more hardware presets")
        for h in hardware:
            load_hardware(h, source=source, key=name("hardware"))
        grid["hardware"] = hardware
    elif "hardware" not in grid:
        grid["hardware"] = default_hardware()
    if engine is not None:
        from .engines import load_engine
        load_engine(engine, source=source, key=name("engine"))
        grid["engine"] = [engine]
    if precisions is not None:
        precisions = [precisions] if isinstance(precisions, str) else list(precisions)
        if not precisions:
            raise ConfigError(f"{name('precisions')}: empty; give one or more of "
                              f"{', '.join(DTYPES)}")
        for p in precisions:
            if p not in DTYPES:
                raise ConfigError(f"{name('precisions')} {p!r}: not a precision; valid: "
                                  f"{', '.join(DTYPES)}")
        if len(set(precisions)) != len(precisions):
            raise ConfigError(f"{name('precisions')} {','.join(precisions)}: a precision "
                              "is named twice")
    # the strategy grid for the model, for every strategy axis a --spec base leaves unset
    first = grid["model"][0] if isinstance(grid["model"], list) and grid["model"] \
        else grid["model"]
    m = load_model(first, base_dir, source if spec is None else str(spec),
                   name("model") if spec is None or model is not None else "[grid] model")
    for key, values in _strategy_axes(m, precisions or DEFAULT_PRECISIONS).items():
        if key not in grid or (key == "weight_dtype" and precisions is not None):
            grid[key] = values
    parsed = parse_sweep(base, str(spec) if spec is not None else "dse recommend", base_dir,
                         text=_spec_text(base, header))
    for key in SINGLE:
        if len(parsed.grid[key]) > 1:
            fix = name(key) if key != "serving" else "one value"
            raise ConfigError(f"{spec}: [grid] {key} has {len(parsed.grid[key])} values; a "
                              f"recommendation is for one model and workload: give {fix}")
    for key, values in parsed.what_if.items():
        if len(values) > 1:
            raise ConfigError(f"{spec}: [what_if] {key} has {len(values)} values; a "
                              "recommendation ranks hardware for one variant: give one")
    return parsed


def _ceil_div(rate: float, per_replica: float) -> int:
    return max(1, math.ceil(rate / per_replica * (1 - CEIL_SLACK)))


def _devices(n: int) -> str:
    return f"{n} device{'s' if n != 1 else ''}"


def _seconds(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


def why_not(spec, names) -> dict:
    """Why no configuration of each hardware in ``names`` meets the constraints: from an
    in-memory evaluation of that hardware's grid. Structural reasons (a tp the heads do not
    allow, ...) and precisions the chip lacks are the grid's, not the hardware's, and are
    left out; then, if no point is feasible, the most common reason (out_of_memory); else the
    constraint no feasible point meets, with the best value any reaches, or that none meets
    them together."""
    import dataclasses
    import numpy as np
    import xarray as xr
    from .evaluate import REASON_CODE, REASONS, derive, evaluate
    sub = dataclasses.replace(spec, grid={**spec.grid, "hardware": tuple(h.name for h in
                                                                          spec.hardware
                                                                          if h.name in names)},
                              hardware=tuple(h for h in spec.hardware if h.name in names))
    ds = evaluate(sub)
    m = derive(ds)
    reason, ttft, tpot, devices = xr.broadcast(m["reason"], ds["ttft_s"], ds["tpot_s"],
                                               m["devices"])
    structural = [REASON_CODE[r] for r in REASONS[1:] if r not in
                  ("what_if_scale_not_positive", "precision_not_supported", "out_of_memory")]
    cons = spec.constraints
    out = {}
    for name in names:
        r = reason.sel(hardware=name).values.ravel()
        t1 = ttft.sel(hardware=name).values.ravel()
        t2 = tpot.sel(hardware=name).values.ravel()
        dev = devices.sel(hardware=name).values.ravel()
        ok = r == 0
        if not ok.any():
            # the grid's own artifacts (a tp the heads do not allow, a precision this chip
            # lacks) say nothing about the chip unless they are all there is
            runnable = ~np.isin(r, [*structural, REASON_CODE["precision_not_supported"]])
            if runnable.any():
                codes, counts = np.unique(r[runnable], return_counts=True)
                share = counts.max() / counts.sum()
                out[name] = (f"{REASONS[int(codes[np.argmax(counts)])]} ({share:.0%} of the "
                             "configurations in its native precisions)")
            elif not np.isin(r, structural).all():
                out[name] = ("precision_not_supported (no native math in "
                             f"{', '.join(dict.fromkeys(spec.grid['weight_dtype']))})")
            else:
                codes, counts = np.unique(r, return_counts=True)
                out[name] = f"{REASONS[int(codes[np.argmax(counts)])]} (every configuration)"
            continue
        checks = []  # (meets, label, what no point meets, the best any feasible reaches)
        if cons.max_devices is not None:
            checks.append((dev <= cons.max_devices, "max devices",
                           f"more than {_devices(cons.max_devices)}",
                           f"fewest {int(dev[ok].min())}"))
        if cons.max_ttft_s is not None:
            checks.append((t1 <= cons.max_ttft_s, "TTFT", f"TTFT > {_seconds(cons.max_ttft_s)}",
                           f"best {_seconds(float(t1[ok].min()))}"))
        if cons.max_tpot_s is not None:
            checks.append((t2 <= cons.max_tpot_s, "TPOT", f"TPOT > {_seconds(cons.max_tpot_s)}",
                           f"best {_seconds(float(t2[ok].min()))}"))
        for meets, _, text, best in checks:
            if not (ok & meets).any():
                out[name] = f"{text} at every feasible configuration ({best})"
                break
        else:
            out[name] = ("no feasible configuration meets "
                         + " and ".join(c[1] for c in checks) + " together")
    return out


@dataclass
class Recommendation:
    """What :func:`run` produced: the ranked table, the sweep behind it, the options."""
    table: object          # pandas DataFrame, COLUMNS
    summary: object        # dse.sweep.SweepSummary
    spec: object           # the SweepSpec run
    out_dir: Path
    requests_per_s: float | None
    seconds: float


def _edges(row, spec) -> str | None:
    """The strategy axes whose swept range ``row`` sits at the end of, as ``axis=max`` (or
    ``axis=min`` where the smallest value swept is above 1): a wider axis may do better."""
    out = []
    for axis in EDGE_AXES:
        values = spec.grid[axis]
        if len(values) > 1 and row[axis] == max(values):
            out.append(f"{axis}=max")
        elif min(values) > 1 and row[axis] == min(values):
            out.append(f"{axis}=min")
    return ",".join(out) or None


def rank(best, spec, requests_per_s: float | None = None, reasons: dict | None = None):
    """The ranked table (COLUMNS) from best rows (one per hardware; pandas)."""
    import numpy as np
    import pandas as pd
    price = {h.name: h.price_per_device_hour_usd or np.nan for h in spec.hardware}
    rows = []
    for r in best.to_dict("records"):
        hw = str(r["hardware"])
        row = {c: r.get(c) for c in COLUMNS if c in r}
        row["hardware"] = hw
        row["found"] = bool(r["found"])
        row["price_per_device_hour_usd"] = price[hw]
        row["requests_per_s_per_replica"] = r.get("requests_per_s")
        row["reason"] = None
        if row["found"]:
            row["edge_axes"] = _edges(r, spec)
            per = int(r["devices"])
            reps = _ceil_div(requests_per_s, r["requests_per_s"]) if requests_per_s else 1
            row.update(devices_per_replica=per, replicas=reps, devices=reps * per,
                       cost_per_hour_usd=reps * per * price[hw])
        else:
            row.update(devices_per_replica=None, replicas=None, devices=None,
                       cost_per_hour_usd=np.nan,
                       reason=(reasons or {}).get(hw, "none meets the constraints"))
        rows.append(row)
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    found = df["found"].astype(bool)
    priced = found & df["cost_per_million_output_tokens"].notna()
    # priced by cost (ties: tokens/s per device), unpriced by tokens/s per device, then
    # the hardware where nothing qualifies; the hardware name last for a stable order
    df["_tier"] = np.where(priced, 0, np.where(found, 1, 2))
    df["_cost"] = df["cost_per_million_output_tokens"].astype(float).fillna(np.inf)
    df["_tps"] = -df["tokens_per_s_per_device"].astype(float).fillna(-np.inf)
    df = df.sort_values(["_tier", "_cost", "_tps", "hardware"], kind="stable")
    df = df.drop(columns=["_tier", "_cost", "_tps"]).reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    for c in INT_COLUMNS:
        df[c] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                          else int(v) for v in df[c]], dtype="Int64")
    for c in ("cost_per_million_output_tokens", "tokens_per_s_per_device", "tokens_per_s_per_user",
              "ttft_s", "tpot_s", "e2e_latency_s", "requests_per_s_per_replica",
              "price_per_device_hour_usd", "cost_per_hour_usd", "energy_per_token_j"):
        df[c] = df[c].astype(float)  # energy: null where the sweep has no such column
    for c in ("hardware", "weight_dtype", "act_dtype", "kv_dtype", "bound", "edge_axes",
              "reason", "model", "serving", "engine"):
        df[c] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                 for v in df[c]]
    df["found"] = df["found"].astype(bool)
    df["input_tokens"] = df["input_tokens"].astype("int64")
    df["output_tokens"] = df["output_tokens"].astype("int64")
    return df[list(COLUMNS)]


def _check_out(out_dir: Path, overwrite: bool) -> None:
    """An unusable ``--out`` (a file, a broken link, a missing parent) or, without
    ``overwrite``, a non-empty one is refused before any work."""
    from .outdir import LOCK, check_out_dir
    check_out_dir(out_dir, overwrite=True)
    if not overwrite and out_dir.is_dir() and any(n != LOCK for n in os.listdir(out_dir)):
        raise OutputError(f"{out_dir}: --out folder exists and is not empty; pass "
                          "--overwrite to replace the files an earlier dse recommend wrote")


def run(spec, out_dir, requests_per_s: float | None = None, overwrite: bool = False,
        progress: bool | None = None, memory_limit_bytes: int | None = None,
        rate_key: str = "requests_per_s") -> Recommendation:
    """Run ``spec`` (from :func:`build_spec`) into ``out_dir`` (frontiers and best tables,
    no configurations/), rank the hardware and write ``out_dir/recommend.parquet``."""
    import time
    from . import io
    from .sweep import run_sweep
    if requests_per_s is not None:
        _positive(requests_per_s, rate_key)
    out_dir = Path(out_dir)
    _check_out(out_dir, overwrite)
    t0 = time.perf_counter()
    old = out_dir / FILE
    if overwrite and old.is_file() and not old.is_symlink():
        old.unlink()  # a failed run must not leave the last run's answer beside its tables
    summary = run_sweep(spec, out_dir, overwrite=overwrite, progress=progress,
                        results=False, memory_limit_bytes=memory_limit_bytes)
    best = summary.best()
    missing = [str(h) for h, f in zip(best["hardware"], best["found"]) if not f]
    reasons = why_not(spec, missing) if missing else {}
    table = rank(best, spec, requests_per_s, reasons)
    meta = io.metadata(spec) | {"dse.recommend": json.dumps(
        {"requests_per_s": requests_per_s, "constraints": vars(spec.constraints),
         "ranking": "priced hardware by cost_per_million_output_tokens (ties: more "
                    "tokens_per_s_per_device), then unpriced hardware by "
                    "tokens_per_s_per_device, then hardware where nothing qualifies"})}
    io.write_table(out_dir / FILE, io.frame_to_table(table, meta, COLUMN_DOCS))
    return Recommendation(table, summary, spec, out_dir, requests_per_s,
                          time.perf_counter() - t0)


def recommend(model: str, input_tokens: int, output_tokens: int,
              max_ttft_s: float | None = None, max_tpot_s: float | None = None,
              requests_per_s: float | None = None, hardware=None, precisions=None,
              engine: str | None = None, max_devices: int | None = None,
              out_dir=None, overwrite: bool = False, progress: bool | None = False):
    """Rank hardware for serving ``model`` on a workload within SLOs (``dse recommend``).

    Parameters
    ----------
    model : str
        Model preset (bundled name or path to a .toml file).
    input_tokens, output_tokens : int
        Prompt and generated tokens per request.
    max_ttft_s, max_tpot_s : float, optional
        SLOs: time to first token [s] and time per output token [s].
    requests_per_s : float, optional
        Target rate [requests/s]: replicas = ceil(rate / requests_per_s of one replica).
    hardware : str or list of str, optional
        Hardware presets (default: the bundled accelerators with a price).
    precisions : list of str, optional
        Weight precisions to try, activations and KV cache the same (default bf16, fp8,
        int8, fp4; each chip keeps those it computes in natively).
    engine : str, optional
        Serving-engine preset (default vllm).
    max_devices : int, optional
        At most this many devices per replica.
    out_dir : path, optional
        Folder for recommend.parquet and the sweep's tables (default: a temporary folder,
        removed afterwards).

    Returns
    -------
    pandas.DataFrame
        One row per hardware, ranked (columns :data:`COLUMNS`): the cheapest configuration
        meeting the SLOs, its cost per million tokens [USD], tokens/s per device and per
        user, TTFT and TPOT [s], strategy, replicas and devices for the rate and cost per
        hour [USD/h]; rows with ``found`` false carry the ``reason``.
    """
    import tempfile
    spec = build_spec(model, input_tokens, output_tokens, max_ttft_s, max_tpot_s, hardware,
                      precisions, engine, max_devices)
    if out_dir is not None:
        return run(spec, out_dir, requests_per_s, overwrite, progress).table
    with tempfile.TemporaryDirectory(prefix="dse-recommend-") as tmp:
        return run(spec, Path(tmp) / "out", requests_per_s, progress=progress).table


# --------------------------------------------------------------------------- printing
def _money(x) -> str:
    return _usd(x, missing="n/a")


def _strategy(r, moe: bool) -> str:
    parts = [f"tp={r['tp']}", f"pp={r['pp']}"]
    if moe:
        parts += [f"ep={r['ep']}", f"adp={r['attention_dp']}"]
    return " ".join(parts + [f"batch={r['batch']}", _precision(r)])


def text(rec: Recommendation, report=None) -> str:
    """The printed answer: the ranked table, footnotes, the file and the next command."""
    from .answer import _rate, _seconds as seconds
    df = rec.table
    spec = rec.spec
    moe = spec.models[0].is_moe
    c = spec.constraints
    slo = ", ".join(p for p in (
        f"TTFT ≤ {seconds(c.max_ttft_s)}" if c.max_ttft_s is not None else "",
        f"TPOT ≤ {seconds(c.max_tpot_s)}" if c.max_tpot_s is not None else "",
        f"at most {_devices(c.max_devices)} per replica" if c.max_devices is not None
        else "") if p)
    rate = f"{rec.requests_per_s:g} requests/s" if rec.requests_per_s else "one replica"
    head = ["#", "hardware", "$/Mtok", "tok/s/dev", "tok/s/user", "TTFT", "TPOT",
            "strategy", "replicas", "devices", "$/hour"]
    body, notes = [], []
    for r in df.to_dict("records"):
        if r["found"]:
            body.append([str(r["rank"]), r["hardware"], _money(r["cost_per_million_output_tokens"]),
                         _rate(r["tokens_per_s_per_device"]), _rate(r["tokens_per_s_per_user"]),
                         seconds(r["ttft_s"]), seconds(r["tpot_s"]), _strategy(r, moe),
                         str(r["replicas"]), str(r["devices"]), _money(r["cost_per_hour_usd"])])
        else:
            notes.append(f"  {r['hardware']}: {r['reason']}")
    right = {"#", "$/Mtok", "tok/s/dev", "tok/s/user", "TTFT", "TPOT", "replicas", "devices",
             "$/hour"}
    width = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]

    def line(cells):
        return "  " + "  ".join(x.rjust(w) if h in right else x.ljust(w)
                                for x, w, h in zip(cells, width, head)).rstrip()
    m = spec.models[0].name
    lines = [f"{m}, {spec.grid['input_tokens'][0]} in / {spec.grid['output_tokens'][0]} "
             f"out tokens, {slo or 'no SLO'}, for {rate}: {len(body)} of {len(df)} hardware "
             f"qualify ({rec.summary.n_configs:,} configurations in {rec.seconds:.1f} s)"]
    if body:
        lines += [line(head), *map(line, body)]
    if df["found"].any() and df.loc[df["found"], "cost_per_million_output_tokens"].isna().any():
        lines.append("  n/a: the hardware preset has no price_per_device_hour_usd; ranked "
                     "after the priced hardware by tokens/s per device")
    edges = {}  # axis=max -> the hardware whose pick sits there
    for r in df.to_dict("records"):
        if isinstance(r["edge_axes"], str):
            for edge in r["edge_axes"].split(","):
                edges.setdefault(edge, []).append(r["hardware"])
    if edges:
        lines += textwrap.wrap("at the end of a swept axis (a --spec with a wider one may do "
                               "better): " + "; ".join(f"{e}: {', '.join(h)}"
                                                       for e, h in edges.items()),
                               100, initial_indent="  ", subsequent_indent="    ")
    if notes:
        lines += ["no configuration meets the constraints on:", *notes]
    out = rec.out_dir
    lines.append(f"wrote {out / FILE}; the sweep behind it: {out}/ (pareto.parquet, "
                 f"best.parquet)")
    if report is not None:
        lines.append(f"next: open {report} in a browser   # the frontiers behind the ranking")
    else:
        lines.append(f"next: dse report {shlex.quote(str(out))}   # its frontiers in a browser")
    return "\n".join(lines)


def json_doc(rec: Recommendation) -> dict:
    """``dse recommend --json``: the options, the ranked rows and the files."""
    from .cli import _json_records
    spec = rec.spec
    return {"model": spec.models[0].name, "input_tokens": spec.grid["input_tokens"][0],
            "output_tokens": spec.grid["output_tokens"][0],
            "constraints": vars(spec.constraints), "requests_per_s": rec.requests_per_s,
            "n_configs": rec.summary.n_configs, "seconds": rec.seconds,
            "rows": _json_records(rec.table), "file": str(rec.out_dir / FILE),
            "sweep": str(rec.out_dir), "next": f"dse report {shlex.quote(str(rec.out_dir))}"}
