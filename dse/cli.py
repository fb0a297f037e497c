"""Command line: ``dse sweep | recommend | plot | report | explain | list | model import |
calibrate | validate``.

Every expected failure ends in :func:`main`, the one place that turns it into one line on
stderr and exit status 2: bad input (:class:`ConfigError`), an unusable output location
(:class:`OutputError`), a bad option (argparse's errors, raised as :class:`UsageError`
instead of printing the usage), a file the system refuses (any ``OSError``), and Ctrl-C.
A closed stdout pipe (``dse list hardware | head -1``) ends quietly. Anything else is a bug
and keeps its traceback.

Only the standard library is imported at module level, so Ctrl-C during start-up (while
numpy, numba and xarray load) reaches :func:`main`'s handler too.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

EXIT_USAGE = 2
# The run worked but nothing qualifies: no feasible configuration (sweep) or no hardware
# within the SLOs (recommend). The tables are written; a script tells this from an error.
EXIT_NOTHING_FEASIBLE = 3
# --memory-limit bounds: a whole number of bytes (0.5 is none), and far above any machine's
# memory a typo (1e999 is not a number of bytes at all). Whether a budget fits the grid is
# the sweep's check, which names both sizes.
MIN_MEMORY_BYTES = 1
# a sweep that spent this long compiling kernels says so (a first run on a machine)
COMPILE_NOTE_S = 1.0
MAX_MEMORY_BYTES = 1 << 60
MAX_WORKERS = 1024


class UsageError(Exception):
    """A bad command line (unknown option, missing or malformed value)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line in :func:`main`) instead of
    printing the usage and exiting; the usage is for ``--help``."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def parse_bytes(text: str) -> int:
    """'2GB', '2G', '512MiB', '512Mi', '1.5e9' -> bytes: decimal units for k/M/G/T with or
    without a B (kB, MB, GB, TB: 1e3 ... 1e12, as Kubernetes reads 2G), binary for Ki/Mi/Gi/
    Ti with or without a B (2**10 ... 2**40); case-insensitive."""
    from .config import human_bytes
    units = {"": 1, "b": 1}
    for i, p in enumerate("kmgt", start=1):
        units |= {p: 1e3 ** i, p + "b": 1e3 ** i, p + "i": 2 ** (10 * i),
                  p + "ib": 2 ** (10 * i)}
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    value = float(m.group(1)) * units[m.group(2).lower()] \
        if m and m.group(2).lower() in units else math.nan
    if not MIN_MEMORY_BYTES <= value <= MAX_MEMORY_BYTES:  # also NaN and inf
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a size from {human_bytes(MIN_MEMORY_BYTES)} to "
            f"{human_bytes(MAX_MEMORY_BYTES)}, like 2GB, 512MiB or 1e9")
    return int(value)


def _int_option(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer from {lo} to {hi:,}")
        return value
    return parse


def _fail(msg: str) -> int:
    print(f"dse: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return EXIT_USAGE


def _nothing(msg: str) -> int:
    """The run finished and wrote its tables, but nothing qualifies: one line, exit 3."""
    print(f"dse: {' '.join(str(msg).split())}", file=sys.stderr)
    return EXIT_NOTHING_FEASIBLE


def cmd_sweep(args) -> int:
    from .config import load_sweep
    from .sweep import interrupted_text, rate_text, run_sweep
    spec = load_sweep(args.spec)
    try:
        s = run_sweep(spec, args.out, overwrite=args.overwrite,
                      progress=False if args.quiet else None, results=not args.no_results,
                      memory_limit_bytes=args.memory_limit, resume=args.resume,
                      partition_by=tuple(p for p in args.partition_by.split(",") if p),
                      scheduler=args.scheduler, workers=args.workers,
                      chunk_rows=args.chunk_rows, breakdown=args.breakdown,
                      valid_only=args.valid_only)
    except KeyboardInterrupt:
        spec_arg = f"{args.spec} " if args.spec else ""
        return _fail(interrupted_text(Path(args.out),
                                      f"dse sweep {spec_arg}--out {args.out} --resume"))
    if not args.quiet and not args.json:
        rate = s.n_configs / s.seconds["total"]
        resumed = f", {s.n_resumed} of {s.n_chunks} chunks resumed" if s.n_resumed else ""
        print(f"{s.n_configs:,} configurations ({s.n_feasible:,} feasible) in "
              f"{s.seconds['total']:.2f} s ({rate_text(rate)}, {s.n_chunks} "
              f"chunk{'s' if s.n_chunks != 1 else ''}{resumed}); {s.n_pareto:,} Pareto "
              f"points; best found for {s.n_groups_with_best} of {s.n_groups} groups -> "
              f"{s.out_dir}/")
        if s.seconds.get("compile", 0.0) >= COMPILE_NOTE_S:
            print(f"(first run: numba compiled the kernels in {s.seconds['compile']:.1f} s of "
                  "that; they are cached, so later runs skip it)")
        if spec.disaggregated is not None:
            print(f"disaggregated: {s.n_disaggregated:,} pairings (frontiers and bests); a "
                  f"best pairing for {s.n_disaggregated_best} groups -> "
                  f"{s.out_dir}/disaggregated.parquet")
    report = None
    if args.report and s.n_feasible:
        from .report import write_report
        report = write_report(s.out_dir).path
    if args.json:
        import json
        from .answer import answer_json
        print(json.dumps(answer_json(s, spec, report), allow_nan=False))
    elif not args.quiet:
        if s.n_feasible:
            from .answer import answer_text
            print(answer_text(s, spec, report))
    if s.n_feasible == 0:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(
            s.reason_counts.items(), key=lambda kv: -kv[1]))
        return _nothing(f"{spec.source}: no feasible configuration among {s.n_configs:,} "
                        f"(by reason: {reasons}); tables written to {s.out_dir}/")
    return 0


def cmd_plot(args) -> int:
    from .plot import MAX_PANELS, plot_frontiers
    result = plot_frontiers(args.dir, out=args.out, fmt=args.format,
                            max_panels=args.max_panels)
    for path in result.paths:
        print(f"wrote {path}: {result.n_panels} (model, workload) panel"
              f"{'s' if result.n_panels != 1 else ''}, {result.n_series} frontier"
              f"{'s' if result.n_series != 1 else ''}")
    if result.n_left_out:
        print(f"{result.n_left_out} more panel{'s' if result.n_left_out != 1 else ''} left "
              f"out; raise --max-panels (at most {MAX_PANELS})")
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    r = write_report(args.dir, out=args.out, max_panels=args.max_panels)
    print(f"wrote {r.path}: {r.n_panels} (model, workload) panel"
          f"{'s' if r.n_panels != 1 else ''} of {r.n_series} frontier"
          f"{'s' if r.n_series != 1 else ''}, {r.n_best_rows:,} best row"
          f"{'s' if r.n_best_rows != 1 else ''}, {r.n_what_if} what-if chart"
          f"{'s' if r.n_what_if != 1 else ''}")
    if r.n_left_out:
        print(f"{r.n_left_out} more panel{'s' if r.n_left_out != 1 else ''} left out; "
              "raise --max-panels")
    return 0


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _explain_params(args) -> dict:
    """The configuration ``dse explain`` shows: its flags (checked here, so a message
    names the flag), then the first value of each axis of ``--spec``."""
    from .axes import AXIS, names
    from .config import ConfigError, load_hardware, load_model, load_sweep
    from .engines import load_engine
    from .quant import load_quant
    for key in names():
        value = getattr(args, key)
        problem = value is not None and AXIS[key].kind != "preset" and AXIS[key].problem(value)
        if problem:
            raise ConfigError(f"{_flag(key)} {value}: {problem}")
    for key, load in (("hardware", load_hardware), ("model", load_model),
                      ("engine", load_engine), ("quant", load_quant)):
        if getattr(args, key) is not None:
            load(getattr(args, key), source="command line", key=_flag(key))
    spec_axes = {}
    if args.spec:
        spec = load_sweep(args.spec)
        spec_axes = {k: v[0] for k, v in (*spec.grid.items(), *spec.what_if.items())}
    params = {}
    for key in names():
        val = getattr(args, key)
        params[key] = val if val is not None else spec_axes.get(key)
    return {k: v for k, v in params.items() if v is not None}


def cmd_explain(args) -> int:
    import pandas as pd
    from .explain import explain
    from .io import write_csv, write_table
    table, summary = explain(**_explain_params(args), breakdown=args.breakdown)
    if args.csv:
        write_csv(Path(args.csv), table)
    if args.parquet:
        import pyarrow as pa
        write_table(Path(args.parquet), pa.Table.from_pandas(table, preserve_index=False))
    if args.json:
        print(_json_text({"operators": _json_records(table), "summary": summary}))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    print()
    for key, val in summary.items():
        print(f"{key:>26}: {val:.6g}" if isinstance(val, float) else f"{key:>26}: {val}")
    return 0


def cmd_init(args) -> int:
    from .config import parse_sweep
    from .init import starter_spec
    from .io import write_preset
    out = Path(args.file)
    write_preset(out, starter_spec(), lambda data, source, text: parse_sweep(data, source),
                 args.overwrite)
    print(f"wrote {out}: every spec key at its default, commented; edit it, then "
          f"`dse sweep {args.file} --out results`")
    return 0


def _positive_number(text: str) -> float:
    """An argparse type: a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
    return value


def _names(text: str) -> list[str]:
    """An argparse type: comma-separated names (empty items dropped)."""
    return [n.strip() for n in text.split(",") if n.strip()]


def cmd_recommend(args) -> int:
    from .recommend import build_spec, json_doc, run, text
    spec = build_spec(args.model, args.input_tokens, args.output_tokens, args.max_ttft_s,
                      args.max_tpot_s, args.hardware, args.precisions, args.engine,
                      args.max_devices, args.spec, flags=True)
    try:
        rec = run(spec, args.out, args.requests_per_s, args.overwrite,
                  progress=False if args.quiet else None, rate_key="--requests-per-s")
    except KeyboardInterrupt:
        return _fail(f"interrupted; {args.out} holds an unfinished sweep: run again with "
                     "--overwrite")
    report = None
    if args.report and rec.table["found"].any():
        from .report import write_report
        report = write_report(rec.out_dir).path
    if args.json:
        print(_json_text(json_doc(rec) | ({"report": str(report)} if report else {})))
    elif not args.quiet:
        print(text(rec, report))
    if not rec.table["found"].any():
        return _nothing(f"no hardware meets the constraints (reasons in {rec.out_dir}/"
                     "recommend.parquet); relax --max-ttft-s / --max-tpot-s or try other "
                     "--hardware")
    return 0


def _list_json(what: str) -> list[dict]:
    """Every bundled preset of ``what`` as a dict of its fields (``dse list --json``)."""
    import dataclasses
    from .config import bundled_names, load_hardware, load_model
    loaders = {"hardware": load_hardware, "models": load_model}
    if what == "engines":
        from .engines import load_engine
        loaders[what] = load_engine
    elif what == "quant":
        from .quant import load_quant
        loaders[what] = load_quant
    rows = []
    for name in bundled_names(what):
        preset = loaders[what](name)
        row = {k: v for k, v in dataclasses.asdict(preset).items() if k != "text"}
        if what == "models":
            from .compile import active_params, total_params
            row.update(total_params=total_params(preset), active_params=active_params(preset))
        rows.append(row)
    return rows


def cmd_list(args) -> int:
    from .config import bundled_names, load_hardware, load_model
    if args.json:
        print(_json_text(_list_json(args.what)))
        return 0
    if args.what == "hardware":
        # native: the precisions with native math; activations in any other are refused
        # (precision_not_supported), so a chip without fp8 shows no fp8 rate. host: the
        # host tier for offload per device (host_memory_bytes, host_link_bytes_per_s, one
        # direction), blank where the preset has none
        print(f"{'name':<12} {'bf16 TFLOP/s':>12} {'fp8 TFLOP/s':>11} {'HBM GB':>7} "
              f"{'HBM TB/s':>8} {'scale-up GB/s':>13} {'domain':>6} {'host GB':>7} "
              f"{'host link GB/s':>14}  {'native precisions':<29}  description")
        for name in bundled_names("hardware"):
            h = load_hardware(name)
            fp8 = f"{h.flops_per_s['fp8'] / 1e12:.0f}" if "fp8" in h.flops_per_s else "-"
            host = f"{h.host_memory_bytes / 1e9:.0f}" if h.host_memory_bytes else ""
            link = f"{h.host_link_bytes_per_s / 1e9:.0f}" if h.host_link_bytes_per_s else ""
            print(f"{h.name:<12} {h.rate('bf16') / 1e12:>12.0f} {fp8:>11} "
                  f"{h.memory_bytes / 1e9:>7.0f} {h.memory_bytes_per_s / 1e12:>8.2f} "
                  f"{h.scaleup_bytes_per_s / 1e9:>13.0f} {h.scaleup_domain_devices:>6} "
                  f"{host:>7} {link:>14}  "
                  f"{','.join(h.native_precisions):<29}  {h.description}")
    elif args.what == "engines":
        from .engines import load_engine
        engines = [load_engine(name) for name in bundled_names("engines")]
        w = max([len("name")] + [len(e.name) for e in engines])
        # limits: the budget and running cap hold per attention-DP rank or for the replica;
        # kernels: the engine's own kernel set (configs/engine_kernels/), "-": none;
        # overlap: whether the scheduler forms the next batch while one runs
        print(f"{'name':<{w}} {'request s':>9} {'iteration s':>11} {'eager op s':>10} "
              f"{'chunked':>7} {'mixed':>5} {'budget':>6} {'max running':>11} {'limits':>7}"
              f" {'kernels':>7} {'overlap':>7}  description")
        for e in engines:
            print(f"{e.name:<{w}} {e.request_overhead_s:>9.4g} {e.iteration_overhead_s:>11.4g} "
                  f"{e.eager_op_s:>10.3g} "
                  f"{'yes' if e.chunked_prefill else 'no':>7} "
                  f"{'yes' if e.mixed_prefill else 'no':>5} {e.max_batched_tokens or '-':>6} "
                  f"{e.max_running_requests or '-':>11} "
                  f"{'rank' if e.per_rank_limits else 'replica':>7} {e.kernels or '-':>7}"
                  f" {'yes' if e.overlap_scheduling else 'no':>7}  {e.description}")
    elif args.what == "quant":
        # the precision recipes: per operator class weight/activation precision ("-": the
        # grid's weight_dtype / act_dtype / kv_dtype)
        from .quant import COLLECTIVES_KEY, TABLE_CLASSES, load_quant
        recipes = [load_quant(name) for name in bundled_names("quant")]
        w = max(len(q.name) for q in recipes)
        heads = ("attention", "experts", "shared", "dense_ffn", "lm_head")
        print(f"{'name':<{w}} " + " ".join(f"{h:>9}" for h in heads)
              + f" {'kv':>4} {'coll.':>5}  description")
        for q in recipes:
            cells = [f"{q.weight(c) or '-'}/{q.act(c) or '-'}" for c in TABLE_CLASSES]
            print(f"{q.name:<{w}} " + " ".join(f"{x:>9}" for x in cells)
                  + f" {q.kv_cache or '-':>4} {q.act(COLLECTIVES_KEY) or '-':>5}  "
                  f"{q.description}")
    else:
        from .compile import active_params, total_params
        models = [load_model(name) for name in bundled_names("models")]
        w = max(len(m.name) for m in models)  # the name column fits the longest name
        print(f"{'name':<{w}} {'params B':>8} {'active B':>8} {'layers':>6} {'hidden':>6} "
              f"{'heads':>5} {'kv':>3} {'experts':>7}  description")
        for m in models:
            experts = f"{m.experts_per_token}/{m.experts}" if m.is_moe else "-"
            print(f"{m.name:<{w}} {total_params(m) / 1e9:>8.2f} {active_params(m) / 1e9:>8.2f} "
                  f"{m.layers:>6} {m.hidden_size:>6} {m.heads:>5} {m.kv_heads:>3} "
                  f"{experts:>7}  {m.description}")
    return 0


def cmd_model_import(args) -> int:
    from .compile import active_params, total_params
    from .config import parse_model
    from .hf_import import import_config
    from .io import write_preset
    name, text = import_config(args.config, args.name)
    out = Path(args.out) if args.out else Path(f"{name}.toml")
    model = write_preset(out, text, parse_model, args.overwrite)
    print(f"wrote {out}: {model.layers} layers, {total_params(model) / 1e9:.2f} B parameters "
          f"({active_params(model) / 1e9:.2f} B active)")
    return 0


def cmd_calibrate(args) -> int:
    from .calibrate import fit, preset_text, read_table
    from .config import ConfigError, load_hardware, parse_hardware
    from .io import check_preset_out, write_preset
    if (args.hardware is None) == (args.engine is None):
        raise ConfigError("calibrate: give --hardware (kernel timings) or --engine (measured "
                          "serving results), one of them")
    out = Path(args.out)
    check_preset_out(out, args.overwrite)  # before the fit: a refusal costs nothing
    if args.engine is not None:
        return _calibrate_engine(args, out)
    hw = load_hardware(args.hardware, source="command line", key="--hardware")
    table = read_table(args.table)
    if args.curves:
        return _calibrate_curves(args, hw, table, out)
    if args.fit_latency:
        raise ConfigError("calibrate: --fit-latency goes with --curves (the scalar fit always "
                          "fits the latency)")
    if args.moe_curves:
        raise ConfigError("calibrate: --moe-curves goes with --curves (the scalar fit has no "
                          "curves)")
    result = fit(hw, table, args.table)
    write_preset(out, preset_text(hw, result, args.table, args.name), parse_hardware,
                 args.overwrite)
    print(f"wrote {out}: compute_efficiency {result.compute_efficiency:.3f}, memory_efficiency "
          f"{result.memory_efficiency:.3f}, kernel_latency_s {result.kernel_latency_s:.3g} "
          f"({result.rows} kernels, median abs error {result.median_abs_pct_error:.1f}%)")
    return 0


def _calibrate_curves(args, hw, table, out: Path) -> int:
    """``dse calibrate --curves``: the preset's efficiency curves fitted on top of its own
    kernel latency (``--fit-latency``: the scalar fit's)."""
    from .calibrate import table_label, with_name, with_values
    from .config import parse_hardware, read_text
    from .curve_fit import curves_text, fit_curves
    from .io import write_preset
    result = fit_curves(hw, table, args.table, latency=None if args.fit_latency else
                        hw.kernel_latency_s, moe_curves=args.moe_curves)
    note = f"fitted by `dse calibrate --curves` to {table_label(args.table)}"
    text = hw.text or read_text(hw.source, "hardware preset (TOML)")
    if args.fit_latency:
        text = with_values(text, {"kernel_latency_s": (result.kernel_latency_s,
                                                       f"fixed seconds per kernel: {note}")})
    write_preset(out, with_name(curves_text(text, result, note), args.name), parse_hardware,
                 args.overwrite)
    fitted = ", ".join(f"{name} ({n} rows)" for name, n in result.rows.items())
    print(f"wrote {out}: {fitted}; kernel_latency_s {result.kernel_latency_s:.3g}; median "
          f"abs error {result.median_abs_pct_error:.1f}%")
    return 0


def _calibrate_engine(args, out: Path) -> int:
    from .engine_fit import engine_preset_text, fit_engine
    from .engines import load_engine, parse_engine
    from .io import write_preset
    from .validate import load_measured
    engine = load_engine(args.engine, source="command line", key="--engine")
    table = Path(args.table)
    result = fit_engine(engine, load_measured(table), str(table), table.parent)
    write_preset(out, engine_preset_text(engine, result, args.table, args.name),
                 parse_engine, args.overwrite)
    eager = (f", eager_op_s {result.eager_op_s:.4g}" if engine.eager_op_s > 0.0 else "")
    print(f"wrote {out}: request_overhead_s {result.request_overhead_s:.4g}, "
          f"iteration_overhead_s {result.iteration_overhead_s:.4g}{eager} ({result.rows} rows; "
          f"median abs error TTFT {result.before[0]:.1f}% -> {result.after[0]:.1f}%, TPOT "
          f"{result.before[1]:.1f}% -> {result.after[1]:.1f}%)")
    return 0


def cmd_validate(args) -> int:
    from .outdir import check_out_dir
    from .validate import (OUTPUT_NAME, bundled_measured_path, format_scorecard, load_measured,
                           validate, write_outputs)
    path = Path(args.measured) if args.measured else bundled_measured_path()
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        check_out_dir(out_dir, args.overwrite)
    rows, card = validate(load_measured(path), source=str(path), base_dir=path.parent,
                          protocol=not args.steady_state, workers=args.workers,
                          progress=True)
    if not args.json:
        print(format_scorecard(card))
    if out_dir is not None:
        out_dir.mkdir(exist_ok=True)
        write_outputs(rows, out_dir / OUTPUT_NAME, scorecard=card, source=str(path))
        if not args.json:
            print(f"row-level comparison -> {out_dir / OUTPUT_NAME}")
    if args.json:
        print(_json_text({"source": str(path), "scorecard": _json_records(card),
                          "rows": _json_records(rows),
                          "output": str(out_dir / OUTPUT_NAME) if out_dir else None}))
    return 0


def _json_records(df) -> list[dict]:
    """A DataFrame as JSON-ready records: NaN and missing as null, numpy scalars as
    Python numbers."""
    import pandas as pd
    return [{k: (None if (not isinstance(v, (list, tuple, dict)) and pd.isna(v)) else
                 v.item() if hasattr(v, "item") else v) for k, v in r.items()}
            for r in df.astype(object).to_dict("records")]


def _json_text(obj) -> str:
    """``obj`` as JSON (infinities as null: JSON has none)."""
    import json
    import math

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x.item() if hasattr(x, "item") else x
    return json.dumps(clean(obj), indent=1, default=str)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .axes import AXES
    p = _Parser(prog="dse", description="Design-space exploration of LLM "
                "inference performance over whole grids of configurations.")
    p.add_argument("--version", action="version", version=f"dse {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser(
        "sweep", help="evaluate a sweep spec and write Parquet tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="spec sections (TOML; `dse init` writes one with every key, commented):\n"
               "  [grid]           axis = [values]: hardware, model, serving, engine, batch,\n"
               "                   input/output_tokens, tp, pp, ep, attention_dp, dp,\n"
               "                   precisions, quant, max_batched_tokens (every combination)\n"
               "  [what_if]        hardware scales: compute, memory bandwidth and capacity,\n"
               "                   links, scale-up domain, link latency, expert imbalance\n"
               "  [constraints]    max_devices, max_ttft_s, max_tpot_s (for best.parquet)\n"
               "  [objectives]     best = the metric best.parquet optimizes, pareto = the 2+\n"
               "                   metrics the frontier spans (e.g.\n"
               "                   cost_per_million_output_tokens)\n"
               "  [disaggregated]  pair prefill and decode pools (mixed_hardware,\n"
               "                   max_instances)\n"
               "  [cost.<hardware>] price per device-hour for cost_per_million_output_tokens:\n"
               "                   price_per_device_hour_usd, or purchase_usd,\n"
               "                   amortization_years, power_usd_per_kwh, pue")
    s.add_argument("spec", nargs="?", help="sweep spec TOML (default: the bundled default sweep)")
    s.add_argument("--out", required=True,
                   help="output folder for configurations/ (the results table), "
                   "pareto.parquet and best.parquet")
    s.add_argument("--overwrite", action="store_true",
                   help="replace the files an earlier sweep wrote in an existing --out")
    talk = s.add_mutually_exclusive_group()
    talk.add_argument("--quiet", action="store_true",
                      help="print nothing: no progress, summary or best table")
    talk.add_argument("--json", action="store_true",
                      help="print the summary (counts, seconds, paths, best rows) as one "
                      "JSON object instead of text (progress still goes to stderr)")
    s.add_argument("--no-results", action="store_true",
                   help="skip the results table (configurations/); write only pareto and "
                   "best tables")
    s.add_argument("--report", action="store_true",
                   help="also write the HTML report (OUT/report.html, as `dse report OUT`): "
                   "the sweep and its picture in one command")
    s.add_argument("--memory-limit", type=parse_bytes, metavar="SIZE",
                   help="peak memory budget, e.g. 2GB, 2G, 2GiB or 512MiB; the grid is "
                   "evaluated in "
                   "chunks that fit it (default: half the memory available now)")
    s.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep of the same spec in --out")
    s.add_argument("--partition-by", default="hardware,model", metavar="AXES",
                   help="comma-separated axes partitioning configurations/ (default: "
                   "hardware,model)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="run chunks on this dask.distributed scheduler (tcp://host:8786)")
    s.add_argument("--workers", type=_int_option(1, MAX_WORKERS), metavar="N",
                   help="start a local dask cluster of N worker processes")
    s.add_argument("--chunk-rows", type=_int_option(1, 1 << 62), metavar="N",
                   help="at most N configurations per chunk (default: sized to --memory-limit)")
    s.add_argument("--valid-only", action="store_true",
                   help="leave out of configurations/ the combinations that are not valid "
                   "(every infeasible_reason but out_of_memory: ep on a dense model, ep "
                   "not dividing tp, ...); they still count in the summary and manifest")
    s.add_argument("--breakdown", action="store_true",
                   help="add to configurations/ the time per operator class (attention, gemm, moe, "
                   "collective, other, offload) of prefill and of decode, and prefill_bound")
    s.set_defaults(func=cmd_sweep)

    from .plot import DEFAULT_MAX_PANELS, FORMATS, MAX_PANELS
    pl = sub.add_parser("plot", help="PNG or SVG of a finished sweep's Pareto frontiers")
    pl.add_argument("dir", help="the --out folder of a finished `dse sweep`")
    pl.add_argument("--format", choices=FORMATS,
                    help="png (default) or svg; default: the suffix of --out, else png")
    pl.add_argument("--out", metavar="PATH", help="a .png / .svg file, or a folder for "
                    "pareto.png (default: DIR/plots/)")
    pl.add_argument("--max-panels", type=_int_option(1, MAX_PANELS),
                    default=DEFAULT_MAX_PANELS, metavar="N", help="at most N (model, "
                    f"workload) panels (default {DEFAULT_MAX_PANELS}); the rest are counted")
    pl.set_defaults(func=cmd_plot)

    from .report import DEFAULT_MAX_PANELS as REPORT_PANELS
    rp = sub.add_parser("report", help="one self-contained HTML page of a finished sweep "
                        "(interactive frontiers, best table, what-ifs, bottlenecks)")
    rp.add_argument("dir", help="the --out folder of a finished `dse sweep`")
    rp.add_argument("--out", metavar="PATH", help="a .html file, or a folder for "
                    "report.html (default: DIR/report.html)")
    rp.add_argument("--max-panels", type=_int_option(1, MAX_PANELS), default=REPORT_PANELS,
                    metavar="N", help="at most N (model, workload) frontier panels "
                    f"(default {REPORT_PANELS}); the rest are counted")
    rp.set_defaults(func=cmd_report)

    from .axes import AXIS as _AXIS
    from .recommend import DEFAULT_OUT, DEFAULT_PRECISIONS
    rc = sub.add_parser(
        "recommend", help="rank hardware by cost per million tokens for one model and "
        "workload within TTFT/TPOT SLOs (runs the sweep it needs)",
        description="Sweep the hardware over a strategy grid (tp, pp, ep/attention_dp for "
        "MoE, batch 1..512, native precisions; continuous serving), keep per hardware the "
        "cheapest configuration meeting the SLOs, and print them ranked by cost per million "
        "tokens; hardware without a price follows by tokens/s per device, hardware where "
        "nothing qualifies last with the reason. Writes OUT/recommend.parquet beside the "
        "sweep's pareto.parquet and best.parquet (`dse report OUT` draws them).")
    rc.add_argument("--model", help="model preset (name or .toml path); required unless "
                    "--spec sets it")
    rc.add_argument("--input-tokens", type=_int_option(1, _AXIS["input_tokens"].bound),
                    metavar="N", help="prompt tokens per request")
    rc.add_argument("--output-tokens", type=_int_option(1, _AXIS["output_tokens"].bound),
                    metavar="N", help="generated tokens per request")
    rc.add_argument("--max-ttft-s", type=_positive_number, metavar="S",
                    help="SLO: time to first token at most S seconds")
    rc.add_argument("--max-tpot-s", type=_positive_number, metavar="S",
                    help="SLO: time per output token at most S seconds (0.05: 20 tokens/s "
                    "per user)")
    rc.add_argument("--requests-per-s", type=_positive_number, metavar="R",
                    help="target rate: replicas = ceil(R / requests/s of one replica), "
                    "devices and $/hour for it (default: one replica)")
    rc.add_argument("--hardware", type=_names, metavar="A,B,...",
                    help="comma-separated hardware presets (default: every bundled "
                    "accelerator with a price)")
    rc.add_argument("--precisions", type=_names, metavar="P,Q,...",
                    help="weight precisions to try, activations and KV cache the same "
                    f"(default: {','.join(DEFAULT_PRECISIONS)}; a chip keeps its native ones)")
    rc.add_argument("--engine", help="serving-engine preset (default: vllm)")
    rc.add_argument("--max-devices", type=_int_option(1, 1 << 60), metavar="N",
                    help="at most N devices per replica")
    rc.add_argument("--spec", help="a sweep spec TOML as the base (its grid, what-ifs, "
                    "constraints and [cost]; strategy axes it leaves unset get the default "
                    "grid); the options given replace its keys")
    rc.add_argument("--out", default=DEFAULT_OUT, help="output folder for recommend.parquet "
                    f"and the sweep's tables (default: {DEFAULT_OUT})")
    rc.add_argument("--overwrite", action="store_true",
                    help="replace the files an earlier dse recommend wrote in --out")
    rc.add_argument("--report", action="store_true",
                    help="also write the HTML report of the sweep behind the ranking "
                    "(OUT/report.html: its frontiers and best table)")
    rtalk = rc.add_mutually_exclusive_group()
    rtalk.add_argument("--quiet", action="store_true", help="print nothing (no progress "
                       "or table); the exit status still says whether any hardware qualifies")
    rtalk.add_argument("--json", action="store_true", help="print the options and the ranked "
                       "rows as one JSON object instead of the table")
    rc.set_defaults(func=cmd_recommend)

    e = sub.add_parser("explain", help="per-operator table of one configuration")
    e.add_argument("--spec", help="take unset values from the first value of each axis of SPEC")
    for axis in AXES:  # one flag per axis of the registry
        e.add_argument(_flag(axis.name), dest=axis.name, help=axis.doc,
                       type={"int": int, "scale": float, "fraction": float}.get(axis.kind))
    e.add_argument("--csv", help="also write the table as CSV")
    e.add_argument("--parquet", help="also write the table as Parquet")
    e.add_argument("--json", action="store_true", help="print the operators and the summary "
                   "as one JSON object instead of the text table")
    e.add_argument("--breakdown", action="store_true", help="add the sweep's --breakdown "
                   "columns (time per operator class, prefill_bound) to the summary")
    e.set_defaults(func=cmd_explain)

    mo = sub.add_parser("model", help="model presets")
    mo_sub = mo.add_subparsers(dest="model_command", required=True, parser_class=_Parser,
                                help="import: a Hugging Face config.json as a preset")
    imp = mo_sub.add_parser("import", help="Hugging Face config.json -> model preset TOML")
    imp.add_argument("config", help="path to a local config.json")
    imp.add_argument("--name", help="preset name (default: the config's folder name)")
    imp.add_argument("--out", help="output .toml (default: NAME.toml here)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing --out preset file")
    imp.set_defaults(func=cmd_model_import)

    cal = sub.add_parser("calibrate", help="fit a hardware preset to measured kernel timings, "
                         "or an engine preset's overheads to measured serving results")
    cal.add_argument("table", help="--hardware: CSV or Parquet of op, dtype, latency_s, and "
                     "flops+bytes or m,n,k for gemm rows; --engine: a measured serving table "
                     "as `dse validate` reads (its continuous rows of that engine)")
    cal.add_argument("--hardware", help="base hardware preset (name or path)")
    cal.add_argument("--engine", help="base engine preset (name or path): fit its "
                     "request_overhead_s and iteration_overhead_s, and its eager_op_s when "
                     "it prefills eagerly")
    cal.add_argument("--out", required=True, help="fitted preset .toml to write")
    cal.add_argument("--name", help="name of the fitted preset (default: the base name)")
    cal.add_argument("--curves", action="store_true", help="--hardware: fit size-dependent "
                     "efficiency curves (GEMM, attention, collectives: rows with op gemm/moe, "
                     "attention, all_reduce/all_gather/reduce_scatter/all_to_all with devices "
                     "and message_bytes) on top of the preset's kernel latency")
    cal.add_argument("--fit-latency", action="store_true", help="with --curves: fit the "
                     "kernel latency too (the scalar fit's) instead of keeping the preset's")
    cal.add_argument("--moe-curves", action="store_true", help="with --curves: fit the op moe "
                     "rows (grouped expert kernels) to curves of their own (moe_compute, "
                     "moe_memory: the routed experts computing in 8 bits or fewer use them) "
                     "and the op moe_wo rows (weight-only quantized experts, timed whole) "
                     "to moe_wo_compute, moe_wo_memory, instead of joining them to the GEMM "
                     "rows")
    cal.add_argument("--overwrite", action="store_true", help="replace an existing --out preset file")
    cal.set_defaults(func=cmd_calibrate)

    val = sub.add_parser("validate", help="compare predictions with measured TTFT / TPOT",
                         description="Predict every row of a measured table and print a "
                         "scorecard of the errors: per (hardware, model), per hardware, per "
                         "engine, per load (concurrent requests 1-4, 5-16, 17-64, over 64) "
                         "and overall.")
    val.add_argument("measured", nargs="?", help="CSV of measured end-to-end results "
                     "(default: the bundled public measurements)")
    val.add_argument("--out", help="folder for validation.parquet (row-level comparison)")
    val.add_argument("--overwrite", action="store_true", help="replace the validation.parquet of an earlier run in --out")
    val.add_argument("--json", action="store_true", help="print the scorecard and the "
                     "row-level comparison as one JSON object instead of the text table")
    val.add_argument("--steady-state", action="store_true", help="compare every row with "
                     "the closed-form steady state, also rows that give their benchmark "
                     "run (num_prompts), which are otherwise simulated (about a second each)")
    val.add_argument("--workers", type=_int_option(1, MAX_WORKERS), default=1, metavar="N",
                     help="simulate those benchmark runs in N processes (default 1: in this "
                     "one); the results do not depend on N")
    val.set_defaults(func=cmd_validate)

    ini = sub.add_parser("init", help="write a commented starter sweep spec with every key")
    ini.add_argument("file", nargs="?", default="sweep.toml",
                     help="spec file to write (default: sweep.toml here)")
    ini.add_argument("--overwrite", action="store_true", help="replace an existing spec file")
    ini.set_defaults(func=cmd_init)

    ls = sub.add_parser("list", help="show the bundled presets")
    ls.add_argument("what", choices=["hardware", "models", "engines", "quant"],
                    help="which presets: accelerators, models, serving engines or precision "
                    "recipes")
    ls.add_argument("--json", action="store_true", help="print every field of each preset "
                    "as a JSON array (units: SI, as in the preset files)")
    ls.set_defaults(func=cmd_list)
    return p


def _os_error_text(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: its reader is gone, and the interpreter's last flush
    must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv=None) -> int:
    """Run one ``dse`` command; returns its exit status (0, or 2 after one line)."""
    from .errors import ConfigError, OutputError
    try:
        args = build_parser().parse_args(argv)
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe fails here, inside the handlers
        return status
    except (ConfigError, OutputError, UsageError) as exc:
        return _fail(str(exc))
    except BrokenPipeError:  # `dse list hardware | head -1`: the reader has what it wanted
        _quiet_stdout()
        return 0
    except OSError as exc:  # the system refused a file operation: not a bug of dse
        return _fail(_os_error_text(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
