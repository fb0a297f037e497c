"""Refit the bundled efficiency curves of h100_sxm, h200, b200, b300, gb200_nvl72, gb300_nvl72,
mi300x, mi325x and mi355x from configs/kernels/.

    python benchmarks/fit_efficiency_curves.py [--write]

Turns the cited per-kernel measurements (configs/kernels/README.md) into `dse calibrate`
tables and fits ``[efficiency.*]`` curves with :func:`dse.curve_fit.fit_curves` on top of
each preset's own kernel latency; prints the fits, and with ``--write`` replaces the
curves in the bundled presets. Selection (stated in configs/kernels/README.md, "Bundled
curves"):

- h100_sxm: GEMMs measured on H100 SXM and H800 (the same GH100 compute and HBM3 at
  3.35 TB/s; H800 differs in NVLink only), attention on H100 SXM, all-reduce of the
  engines' own kernels (vLLM custom all-reduce, PyTorch symmetric-memory all-reduce: what
  vLLM/SGLang run for decode-sized messages) and NCCL from 8 MiB on (where engines hand
  large messages to NCCL).
- h200: the same GH100 die and NVLink 4: H100's memory, attention and collective curves
  (an assumption: HBM3e reached at the same share of peak for the same size), compute
  curve fitted to the H200 cuBLASLt rows, and the routed experts' compute curve
  (moe_compute) fitted to the H200 MoE timings NVIDIA's aiconfigurator collected for
  SGLang 0.5.10 (DeepSeek's experts, block-FP8 through SGLang's Triton fused MoE, 256 to
  16384 tokens, expert tensor parallelism 1-16), copied to h100_sxm (same compute die).
  TensorRT-LLM's CUTLASS block-FP8 MoE on H200 in the same collection takes ~2x SGLang's
  time at prefill sizes: one curve per hardware follows one engine's kernels.
- b200: fitted on the GB200 rows against the gb200_nvl72 preset (the chip measured: one
  Blackwell B200-class die at GB200 power) and copied: GEMM and MLA attention. No
  collective curve: the only GB200 collective rows are NCCL ring without CUDA graphs,
  which engines do not use for decode. The routed experts' compute curve (moe_compute)
  is fitted to the B200 MoE timings NVIDIA's aiconfigurator collected for TensorRT-LLM
  1.3.0rc20 (DeepSeek's experts, block-FP8 through DeepGEMM, 256 to 16384 tokens, expert
  tensor parallelism 1-16): a grouped GEMM over the thin per-device expert slices reaches
  12-43 % of the FP8 peak where a dense GEMM of the same work reaches ~55 %. Only the
  compute side is kept: these prefill-sized rows say nothing about decode-sized MoE,
  which keeps the GEMM memory curve.
- b300, gb200_nvl72, gb300_nvl72: only moe_compute, fitted the same way to the MoE timings
  the same collection has for each (TensorRT-LLM 1.3.0rc20 DeepGEMM block-FP8; within 5 %
  of B200's at every size); their other ops keep the scalars.
- mi325x: gemm_compute and gemm_memory fitted to the GEMMs measured on the CDNA 3 die
  (304 CUs): AMD's aiter tuner's block-scaled FP8 GEMMs and fused-MoE stages of DeepSeek's
  TP8/EP8 shapes on MI325X, M = 1 ... 32768 (what DeepSeek/Kimi/GLM-class FP8 checkpoints
  run), and the hipBLASLt per-tensor FP8 GEMMs on MI300X (large square shapes,
  compute-bound: the bandwidth the fit divides by does not enter them); attention_compute
  from aiter's flash-attention forward on MI300X (prefill, compute-bound). The aiter GEMM
  rows measured on MI300X (37, small M) are kept out and check the copy below. No
  attention_memory or collective curve (the MI300X collective rows are RCCL, not the
  engines' custom all-reduce; no public MI300X decode-attention timings of the engines'
  kernels over a range of contexts).
- mi355x: its own aiter block-scaled FP8 GEMMs and fused-MoE stages (the commit that names
  MI355X) and flash-attention forward rows: gemm_compute, gemm_memory, attention_compute.
- mi300x: MI325X's curves (an assumption: the same CDNA 3 compute dies and peak rates,
  and HBM3 reached at the same share of its 5.3 TB/s as MI325X's HBM3E of its 6 TB/s).

The whole-MoE timings (DeepSeek's block-FP8 routed experts, gpt-oss's weight-only MXFP4
ones) time the fused kernel: routing, permutation, the activations' quantization (block-
FP8), both grouped GEMMs, the activation and the weighted sum. dse prices the experts op
and, apart, the operators around it (``MOE_AUX``): each row's fitted time is its
measured time less dse's price of those (:func:`moe_aux_seconds`), so the experts op
plus its operators add up to the measured fused kernel instead of counting the operators
twice.
"""
from __future__ import annotations

import functools
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "configs" / "kernels"
HARDWARE = ROOT / "configs" / "hardware"
ENGINE_KERNELS = ROOT / "configs" / "engine_kernels"
ELEM = {"fp8": 1.0, "fp16": 2.0, "bf16": 2.0, "fp4": 0.5 + 1 / 16, "16bit_unstated": 2.0}
ENGINE_ALL_REDUCE = ("vllm_custom_1stage", "vllm_custom_2stage", "torch_symm_mem_two_shot",
                     "torch_symm_mem_multimem")
NCCL_FROM_BYTES = 8 * 2 ** 20
GB200_GEMMS = ("cublaslt", "sgl_kernel.cutlass_scaled_fp4_mm")  # the dense GEMM rows
MOE_LIBRARY = ("trtllm_deepgemm_fp8_block_moe",)
# weight-only quantized experts: (weight bytes per element, compute precision)
WEIGHT_ONLY = {"w4a16_mxfp4": (0.5 + 1 / 16, "bf16")}  # priced as dse's fp4 (DTYPE_BYTES)
WO_LIBRARY = ("trtllm_triton_mxfp4_w4a16_moe",)
# the operators dse prices around a routed-experts op that a fused MoE kernel runs inside
# (dse/compile.py _ffn_ops): routing, permutation, the activations' quantization before
# each grouped GEMM (none for experts computing in the residual stream's precision), the
# activation, the weighted sum of the k expert outputs
MOE_AUX = ("moe_topk", "moe_align", "experts_quant", "experts_act", "experts_down_quant",
           "moe_sum")
AUX_TOKENS = 1024  # the prefill whose operators give the auxiliaries' bytes per token
# the models and precisions of the whole-MoE rows, as dse's validation rows price them:
# DeepSeek-V3/R1 block-FP8, gpt-oss-120b's MXFP4 experts with bf16 activations
AUX_MODELS = {
    "deepseek": dict(model="deepseek_r1", weight_dtype="fp8", act_dtype="bf16",
                     kv_dtype="fp8", quant="fp8_bf16_collectives"),
    "gpt_oss": dict(model="gpt_oss_120b", weight_dtype="bf16", act_dtype="bf16",
                    kv_dtype="bf16", quant="mxfp4_experts_bf16_attention"),
}


@functools.lru_cache(maxsize=None)
def preset(name: str):
    """The bundled hardware preset ``name`` (read once)."""
    from dse.config import load_hardware
    return load_hardware(name)


@functools.lru_cache(maxsize=None)
def moe_aux_bytes(model: str, tp: int, ep: int = 1) -> tuple[float, int]:
    """(bytes per token, operators) of the routed-experts auxiliaries (``MOE_AUX``) in one
    MoE layer of ``AUX_MODELS[model]`` at tensor parallelism ``tp`` and expert parallelism
    ``ep`` (inside the tp group: every device holds every token), as dse prices them: its
    own static prefill of ``AUX_TOKENS`` tokens (``dse.explain``; the bytes do not depend
    on the hardware, and every one of these operators is per token and memory-bound)."""
    from dse.explain import explain
    table, _ = explain(hardware="h200", tp=tp, ep=ep, serving="static", batch=1,
                       input_tokens=AUX_TOKENS, output_tokens=2, **AUX_MODELS[model])
    ops = table[(table.phase == "prefill") & table.op.isin(MOE_AUX)]
    always = {"moe_topk", "moe_align", "experts_act", "moe_sum"}
    if not always <= set(ops.op) or not (ops.compute_s < ops.memory_s).all():
        raise RuntimeError(f"fit_efficiency_curves.py: the MoE auxiliaries of {model} at tp "
                           f"{tp}, ep {ep} are not memory-bound operators of MOE_AUX")
    return float(ops.bytes.sum()) / AUX_TOKENS, len(ops)


def moe_aux_seconds(hardware, tokens, tp, ep=None, model="deepseek") -> np.ndarray:
    """dse's price [s] of the ``MOE_AUX`` operators of one MoE layer of ``model`` at
    ``tokens`` on ``hardware`` (per row; ``ep`` per row, default 1): each one kernel
    latency plus its bytes at the preset's scalar memory efficiency, as the kernel prices
    an operator without a curve."""
    ep = [1] * len(tokens) if ep is None else ep
    out = np.empty(len(tokens))
    for i, (h, t, p, e) in enumerate(zip(hardware, tokens, tp, ep)):
        hw = preset(h)
        per_token, n = moe_aux_bytes(model, int(p), int(e))
        out[i] = n * hw.kernel_latency_s + per_token * t / (
            hw.memory_bytes_per_s * hw.memory_efficiency)
    return out


def gemm_rows(hardware, library=None, engine_moe=True, min_tokens=0) -> pd.DataFrame:
    """The GEMM rows of ``hardware`` (of ``library`` when given); ``engine_moe`` False
    leaves out the engines' whole-MoE timings (library ``*_moe``: they fit moe_* curves of
    their own); ``min_tokens``: of DeepSeek's top-8 MoE rows only those of at least that
    many tokens (m x groups / 8)."""
    g = pd.read_csv(KERNELS / "gemm.csv")
    g = g[g.hardware.isin(hardware)]
    if library is not None:
        g = g[g.library.isin(library)]
    if min_tokens:
        g = g[g.m * g.groups >= 8 * min_tokens]
    if not engine_moe:
        g = g[~g.library.str.endswith("_moe")]
    wo = g.dtype.isin(list(WEIGHT_ONLY)).to_numpy()
    eb = g.dtype.map(ELEM)
    rows = g.m * g.groups
    flops = 2.0 * rows * g.n * g.k
    byts = (rows * g.k + g.groups * g.k * g.n) * eb + rows * g.n * 2.0
    if wo.any():
        # as dse prices a routed-experts op (formulas.moe_cost): each hit expert's weights
        # once, the routed tokens' bf16 activations in and out (2 k) and between the
        # expert's GEMMs (n)
        web = g.dtype.map({d: b for d, (b, _) in WEIGHT_ONLY.items()})
        byts = np.where(wo, g.groups * g.k * g.n * web + rows * 2.0 * (2 * g.k + g.n), byts)
    t = g.measured_time_s.fillna(flops / (g.measured_tflops * 1e12)).to_numpy().copy()
    # the whole fused-MoE rows less what dse prices apart around the experts op (module
    # docstring). DeepSeek's block-FP8 MoE: 256 experts of 7168 inputs, n = 3 x 2048 / tp,
    # m = tokens x 8 / groups (groups = 256 from 32 tokens, the experts hit below: the
    # decode rows of benchmarks/import_aiconfigurator_moe.py). gpt-oss-120b's (weight-only):
    # 128 experts, top-4, one rank of ep = 128 / its most experts, groups = the distinct
    # experts it is sent, m = its copies 4 tokens / ep over them
    fused = (g.library.str.endswith("_moe") & (g.k == 7168) & (g.dtype == "fp8")).to_numpy()
    if fused.any():
        t[fused] -= moe_aux_seconds(g.hardware[fused], g.m[fused] * g.groups[fused] / 8,
                                    6144 // g.n[fused])
    if wo.any():
        w = g[wo]
        ep = (128 // w.groups.groupby(w.hardware).transform("max")).to_numpy()
        t[wo] -= moe_aux_seconds(w.hardware, w.m.to_numpy() * w.groups.to_numpy() * ep / 4,
                                 ep, ep, model="gpt_oss")
    if (t[fused | wo] <= 0).any():
        raise RuntimeError("fit_efficiency_curves.py: a MoE row is shorter than its "
                           "auxiliary operators")
    dtype = g.dtype.replace({d: c for d, (_, c) in WEIGHT_ONLY.items()})
    op = np.where(wo, "moe_wo", np.where(g.groups > 1, "moe", "gemm"))
    return pd.DataFrame({"op": op, "groups": g.groups, "dtype": dtype,
                         "flops": flops, "bytes": byts, "latency_s": t})


def attention_rows(hardware) -> pd.DataFrame:
    a = pd.read_csv(KERNELS / "attention.csv")
    a = a[a.hardware.isin(hardware)]
    mla = a.kind.str.contains("mla")
    prefill = a.kind.str.startswith("prefill").to_numpy()
    causal = a.kind.str.endswith("causal").to_numpy()
    eb = a.dtype.map(ELEM)
    # decode (one query per sequence): MLA (absorbed) reads the 576-wide latent+rope cache
    # once per token, scores over 576 and values over 512 per head; MHA reads K and V per KV
    # head. Prefill (context queries over context keys): Q, K, V and O once, scores and
    # values over every (query, key) pair, half of them when causal (the pairs dse counts)
    cache = np.where(mla, a.head_dim, 2 * a.head_dim * a.kv_heads)
    width = np.where(mla, a.head_dim + 512, 2 * a.head_dim)
    queries = np.where(prefill, a.context, 1)
    pairs = np.where(causal, 0.5, 1.0) * queries * a.context
    byts = a.batch * (a.context * cache + np.where(prefill, 2 * a.heads * a.head_dim * a.context,
                                                   0)) * eb
    flops = 2.0 * a.batch * a.heads * pairs * width
    t = a.measured_time_s.fillna(flops / (a.measured_tflops * 1e12))
    return pd.DataFrame({"op": "attention", "dtype": "bf16", "flops": flops, "bytes": byts,
                         "latency_s": t})


def all_reduce_rows(hardware) -> pd.DataFrame:
    c = pd.read_csv(KERNELS / "collectives.csv")
    c = c[c.hardware.isin(hardware) & (c.op == "all_reduce")]
    nccl = c.library.str.startswith("nccl") & (c.message_bytes >= NCCL_FROM_BYTES)
    c = c[(c.library.isin(ENGINE_ALL_REDUCE) | nccl) & c.measured_time_s.notna()]
    # per size and group, the fastest kernel (the engine's dispatch picks it)
    c = c.loc[c.groupby(["devices", "nodes", "message_bytes"]).measured_time_s.idxmin()]
    return pd.DataFrame({"op": "all_reduce", "dtype": "bf16", "devices": c.devices,
                         "nodes": c.nodes, "message_bytes": c.message_bytes,
                         "latency_s": c.measured_time_s})


def check(preset, result, table) -> float:
    """Median |error| [%] of ``result``'s GEMM curves on the measured ``table`` priced
    against ``preset``'s peaks: rows kept out of the fit, to test a copied curve."""
    from dse.config import load_hardware
    from dse.curve_fit import kernel_seconds
    hw = load_hardware(preset)
    (wc, ec), (wm, em) = (result.curves[n] for n in ("gemm_compute", "gemm_memory"))
    peak = np.array([hw.rate(d) for d in table.dtype])
    flops, byts = table.flops.to_numpy(), table.bytes.to_numpy()
    pred, _ = kernel_seconds(result.kernel_latency_s, flops / peak,
                             byts / hw.memory_bytes_per_s, flops, byts,
                             (np.log10(wc), ec), (np.log10(wm), em))
    err = float(np.median(np.abs(pred / table.latency_s.to_numpy() - 1.0)) * 100)
    print(f"  check on {len(table)} {preset} kernels kept out of the fit: median abs error "
          f"{err:.1f}%")
    return err


def fit(preset, table, moe_curves=False):
    from dse.config import load_hardware
    from dse.curve_fit import fit_curves
    hw = load_hardware(preset)
    result = fit_curves(hw, table.reset_index(drop=True), f"configs/kernels ({preset})",
                        latency=hw.kernel_latency_s, moe_curves=moe_curves)
    print(f"{preset}: median abs error {result.median_abs_pct_error:.1f}% over "
          f"{np.isfinite(result.predicted_s).sum()} kernels")
    for name, (w, e) in result.curves.items():
        knots = ", ".join(f"{x:.3g}:{y:.2f}" for x, y in zip(w, e))
        print(f"  {name:20s} ({result.rows[name]:3d} rows) {knots}")
    return result


def plans() -> dict:
    """{preset: (CurveFit, source note)}: the fits the bundled presets carry."""
    from dse.curve_fit import CurveFit
    h100 = fit("h100_sxm", pd.concat([gemm_rows(["h100_sxm", "h800"], engine_moe=False),
                                      attention_rows(["h100_sxm"]),
                                      all_reduce_rows(["h100_sxm"])]))
    h200 = fit("h200", gemm_rows(["h200"], ["cublaslt"]))
    # the hardware presets' moe_compute: SGLang's prefill-sized rows (every expert active,
    # 256 tokens and more, as the engines' sets take theirs)
    h200_moe = fit("h200", gemm_rows(["h200"], ["sglang_triton_fp8_block_moe"],
                                     min_tokens=256), moe_curves=True)
    # gpt-oss's MXFP4 weight-only experts (TensorRT-LLM's Triton MoE) timed on each part:
    # H100 and H200 take nearly the same time for them (the kernel does not stream at a
    # share of HBM bandwidth), so neither copies the other's curves
    wo = {p: fit(p, gemm_rows([p], WO_LIBRARY), moe_curves=True) for p in ("h100_sxm", "h200")}
    wo_names = ("moe_wo_compute", "moe_wo_memory")
    gb200 = fit("gb200_nvl72", pd.concat([gemm_rows(["gb200_nvl72"], GB200_GEMMS),
                                          attention_rows(["gb200_nvl72"])]))
    b200_moe = fit("b200", gemm_rows(["b200"], MOE_LIBRARY), moe_curves=True)
    # the other Blackwell parts: the routed experts' compute curve from their own MoE
    # timings (the same TensorRT-LLM DeepGEMM kernel; no other curve of their own)
    blackwell = {preset: fit(preset, gemm_rows([preset], MOE_LIBRARY), moe_curves=True)
                 for preset in ("b300", "gb200_nvl72", "gb300_nvl72")}
    cdna3 = fit("mi325x", pd.concat([gemm_rows(["mi325x"]),
                                     gemm_rows(["mi300x"], ["hipblaslt"]),
                                     attention_rows(["mi300x"])]))
    check("mi300x", cdna3, gemm_rows(["mi300x"], ["aiter_ck_a8w8_blockscale"]))
    mi355x = fit("mi355x", pd.concat([gemm_rows(["mi355x"]), attention_rows(["mi355x"])]))
    h200_curves = {k: v for k, v in h100.curves.items() if k != "gemm_compute"}
    h200_curves["gemm_compute"] = h200.curves["gemm_compute"]
    h200_curves["moe_compute"] = h200_moe.curves["moe_compute"]
    h200_rows = {**h100.rows, "gemm_compute": h200.rows["gemm_compute"],
                 "moe_compute": h200_moe.rows["moe_compute"]}
    # H100: the same GH100 compute die as H200, so H200's routed-experts compute curve
    h100_curves = {**h100.curves, "moe_compute": h200_moe.curves["moe_compute"]}
    h100_rows = {**h100.rows, "moe_compute": h200_moe.rows["moe_compute"]}
    for curves, rows, r in ((h100_curves, h100_rows, wo["h100_sxm"]),
                            (h200_curves, h200_rows, wo["h200"])):
        curves.update({n: r.curves[n] for n in wo_names})
        rows.update({n: r.rows[n] for n in wo_names})
    # B200: the GB200 die's GEMM and attention curves, and the routed experts' compute
    # curve from the MoE kernels measured on B200 itself (prefill sizes; decode-sized MoE
    # keeps the GEMM memory curve, see the module docstring)
    b200_curves = {**gb200.curves, "moe_compute": b200_moe.curves["moe_compute"]}
    b200_rows = {**gb200.rows, "moe_compute": b200_moe.rows["moe_compute"]}
    moe_only = {preset: (CurveFit({"moe_compute": r.curves["moe_compute"]},
                                  {"moe_compute": r.rows["moe_compute"]}, r.kernel_latency_s,
                                  np.nan, None),
                         "fitted by benchmarks/fit_efficiency_curves.py to the MoE rows of "
                         "configs/kernels measured on this part (aiconfigurator, TensorRT-LLM "
                         "DeepGEMM block-FP8)")
                for preset, r in blackwell.items()}
    return {
        **moe_only,
        "h100_sxm": (CurveFit(h100_curves, h100_rows, h100.kernel_latency_s, np.nan, None),
                     "fitted by benchmarks/fit_efficiency_curves.py to configs/kernels "
                     "(H100 SXM and H800 GEMMs, H100 attention, engine all-reduce; "
                     "moe_compute H200's: SGLang's Triton block-FP8 MoE, same GH100 die; "
                     "moe_wo_* its own: TensorRT-LLM's Triton MXFP4 weight-only MoE)"),
        "h200": (CurveFit(h200_curves, h200_rows, h200.kernel_latency_s, np.nan, None),
                 "benchmarks/fit_efficiency_curves.py: gemm_compute fitted to the H200 "
                 "cuBLASLt rows of configs/kernels, moe_compute to the H200 MoE rows "
                 "(aiconfigurator, SGLang Triton block-FP8), moe_wo_* to its MXFP4 weight-only "
                 "MoE rows (aiconfigurator, TensorRT-LLM Triton), the other curves H100's (same "
                 "GH100 die)"),
        "b200": (CurveFit(b200_curves, b200_rows, gb200.kernel_latency_s, np.nan, None),
                 "fitted by benchmarks/fit_efficiency_curves.py: GEMM and attention curves to "
                 "the GB200 rows of configs/kernels (B200-class die) against the gb200_nvl72 "
                 "preset's peaks, moe_compute to the B200 MoE rows (aiconfigurator, "
                 "TensorRT-LLM DeepGEMM block-FP8)"),
        "mi325x": (cdna3, "fitted by benchmarks/fit_efficiency_curves.py to the CDNA 3 "
                   "kernels of configs/kernels (aiter block-scaled FP8 GEMMs and fused MoE on "
                   "MI325X, hipBLASLt FP8 GEMMs and aiter flash-attention forward on "
                   "MI300X)"),
        "mi355x": (mi355x, "fitted by benchmarks/fit_efficiency_curves.py to the MI355X rows "
                   "of configs/kernels (aiter block-scaled FP8 GEMMs and fused MoE, aiter "
                   "flash-attention forward)"),
        "mi300x": (cdna3, "benchmarks/fit_efficiency_curves.py: MI325X's curves, fitted to "
                   "the CDNA 3 kernels of configs/kernels (aiter block-scaled FP8 GEMMs and "
                   "fused MoE on MI325X, hipBLASLt FP8 GEMMs and aiter flash-attention forward "
                   "on MI300X; the same 304-CU compute die, HBM at the same share of peak "
                   "assumed)"),
    }


# The engines' own kernels (configs/engine_kernels/<set>.toml): per set, the library of
# its routed-experts MoE timings per hardware (configs/kernels/README.md, source 7), the
# kernel named in the sources, and the set's description and header
ENGINE_MOE = {
    # SGLang's Triton fused MoE is its TP MoE path on Hopper; on Blackwell SGLang serves
    # DeepSeek's fp8 experts with FlashInfer's TensorRT-LLM-gen MoE by default
    # (moe_runner_backend auto -> flashinfer_trtllm on sm100), the hardware presets' kernel
    # family there, so the set leaves Blackwell to them
    "sglang": ({hw: "sglang_triton_fp8_block_moe" for hw in ("h100_sxm", "h200")},
               "SGLang 0.5.10, Triton fused MoE",
               "SGLang's own kernels where they differ from the hardware presets' curves"),
    # TensorRT-LLM's default MoE backend (CUTLASS) on Hopper, DeepGEMM on Blackwell
    "trtllm": ({**{hw: "trtllm_cutlass_fp8_block_moe" for hw in ("h100_sxm", "h200")},
                **{hw: "trtllm_deepgemm_fp8_block_moe" for hw in
                   ("b200", "b300", "gb200_nvl72", "gb300_nvl72")}},
               "TensorRT-LLM 1.3.0rc20, CUTLASS fused MoE on Hopper, DeepGEMM on Blackwell",
               "TensorRT-LLM's own kernels where they differ from the hardware presets' "
               "curves"),
    # vLLM's Triton fused MoE (block-FP8 w8a8) on Hopper: its decode path (ENGINE_CURVES)
    "vllm": ({hw: "vllm_triton_fp8_block_moe" for hw in ("h100_sxm", "h200")},
             "vLLM 0.14, Triton fused MoE",
             "vLLM's own kernels where they differ from the hardware presets' curves"),
}
# the curves a set carries (default: moe_compute, from the prefill-sized rows). Sets whose
# rows include decode sizes (1-128 tokens: the importer's DECODE_LIBRARIES) carry
# moe_memory too, the kernel's memory-bound time when a decode step streams its experts.
# vLLM's: moe_memory only. vLLM runs block-FP8 experts through DeepGEMM only where
# DeepGEMM is installed and a step holds >= 128 tokens with > 512 expert columns per rank
# (vllm/model_executor/layers/fused_moe/deep_gemm_moe.py `_valid_deep_gemm`: "we will
# fall back to triton" otherwise), so a decode step runs the timed Triton kernel while a
# prefill step may not: moe_compute stays the hardware presets'. SGLang's table has decode
# sizes too, but its memory curve is not taken: fitted the same way it priced InferenceX's
# nine 2026 H200 SGLang DeepSeek-R1 rows of serving.csv that change 25 % too slow in decode
# (+4 % signed before), so the timed kernel is not what those servers ran at decode sizes
# or another term of theirs already runs slow (configs/validation/README.md)
ENGINE_CURVES = {"vllm": ("moe_memory",)}


def set_curves(name: str) -> tuple:
    """The curves kernel set ``name`` carries (:data:`ENGINE_CURVES`, else moe_compute)."""
    return ENGINE_CURVES.get(name, ("moe_compute",))


KERNEL_SET_HEADER = """An engine's own kernels: efficiency curves per hardware preset that
replace the hardware preset's curve of the same name when this engine serves on that hardware
(continuous serving; dse.engines.load_kernel_set, configs/engines/README.md).
Written by `python benchmarks/fit_efficiency_curves.py --write`: do not edit by hand.
{curves}: the routed experts' grouped kernel ({kernel}){sizes}, fitted to the block-FP8
DeepSeek-V3/R1 MoE timings NVIDIA's aiconfigurator collected for this engine on each GPU
(configs/kernels/gemm.csv, library {libraries}; configs/kernels/README.md, source 7), each
less dse's price of the operators it prices apart around the experts op.{why}"""
KERNEL_SET_DECODE = """ The engine runs this kernel in
every step of fewer than 128 tokens (its rule for leaving DeepGEMM), so the set carries the
decode-sized memory curve and leaves moe_compute to the hardware presets."""


def engine_plans() -> dict:
    """{kernel set: {hardware preset: (CurveFit, source note)}}: the routed experts'
    curves (``ENGINE_CURVES``) of each engine's own MoE kernel on each hardware it was
    measured on."""
    from dse.curve_fit import CurveFit
    out = {}
    for name, (libraries, kernel, _) in ENGINE_MOE.items():
        out[name] = {}
        for preset, library in libraries.items():
            # moe_compute from the prefill-sized rows (every expert active), moe_memory
            # from all, decode sizes included
            names = set_curves(name)
            r = {n: fit(preset, gemm_rows([preset], [library],
                                          min_tokens=256 if n == "moe_compute" else 0),
                        moe_curves=True) for n in names}
            out[name][preset] = (
                CurveFit({n: r[n].curves[n] for n in names}, {n: r[n].rows[n] for n in names},
                         r[names[0]].kernel_latency_s, np.nan, None),
                f"fitted by benchmarks/fit_efficiency_curves.py to the {preset} MoE rows of "
                f"configs/kernels (aiconfigurator, {kernel}; library {library})")
    return out


def kernel_set_texts(plans_: dict) -> dict:
    """{kernel set: its configs/engine_kernels/<set>.toml text} for ``engine_plans()``."""
    from dse.curve_fit import kernel_set_text
    out = {}
    for name, fits in plans_.items():
        libraries, kernel, description = ENGINE_MOE[name]
        names = set_curves(name)
        decode = names == ("moe_memory",)
        header = textwrap.fill(" ".join(KERNEL_SET_HEADER.format(
            curves=", ".join(names), kernel=kernel,
            sizes=" at decode sizes, memory-bound" if decode else "",
            libraries=", ".join(sorted(set(libraries.values()))),
            why=KERNEL_SET_DECODE if decode else "").split()), 86)
        out[name] = kernel_set_text(name, description, header, fits)
    return out


def main(argv) -> int:
    from dse.curve_fit import curves_text
    fits = plans()
    sets = kernel_set_texts(engine_plans())
    if "--write" in argv:
        for preset, (result, note) in fits.items():
            path = HARDWARE / f"{preset}.toml"
            path.write_text(curves_text(path.read_text(), result, note))
            print(f"wrote {path.relative_to(ROOT)}")
        for name, text in sets.items():
            path = ENGINE_KERNELS / f"{name}.toml"
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
