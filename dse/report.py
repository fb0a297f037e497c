"""``dse report DIR``: one self-contained HTML page of a finished sweep, for a browser.

The page holds, in order: a header (the spec, the counts of configurations, feasible
points, frontier points and groups, and the infeasible reasons, from ``manifest.json``);
interactive Pareto frontiers, one panel per (model, workload) as ``dse plot`` draws them
(x tokens/s per user, y tokens/s per device, one colour per hardware, what-if variants as
further line styles, a star at each line's row of ``best.parquet``, one legend for all
panels; hovering a point shows its strategy, TTFT, TPOT, cost and bound); the
best-strategy table (sortable by clicking a header, or by ``#sort=<header>:asc|desc`` in
the address); what-if sensitivity charts (only where the sweep varies a what-if axis); and
the bottleneck mix (the share of compute-, memory- and network-bound points per hardware,
among the frontier points and, where the sweep wrote ``configurations/``, all feasible points).

Offline by construction: plotly.js (the ``plotly`` package's copy) and every figure's data
are embedded in the file; the page references no URL, so it opens from a laptop, an
e-mail attachment or an air-gapped machine. The price is ~5 MB of plotly.js per report.

The figures are built with plotly's Python objects and drawn by one script at the end of
the page; when every figure is drawn it writes what it drew onto ``<body>``:
``data-rendered`` (frontier points in the DOM: markers and stars), ``data-traces``
(frontier traces) and ``data-figures`` (plotly figures), or ``data-rendered="error"``. The
tests (and anyone checking a page without looking at it) read those attributes.

Assumptions: the tables are those this dse version writes (a missing column is one line
asking to rerun the sweep). The frontier is drawn as :mod:`dse.plot` draws it and read by
its readers; ``best.parquet`` may hold millions of groups, so the table shows its first
:data:`MAX_TABLE_ROWS` rows (grid order) and says how many more there are. The sensitivity
of a what-if axis is one-at-a-time: the other what-if axes stay at their value nearest 1,
and each group's line is relative to its value at the axis' value nearest 1. Counting the
feasible points' bounds streams three columns of ``configurations/`` batch by batch (bounded
memory; the one part of the report whose time grows with the whole grid).
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, OutputError

DEFAULT_NAME = "report.html"     # DIR/report.html
SUFFIXES = (".html", ".htm")
DEFAULT_MAX_PANELS = 24          # frontier panels (model, workload); the rest are counted
MAX_TABLE_ROWS = 1000            # rows of best.parquet in the table
MAX_SENSITIVITY_LINES = 60       # lines per what-if chart; the rest are counted
STRATEGY = ("tp", "pp", "ep", "attention_dp", "dp", "max_batched_tokens", "batch")
# pareto.parquet columns the hover text needs; OPTIONAL ones may be absent (older tables)
HOVER = (*STRATEGY, "weight_dtype", "act_dtype", "kv_dtype", "devices", "ttft_s",
         "tpot_s", "bound")
OPTIONAL = ("quant", "cost_per_million_output_tokens")
BOUND_COLOURS = {"compute": "#e6862a", "memory": "#3b75af", "network": "#519e3e",
                 "host_link": "#8c564b"}
SYMBOLS = ("circle", "square", "triangle-up", "diamond", "triangle-down", "cross", "x")
DASHES = ("solid", "dash", "dot", "dashdot")
BEST_LABEL = "best within the constraints"
FONT = "DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif"


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""
    path: Path
    n_panels: int        # frontier panels drawn
    n_left_out: int      # panels beyond max_panels, not drawn
    n_series: int        # frontier lines drawn
    n_points: int        # frontier points drawn, stars included (= data-rendered)
    n_best_rows: int     # rows in the best table
    n_what_if: int       # what-if sensitivity charts


def output_path(out_dir: Path, out: str | None) -> Path:
    """The HTML file to write: ``DIR/report.html``, ``out`` if it names a ``.html`` file,
    or ``out/report.html`` for an existing folder ``out``."""
    if out is None:
        return out_dir / DEFAULT_NAME
    path = Path(out)
    if path.is_dir():
        return path / DEFAULT_NAME
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--out {out}: expected a .html file or an existing folder")
    if not path.absolute().parent.is_dir():
        raise OutputError(f"--out {out}: parent folder {path.absolute().parent} does not "
                          "exist")
    return path


# ---------------------------------------------------------------- reading the sweep


def _present(path: Path, names) -> list[str]:
    """Those of ``names`` that the Parquet file ``path`` has (none if it is unreadable:
    the reader that follows says why)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        have = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError):
        return []
    return [n for n in names if n in have]


def _best_rows(out_dir: Path, n: int):
    """(the first ``n`` rows of ``best.parquet`` as dicts, its number of rows); one-line
    :class:`ConfigError` if it is missing, unreadable or not this version's table."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from .answer import _first_rows
    from .plot import PANEL_DIMS, X, Y
    path = out_dir / "best.parquet"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the sweep wrote no best table (rerun it with "
                          f"`dse sweep SPEC --out {out_dir} --overwrite`)")
    try:
        names = pq.read_schema(path).names
        for column in ("hardware", *PANEL_DIMS, "found", *HOVER, X, Y):
            if column not in names:
                raise ConfigError(f"{path}: no column {column}; not a table of this dse "
                                  "version (rerun the sweep)")
        return _first_rows(path, n)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{path}: not a readable Parquet file "
                          f"({' '.join(str(exc).split())[:200]})") from None


def _reason_counts(manifest: dict) -> tuple[int, dict]:
    """(feasible configurations, infeasible reason -> count, most first) summed over the
    manifest's chunks."""
    from . import outdir
    from .evaluate import REASONS
    feasible, named = outdir.reason_totals(manifest["done"].values(), REASONS)
    return feasible, dict(sorted(named.items(), key=lambda kv: -kv[1]))


def _feasible_bounds(out_dir: Path) -> dict | None:
    """hardware -> {bound: count} over the feasible rows of ``DIR/configurations/`` (None when
    the sweep wrote no results); streamed batch by batch in bounded memory."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    from .outdir import table_dir
    folder = table_dir(out_dir)
    if not folder.is_dir():
        return None
    counts: dict = {}
    try:
        data = pads.dataset(folder, format="parquet", partitioning="hive")
        scan = data.scanner(columns=["hardware", "bound"], filter=pads.field("feasible"))
        for batch in scan.to_batches():
            if batch.num_rows:
                frame = batch.to_pandas()
                sizes = frame.groupby(["hardware", "bound"], observed=True).size()
                for (hw, bound), n in sizes.items():
                    per = counts.setdefault(str(hw), {})
                    per[str(bound)] = per.get(str(bound), 0) + int(n)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{folder}: not a readable results dataset "
                          f"({' '.join(str(exc).split())[:200]})") from None
    return counts


# ---------------------------------------------------------------- formatting


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _number(x) -> bool:
    return x is not None and not (isinstance(x, float) and not math.isfinite(x))


def _money(x) -> str:
    from .answer import _usd
    return _usd(x if _number(x) else None)


def _strategy(row) -> str:
    """tp, pp, ep, batch and the precision always; the rest where not their default."""
    from .answer import _precision
    parts = [f"tp {row['tp']}", f"pp {row['pp']}", f"ep {row['ep']}"]
    parts += [f"{k.replace('_', ' ')} {row[k]}" for k, default in
              (("attention_dp", 1), ("dp", 1), ("max_batched_tokens", 0))
              if row[k] != default]
    parts += [f"batch {row['batch']}", _precision(row)]
    if row.get("quant") not in (None, "uniform"):
        parts.append(f"quant {row['quant']}")
    return " · ".join(parts)


def _hover(row, series: str) -> str:
    """The hover text of one frontier point (plotly's <br> line breaks)."""
    from .answer import _rate, _seconds
    lines = [f"<b>{_esc(series)}</b>", _esc(_strategy(row)),
             f"{_rate(row['tokens_per_s_per_device'])} tokens/s per device · "
             f"{_rate(row['tokens_per_s_per_user'])} tokens/s per user",
             f"TTFT {_seconds(row['ttft_s'])} · TPOT {_seconds(row['tpot_s'])}"]
    cost = row.get("cost_per_million_output_tokens")
    n = row["devices"]
    tail = f"{row['bound']}-bound · {n} device{'s' if n != 1 else ''}"
    if _number(cost):
        tail = f"{_money(cost)} per million tokens · {tail}"
    return "<br>".join([*lines, tail])


def _colours(hardware) -> dict:
    """hardware -> colour: matplotlib's tab10 (tab20 beyond 10), as ``dse plot``."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    palette = colormaps["tab10" if len(hardware) <= 10 else "tab20"].colors
    return {h: to_hex(palette[i % len(palette)]) for i, h in enumerate(hardware)}


def _log_ticks(values) -> dict:
    """A log axis over ``values`` (positive) ticked at 1, 2, 5 x 10^k, as plain numbers
    (plotly's own log ticks label 2 and 5 as bare digits)."""
    lo, hi = float(min(values)), float(max(values))
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1,
                                          math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5]
    if len(ticks) < 2:
        return dict(type="log")
    return dict(type="log", tickvals=ticks,
                ticktext=[f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in ticks])


def _layout(x_title: str, y_title: str, x_log=None, y_log=None, height=400,
            **extra) -> dict:
    """A plotly layout in the page's style; ``x_log`` / ``y_log``: the values of an axis
    to log-scale (None: linear)."""
    axis = dict(gridcolor="#e3e3e3", zeroline=False, linecolor="#999", showline=True,
                ticks="outside", tickcolor="#999", automargin=True)
    layout = dict(
        font=dict(family=FONT, size=12, color="#222"), height=height,
        margin=dict(l=60, r=16, t=28, b=50), paper_bgcolor="white", plot_bgcolor="white",
        hoverlabel=dict(font=dict(family=FONT, size=12), align="left"),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, font=dict(size=11)),
        xaxis=dict(axis, title=dict(text=x_title),
                   **(_log_ticks(x_log) if x_log is not None else {})),
        yaxis=dict(axis, title=dict(text=y_title),
                   **(_log_ticks(y_log) if y_log is not None else {})))
    layout.update(extra)
    return layout


# ---------------------------------------------------------------- figures


def _frontier_figures(frame, best, max_panels: int):
    """Plotly figures (dicts) of the frontier panels; returns (figures, legend entries
    (label, colour, dash, symbol) shared by all panels, panels left out, series drawn,
    points drawn with stars). A series' traces carry its label as ``legendgroup``."""
    from .metrics import METRIC
    from .plot import X, Y, _log_scaled, _panel_title, _series_label, _varying, layout_panels
    shown = _varying(frame, ("serving", "engine"))
    (panel_dims, variant_dims, panels, left_out, style, group_dims, picks,
     drawn) = layout_panels(frame, best, max_panels)
    colour = _colours(list(dict.fromkeys(frame["hardware"].astype(str))))
    x_log, y_log = (drawn[c] if _log_scaled(drawn[c]) else None for c in (X, Y))
    figures, legend, n_series, n_points = [], {}, 0, 0
    for values, rows_p in panels:
        key = dict(zip(panel_dims, values))
        traces, stars = [], {"x": [], "y": [], "text": [], "color": []}
        series = rows_p.groupby(["hardware", *variant_dims], sort=False, observed=True)
        for skey, pts in series:
            skey = skey if isinstance(skey, tuple) else (skey,)
            hw, variant = str(skey[0]), dict(zip(variant_dims, skey[1:]))
            k = style[skey[1:]]
            label = _series_label(hw, variant)
            pts = pts.sort_values(X)
            hover = {(r[X], r[Y]): _hover(r, label) for r in pts.to_dict("records")}
            dash, symbol = DASHES[k % len(DASHES)], SYMBOLS[k % len(SYMBOLS)]
            legend.setdefault(label, (colour[hw], dash, symbol))
            traces.append(dict(
                type="scatter", mode="lines+markers", name=label, legendgroup=label,
                x=pts[X].tolist(), y=pts[Y].tolist(), text=list(hover.values()),
                hovertemplate="%{text}<extra></extra>",
                line=dict(color=colour[hw], width=2, dash=dash),
                marker=dict(color=colour[hw], size=6, symbol=symbol)))
            n_series += 1
            n_points += len(pts)
            pick = picks.get((hw, *values, *skey[1:]))
            if pick is not None:
                stars["x"].append(pick[0])
                stars["y"].append(pick[1])
                # the pick is usually a frontier point: show its strategy
                stars["text"].append("<b>best within the constraints</b><br>" + hover.get(
                    pick, f"<b>{_esc(label)}</b>"))
                stars["color"].append(colour[hw])
        if stars["x"]:
            traces.append(dict(
                type="scatter", mode="markers", name=BEST_LABEL, legendgroup=BEST_LABEL,
                x=stars["x"], y=stars["y"], text=stars["text"],
                hovertemplate="%{text}<extra></extra>",
                marker=dict(symbol="star", size=17, color=stars["color"],
                            line=dict(color="black", width=1))))
            n_points += len(stars["x"])
        figures.append(dict(title=_panel_title(key, shown), data=traces, layout=_layout(
            f"tokens/s per user, 1 / TPOT [{METRIC[X].unit}]",
            f"tokens/s per device [{METRIC[Y].unit}]", x_log, y_log, height=340,
            showlegend=False)))
    if picks and n_points > n_series:
        legend[BEST_LABEL] = ("#888888", None, "star")
    return figures, legend, left_out, n_series, n_points


def _legend_html(legend: dict) -> str:
    """The frontier panels' one legend: a button per series (click: hide or show it in
    every panel), drawn as its line and marker."""
    marks = {"circle": "&#9679;", "square": "&#9632;", "triangle-up": "&#9650;",
             "diamond": "&#9670;", "triangle-down": "&#9660;", "cross": "&#10010;",
             "x": "&#10006;", "star": "&#9733;"}
    dashes = {"solid": "", "dash": "7,4", "dot": "2,3", "dashdot": "7,3,2,3"}
    items = []
    for label, (colour, dash, symbol) in legend.items():
        line = ("" if dash is None else
                '<svg width="30" height="10" aria-hidden="true">'
                f'<line x1="0" y1="5" x2="30" y2="5" stroke="{colour}" stroke-width="2.5" '
                f'stroke-dasharray="{dashes[dash]}"/></svg>')
        items.append(f'<button type="button" data-series="{_esc(label)}" '
                     f'title="hide or show in every panel">{line}'
                     f'<span class="mark" style="color:{colour}">{marks[symbol]}</span>'
                     f"{_esc(label)}</button>")
    return f'<div class="legend" id="frontier-legend">{"".join(items)}</div>'



def _base_value(values) -> float:
    """The value of a what-if axis the others are compared at: the one nearest 1."""
    return min(values, key=lambda v: abs(math.log(v)) if v > 0 else math.inf)


def _sensitivity_figures(best):
    """One figure per what-if axis the sweep varies: the best tokens/s per device of each
    group (model, workload, hardware) against the axis' values, relative to its value at
    the axis' value nearest 1 (so groups of any size share one scale; hover shows the
    numbers), the other what-if axes at their value nearest 1. Returns [(axis, figure,
    lines left out)]; a group without a best at that value has no line (counted)."""
    from .evaluate import WHAT_IF_DIMS
    from .plot import PANEL_DIMS, Y, _varying
    if best is None or best.empty:
        return []
    axes = _varying(best, WHAT_IF_DIMS)
    colour = _colours(list(dict.fromkeys(best["hardware"].astype(str))))
    shown = _varying(best, PANEL_DIMS)
    out = []
    for d in axes:
        rows, others = best, [o for o in axes if o != d]
        for other in others:
            rows = rows[rows[other] == _base_value(best[other].unique())]
        base = _base_value(rows[d].unique())
        lines = list(rows.groupby([*PANEL_DIMS, "hardware"], sort=False, observed=True))
        traces, workloads, left_out = [], {}, 0
        for key, pts in lines:
            key = dict(zip([*PANEL_DIMS, "hardware"], key))
            at_base = pts.loc[pts[d] == base, Y]
            if len(traces) == MAX_SENSITIVITY_LINES or not len(at_base) \
                    or not at_base.iloc[0] > 0:
                left_out += 1
                continue
            ref = float(at_base.iloc[0])
            hw = str(key["hardware"])
            k = workloads.setdefault(tuple(key[p] for p in PANEL_DIMS), len(workloads))
            pts = pts.sort_values(d)
            name = " · ".join([hw, *(str(key[p]) for p in ("model", "serving", "engine")
                                     if p in shown)]
                              + ([f"{key['input_tokens']}/{key['output_tokens']} tokens"]
                                 if {"input_tokens", "output_tokens"} & set(shown) else []))
            text = [f"<b>{_esc(name)}</b><br>{d} {v:g}: {y:,.0f} tokens/s per device "
                    f"({y / ref - 1:+.1%} against {base:g})"
                    for v, y in zip(pts[d], pts[Y])]
            traces.append(dict(
                type="scatter", mode="lines+markers", name=name, x=pts[d].tolist(),
                y=(pts[Y] / ref).tolist(), text=text,
                hovertemplate="%{text}<extra></extra>",
                line=dict(color=colour[hw], width=2, dash=DASHES[k % len(DASHES)]),
                marker=dict(color=colour[hw], size=7, symbol=SYMBOLS[k % len(SYMBOLS)])))
        if not traces:
            continue
        layout = _layout(d, f"best tokens/s per device, ÷ its value at {base:g}",
                         height=max(420, 60 + 19 * len(traces)))
        layout["xaxis"]["tickvals"] = sorted(float(v) for v in rows[d].unique())
        layout["yaxis"].update(ticksuffix="×", tickformat=".2f")
        layout["legend"].update(orientation="v", x=1.02, xanchor="left", y=1,
                                yanchor="top")
        at = ", ".join(f"{o} {_base_value(best[o].unique()):g}" for o in others)
        title = (f"best tokens/s per device against {d}, relative to {d} = {base:g}"
                 + (f" (other what-ifs at {at})" if others else ""))
        out.append((d, dict(title=title, data=traces, layout=layout), left_out))
    return out


def _bottleneck_figure(frontier, feasible: dict | None):
    """Stacked bars: the share of compute/memory/network-bound points per hardware among
    the frontier points and (where counted) all feasible points."""
    from .kernels.layout import BOUND_NAMES
    rows = []  # (label, {bound: count})
    pareto = frontier.groupby(["hardware", "bound"], observed=True).size()
    hardware = list(dict.fromkeys(frontier["hardware"].astype(str)))
    if feasible:
        hardware += [h for h in feasible if h not in hardware]
    for hw in hardware:
        if feasible is not None:
            counts = feasible.get(hw, {})
            rows.append((f"{hw} · feasible ({sum(counts.values()):,})", counts))
        counts = {str(b): int(n) for (h, b), n in pareto.items() if str(h) == hw}
        rows.append((f"{hw} · Pareto ({sum(counts.values()):,})", counts))
    labels = [label for label, _ in rows][::-1]  # the first hardware on top
    traces = []
    for bound in BOUND_NAMES:
        if bound == "host_link" and not any(c.get(bound) for _, c in rows):
            continue  # offload's bound: shown only where a sweep has such points
        shares, text = [], []
        for _, counts in rows[::-1]:
            total = sum(counts.values())
            n = counts.get(bound, 0)
            shares.append(100 * n / total if total else 0)
            text.append(f"{bound}-bound: {n:,} of {total:,} points "
                        f"({100 * n / total if total else 0:.0f} %)")
        traces.append(dict(type="bar", orientation="h", name=f"{bound}-bound", x=shares,
                           y=labels, text=text, hovertemplate="%{text}<extra></extra>",
                           textposition="none",
                           marker=dict(color=BOUND_COLOURS.get(bound, "#888"))))
    layout = _layout("share of points [%]", "", height=150 + 30 * len(rows),
                     barmode="stack", margin=dict(l=10, r=16, t=44, b=40), bargap=0.25)
    layout["xaxis"].update(range=[0, 100], ticksuffix=" %")
    layout["yaxis"].update(type="category", showline=False, ticks="", gridcolor=None)
    layout["legend"].update(traceorder="normal", y=1.0, yanchor="bottom", x=0)
    return dict(title="", data=traces, layout=layout)


# ---------------------------------------------------------------- the page


def _objective_text(out_dir: Path) -> str:
    """What the sweep's best table optimizes, in words ("most tokens/s per device"), from
    best.parquet's ``dse.objectives`` metadata (sweeps before it: the default)."""
    import pyarrow.parquet as pq
    from .answer import OBJECTIVE_TEXT
    from .objectives import DEFAULT_BEST
    meta = pq.read_schema(out_dir / "best.parquet").metadata or {}
    try:
        best = json.loads(meta.get(b"dse.objectives", b"{}")).get("best", DEFAULT_BEST)
    except (ValueError, AttributeError):
        best = DEFAULT_BEST
    return OBJECTIVE_TEXT.get(best, OBJECTIVE_TEXT[DEFAULT_BEST])[2]


def _why(row) -> str:
    from .answer import _why as why
    return why(row)


# sensitivity.parquet's elasticities: (column, header)
ELASTICITIES = (("elasticity_tokens_per_s_per_device", "tokens/s per device"),
                ("elasticity_ttft_s", "TTFT"), ("elasticity_tpot_s", "TPOT"))


def _elasticity_table(out_dir: Path) -> str:
    """sensitivity.parquet summarized as a sortable table: per what-if axis and step, the
    median elasticity of each metric over the groups, and how often the best strategy
    changed; "" without the file."""
    import numpy as np
    import pandas as pd
    from .sensitivity import FILE
    path = out_dir / FILE
    if not path.is_file():
        return ""
    sens = pd.read_parquet(path)
    if sens.empty:
        return ""
    head = ["what-if", "step", "groups", *(f"{h} elasticity (median)" for _, h in ELASTICITIES),
            "best strategy changed"]
    body = []
    for (axis, lo, hi), rows in sens.groupby(["what_if", "from_value", "to_value"],
                                             sort=True):
        cells = [(None, axis), (lo, f"{lo:g} → {hi:g}"), (len(rows), f"{len(rows):,}")]
        for c, _ in ELASTICITIES:
            v = rows[c].replace([np.inf, -np.inf], np.nan).median()
            cells.append(("" if not _number(v) else v, "-" if not _number(v) else f"{v:+.2f}"))
        changed = 1.0 - rows["same_strategy"].mean()
        cells.append((changed, f"{changed:.0%}"))
        body.append("<tr>" + "".join(
            f'<td{"" if v is None else f" data-v={chr(34)}{_esc(v)}{chr(34)}"}>{_esc(t)}</td>'
            for v, t in cells) + "</tr>")
    th = "".join(f'<th scope="col" title="sort by {_esc(h)}">{_esc(h)}</th>' for h in head)
    return ('<h3>Elasticities</h3><p class="lead">From <code>sensitivity.parquet</code>: '
            "the arc elasticity d ln(metric) / d ln(what-if) of each group's best "
            "configuration between consecutive values (1: in proportion; 0: no response; "
            "a TPOT elasticity of -1: decode time falls in proportion), the median over "
            "the groups, and the share of groups whose best strategy changed between the "
            'two values.</p><div class="table-wrap"><table class="sortable" '
            f'id="elasticity-table"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}'
            "</tbody></table></div>")


def _best_table(rows, total: int, out_dir: Path) -> tuple[str, int]:
    """The best-strategy table as HTML (sortable by the page's script)."""
    from .answer import _precision, _rate, _seconds
    from .evaluate import WHAT_IF_DIMS
    found = [r for r in rows if r["found"]]

    def varies(column) -> bool:
        return len({r.get(column) for r in rows}) > 1

    # (header, value for sorting or None for text, shown text) per column
    cols = [("model", lambda r: None, lambda r: r["model"]),
            ("in / out tokens", lambda r: r["input_tokens"] * 1e9 + r["output_tokens"],
             lambda r: f"{r['input_tokens']:,} / {r['output_tokens']:,}")]
    cols += [(d, lambda r, d=d: None, lambda r, d=d: r[d])
             for d in ("serving", "engine") if varies(d)]
    cols += [("hardware", lambda r: None, lambda r: r["hardware"])]
    cols += [(d.replace("_", " "), lambda r, d=d: r[d], lambda r, d=d: f"{r[d]:g}")
             for d in WHAT_IF_DIMS if varies(d)]
    strategy = [c for c in STRATEGY if c in ("tp", "batch") or varies(c)
                or any(r[c] != (0 if c == "max_batched_tokens" else 1) for r in found)]
    cols += [(c.replace("_", " "), lambda r, c=c: r[c] if r["found"] else "",
              lambda r, c=c: r[c] if r["found"] else "") for c in strategy]
    cols += [("precision", lambda r: None,
              lambda r: _precision(r) if r["found"] else "none meets the constraints")]
    if any(r.get("quant") not in (None, "uniform") for r in found):
        cols += [("quant", lambda r: None, lambda r: r["quant"] if r["found"] else "")]
    cols += [("devices", lambda r: r["devices"] if r["found"] else "",
              lambda r: r["devices"] if r["found"] else "")]
    numbers = [("tokens/s per device", "tokens_per_s_per_device", _rate),
               ("tokens/s per user", "tokens_per_s_per_user", _rate),
               ("TTFT", "ttft_s", _seconds), ("TPOT", "tpot_s", _seconds)]
    if any(_number(r.get("cost_per_million_output_tokens")) for r in found):
        numbers.append(("$ per M tokens", "cost_per_million_output_tokens", _money))
    for head, c, fmt in numbers:
        cols.append((head, lambda r, c=c: r[c] if r["found"] and _number(r[c]) else "",
                     lambda r, c=c, fmt=fmt: fmt(r[c]) if r["found"] else ""))
    cols.append(("bound", lambda r: None, lambda r: r["bound"] if r["found"] else ""))
    if any(_why(r) for r in rows):
        cols.append(("why", lambda r: None, _why))

    head = "".join(f'<th scope="col" title="sort by {_esc(h)}">{_esc(h)}</th>'
                   for h, _, _ in cols)
    body = []
    for r in rows:
        cells = []
        for _, key, text in cols:
            v = key(r)
            data = "" if v is None else f' data-v="{_esc(v)}"'
            cells.append(f"<td{data}>{_esc(text(r))}</td>")
        body.append(f'<tr{"" if r["found"] else " class=none"}>{"".join(cells)}</tr>')
    note = ""
    if total > len(rows):
        note = (f'<p class="note">The first {len(rows):,} of {total:,} groups; all are in '
                f"{_esc(out_dir / 'best.parquet')}.</p>")
    return (f'<table class="sortable" id="best-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{note}'), len(cols)


STYLE = """
:root { color-scheme: light; }
body { font-family: DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif;
  margin: 0; color: #222; background: #f4f5f7; font-size: 14px; line-height: 1.45; }
header { background: #1f2d3d; color: #f4f5f7; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .sub { color: #b8c4d0; font-size: 13px; }
.counts { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 4px; }
.count { background: #2c3e50; border-radius: 6px; padding: 6px 12px; min-width: 110px; }
.count b { display: block; font-size: 19px; color: #fff; }
.count span { font-size: 12px; color: #b8c4d0; }
header details { margin-top: 8px; font-size: 13px; }
header summary { cursor: pointer; color: #d5dde5; }
header pre { background: #0f1822; color: #e6edf3; padding: 10px 14px; border-radius: 6px;
  overflow: auto; max-height: 320px; font-size: 12px; }
.reasons { color: #d5dde5; font-size: 13px; margin-top: 6px; }
.reasons code { color: #fff; }
main { padding: 6px 28px 40px; }
section { background: #fff; border-radius: 8px; padding: 14px 20px 18px; margin: 18px 0;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); }
section h2 { font-size: 17px; margin: 0 0 6px; }
p.lead { margin: 0 0 10px; color: #555; }
p.note { color: #777; font-size: 12px; margin: 6px 0 0; }
.panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
  gap: 14px; }
.panels.wide { grid-template-columns: 1fr; }
.legend { position: sticky; top: 0; z-index: 5; background: #fff; display: flex;
  flex-wrap: wrap; gap: 4px 6px; padding: 6px 0 8px; border-bottom: 1px solid #eceef1;
  margin-bottom: 10px; }
.legend button { font: inherit; font-size: 12.5px; background: #f7f8fa; color: #222;
  border: 1px solid #dde1e6; border-radius: 14px; padding: 2px 10px 2px 6px;
  cursor: pointer; display: inline-flex; align-items: center; gap: 4px; }
.legend button:hover { background: #eef1f5; }
.legend button.off { opacity: 0.4; text-decoration: line-through; }
.legend .mark { font-size: 13px; line-height: 1; }
.fig { margin: 0; border: 1px solid #eceef1; border-radius: 6px; min-width: 0; }
figcaption { font-weight: 600; font-size: 13.5px; padding: 8px 12px 0; }
.plot { min-height: 160px; }
.table-wrap { overflow: auto; max-height: 640px; border: 1px solid #eceef1; }
table { border-collapse: collapse; font-size: 12.5px; white-space: nowrap; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eceef1; text-align: left; }
td[data-v] { text-align: right; font-variant-numeric: tabular-nums; }
thead th { position: sticky; top: 0; background: #eef1f5; cursor: pointer;
  user-select: none; white-space: normal; vertical-align: bottom; }
thead th:hover { background: #dfe5ec; }
th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort=descending]::after { content: " \\25BC"; font-size: 10px; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.none td { color: #999; }
"""

# Draws every figure of the JSON block, then writes what it drew onto <body>; sorts a
# table by the clicked header (numbers by data-v, text otherwise; blanks last), and
# by ``#sort=<column>:asc|desc`` in the address (a link to a sorted table).
SCRIPT = """
(function () {
  "use strict";
  var body = document.body;
  function count(selector) { return document.querySelectorAll(selector).length; }
  function sortTable(table, col, asc) {
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    heads[col].setAttribute("aria-sort", asc ? "ascending" : "descending");
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    function key(row) {
      var cell = row.cells[col], v = cell.getAttribute("data-v");
      if (v === null) return cell.textContent;
      return v === "" ? null : parseFloat(v);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      var d = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return asc ? d : -d;
    });
    rows.forEach(function (row) { tbody.appendChild(row); });
    table.setAttribute("data-sorted",
                       heads[col].textContent + ":" + (asc ? "asc" : "desc"));
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (t) {
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () {
        sortTable(t, col, th.getAttribute("aria-sort") !== "ascending");
      });
    });
  });
  var m = /^#sort=([^:]+):(asc|desc)$/.exec(decodeURIComponent(location.hash));
  var table = document.getElementById("best-table");
  if (m && table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      if (th.textContent === m[1]) sortTable(table, col, m[2] === "asc");
    });
  }
  // the frontiers' one legend: a series is hidden or shown in every panel at once
  var buttons = document.querySelectorAll("#frontier-legend button");
  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener("click", function () {
      var hide = !button.classList.contains("off");
      button.classList.toggle("off", hide);
      var series = button.getAttribute("data-series");
      var plots = document.querySelectorAll("#frontiers .js-plotly-plot");
      Array.prototype.forEach.call(plots, function (gd) {
        var traces = [];
        gd.data.forEach(function (t, i) { if (t.legendgroup === series) traces.push(i); });
        if (traces.length) Plotly.restyle(gd, {visible: !hide}, traces);
      });
    });
  });
  var figures = JSON.parse(document.getElementById("dse-figures").textContent);
  var config = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ["select2d", "lasso2d"]};
  var drawn = Object.keys(figures).map(function (id) {
    return Plotly.newPlot(id, figures[id].data, figures[id].layout, config);
  });
  Promise.all(drawn).then(function () {
    body.setAttribute("data-figures", count(".js-plotly-plot"));
    body.setAttribute("data-traces", count("#frontiers .scatterlayer .trace"));
    body.setAttribute("data-rendered", count("#frontiers .scatterlayer .point"));
  }, function (err) {
    body.setAttribute("data-rendered", "error");
    console.error("dse report: " + err);
  });
})();
"""


def _figure(figures: dict, fid: str, figure: dict) -> str:
    """Add ``figure`` to ``figures`` as ``fid``; its HTML: a caption (the title, as text
    a reader can search and copy) over the element plotly draws into."""
    figures[fid] = {"data": figure["data"], "layout": figure["layout"]}
    caption = f"<figcaption>{_esc(figure['title'])}</figcaption>" if figure["title"] else ""
    return (f'<figure class="fig">{caption}<div class="plot" id="{_esc(fid)}"></div>'
            "</figure>")


def _count(value: int, what: str) -> str:
    return f'<div class="count"><b>{value:,}</b><span>{_esc(what)}</span></div>'


def _json_script(data) -> str:
    """``data`` as JSON safe inside a <script> element: every "<" (which JSON holds only
    in strings) as its escape, so no "</script>" or "<!--" ends or bends the element."""
    import plotly.utils
    text = json.dumps(data, cls=plotly.utils.PlotlyJSONEncoder, separators=(",", ":"))
    return text.replace("<", "\\u003c")


def _page(title: str, header: str, sections: list[str], figures: dict) -> str:
    from plotly.offline import get_plotlyjs
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>", f"<style>{STYLE}</style>",
        # plotly.js itself, inline: the page fetches nothing
        f"<script>{get_plotlyjs()}</script>", "</head>",
        '<body data-rendered="pending">', header, "<main>", *sections, "</main>",
        '<script type="application/json" id="dse-figures">'
        f"{_json_script(figures)}</script>",
        f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])


def write_report(out_dir, out: str | None = None,
                 max_panels: int = DEFAULT_MAX_PANELS) -> ReportResult:
    """Write the HTML report of the finished sweep in ``out_dir``.

    Parameters
    ----------
    out_dir : path
        A ``dse sweep`` output folder (its manifest says the sweep finished) holding
        ``pareto.parquet`` and ``best.parquet``.
    out : str, optional
        A ``.html`` file, or an existing folder for ``report.html`` (default:
        ``out_dir/report.html``). An existing report is replaced.
    max_panels : int
        At most this many (model, workload) frontier panels; the rest are counted.
    """
    from . import __version__, io, outdir
    from .plot import (MAX_PANELS, PANEL_DIMS, X, Y, finished_sweep, read_best,
                       read_frontiers)
    out_dir = Path(out_dir)
    if isinstance(max_panels, bool) or not isinstance(max_panels, int) \
            or not 1 <= max_panels <= MAX_PANELS:
        raise ConfigError(f"--max-panels {max_panels!r}: expected an integer from 1 to "
                          f"{MAX_PANELS}")
    finished_sweep(out_dir)
    manifest = outdir.read_manifest(out_dir)
    columns = ("hardware", *PANEL_DIMS, X, Y, *HOVER,
               *_present(out_dir / "pareto.parquet", OPTIONAL))
    frontier = read_frontiers(out_dir, columns=columns)
    rows, n_groups = _best_rows(out_dir, MAX_TABLE_ROWS)
    best = read_best(out_dir)
    feasible_bounds = _feasible_bounds(out_dir)
    path = output_path(out_dir, out)

    goal = _objective_text(out_dir)
    figures, sections = {}, []
    panels, legend, left_out, n_series, n_points = _frontier_figures(frontier, best,
                                                                      max_panels)
    divs = [_figure(figures, f"frontier-{i}", fig) for i, fig in enumerate(panels)]
    more = (f'<p class="note">{left_out} more (model, workload) panel'
            f'{"s" if left_out != 1 else ""} not shown (--max-panels {max_panels}).</p>'
            if left_out else "")
    sections.append(
        '<section id="frontiers"><h2>Pareto frontiers</h2><p class="lead">One panel per '
        "model and workload: speed per user (1 / TPOT) against throughput per device, one "
        "colour per hardware. A star marks the best configuration of a line (the "
        f"{_esc(goal)} within the spec's constraints). Hover a point for its "
        "strategy; click a legend entry to hide or show that line in every panel; drag to "
        f"zoom, double-click to zoom out.</p>{_legend_html(legend)}"
        f'<div class="panels">{"".join(divs)}</div>{more}</section>')

    table, _ = _best_table(rows, n_groups, out_dir)
    sections.append(
        '<section id="best"><h2>Best configuration per group</h2><p class="lead">The '
        f"{_esc(goal)} within the constraints, per model, workload, hardware "
        "and what-if values. Click a header to sort.</p>"
        f'<div class="table-wrap">{table}</div></section>')

    what_if = _sensitivity_figures(best)
    if what_if:
        divs, notes = [], []
        for d, fig, lines_left in what_if:
            divs.append(_figure(figures, f"what-if-{d}", fig))
            if lines_left:
                notes.append(f"{d}: {lines_left} group{'s' if lines_left != 1 else ''} "
                             f"not shown (at most {MAX_SENSITIVITY_LINES} lines, and only "
                             "groups with a best at the reference value)")
        note = f'<p class="note">{_esc("; ".join(notes))}.</p>' if notes else ""
        sections.append(
            '<section id="what-if"><h2>What-if sensitivity</h2><p class="lead">The best '
            "tokens/s per device of each group (model, workload, hardware) against each "
            "what-if value the sweep varies, one at a time, as a multiple of its value at "
            "the what-if value nearest 1 (hover a point for the numbers). Click a legend "
            f'entry to hide a line.</p><div class="panels wide">{"".join(divs)}</div>'
            f"{note}{_elasticity_table(out_dir)}</section>")

    bottleneck = _figure(figures, "bottleneck",
                         _bottleneck_figure(frontier, feasible_bounds))
    where = ("all feasible configurations (from configurations/) and the Pareto points"
             if feasible_bounds is not None else
             "the Pareto points (the sweep wrote no configurations/, so feasible points are not "
             "counted)")
    sections.append(
        '<section id="bottleneck-mix"><h2>Bottleneck mix</h2><p class="lead">The resource '
        f"behind most decode time (column <code>bound</code>) among {where}, per "
        f"hardware.</p>{bottleneck}</section>")

    n_feasible, reasons = _reason_counts(manifest)
    source = frontier.attrs.get("spec_source") or "the bundled default spec"
    n_pareto = _rows_in(out_dir / "pareto.parquet")
    n_found = 0 if best is None else len(best)
    reason_text = (", ".join(f"<code>{_esc(k)}</code> {v:,}" for k, v in reasons.items())
                   if reasons else "none")
    header = (
        f"<header><h1>dse report: {_esc(out_dir)}</h1>"
        f'<div class="sub">spec {_esc(source)} · '
        f'dse {_esc(manifest.get("engine_version", "?"))}'
        f" (report by dse {_esc(__version__)})</div>"
        '<div class="counts">'
        + _count(int(manifest.get("n_configs", n_feasible + sum(reasons.values()))),
                 "configurations")
        + _count(n_feasible, "feasible") + _count(n_pareto, "Pareto points")
        + _count(n_groups, "groups") + _count(n_found, "groups with a best")
        + "</div>"
        f'<div class="reasons">infeasible, by reason: {reason_text}</div>'
        f"<details><summary>the sweep spec</summary><pre>"
        f"{_esc(manifest.get('spec', ''))}</pre></details></header>")

    page = _page(f"dse report: {out_dir}", header, sections, figures)
    with io.atomic(path) as tmp:  # io's atomic rename: no half report under the name
        tmp.write_text(page, encoding="utf-8")
    return ReportResult(path, len(panels), left_out, n_series, n_points, len(rows),
                        len(what_if))


def _rows_in(path: Path) -> int:
    import pyarrow.parquet as pq
    return pq.read_metadata(path).num_rows
