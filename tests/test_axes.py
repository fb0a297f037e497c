"""The axis registry (dse.axes) is the one list of axes: everything else derives from it."""
from pathlib import Path

import pytest

from dse import axes
from dse.cli import build_parser
from dse.config import parse_sweep
from dse.grid import GRID_DIMS, GROUP_DIMS, STRATEGY_DIMS, TPOT_DIMS, TTFT_DIMS
from dse.table import AXIS_COLUMNS, schema


def test_axes_registry_layout_is_a_permutation():
    assert sorted(a.layout for a in axes.AXES) == list(range(len(axes.AXES)))
    assert sorted(GRID_DIMS) == sorted(AXIS_COLUMNS) == sorted(axes.AXIS)
    assert set(GROUP_DIMS) | set(STRATEGY_DIMS) == set(GRID_DIMS)
    assert not set(GROUP_DIMS) & set(STRATEGY_DIMS)


def test_axes_kernel_dims_follow_walk_and_ttft():
    assert set(TPOT_DIMS) == {a.name for a in axes.AXES if a.walk != "derived"}
    assert set(TTFT_DIMS) == {a.name for a in axes.AXES if a.walk != "derived" and a.ttft}
    # what is walked comes first: derived-only axes are innermost, the kernel never sees them
    assert GRID_DIMS[:len(TPOT_DIMS)] == TPOT_DIMS


def test_axes_defaults_are_valid_and_parse():
    for a in axes.AXES:
        assert all(a.problem(v) is None for v in a.default), a.name
    spec = parse_sweep({})
    assert {**spec.grid, **spec.what_if} == {a.name: tuple(a.default) for a in axes.AXES}


@pytest.mark.parametrize("axis", [a for a in axes.AXES if a.kind == "int"],
                         ids=lambda a: a.name)
def test_axes_int_bound_is_the_limit(axis):
    assert axis.problem(axis.bound) is None
    assert "bound" in axis.problem(axis.bound + 1)
    assert axis.problem(axis.minimum - 1) and axis.problem(True) and axis.problem(1.0)


def test_axes_every_axis_has_a_results_column_explain_flag_and_readme_entry():
    names = schema().names
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    explain = build_parser()._subparsers._group_actions[0].choices["explain"]
    flags = {s for action in explain._actions for s in action.option_strings}
    for a in axes.AXES:
        assert a.name in names
        assert f"{a.name} = [" in readme, f"README's spec example lacks {a.name}"
        if a.section == "grid":
            assert "--" + a.name.replace("_", "-") in flags
