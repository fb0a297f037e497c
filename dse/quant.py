"""Precision recipes (``configs/quant/``): the precision of each operator class.

Real checkpoints quantize per operator class: NVIDIA's DeepSeek-R1 NVFP4 and Kimi-K2's INT4
quantize the MoE layers only, gpt-oss ships MXFP4 experts beside bf16 attention, engines
run their collectives in bf16 with fp4 activations. A recipe names, for some of the classes
of ``layout.QUANT_CLASSES`` (``attention``, ``experts``, ``shared_experts``, ``dense_ffn``,
``lm_head``), the weight and/or activation precision, and the precision of the KV cache
(``kv_cache``) and of the collectives' payload (``collectives``). What a recipe leaves
out takes the grid's ``weight_dtype`` / ``act_dtype`` / ``kv_dtype``, and so does every op
of no class (norms, small elementwise kernels, the MoE router): the recipe ``uniform`` (no
overrides, the ``quant`` axis' default) is the grid's uniform precisions exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import _check_keys, _fail, _string, check_preset_name, read_toml, resolve_preset
from .kernels import layout as L

# the classes a recipe table ([attention], ...) may name, with a weight and an activation
TABLE_CLASSES = ("attention", "experts", "shared_experts", "dense_ffn", "lm_head")
CLASS_KEYS = ("weight", "act")
# the one-precision classes, top-level keys: the KV cache, the collectives' payload
KV_KEY = "kv_cache"
COLLECTIVES_KEY = "collectives"


@dataclass(frozen=True)
class Quant:
    """One precision recipe: ``weights`` and ``acts`` as (class, precision) pairs for the
    classes it names (``layout.QUANT_CLASSES``; the collectives' payload is their act),
    ``kv_cache`` the KV-cache precision ("" where the recipe leaves it to the grid)."""
    name: str
    description: str
    weights: tuple = ()
    acts: tuple = ()
    kv_cache: str = ""
    source: str = "<api>"
    text: str = ""

    def weight(self, qclass: str) -> str | None:
        """The weight precision the recipe names for ``qclass`` (None: the grid's)."""
        return dict(self.weights).get(qclass)

    def act(self, qclass: str) -> str | None:
        """The activation (collectives: payload) precision it names (None: the grid's)."""
        return dict(self.acts).get(qclass)


def _dtype(value, src, key) -> str:
    if not isinstance(value, str) or value not in L.DTYPES:
        _fail(src, key, value, f"unknown precision; valid: {', '.join(L.DTYPES)}")
    return value


def parse_quant(data: dict, src: str, text: str = "") -> Quant:
    """Validate a precision recipe given as a dict (its parsed TOML) read from ``src``."""
    _check_keys(data, {"name", "description", *TABLE_CLASSES, KV_KEY, COLLECTIVES_KEY},
                ["name"], src)
    weights, acts = [], []
    for qclass in TABLE_CLASSES:
        if qclass not in data:
            continue
        table = data[qclass]
        if not isinstance(table, dict):
            _fail(src, qclass, table, f"must be a table, e.g. [{qclass}] with weight = "
                  "\"fp4\" and/or act = \"fp4\"")
        _check_keys(table, CLASS_KEYS, [], src, qclass)
        if not table:
            _fail(src, f"[{qclass}]", table, "empty table: name weight and/or act (leave "
                  "the class out to take the grid's precisions)")
        if "weight" in table:
            weights.append((qclass, _dtype(table["weight"], src, f"[{qclass}] weight")))
        if "act" in table:
            acts.append((qclass, _dtype(table["act"], src, f"[{qclass}] act")))
    if COLLECTIVES_KEY in data:
        acts.append((COLLECTIVES_KEY, _dtype(data[COLLECTIVES_KEY], src, COLLECTIVES_KEY)))
    return Quant(
        name=check_preset_name(data["name"], src),
        description=_string(data, "description", src) if "description" in data else "",
        weights=tuple(weights), acts=tuple(acts),
        kv_cache=_dtype(data[KV_KEY], src, KV_KEY) if KV_KEY in data else "",
        source=src, text=text)


def load_quant(ref, base_dir: Path | None = None, source="<api>", key="quant") -> Quant:
    """Load a precision recipe by bundled name or path (a ``Path`` is always a path)."""
    path = resolve_preset("quant", ref, base_dir, source, key)
    data, text = read_toml(path, "precision recipe (TOML)")
    return parse_quant(data, str(path), text)


def quant_table(quants) -> np.ndarray:
    """The recipe table the kernels take [n_quant, ``layout.QUANT_FIELDS``]: per class c
    its weight precision at 2c and activation precision at 2c + 1, the KV cache's at
    ``layout.Q_KV``, as ``layout.DTYPE_INDEX`` codes, -1 where the grid's apply."""
    table = np.full((max(len(quants), 1), L.QUANT_FIELDS), -1.0)
    for i, q in enumerate(quants):
        for qclass, dtype in q.weights:
            table[i, 2 * L.QUANT_CLASSES.index(qclass)] = L.DTYPE_INDEX[dtype]
        for qclass, dtype in q.acts:
            table[i, 2 * L.QUANT_CLASSES.index(qclass) + 1] = L.DTYPE_INDEX[dtype]
        if q.kv_cache:
            table[i, L.Q_KV] = L.DTYPE_INDEX[q.kv_cache]
    return table
