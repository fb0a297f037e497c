"""The metrics table (dse.metrics) is the one list of output columns."""
from pathlib import Path

import pandas as pd

import dse
from dse.explain import SERVING_FIELDS
from dse.metrics import METRICS, columns_markdown
from dse.table import AXIS_COLUMNS, schema


def test_metrics_results_schema_is_axes_then_metrics():
    sch = schema()
    assert sch.names == [*AXIS_COLUMNS, *(m.name for m in METRICS)]
    for m in METRICS:
        assert sch.field(m.name).nullable == m.nullable, m.name


def test_metrics_readme_column_table_is_generated():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme[readme.index("<!-- columns -->\n") + 17:readme.index("\n<!-- /columns -->")]
    assert block == columns_markdown(), "regenerate with: python -m dse.metrics"


def test_metrics_rows_and_explain_carry_the_declared_columns(tmp_path):
    spec = dse.parse_sweep({"grid": {"batch": [1, 8]}})
    dse.run_sweep(spec, tmp_path / "o", progress=False)
    for table in ("pareto.parquet", "best.parquet"):
        columns = pd.read_parquet(tmp_path / "o" / table).columns
        for m in METRICS:
            assert (m.name in columns) == m.in_rows, (table, m.name)
    # explain's summary: every metric, then micro_batches (static) or the steady state's
    # fields, micro_batches last (continuous serving, the default)
    _, summary = dse.explain(batch=8, serving="static")
    assert list(summary) == [*(m.name for m in METRICS), "micro_batches"]
    _, summary = dse.explain(batch=8)
    assert list(summary) == [*(m.name for m in METRICS), *SERVING_FIELDS]
    assert SERVING_FIELDS[-1] == "micro_batches"
