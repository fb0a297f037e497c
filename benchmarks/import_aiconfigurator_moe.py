"""Rows of configs/kernels/gemm.csv from NVIDIA aiconfigurator's collected MoE timings: the
fused-MoE kernel each engine runs for DeepSeek's block-FP8 experts by default, per GPU.

    python benchmarks/import_aiconfigurator_moe.py AIC_CHECKOUT [--write]

AIC_CHECKOUT is a git checkout of aiconfigurator whose kernel tables are plain Parquet
(upstream ``ai-dynamo/aiconfigurator`` keeps them in Git LFS; the fork
``tianhaox/aiconfigurator`` at ``COMMIT`` carries the same files as Parquet). For each
(GPU, engine) of ``SOURCES`` it takes DeepSeek-V3/R1's routed experts (hidden 7168, expert
inter 2048, 256 experts, top-8, balanced routing, expert parallelism 1) in block-scaled
FP8 at expert tensor parallelism 1-16 and 256-16384 tokens, and enters each timing as one
grouped GEMM (configs/kernels/README.md, source 7): groups 256, m = tokens x 8 / 256,
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
]
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


def rows(checkout: Path, source) -> pd.DataFrame:
    hw, system, gpu, engine, version, kernel, library, eng_name, k_name, pr = source
    d = table(checkout, system, engine, version)
    d = d[(d.moe_dtype == "fp8_block") & (d.kernel_source == kernel) & (d.hidden_size == 7168)
          & (d.inter_size == 2048) & (d.num_experts == 256) & (d.topk == 8)
          & (d.moe_ep_size == 1) & (d.distribution == "balanced")
          & d.moe_tp_size.isin(TP) & d.num_tokens.isin(TOKENS)]
    d = d.groupby(["moe_tp_size", "num_tokens"], as_index=False).latency.min()
    path = f"{DATA}/{system}/moe/{engine}/{version}/moe_perf.parquet"
    src = (f"ai-dynamo/aiconfigurator:{path} (Git LFS upstream; read from the fork "
           f"tianhaox/aiconfigurator@{COMMIT}, {pr})")
    out = []
    for r in d.itertuples():
        tp, t = int(r.moe_tp_size), int(r.num_tokens)
        m, n = t * 8 // 256, 3 * 2048 // tp
        note = (f"NVIDIA aiconfigurator's collected {eng_name} MoE timing on {gpu} (latency "
                f"column, ms -> s): DeepSeek-V3/R1 routed experts (hidden 7168, expert inter "
                f"2048, 256 experts, top-8, balanced routing), moe_tp_size {tp}, ep 1, "
                f"block-scaled FP8 (fp8_block) through {k_name} (kernel_source {kernel}), "
                f"{t} tokens; the whole MoE op entered as one grouped GEMM: groups = 256 "
                f"experts (all active from 256 tokens: expected idle 256 x (255/256)^{t * 8} "
                f"< 1e-3), m = tokens x top-k / experts = {m}, n = gate + up + down = 3 x "
                f"2048 / tp = {n}, k = 7168")
        out.append({"hardware": hw, "dtype": "fp8", "library": library, "m": m, "n": n,
                    "k": 7168, "groups": 256, "measured_time_s": float(f"{r.latency / 1e3:.6g}"),
                    "measured_tflops": None, "measured_gbps": None, "source": src,
                    "notes": note})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkout", type=Path)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    new = pd.concat([rows(args.checkout, s) for s in SOURCES], ignore_index=True)
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
