"""The bundled multi-node serving rows (configs/validation/multi_node.csv): a tensor-parallel
group of 16 H100 spans two NVLink domains, so every all-reduce also crosses the scale-out
link; the rows validate end to end, each priced feasible."""
from pathlib import Path

import numpy as np

import dse
from dse.validate import load_measured, validate

CSV = Path(__file__).resolve().parents[1] / "configs" / "validation" / "multi_node.csv"


def test_the_multi_node_rows_validate_across_both_links():
    rows, card = validate(load_measured(CSV), source=str(CSV), base_dir=CSV.parent)
    assert len(rows) == 7 and rows["feasible"].astype(bool).all()
    for col in ("predicted_ttft_s", "predicted_tpot_s"):
        assert np.isfinite(rows[col].to_numpy(dtype=float)).all()
    # tp 16 over h100_sxm's 8-GPU scale-up domain: the decode all-reduces use both links
    r = rows.iloc[0]
    table, _ = dse.explain(hardware=r.hardware, model=r.model, tp=int(r.tp), batch=1,
                           input_tokens=int(r.input_tokens), output_tokens=int(r.output_tokens),
                           weight_dtype=r.weight_dtype, act_dtype=r.act_dtype,
                           kv_dtype=r.kv_dtype, quant=r.quant, serving="static")
    ar = table[(table.phase == "decode") & table.op.str.endswith("all_reduce")]
    assert len(ar) and (ar.link == "scaleup+scaleout").all()
