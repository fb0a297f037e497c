"""Compare disaggregated-serving predictions with measured deployments
(``configs/validation/disaggregated.csv``; ``dse validate`` picks this mode when a table has
``prefill_tp``).

Each ``end_to_end`` row is a fixed deployment: ``prefill_workers`` instances of the prefill
configuration, ``decode_workers`` of the decode one, driven by ``concurrency`` closed-loop
clients. Its pools' pass times come from the static kernel (a prefill pass of b prompts, a
decode step of b sequences, over a ladder of batch sizes, interpolated) and the steady state
from :func:`dse.disaggregate.closed_loop`, with the KV transfer and the engine's overheads
of :mod:`dse.disaggregate`. A worker with ``dp_attention`` runs attention data-parallel over
its GPUs (dse: tp 1, attention_dp = GPUs per worker); without it, tensor-parallel over them.
Rows of one pool measured alone (``prefill_pool_only``, ``decode_pool_only``) carry no TTFT
or TPOT and are skipped. A row that states its benchmark run (optional ``num_prompts``) is
priced as the run: its first wave of ``concurrency`` prompts meets the idle prefill pool at
once (:func:`dse.disaggregate.first_wave`), the rest the steady state; TTFT is the run's mean.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ConfigError, load_hardware, load_model, parse_sweep, shown
from .disaggregate import closed_loop, first_wave, kv_transfer, run_ttft
from .axes import AXIS
from .engines import load_engine, replica_limits
from .evaluate import evaluate
from .quant import load_quant
from .validate import (MEASURED_COLUMNS, _dtype, _fail, _missing, _positive_int, _prompts,
                       _seconds, _text, make_scorecard)

POOL_COLUMNS = ("hardware", "tp", "ep", "dp_attention", "workers", "gpus")
REQUIRED = ("scope", "engine", "model", "weight_dtype",
            *(f"{side}_{c}" for side in ("prefill", "decode") for c in POOL_COLUMNS),
            "input_tokens", "output_tokens", "concurrency", *MEASURED_COLUMNS)
SCOPE = "end_to_end"
DEFAULT_QUANT = AXIS["quant"].default[0]
# batch sizes at which each pool's pass time is evaluated (interpolated between)
LADDER_POINTS = 40


def is_disaggregated(table: pd.DataFrame) -> bool:
    """Whether a measured table describes disaggregated deployments."""
    return "prefill_tp" in {str(c).strip() for c in table.columns}


MAX_COUNT = 2 ** 20  # workers and GPUs per pool (dse's dp bound)


def _count(value, source, row, col) -> int:
    """A positive whole number of workers, GPUs or experts' groups, at most MAX_COUNT."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number == int(number) and 1 <= number <= MAX_COUNT):
        _fail(source, row, col, value, f"must be a whole number in [1, {MAX_COUNT:,}]")
    return int(number)


def _bool(value, source, row, col) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0"):
        _fail(source, row, col, value, "must be true or false")
    return text in ("true", "1")


def _pool(rec, side, source, row) -> dict:
    """A pool's dse strategy (tp, attention_dp, ep) and instance count from its columns."""
    c = {k: rec[f"{side}_{k}"] for k in POOL_COLUMNS}
    workers = _count(c["workers"], source, row, f"{side}_workers")
    gpus = _count(c["gpus"], source, row, f"{side}_gpus")
    if gpus % workers:
        _fail(source, row, f"{side}_gpus", gpus, f"not a multiple of {side}_workers = {workers}")
    per = gpus // workers
    ep = _count(c["ep"], source, row, f"{side}_ep")
    ep = math.gcd(ep, per)  # experts spread over the worker's GPUs
    if _bool(c["dp_attention"], source, row, f"{side}_dp_attention"):
        tp, adp = 1, per
    else:
        tp, adp = per, 1
    return {"hardware": _text(c["hardware"], source, row, f"{side}_hardware",
                              "a hardware preset name"),
            "tp": tp, "attention_dp": adp, "ep": ep, "workers": workers, "devices": per}


def check_table(table: pd.DataFrame, source: str) -> list:
    """The end-to-end rows as records (pools mapped to dse strategies), or ConfigError."""
    columns = [str(c).strip() for c in table.columns]
    for col in REQUIRED:
        if col not in columns:
            raise ConfigError(f"{source}: column {col!r}: missing required column of a "
                              f"disaggregated table; required: {', '.join(REQUIRED)}")
    df = table.copy()
    df.columns = columns
    out = []
    for i, rec in enumerate(df.to_dict("records")):
        row = i + 2
        scope = _text(rec["scope"], source, row, "scope", "end_to_end, prefill_pool_only or "
                      "decode_pool_only")
        if scope != SCOPE:
            continue
        r = {"row": row, "engine": _text(rec["engine"], source, row, "engine", "an engine"),
             "model": _text(rec["model"], source, row, "model", "a model preset name")}
        for col in ("weight_dtype", "act_dtype", "kv_dtype"):
            r[col] = _dtype(rec.get(col), source, row, col)
        # optional precision recipe (dse.quant), default uniform
        r["quant"] = DEFAULT_QUANT if _missing(rec.get("quant")) else _text(
            rec["quant"], source, row, "quant", "a precision recipe name or a path")
        for col in ("input_tokens", "output_tokens"):
            r[col] = _positive_int(rec[col], source, row, col)
        r["concurrency"] = _count(rec["concurrency"], source, row, "concurrency")
        # optional: the benchmark run's prompts (0 or empty: the steady state)
        r["num_prompts"] = _prompts(rec.get("num_prompts"), source, row)
        r["prefill"] = _pool(rec, "prefill", source, row)
        r["decode"] = _pool(rec, "decode", source, row)
        for col in MEASURED_COLUMNS:
            r[col] = _seconds(rec[col], source, row, col)
        if _missing(rec.get("measured_ttft_s")) and _missing(rec.get("measured_tpot_s")):
            _fail(source, row, "measured_ttft_s", rec.get("measured_ttft_s"),
                  "an end-to-end row needs a measured TTFT or TPOT")
        out.append(r)
    if not out:
        raise ConfigError(f"{source}: no end_to_end rows to compare")
    return out


def _pass_times(r: dict, side: str, batches: np.ndarray, source: str, base_dir):
    """(pass time per batch [s], decode slots) of one pool of row ``r``: the static
    prefill pass (``ttft_s``) or decode step (``tpot_s``)."""
    p = r[side]
    grid = {"hardware": [p["hardware"]], "model": [r["model"]], "serving": ["static"],
            "engine": [r["engine"]], "batch": [int(b) for b in batches],
            "input_tokens": [r["input_tokens"]], "output_tokens": [r["output_tokens"]],
            "tp": [p["tp"]], "attention_dp": [p["attention_dp"]], "ep": [p["ep"]],
            "weight_dtype": [r["weight_dtype"]], "act_dtype": [r["act_dtype"]],
            "kv_dtype": [r["kv_dtype"]], "quant": [r["quant"]]}
    ds = evaluate(parse_sweep({"grid": grid}, source=f"{source}: row {r['row']}",
                              base_dir=base_dir))
    name = "ttft_s" if side == "prefill" else "tpot_s"
    times = ds[name].squeeze().values.reshape(-1)
    return times, float(np.asarray(ds["slots"].values).min())


def _prefill_launches(r: dict, source: str, base_dir) -> float:
    """Operator launches of one prefill pass of row ``r``'s prefill pool (the ops with work
    along the pass, as ``kernels/serving.launches`` counts them): an engine that runs
    prefill eagerly pays its ``eager_op_s`` for each."""
    from .explain import explain
    p = r["prefill"]
    table, _ = explain(base_dir=base_dir, source=f"{source}: row {r['row']}",
                       hardware=p["hardware"], model=r["model"], serving="static",
                       engine=r["engine"], batch=1, input_tokens=r["input_tokens"],
                       output_tokens=2, tp=p["tp"], attention_dp=p["attention_dp"],
                       ep=p["ep"], weight_dtype=r["weight_dtype"], act_dtype=r["act_dtype"],
                       kv_dtype=r["kv_dtype"], quant=r["quant"])
    ops = table[(table["phase"] == "prefill") & (table["time_s"] > 0.0)]
    return float(ops["count"].sum())


def _ladder(top: float) -> np.ndarray:
    return np.unique(np.round(np.geomspace(1, max(top, 1), LADDER_POINTS))).astype(int)


def validate_disaggregated(table: pd.DataFrame, source: str = "<table>",
                           base_dir: Path | str | None = None):
    """Predict every end-to-end disaggregated row; (rows, scorecard) as
    :func:`dse.validate.validate` (scorecard rows per prefill hardware and model)."""
    base = Path(base_dir) if base_dir is not None else None
    records = check_table(table, source)
    out = []
    for r in records:
        where = f"{source}: row {r['row']}"
        eng = load_engine(r["engine"], base, where, "engine")
        quant = load_quant(r["quant"], base, where, "quant")
        hw = {h: load_hardware(h, base, where, "hardware")
              for h in {r["prefill"]["hardware"], r["decode"]["hardware"]}}
        model = load_model(r["model"], base, where, "model")
        x, y = r["prefill"]["workers"], r["decode"]["workers"]
        # whole prompts one prefill pass holds: the instance's token budget (every
        # attention-DP rank's own where the engine schedules per rank) over a prompt
        tokens, _ = replica_limits(eng, 0, r["prefill"]["attention_dp"])
        budget = max(1, tokens // r["input_tokens"])
        bp = _ladder(min(budget, r["concurrency"]))
        bd = _ladder(r["concurrency"] / y)
        tp_, _ = _pass_times(r, "prefill", bp, source, base)
        # a prefill pass runs without CUDA graphs on SGLang and TensorRT-LLM's PyTorch
        # backend: at least its launches x the engine's eager_op_s (as in aggregated
        # continuous serving, kernels/serving.eager_device)
        if eng.eager_op_s > 0.0:
            tp_ = np.maximum(tp_, _prefill_launches(r, source, base) * eng.eager_op_s)
        td_, slots = _pass_times(r, "decode", bd, source, base)
        it = eng.iteration_overhead_s
        pair = pd.DataFrame([{
            "model": model.name, "input_tokens": r["input_tokens"],
            "p_kv_dtype": quant.kv_cache or _resolved_kv(r), "p_tp": r["prefill"]["tp"], "p_pp": 1,
            "d_tp": r["decode"]["tp"], "d_pp": 1,
            # the presets' names (a row may name a preset file by its path)
            "p_hardware": hw[r["prefill"]["hardware"]].name,
            "d_hardware": hw[r["decode"]["hardware"]].name, "scaleup_bandwidth_scale": 1.0,
            "scaleout_bandwidth_scale": 1.0}])
        devices = x * r["prefill"]["devices"] + y * r["decode"]["devices"]
        transfer, link = kv_transfer(pair, np.array([devices], float),
                                     {h.name: h for h in hw.values()}, {model.name: model})
        s = closed_loop(r["concurrency"], r["output_tokens"] - 1, x, y,
                        lambda b: np.interp(b, bp, tp_) + it,
                        lambda b: np.interp(b, bd, td_) + it,
                        float(budget), max(slots, 1.0), eng.request_overhead_s,
                        float(transfer[0]))
        ttft = s["ttft_s"]
        if r["num_prompts"]:  # the run's first wave meets an idle pool all at once
            first = first_wave(min(r["concurrency"], r["num_prompts"]), x,
                               lambda b: np.interp(b, bp, tp_) + it, float(budget),
                               eng.request_overhead_s, float(transfer[0]))
            ttft = run_ttft(r["num_prompts"], r["concurrency"], first, s["ttft_s"])
        out.append({"row": r["row"], "engine": eng.name, "hardware": r["prefill"]["hardware"],
                    "model": model.name, "concurrency": r["concurrency"],
                    "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
                    "prefill_workers": x, "decode_workers": y,
                    "measured_ttft_s": r["measured_ttft_s"],
                    "measured_tpot_s": r["measured_tpot_s"],
                    "num_prompts": r["num_prompts"],
                    "predicted_ttft_s": ttft, "predicted_tpot_s": s["tpot_s"],
                    "steady_ttft_s": s["ttft_s"],
                    "predicted_requests_per_s": s["requests_per_s"],
                    "prefill_batch": s["prefill_batch"], "decode_batch": s["decode_batch"],
                    "saturated": s["saturated"] or None, "kv_transfer_s": float(transfer[0]),
                    "kv_transfer_link": link[0], "feasible": slots >= 1,
                    "infeasible_reason": None if slots >= 1 else "out_of_memory"})
    rows = pd.DataFrame(out)
    with np.errstate(invalid="ignore", divide="ignore"):
        for m in ("ttft", "tpot"):
            rows[f"{m}_error_pct"] = 100.0 * (rows[f"predicted_{m}_s"]
                                              - rows[f"measured_{m}_s"]) / rows[f"measured_{m}_s"]
    return rows, make_scorecard(rows)


def _resolved_kv(r: dict) -> str:
    """The KV precision with ``same`` resolved (kv -> act -> weight)."""
    for col in ("kv_dtype", "act_dtype", "weight_dtype"):
        if r[col] != "same":
            return r[col]
    raise AssertionError(shown(r))
