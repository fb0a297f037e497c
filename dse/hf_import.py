"""Hugging Face ``config.json`` -> model preset TOML (``dse model import``). No network.

Each supported ``model_type`` maps its config keys onto the preset schema documented in
``configs/models/README.md``; anything else is refused with the supported list.
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import ConfigError

SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
             "deepseek_v2", "deepseek_v3", "kimi_k2", "gpt_oss", "gemma", "gemma2", "gemma3",
             "gemma3_text", "phi3", "llama4", "llama4_text")
GATED = SUPPORTED  # every supported family uses a gated (SwiGLU / GeGLU) FFN


def _get(cfg, key, source, default=None):
    value = cfg.get(key, default)
    if value is None:
        raise ConfigError(f"{source}: {key}: missing in config.json (needed for "
                          f"model_type {cfg.get('model_type')!r})")
    return value


def preset_from_config(cfg: dict, name: str, source: str = "config.json") -> dict:
    """Preset keys (dict) for a parsed Hugging Face config."""
    mt = cfg.get("model_type")
    if mt in ("gemma3", "llama4") and "text_config" in cfg:
        cfg = {**cfg["text_config"], "model_type": mt,
               "tie_word_embeddings": cfg.get("tie_word_embeddings",
                                              cfg["text_config"].get("tie_word_embeddings"))}
    if mt not in SUPPORTED:
        raise ConfigError(f"{source}: model_type = {mt!r}: not supported; supported: "
                          f"{', '.join(SUPPORTED)}")
    g = lambda key, default=None: _get(cfg, key, source, default)  # noqa: E731
    heads = g("num_attention_heads")
    hidden = g("hidden_size")
    layers = g("num_hidden_layers")
    p = {
        "name": name,
        "description": f"imported from {Path(source).name} (model_type {mt})",
        "layers": layers, "hidden_size": hidden, "heads": heads,
        "kv_heads": cfg.get("num_key_value_heads") or heads,
        "head_dim": cfg.get("head_dim") or hidden // heads,
        "ffn_dim": g("intermediate_size"),
        "vocab_size": g("vocab_size"),
        "tied_embeddings": bool(cfg.get("tie_word_embeddings",
                                        mt.startswith("gemma"))),
        "gated_ffn": mt in GATED,
    }
    # mixture of experts
    experts = (cfg.get("num_local_experts") or cfg.get("num_experts")
               or cfg.get("n_routed_experts") or 0)
    if experts:
        p["experts"] = experts
        p["experts_per_token"] = g("num_experts_per_tok", cfg.get("experts_per_token"))
        if cfg.get("moe_intermediate_size"):
            p["moe_ffn_dim"] = cfg["moe_intermediate_size"]
        if cfg.get("n_shared_experts"):
            p["shared_experts"] = cfg["n_shared_experts"]
        if cfg.get("shared_expert_intermediate_size"):
            p["shared_expert_ffn_dim"] = cfg["shared_expert_intermediate_size"]
        dense = cfg.get("first_k_dense_replace") or 0
        if mt in ("qwen2_moe", "qwen3_moe"):
            step = cfg.get("decoder_sparse_step") or 1
            moe = [i for i in range(layers) if (i + 1) % step == 0
                   and i not in (cfg.get("mlp_only_layers") or [])]
            dense = layers - len(moe)
        if mt.startswith("llama4"):
            p["moe_ffn_dim"] = p["ffn_dim"]
            p["ffn_dim"] = cfg.get("intermediate_size_mlp") or p["ffn_dim"]
            p["shared_experts"] = 1
            step = cfg.get("interleave_moe_layer_step") or 1
            dense = layers - layers // step
        if mt == "gpt_oss":
            p["moe_ffn_dim"] = p["ffn_dim"]
        if dense:
            p["dense_layers"] = dense
    # multi-head latent attention
    if cfg.get("kv_lora_rank"):
        for key in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            p[key] = g(key)
        if cfg.get("q_lora_rank"):
            p["q_lora_rank"] = cfg["q_lora_rank"]
        p["head_dim"] = p["qk_nope_head_dim"] + p["qk_rope_head_dim"]
        p["kv_heads"] = heads
    # sliding / chunked local attention
    window = cfg.get("sliding_window") or cfg.get("attention_chunk_size")
    if window and (mt not in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe")
                   or cfg.get("use_sliding_window")):
        types = cfg.get("layer_types")
        if types:
            local = sum(t in ("sliding_attention", "chunked_attention") for t in types)
        elif mt == "gemma2":
            local = layers // 2
        elif mt.startswith("gemma3"):
            pattern = cfg.get("sliding_window_pattern") or 6
            local = layers - layers // pattern
        elif mt.startswith("llama4"):
            local = layers - layers // 4  # every 4th layer is global (no RoPE)
        else:
            local = layers
        if local:
            p["sliding_window_tokens"] = window
            if local < layers:
                p["sliding_window_layers"] = local
    return p


def to_toml(preset: dict, source: str) -> str:
    lines = [f"# Imported by `dse model import` from {source}; check against the model card",
             "# and add published_params (and published_active_params for MoE)."]
    for key, value in preset.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            text = repr(value)
        lines.append(f"{key} = {text}" + ("" if key in ("name", "description")
                                            else f"  # {source}"))
    return "\n".join(lines) + "\n"


def import_config(path, name: str | None = None) -> tuple[str, str]:
    """(preset name, TOML text) of a preset for the Hugging Face ``config.json`` at ``path``."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    name = name or path.parent.name.lower().replace("-", "_").replace(".", "_") or "imported"
    return name, to_toml(preset_from_config(cfg, name, str(path)), path.name)
