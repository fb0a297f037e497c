"""Architecture features on whole models, each against a hand calculation."""
import numpy as np
import pytest

import dse
from dse.compile import (active_params, kv_cache_bytes_per_device, model_ops, total_params,
                         weight_params_per_device)
from dse.kernels import layout as L


def test_fp4_and_int4_bytes_include_block_scales():
    # NVFP4: 4 bits + one fp8 scale per 16 values; int4: 4 bits + one fp16 scale per 128
    assert L.DTYPE_BYTES[L.DTYPE_INDEX["fp4"]] == 0.5 + 1 / 16
    assert L.DTYPE_BYTES[L.DTYPE_INDEX["int4"]] == 0.5 + 2 / 128
    spec = dse.parse_sweep({"grid": {"model": "llama3_70b", "tp": 8,
                                     "weight_dtype": ["bf16", "fp4"], "act_dtype": "bf16"}})
    w = dse.evaluate(spec)["weight_bytes_per_device"]
    ratio = float(w.sel(weight_dtype="fp4").max() / w.sel(weight_dtype="bf16").max())
    assert ratio == pytest.approx(0.5625 / 2)


def test_sliding_window_caps_kv_cache():
    m = dse.load_model("gemma2_9b")
    assert m.sliding_window_tokens == 4096 and m.window_layers == m.layers // 2
    d, kv = m.head_dim, m.kv_heads
    # 32k context: global layers hold 32768 positions, window layers 4096
    expected = 1 * (21 * 32768 + 21 * 4096) * 2 * kv * d * 2
    assert kv_cache_bytes_per_device(m, 1, 1, 1, 32768, 2) == expected


def test_mla_cache_is_the_latent_and_not_split_by_tp():
    m = dse.load_model("deepseek_v3")
    per_token_layer = m.kv_lora_rank + m.qk_rope_head_dim  # 512 + 64
    assert per_token_layer == 576
    for tp in (1, 8):
        assert kv_cache_bytes_per_device(m, tp, 1, 2, 1000, 1) == 2 * 1000 * 61 * 576


def test_mla_decode_uses_absorbed_program():
    m = dse.load_model("deepseek_v3")
    prefill = [op.name for op in model_ops(m, L.PREFILL)]
    decode = [op.name for op in model_ops(m, L.DECODE)]
    assert "kv_b_proj" in prefill and "kv_b_proj" not in decode
    assert {"q_absorb", "attention_latent", "v_absorb"} <= set(decode)


def test_moe_dense_layers_and_shared_experts_counts():
    m = dse.load_model("deepseek_v3")
    ops = {op.name: op for op in model_ops(m, L.DECODE)}
    assert ops["gate_up_proj"].row[L.OP_LAYERS] == 3     # first_k_dense_replace
    assert ops["experts"].row[L.OP_LAYERS] == 58
    assert ops["shared_gate_up_proj"].row[L.OP_LAYERS] == 58
    # active = total - unused routed experts: (256 - 8) x 3 x 7168 x 2048 x 58 layers
    unused = 248 * 3 * 7168 * 2048 * 58
    assert total_params(m) - active_params(m) == unused


def test_attention_dp_spreads_experts_not_attention():
    m = dse.load_model("deepseek_v3")
    one = weight_params_per_device(m, 8, 1, 1)
    four = weight_params_per_device(m, 8, 1, 4)
    experts = m.experts * 3 * m.hidden_size * m.expert_ffn_dim * m.moe_layers
    shared = 3 * m.hidden_size * m.shared_ffn_dim * m.moe_layers
    assert one - four == pytest.approx((experts + shared) / 8 * (1 - 1 / 4))
    spec = dse.parse_sweep({"grid": {"model": "deepseek_v3", "hardware": "h200", "tp": 8,
                                     "attention_dp": [1, 4], "batch": 64, "ep": 8,
                                     "weight_dtype": "fp8"}})
    ds = dse.evaluate(spec)
    der = dse.derive(ds)
    assert list(np.ravel(der["devices"].sel(dp=1, pp=1).values)) == [8, 32]
    kv = ds["kv_cache_bytes_per_device"]
    assert float(kv.sel(attention_dp=4).max()) == pytest.approx(
        float(kv.sel(attention_dp=1).max()) / 4)


def test_attention_dp_on_dense_model_is_infeasible():
    spec = dse.parse_sweep({"grid": {"model": "llama3_8b", "attention_dp": [1, 2]}})
    der = dse.derive(dse.evaluate(spec))
    from dse.evaluate import REASONS
    codes = der["reason"].sel(attention_dp=2).values.ravel()
    assert {REASONS[c] for c in codes} == {"attention_dp_on_dense_model"}


def test_kernel_latency_makes_small_kernels_less_efficient():
    # one decode step of a 1B model at batch 1 is latency-heavy; prefill of 8k tokens is not
    # static serving: the decode step and the prefill pass as separate phases
    spec = dse.parse_sweep({"grid": {"model": "llama3_2_1b", "input_tokens": 8192,
                                     "output_tokens": 2, "serving": "static"}})
    ds = dse.evaluate(spec)
    hw = spec.hardware[0]
    table, _ = dse.explain(model="llama3_2_1b", input_tokens=8192, output_tokens=2,
                           serving="static")
    dec = table[table.phase == "decode"]
    latency_share = float((dec["count"] * dec["latency_s"]).sum()) / float(ds["tpot_s"].max())
    pre = table[table.phase == "prefill"]
    prefill_share = float((pre["count"] * pre["latency_s"]).sum()) / float(ds["ttft_s"].max())
    assert latency_share > 0.2 > 0.05 > prefill_share
    assert hw.kernel_latency_s > 0


def test_state_space_model_keeps_a_state_not_a_kv_cache():
    m = dse.load_model("mamba2_2_7b")
    short = kv_cache_bytes_per_device(m, 1, 1, 4, 1000, 2)
    long = kv_cache_bytes_per_device(m, 1, 1, 4, 100000, 2)
    assert short == long == 4 * 64 * (5120 * 128 + 5376 * 3) * 2
    spec = dse.parse_sweep({"grid": {"model": "mamba2_2_7b", "output_tokens": [2, 4096],
                                     "input_tokens": 32768}})
    tpot = dse.evaluate(spec)["tpot_s"].values.ravel()
    assert tpot[0] == pytest.approx(tpot[1], rel=1e-12)  # no context-dependent op


def test_hybrid_model_layer_counts():
    m = dse.load_model("jamba_v0_1")
    ops = {op.name: op for op in model_ops(m, L.DECODE)}
    assert ops["attention"].row[L.OP_LAYERS] == 4
    assert ops["ssm_scan"].row[L.OP_LAYERS] == 28
    assert ops["experts"].row[L.OP_LAYERS] == 16 and ops["gate_up_proj"].row[L.OP_LAYERS] == 16


def _decode_collectives(**grid):
    table, _ = dse.explain(model="deepseek_v3", hardware="h200", weight_dtype="fp8",
                           batch=16, serving="static", **grid)
    dec = table[(table.phase == "decode") & (table.op_class == "collective")]
    # the collectives that move data (over one device, e.g. an all-gather at tp 1, none)
    return {op: n for op, n, s in zip(dec.op, dec["count"], dec.total_s) if n > 0 and s > 0}


def test_expert_parallelism_inside_one_attention_group_all_reduces():
    # tp 8 = ep 8, one attention group: every device holds every token, runs its 32
    # experts on them and the partial outputs are all-reduced (SGLang's forward_normal,
    # vLLM's FusedMoE, TensorRT-LLM without attention DP): the same collectives as tp 8
    # without expert parallelism, no all-to-all
    in_group = _decode_collectives(tp=8, ep=8)
    assert in_group == _decode_collectives(tp=8, ep=1)
    assert in_group["moe_all_reduce"] == 58 and "moe_dispatch" not in in_group
    # experts spread over 8 attention groups of one device: dispatch and combine only
    spread = _decode_collectives(tp=1, ep=8, attention_dp=8)
    assert spread["moe_dispatch"] == spread["moe_combine"] == 58
    assert "moe_all_reduce" not in spread and "moe_all_gather" not in spread
    # groups of 2 devices: their token shares are gathered back after the combine
    pairs = _decode_collectives(tp=2, ep=8, attention_dp=4)
    assert pairs["moe_all_gather"] == 58 and "moe_all_reduce" not in pairs
