"""Hugging Face ``config.json`` -> model preset TOML (``dse model import``). No network.

Each supported ``model_type`` maps its config keys onto the preset schema documented in
``configs/models/README.md``; anything else is refused with the supported list.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .config import MAX_NAME_CHARS, MAX_PRESET_INT, ConfigError, check_preset_name, parse_model, \
    read_text, shown

SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
             "deepseek_v2", "deepseek_v3", "kimi_k2", "gpt_oss", "gemma", "gemma2", "gemma3",
             "gemma3_text", "phi3", "llama4", "llama4_text", "glm4_moe", "minimax_m2",
             "qwen3_next", "qwen3_5", "qwen3_5_moe", "deepseek_v32", "kimi_k25",
             "glm_moe_dsa")
GATED = SUPPORTED  # every supported family uses a gated (SwiGLU / GeGLU) FFN
# hybrids of Gated DeltaNet linear attention and gated full attention (Qwen3-Next, Qwen3.5)
LINEAR_HYBRIDS = ("qwen3_next", "qwen3_5", "qwen3_5_moe")
# A Hugging Face config.json is a few KB; the bound refuses a weights file or /dev/zero
# given by mistake before it is read into memory.
MAX_CONFIG_BYTES = 16 << 20


def _label(text: str) -> str:
    """``text`` for a TOML comment or string: as is when printable, else its repr (one
    line, without the control characters and lone surrogates TOML refuses)."""
    return text if text.isprintable() else shown(text)


class _Reader:
    """Typed reads of a parsed config.json: every value is checked before it is computed
    with, and a bad one is a one-line ConfigError naming the file, the key and what is
    valid. Absent and null keys read as None (optional) or are refused (``required``)."""

    def __init__(self, cfg: dict, source: str, prefix: str = ""):
        self.cfg, self.source, self.prefix = cfg, source, prefix

    def _fail(self, key, problem):
        raise ConfigError(f"{self.source}: {self.prefix}{key} = {shown(self.cfg[key])}: {problem}")

    def value(self, key, required=False):
        value = self.cfg.get(key)
        if value is None and required:
            raise ConfigError(f"{self.source}: {self.prefix}{key}: missing in config.json "
                              f"(needed for model_type {self.cfg.get('model_type')!r})")
        return value

    def integer(self, key, required=False, low=1) -> int | None:
        """An integer in [low, MAX_PRESET_INT] (low 0: 0 is allowed and means unused)."""
        value = self.value(key, required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not low <= value <= MAX_PRESET_INT):
            self._fail(key, f"must be an integer in [{low}, {MAX_PRESET_INT:,}]")
        return value

    def flag(self, key, default: bool) -> bool:
        value = self.value(key)
        if value is not None and not isinstance(value, bool):
            self._fail(key, "must be true or false")
        return default if value is None else value

    def items(self, key, kind, what) -> list:
        """A list of ``kind`` (``what`` names it in the message); [] when absent."""
        value = self.value(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(
                isinstance(v, kind) and not isinstance(v, bool) for v in value):
            self._fail(key, f"must be a list of {what}")
        return value


def preset_from_config(cfg: dict, name: str, source: str = "config.json") -> dict:
    """Preset keys (dict) for a parsed Hugging Face config, validated as a model preset."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
    mt = cfg.get("model_type")
    prefix = ""
    # multimodal wrappers: the language model's config under text_config (Kimi K2.5: a
    # DeepSeek-V3 / Kimi K2 text backbone beside its MoonViT vision tower, not modelled)
    if mt in ("gemma3", "llama4", "qwen3_5", "qwen3_5_moe", "kimi_k25") \
            and cfg.get("text_config") is not None:
        text = cfg["text_config"]
        if not isinstance(text, dict):
            raise ConfigError(f"{source}: text_config = {shown(text)}: must be a JSON object")
        top = _Reader(cfg, source)
        cfg = {**text, "model_type": mt,
               "tie_word_embeddings": top.flag("tie_word_embeddings",
                                               text.get("tie_word_embeddings"))}
        prefix = "text_config."
    if not isinstance(mt, str) or mt not in SUPPORTED:
        raise ConfigError(f"{source}: model_type = {shown(mt)}: not supported; supported: "
                          f"{', '.join(SUPPORTED)}")
    r = _Reader(cfg, source, prefix)
    if mt == "minimax_m2":
        # MiniMax's attention kinds per layer: 1 = softmax attention; 0 (the lightning linear
        # attention of MiniMax-Text-01 / M1) has no preset representation
        kinds = r.items("attn_type_list", int, "attention kinds (1 = full attention)")
        if any(kind != 1 for kind in kinds):
            r._fail("attn_type_list", "linear-attention layers (kind 0) are not supported; "
                                      "MiniMax-M2 uses full attention (1) in every layer")
    heads = r.integer("num_attention_heads", required=True)
    hidden = r.integer("hidden_size", required=True)
    layers = r.integer("num_hidden_layers", required=True)
    p = {
        "name": name,
        "description": f"imported from {_label(Path(source).name)} (model_type {mt})",
        "layers": layers, "hidden_size": hidden, "heads": heads,
        "kv_heads": r.integer("num_key_value_heads") or heads,
        "head_dim": r.integer("head_dim") or hidden // heads,
        # Qwen3.5 MoE configs have no dense intermediate_size (every layer is MoE)
        "ffn_dim": r.integer("intermediate_size", required=mt != "qwen3_5_moe") or 0,
        "vocab_size": r.integer("vocab_size", required=True),
        "tied_embeddings": r.flag("tie_word_embeddings", mt.startswith("gemma")),
        "gated_ffn": mt in GATED,
    }
    # mixture of experts
    experts = (r.integer("num_local_experts", low=0) or r.integer("num_experts", low=0)
               or r.integer("n_routed_experts", low=0))
    if experts:
        p["experts"] = experts
        p["experts_per_token"] = (
            r.integer("num_experts_per_tok", required="experts_per_token" not in cfg)
            or r.integer("experts_per_token", required=True))
        if r.integer("moe_intermediate_size", low=0):
            p["moe_ffn_dim"] = cfg["moe_intermediate_size"]
        if r.integer("n_shared_experts", low=0):
            p["shared_experts"] = cfg["n_shared_experts"]
        if r.integer("shared_expert_intermediate_size", low=0):
            p["shared_expert_ffn_dim"] = cfg["shared_expert_intermediate_size"]
        dense = r.integer("first_k_dense_replace", low=0) or 0
        if mt in ("qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe"):
            step = r.integer("decoder_sparse_step") or 1
            # counted, not listed: layers may be up to MAX_PRESET_INT
            dense_only = {i for i in r.items("mlp_only_layers", int, "layer indices")
                          if 0 <= i < layers and (i + 1) % step == 0}
            dense = layers - (layers // step - len(dense_only))
        if mt.startswith("llama4"):
            p["moe_ffn_dim"] = p["ffn_dim"]
            p["ffn_dim"] = r.integer("intermediate_size_mlp", low=0) or p["ffn_dim"]
            p["shared_experts"] = 1
            step = r.integer("interleave_moe_layer_step") or 1
            dense = layers - layers // step
        if mt in ("gpt_oss", "minimax_m2"):  # intermediate_size is the expert width
            p["moe_ffn_dim"] = p["ffn_dim"]
        if mt in ("glm4_moe", "glm_moe_dsa"):
            # transformers' newer configs may list each layer's FFN; the list wins over
            # first_k_dense_replace, as it does there
            kinds = r.items("mlp_layer_types", str, "layer kinds such as 'dense' or 'sparse'")
            if kinds:
                dense = sum(kind == "dense" for kind in kinds[:layers])
        if dense:
            p["dense_layers"] = dense
    # multi-token prediction modules (DeepSeek-V3/R1, GLM-4.5, MiniMax-M2): drafters for
    # speculative decoding (the spec_tokens axis)
    if r.integer("num_nextn_predict_layers", low=0):
        p["mtp_layers"] = cfg["num_nextn_predict_layers"]
    # multi-head latent attention
    if r.integer("kv_lora_rank", low=0):
        for key in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            p[key] = r.integer(key, required=True)
        if r.integer("q_lora_rank", low=0):
            p["q_lora_rank"] = cfg["q_lora_rank"]
        p["head_dim"] = p["qk_nope_head_dim"] + p["qk_rope_head_dim"]
        p["kv_heads"] = heads
    # DeepSeek Sparse Attention (DeepSeek-V3.2, V3.2-Exp, GLM-5): the lightning indexer's heads and
    # width, and the top-k positions each query attends
    if mt in ("deepseek_v32", "glm_moe_dsa"):
        for key, name in (("sparse_attention_top_k", "index_topk"),
                          ("indexer_heads", "index_n_heads"),
                          ("indexer_head_dim", "index_head_dim")):
            p[key] = r.integer(name, required=True)
    # sliding / chunked local attention
    window = r.integer("sliding_window", low=0) or r.integer("attention_chunk_size", low=0)
    if window and (mt not in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe", *LINEAR_HYBRIDS)
                   or r.flag("use_sliding_window", False)):
        types = r.items("layer_types", str, "layer types such as 'sliding_attention'")
        if types:
            local = sum(t in ("sliding_attention", "chunked_attention") for t in types)
        elif mt == "gemma2":
            local = layers // 2
        elif mt.startswith("gemma3"):
            local = layers - layers // (r.integer("sliding_window_pattern") or 6)
        elif mt.startswith("llama4"):
            local = layers - layers // 4  # every 4th layer is global (no RoPE)
        else:
            local = layers
        if local:
            p["sliding_window_tokens"] = window
            if local < layers:
                p["sliding_window_layers"] = local
    # Gated DeltaNet linear-attention layers; the others attend with an output gate
    if mt in LINEAR_HYBRIDS:
        types = r.items("layer_types", str, "layer types such as 'linear_attention'")
        if types:
            linear = sum(t == "linear_attention" for t in types[:layers])
        else:  # every full_attention_interval-th layer attends fully (transformers' default)
            linear = layers - layers // (r.integer("full_attention_interval") or 4)
        if linear:
            p["linear_attention_layers"] = linear
            for key, name in (("linear_key_heads", "linear_num_key_heads"),
                              ("linear_value_heads", "linear_num_value_heads"),
                              ("linear_key_head_dim", "linear_key_head_dim"),
                              ("linear_value_head_dim", "linear_value_head_dim")):
                p[key] = r.integer(name, required=True)
            p["linear_conv_kernel"] = r.integer("linear_conv_kernel_dim") or 4
        # Qwen3-Next always gates (q_proj is heads x head_dim x 2 in transformers); Qwen3.5
        # says so in attn_output_gate (default true, as vLLM reads it)
        if linear < layers and (mt == "qwen3_next" or r.flag("attn_output_gate", True)):
            p["attention_output_gate"] = True
    # the preset checks catch what the reads above cannot see (kv_heads not dividing
    # heads, top-k above the expert count, ...)
    parse_model(p, source)
    return p


def to_toml(preset: dict, source: str) -> str:
    source = _label(source)
    lines = [f"# Imported by `dse model import` from {source}; check against the model card",
             "# and add published_params (and published_active_params for MoE)."]
    for key, value in preset.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            # JSON string escapes are TOML's; non-ASCII stays literal (an escaped
            # surrogate pair is not valid TOML)
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = repr(value)
        lines.append(f"{key} = {text}" + ("" if key in ("name", "description")
                                            else f"  # {source}"))
    return "\n".join(lines) + "\n"


def default_name(path: Path) -> str:
    """Preset name from the config's folder name: lower case, every character other than a
    letter, digit or _ replaced by _, ``m_`` before a leading digit, at most
    MAX_NAME_CHARS characters; ``imported`` when no letter or digit is left."""
    stem = re.sub(r"[^a-z0-9_]", "_", path.parent.name.lower())
    if stem[:1].isdigit():
        stem = "m_" + stem
    return stem[:MAX_NAME_CHARS] if stem.strip("_") else "imported"


def import_config(path, name: str | None = None) -> tuple[str, str]:
    """(preset name, TOML text) of a preset for the Hugging Face ``config.json`` at ``path``.

    ``name`` (default: :func:`default_name`) becomes a file name, so it must be a preset
    name (an identifier). Any problem with the file or its values is a one-line
    :class:`ConfigError`.
    """
    path = Path(path)
    if name is not None:
        check_preset_name(name, "model import", "--name")
    text = read_text(path, "Hugging Face config.json", MAX_CONFIG_BYTES)
    try:
        cfg = json.loads(text)
    except RecursionError:  # deeply nested arrays or objects
        raise ConfigError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise ConfigError(f"{path}: not valid JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a JSON object (a Hugging Face config.json), "
                          f"got {type(cfg).__name__}")
    name = check_preset_name(name or default_name(path), str(path), "preset name")
    return name, to_toml(preset_from_config(cfg, name, str(path)), path.name)
