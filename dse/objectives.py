"""The ``[objectives]`` spec section: what the best table optimizes and which metrics span
the Pareto frontier.

Every objective is a per-configuration metric of the results table with its natural sense
(more tokens/s is better, a lower cost or latency is better); :data:`OBJECTIVES` lists
them. The reduction kernel (:mod:`dse.kernels.objectives`) computes each from the kernel's
outputs with the arithmetic of :func:`dse.evaluate.derived_metrics` and maximizes
``sign * value``. A configuration whose objective is undefined (a cost where the hardware
has no price) is on no frontier and never the best pick.

The best rows also say why the pick is where it is (:data:`BEST_COLUMNS`):
``binding_constraints`` names each ``[constraints]`` limit that, lifted alone, would give a
better pick (or, where nothing qualifies, any pick), and ``edge_axes`` names each strategy
axis whose swept range the pick sits at the end of (``batch=max``: a larger batch was not
tried), so widening that axis may do better.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError
from .kernels import layout as L

# metric -> (kernel code, sense: +1 maximize, -1 minimize)
OBJECTIVES = {
    "tokens_per_s_per_device": (L.OBJ_TOKENS_PER_DEVICE, 1),
    "tokens_per_s_per_user": (L.OBJ_TOKENS_PER_USER, 1),
    "throughput_tokens_per_s": (L.OBJ_THROUGHPUT, 1),
    "requests_per_s": (L.OBJ_REQUESTS, 1),
    "cost_per_million_output_tokens": (L.OBJ_COST, -1),
    "ttft_s": (L.OBJ_TTFT, -1),
    "tpot_s": (L.OBJ_TPOT, -1),
    "e2e_latency_s": (L.OBJ_E2E, -1),
    "devices": (L.OBJ_DEVICES, -1),
    "energy_per_token_j": (L.OBJ_ENERGY, -1),
}
OBJECTIVE_KEYS = ("best", "pareto")
DEFAULT_BEST = "tokens_per_s_per_device"
DEFAULT_PARETO = ("tokens_per_s_per_device", "tokens_per_s_per_user")
# the [constraints] limits the binding test lifts, in the kernel's order
CONSTRAINT_ORDER = ("max_devices", "max_ttft_s", "max_tpot_s")
# columns of the best rows besides the axes and metrics: (name, meaning)
BEST_COLUMNS = (
    ("binding_constraints", "the [constraints] limits that, lifted one at a time, would "
     "give a better pick (where nothing qualifies: any pick), comma-separated; null when "
     "none would"),
    ("edge_axes", "the strategy axes whose swept range the pick sits at the end of, as "
     "axis=max or axis=min (min only above 1), comma-separated; null when none"),
)


@dataclass(frozen=True)
class Objectives:
    """``best``: the metric the best table optimizes; ``pareto``: the 2 or more metrics the
    Pareto frontier spans (each in its natural sense, :data:`OBJECTIVES`)."""
    best: str = DEFAULT_BEST
    pareto: tuple = DEFAULT_PARETO

    def codes(self):
        """(best code, best sign, pareto codes, pareto signs) for the kernel."""
        return (OBJECTIVES[self.best][0], float(OBJECTIVES[self.best][1]),
                [OBJECTIVES[m][0] for m in self.pareto],
                [float(OBJECTIVES[m][1]) for m in self.pareto])

    def sign(self, metric: str) -> float:
        return float(OBJECTIVES[metric][1])


def _metric(value, source: str, key: str) -> str:
    """The objective ``value`` names (a former name, :data:`dse.metrics.RENAMED`, gives
    the current one)."""
    from .config import did_you_mean, shown
    from .metrics import RENAMED
    if isinstance(value, str) and value in RENAMED:
        return RENAMED[value]
    if not isinstance(value, str) or value not in OBJECTIVES:
        hint = did_you_mean(value, sorted(OBJECTIVES)) if isinstance(value, str) else ""
        raise ConfigError(f"{source}: [objectives] {key} = {shown(value)}: not an objective"
                          f"{hint}; valid: {', '.join(OBJECTIVES)}")
    return value


def parse_objectives(section: dict, source: str) -> Objectives:
    """The validated ``[objectives]`` section (defaults where a key is absent)."""
    from .config import _check_keys, shown
    _check_keys(section, OBJECTIVE_KEYS, [], source, "objectives")
    best = _metric(section["best"], source, "best") if "best" in section else DEFAULT_BEST
    pareto = DEFAULT_PARETO
    if "pareto" in section:
        raw = section["pareto"]
        if not isinstance(raw, list) or len(raw) < 2:
            raise ConfigError(f"{source}: [objectives] pareto = {shown(raw)}: give a list of "
                              "2 or more metrics, e.g. [\"tokens_per_s_per_device\", "
                              "\"tokens_per_s_per_user\"]")
        pareto = tuple(_metric(m, source, "pareto") for m in raw)
        if len(set(pareto)) != len(pareto):
            raise ConfigError(f"{source}: [objectives] pareto = {shown(raw)}: a metric is "
                              "named twice")
    return Objectives(best=best, pareto=pareto)
