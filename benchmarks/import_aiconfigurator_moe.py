"""Rows of configs/kernels/gemm.csv from NVIDIA aiconfigurator's collected MoE timings: the
fused-MoE kernel each engine runs for DeepSeek's block-FP8 experts by default, per GPU, and
the one TensorRT-LLM runs for gpt-oss-120b's MXFP4 experts on Hopper (``WO_SOURCES``).

    python benchmarks/import_aiconfigurator_moe.py AIC_CHECKOUT [--write]

AIC_CHECKOUT is a git checkout of aiconfigurator whose kernel tables are plain Parquet
(upstream ``ai-dynamo/aiconfigurator`` keeps them in Git LFS; the fork
``tianhaox/aiconfigurator`` at ``COMMIT`` carries the same files as Parquet). For each
(GPU, engine) of ``SOURCES`` it takes DeepSeek-V3/R1's routed experts (hidden 7168, expert
inter 2048, 256 experts, top-8, balanced routing, expert parallelism 1) in block-scaled
FP8 at expert tensor parallelism 1-16 and 256-16384 tokens (``DECODE_LIBRARIES``: 1-128
tokens too), and enters each timing as one grouped GEMM (configs/kernels/README.md, source
7): groups = the distinct experts hit, 256 from 32 tokens, m = tokens x 8 / groups,
n = 3 x 2048 / tp, k = 7168. Prints the rows; ``--write`` replaces the rows of the same
(hardware, library) in configs/kernels/gemm.csv (kept in its CRLF line endings).
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GEMM_CSV = ROOT / "configs" / "kernels" / "gemm.csv"
COMMIT = "899034f57ef6953a1250c77e6f6778aba85b6207"
DATA = "aic-core/src/aiconfigurator_core/systems/data"
# (dse hardware, aiconfigurator system, GPU name in the note, engine dir, version, kernel
#  source, library, engine's name in the note, kernel's name in the note, the upstream PR
#  that added the table)
SOURCES = [
    *((hw, system, gpu, "trtllm", "1.3.0rc20", "deepgemm", "trtllm_deepgemm_fp8_block_moe",
       "TensorRT-LLM 1.3.0rc20", "DeepGEMM", "added upstream by PR #1356")
      for hw, system, gpu in (("b200", "b200_sxm", "B200"),
                              ("b300", "b300_sxm", "NVIDIA B300 SXM6 AC"),
                              ("gb200_nvl72", "gb200", "NVIDIA GB200"),
                              ("gb300_nvl72", "gb300", "NVIDIA GB300"))),
    *((hw, system, gpu, "trtllm", "1.3.0rc20", "moe_torch_flow_cutlass",
       "trtllm_cutlass_fp8_block_moe", "TensorRT-LLM 1.3.0rc20",
       "TensorRT-LLM's CUTLASS fused MoE", "added upstream by PR #1356")
      for hw, system, gpu in (("h100_sxm", "h100_sxm", "H100 SXM"), ("h200", "h200_sxm", "H200"))),
    # SGLang's Triton fused MoE: its TP MoE path on Hopper; on Blackwell SGLang runs
    # DeepSeek's fp8 experts through FlashInfer's TensorRT-LLM-gen MoE by default
    # (moe_runner_backend auto -> flashinfer_trtllm on sm100), which this table does not time
    *((hw, system, gpu, "sglang", "0.5.10", "sglang_fused_moe_triton",
       "sglang_triton_fp8_block_moe", "SGLang 0.5.10", "SGLang's Triton fused MoE",
       "laid out there by upstream PR #1371")
      for hw, system, gpu in (("h100_sxm", "h100_sxm", "H100 SXM"), ("h200", "h200_sxm", "H200"))),
    # vLLM's Triton fused MoE (fused_moe.py, block-FP8 w8a8): its MoE path on Hopper for
    # DeepSeek-style block-FP8 experts at ep 1. Decode sizes too (DECODE_LIBRARIES): the
    # kernel's memory-bound time at a few tokens is what a decoding vLLM server waits for
    *((hw, system, gpu, "vllm", "0.14.0", "vllm_fused_moe", "vllm_triton_fp8_block_moe",
       "vLLM 0.14.1.dev1", "vLLM's Triton fused MoE", "the table's own collection")
      for hw, system, gpu in (("h100_sxm", "h100_sxm", "H100 SXM"), ("h200", "h200_sxm", "H200"))),
]
# the libraries whose rows include decode sizes (1-128 tokens, some experts idle): groups
# = the distinct experts the collector's balanced routing hits, min(8 T, 256) (token t goes
# to experts t + 32 j, j < 8), m = the routed copies 8 T over them
DECODE_LIBRARIES = ("vllm_triton_fp8_block_moe",)
DECODE_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128]
# gpt-oss-120b's routed experts, MXFP4 weights with bf16 activations (weight-only), on
# Hopper: TensorRT-LLM runs them through TritonFusedMoE (OpenAI's triton_kernels), the
# backend its AUTO resolution picks for 90 <= sm < 100 (aiconfigurator
# collector/trtllm/collect_moe.py, moe_backend = "triton", citing model_config.py
# @1.3.0rc20). (dse hardware, aiconfigurator system, GPU name in the note, expert
# parallelism of the rows taken): H100's table times this MoE at ep >= 2 only (the 128
# experts of ep 1 are left out there), so its ep 2 rows, one rank's 64 experts
WO_SOURCES = [("h100_sxm", "h100_sxm", "H100 SXM", 2), ("h200", "h200_sxm", "H200", 1)]
WO_LIBRARY = "trtllm_triton_mxfp4_w4a16_moe"
TOKENS = [256 * 2 ** i for i in range(7)]  # 256 ... 16384: every expert active
TP = (1, 2, 4, 8, 16)


def table(checkout: Path, system: str, engine: str, version: str) -> pd.DataFrame:
    path = f"{DATA}/{system}/moe/{engine}/{version}/moe_perf.parquet"
    run = subprocess.run(["git", "-C", str(checkout), "show", f"{COMMIT}:{path}"],
                         capture_output=True)
    if run.returncode != 0 or run.stdout.startswith(b"version https://git-lfs"):
        sys.exit(f"import_aiconfigurator_moe.py: {checkout}: no Parquet file {path} at "
                 f"commit {COMMIT[:10]} (a checkout of tianhaox/aiconfigurator holding that "
                 "commit is needed; upstream stores Git LFS pointers)")
    return pd.read_parquet(io.BytesIO(run.stdout))


def check_weights_read(out: pd.DataFrame, table_path: str) -> None:
    """Refuse block-FP8 rows whose distinct experts' weights (``groups`` x n x k bytes)
    would stream faster than the part's HBM (the hardware preset's
    ``memory_bytes_per_s``): then the collector hit fewer experts than ``groups`` says, as
    SGLang 0.5.14's H100 and H200 tables do for DeepSeek-V3 (its collector routes DeepSeek's
    experts group-limited, 4 of 8 groups, and balanced logits tie the groups, so every
    token keeps the same four: tp 8 at 64-128 tokens in 249-257 us would be 1.41 GB at
    5.5 TB/s on a 4.8 TB/s part). The tables read here (SGLang 0.5.10, vLLM 0.14,
    TensorRT-LLM 1.3.0rc20) stay at or below 88 % of the peak."""
    from dse.config import load_hardware
    peaks = {h: load_hardware(h).memory_bytes_per_s for h in set(out.hardware)}
    for r in out.itertuples():
        peak = peaks[r.hardware]
        rate = float(r.groups) * r.n * r.k / float(r.measured_time_s)
        if rate > peak:
            tokens = round(float(r.m) * float(r.groups) / 8)
            sys.exit(f"import_aiconfigurator_moe.py: {table_path}: {r.hardware} row of "
                     f"{tokens} tokens at n {r.n}: {r.groups} experts' weights in "
                     f"{float(r.measured_time_s) * 1e6:.0f} us would stream "
                     f"{rate / 1e12:.2f} TB/s, above the part's {peak / 1e12:.2f} TB/s: the "
                     "collector hit fewer experts than the balanced routing's min(8 T, E) "
                     "(group-limited routing?); take another version's table")


def rows(checkout: Path, source) -> pd.DataFrame:
    hw, system, gpu, engine, version, kernel, library, eng_name, k_name, pr = source
    d = table(checkout, system, engine, version)
    tokens = TOKENS + (DECODE_TOKENS if library in DECODE_LIBRARIES else [])
    d = d[(d.moe_dtype == "fp8_block") & (d.kernel_source == kernel) & (d.hidden_size == 7168)
          & (d.inter_size == 2048) & (d.num_experts == 256) & (d.topk == 8)
          & (d.moe_ep_size == 1) & (d.distribution == "balanced")
          & d.moe_tp_size.isin(TP) & d.num_tokens.isin(tokens)]
    d = d.groupby(["moe_tp_size", "num_tokens"], as_index=False).latency.min()
    path = f"{DATA}/{system}/moe/{engine}/{version}/moe_perf.parquet"
    src = (f"ai-dynamo/aiconfigurator:{path} (Git LFS upstream; read from the fork "
           f"tianhaox/aiconfigurator@{COMMIT}, {pr})")
    out = []
    for r in d.itertuples():
        tp, t = int(r.moe_tp_size), int(r.num_tokens)
        groups = min(t * 8, 256)
        m, n = t * 8 // groups, 3 * 2048 // tp
        hit = (f"groups = 256 experts (all active from 256 tokens: expected idle 256 x "
               f"(255/256)^{t * 8} < 1e-3)" if t >= 256 else
               f"groups = the distinct experts the collector's balanced routing hits (token "
               f"t to experts t + 32 j, j < 8), min({t} x 8, 256) = {groups}")
        note = (f"NVIDIA aiconfigurator's collected {eng_name} MoE timing on {gpu} (latency "
                f"column, ms -> s): DeepSeek-V3/R1 routed experts (hidden 7168, expert inter "
                f"2048, 256 experts, top-8, balanced routing), moe_tp_size {tp}, ep 1, "
                f"block-scaled FP8 (fp8_block) through {k_name} (kernel_source {kernel}), "
                f"{t} tokens; the whole MoE op entered as one grouped GEMM: {hit}, m = "
                f"tokens x top-k / {'experts' if t >= 256 else 'groups'} = {m}, n = gate + up "
                f"+ down = 3 x 2048 / tp = {n}, k = 7168")
        out.append({"hardware": hw, "dtype": "fp8", "library": library, "m": m, "n": n,
                    "k": 7168, "groups": groups,
                    "measured_time_s": float(f"{r.latency / 1e3:.6g}"),
                    "measured_tflops": None, "measured_gbps": None, "source": src,
                    "notes": note})
    out = pd.DataFrame(out)
    check_weights_read(out, path)
    return out


def wo_rows(checkout: Path, source) -> pd.DataFrame:
    """gpt-oss-120b's MXFP4 experts (hidden 2880, expert inter 2880, 128 experts, top-4,
    balanced routing, tp 1, ``ep`` of the source) at every token count timed, 1-16384:
    decode sizes too, where only some experts are hit. aiconfigurator's balanced routing
    (collector/helper.py ``balanced_logits``) sends token t to experts (t + j ceil(E/k))
    mod E, j < k: T tokens hit min(T k, E) distinct experts, and each rank of ep holds E /
    ep of them and 1 / ep of every token's copies. Each timing is one rank's op entered
    as one grouped GEMM, as dse prices a routed-experts op (``formulas.moe_cost``): groups
    = the rank's distinct experts hit, min(T k, E) / ep, m = its routed copies T k / ep
    over them, n = gate + up + down = 3 x 2880, k = 2880; dtype ``w4a16_mxfp4`` (MXFP4
    weights, bf16 activations and compute)."""
    hw, system, gpu, ep = source
    d = table(checkout, system, "trtllm", "1.3.0rc20")
    d = d[(d.moe_dtype == "w4a16_mxfp4") & (d.kernel_source == "moe_torch_flow")
          & (d.hidden_size == 2880) & (d.inter_size == 2880) & (d.num_experts == 128)
          & (d.topk == 4) & (d.moe_tp_size == 1) & (d.moe_ep_size == ep)
          & (d.distribution == "balanced")]
    d = d.groupby("num_tokens", as_index=False).latency.min()
    path = f"{DATA}/{system}/moe/trtllm/1.3.0rc20/moe_perf.parquet"
    src = (f"ai-dynamo/aiconfigurator:{path} (Git LFS upstream; read from the fork "
           f"tianhaox/aiconfigurator@{COMMIT})")
    out = []
    for r in d.itertuples():
        t = int(r.num_tokens)
        groups = min(t * 4, 128) / ep
        m = t * 4 / ep / groups
        rank = (f"ep {ep}: one rank's {128 // ep} experts, " if ep > 1 else "ep 1, ")
        note = (f"NVIDIA aiconfigurator's collected TensorRT-LLM 1.3.0rc20 MoE timing on {gpu} "
                f"(latency column, ms -> s): gpt-oss-120b routed experts (hidden 2880, expert "
                f"inter 2880, 128 experts, top-4, balanced routing), tp 1, {rank}MXFP4 weights "
                f"with bf16 activations (w4a16_mxfp4) through TensorRT-LLM's TritonFusedMoE "
                f"(kernel_source moe_torch_flow; the Hopper backend of its AUTO resolution, "
                f"OpenAI's triton_kernels), {t} tokens; the op entered as one grouped GEMM "
                f"as dse prices it: groups = the rank's distinct experts hit under the "
                f"collector's balanced routing, min({t} x 4, 128) / {ep} = {groups:g}, m = "
                f"its routed copies {t} x 4 / {ep} over them = {m:.6g}, n = gate + up + down "
                f"= 3 x 2880 = 8640, k = 2880")
        out.append({"hardware": hw, "dtype": "w4a16_mxfp4", "library": WO_LIBRARY,
                    "m": f"{m:.6g}", "n": 8640, "k": 2880,
                    "groups": f"{groups:g}",  # text: the other rows' counts stay whole
                    "measured_time_s": float(f"{r.latency / 1e3:.6g}"),
                    "measured_tflops": None, "measured_gbps": None, "source": src,
                    "notes": note})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkout", type=Path)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    new = pd.concat([rows(args.checkout, s) for s in SOURCES]
                    + [wo_rows(args.checkout, s) for s in WO_SOURCES], ignore_index=True)
    print(new.groupby(["hardware", "library"]).size().to_string())
    if not args.write:
        return 0
    old = pd.read_csv(GEMM_CSV, dtype=str, keep_default_na=False)
    keys = set(zip(new.hardware, new.library))
    new = new.astype(object).where(new.notna(), "").astype(str)
    new["measured_time_s"] = [f"{float(x):.6g}" for x in new.measured_time_s]
    # a (hardware, library) already there is replaced where its first row stood, new
    # ones go last
    parts, done = [], set()
    for h, lib, row in zip(old.hardware, old.library, old.index):
        if (h, lib) not in keys:
            parts.append(old.loc[[row]])
        elif (h, lib) not in done:
            done.add((h, lib))
            parts.append(new[(new.hardware == h) & (new.library == lib)][old.columns])
    parts += [new[(new.hardware == h) & (new.library == lib)][old.columns]
              for h, lib in dict.fromkeys(zip(new.hardware, new.library)) if (h, lib) not in done]
    kept = sum((h, lib) not in keys for h, lib in zip(old.hardware, old.library))
    out = pd.concat(parts, ignore_index=True)
    out.to_csv(GEMM_CSV, index=False, lineterminator="\r\n")
    print(f"wrote {len(new)} rows ({kept} kept) -> {GEMM_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
