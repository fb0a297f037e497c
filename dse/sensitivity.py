"""``sensitivity.parquet``: how the best configuration's outcome responds to each what-if.

For every group of ``best.parquet`` and every what-if axis swept with two or more values,
the arc elasticity of the best tokens/s per device, TTFT and TPOT between consecutive
values of that axis, the other group keys held fixed:

    elasticity = (ln y1 - ln y0) / (ln x1 - ln x0)

(1.0: the metric grows in proportion to the scale; 0: no response; a TPOT elasticity of
-1 means decode time falls in proportion). The best configuration may differ between the
two values (``same_strategy`` says whether it does): the elasticity is that of the best
answer the grid gives, not of one fixed configuration. Groups without a feasible best at
either value are left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .axes import AXES

METRICS = ("tokens_per_s_per_device", "ttft_s", "tpot_s")
STRATEGY = ("batch", "tp", "pp", "ep", "attention_dp", "max_batched_tokens", "dp",
            "weight_dtype", "act_dtype", "kv_dtype", "quant")
FILE = "sensitivity.parquet"
# the table's own columns (the group keys are axes): name -> (unit, description)
COLUMNS = {
    "what_if": ("", "the what-if axis varied between from_value and to_value (its own "
                "column is null on the row)"),
    "from_value": ("x (factor on the preset's value)", "the what-if axis' lower value"),
    "to_value": ("x (factor on the preset's value)", "the what-if axis' next value"),
    "same_strategy": ("", "the best configuration's strategy is the same at both values"),
    **{f"elasticity_{m}": ("", f"arc elasticity of the best configuration's {m}: "
                           "(ln y1 - ln y0) / (ln x1 - ln x0) between from_value and "
                           "to_value (1: proportional)") for m in METRICS},
}


def sensitivity(best: pd.DataFrame) -> pd.DataFrame:
    """The elasticity table of a best table (see the module docstring); empty when no
    what-if axis has two values."""
    keys = list(best.columns[:list(best.columns).index("found")])
    whatifs = [a.name for a in AXES if a.section == "what_if" and a.name in keys
               and best[a.name].nunique() > 1]
    found = best[best["found"]]
    strategy = [c for c in STRATEGY if c in best.columns]
    out = []
    for axis in whatifs:
        others = [k for k in keys if k != axis]
        for group, rows in found.groupby(others, dropna=False, observed=True, sort=False):
            rows = rows.sort_values(axis)
            if len(rows) < 2:
                continue
            x = rows[axis].to_numpy(float)
            same = (rows[strategy].astype(str).agg("|".join, axis=1).to_numpy())
            for i in range(len(rows) - 1):
                rec = dict(zip(others, group if isinstance(group, tuple) else (group,)))
                rec.update(what_if=axis, from_value=x[i], to_value=x[i + 1],
                           same_strategy=bool(same[i] == same[i + 1]))
                with np.errstate(divide="ignore", invalid="ignore"):
                    for m in METRICS:
                        y = rows[m].to_numpy(float)
                        rec[f"elasticity_{m}"] = float(
                            (np.log(y[i + 1]) - np.log(y[i])) / (np.log(x[i + 1]) - np.log(x[i])))
                out.append(rec)
    columns = keys + ["what_if", "from_value", "to_value", "same_strategy"] + \
        [f"elasticity_{m}" for m in METRICS]
    # the varied axis' own column is null on its rows (from_value/to_value carry it)
    return pd.DataFrame(out, columns=columns)
