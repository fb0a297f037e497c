import pytest

import dse


def small_spec(**grid):
    """A sweep spec from keyword axes ([what_if] via what_if=..., [constraints] via constraints=...)."""
    what_if = grid.pop("what_if", {})
    constraints = grid.pop("constraints", {})
    data = {"grid": grid}
    if what_if:
        data["what_if"] = what_if
    if constraints:
        data["constraints"] = constraints
    return dse.parse_sweep(data)


@pytest.fixture
def spec_factory():
    return small_spec
