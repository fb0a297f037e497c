"""Build ``configs/validation/aic_silicon.csv`` from NVIDIA aiconfigurator's measured
serving corpus (rerun: ``python benchmarks/import_aic_silicon.py SILICON_SAMPLE.csv``).

NVIDIA's aiconfigurator ships ``silicon_sample.csv`` (``aic-core/src/aiconfigurator_core/
systems/silicon_sample.csv``, Apache-2.0): 5,221 end-to-end serving measurements (mean
TTFT and TPOT in ms) of TensorRT-LLM, SGLang and vLLM on H100, H200, B200, B300 and GB200,
"a 2026-04 dump of the internal benchmark DB" (its docs/design/prediction_regression_gate_
design.md), which aiconfigurator's own accuracy tracking predicts. Read here from the fork
``tianhaox/aiconfigurator`` at commit 899034f57e (which carries the upstream file).

This script keeps the aggregated rows (``mode = agg``; the disaggregated ones need the
disaggregated reduction) whose model, hardware and precision map onto dse's presets, and
writes them in ``serving.csv``'s columns. The mapping, row by row:

- hardware: ``h100_sxm`` -> h100_sxm, ``h200_sxm`` -> h200, ``b200_sxm`` -> b200,
  ``b300_sxm`` -> b300; left out: the 77 GB200 rows (tensor-parallel sizes 12-72 with the
  MoE over all of them, rack deployments whose attention-DP and expert layout the
  corpus's columns do not carry, and Qwen3-32B rows at 133 ms per output token, 5x the same
  model on one H100) and any row over more than 8 devices (the corpus gives a tp size but
  no node count or attention-DP split for them);
- model: the checkpoint's architecture (DeepSeek-R1 and its NVFP4 release -> deepseek_r1,
  DeepSeek-V3 -> deepseek_v3, DeepSeek-V3.1 -> deepseek_v3_1, Llama-3.1-70B ->
  llama3_70b, Llama-3.1-8B(-Instruct, -FP8) -> llama3_8b, Qwen3-32B(-NVFP4) -> qwen3_32b,
  Qwen3-235B-A22B-FP8 -> qwen3_235b_a22b, Qwen3.5-397B-A17B -> qwen3_5_397b_a17b,
  MiniMax-M2.5 -> minimax_m2_5, Kimi-K2.5 -> kimi_k2_5, GLM-5 -> glm5, gpt-oss-120b ->
  gpt_oss_120b);
- precision (``gemm_quant_mode`` / ``moe_quant_mode``; weight, activation and KV precision
  and recipe): fp8 or fp8_block -> fp8 weights, bf16 activations, recipe
  ``fp8_bf16_collectives`` (fp8 GEMMs but the LM head, bf16 collectives), fp8 KV;
  nvfp4 -> MoE models ``nvfp4_experts`` (ModelOpt's MLP-only W4A4), dense models
  ``nvfp4_linear`` (every linear layer W4A4 but the LM head), fp8 KV; gpt-oss (labelled
  nvfp4 or fp8; its checkpoint ships MXFP4 experts and bf16 attention) ->
  ``mxfp4_experts_bf16_attention``, bf16 KV; int4_wo (Kimi-K2.5's INT4 experts) ->
  ``int4_experts``, bf16 KV; none -> bf16 throughout. The fp8 KV cache of the quantized
  checkpoints is aiconfigurator's own reading of them
  (``sdk/models/helpers.py``: fp8 KV and fp8 attention for fp8, fp8_block and nvfp4);
- parallelism: ``tp_size`` -> tp, ``attention_dp_size`` -> attention_dp, ``moe_ep_size``
  -> ep (``moe_tp_size`` x ``moe_ep_size`` must equal tp x attention_dp), ``pp_size`` ->
  pp; ``batch_size`` x ``attention_dp_size`` (the client's concurrency: the corpus's
  ``batch_size`` is per attention-DP rank, aiconfigurator's ``concurrency = batch_size *
  attention_dp_size`` in ``sdk/backends/base_backend.py``, and the 70 attention-DP rows'
  ``silicon_concurrency`` in their data source agrees; dse's ``batch`` is the replica's)
  -> batch;
- engine: trtllm -> ``trtllm``, sglang -> ``sglang``, vllm before 0.14 -> ``vllm``, from
  0.14 (async scheduling on by default) and nightlies -> ``vllm_async``;
- protocol: fixed ``isl`` / ``osl``; the benchmark client is aiconfigurator's own (its
  generator's ``bench_run.sh.j2``: aiperf with ``--concurrency c``, ``--warmup-request-count
  2c``, ``ignore_eos``, streaming), so the rows are compared with the steady state
  (``num_prompts`` empty); token budget, memory share and admission interval: the engine's
  defaults (the corpus does not record the launch flags).

Rows that do not map (another model, pipeline-parallel MoE layouts dse does not express)
are counted and left out. Every kept row cites its corpus row id and data source.
"""
import argparse
import csv
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "configs" / "validation" / "aic_silicon.csv"
CORPUS = ("NVIDIA aiconfigurator silicon_sample.csv (aic-core/src/aiconfigurator_core/systems/"
          "silicon_sample.csv, fork tianhaox/aiconfigurator at 899034f57e, Apache-2.0)")

HARDWARE = {"h100_sxm": "h100_sxm", "h200_sxm": "h200", "b200_sxm": "b200",
            "b300_sxm": "b300"}
MODELS = {
    "deepseek-ai/DeepSeek-R1": "deepseek_r1", "nvidia/DeepSeek-R1-NVFP4": "deepseek_r1",
    "deepseek-ai/DeepSeek-V3": "deepseek_v3", "nvidia/DeepSeek-V3.1-NVFP4": "deepseek_v3_1",
    "meta-llama/Llama-3.1-70B": "llama3_70b", "meta-llama/Llama-3.1-8B-Instruct": "llama3_8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama3_8b", "Qwen/Qwen3-32B": "qwen3_32b",
    "nvidia/Qwen3-32B-NVFP4": "qwen3_32b", "Qwen/Qwen3-235B-A22B-FP8": "qwen3_235b_a22b",
    "Qwen/Qwen3.5-397B-A17B": "qwen3_5_397b_a17b", "MiniMaxAI/MiniMax-M2.5": "minimax_m2_5",
    "moonshotai/Kimi-K2.5": "kimi_k2_5", "zhipuai/GLM-5": "glm5",
    "openai/gpt-oss-120b": "gpt_oss_120b",
}
DENSE = {"llama3_70b", "llama3_8b", "qwen3_32b"}
COLUMNS = ["hardware", "model", "weight_dtype", "act_dtype", "kv_dtype", "quant", "batch",
           "input_tokens", "output_tokens", "tp", "pp", "ep", "attention_dp",
           "measured_ttft_s", "measured_tpot_s", "serving", "engine", "max_batched_tokens",
           "admission_interval", "memory_fraction", "num_prompts", "length_ratio", "source",
           "notes"]


def precision(model: str, gemm: str, moe: str):
    """(weight, act, kv, quant recipe) of a corpus row, or None where it does not map."""
    if model == "gpt_oss_120b":
        return "bf16", "same", "bf16", "mxfp4_experts_bf16_attention"
    if gemm in ("fp8", "fp8_block") or moe in ("fp8", "fp8_block"):
        return "fp8", "bf16", "fp8", "fp8_bf16_collectives"
    if gemm == "nvfp4":
        return "bf16", "same", "fp8", "nvfp4_linear" if model in DENSE else "nvfp4_experts"
    if moe == "int4_wo":
        return "bf16", "same", "bf16", "int4_experts"
    if not gemm and not moe:
        return "bf16", "same", "bf16", ""
    return None


def engine(backend: str, version: str):
    """dse's engine preset for a corpus backend and version, or None."""
    if backend in ("trtllm", "sglang"):
        return backend
    if backend != "vllm":
        return None
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return "vllm_async"  # nightly builds of 2026
    return "vllm_async" if (major, minor) >= (0, 14) else "vllm"


def convert(row: dict):
    """A serving.csv row of one corpus row, or (None, why)."""
    if row["mode"] != "agg":
        return None, "disaggregated"
    hw = HARDWARE.get(row["system"])
    model = MODELS.get(row["model_path"])
    if hw is None or model is None:
        return None, "hardware or model without a preset"
    prec = precision(model, row["gemm_quant_mode"], row["moe_quant_mode"])
    eng = engine(row["backend"], row["backend_version"])
    if prec is None or eng is None:
        return None, "precision or engine"
    tp, pp, adp, moe_tp, moe_ep = (max(int(float(row[c] or 1)), 1) for c in (
        "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size"))
    if tp * adp * pp > 8:
        return None, "more than 8 devices"
    if model in DENSE:  # no experts: the corpus leaves the MoE sizes 0 or 1
        moe_tp, moe_ep = tp * adp, 1
    elif moe_tp * moe_ep != tp * adp:
        return None, "MoE layout"
    ttft, tpot = float(row["silicon_ttft_ms"]), float(row["silicon_tpot_ms"])
    if not (math.isfinite(ttft) and math.isfinite(tpot) and ttft > 0 and tpot > 0):
        return None, "no measurement"
    w, a, k, quant = prec
    out = dict(hardware=hw, model=model, weight_dtype=w, act_dtype=a, kv_dtype=k,
               quant=quant, batch=int(row["batch_size"]) * adp, input_tokens=int(row["isl"]),
               output_tokens=int(row["osl"]), tp=tp, pp=pp, ep=moe_ep, attention_dp=adp,
               measured_ttft_s=f"{ttft / 1e3:.6g}", measured_tpot_s=f"{tpot / 1e3:.6g}",
               serving="continuous", engine=eng, max_batched_tokens="",
               admission_interval="", memory_fraction="", num_prompts="", length_ratio="",
               source=f"{CORPUS}, row id {row['id']}",
               notes=(f"{row['backend']} {row['backend_version']}; {row['model_path']} "
                      f"{row['precision']} (gemm {row['gemm_quant_mode'] or 'bf16'}, moe "
                      f"{row['moe_quant_mode'] or 'bf16'}); moe_tp {moe_tp} moe_ep {moe_ep}; "
                      f"{row['silicon_data_source']}"))
    return out, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", help="silicon_sample.csv from aiconfigurator")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    try:
        with open(args.corpus, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        ap.error(f"{args.corpus}: cannot read the corpus ({err.strerror})")
    missing = sorted({"id", "mode", "system", "model_path", "backend", "silicon_ttft_ms"}
                     - set(rows[0] if rows else ()))
    if missing:
        ap.error(f"{args.corpus}: not aiconfigurator's silicon_sample.csv (no column "
                 f"{', '.join(missing)})")
    kept, skipped = [], {}
    for row in rows:
        out, why = convert(row)
        if out is None:
            skipped[why] = skipped.get(why, 0) + 1
        else:
            kept.append(out)
    kept.sort(key=lambda r: (r["hardware"], r["model"], r["engine"], r["quant"], r["tp"],
                             r["attention_dp"], r["ep"], r["input_tokens"],
                             r["output_tokens"], r["batch"], r["source"]))
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
    print(f"{len(kept)} rows -> {args.out}; left out: "
          + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
