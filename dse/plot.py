"""``dse plot DIR``: static pictures (PNG or SVG) of a finished sweep's Pareto frontiers.

Reads ``DIR/pareto.parquet`` (the frontier rows :mod:`dse.reduce` writes) and draws one
panel per (model, workload): a workload is the input and output tokens, and the serving
mode and engine where the sweep has several. In a panel x is tokens/s per user (1 / TPOT),
y tokens/s per device, and each hardware is one line in a colour of its own, the same in
every panel. What-if variants of a hardware (the what-if axes the sweep varies) are
further lines in that hardware's colour with another marker and line style. A star marks
each line's row of ``best.parquet`` (the most tokens/s per device within the spec's
constraints), where that file has one.

Assumptions: the frontier rows of a group are its non-dominated points, so each series is
drawn through its points in order of tokens/s per user. An axis whose values in the drawn
panels span more than :data:`LOG_SPAN` is log-scaled in every panel (batch 1 and batch 256
on one line), otherwise linear. Panels beyond ``max_panels`` are left out (the first ones
in the file's order, i.e. grid order, are drawn) and counted in the figure and the return
value.

matplotlib's Agg canvas renders without pyplot or any display, so nothing global changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, OutputError

FORMATS = ("png", "svg")
DEFAULT_NAME = "pareto"          # DIR/plots/pareto.png
PLOTS_FOLDER = "plots"
DEFAULT_MAX_PANELS = 12
MAX_PANELS = 100                 # beyond this a grid of panels is unreadable
COLUMNS = 3                      # panels per row
LOG_SPAN = 30.0                  # max/min of an axis above which it is drawn log-scaled
X, Y = "tokens_per_s_per_user", "tokens_per_s_per_device"
# A panel is one of these; hardware and the varying what-if axes make its series.
PANEL_DIMS = ("model", "serving", "engine", "input_tokens", "output_tokens")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # not "*": it marks the best rows
LINESTYLES = ("-", "--", ":", "-.")
SERIES_ID = "frontier"           # SVG group ids: frontier-<panel>-<series>
BEST_ID = "best"                 # and best-<panel>-<series> (the series' pick)


@dataclass
class PlotResult:
    """What :func:`plot_frontiers` wrote."""
    paths: list          # files written
    n_panels: int        # panels drawn
    n_left_out: int      # (model, workload) panels beyond max_panels, not drawn
    n_series: int        # lines drawn, all panels together


def finished_sweep(out_dir: Path) -> None:
    """Refuse ``out_dir`` unless it is the folder of a finished ``dse sweep``."""
    from . import outdir
    if not out_dir.is_dir():
        what = "not a folder" if out_dir.exists() else "no such folder"
        raise ConfigError(f"{out_dir}: {what}; give the --out folder of a finished "
                          "`dse sweep`")
    if not (out_dir / outdir.MANIFEST).is_file():
        raise ConfigError(f"{out_dir}: not a dse sweep folder (no {outdir.MANIFEST}); give "
                          "the --out folder of a finished `dse sweep`")
    try:
        manifest = outdir.read_manifest(out_dir)
    except OutputError as exc:
        raise ConfigError(str(exc)) from None
    if not manifest["complete"]:
        raise ConfigError(f"{out_dir / outdir.MANIFEST}: complete = false: the sweep has "
                          f"not finished; finish it with `dse sweep SPEC --out {out_dir} "
                          "--resume`")


def _read(path: Path, columns):
    """``columns`` of a dse Parquet table, plus the what-if columns; one-line
    :class:`ConfigError` if it is unreadable or lacks one."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from .evaluate import WHAT_IF_DIMS
    wanted = [*columns, *(d for d in WHAT_IF_DIMS if d not in columns)]
    try:
        names = pq.read_schema(path).names
        missing = [c for c in wanted if c not in names]
        if missing:
            raise ConfigError(f"{path}: no column {missing[0]}; not a table of this dse "
                              "version (rerun the sweep)")
        return pq.read_table(path, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: not a readable Parquet file "
                          f"({' '.join(str(exc).split())[:200]})") from None


def read_frontiers(out_dir: Path, columns=("hardware", *PANEL_DIMS, X, Y)):
    """The frontier rows of a finished sweep as a pandas DataFrame with the columns
    ``columns`` plus the what-if columns (``attrs["spec_source"]``: the spec's file); one-line
    :class:`ConfigError` if ``out_dir`` is no finished sweep, ``pareto.parquet`` is missing
    or unreadable, or the frontier is empty."""
    out_dir = Path(out_dir)
    finished_sweep(out_dir)
    path = out_dir / "pareto.parquet"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the sweep wrote no frontier table (rerun it "
                          f"with `dse sweep SPEC --out {out_dir} --overwrite`)")
    table = _read(path, columns)
    frame = table.to_pandas()
    frame = frame[(frame[X] > 0) & (frame[Y] > 0)]  # drawn lines need positive values
    if frame.empty:
        raise ConfigError(f"{path}: empty frontier: the sweep found no feasible "
                          "configuration (see infeasible_reason in its configurations/), so there "
                          "is nothing to plot")
    source = (table.schema.metadata or {}).get(b"dse.spec_source", b"")
    frame.attrs["spec_source"] = source.decode("utf-8", "replace")
    return frame


def read_best(out_dir: Path):
    """The found rows of ``best.parquet`` (DataFrame; None if the file is missing: the
    frontiers are drawn without the picks)."""
    path = Path(out_dir) / "best.parquet"
    if not path.is_file():
        return None
    frame = _read(path, ("hardware", *PANEL_DIMS, "found", X, Y)).to_pandas()
    return frame[frame["found"].fillna(False).astype(bool)]


def output_path(out_dir: Path, out: str | None, fmt: str | None) -> tuple[Path, str]:
    """The file to write and its format: ``out`` is a ``.png`` / ``.svg`` file or a folder
    (default ``DIR/plots/``; made when the plot is written); ``fmt`` defaults to ``out``'s
    suffix, else png."""
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: valid formats: {', '.join(FORMATS)}")
    if out is None:
        folder = out_dir / PLOTS_FOLDER
    else:
        path = Path(out)
        suffix = path.suffix.lower().lstrip(".")
        if suffix in FORMATS and not path.is_dir():
            if fmt is not None and fmt != suffix:
                raise ConfigError(f"--out {out}: a .{suffix} file, but --format {fmt}; "
                                  "give one or make them agree")
            return path, suffix
        if suffix and not path.is_dir():
            raise ConfigError(f"--out {out}: expected a .png or .svg file or a folder")
        folder = path
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a folder; give a folder or a "
                          ".png or .svg file")
    fmt = fmt or FORMATS[0]
    return folder / f"{DEFAULT_NAME}.{fmt}", fmt


def _make_folder(folder: Path) -> None:
    """The plot's folder (one level: its parent must exist)."""
    if not folder.is_dir():
        try:
            folder.mkdir()
        except OSError as exc:
            raise OutputError(f"{folder}: cannot make the plot folder: "
                              f"{exc.strerror or exc}") from None


def _varying(frame, dims) -> list[str]:
    return [d for d in dims if frame[d].nunique() > 1]


def _panel_title(key: dict, shown: list[str]) -> str:
    title = (f"{key['model']} · {key['input_tokens']:,} in / {key['output_tokens']:,} out "
             "tokens")
    extra = [str(key[d]) for d in ("serving", "engine") if d in shown]
    return title + (f" · {', '.join(extra)}" if extra else "")


def _series_label(hardware: str, variant: dict) -> str:
    return ", ".join([hardware, *(f"{d} {v:g}" for d, v in variant.items())])


def _log_scaled(values) -> bool:
    """Whether an axis holding ``values`` (positive) is drawn log-scaled."""
    return float(values.max()) / float(values.min()) > LOG_SPAN


def _log_axis(ax, axis: str) -> None:
    """A log-scaled axis ticked at 1, 2, 5 x 10^k, labelled as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    getattr(ax, f"set_{axis}scale")("log")
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def layout_panels(frame, best, max_panels: int):
    """What the static plot and the report lay out alike: (panel dims, varied what-if
    dims, the first ``max_panels`` (model, workload) panels as (key, rows), panels left
    out, each what-if variant's style index (one marker and line style per variant, the
    same in every panel), the series' dims, each series' pick in ``best`` as (x, y), the
    rows drawn)."""
    import pandas as pd
    from .evaluate import WHAT_IF_DIMS
    panel_dims = list(PANEL_DIMS)
    variant_dims = _varying(frame, WHAT_IF_DIMS)
    panels = list(frame.groupby(panel_dims, sort=False, observed=True))
    left_out = max(0, len(panels) - max_panels)
    panels = panels[:max_panels]
    variants = dict.fromkeys(frame[variant_dims].itertuples(index=False, name=None))
    style = {v: k for k, v in enumerate(variants)}
    group_dims = ["hardware", *panel_dims, *variant_dims]
    picks = {} if best is None else {
        tuple(key): (x, y)
        for *key, x, y in best[[*group_dims, X, Y]].itertuples(index=False, name=None)}
    drawn = pd.concat([rows for _, rows in panels])
    return panel_dims, variant_dims, panels, left_out, style, group_dims, picks, drawn


def draw(frame, best=None, max_panels: int = DEFAULT_MAX_PANELS, title: str = ""):
    """A matplotlib Figure (Agg canvas) of the frontiers in ``frame`` (rows of
    ``pareto.parquet``), each series' pick in ``best`` (found rows of ``best.parquet``)
    starred; returns (figure, panels drawn, panels left out, lines drawn)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D
    from matplotlib.figure import Figure
    from matplotlib import colormaps
    from .metrics import METRIC

    shown = _varying(frame, ("serving", "engine"))
    (panel_dims, variant_dims, panels, n_left_out, style, group_dims, picks,
     drawn) = layout_panels(frame, best, max_panels)
    hardware = list(dict.fromkeys(frame["hardware"].astype(str)))
    palette = colormaps["tab10" if len(hardware) <= 10 else "tab20"].colors
    colour = {h: palette[i % len(palette)] for i, h in enumerate(hardware)}
    log_axes = [a for a, c in (("x", X), ("y", Y)) if _log_scaled(drawn[c])]

    n = len(panels)
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(5.4 * cols, 4.2 * rows + (0.4 if n_left_out else 0)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    n_series = 0
    legend = {}
    for p, (values, rows_p) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, p + 1)
        key = dict(zip(panel_dims, values))
        series = rows_p.groupby(["hardware", *variant_dims], sort=False, observed=True)
        for s, (skey, pts) in enumerate(series):
            skey = skey if isinstance(skey, tuple) else (skey,)
            hw, variant = str(skey[0]), dict(zip(variant_dims, skey[1:]))
            k = style[skey[1:]]
            pts = pts.sort_values(X)
            ax.plot(pts[X].to_numpy(), pts[Y].to_numpy(), color=colour[hw],
                    marker=MARKERS[k % len(MARKERS)],
                    linestyle=LINESTYLES[k % len(LINESTYLES)], markersize=4,
                    linewidth=1.6, label=_series_label(hw, variant),
                    gid=f"{SERIES_ID}-{p}-{s}")
            n_series += 1
            pick = picks.get((hw, *values, *skey[1:]))
            if pick is not None:
                ax.plot(*pick, color=colour[hw], marker="*", markersize=13,
                        markeredgecolor="black", markeredgewidth=0.6, linestyle="none",
                        gid=f"{BEST_ID}-{p}-{s}", zorder=3)
        for axis in log_axes:
            _log_axis(ax, axis)
        ax.set_xlabel(f"speed per user, 1 / TPOT [{METRIC[X].unit}]")
        ax.set_ylabel(f"throughput per device [{METRIC[Y].unit}]")
        ax.set_title(_panel_title(key, shown), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    # one legend for all panels (a colour means one hardware everywhere), beside them
    if picks:
        legend["best within the constraints"] = Line2D(
            [], [], color="gray", marker="*", markersize=10, markeredgecolor="black",
            linestyle="none")
    fig.legend(list(legend.values()), list(legend), loc="outside right upper",
               fontsize=8, title="hardware", title_fontsize=8)
    head = "Pareto frontiers: tokens/s per device vs tokens/s per user"
    fig.suptitle(f"{head}\n{title}" if title else head, fontsize=11)
    if n_left_out:
        fig.supxlabel(f"{n_left_out} more (model, workload) panel"
                      f"{'s' if n_left_out != 1 else ''} not shown (--max-panels)",
                      fontsize=9, color="dimgray")
    return fig, n, n_left_out, n_series


def plot_frontiers(out_dir, out: str | None = None, fmt: str | None = None,
                   max_panels: int = DEFAULT_MAX_PANELS) -> PlotResult:
    """Draw the Pareto frontiers of the finished sweep in ``out_dir`` into one PNG or SVG.

    Parameters
    ----------
    out_dir : path
        A ``dse sweep`` output folder (its manifest says the sweep finished).
    out : str, optional
        A ``.png`` / ``.svg`` file, or a folder for ``pareto.<format>`` (default:
        ``out_dir/plots/``). An existing plot file is replaced.
    fmt : {"png", "svg"}, optional
        Default: ``out``'s suffix, else png.
    max_panels : int
        At most this many (model, workload) panels; the rest are counted, not drawn.
    """
    from . import __version__, io
    out_dir = Path(out_dir)
    if isinstance(max_panels, bool) or not isinstance(max_panels, int) \
            or not 1 <= max_panels <= MAX_PANELS:
        raise ConfigError(f"--max-panels {max_panels!r}: expected an integer from 1 to "
                          f"{MAX_PANELS}")
    frame = read_frontiers(out_dir)
    path, fmt = output_path(out_dir, out, fmt)
    source = frame.attrs.get("spec_source")
    title = f"{out_dir} ({Path(source).name})" if source else str(out_dir)
    fig, n, left_out, n_series = draw(frame, read_best(out_dir), max_panels, title=title)
    # reproducible files: no timestamp in an SVG, a fixed salt for its element ids; SVG
    # text stays text (editable and searchable in a paper's figure), not glyph outlines
    from matplotlib import rc_context
    meta = {"Date": None, "Creator": f"dse {__version__}"} if fmt == "svg" \
        else {"Software": f"dse {__version__}"}
    _make_folder(path.parent)
    with rc_context({"svg.hashsalt": "dse", "svg.fonttype": "none"}):
        io.write_figure(path, fig, fmt, metadata=meta, dpi=150)
    return PlotResult([path], n, left_out, n_series)
