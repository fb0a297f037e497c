"""LoRA serving (the lora_rank and lora_adapters axes): the adapters' GEMMs by hand, the
adapters in memory, the distinct adapters a batch reads, explain and the CLI."""
import numpy as np
import pytest

import dse
from dse.cli import main
from dse.compile import lora_ops
from dse.evaluate import derive
from dse.kernels.formulas import lora_cost

from grid_strategies import kernel_matches_reference

LLAMA = dse.load_model("llama3_8b")


def one(ds, name):
    return float(np.asarray(ds[name]).ravel()[0])


def test_lora_ops_of_llama3_8b_by_hand():
    ops = {op.name: op.row for op in lora_ops(LLAMA)}
    attn, ffn = ops["lora_attention"], ops["lora_ffn"]
    p0 = dse.kernels.layout.OP_P0
    # Q, K, V read h = 4096 each, O writes h: 4 x 4096 whole; Q 4096, K+V 2 x 8 x 128,
    # O's input 4096 split over tp; 4 projections, in all 32 layers
    assert tuple(attn[p0:p0 + 3]) == (4 * 4096, 4096 + 2048 + 4096, 4)
    # gate, up (h in) and down (h out) whole; 3 x 14336 split
    assert tuple(ffn[p0:p0 + 3]) == (3 * 4096, 3 * 14336, 3)
    assert attn[dse.kernels.layout.OP_LAYERS] == 32


def test_lora_cost_by_hand():
    attn = {op.name: op.row for op in lora_ops(LLAMA)}["lora_attention"]
    # tp 2: width = 16384 + 10240 / 2 = 21504; 8 decode tokens of 8 sequences, rank 16,
    # 4 adapters drawn uniformly: 4 (1 - (3/4)^8) = 3.5995 distinct
    width = 16384 + 10240 / 2
    used = 4 * (1 - 0.75 ** 8)
    flops, byts = lora_cost(attn, 8.0, 8.0, 2.0, 2.0, 16.0, 4.0)
    assert flops == pytest.approx(2 * 8 * 16 * width, rel=1e-12)
    assert byts == pytest.approx((used * 16 * width + 8 * (width + 2 * 16 * 4)) * 2,
                                 rel=1e-12)
    # one adapter: read once; rank 0: nothing
    assert lora_cost(attn, 8.0, 8.0, 2.0, 2.0, 16.0, 1.0)[1] == pytest.approx(
        (16 * width + 8 * (width + 128)) * 2, rel=1e-12)
    assert lora_cost(attn, 8.0, 8.0, 2.0, 2.0, 0.0, 4.0) == (0.0, 0.0)


def test_lora_adapters_in_memory_and_in_the_step():
    base = dict(hardware="h100_sxm", model="llama3_8b", batch=16, input_tokens=1024,
                output_tokens=128, serving="static", tp=1)
    plain = dse.evaluate(dse.parse_sweep({"grid": base}))
    spec = dse.parse_sweep({"grid": {**base, "lora_rank": [0, 16, 64],
                                     "lora_adapters": [1, 32]}})
    ds = dse.evaluate(spec)
    w = ds["weight_bytes_per_device"].squeeze()
    # rank 0 is no LoRA at all: the same weights and times as a sweep without the axes
    assert float(w.sel(lora_rank=0, lora_adapters=32)) == one(plain, "weight_bytes_per_device")
    assert float(ds["tpot_s"].sel(lora_rank=0, lora_adapters=32).squeeze()) == \
        pytest.approx(one(plain, "tpot_s"), rel=1e-12)
    # memory by hand: 32 adapters x rank 64 x (32 layers x (16384 + 10240) + 32 x (12288
    # + 43008)) x 2 bytes
    extra = 32 * 64 * 32 * (16384 + 10240 + 12288 + 43008) * 2
    assert float(w.sel(lora_rank=64, lora_adapters=32)) - one(plain, "weight_bytes_per_device") \
        == pytest.approx(extra, rel=1e-12)
    # each rank and adapter count costs time per token, more with more of either
    tpot = ds["tpot_s"].squeeze()
    assert float(tpot.sel(lora_rank=16, lora_adapters=1)) > one(plain, "tpot_s")
    assert float(tpot.sel(lora_rank=64, lora_adapters=1)) > float(
        tpot.sel(lora_rank=16, lora_adapters=1))
    assert float(tpot.sel(lora_rank=64, lora_adapters=32)) > float(
        tpot.sel(lora_rank=64, lora_adapters=1))


def test_kernel_matches_reference_with_lora():
    spec = dse.parse_sweep({"grid": {
        "hardware": ["h100_sxm"], "model": ["llama3_8b", "deepseek_v3"],
        "serving": ["static", "continuous"], "batch": [1, 24], "tp": [1, 8],
        "input_tokens": [700], "output_tokens": [9, 17], "lora_rank": [0, 8, 128],
        "lora_adapters": [1, 6]},
        "what_if": {"memory_capacity_scale": [1.0, 0.3]}})
    kernel_matches_reference(spec, breakdown=("decode_gemm_s", "prefill_gemm_s"))


def test_explain_lists_the_lora_ops(capsys):
    table, summary = dse.explain(hardware="h100_sxm", model="llama3_8b", batch=8,
                                 serving="static", lora_rank=16, lora_adapters=4)
    rows = table[table.kind == "lora"]
    assert set(rows.op) == {"lora_attention", "lora_ffn"}
    dec = rows[(rows.phase == "decode") & (rows.op == "lora_attention")].iloc[0]
    assert dec["count"] == 32
    width = 16384 + 10240
    assert dec["flops"] == pytest.approx(2 * 8 * 16 * width, rel=1e-12)
    assert table[table.phase == "decode"].total_s.sum() == pytest.approx(summary["tpot_s"],
                                                                        rel=1e-9)
    # without LoRA the ops are not there at all
    table, _ = dse.explain(hardware="h100_sxm", model="llama3_8b", batch=8, serving="static")
    assert not (table.kind == "lora").any()
    assert main(["explain", "--lora-rank", "8", "--lora-adapters", "3"]) == 0
    assert "lora_attention" in capsys.readouterr().out


def test_sweep_with_lora_from_a_relative_folder(sweep_here):
    best, _ = sweep_here('[grid]\nbatch = [1, 16]\nlora_rank = [0, 16]\nlora_adapters = [1, 8]\n')
    assert set(best.lora_rank) == {0, 16} and set(best.lora_adapters) == {1, 8}
    der = derive(dse.evaluate(dse.parse_sweep({"grid": {"lora_rank": [16]}})))
    assert bool(np.asarray(der["feasible"]).all())


def test_lora_overhead_near_punicas():
    # Punica (Chen et al., arXiv:2310.18547, section 7): Llama-2-7B on one A100 80GB, rank
    # 16 on every dense projection, every request its own adapter, batch up to 32: 1044
    # tokens/s against vLLM's 1140 for the base model alone (0.916); 13B: 693 / 789
    # (0.878). dse, 32 concurrent requests with 32 distinct adapters against none: the
    # same ratio within 0.05
    spec = dse.parse_sweep({"grid": {
        "hardware": ["a100_80gb"], "model": ["llama2_7b", "llama2_13b"], "batch": [32],
        "input_tokens": [256], "output_tokens": [128], "lora_rank": [0, 16],
        "lora_adapters": [32]}})
    t = derive(dse.evaluate(spec))["throughput_tokens_per_s"].squeeze()
    ratio = (t.sel(lora_rank=16) / t.sel(lora_rank=0)).values
    assert np.allclose(ratio, [1044 / 1140, 693 / 789], atol=0.05), ratio
