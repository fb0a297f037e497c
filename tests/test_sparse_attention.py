"""DeepSeek Sparse Attention (DeepSeek-V3.2 / V3.2-Exp; issue 12): the preset against the
published parameter counts, a decode step at context 8192 priced as 2048 attended positions
while the KV cache holds all 8192, the lightning indexer's FLOPs and bytes by hand, sweeps in
both serving modes against the numpy references, ``dse explain``, and the preset checks."""
import numpy as np
import pytest

import dse
from grid_strategies import kernel_matches_reference
from dse import ops
from dse.cli import main
from dse.compile import (INDEXER_V_DIM, active_params, attention_params_per_device,
                         cache_elements_per_token, kv_cache_bytes_per_device, model_ops,
                         total_params, weight_params_per_device)
from dse.config import parse_model
from dse.kernels import layout as L

B = 1e9
INDEXER_OPS = ("indexer_q_proj", "indexer_k_proj", "indexer_weights_proj", "indexer_qk_prep",
               "indexer")


def _ops(name, phase=L.DECODE):
    return {op.name: op for op in model_ops(dse.load_model(name), phase)}


def _cost(op, phase, context, tp=1, seqs=1, input_tokens=1000, kb=2.0):
    """op_costs in bf16 weights and activations (kv_dtype bytes ``kb``)."""
    return ops.op_costs(op, phase, seqs, input_tokens, context, tp, 1, 1, 2.0, 2.0, kb)


# --------------------------------------------------------------------------- parameter counts
def test_indexer_params_by_hand():
    # DeepSeek-V3.2-Exp inference/model.py Indexer: wq_b (q_lora_rank -> 64 x 128), wk
    # (7168 -> 128), k_norm (LayerNorm: weight and bias of 128), weights_proj (7168 -> 64)
    m = dse.load_model("deepseek_v3_2")
    per_layer = 1536 * 64 * 128 + 7168 * 128 + 2 * 128 + 7168 * 64
    assert m.indexer_params == per_layer == 13_959_424
    v3 = dse.load_model("deepseek_v3")
    assert total_params(m) - total_params(v3) == 61 * per_layer == 851_524_864
    # replicated on every device: the difference does not shrink with tp
    for tp in (1, 8, 32):
        assert (attention_params_per_device(m, tp) - attention_params_per_device(v3, tp)
                == per_layer)
    assert (weight_params_per_device(m, 8, 4) - weight_params_per_device(v3, 8, 4)
            == 16 * per_layer)  # ceil(61 / 4) layers on the most loaded stage


def test_deepseek_v3_2_counts_match_published():
    m = dse.load_model("deepseek_v3_2")
    total = total_params(m)
    assert total == 671_877_929_216
    # the V3 line's 671B (V3.1 model card; V3.2 only adds the indexers): +0.13 %
    assert total == pytest.approx(671 * B, rel=0.002)
    # the Hub's 685.4B (safetensors of deepseek-ai/DeepSeek-V3.2-Speciale) adds the MTP
    # module: one more MoE layer with its indexer, eh_proj (2h x h), enorm, hnorm and the
    # shared head's norm, and its own copies of the embedding and the LM head
    h, v = m.hidden_size, m.vocab_size
    moe_layer = (attention_params_per_device(m, 1) + 2 * h
                 + 256 * 3 * h * 2048 + h * 256 + 3 * h * 2048)
    mtp = moe_layer + 2 * h * h + 3 * h + 2 * v * h
    assert mtp == pytest.approx(13.48 * B, rel=1e-3)
    assert total + mtp == pytest.approx(685.4 * B, rel=0.001)  # the rest: fp8 block scales
    # active: README_WEIGHTS.md's 36.6B for V3 (no input-embedding lookup) + the indexers
    no_lookup = active_params(m) - v * h
    assert no_lookup == pytest.approx(36.6 * B + 61 * m.indexer_params, rel=0.001)
    assert no_lookup == pytest.approx(37 * B, rel=0.015)  # the listings' rounded "37B"
    assert "param-count-note" in m.text and "config_671B_v3.2.json" in m.text


def test_deepseek_v3_2_is_v3_plus_sparse_attention():
    m, v3 = dse.load_model("deepseek_v3_2"), dse.load_model("deepseek_v3")
    fields = ("layers", "hidden_size", "heads", "kv_heads", "ffn_dim", "vocab_size", "experts",
              "experts_per_token", "moe_ffn_dim", "shared_experts", "dense_layers",
              "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
              "v_head_dim")
    assert all(getattr(m, f) == getattr(v3, f) for f in fields)
    assert (m.sparse_attention_top_k, m.indexer_heads, m.indexer_head_dim) == (2048, 64, 128)
    assert m.is_sparse_attention and not v3.is_sparse_attention
    assert m.sliding_window_tokens == 0 and m.window_layers == 0  # no sliding window


# --------------------------------------------------------------------------- operators
def test_sparse_model_program():
    for phase in (L.PREFILL, L.DECODE):
        prog = _ops("deepseek_v3_2", phase)
        for name in INDEXER_OPS:
            assert prog[name].row[L.OP_LAYERS] == 61, name
        assert prog["indexer"].kind == "attention"
        assert prog["indexer"].row[L.OP_P0 + 4] == 0            # every previous position
        # the main attention: MLA's latent (MQA) form with the top-k as its window, in
        # both phases (no kv_b decompression in prefill)
        assert "kv_b_proj" not in prog and "attention" not in prog
        assert {"q_absorb", "attention_latent", "v_absorb"} <= set(prog)
        assert prog["attention_latent"].row[L.OP_P0 + 4] == 2048
    # the dense V3 program is unchanged: prefill decompresses K/V, nothing is windowed
    dense = _ops("deepseek_v3", L.PREFILL)
    assert "kv_b_proj" in dense and dense["attention"].row[L.OP_P0 + 4] == 0
    assert not set(INDEXER_OPS) & set(dense)


def test_decode_step_at_8192_attends_2048_positions_and_caches_8192():
    # one sequence, tp 1, bf16 everywhere, context 8192
    c = 8192
    att = _cost(_ops("deepseek_v3_2")["attention_latent"], L.DECODE, c)
    # 128 heads, q.k over the 576-wide latent (512 + 64 rope) and p.v over 512: 2 x 1088
    # FLOPs per head and attended position, over min(8192, 2048) = 2048 positions
    assert att["flops"] == 2 * 128 * (576 + 512) * 2048 == 570_425_344
    # reads the 2048 selected latents (576 x 2 bytes), writes this token's latent; q and the
    # output per head and the fresh latent: 2 x (128 + 1) x 1088
    fresh = 2 * (128 * 1088 + 1088)
    assert att["bytes"] == 576 * 2 * 2048 + 576 * 2 + fresh == 2_641_152
    # DeepSeek-V3 (dense MLA) at the same context reads all 8192 positions: 4x the FLOPs
    dense = _cost(_ops("deepseek_v3")["attention_latent"], L.DECODE, c)
    assert dense["flops"] == 4 * att["flops"]
    assert dense["bytes"] - att["bytes"] == 576 * 2 * (8192 - 2048)
    # at or below the top-k the selection keeps everything: the same as dense
    assert (_cost(_ops("deepseek_v3_2")["attention_latent"], L.DECODE, 1500)["flops"]
            == _cost(_ops("deepseek_v3")["attention_latent"], L.DECODE, 1500)["flops"])
    # the KV cache holds all 8192 positions of every layer: the latent (576) plus the
    # indexer's key (128) per token, 61 layers, bf16
    m = dse.load_model("deepseek_v3_2")
    assert cache_elements_per_token(m, 8) == 576 + 128
    kv = kv_cache_bytes_per_device(m, 1, 1, 1, c, 2.0)
    assert kv == 61 * 8192 * (576 + 128) * 2 == 703_594_496
    # not capped at the top-k: twice the context, twice the cache
    assert kv_cache_bytes_per_device(m, 1, 1, 1, 2 * c, 2.0) == 2 * kv
    # replicated over tp (a latent and one key per token), split by attention DP
    assert kv_cache_bytes_per_device(m, 8, 1, 16, c, 1.0, 4) == 4 * 61 * 8192 * 704


def test_indexer_decode_and_prefill_by_hand():
    prog = _ops("deepseek_v3_2")
    c = 8192
    idx = _cost(prog["indexer"], L.DECODE, c)
    # 64 heads, q.k over 128 dims and INDEXER_V_DIM = 2 (ReLU, head weight, head sum and
    # the top-k selection: 4 FLOPs per head), over every one of the 8192 positions
    assert INDEXER_V_DIM == 2
    assert idx["flops"] == 2 * 64 * (128 + 2) * 8192 == 136_314_880
    # reads every cached key (128 x 2 bytes), writes this token's; fresh q side (64 x 130)
    # and the k side (130)
    assert idx["bytes"] == 128 * 2 * 8192 + 128 * 2 + 2 * (64 * 130 + 130) == 2_114_308
    # fp8 KV cache (kv_dtype fp8): the key reads and write take 1 byte
    assert (_cost(prog["indexer"], L.DECODE, c, kb=1.0)["bytes"]
            == 128 * 8192 + 128 + 2 * (64 * 130 + 130))
    # tp 8: the heads split (see _indexer_ops: engines replicate them), the cache does not
    idx8 = _cost(prog["indexer"], L.DECODE, c, tp=8)
    assert idx8["flops"] == 2 * 8 * 130 * 8192
    assert idx8["bytes"] == 128 * 2 * 8192 + 128 * 2 + 2 * (8 * 130 + 130)
    # its projections, replicated: wq_b from the q latent, wk and weights_proj from hidden
    for name, k, n in (("indexer_q_proj", 1536, 8192), ("indexer_k_proj", 7168, 128),
                       ("indexer_weights_proj", 7168, 64)):
        for tp in (1, 8):
            g = _cost(prog[name], L.DECODE, c, tp=tp)
            assert g["flops"] == 2 * k * n and g["bytes"] == k * n * 2 + (k + n) * 2, name
    prep = _cost(prog["indexer_qk_prep"], L.DECODE, c)
    assert prep["bytes"] == 2 * 65 * 128 * 2 and prep["flops"] == 12 * 65 * 128
    # prefill of an 8192-token prompt: every causal pair for the indexer, pairs capped at
    # the top-k for the main attention
    pre = _ops("deepseek_v3_2", L.PREFILL)
    s = 8192
    ip = _cost(pre["indexer"], L.PREFILL, 0, input_tokens=s)
    assert ip["flops"] == 2 * 64 * 130 * s * (s + 1) / 2
    pairs = 2048 * 2049 / 2 + (s - 2048) * 2048
    assert pairs == 14_681_088
    ap = _cost(pre["attention_latent"], L.PREFILL, 0, input_tokens=s)
    assert ap["flops"] == 2 * 128 * 1088 * pairs
    # the selection saves attention FLOPs only past ~2 x top-k: dense causal pairs are
    # s (s + 1) / 2 = 33.6M, 2.3x the 14.7M attended
    assert s * (s + 1) / 2 / pairs == pytest.approx(2.29, abs=0.01)


# --------------------------------------------------------------------------- sweeps
@pytest.mark.parametrize("serving", ["static", "continuous"])
def test_sparse_attention_kernel_matches_reference(serving):
    spec = dse.parse_sweep({"grid": {
        "model": ["deepseek_v3_2"], "hardware": ["h200", "b200"], "serving": serving,
        # decode contexts below, across (2030 + 1 .. 2030 + 39) and past the top-k
        "batch": [1, 16], "input_tokens": [1000, 2030, 6000], "output_tokens": [2, 40],
        "tp": [1, 8], "ep": [1, 8], "kv_dtype": ["bf16", "fp8"]}})
    fast, _ = kernel_matches_reference(spec)
    assert np.isfinite(fast["tpot_s"].values).any()
    # the memory column holds every position: prompt + output at the KV precision
    kv = fast["kv_cache_bytes_per_device"].sel(input_tokens=6000, output_tokens=40, batch=1,
                                               kv_dtype="bf16").values
    assert np.all(kv == 61 * 6040 * 704 * 2)


def test_sparse_decode_grows_less_with_context_than_dense():
    # static decode at batch 8 on 8 H200s: past the top-k only the indexer reads a growing
    # cache (128 wide), where dense MLA attends and reads all of its 576-wide latents
    spec = dse.parse_sweep({"grid": {"model": ["deepseek_v3_2", "deepseek_v3"],
                                     "hardware": "h200", "serving": "static", "batch": 8,
                                     "tp": 8, "input_tokens": [4096, 65536],
                                     "output_tokens": 16}})
    out = dse.evaluate(spec)
    tpot = out["tpot_s"].squeeze()
    growth = tpot.sel(input_tokens=65536) / tpot.sel(input_tokens=4096)
    assert float(growth.sel(model="deepseek_v3_2")) < float(growth.sel(model="deepseek_v3"))
    kv = out["kv_cache_bytes_per_device"].squeeze()
    ratio = kv.sel(model="deepseek_v3_2") / kv.sel(model="deepseek_v3")
    assert np.allclose(ratio.values, 704 / 576)  # the cache is not smaller, 22 % larger


@pytest.mark.parametrize("serving, phases", [
    ("static", {"prefill": "ttft_s", "decode": "tpot_s"}),
    ("continuous", {"decode_iteration": "decode_iteration_s",
                    "prefill_iteration": "prefill_iteration_s"})])
def test_explain_rows_add_up_for_sparse_attention(serving, phases):
    table, summary = dse.explain(model="deepseek_v3_2", hardware="h200", tp=8,
                                 input_tokens=8192, output_tokens=64, batch=8, serving=serving)
    for phase, key in phases.items():
        rows = table[table.phase == phase]
        assert set(INDEXER_OPS) | {"attention_latent"} <= set(rows.op)
        assert float(rows["total_s"].sum()) == pytest.approx(summary[key], rel=1e-9)


def test_explain_cli_runs_for_sparse_attention(capsys):
    for serving in ("static", "continuous"):
        assert main(["explain", "--model", "deepseek_v3_2", "--hardware", "h200", "--tp", "8",
                     "--batch", "4", "--input-tokens", "4096", "--output-tokens", "32",
                     "--serving", serving]) == 0
        out = capsys.readouterr().out
        assert "indexer" in out and "attention_latent" in out


# --------------------------------------------------------------------------- preset checks
BASE = {"name": "m", "layers": 4, "hidden_size": 256, "heads": 4, "kv_heads": 4, "head_dim": 64,
        "ffn_dim": 512, "vocab_size": 1000, "tied_embeddings": False, "gated_ffn": True}
MLA = {"kv_lora_rank": 64, "q_lora_rank": 96, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
       "v_head_dim": 32}
SPARSE = {"sparse_attention_top_k": 128, "indexer_heads": 4, "indexer_head_dim": 32}


def test_small_sparse_model_parses():
    m = parse_model({**BASE, **MLA, **SPARSE}, "x.toml")
    assert m.indexer_params == 96 * 128 + 256 * 32 + 2 * 32 + 256 * 4
    assert cache_elements_per_token(m, 2) == 64 + 16 + 32


@pytest.mark.parametrize("changes, expected", [
    (SPARSE, "sparse_attention_top_k = 128: sparse attention needs multi-head latent attention"),
    ({**MLA, "sparse_attention_top_k": 128},
     "sparse_attention_top_k = 128: sparse attention also needs indexer_heads, indexer_head_dim"),
    ({**MLA, "indexer_heads": 4}, "indexer_heads = 4: sparse attention also needs "
                                  "sparse_attention_top_k, indexer_head_dim"),
    ({**MLA, **SPARSE, "sliding_window_tokens": 64},
     "sparse_attention_top_k = 128: not with sliding_window_tokens"),
    ({**MLA, **SPARSE, "indexer_head_dim": 0}, "indexer_head_dim = 0: must be a positive integer"),
])
def test_sparse_attention_preset_errors_are_one_line(changes, expected):
    with pytest.raises(dse.ConfigError) as exc:
        parse_model({**BASE, **changes}, "x.toml")
    msg = str(exc.value)
    assert msg.startswith("x.toml: ") and expected in msg and "\n" not in msg, msg
