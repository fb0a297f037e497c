"""Compare the engine's predictions with measured end-to-end serving results.

A *measured table* has one published or locally measured serving result per row: the
configuration (hardware and model preset, precisions, batch = concurrent requests,
input/output tokens, tp/pp/ep) and the measured time to first token and time per output
token, plus where the numbers come from. :func:`validate` evaluates every row's
configuration with the grid kernel and returns the row-level comparison and a scorecard of
absolute percentage errors per (hardware, model) and overall. The bundled dataset is
``configs/validation/measured.csv`` (:func:`bundled_measured_path`; its sources are listed in
``configs/validation/README.md``).

Row numbers in error messages count the header as row 1, so they are the line numbers of
the CSV file.
"""
from __future__ import annotations

import math
import numbers
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .calibrate import read_table_file
from .axes import AXIS
from .config import SAME, ConfigError, int_axis_problem, load_hardware, load_model, parse_sweep, \
    shown
from .engines import load_engine
from .evaluate import METRIC_INPUTS, REASONS, derived_metrics, evaluate
from .quant import load_quant
from .kernels.layout import DTYPES

# --------------------------------------------------------------------------- columns
PRESET_COLUMNS = ("hardware", "model")
INT_COLUMNS = ("batch", "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp",
               "cp", "max_batched_tokens", "admission_interval")
DTYPE_COLUMNS = ("weight_dtype", "act_dtype", "kv_dtype")
# serving mode and engine preset (default: the axes' defaults, continuous and vllm; a table of
# fixed-batch measurements says serving = static)
SERVING_COLUMNS = ("serving", "engine")
MEASURED_COLUMNS = ("measured_ttft_s", "measured_tpot_s")
REQUIRED = ("hardware", "model", "weight_dtype", "batch", "input_tokens", "output_tokens",
            "tp", "source")
DEFAULTS = {"act_dtype": SAME, "kv_dtype": SAME, "pp": 1, "ep": 1, "attention_dp": 1, "cp": 1,
            "max_batched_tokens": 0, "admission_interval": 0, "memory_fraction": 0.0,
            "num_prompts": 0,
            "length_ratio": 1.0,
            "serving": AXIS["serving"].default[0], "engine": AXIS["engine"].default[0],
            "quant": AXIS["quant"].default[0]}
# free text carried through to the output unchanged
TEXT_COLUMNS = ("notes",)
# the benchmark run's protocol (continuous rows): prompts in the run (all clients start
# together; empty or 0: the steady state) and the random dataset's length range ratio
PROTOCOL_COLUMNS = ("num_prompts", "length_ratio")
MAX_PROMPTS = 1_000_000  # a run of more prompts is simulated no differently (and slowly)
INPUT_COLUMNS = ("hardware", "model", "weight_dtype", "act_dtype", "kv_dtype", "quant", "batch",
                 "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp", "cp",
                 *MEASURED_COLUMNS,
                 *SERVING_COLUMNS, "max_batched_tokens", "admission_interval",
                 "memory_fraction", *PROTOCOL_COLUMNS, "source")
VALID_COLUMNS = (*INPUT_COLUMNS, *TEXT_COLUMNS)
PREDICTED_COLUMNS = ("predicted_ttft_s", "predicted_tpot_s", "ttft_error_pct",
                     "tpot_error_pct", "feasible", "infeasible_reason", "steady_ttft_s",
                     "steady_tpot_s")

# validation.parquet's own columns: name -> (unit, description) (the others are axes and
# metrics of the results table); the last group: rows of disaggregated deployments
COLUMN_DOCS = {
    "measured_ttft_s": ("s", "measured time to first token (null: not measured)"),
    "measured_tpot_s": ("s", "measured time per output token (null: not measured)"),
    "source": ("", "where the measurement comes from (citation)"),
    "notes": ("", "free text from the measured table"),
    "predicted_ttft_s": ("s", "dse's time to first token of the row's configuration: "
                         "its benchmark run's mean where the row gives num_prompts, else "
                         "the steady state"),
    "predicted_tpot_s": ("s", "dse's time per output token of the row's configuration (as "
                         "predicted_ttft_s)"),
    "steady_ttft_s": ("s", "dse's steady-state (closed-form) time to first token"),
    "steady_tpot_s": ("s", "dse's steady-state (closed-form) time per output token"),
    "num_prompts": ("count", "prompts of the measured benchmark run, its clients starting "
                    "together (0: the steady state is compared)"),
    "length_ratio": ("", "the run's random lengths: uniform in [length_ratio x L, L], the "
                     "row's input/output tokens being their means (1: fixed lengths)"),
    "ttft_error_pct": ("%", "100 * (predicted - measured) / measured TTFT; null where not "
                       "measured"),
    "tpot_error_pct": ("%", "100 * (predicted - measured) / measured TPOT; null where not "
                       "measured"),
    "row": ("count", "the row's line in the measured table"),
    "concurrency": ("requests", "closed-loop clients driving the deployment"),
    "prefill_workers": ("count", "prefill instances of the deployment"),
    "decode_workers": ("count", "decode instances of the deployment"),
    "predicted_requests_per_s": ("requests/s", "dse's request rate of the deployment"),
    "prefill_batch": ("requests", "dse's mean prefill batch at that rate"),
    "decode_batch": ("requests", "dse's mean decode batch at that rate"),
    "saturated": ("", "true where a pool is saturated at the given concurrency; null "
                  "where not"),
    "kv_transfer_s": ("s", "shipping one prompt's KV cache from prefill to decode"),
    "kv_transfer_link": ("", "the link the KV cache crosses: scaleup or scaleout"),
}

WITHIN_PCT = 20.0       # share_within_20pct counts |error| <= this [%]
ALL = "all"             # hardware/model label of the scorecard's overall row
# the scorecard's load roll-up: (label, fewest, most) concurrent requests per row (``batch``:
# a continuous row's clients, a static row's batch; ``concurrency``: a disaggregated row's
# clients), the buckets the validation README reads
BATCH_BUCKETS = (("1-4", 1, 4), ("5-16", 5, 16), ("17-64", 17, 64), (">64", 65, math.inf))
# one sweep per (hardware, model) group while its Cartesian product stays this small;
# larger groups are evaluated one row at a time (each a one-point sweep)
MAX_GROUP_CONFIGS = 1_000_000

OUTPUT_NAME = "validation.parquet"


def bundled_measured_path() -> Path:
    """Path of the bundled measured dataset (``configs/validation/measured.csv``)."""
    return Path(str(resources.files("dse.configs").joinpath("validation", "measured.csv")))


def load_measured(path) -> pd.DataFrame:
    """Read a measured table from CSV (or ``.parquet``); a read problem is a ConfigError."""
    return read_table_file(path, "measured table (CSV or Parquet)", skipinitialspace=True)


# --------------------------------------------------------------------------- checks
def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _fail(source, row, col, value, problem):
    raise ConfigError(f"{source}: row {row}: {col} = {shown(value)}: {problem}")


def _as_text(value):
    """Plain Python scalar for messages (numpy scalars print as np.int64(...))."""
    return value.item() if isinstance(value, np.generic) else value


def _positive_int(value, source, row, col) -> int:
    """A value of the integer axis ``col``: a positive integer within its physical bound
    (:data:`dse.config.INT_AXIS_MAX`; beyond it int64 arithmetic would overflow)."""
    value = number = _as_text(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if text.lstrip("+").isdigit() else float(text)
        except ValueError:  # not a number, or too many digits to convert
            number = None
    if isinstance(number, float) and math.isfinite(number) and number == int(number):
        number = int(number)  # 8.0 (a CSV column with an empty cell is float)
    problem = int_axis_problem(col, number)
    if problem:
        _fail(source, row, col, value, problem)
    return number


def _seconds(value, source, row, col) -> float:
    """A measured time [s]: positive and finite, or NaN when not measured."""
    number = _finite(value)
    if number is not None and math.isnan(number):
        return math.nan
    if number is None or number <= 0:
        _fail(source, row, col, _as_text(value),
              "must be a positive number of seconds or empty")
    return float(number)


def _finite(value):
    """A cell as a finite real number: NaN when empty, None when it is not one."""
    value = _as_text(value)
    if _missing(value):
        return math.nan
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        return None
    return value


def _prompts(value, source, row) -> int:
    """``num_prompts``: 0 (empty: the steady state) or the prompts of the benchmark run, up
    to :data:`MAX_PROMPTS` (a run of fewer prompts than clients has as many clients as
    prompts)."""
    number = _finite(value)
    if number is not None and math.isnan(number):
        return 0
    if number is None or number != int(number) or not 0 <= number <= MAX_PROMPTS:
        _fail(source, row, "num_prompts", _as_text(value), f"must be a whole number of "
              f"prompts, 0 (or empty: the steady state) up to {MAX_PROMPTS:,}")
    return int(number)


def _ratio(value, source, row) -> float:
    """``length_ratio``: in (0, 1]; empty: 1 (fixed lengths)."""
    number = _finite(value)
    if number is not None and math.isnan(number):
        return 1.0
    if number is None or not 0 < number <= 1:
        _fail(source, row, "length_ratio", _as_text(value), "must be a number in (0, 1]: "
              "lengths uniform in [length_ratio x L, L] (1 or empty: fixed lengths)")
    return float(number)


def _memory_fraction(value, source, row) -> float:
    """``memory_fraction``: the engine's memory share as the server ran, in [0, 1]; empty
    or 0: the engine's default."""
    number = _finite(value)
    if number is not None and math.isnan(number):
        return 0.0
    if number is None or not 0 <= number <= 1:
        _fail(source, row, "memory_fraction", _as_text(value), "must be a fraction in [0, 1]: "
              "the server's --gpu-memory-utilization / --mem-fraction-static / "
              "free_gpu_memory_fraction (0 or empty: the engine's default)")
    return float(number)


def _text(value, source, row, col, what) -> str:
    value = _as_text(value)
    if _missing(value):
        _fail(source, row, col, value, f"missing value; give {what}")
    if not isinstance(value, str):
        _fail(source, row, col, value, f"must be text: {what}")
    return value.strip()


def _dtype(value, source, row, col) -> str:
    value = _as_text(value)
    if col != "weight_dtype" and _missing(value):
        return SAME
    valid = DTYPES if col == "weight_dtype" else (*DTYPES, SAME)
    # anything else is no name (and `in` would compare a Parquet list cell elementwise)
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in valid:
        _fail(source, row, col, value, f"unknown precision; valid: {', '.join(valid)}")
    return text


def check_table(table: pd.DataFrame, source: str = "<table>",
                base_dir: Path | None = None) -> pd.DataFrame:
    """Validate a measured table; returns it normalized (defaults filled, typed columns).

    Raises :class:`ConfigError` with one line naming ``source``, the row (CSV line number),
    the column, the value and what is valid.
    """
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(f"{source}: expected a table (pandas.DataFrame), "
                          f"got {type(table).__name__}")
    columns = [str(c).strip() for c in table.columns]
    for col in columns:
        if col not in VALID_COLUMNS:
            raise ConfigError(f"{source}: column {shown(col)}: unknown column; valid columns: "
                              f"{', '.join(VALID_COLUMNS)}")
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise ConfigError(f"{source}: column {shown(dup)}: appears twice")
    for col in REQUIRED:
        if col not in columns:
            raise ConfigError(f"{source}: column {col!r}: missing required column; required: "
                              f"{', '.join(REQUIRED)} and at least one of "
                              f"{', '.join(MEASURED_COLUMNS)}")
    if not any(c in columns for c in MEASURED_COLUMNS):
        raise ConfigError(f"{source}: columns {' and '.join(MEASURED_COLUMNS)}: both missing; "
                          "give at least one (a cell may be empty where not measured)")
    if len(table) == 0:
        raise ConfigError(f"{source}: no rows: give at least one measured configuration")
    df = table.copy()
    df.columns = columns
    for col, default in DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
    for col in MEASURED_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan

    hardware_ok, model_ok, engine_ok, quant_ok = {}, {}, {}, {}
    out = {c: [] for c in INPUT_COLUMNS}
    for i, rec in enumerate(df.to_dict("records")):
        row = i + 2  # the CSV line: header is line 1
        hw = _text(rec["hardware"], source, row, "hardware",
                   "a hardware preset name or a path to a .toml file")
        model = _text(rec["model"], source, row, "model",
                      "a model preset name or a path to a .toml file")
        if hw not in hardware_ok:
            hardware_ok[hw] = load_hardware(hw, base_dir, f"{source}: row {row}", "hardware")
        if model not in model_ok:
            model_ok[model] = load_model(model, base_dir, f"{source}: row {row}", "model")
        out["hardware"].append(hw)
        out["model"].append(model)
        for col in DTYPE_COLUMNS:
            val = rec[col]
            if col == "weight_dtype" and _missing(val):
                _fail(source, row, col, _as_text(val),
                      f"missing value; valid: {', '.join(DTYPES)}")
            out[col].append(_dtype(val, source, row, col))
        for col in INT_COLUMNS:
            val = rec[col]
            if col in DEFAULTS and _missing(val):
                val = DEFAULTS[col]
            out[col].append(_positive_int(val, source, row, col))
        measured = [_seconds(rec[c], source, row, c) for c in MEASURED_COLUMNS]
        if all(math.isnan(m) for m in measured):
            raise ConfigError(f"{source}: row {row}: {' and '.join(MEASURED_COLUMNS)}: both "
                              "empty; give at least one measured time [s]")
        for col, m in zip(MEASURED_COLUMNS, measured):
            out[col].append(m)
        out["num_prompts"].append(_prompts(rec["num_prompts"], source, row))
        out["length_ratio"].append(_ratio(rec["length_ratio"], source, row))
        out["memory_fraction"].append(_memory_fraction(rec["memory_fraction"], source, row))
        serving = _as_text(rec["serving"])
        serving = DEFAULTS["serving"] if _missing(serving) else serving
        serving = serving.strip() if isinstance(serving, str) else serving
        problem = AXIS["serving"].problem(serving)
        if problem:
            _fail(source, row, "serving", serving, problem)
        out["serving"].append(serving)
        engine = DEFAULTS["engine"] if _missing(rec["engine"]) else _text(
            rec["engine"], source, row, "engine", "an engine preset name or a path to a .toml file")
        if engine not in engine_ok:
            engine_ok[engine] = load_engine(engine, base_dir, f"{source}: row {row}", "engine")
        out["engine"].append(engine)
        quant = DEFAULTS["quant"] if _missing(rec["quant"]) else _text(
            rec["quant"], source, row, "quant", "a precision recipe name or a path to a .toml file")
        if quant not in quant_ok:
            quant_ok[quant] = load_quant(quant, base_dir, f"{source}: row {row}", "quant")
        out["quant"].append(quant)
        out["source"].append(_text(rec["source"], source, row, "source",
                                   "where the measurement comes from (URL or document + table)"))
    result = pd.DataFrame(out)
    for col in INT_COLUMNS:
        result[col] = result[col].astype(np.int64)
    for col in MEASURED_COLUMNS:
        result[col] = result[col].astype(np.float64)
    result["num_prompts"] = result["num_prompts"].astype(np.int64)
    result["length_ratio"] = result["length_ratio"].astype(np.float64)
    result["memory_fraction"] = result["memory_fraction"].astype(np.float64)
    for col in TEXT_COLUMNS:
        if col in df.columns:
            result[col] = ["" if _missing(v) else str(_as_text(v)) for v in df[col]]
    return result


# --------------------------------------------------------------------------- evaluation
AXIS_COLUMNS = ("batch", "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp",
                "cp", "max_batched_tokens", "admission_interval", "memory_fraction",
                *SERVING_COLUMNS,
                *DTYPE_COLUMNS, "quant")


def _pick(da: xr.DataArray, points: dict) -> np.ndarray:
    """Values of ``da`` at the points (one per row); dims not in ``points`` have one entry."""
    sel = {d: xr.DataArray(v, dims="row") for d, v in points.items() if d in da.dims}
    out = da.sel(sel) if sel else da
    extra = [d for d in out.dims if d != "row"]
    out = out.isel({d: 0 for d in extra})
    if "row" not in out.dims:
        out = out.expand_dims(row=len(next(iter(points.values()))))
    return np.asarray(out.values)


def _evaluate_group(hw: str, model: str, rows: pd.DataFrame, base_dir,
                    source: str) -> tuple[np.ndarray, ...]:
    """(ttft, tpot, feasible, reason code) for rows sharing hardware and model."""
    axes = {c: sorted({v.item() if isinstance(v, np.generic) else v for v in rows[c]},
                      key=str) for c in AXIS_COLUMNS}
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_GROUP_CONFIGS and len(rows) > 1:
        parts = [_evaluate_group(hw, model, rows.iloc[[k]], base_dir, source)
                 for k in range(len(rows))]
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(4))
    spec = parse_sweep({"grid": {"hardware": [hw], "model": [model], **axes}},
                       source=source, base_dir=base_dir)
    ds = evaluate(spec)
    points = {c: rows[c].to_numpy() for c in AXIS_COLUMNS}
    # engines and recipes given by path: the coordinate holds the preset's name
    for axis, presets in (("engine", spec.engines), ("quant", spec.quants)):
        names = dict(zip(spec.grid[axis], (p.name for p in presets)))
        points[axis] = np.array([names[e] for e in points[axis]], dtype=object)
    # the dtype coordinates hold the names as given ("same" included). The verdict is
    # derived at the rows' points only (the same operations as derive(ds), elementwise on
    # the picked values, without xarray aligning the whole grid for each of them)
    picked = {name: _pick(ds[name], points) for name in METRIC_INPUTS}
    der = derived_metrics(picked)
    return (picked["ttft_s"].astype(np.float64), picked["tpot_s"].astype(np.float64),
            np.asarray(der["feasible"], dtype=bool),
            np.asarray(der["reason"], dtype=np.int64))


PROTOCOL_AXES = ("hardware", "model", "weight_dtype", "act_dtype", "kv_dtype", "quant", "tp",
                 "pp", "ep", "attention_dp", "cp", "engine", "max_batched_tokens",
                 "admission_interval", "memory_fraction", "batch", "input_tokens",
                 "output_tokens")


def simulated_run(row, prompts: int, ratio: float, warmup: int = 0, stagger: bool = False,
                  base_dir=None, source: str = "<table>") -> dict | None:
    """The reference simulator's metrics (``dse.kernels.simulate``) of a continuous row's
    configuration served to ``prompts`` prompts in all from ``batch`` clients (at most one
    per prompt) that start together (``stagger``: their first requests' ends spread out)
    and stop once all prompts are sent, each request's lengths uniform in [r L, L] (r =
    ``ratio``, L such that the row's input/output tokens are the means: L = 2 mean /
    (1 + r)), measured after the first ``warmup`` requests finish; None where not one
    request fits in memory. The simulator steps the row's own per-iteration physics
    (:func:`dse.simulation.point`), admission, chunked prefill and decode included."""
    from .engines import replica_limits
    from .kernels.simulate import simulate
    from .simulation import point
    grid = {c: (row[c].item() if isinstance(row[c], np.generic) else row[c])
            for c in PROTOCOL_AXES}
    _, iteration_time, engine, slots = point(base_dir=base_dir, source=source, **grid)
    if slots < 1:
        return None
    longest = [max(int(round(2.0 * grid[c] / (1.0 + ratio))), 1)
               for c in ("input_tokens", "output_tokens")]
    budget, running = replica_limits(engine, grid["max_batched_tokens"], grid["attention_dp"])
    return simulate(iteration_time, min(grid["batch"], prompts), *longest, budget,
                    engine.chunked_prefill, engine.mixed_prefill, running,
                    int(slots), engine.request_overhead_s, engine.iteration_overhead_s,
                    n_requests=prompts - warmup, max_requests=prompts, warmup=warmup,
                    seed=1, length_ratio=ratio, stagger=stagger,
                    admission_interval=grid["admission_interval"] or engine.admission_interval,
                    overlap=engine.overlap_scheduling)


def protocol_run(row, base_dir=None, source: str = "<table>") -> tuple[float, float] | None:
    """Mean (TTFT, TPOT) [s] of a continuous row's benchmark run, or None where not one
    request fits in memory: its ``num_prompts`` prompts at its ``length_ratio``, the means
    over all of them (:func:`simulated_run` without a warm-up: the run's clients start
    together on an idle server, and the last requests run with fewer clients left)."""
    sim = simulated_run(row, int(row["num_prompts"]), float(row["length_ratio"]),
                        base_dir=base_dir, source=source)
    return None if sim is None else (sim["ttft_s"], sim["tpot_s"])


def _protocol_runs(rows: list, base_dir, source: str, workers: int, done) -> list:
    """:func:`protocol_run` of every row (a pandas Series) in order, in ``workers``
    processes where more than one is asked for and there is more than one row; ``done(1)``
    after each. The processes are spawned, not forked: numba's thread pools do not survive
    a fork."""
    if workers <= 1 or len(rows) <= 1:
        out = []
        for row in rows:
            out.append(protocol_run(row, base_dir, source))
            done(1)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    with ProcessPoolExecutor(min(workers, len(rows)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(protocol_run, row, base_dir, source) for row in rows]
        for _ in as_completed(futures):
            done(1)
        return [f.result() for f in futures]


def _error_pct(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * (predicted - measured) / measured


def _stats(errors: np.ndarray, prefix: str) -> dict:
    signed = errors[~np.isnan(errors)]
    err = np.abs(signed)
    n = int(err.size)
    return {
        f"{prefix}_n": n,
        f"{prefix}_median_abs_pct_error": float(np.median(err)) if n else math.nan,
        f"{prefix}_median_pct_error": float(np.median(signed)) if n else math.nan,
        f"{prefix}_mean_abs_pct_error": float(np.mean(err)) if n else math.nan,
        f"{prefix}_share_within_20pct": float(np.mean(err <= WITHIN_PCT)) if n else math.nan,
    }


def make_scorecard(rows: pd.DataFrame) -> pd.DataFrame:
    """Absolute percentage errors per (hardware, model), per hardware, per engine and per
    load where they add something, and overall.

    Returns one row per (hardware, model) group (sorted; ``engine`` and ``batch`` "all"),
    then one per hardware with more than one such group (``model`` "all"), then one per
    engine when the rows name more than one (``hardware`` and ``model`` "all"), then one per
    bucket of concurrent requests (:data:`BATCH_BUCKETS`, the row's ``batch``, or its
    ``concurrency`` in a disaggregated table: "1-4", "5-16", "17-64", ">64") when the rows
    fall in more than one, then the overall row ("all" four times), with ``rows`` and
    ``infeasible_rows`` counts and, for ``ttft`` and ``tpot`` separately, ``<m>_n`` (rows
    with that measurement), ``<m>_median_abs_pct_error``,
    ``<m>_median_pct_error`` (the signed median, the bias: negative = predicted too fast /
    too short) and ``<m>_mean_abs_pct_error`` [%] and ``<m>_share_within_20pct`` (share with
    |error| <= 20 %, 0..1); statistics of a metric with no measurement in the group are NaN.
    """
    groups = [((hw, m, ALL, ALL), g)
              for (hw, m), g in rows.groupby(["hardware", "model"], sort=True)]
    per_hw = rows.groupby("hardware", sort=True)
    groups += [((hw, ALL, ALL, ALL), g) for hw, g in per_hw if g["model"].nunique() > 1]
    if "engine" in rows and rows["engine"].nunique() > 1:
        groups += [((ALL, ALL, e, ALL), g) for e, g in rows.groupby("engine", sort=True)]
    load = next((c for c in ("batch", "concurrency") if c in rows), None)
    if load is not None:
        requests = rows[load].to_numpy(np.float64)
        loads = [(label, rows[(requests >= lo) & (requests <= hi)])
                 for label, lo, hi in BATCH_BUCKETS]
        loads = [(label, g) for label, g in loads if len(g)]
        if len(loads) > 1:
            groups += [((ALL, ALL, ALL, label), g) for label, g in loads]
    groups.append(((ALL, ALL, ALL, ALL), rows))
    records = []
    for (hw, m, e, b), g in groups:
        rec = {"hardware": hw, "model": m, "engine": e, "batch": b, "rows": len(g),
               "infeasible_rows": int((~g["feasible"].astype(bool)).sum())}
        rec.update(_stats(g["ttft_error_pct"].to_numpy(np.float64), "ttft"))
        rec.update(_stats(g["tpot_error_pct"].to_numpy(np.float64), "tpot"))
        records.append(rec)
    return pd.DataFrame.from_records(records)


def validate(table: pd.DataFrame, source: str = "<table>",
             base_dir: Path | str | None = None,
             protocol: bool = True, workers: int = 1,
             progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict every measured configuration and score the predictions.

    Parameters
    ----------
    table : pandas.DataFrame
        One measured serving result per row. Columns: ``hardware``, ``model`` (preset names
        or paths), ``weight_dtype`` (``act_dtype``, ``kv_dtype`` optional, default
        ``same``), ``batch`` (concurrent requests), ``input_tokens``, ``output_tokens``,
        ``tp`` (``pp``, ``ep`` optional, default 1), ``measured_ttft_s`` and
        ``measured_tpot_s`` [s] (either may be empty, not both), ``source`` (citation),
        optional ``serving`` (static | continuous, default continuous), ``engine`` (preset,
        default vllm), ``quant`` (precision recipe, default uniform) and
        ``max_batched_tokens`` and ``admission_interval`` (default 0: the engine's),
        optional ``num_prompts`` and ``length_ratio`` (the benchmark run's protocol,
        :func:`protocol_run`; default 0 and 1: the steady state), optional free-text
        ``notes``. A table with ``prefill_tp`` describes disaggregated deployments instead
        (:mod:`dse.validate_disaggregated`).
    source : str
        Name of the table (its file) used in error messages.
    base_dir : path, optional
        Folder against which relative preset paths are resolved first (then the working
        directory), e.g. the CSV's folder.
    protocol : bool
        Price the benchmark run of continuous rows that give ``num_prompts`` with the
        reference simulator (:func:`protocol_run`, about a second per row); False: every
        prediction is the steady state (closed form).
    workers : int
        Processes that price those benchmark runs (1: in this process). The runs are
        deterministic, so the results do not depend on it. The processes are spawned:
        they import the calling script, so a script that asks for more than one calls
        ``validate`` under ``if __name__ == "__main__":``.
    progress : bool
        Report the simulated runs on stderr as they finish (a bar on a terminal, a line
        every 10 s otherwise): ``dse validate`` does.

    Returns
    -------
    rows : pandas.DataFrame
        The normalized input columns plus ``predicted_ttft_s``, ``predicted_tpot_s`` [s]
        (the benchmark run's where the row gives one, else the steady state's; the steady
        state's always in ``steady_ttft_s`` and ``steady_tpot_s``),
        ``ttft_error_pct``, ``tpot_error_pct`` (100 * (predicted - measured) / measured, NaN
        where not measured), ``feasible`` and ``infeasible_reason`` (the engine's verdict;
        infeasible rows keep their finite predictions and count in the scorecard).
    scorecard : pandas.DataFrame
        See :func:`make_scorecard`.

    Raises
    ------
    ConfigError
        On a missing or unknown column or an invalid value: one line naming ``source``, the
        row, the column, the value and what is valid.
    """
    from .validate_disaggregated import is_disaggregated, validate_disaggregated
    if isinstance(table, pd.DataFrame) and is_disaggregated(table):
        return validate_disaggregated(table, source, base_dir)
    base = Path(base_dir) if base_dir is not None else None
    rows = check_table(table, source, base)
    n = len(rows)
    ttft = np.full(n, np.nan)
    tpot = np.full(n, np.nan)
    feasible = np.zeros(n, dtype=bool)
    reason = np.zeros(n, dtype=np.int64)
    for (hw, model), idx in rows.groupby(["hardware", "model"], sort=False).indices.items():
        t1, t2, f, r = _evaluate_group(hw, model, rows.iloc[idx], base, source)
        ttft[idx], tpot[idx], feasible[idx], reason[idx] = t1, t2, f, r
    if not (np.isfinite(ttft).all() and np.isfinite(tpot).all()):
        # the engine never returns NaN or inf for a valid configuration; this is a bug
        raise RuntimeError("validate: the engine returned a non-finite prediction")
    steady_ttft, steady_tpot = ttft.copy(), tpot.copy()
    if protocol:
        runs = (rows["num_prompts"] > 0) & (rows["serving"] == "continuous")
        todo = np.flatnonzero(runs.to_numpy() & feasible)
        from .sweep import Progress
        bar = Progress(len(todo), 0, quiet=not progress or len(todo) == 0, desc="validate",
                       noun="benchmark runs simulated", unit=" run")
        try:
            simulated = _protocol_runs([rows.iloc[i] for i in todo], base, source, workers,
                                       bar.update)
        finally:
            bar.close()
        for i, run in zip(todo, simulated):
            if run is not None:
                ttft[i] = run[0]
                # one output token: the run has no TPOT; keep the closed form's
                tpot[i] = run[1] if math.isfinite(run[1]) else tpot[i]
    rows["predicted_ttft_s"] = ttft
    rows["predicted_tpot_s"] = tpot
    rows["ttft_error_pct"] = _error_pct(ttft, rows["measured_ttft_s"].to_numpy(np.float64))
    rows["tpot_error_pct"] = _error_pct(tpot, rows["measured_tpot_s"].to_numpy(np.float64))
    rows["feasible"] = feasible
    rows["infeasible_reason"] = [REASONS[int(r)] or None for r in reason]
    rows["steady_ttft_s"] = steady_ttft
    rows["steady_tpot_s"] = steady_tpot
    # the precisions the predictions used: "same" resolved (kv -> act -> weight), as in
    # the results table
    for col, before in (("act_dtype", "weight_dtype"), ("kv_dtype", "act_dtype")):
        rows[col] = rows[col].where(rows[col] != SAME, rows[before])
    return rows, make_scorecard(rows)


# --------------------------------------------------------------------------- output
def write_outputs(rows: pd.DataFrame, out_path, *, scorecard: pd.DataFrame | None = None,
                  source: str | None = None) -> Path:
    """Write the row-level comparison as Parquet (temporary name, then rename).

    ``out_path`` is the file to write (the CLI passes ``DIR/validation.parquet``). The
    file metadata carries the engine version and, when given, the measured table's name
    and the scorecard (JSON records), so the file explains itself.
    """
    from . import __version__
    from .io import OutputError, frame_to_table, write_table
    path = Path(out_path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give the Parquet file to write, "
                          f"e.g. {path / OUTPUT_NAME}")
    if not path.resolve().parent.is_dir():
        raise OutputError(f"{path}: parent folder {path.resolve().parent} does not exist")
    meta = {"dse.version": __version__}
    if source is not None:
        meta["dse.validation.source"] = str(source)
    if scorecard is not None:
        meta["dse.validation.scorecard"] = scorecard.to_json(orient="records")
    write_table(path, frame_to_table(rows.reset_index(drop=True), meta, COLUMN_DOCS))
    return path


def format_scorecard(card: pd.DataFrame) -> str:
    """The scorecard as an aligned text table (errors in %, shares in %)."""
    # the engine column as wide as its longest name (versioned presets: trtllm_0_17)
    wide = max([8, *(len(str(e)) for e in card.get("engine", []))])
    header = (f"{'hardware':<14} {'model':<14} {'engine':<{wide}} {'batch':<5} {'rows':>4}  "
              f"{'TTFT n':>6} {'median':>7} {'bias':>7} {'mean':>7} {'<=20%':>6}  "
              f"{'TPOT n':>6} {'median':>7} {'bias':>7} {'mean':>7} {'<=20%':>6}")
    lines = [header, "-" * len(header)]

    def num(x, fmt, unit=""):
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        return format(x, fmt) + unit

    for r in card.to_dict("records"):
        cells = [f"{r['hardware']!s:<14} {r['model']!s:<14} {r.get('engine', ALL)!s:<{wide}} "
                 f"{r.get('batch', ALL)!s:<5} {r['rows']:>4} "]
        for m in ("ttft", "tpot"):
            cells.append(f" {r[f'{m}_n']:>6} {num(r[f'{m}_median_abs_pct_error'], '.1f'):>7} "
                         f"{num(r[f'{m}_median_pct_error'], '+.1f'):>7} "
                         f"{num(r[f'{m}_mean_abs_pct_error'], '.1f'):>7} "
                         f"{num(r[f'{m}_share_within_20pct'] * 100, '.0f', '%'):>6}")
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)

