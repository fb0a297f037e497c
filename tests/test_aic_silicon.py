"""configs/validation/aic_silicon.csv: NVIDIA aiconfigurator's measured serving corpus
mapped onto dse's presets (``benchmarks/import_aic_silicon.py``): the mapping rules on
hand-written corpus rows, and the bundled table's well-formedness and provenance."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from dse.config import bundled_dir
from dse.validate import check_table

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location(
    "import_aic_silicon", REPO / "benchmarks" / "import_aic_silicon.py")
aic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(aic)

BASE = dict(id="x_1", silicon_data_source="db-dump/2026-04-27; image=img:1", backend="sglang",
            backend_version="0.5.9", model_path="deepseek-ai/DeepSeek-R1",
            system="b200_sxm", precision="fp8", mode="agg", isl="1024", osl="8192",
            gemm_quant_mode="fp8", moe_quant_mode="fp8_block", batch_size="16",
            tp_size="8", pp_size="1", attention_dp_size="1", moe_tp_size="1",
            moe_ep_size="8", silicon_ttft_ms="250.5", silicon_tpot_ms="12.25")


def test_a_block_fp8_deepseek_row_maps_to_the_presets_and_the_fp8_recipe():
    out, why = aic.convert(BASE)
    assert why is None
    assert (out["hardware"], out["model"], out["engine"]) == ("b200", "deepseek_r1", "sglang")
    assert (out["weight_dtype"], out["act_dtype"], out["kv_dtype"], out["quant"]) == (
        "fp8", "bf16", "fp8", "fp8_bf16_collectives")
    assert (out["tp"], out["ep"], out["attention_dp"], out["batch"]) == (8, 8, 1, 16)
    assert (out["input_tokens"], out["output_tokens"]) == (1024, 8192)
    assert float(out["measured_ttft_s"]) == 0.2505
    assert float(out["measured_tpot_s"]) == 0.01225
    assert out["num_prompts"] == "" and out["serving"] == "continuous"
    assert "row id x_1" in out["source"] and "899034f57e" in out["source"]


@pytest.mark.parametrize("change, want", [
    # NVFP4: MoE checkpoints quantize the MLP only, dense ones every linear layer
    (dict(gemm_quant_mode="nvfp4", moe_quant_mode="nvfp4"),
     ("bf16", "same", "fp8", "nvfp4_experts")),
    (dict(model_path="meta-llama/Llama-3.1-70B", gemm_quant_mode="nvfp4",
          moe_quant_mode="nvfp4", moe_tp_size="0", moe_ep_size="0"),
     ("bf16", "same", "fp8", "nvfp4_linear")),
    # gpt-oss ships MXFP4 experts and bf16 attention whatever the corpus label says
    (dict(model_path="openai/gpt-oss-120b", gemm_quant_mode="nvfp4", moe_quant_mode="nvfp4"),
     ("bf16", "same", "bf16", "mxfp4_experts_bf16_attention")),
    (dict(model_path="moonshotai/Kimi-K2.5", gemm_quant_mode="int4_wo",
          moe_quant_mode="int4_wo"), ("bf16", "same", "bf16", "int4_experts")),
    (dict(model_path="Qwen/Qwen3-32B", gemm_quant_mode="", moe_quant_mode="",
          moe_tp_size="0", moe_ep_size="0"), ("bf16", "same", "bf16", "")),
])
def test_precisions_follow_the_checkpoints(change, want):
    out, why = aic.convert({**BASE, **change})
    assert why is None
    assert (out["weight_dtype"], out["act_dtype"], out["kv_dtype"], out["quant"]) == want


@pytest.mark.parametrize("version, engine", [("0.12.0", "vllm"), ("0.11.2", "vllm"),
                                             ("0.14.0", "vllm_async"),
                                             ("0.19.0", "vllm_async"),
                                             ("nightly-5b8c30d", "vllm_async")])
def test_vllm_takes_async_scheduling_from_0_14(version, engine):
    out, _ = aic.convert({**BASE, "backend": "vllm", "backend_version": version})
    assert out["engine"] == engine


@pytest.mark.parametrize("change, why", [
    (dict(mode="disagg"), "disaggregated"),
    (dict(system="gb200"), "hardware or model without a preset"),
    (dict(model_path="some/Other-Model"), "hardware or model without a preset"),
    (dict(tp_size="16", moe_ep_size="16"), "more than 8 devices"),
    (dict(moe_tp_size="2", moe_ep_size="8"), "MoE layout"),  # 16 MoE devices on 8
    (dict(silicon_tpot_ms="nan"), "no measurement"),
])
def test_rows_that_do_not_map_are_left_out_with_a_reason(change, why):
    assert aic.convert({**BASE, **change}) == (None, why)


def test_attention_dp_and_dense_layouts():
    out, _ = aic.convert({**BASE, "tp_size": "1", "attention_dp_size": "8",
                          "moe_tp_size": "1", "moe_ep_size": "8"})
    assert (out["tp"], out["attention_dp"], out["ep"]) == (1, 8, 8)
    # the corpus's batch_size is per attention-DP rank: the replica serves 8 x 16 clients
    assert out["batch"] == 8 * 16
    dense = aic.convert({**BASE, "model_path": "meta-llama/Llama-3.1-70B", "tp_size": "4",
                         "moe_tp_size": "4", "moe_ep_size": "4"})[0]
    assert (dense["tp"], dense["ep"]) == (4, 1)  # no experts: the MoE sizes are ignored


def test_the_bundled_table_is_well_formed_and_cites_every_row():
    path = bundled_dir("validation") / "aic_silicon.csv"
    table = pd.read_csv(path)
    assert len(table) > 3000
    assert list(table.columns) == aic.COLUMNS
    assert table["source"].str.contains("silicon_sample.csv").all()
    assert table["source"].str.contains(r"row id \S+").all()
    assert set(table["engine"]) <= {"sglang", "trtllm", "vllm", "vllm_async"}
    assert set(table["hardware"]) <= set(aic.HARDWARE.values())
    assert ((table["tp"] * table["attention_dp"] * table["pp"]) <= 8).all()
    rows = check_table(table, str(path))  # every preset, dtype and recipe resolves
    assert len(rows) == len(table)


def test_the_importer_names_a_bad_corpus_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        aic.main(["nope.csv", "--out", "t.csv"])
    assert err.value.code == 2
    assert "nope.csv: cannot read the corpus" in capsys.readouterr().err
    Path("bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        aic.main(["bad.csv", "--out", "t.csv"])
    assert "not aiconfigurator's silicon_sample.csv" in capsys.readouterr().err
    assert not Path("t.csv").exists()  # nothing written
    Path("one.csv").write_text(",".join(BASE) + "\n" + ",".join(BASE.values()) + "\n")
    assert aic.main(["one.csv", "--out", "t.csv"]) == 0  # relative paths, one row kept
    assert len(pd.read_csv("t.csv")) == 1
