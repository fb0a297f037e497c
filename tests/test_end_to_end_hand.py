"""Whole-model results against hand calculations on one configuration."""
import numpy as np
import pytest

import dse
from dse.compile import total_params
from dse.evaluate import derive


def one(**grid):
    # the hand calculations are of a static batch (prefill, then decode steps); the default
    # serving is continuous, so pin static
    spec = dse.parse_sweep({"grid": {"serving": "static", **grid}})
    ds = dse.evaluate(spec)
    der = derive(ds)
    pick = lambda v: float(np.asarray(v).ravel()[0])  # noqa: E731
    out = {k: pick(ds[k]) for k in ("ttft_s", "tpot_s", "weight_bytes_per_device",
                                    "kv_cache_bytes_per_device", "activation_bytes_per_device",
                                    "bound")}
    out.update({k: pick(der[k]) for k in ("e2e_latency_s", "throughput_tokens_per_s",
                                          "tokens_per_s_per_device", "feasible", "devices",
                                          "memory_bytes_per_device")})
    return spec, out


def test_llama3_8b_decode_batch1_is_weight_streaming_on_h100(h100_scalar):
    spec, r = one(hardware=h100_scalar, model="llama3_8b", batch=1, input_tokens=128,
                  output_tokens=2)
    m, hw = spec.models[0], spec.hardware[0]
    # decode reads every weight once except the embedding table (one row per token)
    weight_bytes = (total_params(m) - m.vocab_size * m.hidden_size) * 2
    streaming = weight_bytes / (hw.memory_bytes_per_s * hw.memory_efficiency)
    assert streaming == pytest.approx(5.6e-3, rel=0.01)     # 15.0 GB / 2.68 TB/s
    # plus one kernel latency per kernel: 9 per layer (2 norms, fused qkv, rope,
    # attention, o, gate_up, act, down) x 32 layers + embedding, final norm, LM head,
    # sampling = 292 (tp = 1: no collectives)
    kernels = 9 * 32 + 4
    assert hw.kernel_latency_s == 3e-6
    expected = streaming + kernels * hw.kernel_latency_s
    assert r["tpot_s"] == pytest.approx(expected, rel=0.01)
    assert r["bound"] == 1  # memory


def test_llama3_8b_prefill_is_compute_bound_flops():
    spec, r = one(hardware="h100_sxm", model="llama3_8b", batch=8, input_tokens=2048,
                  output_tokens=16)
    m, hw = spec.models[0], spec.hardware[0]
    tokens = 8 * 2048
    dense = total_params(m) - 2 * m.vocab_size * m.hidden_size  # layers only
    gemm_flops = 2 * dense * tokens + 2 * 8 * m.hidden_size * m.vocab_size  # + LM head
    attn_flops = 4 * m.head_dim * m.heads * 8 * (2048 * 2049 / 2) * m.layers
    compute = (gemm_flops + attn_flops) / (hw.flops_per_s["bf16"] * hw.compute_efficiency)
    # memory-bound extras: 65 fused add+RMSNorms (read x, residual; write both), the
    # embedding gather (read a row, write it), per layer RoPE on the 32 + 8 query and key
    # heads and SiLU-and-mul (read gate and up, write their product), and sampling over
    # the 8 sequences' fp32 logits (two reads, one write)
    h = m.hidden_size
    extra_bytes = ((2 * m.layers + 1) * (4 * tokens * h * 2 + h * 2) + tokens * h * (2 + 2)
                   + m.layers * tokens * (2 * (32 + 8) * 128 + 3 * m.ffn_dim) * 2
                   + 8 * 3 * m.vocab_size * 4)
    expected = (compute + extra_bytes / (hw.memory_bytes_per_s * hw.memory_efficiency)
                + (9 * 32 + 4) * hw.kernel_latency_s)
    assert r["ttft_s"] == pytest.approx(expected, rel=0.01)


def test_e2e_and_throughput_definitions():
    _, r = one(hardware="h100_sxm", model="llama3_8b", batch=16, input_tokens=512,
               output_tokens=128, dp=2)
    assert r["e2e_latency_s"] == pytest.approx(r["ttft_s"] + 127 * r["tpot_s"], rel=1e-12)
    assert r["throughput_tokens_per_s"] == pytest.approx(2 * 16 * 128 / r["e2e_latency_s"])
    assert r["devices"] == 2
    assert r["tokens_per_s_per_device"] == pytest.approx(r["throughput_tokens_per_s"] / 2)


def test_pipeline_fill_adds_micro_batches():
    # pp=2, batch=2: two micro-batches of one sequence; ttft = path + 1 * stage
    _, one_stage = one(hardware="h100_sxm", model="llama3_8b", batch=1, input_tokens=1024)
    _, piped = one(hardware="h100_sxm", model="llama3_8b", batch=2, input_tokens=1024, pp=2)
    # each micro-batch is the batch-1 prefill; the stage holds half the layers
    assert piped["ttft_s"] > one_stage["ttft_s"] * 1.4
    assert piped["ttft_s"] < one_stage["ttft_s"] * 1.6


def test_kv_cache_bytes_at_full_context():
    spec, r = one(hardware="h100_sxm", model="llama3_70b", batch=4, input_tokens=1000,
                  output_tokens=24, tp=4, kv_dtype="fp8")
    # 4 seqs x 1024 tokens x 80 layers x (K and V) x 2 KV heads per device x 128 x 1 byte
    assert r["kv_cache_bytes_per_device"] == 4 * 1024 * 80 * 2 * 2 * 128 * 1


def test_llama3_70b_bf16_does_not_fit_one_h100():
    _, r = one(hardware="h100_sxm", model="llama3_70b")
    assert not r["feasible"]
    _, r = one(hardware="h100_sxm", model="llama3_70b", tp=4)
    assert r["feasible"]


def test_fp8_on_a100_computes_at_bf16_rate():
    _, a = one(hardware="a100_80gb", model="llama3_8b", batch=64, input_tokens=2048,
               weight_dtype="fp8", act_dtype="fp8")
    _, b = one(hardware="a100_80gb", model="llama3_8b", batch=64, input_tokens=2048,
               weight_dtype="bf16")
    # prefill is compute bound: same rate; fp8 only saves bytes (of the memory-bound
    # norms, RoPE and activations, ~5 % of the pass)
    assert a["ttft_s"] == pytest.approx(b["ttft_s"], rel=0.03)
    assert a["ttft_s"] < b["ttft_s"]
    _, h = one(hardware="h100_sxm", model="llama3_8b", batch=64, input_tokens=2048,
               weight_dtype="fp8", act_dtype="fp8")
    _, hb = one(hardware="h100_sxm", model="llama3_8b", batch=64, input_tokens=2048)
    assert h["ttft_s"] < 0.6 * hb["ttft_s"]


def test_static_memory_is_the_larger_of_the_prefill_and_decode_peaks():
    # issue 12 item 7: a long prompt's prefill holds the prompts' KV cache and the prefill
    # activations; decode holds the full-context cache and one step's activations. The
    # check no longer adds the full-context cache to the prefill activations.
    from dse.compile import activation_bytes_per_device, kv_cache_bytes_per_device
    spec, r = one(hardware="h100_sxm", model="llama3_8b", batch=2, input_tokens=32768,
                  output_tokens=4096)
    m = spec.models[0]
    kv = lambda ctx: kv_cache_bytes_per_device(m, 1, 1, 2, ctx, 2.0)  # noqa: E731
    act = lambda s: activation_bytes_per_device(m, 1, 1, 2, s, 2.0)  # noqa: E731
    # 2 x 32768 tokens x 32 layers x 2 x 8 heads x 128 x 2 bytes = 8.6 GB at the prompt
    assert kv(32768) == 2 * 32768 * 32 * 2 * 8 * 128 * 2
    prefill, decode = kv(32768) + act(32768), kv(36864) + act(1)
    assert prefill > decode  # this prompt's activations outweigh 4096 more positions
    assert r["memory_bytes_per_device"] == pytest.approx(
        r["weight_bytes_per_device"] + prefill, rel=1e-12)
    assert r["memory_bytes_per_device"] < (r["weight_bytes_per_device"]
                                           + r["kv_cache_bytes_per_device"]
                                           + r["activation_bytes_per_device"])
    # a short prompt with a long answer peaks in decode
    spec, r = one(hardware="h100_sxm", model="llama3_8b", batch=2, input_tokens=128,
                  output_tokens=8192)
    assert kv(128) + act(128) < kv(128 + 8192) + act(1)
    assert r["memory_bytes_per_device"] == pytest.approx(
        r["weight_bytes_per_device"] + kv(128 + 8192) + act(1), rel=1e-12)


def test_weight_only_int4_prices_its_dequantization(h100_scalar):
    # issue 12 item 5: int4 weights with bf16 activations on H100 (no int4 math): the GEMM
    # runs at the bf16 rate and dequantizes each weight once per tile of 128 tokens on the
    # fp32 units (4 operations per weight). One q/k/v GEMM of Llama-3-8B over 8 x 2048
    # tokens: 128 tiles.
    from dse.compile import model_ops
    from dse.kernels import layout as L
    from dse.ops import op_costs
    spec, _ = one(hardware=h100_scalar, model="llama3_8b", batch=8, input_tokens=2048,
                  output_tokens=2, weight_dtype="int4", act_dtype="bf16")
    m, hw = spec.models[0], spec.hardware[0]
    qkv = {o.name: o for o in model_ops(m, L.PREFILL)}["qkv_proj"]
    wb, ab = L.DTYPE_BYTES[L.DTYPE_INDEX["int4"]], 2.0
    c = op_costs(qkv, L.PREFILL, 8, 2048, 0, 1, 1, 1, wb, ab, 2.0)
    elements = 4096 * (4096 + 2 * 8 * 128)
    assert c["dequant_ops"] == 4 * elements * 128
    assert op_costs(qkv, L.PREFILL, 8, 2048, 0, 1, 1, 1, 2.0, 2.0, 2.0)["dequant_ops"] == 0
    # the op's compute time: tensor FLOPs at the bf16 rate + dequantization at fp32's
    from dse.explain import explain
    table, _ = explain(hardware=h100_scalar, model="llama3_8b", serving="static", batch=8,
                       input_tokens=2048, output_tokens=2, weight_dtype="int4",
                       act_dtype="bf16")
    row = table[(table.phase == "prefill") & (table.op == "qkv_proj")].iloc[0]
    ce = hw.compute_efficiency
    want = (2 * 8 * 2048 * elements / (hw.flops_per_s["bf16"] * ce)
            + 4 * elements * 128 / (hw.flops_per_s["fp32"] * ce))
    assert row["compute_s"] == pytest.approx(want, rel=1e-12)
    # ~24 % on top of the tensor time at full tiles (4 / 67 TFLOPS vs 2 x 128 / 989)
    assert 0.2 < want / (2 * 8 * 2048 * elements / (hw.flops_per_s["bf16"] * ce)) - 1 < 0.3
    # batch-1 decode stays bound by reading the int4 weights: one tile's dequantization
    # (4 ops x 25 M weights / 47 TFLOPS = 2.1 us) hides under the 10 us weight read
    table, _ = explain(hardware="h100_sxm", model="llama3_8b", serving="static", batch=1,
                       input_tokens=128, output_tokens=16, weight_dtype="int4",
                       act_dtype="bf16")
    row = table[(table.phase == "decode") & (table.op == "qkv_proj")].iloc[0]
    assert row["memory_s"] > row["compute_s"] > 0
