"""``dse report DIR``: one self-contained HTML page of a finished sweep, checked as a file
(no network references, the figures' data) and in a real headless browser (Chromium: the
page runs without console errors, draws the expected traces and points, sorts its table,
and a screenshot is not blank).

One tiny sweep (2 hardware x 1 model x 2 input lengths x 2 memory-bandwidth what-ifs:
2 panels of 4 frontiers) runs once per module, in a temporary working directory with
relative paths, as a user types them. Without Chromium (``chromium`` on PATH; `.ci/run`
installs Debian's) the browser tests skip.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import cli_error
from dse.cli import main

SPEC = """\
[grid]
hardware = ["h100_sxm", "a100_80gb"]
model = ["llama3_8b"]
batch = [1, 8, 32]
input_tokens = [128, 512]
output_tokens = [16]
tp = [1, 2]

[what_if]
memory_bandwidth_scale = [1.0, 1.5]
"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (CI installs Debian's chromium in "
    ".ci/run; locally: apt-get install chromium)")
# a tag that would fetch from the network: <script src=http...>, <link href=//...>, ...
REMOTE = re.compile(r"<(?:script|link|img|iframe|source|embed|object|audio|video)\b[^>]*"
                    r"\b(?:src|href|data)\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory holding spec.toml, its finished sweep in results/ and that
    sweep's report (results/report.html)."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "spec.toml").write_text(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["sweep", "spec.toml", "--out", "results", "--quiet"]) == 0
            assert main(["report", "results"]) == 0
    assert out.getvalue().startswith(f"wrote {Path('results/report.html')}: 2 (model, "
                                     "workload) panels of 8 frontiers, 8 best rows, 1 "
                                     "what-if chart")
    return folder


@pytest.fixture
def here(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    return workdir


class _Page(HTMLParser):
    """The attributes of <body>, the figures' JSON and the best table's rows of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.body, self.figures, self.rows = {}, None, []
        self._json = self._text = None  # lists while inside the JSON block or a cell
        self._in_best = False  # inside the best table (the page has other tables)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "script" and attrs.get("id") == "dse-figures":
            self._json = []
        elif tag == "table":
            self._in_best = attrs.get("id") == "best-table"
        elif tag == "tr" and self._in_best:
            self.rows.append([])
        elif tag in ("td", "th") and self._in_best:
            self._value, self._text = attrs.get("data-v"), []

    def handle_endtag(self, tag):
        if tag == "script" and self._json is not None:
            self.figures, self._json = json.loads("".join(self._json)), None
        elif tag == "table":
            self._in_best = False
        elif tag in ("td", "th") and self._in_best:  # a cell: data-v (its sort key) or text
            self.rows[-1].append(self._value if self._value is not None
                                 else "".join(self._text))
            self._text = None

    def handle_data(self, data):
        for part in (self._json, self._text):
            if part is not None:
                part.append(data)


def _expected():
    """(frontier points with the stars, frontier traces, figures) the page should draw,
    counted from the Parquet tables."""
    pareto = pq.read_table("results/pareto.parquet").to_pandas()
    best = pq.read_table("results/best.parquet").to_pandas()
    panels = pareto.groupby(["model", "input_tokens", "output_tokens"]).ngroups
    series = pareto.groupby(["input_tokens", "hardware", "memory_bandwidth_scale"]).ngroups
    stars = int(best["found"].sum())
    # one frontier figure per panel, one what-if chart, one bottleneck chart
    return len(pareto) + stars, series + panels, panels + 1 + 1


def test_report_is_self_contained(here):
    text = Path("results/report.html").read_text(encoding="utf-8")
    assert REMOTE.search(text) is None
    assert not re.search(r"@import|url\(\s*[\"']?\s*(?:https?:)?//", text)
    assert "<script src" not in text.lower()
    page = _Page(text)
    assert page.body["data-rendered"] == "pending"   # the browser's script fills it in
    points, traces, figures = _expected()
    assert len(page.figures) == figures
    frontier = [f for k, f in page.figures.items() if k.startswith("frontier-")]
    assert sum(len(t["x"]) for f in frontier for t in f["data"]) == points
    assert sum(len(f["data"]) for f in frontier) == traces
    hover = [s for f in frontier for t in f["data"] for s in t["text"]]
    assert any(re.search(r"tp \d · pp 1 · ep 1 · batch \d+ · bf16", s) for s in hover)
    assert all("TTFT" in s and "TPOT" in s and "$" in s and "-bound" in s
               for s in hover if not s.startswith("<b>best"))
    # one legend for all panels: a button per series (hardware x what-if) and the stars
    assert len(re.findall(r'<button type="button" data-series=', text)) == 4 + 1
    # the what-if chart: a line per (workload, hardware), relative to bandwidth scale 1
    what_if = page.figures["what-if-memory_bandwidth_scale"]["data"]
    assert len(what_if) == 4
    for line in what_if:
        assert line["x"] == [1.0, 1.5] and line["y"][0] == 1.0 and line["y"][1] >= 1.0
    for part in ("Pareto frontiers", "Best configuration per group", "What-if sensitivity",
                 "Bottleneck mix", "llama3_8b · 128 in / 16 out tokens",
                 "best tokens/s per device against memory_bandwidth_scale, relative to "
                 "memory_bandwidth_scale = 1"):
        assert part in text
    # the header's counts: the manifest's
    manifest = json.loads(Path("results/manifest.json").read_text())
    feasible = sum(c["reasons"].get("feasible", 0) for c in manifest["done"].values())
    infeasible = manifest["n_configs"] - feasible
    assert f"<b>{manifest['n_configs']:,}</b><span>configurations</span>" in text
    assert f"<b>{feasible:,}</b><span>feasible</span>" in text
    assert f"<b>{len(pq.read_table('results/pareto.parquet')):,}</b><span>Pareto" in text
    assert "infeasible, by reason: " + ("none" if infeasible == 0 else "<code>") in text


def test_report_best_table_matches_best_parquet(here):
    page = _Page(Path("results/report.html").read_text(encoding="utf-8"))
    best = pq.read_table("results/best.parquet").to_pylist()
    head, *rows = page.rows
    assert len(rows) == len(best)
    col = head.index("tokens/s per device")
    for row, want in zip(rows, best):
        assert float(row[col]) == pytest.approx(want["tokens_per_s_per_device"], rel=1e-12)
        assert want["hardware"] in row


# appended to a copy of the page: once drawn, click the first legend entry and record
# which series it hid and the frontier points left in the DOM
CLICK = """<script>setTimeout(function () {
  var button = document.querySelector("#frontier-legend button");
  button.click();
  setTimeout(function () {
    document.body.setAttribute("data-hid", button.getAttribute("data-series"));
    document.body.setAttribute("data-after",
      document.querySelectorAll("#frontiers .scatterlayer .point").length);
  }, 500);
}, 1000);</script>"""


@needs_chromium
def test_report_renders_in_chromium(here, tmp_path):
    from dse.plot import _series_label
    page = tmp_path / "report.html"
    page.write_text(Path("results/report.html").read_text(encoding="utf-8")
                    .replace("</body>", CLICK + "</body>"), encoding="utf-8")
    sort = "#sort=tokens/s%20per%20device:desc"
    run = _chromium(tmp_path, "--dump-dom", page.as_uri() + sort)
    page = _Page(run.stdout)
    points, traces, figures = _expected()
    assert page.body.get("data-rendered") == str(points), page.body
    assert page.body["data-traces"] == str(traces)
    assert page.body["data-figures"] == str(figures)
    console = [line for line in run.stderr.splitlines()
               if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []
    # the legend hid that series in every panel
    pareto = pq.read_table("results/pareto.parquet").to_pandas()
    sizes = pareto.groupby(["hardware", "memory_bandwidth_scale"], observed=True).size()
    hidden = {_series_label(hw, {"memory_bandwidth_scale": v}): n
              for (hw, v), n in sizes.items()}[page.body["data-hid"]]
    assert int(page.body["data-after"]) == points - hidden
    # the address sorted the table: tokens/s per device, largest first
    head, *rows = page.rows
    col = head.index("tokens/s per device")
    values = [float(r[col]) for r in rows]
    assert values == sorted(values, reverse=True) and len(values) == 8


@needs_chromium
def test_report_screenshot_is_not_blank(here, tmp_path):
    import matplotlib.image
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000",
              "--hide-scrollbars", (here / "results/report.html").as_uri())
    image = matplotlib.image.imread(shot)[..., :3]
    assert image.shape[:2] == (2000, 1280)
    assert float(image.std()) > 0.05
    # the plotted lines: many pixels of the first two hardware colours (tab10 blue, orange)
    for colour in ((0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)):
        near = np.abs(image - np.array(colour) / 255).max(axis=-1) < 0.06
        assert near.sum() > 500, colour


def _chromium(profile: Path, *args) -> subprocess.CompletedProcess:
    """Headless Chromium on the page, with virtual time (the page's timers run at once)
    and the page's console written to stderr."""
    run = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         f"--user-data-dir={profile / 'chromium'}", "--virtual-time-budget=5000",
         "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_report_out_file_and_folder(here, capsys):
    assert main(["report", "results", "--out", "page.html"]) == 0
    assert capsys.readouterr().out.startswith("wrote page.html:")
    assert Path("page.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    Path("pages").mkdir(exist_ok=True)
    assert main(["report", "results", "--out", "pages", "--max-panels", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {Path('pages/report.html')}: 1 (model, workload) panel "
                          "of 4 frontiers")
    assert "1 more panel left out; raise --max-panels" in out
    page = _Page(Path("pages/report.html").read_text(encoding="utf-8"))
    assert sum(k.startswith("frontier-") for k in page.figures) == 1


def test_report_without_results_counts_pareto_bounds_only(here, capsys):
    shutil.rmtree("lean", ignore_errors=True)
    assert main(["sweep", "spec.toml", "--out", "lean", "--quiet", "--no-results"]) == 0
    assert main(["report", "lean"]) == 0
    capsys.readouterr()
    page = _Page(Path("lean/report.html").read_text(encoding="utf-8"))
    bars = page.figures["bottleneck"]["data"]
    assert [t["name"] for t in bars] == ["compute-bound", "memory-bound", "network-bound"]
    assert all("Pareto" in label for label in bars[0]["y"])
    assert "the sweep wrote no configurations/" in Path("lean/report.html").read_text()


@pytest.mark.parametrize("argv, parts", [
    (["missing"], ["missing: no such folder", "finished `dse sweep`"]),
    (["spec.toml"], ["spec.toml: not a folder"]),
    (["results", "--out", "x.txt"], ["--out x.txt", ".html file or an existing folder"]),
    (["results", "--out", "nowhere/x.html"], ["--out nowhere/x.html", "does not exist"]),
    (["results", "--max-panels", "0"], ["--max-panels", "1 to 100"]),
])
def test_report_bad_input_one_line(here, capsys, argv, parts):
    line = cli_error(capsys, here, "report", *argv)
    for part in parts:
        assert part in line


def test_report_shows_the_elasticities_of_sensitivity_parquet(here):
    import pandas as pd
    text = Path("results/report.html").read_text(encoding="utf-8")
    table = re.search(r'<table class="sortable" id="elasticity-table">(.*?)</table>', text,
                      re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    sens = pd.read_parquet("results/sensitivity.parquet")
    assert len(cells) == 1  # one what-if axis, one step
    expected = sens["elasticity_tokens_per_s_per_device"].median()
    assert cells[0][:3] == ["memory_bandwidth_scale", "1 → 1.5", f"{len(sens):,}"]
    assert cells[0][3] == f"{expected:+.2f}"
    assert cells[0][-1] == f"{1 - sens['same_strategy'].mean():.0%}"
