"""`dse model import`: Hugging Face config.json -> preset."""
import json

import pytest

import dse
from dse.cli import main
from dse.compile import active_params, total_params

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
