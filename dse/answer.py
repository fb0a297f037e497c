"""What ``dse sweep`` prints after its summary line: the answer, where it is, what next.

The human text is a compact aligned table of the best configuration of the first
:data:`SHOWN_GROUPS` groups (rows of ``best.parquet``, in its order: grid order), a count
of the rest, the files the sweep wrote and the next command. ``--json`` prints the same as
one JSON object: the summary's counts and seconds, the paths, and the best rows (at most
:data:`JSON_ROWS`; ``best_left_out`` counts the rest, which ``best.parquet`` holds).

Only the first rows of ``best.parquet`` are read (a sweep may have millions of groups);
which columns the table needs comes from the spec (the axes it varies), not the rows.
"""
from __future__ import annotations

import math
import shlex
from pathlib import Path

SHOWN_GROUPS = 5
JSON_ROWS = 1000
# strategy axes shown only where the spec varies them or fixes a value besides the default
OPTIONAL_STRATEGY = ("pp", "ep", "attention_dp", "cp", "dp", "max_batched_tokens",
                     "spec_tokens", "draft_model")
# group axes besides model, workload and hardware, shown where the spec varies them (the
# named ones as name=value)
OTHER_GROUP = ("serving", "engine")
NAMED_GROUP = ("prefix_cached_fraction", "acceptance_rate", "beams")


def _first_rows(path: Path, n: int):
    """(the first ``n`` rows of a Parquet file as dicts, its number of rows)."""
    import pyarrow.parquet as pq
    f = pq.ParquetFile(path)
    total = f.metadata.num_rows
    rows = []
    for batch in f.iter_batches(batch_size=max(1, min(n, total))):
        rows += batch.to_pylist()[:n - len(rows)]
        if len(rows) >= n:
            break
    return rows, total


def files(summary, spec, report=None) -> dict:
    """What the sweep wrote, by role -> path (as the user gave ``--out``); ``report``: the
    HTML report's path where ``--report`` wrote one."""
    out = Path(summary.out_dir)
    from .outdir import TABLE_DIR
    paths = {"results": out / TABLE_DIR, "pareto": out / "pareto.parquet",
             "best": out / "best.parquet", "manifest": out / "manifest.json"}
    if spec.disaggregated is not None:
        paths["disaggregated"] = out / "disaggregated.parquet"
    paths["sensitivity"] = out / "sensitivity.parquet"  # with what-if axes only
    if report is not None:
        paths["report"] = Path(report)
    return {k: str(p) for k, p in paths.items() if p.exists()}


def next_command(summary) -> str:
    """The command to run next: the HTML report of the sweep (``dse plot`` for images)."""
    return f"dse report {shlex.quote(str(summary.out_dir))}"


def _varies(spec, axis: str) -> bool:
    values = spec.grid.get(axis, spec.what_if.get(axis, ()))
    return len(values) > 1


def _seconds(x) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x * 1e3:.3g} ms" if x * 1e3 < 999.5 else f"{x:.3g} s"


def _rate(x) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _precision(row) -> str:
    w, a, kv = row["weight_dtype"], row["act_dtype"], row["kv_dtype"]
    return w if w == a == kv else f"w {w} a {a} kv {kv}"


def _strategy(row, spec) -> str:
    from .axes import AXIS
    parts = [f"tp={row['tp']}"]
    for axis in OPTIONAL_STRATEGY:
        if _varies(spec, axis) or spec.grid[axis] != AXIS[axis].default:
            parts.append(f"{axis}={row[axis]}")
    parts += [f"batch={row['batch']}", _precision(row)]
    if _varies(spec, "quant") or spec.grid["quant"] != AXIS["quant"].default:
        parts.append(f"quant={row['quant']}")  # the precision recipe over those
    return " ".join(parts)


def _other(row, spec) -> str:
    from .evaluate import WHAT_IF_DIMS
    parts = [str(row[d]) for d in OTHER_GROUP if _varies(spec, d)]
    parts += [f"{d}={row[d]:g}" for d in NAMED_GROUP if _varies(spec, d)]
    parts += [f"{d}={row[d]:g}" for d in WHAT_IF_DIMS if _varies(spec, d)]
    return " ".join(parts)


def _usd(x, missing: str = "-") -> str:
    """A price in dollars: "$1,234" from $100, else three significant digits ("$0.519")."""
    if x is None or not math.isfinite(x):
        return missing
    return f"${x:,.0f}" if x >= 99.95 else f"${x:.3g}"


# [objectives] best -> (column head, format, what the table's title says it optimizes)
OBJECTIVE_TEXT = {
    "tokens_per_s_per_device": ("tokens/s/device", _rate, "most tokens/s per device"),
    "tokens_per_s_per_user": ("tokens/s/user", _rate, "most tokens/s per user"),
    "throughput_tokens_per_s": ("tokens/s", _rate, "most tokens/s"),
    "requests_per_s": ("requests/s", _rate, "most requests/s"),
    "cost_per_million_output_tokens": ("$/M tokens", _usd, "lowest cost per million output tokens"),
    "ttft_s": ("TTFT", _seconds, "lowest TTFT"),
    "tpot_s": ("TPOT", _seconds, "lowest TPOT"),
    "e2e_latency_s": ("latency", _seconds, "lowest end-to-end latency"),
    "devices": ("devices", lambda x: f"{x:.0f}", "fewest devices"),
    "energy_per_token_j": ("J/token", lambda x: "-" if x is None or not math.isfinite(x)
                           else f"{x:.3g}", "least energy per output token"),
}
SHOWN_METRICS = ("tokens_per_s_per_device", "ttft_s", "tpot_s")


def _why(row) -> str:
    """What decided the pick: the limits that bind, the axes at the end of their range."""
    parts = []
    if row.get("binding_constraints"):
        parts.append("bound by " + row["binding_constraints"].replace(",", ", "))
    if row.get("edge_axes"):
        parts.append("at the edge: " + row["edge_axes"].replace(",", ", "))
    return "; ".join(parts)


def best_table(summary, spec, n: int = SHOWN_GROUPS) -> list[str]:
    """Lines of the aligned best-per-group table (first ``n`` groups, then a count)."""
    rows, total = _first_rows(Path(summary.out_dir) / "best.parquet", n)
    other = any(_varies(spec, d) for d in (*OTHER_GROUP, *NAMED_GROUP)) or \
        any(_varies(spec, d) for d in spec.what_if)
    metrics = tuple(dict.fromkeys((spec.objectives.best, *SHOWN_METRICS)))
    heads = [OBJECTIVE_TEXT[m][0] for m in metrics]
    why = any(_why(r) for r in rows)
    head = ["model", "in/out tokens", "hardware", *(["variant"] if other else []),
            "strategy", *heads, *(["why"] if why else [])]
    body = []
    for r in rows:
        cells = [str(r["model"]), f"{r['input_tokens']}/{r['output_tokens']}",
                 str(r["hardware"]), *([_other(r, spec)] if other else [])]
        if r["found"]:
            cells += [_strategy(r, spec), *(OBJECTIVE_TEXT[m][1](r[m]) for m in metrics)]
        else:
            cells += ["none meets the constraints", *("-" for _ in metrics)]
        body.append(cells + ([_why(r)] if why else []))
    right = set(heads)
    width = [max(len(c[i]) for c in (head, *body)) for i in range(len(head))]

    def line(cells):
        return "  " + "  ".join(c.rjust(w) if h in right else c.ljust(w)
                                for c, w, h in zip(cells, width, head)).rstrip()
    lines = [f"best configuration per group ({OBJECTIVE_TEXT[spec.objectives.best][2]} "
             "within the constraints):", line(head), *map(line, body)]
    if total > len(rows):
        more = total - len(rows)
        lines.append(f"  … and {more:,} more group{'s' if more != 1 else ''} "
                     f"(all in {Path(summary.out_dir) / 'best.parquet'})")
    return lines


ROLE_TEXT = {
    "results": "every configuration (hive-partitioned Parquet dataset)",
    "pareto": "Pareto frontiers: tokens/s per device vs tokens/s per user",
    "best": "the best configuration of every group",
    "disaggregated": "paired prefill and decode pools",
    "sensitivity": "elasticity of the best outcome per what-if value",
    "report": "the HTML report: frontiers, best table, what-ifs (open it in a browser)",
    "manifest": "the spec, options and finished chunks",
}


def answer_text(summary, spec, report=None) -> str:
    """The lines printed after the summary line (no trailing newline)."""
    lines = best_table(summary, spec)
    paths = files(summary, spec, report)
    shown = {k: v + ("/" if k == "results" else "") for k, v in paths.items()}
    width = max(len(v) for v in shown.values())
    lines.append("files:")
    roles = ROLE_TEXT | {"pareto": "Pareto frontiers: " + " vs ".join(
        OBJECTIVE_TEXT[m][0] for m in spec.objectives.pareto)}
    lines += [f"  {shown[k]:<{width}}  {roles[k]}" for k in roles if k in shown]
    plot = f"dse plot {shlex.quote(str(summary.out_dir))} for PNG/SVG"
    if report is not None:
        lines.append(f"next: open {report} in a browser; {plot}")
    else:
        lines.append(f"next: {next_command(summary)}   # one HTML page to open in a browser; "
                     f"{plot}")
    return "\n".join(lines)


def _plain(value):
    """A JSON-safe value: non-finite floats become null (JSON has no NaN or inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def answer_json(summary, spec, report=None) -> dict:
    """The sweep's summary as one JSON-ready object (``dse sweep --json``)."""
    best, total = _first_rows(Path(summary.out_dir) / "best.parquet", JSON_ROWS)
    data = {
        "out_dir": str(summary.out_dir),
        "spec": spec.source,
        "n_configs": summary.n_configs,
        "n_feasible": summary.n_feasible,
        "n_pareto": summary.n_pareto,
        "n_groups": summary.n_groups,
        "n_groups_with_best": summary.n_groups_with_best,
        "n_chunks": summary.n_chunks,
        "n_resumed": summary.n_resumed,
        "reason_counts": {str(k): int(v) for k, v in summary.reason_counts.items()},
        "seconds": {str(k): float(v) for k, v in summary.seconds.items()},
        "files": files(summary, spec, report),
        "next": f"open {report}" if report is not None else next_command(summary),
        "best": [{k: _plain(v) for k, v in row.items()} for row in best],
        "best_left_out": total - len(best),
    }
    if spec.disaggregated is not None:
        data["n_disaggregated"] = summary.n_disaggregated
        data["n_disaggregated_best"] = summary.n_disaggregated_best
    return data
