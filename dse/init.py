"""``dse init``: a commented starter sweep spec with every section and key.

The text is generated from the axis registry (``dse.axes``) and the spec's section keys
(``dse.config``), so a new axis or constraint appears here without an edit. Each grid and
what-if key is set to its default (the spec then evaluates one configuration per model and
hardware), with the axis' help text and its valid values above it; the optional sections
(``[constraints]``, ``[disaggregated]``, ``[objectives]``, ``[cost]``) are written commented
out with example values.
"""
from __future__ import annotations

import textwrap

from .axes import AXES
from .config import (COST_OPTIONAL_KEYS, COST_OWN_KEYS, COST_RENT_KEYS, CONSTRAINT_KEYS,
                     DISAGGREGATED_KEYS, bundled_names)

_PRESET_KINDS = {"hardware": "hardware", "model": "models", "engine": "engines",
                 "quant": "quant"}
_CONSTRAINT_EXAMPLES = {"max_devices": "8", "max_ttft_s": "2.0", "max_tpot_s": "0.05"}
_DISAGGREGATED_EXAMPLES = {"mixed_hardware": "false", "max_instances": "16"}
_COST_EXAMPLES = {"purchase_usd": "20000", "amortization_years": "4", "power_usd_per_kwh": "0.08",
                  "pue": "1.3", "hosting_usd_per_hour": "0.3"}


def _toml(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _valid(axis) -> str:
    """One comment line on what an axis accepts."""
    if axis.kind == "preset":
        names = bundled_names(_PRESET_KINDS.get(axis.name, axis.name))
        return f"bundled: {', '.join(names)} (or a path to a .toml file)"
    if axis.choices:
        return f"one or more of: {', '.join(map(str, axis.choices))}"
    if axis.kind == "dtype":
        return f"one or more of: {', '.join(axis.dtypes)}"
    if axis.kind == "scale":
        return "factors > 0 (1.0: the preset as is)"
    if axis.kind == "fraction":
        return "fractions in [0, 1]"
    return f"whole numbers >= {axis.minimum}" if axis.minimum is not None else "numbers"


def starter_spec() -> str:
    """The commented starter spec (TOML text that ``dse sweep`` accepts as written)."""
    lines = ["# dse sweep spec: every key, set to its default (one configuration per model",
             "# and hardware). Give a list of values to sweep an axis; `dse sweep SPEC.toml",
             "# --out results` evaluates every combination, then `dse report results`.", ""]
    for section in ("grid", "what_if"):
        lines.append(f"[{section}]")
        for axis in AXES:
            if axis.section != section:
                continue
            for text in (axis.doc, _valid(axis)):
                lines += textwrap.wrap(text, 88, initial_indent="# ", subsequent_indent="#   ")
            lines.append(f"{axis.name} = [{', '.join(_toml(v) for v in axis.default)}]")
        lines.append("")
    lines += ["# Deployment limits for the best-strategy table (best.parquet); drop a key for",
              "# no limit.", "# [constraints]"]
    lines += [f"# {k} = {_CONSTRAINT_EXAMPLES.get(k, '1')}" for k in CONSTRAINT_KEYS]
    lines += ["", "# Disaggregated prefill/decode pools paired from the grid's static points",
              "# (README 'Disaggregated serving'): needs \"static\" among the serving values.",
              "# [disaggregated]"]
    lines += [f"# {k} = {_DISAGGREGATED_EXAMPLES.get(k, '1')}" for k in DISAGGREGATED_KEYS]
    from .objectives import DEFAULT_BEST, DEFAULT_PARETO, OBJECTIVES
    lines += ["", "# What best.parquet optimizes and which 2 or more metrics pareto.parquet spans",
              "# (README 'Objectives'), each in its natural sense; the metrics:"]
    lines += textwrap.wrap(", ".join(OBJECTIVES), 88, initial_indent="#   ",
                           subsequent_indent="#   ")
    lines += ["# [objectives]", f"# best = {_toml(DEFAULT_BEST)}",
              f"# pareto = [{', '.join(_toml(m) for m in DEFAULT_PARETO)}]"]
    lines += ["", "# Price per device-hour behind cost_per_million_output_tokens (USD per million",
              "# output tokens), per hardware preset of [grid] hardware, in place of the preset's own",
              "# (README 'Cost and energy'). Either the rent:",
              "# [cost.h100_sxm]",
              f"# {COST_RENT_KEYS[0]} = 2.5",
              "# or, instead of it, what owning one costs an hour: purchase_usd /",
              "# (amortization_years * 8760) + tdp_watts / 1000 * pue * power_usd_per_kwh",
              "# (+ hosting_usd_per_hour, optional):"]
    lines += [f"# {k} = {_COST_EXAMPLES[k]}" for k in (*COST_OWN_KEYS, *COST_OPTIONAL_KEYS)]
    return "\n".join(lines) + "\n"
