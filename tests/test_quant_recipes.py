"""Precision recipes (the ``quant`` axis, ``configs/quant/``): per operator class weight,
activation, KV-cache and collective precisions over the grid's uniform dtypes.

The CLI tests run in a temporary working directory and name their files by relative path,
as a user in their own folder would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dse
from conftest import cli_error
from dse.cli import main
from dse.compile import model_ops
from dse.config import ConfigError, bundled_names, load_model
from dse.evaluate import REASON_CODE, derive
from dse.kernels import layout as L
from dse.kernels.formulas import op_precisions
from dse.quant import load_quant, quant_table

FP4, FP8, BF16 = (float(L.DTYPE_BYTES[L.DTYPE_INDEX[d]]) for d in ("fp4", "fp8", "bf16"))
RECIPES = ("uniform", "nvfp4_experts", "mxfp4_experts_bf16_attention", "mxfp4_mlp_w4a4",
           "int4_experts", "fp8_bf16_collectives", "fp8_ffn")


def _spec(**grid):
    what_if = grid.pop("what_if", {})
    return dse.parse_sweep({"grid": grid, "what_if": what_if})


# --------------------------------------------------------------------------- the recipes
@pytest.mark.parametrize("name", bundled_names("quant"))
def test_quant_bundled_recipe_loads_and_cites_its_source(name):
    q = load_quant(name)
    assert q.name == name and q.description
    assert "#" in q.text  # every recipe says where its precisions come from


def test_quant_bundled_recipes_are_the_documented_ones():
    assert set(RECIPES) <= set(bundled_names("quant"))
    uniform = load_quant("uniform")
    assert uniform.weights == () and uniform.acts == () and uniform.kv_cache == ""
    assert (quant_table([uniform]) == -1).all()


def test_quant_nvfp4_experts_follows_modelopts_deepseek_recipe():
    # ModelOpt's DeepSeek ptq.py: NVFP4 W4A4 on every linear layer but *attn* and *head*
    # (written as bf16), fp8 KV cache; the engines' collectives stay bf16
    q = load_quant("nvfp4_experts")
    for c in ("experts", "shared_experts", "dense_ffn"):
        assert (q.weight(c), q.act(c)) == ("fp4", "fp4")
    for c in ("attention", "lm_head"):
        assert (q.weight(c), q.act(c)) == ("bf16", "bf16")
    assert q.kv_cache == "fp8" and q.act("collectives") == "bf16"


def test_quant_ops_carry_their_class():
    classes = {op.name: op.quant_class for op in model_ops(load_model("deepseek_v3"), L.DECODE)}
    assert classes["experts"] == "experts"
    assert classes["shared_gate_up_proj"] == classes["shared_down_proj"] == "shared_experts"
    assert classes["gate_up_proj"] == classes["down_proj"] == "dense_ffn"
    for name in ("qkv_a_proj", "q_b_proj", "q_absorb", "v_absorb", "o_proj"):
        assert classes[name] == "attention", name
    # the attention kernel computes on the grid's activations, not the projections' recipe
    assert classes["attention_latent"] == "other"
    assert classes["lm_head"] == classes["embedding"] == "lm_head"
    for name in ("attn_all_reduce", "moe_dispatch", "moe_combine", "logits_all_gather",
                 "pp_send"):
        assert classes[name] == "collectives", name
    for name in ("router", "attn_norm", "moe_topk", "experts_act", "sampling"):
        assert classes[name] == "other", name


def test_quant_op_precisions_pick_the_class_row():
    ops = {op.name: op.row for op in model_ops(load_model("deepseek_v3"), L.DECODE)}
    row = quant_table([load_quant("nvfp4_experts")])[0]
    idx = L.DTYPE_INDEX
    w, a, k = idx["fp8"], idx["fp8"], idx["bf16"]  # the grid's: fp8 weights and activations
    # (weight, act, kv, compute) per op
    assert op_precisions(ops["experts"], row, w, a, k, L.DTYPE_BITS) == (
        idx["fp4"], idx["fp4"], idx["fp8"], idx["fp4"])
    assert op_precisions(ops["o_proj"], row, w, a, k, L.DTYPE_BITS) == (
        idx["bf16"], idx["bf16"], idx["fp8"], idx["bf16"])
    # the attention kernel takes the grid's activations (fp8 here), not the projections'
    # bf16, over the recipe's fp8 cache
    assert op_precisions(ops["attention_latent"], row, w, a, k, L.DTYPE_BITS)[2:] == (
        idx["fp8"], idx["fp8"])
    # block-FP8 as served: bf16 grid activations, fp8 linear layers; attention computes in
    # bf16 (the wider of the bf16 activations and the fp8 cache), o_proj in fp8
    fp8 = quant_table([load_quant("fp8_bf16_collectives")])[0]
    b = idx["bf16"]
    assert op_precisions(ops["attention_latent"], fp8, w, b, idx["fp8"], L.DTYPE_BITS)[3] == b
    assert op_precisions(ops["o_proj"], fp8, w, b, idx["fp8"], L.DTYPE_BITS)[3] == idx["fp8"]
    # the router has no class: the grid's precisions
    assert op_precisions(ops["router"], row, w, a, k, L.DTYPE_BITS) == (w, a, idx["fp8"], w)
    # a weight-only class computes in its activation precision
    int4 = quant_table([load_quant("int4_experts")])[0]
    assert op_precisions(ops["experts"], int4, w, a, k, L.DTYPE_BITS) == (
        idx["int4"], idx["bf16"], k, idx["bf16"])


# --------------------------------------------------------------------------- hand case
def test_quant_deepseek_decode_batch1_nvfp4_experts_by_hand():
    """DeepSeek-V3 decode, batch 1, tp 1, on B200 with nvfp4_experts over an fp8 grid: the
    routed experts read 8 experts' weights at NVFP4's 0.5625 bytes, the MLA projections bf16
    weights, the router (no class) fp8 weights, the latent cache fp8."""
    h, f, mats, k = 7168, 2048, 3, 8
    table, _ = dse.explain(hardware="b200", model="deepseek_v3", serving="static", batch=1,
                           tp=1, input_tokens=1000, output_tokens=2, weight_dtype="fp8",
                           act_dtype="fp8", kv_dtype="bf16", quant="nvfp4_experts")
    dec = table[table["phase"] == "decode"].set_index("op")
    # routed experts, batch 1: 1 - (1 - 8/256)^1 of 256 = the 8 experts the token picks;
    # weights 8 x 3 x 7168 x 2048 at fp4, the token's 8 routed copies in (2h) and the
    # experts' intermediate (3 f) at fp4 activations
    assert dec.loc["experts", "bytes"] == pytest.approx(
        8 * mats * h * f * FP4 + k * FP4 * (2 * h + mats * f), rel=1e-12)
    assert dec.loc["experts", "flops"] == pytest.approx(2 * k * h * f * mats, rel=1e-12)
    # shared expert: gate/up [7168, 2 x 2048] at fp4 weights and activations
    assert dec.loc["shared_gate_up_proj", "bytes"] == pytest.approx(
        h * 2 * f * FP4 + (h + 2 * f) * FP4, rel=1e-12)
    # MLA projections bf16: q_b [1536, 128 x 192], o_proj [128 x 128, 7168]
    assert dec.loc["q_b_proj", "bytes"] == pytest.approx(
        1536 * 128 * 192 * BF16 + (1536 + 128 * 192) * BF16, rel=1e-12)
    assert dec.loc["o_proj", "bytes"] == pytest.approx(
        128 * 128 * h * BF16 + (128 * 128 + h) * BF16, rel=1e-12)
    # the router has no class: the grid's fp8 weights and activations
    assert dec.loc["router", "bytes"] == pytest.approx(h * 256 * FP8 + (h + 256) * FP8,
                                                       rel=1e-12)
    # LM head bf16 (one token); the dense FFN of layers 0-2 at fp4
    assert dec.loc["lm_head", "bytes"] == pytest.approx(
        h * 129280 * BF16 + (h + 129280) * BF16, rel=1e-12)
    assert dec.loc["down_proj", "bytes"] == pytest.approx(
        18432 * h * FP4 + (18432 + h) * FP4, rel=1e-12)
    # absorbed MLA attention: the latent cache (512 + 64 per token) read at the recipe's
    # fp8, not the grid's bf16, at the one decode step's context 1001, and the new token's
    # latent written; the 128 query heads and the one latent "head" of 576 + 512 fresh
    # elements at the grid's fp8 activations (the kernel is in no class: the recipe's bf16
    # attention is its projections')
    assert dec.loc["attention_latent", "bytes"] == pytest.approx(
        1001 * 576 * FP8 + 576 * FP8 + (128 + 1) * (576 + 512) * FP8, rel=1e-12)


def test_quant_memory_per_device_follows_the_recipe_by_hand():
    """DeepSeek-V3 at tp 8 with nvfp4_experts over an fp8 grid (kv_dtype bf16): weights per
    class at the recipe's bytes, the rest (norms, routers) at fp8; the KV cache at the
    recipe's fp8."""
    h, tp = 7168, 8
    spec = _spec(hardware="b200", model="deepseek_v3", serving="static", tp=tp, batch=4,
                 input_tokens=1000, output_tokens=24, weight_dtype="fp8", kv_dtype="bf16",
                 quant=["uniform", "nvfp4_experts"])
    ds = dse.evaluate(spec)
    experts = 58 * 256 * 3 * h * 2048 / tp
    shared = 58 * 3 * h * 2048 / tp
    dense = 3 * 3 * h * 18432 / tp
    mla = (h * 1536 + 1536 + 1536 * 128 * 192 / tp + h * 576 + 512
           + 512 * 128 * 256 / tp + 128 * 128 * h / tp)
    vocab = 2 * 129280 * h / tp
    other = 61 * h + 61 * h + 58 * h * 256 + h  # attention and FFN norms, routers, final norm
    want = (experts + shared + dense) * FP4 + (61 * mla + vocab) * BF16 + other * FP8
    weights = ds["weight_bytes_per_device"].sel(quant="nvfp4_experts").values.ravel()[0]
    assert weights == pytest.approx(want, rel=1e-12)
    uniform = ds["weight_bytes_per_device"].sel(quant="uniform").values.ravel()[0]
    assert uniform == pytest.approx(
        (experts + shared + dense + 61 * mla + vocab + other) * FP8, rel=1e-12)
    # KV cache: 61 layers x (512 + 64) latent per token, replicated over tp, at fp8
    kv = ds["kv_cache_bytes_per_device"].sel(quant="nvfp4_experts").values.ravel()[0]
    assert kv == pytest.approx(4 * 1024 * 61 * 576 * FP8, rel=1e-12)
    assert ds["kv_cache_bytes_per_device"].sel(quant="uniform").values.ravel()[0] == \
        pytest.approx(4 * 1024 * 61 * 576 * BF16, rel=1e-12)
    # and the per-device memory the checks use follows them
    der = derive(ds)
    mem = der["memory_bytes_per_device"]
    assert float(mem.sel(quant="nvfp4_experts").max()) < float(mem.sel(quant="uniform").max())


# --------------------------------------------------------------------------- uniform
@pytest.mark.parametrize("serving", ["static", "continuous"])
def test_quant_uniform_equals_no_quant_exactly(serving):
    grid = dict(hardware=["h100_sxm", "b200"], model=["mixtral_8x7b", "deepseek_v3",
                                                     "jamba_v0_1"],
                serving=serving, batch=[1, 32], input_tokens=[512], output_tokens=[64],
                tp=[2, 8], ep=[1, 2], weight_dtype=["bf16", "fp4", "int4"],
                act_dtype=["same", "bf16"], kv_dtype=["same", "fp8"],
                what_if={"memory_capacity_scale": [0.5, 1.0]})
    plain = dse.evaluate(_spec(**grid))
    both = dse.evaluate(_spec(**grid, quant=["int4_experts", "uniform"]))
    plain_der, both_der = derive(plain), derive(both)
    for src, other in ((plain, both), (plain_der, both_der)):
        for name in src.data_vars:
            a = src[name]
            b = other[name]
            if "quant" in b.dims:
                b = b.sel(quant="uniform")
            if "quant" in a.dims:
                a = a.isel(quant=0)
            a, b = xr_align(a, b)
            np.testing.assert_array_equal(a, b, err_msg=name)


def xr_align(a, b):
    """The values of two DataArrays over the same dims, broadcast to one shape."""
    import xarray as xr
    a, b = xr.broadcast(a, b)
    return a.transpose(*sorted(a.dims)).values, b.transpose(*sorted(a.dims)).values


def test_quant_recipe_naming_the_grids_own_precisions_changes_nothing(tmp_path):
    same = tmp_path / "same.toml"
    same.write_text('name = "same"\nkv_cache = "bf16"\ncollectives = "bf16"\n'
                    + "".join(f'[{c}]\nweight = "bf16"\nact = "bf16"\n' for c in (
                        "attention", "experts", "shared_experts", "dense_ffn", "lm_head")))
    grid = dict(hardware="h100_sxm", model=["deepseek_v3", "llama3_8b"], tp=8, batch=[1, 16],
                serving=["static", "continuous"], input_tokens=2048, output_tokens=128)
    ds = dse.evaluate(_spec(**grid, quant=["uniform", str(same)]))
    for name in ("ttft_s", "tpot_s", "weight_bytes_per_device", "kv_cache_bytes_per_device"):
        np.testing.assert_array_equal(ds[name].sel(quant="uniform"),
                                      ds[name].sel(quant="same"), err_msg=name)


def test_quant_recipe_changes_what_it_names():
    # DeepSeek-V3 batch-1 decode on B200 (weight-read bound): over a bf16 grid the recipes
    # that narrow expert weights are faster; fp8_bf16_collectives is slower: its fp8
    # activations cost an input-quantization kernel before each of ~9 linear layers per
    # layer (9 x 61 x 3 us kernel latency ~ 1.6 ms), more than the fp8 weights save at
    # 8 TB/s (~0.7 ms of 1.4); over an fp8 grid nvfp4_experts is slower (its attention and
    # LM head are bf16, wider than fp8, and at batch 1 only 8 of 256 experts are read), and
    # so is fp8_bf16_collectives (a bf16 LM head and collectives)
    def tpot(weight):
        ds = dse.evaluate(_spec(hardware="b200", model="deepseek_v3", serving="static", tp=8,
                                batch=1, input_tokens=1000, output_tokens=64,
                                weight_dtype=weight,
                                quant=["uniform", "nvfp4_experts", "int4_experts",
                                       "fp8_bf16_collectives"]))
        return {q: float(ds["tpot_s"].sel(quant=q).squeeze()) for q in ds["quant"].values}
    bf16 = tpot("bf16")
    for q in ("nvfp4_experts", "int4_experts"):
        assert bf16[q] < bf16["uniform"], q
    assert bf16["fp8_bf16_collectives"] > bf16["uniform"]
    fp8 = tpot("fp8")
    assert fp8["nvfp4_experts"] > fp8["uniform"]
    assert fp8["fp8_bf16_collectives"] > fp8["uniform"]
    # recipes that name every class do not depend on the grid's weight precision but
    # through the unclassed ops (norms, router: fp8 over bf16 is faster)
    assert fp8["int4_experts"] < bf16["int4_experts"]
    assert fp8["int4_experts"] == pytest.approx(bf16["int4_experts"], rel=0.05)


# --------------------------------------------------------------------------- precision
def _reason(hardware, model, quant, **grid):
    der = derive(dse.evaluate(_spec(hardware=hardware, model=model, quant=quant, batch=1,
                                    input_tokens=128, output_tokens=8, **grid)))
    return int(der["reason"].values.ravel()[0])


def test_quant_unsupported_activation_in_a_class_is_refused_on_h100():
    refused = REASON_CODE["precision_not_supported"]
    # fp4 activations of the experts: no fp4 math on H100 (B200 has it)
    assert _reason("h100_sxm", "deepseek_v3", "nvfp4_experts", tp=8) == refused
    assert _reason("b200", "deepseek_v3", "nvfp4_experts", tp=8) != refused
    assert _reason("mi300x", "deepseek_v3", "mxfp4_mlp_w4a4", tp=8) == refused
    assert _reason("mi355x", "deepseek_v3", "mxfp4_mlp_w4a4", tp=8) != refused
    # weight-only fp4 / int4 experts with bf16 activations run on H100 (dequantized)
    assert _reason("h100_sxm", "gpt_oss_120b", "mxfp4_experts_bf16_attention") == 0
    assert _reason("h100_sxm", "mixtral_8x7b", "int4_experts", tp=2) == 0
    # the grid's own activations still count: fp4 everywhere on H100
    assert _reason("h100_sxm", "llama3_8b", "uniform", weight_dtype="fp4") == refused


def test_quant_precision_check_counts_only_the_classes_a_model_has(tmp_path):
    recipe = tmp_path / "fp4_experts_only.toml"
    recipe.write_text('name = "fp4_experts_only"\n[experts]\nweight = "fp4"\nact = "fp4"\n')
    refused = REASON_CODE["precision_not_supported"]
    assert _reason("h100_sxm", "llama3_8b", str(recipe)) == 0  # a dense model: no experts
    assert _reason("h100_sxm", "mixtral_8x7b", str(recipe), tp=2) == refused


def test_quant_kernel_matches_reference_per_class():
    from grid_strategies import QUANTS, kernel_matches_reference
    spec = _spec(hardware=["h100_sxm", "b200"], model=["deepseek_v3", "qwen3_next_80b_a3b",
                                                      "gpt_oss_20b"],
                 serving=["static", "continuous"], batch=[1, 48], input_tokens=[700],
                 output_tokens=[1, 33], tp=[4], ep=[1, 4], weight_dtype=["fp8", "bf16"],
                 kv_dtype=["same", "fp4"], quant=QUANTS)
    kernel_matches_reference(spec)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("text, parts", [
    ('name = "x"\n[experts]\nweight = "fp3"\n', ["[experts] weight", "'fp3'", "fp4"]),
    ('name = "x"\n[expert]\nweight = "fp4"\n', ["expert", "unknown key", "experts"]),
    ('name = "x"\n[experts]\nweights = "fp4"\n', ["[experts] weights", "unknown key",
                                                   "weight"]),
    ('name = "x"\nexperts = "fp4"\n', ["experts", "must be a table"]),
    ('name = "x"\n[experts]\n', ["[experts]", "empty table"]),
    ('name = "x"\nkv_cache = 8\n', ["kv_cache", "8", "unknown precision"]),
    ('name = "x"\ncollectives = "same"\n', ["collectives", "'same'", "bf16"]),
    ('description = "no name"\n', ["name", "missing required key"]),
    ('name = "bad name"\n', ["name", "identifier"]),
    ('name = "x"\n[experts\n', ["malformed TOML"]),
])
def test_quant_bad_recipe_is_one_line(tmp_path, capsys, monkeypatch, text, parts):
    monkeypatch.chdir(tmp_path)
    Path("r.toml").write_text(text)
    Path("s.toml").write_text('[grid]\nquant = ["uniform", "r.toml"]\n')
    line = cli_error(capsys, tmp_path, "sweep", "s.toml", "--out", "out")
    assert "r.toml" in line
    for part in parts:
        assert part in line, line


def test_quant_unknown_recipe_name_lists_the_valid_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text('[grid]\nquant = ["nvfp4_expert"]\n')
    line = cli_error(capsys, tmp_path, "sweep", "s.toml", "--out", "out")
    for part in ("s.toml", "[grid] quant", "'nvfp4_expert'", "unknown quant preset",
                 "nvfp4_experts", "uniform"):
        assert part in line, line
    with pytest.raises(ConfigError, match="unknown quant preset"):
        dse.parse_sweep({"grid": {"quant": ["nope"]}})


def test_quant_duplicate_recipe_is_refused(tmp_path):
    (tmp_path / "u.toml").write_text('name = "uniform"\n')
    with pytest.raises(ConfigError, match="two entries load preset 'uniform'"):
        dse.parse_sweep({"grid": {"quant": ["uniform", str(tmp_path / "u.toml")]}})


# --------------------------------------------------------------------------- CLI
def test_quant_cli_sweep_with_relative_recipe_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("recipes").mkdir()
    Path("recipes/fp8_experts.toml").write_text(
        '# my checkpoint: fp8 experts, the rest as the grid says\n'
        'name = "fp8_experts"\n[experts]\nweight = "fp8"\nact = "fp8"\n')
    Path("spec.toml").write_text(
        '[grid]\nhardware = ["h100_sxm", "b200"]\nmodel = ["mixtral_8x7b"]\n'
        'batch = [1, 16]\ntp = [2, 4]\ninput_tokens = [512]\noutput_tokens = [64]\n'
        'quant = ["uniform", "nvfp4_experts", "recipes/fp8_experts.toml"]\n')
    assert main(["sweep", "spec.toml", "--out", "results", "--quiet"]) == 0
    rows = pd.read_parquet("results/configurations")
    assert set(rows["quant"].astype(str)) == {"uniform", "nvfp4_experts", "fp8_experts"}
    assert len(rows) == 2 * 2 * 2 * 3
    by = rows.assign(quant=rows["quant"].astype(str), hardware=rows["hardware"].astype(str))
    h100 = by[by["hardware"] == "h100_sxm"].groupby("quant")["infeasible_reason"].first()
    assert h100["nvfp4_experts"] == "precision_not_supported"
    assert pd.isna(h100["fp8_experts"]) or h100["fp8_experts"] != "precision_not_supported"
    best = pd.read_parquet("results/best.parquet")
    assert "quant" in best.columns
    capsys.readouterr()
    assert main(["list", "quant"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_quant_explain_takes_the_recipe_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["explain", "--hardware", "b200", "--model", "deepseek_v3", "--tp", "8",
            "--serving", "static", "--output-tokens", "4"]
    assert main(base + ["--quant", "nvfp4_experts", "--csv", "q.csv"]) == 0
    assert main(base + ["--csv", "u.csv"]) == 0
    q, u = pd.read_csv("q.csv"), pd.read_csv("u.csv")
    experts = lambda t: t[(t["phase"] == "decode") & (t["op"] == "experts")]["bytes"].iloc[0]
    assert experts(q) < 0.3 * experts(u)  # fp4 against bf16
    capsys.readouterr()
    line = cli_error(capsys, tmp_path, *base, "--quant", "nope")
    assert "--quant" in line and "nope" in line and "uniform" in line


def test_quant_disaggregated_kv_transfer_takes_the_recipes_kv_cache():
    from dse.disaggregate import kv_transfer
    b200 = dse.load_hardware("b200")
    m = pd.DataFrame({"model": ["deepseek_v3"] * 2, "input_tokens": [4096] * 2,
                      "p_kv_dtype": ["bf16"] * 2, "p_quant": ["uniform", "nvfp4_experts"],
                      "p_tp": [8, 8], "p_pp": [1, 1], "d_tp": [8, 8], "d_pp": [1, 1],
                      "p_hardware": ["b200"] * 2, "d_hardware": ["b200"] * 2,
                      "scaleup_bandwidth_scale": [1.0] * 2,
                      "scaleout_bandwidth_scale": [1.0] * 2})
    seconds, link = kv_transfer(m, np.array([64.0, 64.0]), {"b200": b200},
                                {"deepseek_v3": load_model("deepseek_v3")},
                                {n: load_quant(n) for n in ("uniform", "nvfp4_experts")})
    assert list(link) == ["scaleout", "scaleout"]  # 64 devices: beyond one 8-GPU domain
    # the bf16 cache moves twice the recipe's fp8 bytes over the same link
    lat = b200.scaleout_latency_s
    assert seconds[0] - lat == pytest.approx(2 * (seconds[1] - lat), rel=1e-12)


# --------------------------------------------------------------------------- validation
def test_quant_validation_table_reads_the_quant_column(tmp_path):
    from dse.validate import validate
    row = {"hardware": "b200", "model": "deepseek_r1", "weight_dtype": "bf16",
           "kv_dtype": "fp8", "batch": 4, "input_tokens": 1000, "output_tokens": 100,
           "tp": 8, "measured_tpot_s": 0.01, "serving": "static", "source": "test"}
    table = pd.DataFrame([{**row, "quant": "nvfp4_experts"}, {**row, "quant": None}])
    rows, _ = validate(table)
    assert list(rows["quant"]) == ["nvfp4_experts", "uniform"]  # an empty cell: the default
    ds = dse.evaluate(_spec(hardware="b200", model="deepseek_r1", weight_dtype="bf16",
                            kv_dtype="fp8", batch=4, input_tokens=1000, output_tokens=100,
                            tp=8, serving="static", quant=["nvfp4_experts", "uniform"]))
    want = ds["tpot_s"].squeeze().sel(quant=["nvfp4_experts", "uniform"]).values
    np.testing.assert_array_equal(rows["predicted_tpot_s"].to_numpy(), want)
    # a recipe by relative path, against the table's folder
    (tmp_path / "r.toml").write_text('name = "r"\n[experts]\nweight = "fp8"\n')
    rows, _ = validate(pd.DataFrame([{**row, "quant": "r.toml"}]), base_dir=tmp_path)
    assert rows["predicted_tpot_s"].iloc[0] > 0
    with pytest.raises(ConfigError, match=r"row 2: quant = 'nope': unknown quant preset"):
        validate(pd.DataFrame([{**row, "quant": "nope"}]), source="t.csv")


def test_quant_bundled_fp4_rows_name_their_recipe():
    # the NVFP4 / MXFP4 checkpoints' rows say which classes are 4-bit (configs/validation)
    from dse.config import bundled_dir
    for name in ("serving.csv", "disaggregated.csv"):
        table = pd.read_csv(bundled_dir("validation") / name)
        fp4 = table["notes"].str.contains("NVFP4|MXFP4")
        assert fp4.any(), name
        assert table.loc[fp4, "quant"].notna().all(), name
        assert (table.loc[fp4, "weight_dtype"] == "bf16").all(), name
        assert not (table["weight_dtype"] == "fp4").any(), name


def test_quant_chunks_split_along_the_recipes_match_one_chunk(tmp_path, monkeypatch):
    # chunks of one configuration each: every chunk holds one recipe, and must price it
    # with that recipe's row (the chunk's subspec keeps its presets in step)
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text(
        '[grid]\nhardware = ["b200"]\nmodel = ["deepseek_v3"]\ntp = [8]\nbatch = [1, 8]\n'
        'serving = ["static", "continuous"]\n'
        'quant = ["uniform", "nvfp4_experts", "int4_experts"]\n')
    assert main(["sweep", "s.toml", "--out", "one", "--quiet"]) == 0
    assert main(["sweep", "s.toml", "--out", "many", "--quiet", "--chunk-rows", "1"]) == 0
    keys = ["serving", "quant", "batch"]

    def table(d):
        t = pd.read_parquet(f"{d}/configurations")
        t = t.astype({c: str for c in keys})
        return t.sort_values(keys).reset_index(drop=True)[keys + ["ttft_s", "tpot_s",
                                                                  "weight_bytes_per_device"]]
    one, many = table("one"), table("many")
    pd.testing.assert_frame_equal(one, many)
    assert one.groupby("quant")["weight_bytes_per_device"].first().nunique() == 3


def test_quantized_activations_cost_an_input_quantization_kernel_by_hand():
    """DeepSeek-V3 decode, batch 1, tp 1, B200, fp8 linear layers over bf16 activations
    (fp8_bf16_collectives): before each fp8 GEMM a kernel reads its input at bf16 and
    writes it at fp8 (3 bytes and 3 FLOPs per element); the uniform bf16 grid has none."""
    table, _ = dse.explain(hardware="b200", model="deepseek_v3", serving="static", batch=1,
                           tp=1, input_tokens=1000, output_tokens=2, weight_dtype="fp8",
                           act_dtype="bf16", kv_dtype="bf16", quant="fp8_bf16_collectives")
    dec = table[table["phase"] == "decode"].set_index("op")
    per_input = {"o_proj_quant": 128 * 128,        # heads x v_head_dim
                 "qkv_a_proj_quant": 7168,         # hidden
                 "experts_quant": 7168,            # each token's hidden state, once
                 "experts_down_quant": 8 * 2048,   # top-8 routed copies x expert FFN width
                 "shared_down_proj_quant": 2048}   # the shared expert's FFN width
    for op, n in per_input.items():
        assert dec.loc[op, "bytes"] == pytest.approx(n * (BF16 + FP8), rel=1e-12), op
        assert dec.loc[op, "flops"] == pytest.approx(3 * n, rel=1e-12), op
        # one more kernel: its latency on top of the (tiny) memory time
        assert dec.loc[op, "time_s"] > dec.loc[op, "memory_s"]
    # the LM head stays bf16 in this recipe: no conversion, no kernel runs
    assert "lm_head_quant" not in dec.index
    uniform, _ = dse.explain(hardware="b200", model="deepseek_v3", serving="static", batch=1,
                             tp=1, input_tokens=1000, output_tokens=2, weight_dtype="bf16")
    assert not uniform["op"].str.endswith("_quant").any()
