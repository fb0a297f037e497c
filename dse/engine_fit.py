"""Fit a serving-engine preset's overheads to measured end-to-end serving results.

The continuous-serving model (``kernels/serving.py``) adds an engine's
``request_overhead_s`` to every time to first token and its ``iteration_overhead_s`` to
every engine iteration, so both enter TTFT and TPOT nearly linearly (the admission wait and
the arrival offset scale with the iteration time); an engine that runs its prefill
iterations eagerly (``eager_op_s`` > 0) makes such an iteration last at least its operator
launches x ``eager_op_s`` (the host's cost per launch, which depends on the engine's
version and the host CPU). :func:`fit_engine` takes the continuous-serving rows of a
measured table (``dse.validate``'s format) that name the engine, and minimizes the squared
relative errors of the predicted TTFT and TPOT over the two overheads and, for an eager
engine, ``eager_op_s`` (Gauss-Newton with finite-difference slopes, each kept in its valid
range), starting from the preset's values. Everything else (hardware, model, the engine's
batching defaults) is as the presets say: the fit absorbs only what is fixed per request,
per iteration and per launch. The predictions are the steady state's, also for rows that
state their benchmark run (``num_prompts``): the fit then also absorbs the run's bursts.
An engine whose prefill is graphed (``eager_op_s`` 0, vLLM's V1) keeps it at 0: a launch
floor it does not pay has no slope to fit.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .calibrate import table_label, with_name, with_values
from .config import ConfigError, read_text, resolve_preset
from .engines import MAX_LAUNCH_S, MAX_OVERHEAD_S, Engine
from .validate import check_table, validate

KEYS = ("request_overhead_s", "iteration_overhead_s", "eager_op_s")
STEPS_S = (1e-3, 1e-3, 2e-6)   # finite-difference steps [s]: overheads, the per-launch cost
UPPER_S = (MAX_OVERHEAD_S, MAX_OVERHEAD_S, MAX_LAUNCH_S)
ITERATIONS = 6


@dataclass
class EngineFit:
    request_overhead_s: float
    iteration_overhead_s: float
    rows: int
    before: tuple    # (TTFT, TPOT) median absolute % error with the preset's overheads
    after: tuple     # the same with the fitted ones
    eager_op_s: float = 0.0   # fitted where the engine prefills eagerly, else the preset's 0


def _rows_of(engine: Engine, table: pd.DataFrame, source: str, base_dir) -> pd.DataFrame:
    rows = check_table(table, source, base_dir)
    names = {engine.name, engine.source}
    mine = rows[(rows["serving"] == "continuous") & rows["engine"].isin(names)]
    if mine.empty:
        raise ConfigError(f"{source}: no rows with serving = continuous and engine = "
                          f"{engine.name}; the fit needs measured continuous-serving rows of "
                          "that engine")
    return mine.reset_index(drop=True)


def _trial_text(engine: Engine) -> str:
    """The engine preset's TOML for trial copies in a scratch folder: a kernel set named
    relative to the preset's own folder named by its resolved file instead."""
    text = engine.text or read_text(engine.source, "engine preset (TOML)")
    if not engine.kernels:
        return text
    where = Path(engine.source).parent if Path(engine.source).is_file() else None
    kernels = resolve_preset("engine_kernels", engine.kernels, where, engine.source,
                             "kernels")
    return re.sub(r"^kernels\s*=.*$", lambda _: f"kernels = {json.dumps(str(kernels))}",
                  text, count=1, flags=re.M)


def _errors(rows: pd.DataFrame, engine: Engine, text: str, values, folder: Path, source,
            base_dir):
    """Relative errors (TTFT rows, then TPOT rows) with the overheads ``values`` written
    into the preset ``text`` (:func:`_trial_text`)."""
    text = with_values(text, {k: (float(v), "trial value of the fit")
                              for k, v in zip(KEYS, values)})
    path = folder / f"{engine.name}.toml"
    path.write_text(text)
    trial = rows.assign(engine=str(path))
    # the closed form's steady state (a benchmark run's simulation, seconds per row, would
    # make the fit's dozen evaluations minutes each)
    pred, _ = validate(trial, source, base_dir, protocol=False)
    errs = [(pred[f"predicted_{m}_s"] / pred[f"measured_{m}_s"] - 1.0).to_numpy(np.float64)
            for m in ("ttft", "tpot")]
    return np.concatenate([e[~np.isnan(e)] for e in errs]), pred


def _medians(pred: pd.DataFrame) -> tuple:
    return tuple(float(np.nanmedian(np.abs(pred[f"{m}_error_pct"]))) for m in ("ttft", "tpot"))


def fit_engine(engine: Engine, table: pd.DataFrame, source: str = "<table>",
               base_dir=None) -> EngineFit:
    """Fitted request and iteration overheads of ``engine`` (see the module docstring)."""
    base = Path(base_dir) if base_dir is not None else None
    rows = _rows_of(engine, table, source, base)
    x = np.array([engine.request_overhead_s, engine.iteration_overhead_s, engine.eager_op_s])
    n = 3 if engine.eager_op_s > 0.0 else 2  # parameters fitted (see the module docstring)
    steps, upper = np.array(STEPS_S[:n]), np.array(UPPER_S[:n])
    text = _trial_text(engine)
    with tempfile.TemporaryDirectory(prefix="dse-engine-fit-") as tmp:
        folder = Path(tmp)

        def errors(values):
            return _errors(rows, engine, text, np.concatenate([values, x[n:]]), folder,
                           source, base)
        p = x[:n]
        r, pred = errors(p)
        before = _medians(pred)
        for _ in range(ITERATIONS):
            # one-sided slopes, stepping up so a zero value stays in range
            jac = np.column_stack([(errors(p + steps[j] * np.eye(n)[j])[0] - r) / steps[j]
                                   for j in range(n)])
            delta, *_ = np.linalg.lstsq(jac, -r, rcond=None)
            p_new = np.clip(p + delta, 0.0, upper)
            r_new, pred_new = errors(p_new)
            if np.sum(r_new ** 2) >= np.sum(r ** 2):
                break
            p, r, pred = p_new, r_new, pred_new
    return EngineFit(float(p[0]), float(p[1]), len(rows), before, _medians(pred),
                     float(p[2]) if n == 3 else engine.eager_op_s)


def engine_preset_text(engine: Engine, result: EngineFit, table: str,
                       name: str | None = None) -> str:
    """The engine preset's TOML with the two fitted overheads (and ``name``) replaced."""
    text = engine.text or read_text(engine.source, "engine preset (TOML)")
    note = (f"fitted by `dse calibrate --engine` to {table_label(table)} ({result.rows} rows; "
            f"median abs error TTFT {result.before[0]:.1f}% -> {result.after[0]:.1f}%, "
            f"TPOT {result.before[1]:.1f}% -> {result.after[1]:.1f}%)")
    values = {"request_overhead_s": (result.request_overhead_s, note),
              "iteration_overhead_s": (result.iteration_overhead_s, note)}
    if engine.eager_op_s > 0.0:
        values["eager_op_s"] = (result.eager_op_s, note)
    return with_name(with_values(text, values), name)
