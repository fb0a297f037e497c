"""Gated DeltaNet linear-attention hybrids (Qwen3-Next, Qwen3.5; issue 12): presets against
their published parameter counts, one linear-attention layer's decode FLOPs, bytes and state
against a hand calculation, the gated full-attention layers, and the preset checks."""
import pytest

import dse
from grid_strategies import kernel_matches_reference
from dse import ops
from dse.compile import (active_params, attention_params_per_device, kv_cache_bytes_per_device,
                         linear_attention_params, linear_attention_state, model_ops,
                         total_params, weight_params_per_device)
from dse.config import parse_model
from dse.kernels import layout as L

B = 1e9
GDN_OPS = ("gdn_in_proj", "gdn_conv", "gdn_recurrence", "gdn_norm", "gdn_out_proj")


def _ops(name, phase=L.DECODE):
    return {op.name: op for op in model_ops(dse.load_model(name), phase)}


# --------------------------------------------------------------------------- parameter counts
def test_qwen3_next_params_by_hand():
    # Qwen3-Next-80B-A3B, h = 2048 (configs/models/qwen3_next_80b_a3b.toml cites each number)
    h = 2048
    key, value, vh = 16 * 128, 32 * 128, 32          # q/k width, v/z width, value heads
    gdn = (h * (2 * key + 2 * value + 2 * vh)        # in_proj_qkvz + in_proj_ba
           + (2 * key + value) * 4                   # depthwise conv over q, k, v (no bias)
           + 2 * vh + 128                            # dt_bias, A_log; gated norm (dv)
           + value * h)                              # out_proj
    assert gdn == 33_718_464
    attention = h * 16 * 256 * 2 + 2 * h * 2 * 256 + 16 * 256 * h  # Q + gate, K, V, O
    assert attention == 27_262_976
    moe = 512 * 3 * h * 512 + h * 512 + 3 * h * 512  # experts, router, shared expert
    m = dse.load_model("qwen3_next_80b_a3b")
    assert linear_attention_params(m) == gdn
    assert attention_params_per_device(m, 1) == attention
    expected = (36 * gdn + 12 * attention + 48 * moe + 48 * 2 * h  # two norms per layer
                + 2 * 151936 * h + h)                              # embedding, LM head, final norm
    assert total_params(m) == expected == 79_674_286_848
    # + the 48 shared-expert gates (h x 1) and 12 x 2 q/k norms (256) dse does not count
    assert expected + 48 * h + 12 * 2 * 256 == 79_674_391_296
    assert total_params(m) - active_params(m) == 48 * (512 - 10) * 3 * h * 512


def test_qwen3_next_counts_match_published():
    # model card: 80B total, "3B" activated (a one-significant-figure label: see the preset)
    m = dse.load_model("qwen3_next_80b_a3b")
    assert total_params(m) == pytest.approx(80 * B, rel=0.01)
    embeddings = 2 * m.vocab_size * m.hidden_size   # input embedding + untied LM head
    non_embedding_active = active_params(m) - embeddings
    assert non_embedding_active == pytest.approx(3.25 * B, rel=0.001)
    assert round(non_embedding_active / B) == 3
    assert "param-count-note" in m.text and "config.json" in m.text


def test_qwen3_5_397b_counts_match_published():
    # Qwen3.5-397B-A17B, h = 4096: 45 DeltaNet layers (16 q/k heads, 64 value heads of 128),
    # 15 gated attention layers (32 heads of 256, 2 KV heads), 512 experts of 1024 + shared
    h = 4096
    key, value, vh = 16 * 128, 64 * 128, 64
    gdn = h * (2 * key + 2 * value + 2 * vh) + (2 * key + value) * 4 + 2 * vh + 128 + value * h
    attention = h * 32 * 256 * 2 + 2 * h * 2 * 256 + 32 * 256 * h
    moe = 512 * 3 * h * 1024 + h * 512 + 3 * h * 1024
    m = dse.load_model("qwen3_5_397b_a17b")
    expected = 45 * gdn + 15 * attention + 60 * moe + 60 * 2 * h + 2 * 248320 * h + h
    assert total_params(m) == expected == 396_346_096_896
    # model card: 397B total (with a ~0.45B vision encoder dse does not model), 17B activated
    assert total_params(m) == pytest.approx(397 * B, rel=0.01)
    assert active_params(m) == pytest.approx(17 * B, rel=0.025)  # 17.35B: "A17B" is rounded


def test_hybrid_layer_counts_and_gated_attention():
    m = dse.load_model("qwen3_next_80b_a3b")
    assert (m.attention_layers, m.linear_attention_layers, m.moe_layers) == (12, 36, 48)
    prog = _ops("qwen3_next_80b_a3b")
    for name in ("qkv_proj", "attention", "attn_gate", "o_proj"):
        assert prog[name].row[L.OP_LAYERS] == 12, name
    for name in GDN_OPS:
        assert prog[name].row[L.OP_LAYERS] == 36, name
    assert prog["experts"].row[L.OP_LAYERS] == 48 and prog["attn_norm"].row[L.OP_LAYERS] == 48
    assert prog["attn_all_reduce"].row[L.OP_LAYERS] == 48  # every mixer's output is reduced
    assert prog["gdn_recurrence"].kind == "ssm_scan" and prog["gdn_conv"].kind == "elementwise"
    # the output gate doubles the query part of the fused QKV projection: 2 x 16 x 256 query
    # and gate columns split over tp, 2 x 2 x 256 K/V columns
    q = prog["qkv_proj"].row[L.OP_P0:L.OP_P0 + 6]
    assert (q[1], q[5]) == (2 * 16 * 256, 2 * 2 * 256)
    c = ops.op_costs(prog["attn_gate"], L.DECODE, 1, 1, 0, 2, 1, 1, 2.0, 2.0, 2.0)
    assert c["bytes"] == (2 * 4096 + 4096) / 2 * 2   # reads o and gate, writes o; tp = 2
    assert c["flops"] == 5 * 4096 / 2


# --------------------------------------------------------------------------- hand checks
def _layer(tp, seqs=1):
    """Decode cost of one Gated DeltaNet layer of Qwen3-Next, bf16 everywhere, per op."""
    prog = _ops("qwen3_next_80b_a3b")
    return {name: ops.op_costs(prog[name], L.DECODE, seqs, 1000, 5000, tp, 1, 1, 2.0, 2.0, 2.0)
            for name in GDN_OPS}


def test_gated_deltanet_decode_layer_by_hand_tp1():
    # One decode token of one sequence, h = 2048; q/k width 2048, v/z width 4096, 32 value
    # heads; conv channels q + k + v = 8192; state 32 heads x 128 x 128 + 8192 x 3 conv inputs
    c = _layer(tp=1)
    assert c["gdn_in_proj"]["flops"] == 2 * 2048 * 12352            # 12352 = 2*2048 + 2*4096 + 64
    assert c["gdn_in_proj"]["bytes"] == 2048 * 12352 * 2 + (2048 + 12352) * 2
    assert c["gdn_conv"]["flops"] == 2 * 8192 * 4
    assert c["gdn_conv"]["bytes"] == (8192 + 8192) * 2
    state = 32 * 128 * 128 + 8192 * 3
    assert state == 548_864
    assert c["gdn_recurrence"]["flops"] == 6 * 4096 * 128           # the scan's 6 inner N
    # the state read and written once, plus v, z, o (3 x 4096), q and k (4096), beta/g (64)
    assert c["gdn_recurrence"]["bytes"] == 2 * state * 2 + (3 * 4096 + 4096 + 64) * 2
    assert c["gdn_norm"]["flops"] == 10 * 4096
    assert c["gdn_norm"]["bytes"] == (2 * 4096 + 4096) * 2
    assert c["gdn_out_proj"]["flops"] == 2 * 4096 * 2048
    assert c["gdn_out_proj"]["bytes"] == 4096 * 2048 * 2 + (4096 + 2048) * 2
    flops = sum(v["flops"] for v in c.values())
    byts = sum(v["bytes"] for v in c.values())
    assert flops == 70_623_232 and byts == 69_697_792
    # no op sees the context: the same at 5,000 and at 50 positions
    assert all(v["flops"] == o["flops"] and v["bytes"] == o["bytes"]
               for v, o in zip(c.values(), (
                   ops.op_costs(op, L.DECODE, 1, 1000, 50, 1, 1, 1, 2.0, 2.0, 2.0)
                   for op in (_ops("qwen3_next_80b_a3b")[n] for n in GDN_OPS))))
    # what the scan formula leaves out (compile._linear_attention_ops): the delta rule's
    # ~7 dk dv FLOPs per value head against 6 (3.7 vs 3.1 MFLOP, 14 %), still far below the
    # state traffic's ridge (< 2 FLOP per byte)
    delta_rule = 32 * 7 * 128 * 128
    assert delta_rule / c["gdn_recurrence"]["flops"] == pytest.approx(7 / 6)
    assert delta_rule / (2 * 32 * 128 * 128 * 2) < 2


def test_gated_deltanet_decode_layer_by_hand_tp2():
    # tp = 2: heads, channels, the state and the projections' split side halve; the column-
    # split in projection still reads the whole input, the row-split out projection writes
    # the whole output (reduced by attn_all_reduce)
    c = _layer(tp=2)
    assert c["gdn_in_proj"]["flops"] == 2 * 2048 * 6176
    assert c["gdn_in_proj"]["bytes"] == 2048 * 6176 * 2 + (2048 + 6176) * 2
    assert c["gdn_conv"]["bytes"] == (4096 + 4096) * 2
    state = 16 * 128 * 128 + 4096 * 3
    assert c["gdn_recurrence"]["flops"] == 6 * 2048 * 128
    assert c["gdn_recurrence"]["bytes"] == 2 * state * 2 + (3 * 2048 + (4096 + 64) / 2) * 2
    assert c["gdn_norm"]["bytes"] == (2 * 2048 + 2048) * 2
    assert c["gdn_out_proj"]["flops"] == 2 * 2048 * 2048
    assert c["gdn_out_proj"]["bytes"] == 2048 * 2048 * 2 + (2048 + 2048) * 2
    assert sum(v["flops"] for v in c.values()) == 35_311_616
    assert sum(v["bytes"] for v in c.values()) == 34_852_992
    # four sequences: the weights are read once, the state and activations four times
    four = _layer(tp=2, seqs=4)
    assert four["gdn_recurrence"]["bytes"] == 4 * c["gdn_recurrence"]["bytes"]
    assert four["gdn_out_proj"]["bytes"] == 2048 * 2048 * 2 + 4 * (2048 + 2048) * 2


def test_gated_deltanet_state_bytes_per_sequence():
    # vLLM's gated_delta_net_state_shape: conv (2 x key + value) / tp x (kernel - 1) and
    # recurrent value heads / tp x dk x dv, per sequence and layer, in the KV-cache precision
    m = dse.load_model("qwen3_next_80b_a3b")
    assert linear_attention_state(m) == 32 * 128 * 128 + (2 * 2048 + 4096) * 3 == 548_864
    per_seq = 36 * 548_864 * 2                      # 39,518,208 bytes (37.7 MiB) in bf16
    kv_token = 12 * 2 * 2 * 256 * 2                 # 12 attention layers, K and V of 2 heads
    for ctx in (1, 1000, 262_144):
        assert kv_cache_bytes_per_device(m, 1, 1, 1, ctx, 2) == per_seq + ctx * kv_token
        # tp = 2 splits the state with the heads and the 2 KV heads one per device
        assert kv_cache_bytes_per_device(m, 2, 1, 3, ctx, 1) == 3 * (per_seq / 2 / 2
                                                                     + ctx * kv_token / 4)
    # pp = 4: the most loaded stage holds ceil(36 / 4) DeltaNet and ceil(12 / 4) attention layers
    assert kv_cache_bytes_per_device(m, 1, 4, 1, 100, 2) == 9 * 548_864 * 2 + 100 * 3 * 2048
    # a 256k-token prompt: the 36 linear layers hold 0.15 % of what full attention would
    assert per_seq / (48 * 262_144 * 2 * 2 * 256 * 2) < 0.002


def test_gated_deltanet_weights_split_over_tp():
    m = dse.load_model("qwen3_next_80b_a3b")
    one, two = weight_params_per_device(m, 1, 1), weight_params_per_device(m, 2, 1)
    # the attention's 2 KV heads split at tp = 2; everything else but norms and routers too
    replicated = 48 * 2 * 2048 + 2048 + 48 * 2048 * 512
    assert one - two == pytest.approx((one - replicated) / 2, rel=1e-12)


# --------------------------------------------------------------------------- sweeps
@pytest.mark.parametrize("serving", ["static", "continuous"])
def test_linear_hybrid_kernel_matches_reference(serving):
    spec = dse.parse_sweep({"grid": {
        "model": ["qwen3_next_80b_a3b", "qwen3_5_397b_a17b"], "hardware": ["h200", "b200"],
        "serving": serving, "batch": [1, 16], "input_tokens": [300, 4000],
        "output_tokens": [2, 33], "tp": [1, 2, 8], "ep": [1, 8], "weight_dtype": ["bf16", "fp8"]}})
    fast, _ = kernel_matches_reference(spec)


def test_linear_hybrid_decode_barely_grows_with_context():
    # static decode at batch 8: only the 12 attention layers read a growing cache
    spec = dse.parse_sweep({"grid": {"model": ["qwen3_next_80b_a3b", "qwen3_30b_a3b"],
                                     "hardware": "h200", "serving": "static", "batch": 8,
                                     "input_tokens": [1024, 65536], "output_tokens": 16}})
    tpot = dse.evaluate(spec)["tpot_s"].squeeze()
    growth = tpot.sel(input_tokens=65536) / tpot.sel(input_tokens=1024)
    assert float(growth.sel(model="qwen3_next_80b_a3b")) < float(growth.sel(model="qwen3_30b_a3b"))


def test_explain_rows_add_up_for_linear_hybrid():
    table, summary = dse.explain(model="qwen3_next_80b_a3b", hardware="h200", tp=2,
                                 input_tokens=2048, output_tokens=64, batch=4,
                                 serving="static")
    dec = table[table.phase == "decode"]
    assert set(GDN_OPS) | {"attn_gate"} <= set(dec.op)
    assert float(dec["total_s"].sum()) == pytest.approx(summary["tpot_s"], rel=1e-9)


# --------------------------------------------------------------------------- preset checks
BASE = {"name": "m", "layers": 8, "hidden_size": 256, "heads": 4, "kv_heads": 2, "head_dim": 64,
        "ffn_dim": 512, "vocab_size": 1000, "tied_embeddings": False, "gated_ffn": True}
LINEAR = {"linear_attention_layers": 6, "linear_key_heads": 2, "linear_value_heads": 4,
          "linear_key_head_dim": 32, "linear_value_head_dim": 32}


def test_small_linear_hybrid_parses():
    m = parse_model({**BASE, **LINEAR, "attention_output_gate": True}, "x.toml")
    assert (m.attention_layers, m.linear_conv_channels, m.linear_conv_kernel) == (2, 256, 4)


@pytest.mark.parametrize("changes, expected", [
    ({**LINEAR, "linear_attention_layers": 9},
     "linear_attention_layers = 9: with ssm_layers must not exceed layers = 8"),
    ({**LINEAR, "ssm_layers": 3, "ssm_state_size": 16},
     "linear_attention_layers = 6: with ssm_layers must not exceed layers = 8"),
    ({"linear_attention_layers": 6, "linear_key_heads": 2},
     "linear_attention_layers = 6: linear-attention layers also need linear_value_heads, "
     "linear_key_head_dim, linear_value_head_dim"),
    ({"linear_key_heads": 2}, "linear_key_heads = 2: needs linear_attention_layers"),
    ({"linear_conv_kernel": 4}, "linear_conv_kernel = 4: needs linear_attention_layers"),
    ({**LINEAR, "linear_value_heads": 3},
     "linear_value_heads = 3: must be a multiple of linear_key_heads = 2"),
    ({**LINEAR, "linear_key_head_dim": 0}, "linear_key_head_dim = 0: must be a positive integer"),
    ({"attention_output_gate": "yes"}, "attention_output_gate = 'yes': must be true or false"),
    ({**LINEAR, "linear_attention_layers": 8, "heads": 0, "kv_heads": 0, "head_dim": 0,
      "attention_output_gate": True}, "attention_output_gate = True: needs attention layers"),
    ({"kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 32, "v_head_dim": 32,
      "attention_output_gate": True},
     "attention_output_gate = True: not with multi-head latent attention"),
])
def test_linear_attention_preset_errors_are_one_line(changes, expected):
    with pytest.raises(dse.ConfigError) as exc:
        parse_model({**BASE, **changes}, "x.toml")
    msg = str(exc.value)
    assert msg.startswith("x.toml: ") and expected in msg and "\n" not in msg, msg


def test_all_linear_model_needs_no_attention_fields():
    m = parse_model({**BASE, **LINEAR, "linear_attention_layers": 8, "heads": 0, "kv_heads": 0,
                     "head_dim": 0}, "x.toml")
    assert m.attention_layers == 0
    assert kv_cache_bytes_per_device(m, 1, 1, 1, 10_000, 2) == 8 * linear_attention_state(m) * 2


def test_tp_must_divide_the_linear_key_heads():
    # Qwen3.5-397B: 32 attention heads but 16 linear key heads; tp = 32 splits the
    # attention, not the DeltaNet heads
    import dse
    from dse.evaluate import REASONS, derive
    spec = dse.parse_sweep({"grid": {"model": "qwen3_5_397b_a17b", "hardware": "b200",
                                     "tp": [16, 32], "serving": "static"}})
    der = derive(dse.evaluate(spec))
    reason = der["reason"].squeeze()
    codes = {int(t): REASONS[int(reason.sel(tp=t).max())] for t in (16, 32)}
    assert codes[32] == "tp_not_divisor_of_heads"
    assert codes[16] != "tp_not_divisor_of_heads"
