"""``dse plot DIR``: PNG / SVG of a finished sweep's Pareto frontiers.

One tiny sweep (2 hardware x 1 model x 2 input lengths: 2 panels of 2 frontiers) runs
once per module; every test works in a temporary working directory with relative paths,
as a user types them.
"""
from __future__ import annotations

import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dse.cli import main
from conftest import cli_error, copy_sweep, finished_sweep

SPEC = """\
[grid]
hardware = ["h100_sxm", "a100_80gb"]
model = ["llama3_8b"]
batch = [1, 8, 32]
input_tokens = [128, 512]
output_tokens = [16]
tp = [1, 2]
"""
# every configuration out of memory: a sweep with an empty frontier
INFEASIBLE = """\
[grid]
hardware = ["h100_sxm"]
model = ["llama3_70b"]
input_tokens = [128]
output_tokens = [16]
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A working directory holding spec.toml and its finished sweep in results/."""
    return finished_sweep(tmp_path_factory.mktemp("plot"), SPEC)


def _plot(capsys, *argv):
    code = main(["plot", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return out


def _frontier_series(svg: Path, kind: str = "frontier") -> dict:
    """Panel index -> SVG groups of the frontier lines (``kind`` "best": the stars of
    their best rows) drawn in it (dse.plot's SVG group ids)."""
    panels = {}
    for g in ET.parse(svg).iter(f"{SVG}g"):
        gid = g.get("id", "")
        if gid.startswith(f"{kind}-"):
            _, panel, series = gid.split("-")
            panels.setdefault(int(panel), []).append(g)
    return panels


def test_plot_png_default_into_dir_plots(here, capsys):
    out = _plot(capsys, "results")
    path = Path("results/plots/pareto.png")
    assert out.splitlines()[0].startswith(f"wrote {path}: 2 (model, workload) panels, "
                                          "4 frontiers")
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 20_000
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= 1000 and height >= 400


def test_plot_svg_one_series_per_hardware(here, capsys):
    out = _plot(capsys, "results", "--format", "svg")
    path = Path("results/plots/pareto.svg")
    assert f"wrote {path}" in out
    frontier = pq.read_table("results/pareto.parquet").to_pandas()
    groups = list(frontier.groupby("input_tokens", sort=False, observed=True))
    panels = _frontier_series(path)
    assert sorted(panels) == list(range(len(groups))) == [0, 1]
    text = path.read_text()
    for p, (input_tokens, rows) in enumerate(groups):
        assert len(panels[p]) == rows["hardware"].nunique() == 2
        # one colour per hardware
        strokes = {child.get("style").split("stroke: ")[1].split(";")[0]
                   for g in panels[p] for child in g if child.get("style")}
        assert len(strokes) == 2
        # every group has a best row (no constraints): one star per line
        assert len(_frontier_series(path, "best")[p]) == 2
        assert f"llama3_8b · {input_tokens:,} in / 16 out tokens" in text
    for label in ("h100_sxm", "a100_80gb", "speed per user, 1 / TPOT [tokens/s]",
                  "throughput per device [tokens/s]"):
        assert label in text


def test_plot_svg_is_reproducible(here, capsys):
    _plot(capsys, "results", "--out", "a.svg")
    _plot(capsys, "results", "--out", "b.svg")
    assert Path("a.svg").read_bytes() == Path("b.svg").read_bytes()


def test_plot_out_file_and_folder(here, capsys):
    out = _plot(capsys, "results", "--out", "figure.png")
    assert out.startswith("wrote figure.png:")
    assert Path("figure.png").read_bytes()[:8] == PNG_MAGIC
    Path("figs").mkdir(exist_ok=True)
    out = _plot(capsys, "results", "--out", "figs", "--format", "svg")
    assert out.startswith(f"wrote {Path('figs/pareto.svg')}:")
    ET.parse("figs/pareto.svg")  # well-formed XML


def test_plot_max_panels_says_how_many_were_left_out(here, capsys):
    out = _plot(capsys, "results", "--max-panels", "1", "--out", "one.svg")
    assert "1 (model, workload) panel, 2 frontiers" in out
    assert "1 more panel left out; raise --max-panels" in out
    assert sorted(_frontier_series(Path("one.svg"))) == [0]
    assert "1 more (model, workload) panel not shown" in Path("one.svg").read_text()


@pytest.mark.parametrize("argv, parts", [
    (["missing"], ["missing: no such folder", "finished `dse sweep`"]),
    (["spec.toml"], ["spec.toml: not a folder"]),
    (["results", "--out", "x.pdf"], ["--out x.pdf", ".png or .svg"]),
    (["results", "--out", "x.svg", "--format", "png"], ["--out x.svg", "--format png"]),
    (["results", "--max-panels", "0"], ["--max-panels", "1 to 100"]),
    (["results", "--format", "pdf"], ["--format", "png", "svg"]),
])
def test_plot_bad_input_one_line(here, capsys, argv, parts):
    line = cli_error(capsys, here, "plot", *argv)
    for part in parts:
        assert part in line





def test_plot_without_best_table_draws_no_stars(here, capsys):
    folder = copy_sweep("no_best")
    (folder / "best.parquet").unlink()
    _plot(capsys, "no_best", "--format", "svg")
    svg = Path("no_best/plots/pareto.svg")
    assert len(_frontier_series(svg)) == 2
    assert _frontier_series(svg, "best") == {}
    assert "best within the constraints" not in svg.read_text()



def test_plot_refuses_empty_frontier(here, capsys):
    Path("infeasible.toml").write_text(INFEASIBLE)
    shutil.rmtree("nothing", ignore_errors=True)
    assert main(["sweep", "infeasible.toml", "--out", "nothing", "--quiet"]) == 3
    capsys.readouterr()
    assert pq.read_metadata("nothing/pareto.parquet").num_rows == 0
    line = cli_error(capsys, here, "plot", "nothing")
    assert "empty frontier" in line and "no feasible configuration" in line
    assert not Path("nothing/plots").exists()
