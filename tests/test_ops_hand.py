"""Each operator kind's FLOPs, bytes and network volume against a hand calculation."""
import pytest

from dse import ops
from dse.kernels import layout as L

PRE, DEC = L.PREFILL, L.DECODE


def cost(op, phase=PRE, seqs=2, s=100, ctx=0, tp=1, pp=1, ep=1, wb=2.0, ab=2.0, kb=2.0):
    return ops.op_costs(op, phase, seqs, s, ctx, tp, pp, ep, wb, ab, kb)


def test_gemm_column_split_prefill():
    # 2 seqs x 100 tokens = 200 tokens, K=4096, N=6144 split over tp=2 -> N=3072
    c = cost(ops.gemm("q", 4096, 6144, 1, L.SPLIT_COLUMNS), tp=2)
    assert c["flops"] == 2 * 200 * 4096 * 3072
    assert c["bytes"] == 4096 * 3072 * 2 + 200 * 4096 * 2 + 200 * 3072 * 2
    assert c["net_bytes"] == 0


def test_gemm_row_split_decode_fp8_weights():
    # decode: 2 tokens; K=8192/4=2048 rows per device, N=4096; weights 1 byte
    c = cost(ops.gemm("o", 8192, 4096, 1, L.SPLIT_ROWS), phase=DEC, tp=4, wb=1.0)
    assert c["flops"] == 2 * 2 * 2048 * 4096
    assert c["bytes"] == 2048 * 4096 * 1 + 2 * 2048 * 2 + 2 * 4096 * 2


def test_gemm_kv_projection_replicates_beyond_kv_heads():
    # 8 KV heads, tp=16: each device still holds one KV head (N = 2*8*128 / min(16, 8))
    c = cost(ops.gemm("kv", 4096, 2 * 8 * 128, 1, L.SPLIT_KV, kv_heads=8), phase=DEC, seqs=1, tp=16)
    assert c["flops"] == 2 * 1 * 4096 * 256


def test_gemm_lm_head_sees_last_token_only_in_prefill():
    op = ops.gemm("lm_head", 4096, 32000, split=L.SPLIT_COLUMNS, scope=L.SCOPE_ONCE,
                  tokens=L.TOKENS_LAST)
    assert cost(op, seqs=3, s=500)["flops"] == 2 * 3 * 4096 * 32000


def test_attention_prefill_causal_flash():
    # 32 heads, 8 KV heads, d=128, tp=2 -> 16 q heads, 4 kv heads per device
    # causal pairs per sequence: s(s+1)/2 = 100*101/2 = 5050
    c = cost(ops.attention("attn", 32, 8, 128, 128, 2 * 8 * 128, 8, 1), tp=2)
    assert c["flops"] == pytest.approx(4 * 128 * 16 * 2 * 5050, rel=1e-15)
    # read Q, K, V and write O in act bytes; write K and V to the cache in kv bytes
    tokens = 200
    expected = tokens * 128 * (16 + 4 + 4 + 16) * 2 + tokens * 2 * 4 * 128 * 2
    assert c["bytes"] == pytest.approx(expected, rel=1e-15)


def test_attention_decode_reads_kv_cache_at_context():
    # 2 sequences attend to 1000 positions; fp8 KV cache (1 byte)
    c = cost(ops.attention("attn", 32, 8, 128, 128, 2 * 8 * 128, 8, 1), phase=DEC, ctx=1000, kb=1.0)
    assert c["flops"] == 4 * 128 * 32 * 2 * 1000
    kv_read = 2 * 1000 * 8 * 2 * 128 * 1
    q_kv_o = 2 * 128 * (32 + 8 + 8 + 32) * 2
    kv_write = 2 * 8 * 2 * 128 * 1
    assert c["bytes"] == kv_read + q_kv_o + kv_write


def test_norm_fused_residual_rmsnorm():
    c = cost(ops.norm("n", 4096, 1))
    assert c["flops"] == 5 * 200 * 4096
    assert c["bytes"] == 4 * 200 * 4096 * 2 + 4096 * 2


def test_embedding_vocab_parallel_lookup():
    c = cost(ops.embedding("e", 4096), tp=4)
    assert c["flops"] == 0
    assert c["bytes"] == 200 * 4096 * 2 / 4 + 200 * 4096 * 2


def test_moe_decode_reads_only_activated_experts():
    # 1 token, top-2 of 8 experts, tp = 1: exactly 2 experts are read
    op = ops.moe_experts("x", 4096, 14336, 8, 2, 3, 1)
    c = cost(op, phase=DEC, seqs=1, tp=1, ep=1)
    assert 8 * (1 - (1 - 2 / 8) ** 1) == 2
    assert c["flops"] == 2 * 1 * 2 * 4096 * 14336 * 3
    acts = 1 * 2 * 2 * (2 * 4096 + 3 * 14336)
    assert c["bytes"] == pytest.approx(2 * 3 * 4096 * 14336 * 2 + acts, rel=1e-15)


def test_moe_decode_prices_the_busiest_expert_group():
    """Mixtral 8x7B on 8 devices, one expert each, batch 1 (issue 12): the two active
    experts sit on two devices that each read a whole expert (352 MB per layer), not a
    quarter of one. On 2 groups of 4 experts (tp = ep = 2) the two picks share a group with
    probability 2 C(4,2) / C(8,2) = 3/7: the busiest device reads 1 + 3/7 experts."""
    op = ops.moe_experts("x", 4096, 14336, 8, 2, 3, 1)
    expert = 3 * 4096 * 14336 * 2
    assert expert == 352_321_536
    from dse.kernels.formulas import busiest_group_load
    c = cost(op, phase=DEC, seqs=1, tp=8, ep=8)
    # compute and activations: the busiest device handles one routed copy whole (its
    # dispatch in and out, 2 x 4096, and the expert's 3 x 14336 intermediates), not a
    # quarter of the two copies
    load = busiest_group_load(8.0, 2.0, 1.0, 8.0)
    assert load == pytest.approx(1.0, abs=1e-3)
    acts = load * 2 * (2 * 4096 + 3 * 14336)
    assert c["bytes"] == pytest.approx(expert + acts, rel=1e-12)
    assert c["flops"] == pytest.approx(2 * load * 4096 * 14336 * 3, rel=1e-12)
    c = cost(op, phase=DEC, seqs=1, tp=2, ep=2)
    # two copies over two groups, each group's count Binomial(2, 1/2) (F(0) = 1/4,
    # F(1) = 3/4): E[max] = (1 - 1/16) + (1 - 9/16) = 1.375 (1 + 3/7 with the copies'
    # distinct experts)
    load = busiest_group_load(8.0, 2.0, 1.0, 2.0)
    assert load == pytest.approx(1.375, rel=1e-12)
    acts = load * 2 * (2 * 4096 + 3 * 14336 * 2 / 2)
    assert c["bytes"] - acts == pytest.approx(10 / 7 * expert, rel=0.03)


def test_moe_prefill_activates_nearly_all_experts():
    op = ops.moe_experts("x", 4096, 14336, 8, 2, 3, 1)
    c = cost(op, seqs=1, s=64)
    active = 8 * (1 - 0.75 ** 64)
    assert c["bytes"] == pytest.approx(active * 3 * 4096 * 14336 * 2 + 64 * 2 * 2 * (
        2 * 4096 + 3 * 14336), rel=1e-12)


def test_all_reduce_message():
    # the message is 200 tokens x 4096 x 2 bytes on each of 8 devices; what each
    # algorithm moves is kernels/collectives.py's (tests/test_collectives.py)
    c = cost(ops.all_reduce("ar", 4096, 1), tp=8)
    assert c["net_bytes"] == 200 * 4096 * 2
    assert c["group_devices"] == 8
    assert cost(ops.all_reduce("ar", 4096, 1), tp=1)["group_devices"] == 1


def test_all_gather_logits():
    # the gathered logits of the 4 sampled tokens
    op = ops.all_gather("ag", 32000, scope=L.SCOPE_ONCE, tokens=L.TOKENS_LAST)
    c = cost(op, seqs=4, tp=4)
    assert c["net_bytes"] == 4 * 32000 * 2
    assert c["group_devices"] == 4


def test_reduce_scatter_message():
    c = cost(ops.reduce_scatter("rs", 4096, 1), tp=4)
    assert c["net_bytes"] == 200 * 4096 * 2
    assert c["group_devices"] == 4


def test_all_to_all_dispatch():
    # each of tp=4 devices dispatches its 200/4 tokens x top-2 x 4096 over ep=2 groups
    c = cost(ops.all_to_all("a2a", 2 * 4096, 1), tp=4, ep=2)
    assert c["net_bytes"] == (200 / 4) * 2 * 4096 * 2
    assert c["group_devices"] == 2


def test_p2p_stage_send():
    c = cost(ops.p2p("send", 4096), tp=4, pp=2)
    assert c["net_bytes"] == 200 * 4096 * 2
    assert c["span_devices"] == 8


def test_attention_sliding_window_caps_prefill_pairs_and_decode_context():
    # window 64, s = 100: pairs = 64*65/2 + (100-64)*64 = 2080 + 2304 = 4384
    op = ops.attention("attn", 32, 8, 128, 128, 2 * 8 * 128, 8, 1, window=64)
    c = cost(op, seqs=1)
    assert c["flops"] == 4 * 128 * 32 * 4384
    d = cost(op, phase=DEC, seqs=1, ctx=1000)
    assert d["flops"] == 4 * 128 * 32 * 64   # sees only the last 64 positions


def test_attention_mla_decode_reads_replicated_latent():
    # DeepSeek-V3-like: 128 heads, latent 512 + 64 rope dims, tp=8 -> 16 heads per device,
    # the latent cache is not split: 576 elements per position, read once for all heads
    op = ops.attention("mla", 128, 1, 576, 512, 576, 1, 1)
    c = cost(op, phase=DEC, seqs=1, ctx=1000, tp=8, kb=1.0)
    assert c["flops"] == 2 * 16 * 1000 * (576 + 512)
    fresh = 1 * 2.0 * (16 * (576 + 512) + 1 * (576 + 512))
    assert c["bytes"] == 1000 * 576 * 1 + fresh + 576 * 1


def test_gemm_grouped_per_head_absorption():
    # 128 heads of [128 x 512] (W_UK absorbed), split over tp=8 by heads: 16 per device
    op = ops.gemm("q_absorb", 128, 512, 1, L.SPLIT_COLUMNS, groups=128)
    c = cost(op, phase=DEC, seqs=4, tp=8)
    assert c["flops"] == 2 * 4 * 128 * 512 * 16
    assert c["bytes"] == 16 * (128 * 512 * 2 + 4 * (128 + 512) * 2)


def test_ssm_scan_decode_reads_and_writes_the_state():
    # Mamba-2 2.7B layer at tp=2: inner 5120/2, state 128, conv channels (5120+256)/2, k=4;
    # B and C 2 x 128 and 80 dt heads per token, split over tp
    op = ops.ssm_scan("ssm", 5120, 128, 5376, 4, 1, bc=256, dt=80)
    c = cost(op, phase=DEC, seqs=3, tp=2, kb=2.0)
    inner, ch = 2560, 2688
    state = inner * 128 + ch * 3
    assert c["flops"] == 3 * 6 * inner * 128
    # per token: x, z, y (3 x 2560) + B, C (128) + dt (40)
    assert c["bytes"] == 2 * 3 * state * 2 + 3 * (3 * inner + 128 + 40) * 2
    p = cost(op, seqs=3, s=100, tp=2)
    assert p["bytes"] == 3 * state * 2 + 300 * (3 * inner + 128 + 40) * 2


def test_mamba1_scan_streams_six_inner_plus_two_state_per_token():
    # Mamba-1 (issue 12 item 7): conv reads and writes inner; the scan reads x, z, dt
    # (inner each), B and C (N each) and writes y: 6 inner + 2 N elements per token
    from dse.compile import model_ops
    from dse.config import load_model
    m = load_model("jamba_v0_1")
    prog = {o.name: o for o in model_ops(m, DEC)}
    inner, n = m.ssm_inner, m.ssm_state_size
    scan = cost(prog["ssm_scan"], phase=DEC, seqs=1, tp=1, kb=2.0)
    conv = cost(prog["ssm_conv"], phase=DEC, seqs=1, tp=1)
    state = inner * n + inner * (m.ssm_conv_kernel - 1)
    assert m.ssm_conv_channels == inner
    assert conv["bytes"] + scan["bytes"] - 2 * state * 2 == (6 * inner + 2 * n) * 2


def test_mla_prefill_attention_computes_in_16_bits_over_fresh_heads():
    # MLA prefill attends K/V just decompressed by kv_b_proj and Q from q_b_proj: GEMM
    # outputs, written in bf16 whatever the GEMMs' fp8 inputs; the prefill kernels run bf16.
    # Decode's absorbed attention over the cached latent, and GQA attention, keep the wider
    # of activation and KV-cache precision
    import numpy as np
    from dse.config import load_model
    from dse.compile import program_ops
    from dse.kernels.formulas import op_precisions
    code = L.DTYPE_INDEX
    quant = np.full(L.QUANT_FIELDS, -1.0)  # no recipe: the grid's precisions

    def cdt(model, phase, name, a, k):
        op = next(o for o in program_ops(load_model(model), phase) if o.name == name)
        return L.DTYPES[op_precisions(op.row, quant, code["fp8"], code[a], code[k],
                                      L.DTYPE_BITS)[3]]
    assert cdt("deepseek_v3", PRE, "attention", "fp8", "fp8") == "bf16"
    assert cdt("deepseek_v3", PRE, "attention", "fp32", "fp8") == "fp32"
    assert cdt("deepseek_v3", DEC, "attention_latent", "fp8", "fp8") == "fp8"
    assert cdt("llama3_8b", PRE, "attention", "fp8", "fp8") == "fp8"
    assert cdt("llama3_8b", PRE, "attention", "fp8", "bf16") == "bf16"
