"""`dse model import`: Hugging Face config.json -> preset."""
import json
import tomllib
from pathlib import Path

import pytest

import dse
from conftest import cli_error as _cli_error
from dse.cli import main
from dse.compile import active_params, total_params
from dse.config import parse_model
from dse.hf_import import default_name, import_config, preset_from_config

LLAMA3_8B = {  # Hugging Face meta-llama/Llama-3.1-8B config.json (subset)
    "model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    "vocab_size": 128256, "tie_word_embeddings": False, "hidden_act": "silu"}

DEEPSEEK_V3 = {  # Hugging Face deepseek-ai/DeepSeek-V3 config.json (subset)
    "model_type": "deepseek_v3", "num_hidden_layers": 61, "hidden_size": 7168,
    "num_attention_heads": 128, "num_key_value_heads": 128, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_experts_per_tok": 8, "first_k_dense_replace": 3, "kv_lora_rank": 512,
    "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "vocab_size": 129280, "tie_word_embeddings": False}


def _import(tmp_path, cfg, name):
    src = tmp_path / name / "config.json"
    src.parent.mkdir()
    src.write_text(json.dumps(cfg))
    out = tmp_path / f"{name}.toml"
    assert main(["model", "import", str(src), "--name", name, "--out", str(out)]) == 0
    return dse.load_model(str(out))


def test_model_import_llama_matches_bundled_preset(tmp_path):
    m = _import(tmp_path, LLAMA3_8B, "my_llama")
    ref = dse.load_model("llama3_8b")
    assert total_params(m) == total_params(ref)
    assert (m.kv_heads, m.head_dim, m.ffn_dim) == (8, 128, 14336)


def test_model_import_deepseek_v3_mla_moe(tmp_path):
    m = _import(tmp_path, DEEPSEEK_V3, "dsv3")
    assert m.is_mla and m.is_moe and m.dense_layers == 3 and m.shared_experts == 1
    # DeepSeek-V3 technical report (arXiv:2412.19437): 671B total, 37B activated
    assert total_params(m) == pytest.approx(671e9, rel=0.01)
    assert active_params(m) == pytest.approx(37e9, rel=0.02)


def test_model_import_sliding_window_layers(tmp_path):
    cfg = {**LLAMA3_8B, "model_type": "gemma2", "num_hidden_layers": 42, "sliding_window": 4096,
           "head_dim": 256, "tie_word_embeddings": True}
    m = _import(tmp_path, cfg, "g2")
    assert (m.sliding_window_tokens, m.sliding_window_layers) == (4096, 21)


def test_model_import_unsupported_type_exits_2(tmp_path, capsys):
    src = tmp_path / "config.json"
    src.write_text(json.dumps({**LLAMA3_8B, "model_type": "mamba2"}))
    assert main(["model", "import", str(src), "--out", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "mamba2" in err and "deepseek_v3" in err and "\n" not in err
    assert not (tmp_path / "x.toml").exists()


def test_model_import_missing_key_exits_2(tmp_path, capsys):
    src = tmp_path / "config.json"
    src.write_text(json.dumps({k: v for k, v in LLAMA3_8B.items() if k != "vocab_size"}))
    assert main(["model", "import", str(src), "--out", str(tmp_path / "x.toml")]) == 2
    assert "vocab_size" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input
def _write_huge(path):
    with open(path, "wb") as f:
        f.truncate(17 << 20)  # sparse: over MAX_CONFIG_BYTES without writing it


@pytest.mark.parametrize("make, expected", [
    (lambda p: p.mkdir(), "is a folder, expected a Hugging Face config.json"),
    (lambda p: None, "file not found"),
    (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    (_write_huge, "a Hugging Face config.json is at most 16,777,216 bytes"),
    (lambda p: p.write_bytes(b'{"model_type": "\xff"}'), "not UTF-8"),
    (lambda p: p.write_text(""), "not valid JSON"),
    (lambda p: p.write_text("[" * 100_000), "nested too deeply"),
    (lambda p: p.write_text('{"a": ' + "9" * 5000 + "}"), "not valid JSON"),
    (lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
], ids=["folder", "missing", "dev_zero", "huge", "binary", "empty", "nested", "long_int",
        "list"])
def test_model_import_unreadable_config_is_one_line(tmp_path, monkeypatch, capsys, make,
                                                    expected):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "config.json")
    msg = _cli_error(capsys, tmp_path, "model", "import", "config.json")
    assert msg.startswith("dse: error: config.json: ") and expected in msg, msg


@pytest.mark.parametrize("key, value", [
    ("num_attention_heads", 0), ("hidden_size", "4096"), ("num_hidden_layers", [32]),
    ("num_hidden_layers", -1), ("hidden_size", 4096.0), ("vocab_size", True),
    ("intermediate_size", 10**30), ("num_key_value_heads", 0), ("head_dim", "128"),
])
def test_model_import_bad_value_names_key_value_and_range(tmp_path, monkeypatch, capsys,
                                                          key, value):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA3_8B, key: value}))
    msg = _cli_error(capsys, tmp_path, "model", "import", "config.json", "--name", "m")
    assert f"config.json: {key} = {value!r}: must be an integer in [1, 2,147,483,647]" in msg


@pytest.mark.parametrize("changes, expected", [
    ({"num_key_value_heads": 7}, "kv_heads = 7: must divide heads = 32"),
    ({"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 9},
     "experts_per_token = 9: must not exceed experts = 8"),
    ({"model_type": ["llama"]}, "model_type = ['llama']: not supported"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings = 'yes': must be true or false"),
    ({"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
      "mlp_only_layers": 3}, "mlp_only_layers = 3: must be a list of layer indices"),
    ({"model_type": "gpt_oss", "sliding_window": 128, "layer_types": 5},
     "layer_types = 5: must be a list of layer types"),
    ({"sliding_window": "4k"}, "sliding_window = '4k': must be an integer in [0, "),
    ({"model_type": "gemma3", "text_config": [1]}, "text_config = [1]: must be a JSON object"),
    ({"model_type": "gemma3", "text_config": {"hidden_size": "x"}},
     "text_config.num_attention_heads: missing in config.json"),
])
def test_model_import_checks_every_key_it_reads(changes, expected):
    with pytest.raises(dse.ConfigError) as exc:
        preset_from_config({**LLAMA3_8B, **changes}, "m", "dir/config.json")
    msg = str(exc.value)
    assert msg.startswith("dir/config.json: ") and expected in msg and "\n" not in msg, msg


def test_model_import_name_cannot_leave_the_folder(tmp_path, monkeypatch, capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    (work / "config.json").write_text(json.dumps(LLAMA3_8B))
    msg = _cli_error(capsys, tmp_path, "model", "import", "config.json", "--name", "../../evil")
    assert "--name = '../../evil': a preset name is an identifier" in msg


@pytest.mark.parametrize("folder, name", [
    ("Llama-3.1-8B", "llama_3_1_8b"), ("405b-FP8", "m_405b_fp8"), ("ünï cødé", "_n__c_d_"),
    ("x" * 100, "x" * 64), ("...", "imported"), ("", "imported"),
])
def test_model_import_default_name_is_an_identifier(folder, name):
    assert default_name(Path(folder) / "config.json") == name


def test_model_import_default_name_from_folder_writes_there(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "405B-FP8.v2").mkdir()
    (tmp_path / "405B-FP8.v2" / "config.json").write_text(json.dumps(LLAMA3_8B))
    assert main(["model", "import", "405B-FP8.v2/config.json"]) == 0
    assert dse.load_model("m_405b_fp8_v2.toml").name == "m_405b_fp8_v2"


@pytest.mark.parametrize("file_name", ['a"b\\c.json', "new\nline.json", "🎉.json"])
def test_model_import_odd_file_name_gives_valid_toml(tmp_path, file_name):
    path = tmp_path / file_name
    path.write_text(json.dumps(LLAMA3_8B))
    name, text = import_config(path, "m")
    assert parse_model(tomllib.loads(text), "x").layers == 32


def test_model_import_interleaved_moe_counts_without_listing_layers():
    cfg = {**LLAMA3_8B, "model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
           "decoder_sparse_step": 2, "mlp_only_layers": [0, 1, 3, 5, 99]}
    # layers 1, 3, 5 would be MoE (every 2nd) but are listed dense; 0 and 99 change nothing
    assert preset_from_config(cfg, "m")["dense_layers"] == 32 - (16 - 3)
    big = preset_from_config({**cfg, "num_hidden_layers": 2**31 - 1}, "m")  # instant
    assert big["dense_layers"] == 2**31 - 1 - ((2**31 - 1) // 2 - 4)  # 99 counts now


def test_model_import_gemma3_text_config_ties_embeddings_by_default():
    text = {k: v for k, v in LLAMA3_8B.items() if k != "tie_word_embeddings"}
    cfg = {"model_type": "gemma3", "text_config": {**text, "head_dim": 256}}
    assert preset_from_config(cfg, "m")["tied_embeddings"] is True


# --------------------------------------------------------------------------- issue 12 models
# Subsets of the Hugging Face config.json files of the models added for issue 12; the values
# are those the bundled presets cite (configs/models/<name>.toml says where each comes from).
GLM4_5 = {  # zai-org/GLM-4.5 (model_type glm4_moe)
    "model_type": "glm4_moe", "num_hidden_layers": 92, "hidden_size": 5120,
    "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 12288, "moe_intermediate_size": 1536, "n_routed_experts": 160,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
    "vocab_size": 151552, "tie_word_embeddings": False, "hidden_act": "silu",
    "partial_rotary_factor": 0.5, "use_qk_norm": True, "attention_bias": True,
    "num_nextn_predict_layers": 1}
GLM4_5_AIR = {**GLM4_5, "num_hidden_layers": 46, "hidden_size": 4096,
              "intermediate_size": 10944, "moe_intermediate_size": 1408,
              "n_routed_experts": 128, "first_k_dense_replace": 1, "use_qk_norm": False}
MINIMAX_M2 = {  # MiniMaxAI/MiniMax-M2 (model_type minimax_m2)
    "model_type": "minimax_m2", "num_hidden_layers": 62, "hidden_size": 3072,
    "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 1536, "num_local_experts": 256, "num_experts_per_tok": 8,
    "vocab_size": 200064, "tie_word_embeddings": False, "hidden_act": "silu",
    "attn_type_list": [1] * 62, "shared_intermediate_size": 0, "rotary_dim": 64,
    "use_mtp": True, "num_mtp_modules": 3}
KIMI_K2_THINKING = {  # moonshotai/Kimi-K2-Thinking (model_type kimi_k2; INT4 experts)
    **DEEPSEEK_V3, "model_type": "kimi_k2", "num_attention_heads": 64,
    "num_key_value_heads": 64, "n_routed_experts": 384, "first_k_dense_replace": 1,
    "vocab_size": 163840, "quantization_config": {"quant_method": "compressed-tensors"}}
LLAMA3_3_70B = {  # meta-llama/Llama-3.3-70B-Instruct
    **LLAMA3_8B, "num_hidden_layers": 80, "hidden_size": 8192, "num_attention_heads": 64,
    "intermediate_size": 28672}

_ARCHITECTURE = ("layers", "hidden_size", "heads", "kv_heads", "head_dim", "ffn_dim",
                 "vocab_size", "tied_embeddings", "gated_ffn", "experts", "experts_per_token",
                 "expert_ffn_dim", "shared_ffn_dim", "dense_layers", "sliding_window_tokens",
                 "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                 "v_head_dim")


@pytest.mark.parametrize("cfg, bundled", [
    (GLM4_5, "glm4_5"), (GLM4_5_AIR, "glm4_5_air"), (MINIMAX_M2, "minimax_m2"),
    (KIMI_K2_THINKING, "kimi_k2_thinking"), (LLAMA3_3_70B, "llama3_3_70b"),
], ids=["glm4_5", "glm4_5_air", "minimax_m2", "kimi_k2_thinking", "llama3_3_70b"])
def test_model_import_new_families_match_bundled_presets(tmp_path, cfg, bundled):
    m = _import(tmp_path, cfg, "imported")
    ref = dse.load_model(bundled)
    # head_dim is unused by MLA (the import writes qk_nope + qk_rope, the presets 128)
    keys = [k for k in _ARCHITECTURE if not (k == "head_dim" and ref.is_mla)]
    assert [getattr(m, k) for k in keys] == [getattr(ref, k) for k in keys]
    assert total_params(m) == total_params(ref) and active_params(m) == active_params(ref)


def test_model_import_glm4_moe_dense_prefix_and_shared_expert():
    p = preset_from_config(GLM4_5, "m")
    assert (p["dense_layers"], p["shared_experts"], p["moe_ffn_dim"], p["ffn_dim"]) == \
        (3, 1, 1536, 12288)
    # transformers' per-layer list, when a config carries it, wins over first_k_dense_replace
    kinds = ["dense"] * 2 + ["sparse"] * 90
    assert preset_from_config({**GLM4_5, "mlp_layer_types": kinds}, "m")["dense_layers"] == 2


def test_model_import_minimax_m2_experts_are_intermediate_size_wide():
    p = preset_from_config(MINIMAX_M2, "m")
    assert (p["experts"], p["moe_ffn_dim"], p["ffn_dim"]) == (256, 1536, 1536)
    assert "dense_layers" not in p and "shared_experts" not in p


@pytest.mark.parametrize("changes, expected", [
    ({"attn_type_list": [0] + [1] * 61},
     "attn_type_list = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "),
    ({"attn_type_list": [0] + [1] * 61}, "linear-attention layers (kind 0) are not supported"),
    ({"attn_type_list": "all"}, "attn_type_list = 'all': must be a list of attention kinds"),
])
def test_model_import_minimax_m2_refuses_linear_attention(changes, expected):
    assert expected in one_line_refusal({**MINIMAX_M2, **changes})


def one_line_refusal(cfg) -> str:
    """The error of importing ``cfg`` from dir/config.json: one line that names the file."""
    with pytest.raises(dse.ConfigError) as exc:
        preset_from_config(cfg, "m", "dir/config.json")
    msg = str(exc.value)
    assert msg.startswith("dir/config.json: ") and "\n" not in msg, msg
    return msg


def test_model_import_glm4_moe_checks_mlp_layer_types():
    with pytest.raises(dse.ConfigError) as exc:
        preset_from_config({**GLM4_5, "mlp_layer_types": "dense"}, "m", "dir/config.json")
    assert "mlp_layer_types = 'dense': must be a list of layer kinds" in str(exc.value)


# --------------------------------------------------------------------------- linear-attention hybrids
QWEN3_NEXT = {  # Qwen/Qwen3-Next-80B-A3B-Instruct (model_type qwen3_next; no layer_types key)
    "model_type": "qwen3_next", "num_hidden_layers": 48, "hidden_size": 2048,
    "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "intermediate_size": 5120, "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512, "num_experts": 512, "num_experts_per_tok": 10,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "full_attention_interval": 4,
    "linear_num_key_heads": 16, "linear_num_value_heads": 32, "linear_key_head_dim": 128,
    "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4, "vocab_size": 151936,
    "tie_word_embeddings": False, "use_sliding_window": False, "partial_rotary_factor": 0.25}
QWEN3_5_397B = {  # Qwen/Qwen3.5-397B-A17B (model_type qwen3_5_moe: the LM under text_config)
    "model_type": "qwen3_5_moe", "tie_word_embeddings": False,
    "text_config": {
        "model_type": "qwen3_5_moe_text", "num_hidden_layers": 60, "hidden_size": 4096,
        "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 256,
        "moe_intermediate_size": 1024, "shared_expert_intermediate_size": 1024,
        "num_experts": 512, "num_experts_per_tok": 10, "attn_output_gate": True,
        "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 15,
        "linear_num_key_heads": 16, "linear_num_value_heads": 64, "linear_key_head_dim": 128,
        "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4, "vocab_size": 248320,
        "mamba_ssm_dtype": "float32"},
    "vision_config": {"depth": 27, "hidden_size": 1152}}
_LINEAR = ("linear_attention_layers", "linear_key_heads", "linear_value_heads",
           "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel",
           "attention_output_gate")


@pytest.mark.parametrize("cfg, bundled", [(QWEN3_NEXT, "qwen3_next_80b_a3b"),
                                          (QWEN3_5_397B, "qwen3_5_397b_a17b")],
                         ids=["qwen3_next", "qwen3_5_moe"])
def test_model_import_linear_hybrids_match_bundled_presets(tmp_path, cfg, bundled):
    m = _import(tmp_path, cfg, "imported")
    ref = dse.load_model(bundled)
    keys = [k for k in _ARCHITECTURE + _LINEAR if k != "ffn_dim"]  # unused: every layer is MoE
    assert [getattr(m, k) for k in keys] == [getattr(ref, k) for k in keys]
    assert total_params(m) == total_params(ref) and active_params(m) == active_params(ref)


def test_model_import_linear_layers_from_layer_types_or_interval():
    p = preset_from_config(QWEN3_NEXT, "m")
    assert (p["linear_attention_layers"], p["attention_output_gate"]) == (36, True)
    assert preset_from_config({**QWEN3_NEXT, "full_attention_interval": 3},
                              "m")["linear_attention_layers"] == 32
    # an explicit list wins over the interval (transformers builds it from the interval)
    kinds = ["linear_attention"] * 40 + ["full_attention"] * 8
    assert preset_from_config({**QWEN3_NEXT, "layer_types": kinds},
                              "m")["linear_attention_layers"] == 40
    # Qwen3.5 MoE has no dense FFN width: ffn_dim 0, the experts carry moe_intermediate_size
    q35 = preset_from_config(QWEN3_5_397B, "m")
    assert (q35["ffn_dim"], q35["moe_ffn_dim"], q35["linear_value_heads"]) == (0, 1024, 64)
    # a dense Qwen3.5 without the output gate (attn_output_gate false)
    dense = {**QWEN3_5_397B["text_config"], "model_type": "qwen3_5", "intermediate_size": 17408}
    for key in ("num_experts", "num_experts_per_tok", "moe_intermediate_size",
                "shared_expert_intermediate_size"):
        dense.pop(key)
    p = preset_from_config({**dense, "attn_output_gate": False}, "m")
    assert "attention_output_gate" not in p and p["ffn_dim"] == 17408
    assert preset_from_config(dense, "m")["attention_output_gate"] is True


@pytest.mark.parametrize("changes, expected", [
    ({"linear_num_value_heads": None}, "linear_num_value_heads: missing in config.json"),
    ({"layer_types": "hybrid"}, "layer_types = 'hybrid': must be a list of layer types"),
    ({"linear_num_value_heads": 24}, "linear_value_heads = 24: must be a multiple of "
                                     "linear_key_heads = 16"),
    ({"full_attention_interval": 0}, "full_attention_interval = 0: must be an integer in [1, "),
])
def test_model_import_linear_hybrid_checks_its_keys(changes, expected):
    assert expected in one_line_refusal({**QWEN3_NEXT, **changes})


def test_model_import_qwen3_5_moe_text_config_prefix_in_errors():
    cfg = {**QWEN3_5_397B, "text_config": {**QWEN3_5_397B["text_config"],
                                           "linear_key_head_dim": "128"}}
    with pytest.raises(dse.ConfigError) as exc:
        preset_from_config(cfg, "m", "dir/config.json")
    assert "text_config.linear_key_head_dim = '128': must be an integer" in str(exc.value)


# --------------------------------------------------------------------------- sparse attention
DEEPSEEK_V32 = {  # deepseek-ai/DeepSeek-V3.2-Exp (model_type deepseek_v32): V3's keys + DSA
    **DEEPSEEK_V3, "model_type": "deepseek_v32", "index_topk": 2048, "index_n_heads": 64,
    "index_head_dim": 128, "num_nextn_predict_layers": 1}


def test_model_import_deepseek_v32_sparse_attention_matches_bundled_preset(tmp_path):
    m = _import(tmp_path, DEEPSEEK_V32, "dsv32")
    ref = dse.load_model("deepseek_v3_2")
    keys = [k for k in _ARCHITECTURE if k != "head_dim"] + [
        "sparse_attention_top_k", "indexer_heads", "indexer_head_dim"]
    assert [getattr(m, k) for k in keys] == [getattr(ref, k) for k in keys]
    assert (m.sparse_attention_top_k, m.indexer_heads, m.indexer_head_dim) == (2048, 64, 128)
    assert total_params(m) == total_params(ref) and active_params(m) == active_params(ref)
    # the same keys under deepseek_v3 are not read: a dense V3 stays dense
    assert "sparse_attention_top_k" not in preset_from_config(
        {**DEEPSEEK_V32, "model_type": "deepseek_v3"}, "m")


@pytest.mark.parametrize("changes, expected", [
    ({"index_topk": None}, "index_topk: missing in config.json"),
    ({"index_n_heads": 0}, "index_n_heads = 0: must be an integer in [1,"),
    ({"index_head_dim": "128"}, "index_head_dim = '128': must be an integer"),
    ({"kv_lora_rank": 0}, "sparse attention needs multi-head latent attention"),
])
def test_model_import_deepseek_v32_checks_its_keys(changes, expected):
    with pytest.raises(dse.ConfigError) as exc:
        preset_from_config({**DEEPSEEK_V32, **changes}, "m", "c.json")
    msg = str(exc.value)
    assert msg.startswith("c.json: ") and expected in msg and "\n" not in msg, msg


KIMI_K2_5 = {  # moonshotai/Kimi-K2.5 (model_type kimi_k25): the K2 backbone under text_config
    "model_type": "kimi_k25", "architectures": ["KimiK25ForConditionalGeneration"],
    "tie_word_embeddings": False, "vision_config": {"hidden_size": 1152},
    "text_config": {**KIMI_K2_THINKING, "model_type": "kimi_k2"}}
GLM5 = {  # zai-org/GLM-5 (model_type glm_moe_dsa): MLA, DSA and GLM's dense prefix
    "model_type": "glm_moe_dsa", "num_hidden_layers": 78, "hidden_size": 6144,
    "num_attention_heads": 64, "num_key_value_heads": 64, "intermediate_size": 12288,
    "moe_intermediate_size": 2048, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_experts_per_tok": 8, "first_k_dense_replace": 3, "vocab_size": 154880,
    "tie_word_embeddings": False, "hidden_act": "silu", "q_lora_rank": 2048,
    "kv_lora_rank": 512, "qk_nope_head_dim": 192, "qk_rope_head_dim": 64, "v_head_dim": 256,
    "index_topk": 2048, "index_n_heads": 32, "index_head_dim": 128,
    "num_nextn_predict_layers": 1}


@pytest.mark.parametrize("cfg, bundled", [(KIMI_K2_5, "kimi_k2_5"), (GLM5, "glm5")],
                         ids=["kimi_k25", "glm_moe_dsa"])
def test_model_import_kimi_k25_and_glm5_match_bundled_presets(tmp_path, cfg, bundled):
    m = _import(tmp_path, cfg, "imported")
    ref = dse.load_model(bundled)
    keys = [k for k in _ARCHITECTURE if k != "head_dim"] + [
        "sparse_attention_top_k", "indexer_heads", "indexer_head_dim", "mtp_layers"]
    assert [getattr(m, k) for k in keys] == [getattr(ref, k) for k in keys]
    assert total_params(m) == total_params(ref) and active_params(m) == active_params(ref)


def test_model_import_glm5_reads_its_layer_list_and_names_text_config_keys():
    kinds = ["dense"] * 2 + ["sparse"] * 76
    assert preset_from_config({**GLM5, "mlp_layer_types": kinds}, "m")["dense_layers"] == 2
    cfg = {**KIMI_K2_5, "text_config": {**KIMI_K2_5["text_config"], "kv_lora_rank": "512"}}
    with pytest.raises(dse.ConfigError) as exc:
        preset_from_config(cfg, "m", "k/config.json")
    assert "text_config.kv_lora_rank = '512': must be an integer" in str(exc.value)
