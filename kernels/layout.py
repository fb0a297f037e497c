"""Layout of the dense tables the kernels read: column indices and integer codes.

The compiler (``dse.compile``) writes these tables and the kernels read them; both sides
import the constants from here so that a column never means two things.
"""
import numpy as np

# --- precisions ------------------------------------------------------------------------
DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4")
DTYPE_INDEX = {name: i for i, name in enumerate(DTYPES)}
FP32 = 0  # DTYPE_INDEX["fp32"]: the vector units' rate (weight dequantization)
BF16 = 1  # DTYPE_INDEX["bf16"]: the precision GEMMs write their outputs in
# fp4 is NVFP4: 4-bit values plus one fp8 scale per 16-element block (NVIDIA, "Introducing
# NVFP4", 2025) -> 0.5 + 1/16 bytes. int4 is weight-only with one fp16 scale per group of
# 128 (AWQ/GPTQ's usual group size) -> 0.5 + 2/128 bytes.
DTYPE_BYTES = np.array([4.0, 2.0, 2.0, 1.0, 1.0, 0.5 + 1.0 / 16.0, 0.5 + 2.0 / 128.0])
DTYPE_BITS = np.array([32, 16, 16, 8, 8, 4, 4], dtype=np.int64)
# Where a chip lacks a precision, compute runs at the next wider one it has.
DTYPE_FALLBACK = {"fp32": None, "bf16": "fp32", "fp16": "bf16", "fp8": "fp16",
                  "int8": "fp16", "fp4": "fp8", "int4": "int8"}

# --- hardware table [n_hw, HW_FIELDS] --------------------------------------------------
HW_MEMORY_BYTES_PER_S = 0
HW_SCALEUP_BYTES_PER_S = 1
HW_SCALEUP_LATENCY_S = 2
HW_SCALEUP_DOMAIN = 3
HW_SCALEOUT_BYTES_PER_S = 4
HW_SCALEOUT_LATENCY_S = 5
HW_COMPUTE_EFF = 6
HW_MEMORY_EFF = 7
HW_NETWORK_EFF = 8
HW_KERNEL_LATENCY_S = 9    # fixed seconds every compute/memory kernel takes beyond its work
HW_HOST_BYTES_PER_S = 10   # host-to-device link (offload; 0: no host tier)
# Size-dependent efficiency curves (kernels/efficiency.py), one block of CURVE_WIDTH
# columns per curve of CURVES from HW_CURVES on: the number of knots (0: no curve, the
# scalar efficiency above applies), CURVE_KNOTS log10(work) values, CURVE_KNOTS
# efficiencies, CURVE_KNOTS work values (the kernel brackets a work by them and takes a
# logarithm only between two knots); a curve with fewer knots repeats its last one.
# The routed experts' grouped GEMM has curves of its own where a preset carries them
# (moe_*: a grouped kernel over thin per-device expert slices reaches a different share
# of peak than a dense GEMM of the same work); without them it takes the GEMM curves.
# Weight-only quantized experts (weights narrower than the activations they compute with,
# as gpt-oss's MXFP4 experts with bf16 activations) run kernels of their own that
# dequantize in the GEMM's loop: moe_wo_* where a preset carries them, fitted to the fused
# kernel's whole time (its dequantization included, which is then not priced apart).
CURVES = ("gemm_compute", "gemm_memory", "attention_compute", "attention_memory",
          "collective_network", "moe_compute", "moe_memory", "moe_wo_compute",
          "moe_wo_memory")
CURVE_GEMM_COMPUTE, CURVE_GEMM_MEMORY, CURVE_ATTENTION_COMPUTE, CURVE_ATTENTION_MEMORY, \
    CURVE_NETWORK, CURVE_MOE_COMPUTE, CURVE_MOE_MEMORY, CURVE_MOE_WO_COMPUTE, \
    CURVE_MOE_WO_MEMORY = range(len(CURVES))
CURVE_KNOTS = 8
CURVE_WIDTH = 1 + 3 * CURVE_KNOTS
HW_CURVES = 11
HW_FIELDS = HW_CURVES + len(CURVES) * CURVE_WIDTH
# peak FLOP/s per precision live in a second table rates[n_hw, len(DTYPES)]

# --- operator programs [n_model, 2 phases, max_ops, OP_FIELDS] ---------------------------
PREFILL = 0
DECODE = 1

OP_KIND = 0
OP_SCOPE = 1      # SCOPE_* : how often the op runs per forward pass
OP_TOKENS = 2     # TOKENS_* : which tokens the op sees
OP_GROUP = 3      # GROUP_* : the device group of a collective
OP_WHEN = 4       # WHEN_* : ops that exist only for some expert parallelism
OP_CDT = 5        # CDT_* : which precision the op computes in
OP_LAYERS = 6     # SCOPE_LAYER ops: how many of the model's layers contain the op
OP_SPAN = 7       # SPAN_* : which devices and tokens the op spans under attention DP
OP_P0 = 8         # kind-specific parameters P0..P7 (see kernels/formulas.py)
OP_N_PARAMS = 8
OP_CLASS = OP_P0 + OP_N_PARAMS  # QC_* : the op's precision class (quant recipes)
OP_DRAFT = OP_CLASS + 1   # DRAFT_* : a speculative-decoding draft op (MTP module)
OP_FIELDS = OP_DRAFT + 1

# kinds
GEMM = 0
ATTENTION = 1
NORM = 2
EMBEDDING = 3
MOE = 4
ALLREDUCE = 5
ALLTOALL = 6
P2P = 7
ALLGATHER = 8
SSM = 9
REDUCESCATTER = 10
ELEMENTWISE = 11    # a small memory-bound kernel: RoPE, activation, MoE routing, sampling
LORA = 12           # LoRA adapters of a layer's projections (shrink and expand GEMMs)
OP_KIND_NAMES = ("gemm", "attention", "norm", "embedding", "moe_experts", "all_reduce",
                 "all_to_all", "p2p", "all_gather", "ssm_scan", "reduce_scatter",
                 "elementwise", "lora")

SCOPE_LAYER = 0     # once in each of OP_LAYERS layers
SCOPE_ONCE = 1      # once per forward pass (embedding, final norm, LM head)
SCOPE_BOUNDARY = 2  # once per pipeline-stage boundary (pp - 1 times)

TOKENS_ALL = 0      # every token of the phase
TOKENS_LAST = 1     # one token per sequence (LM head: only the last position is sampled)

GROUP_NONE = 0
GROUP_TP = 1
GROUP_EP = 2
GROUP_TP_OVER_EP = 3
GROUP_PP = 4
GROUP_CP = 5        # the cp devices sharing one sequence's context (context parallelism)

SPAN_ATTENTION_GROUP = 0  # one attention-DP group: its tp devices and its sequences
SPAN_MOE = 1              # MoE layers: all tp * attention_dp devices and all sequences

# Speculative decoding (the spec_tokens axis, gamma draft tokens per step): the target's own
# decode ops verify gamma + 1 tokens per sequence in one pass; a draft op runs gamma times per
# decode step over one token per sequence (DRAFT_DECODE), or once over the prompt in prefill
# (DRAFT_PREFILL: the draft's KV cache); both only when gamma > 0.
DRAFT_NONE = 0
DRAFT_DECODE = 1
DRAFT_PREFILL = 2

# MoE communication (``compile._ffn_ops``): tokens reach experts on other devices by
# all-to-all only where the experts are spread over several attention groups (ep > 1 and
# attention_dp > 1); within one attention group every device already holds every token, so
# each runs its experts on them and the partial outputs are all-reduced, as under tp
WHEN_ALWAYS = 0
WHEN_EXCHANGE = 1   # only when ep > 1 and attention_dp > 1
WHEN_IN_GROUP = 2   # only otherwise (ep == 1 or attention_dp == 1)

CDT_GEMM = 0        # wider of weight and activation precision
CDT_ATTENTION = 1   # wider of activation and KV-cache precision
CDT_ACT = 2         # activation precision
# an activation quantization kernel (ops.quantize): op_precisions hands it the class's
# activation precision in the weight slot and the grid's (the residual stream's) as its
# activation, so formulas.op_cost prices the conversion only where the class is narrower
CDT_QUANT = 3
# attention over freshly projected heads (MLA prefill: K and V decompressed by kv_b_proj, Q
# from q_b_proj): its inputs are GEMM outputs, which engines write in 16 bits whatever the
# GEMMs' input precision, and the MLA prefill kernels run in bf16 (FlashAttention-3 and
# FlashInfer in SGLang and vLLM, TensorRT-LLM's context MLA; NVIDIA aiconfigurator's
# context-MLA tables time bf16 only): 16-bit compute, or the activation's where wider
CDT_FRESH = 4

# --- precision classes and the quant recipe table [n_quant, QUANT_FIELDS] -----------------
# Each op belongs to one class (OP_CLASS); a recipe (dse.quant, configs/quant/) names the
# weight and activation precision of some classes. A class a recipe leaves out, and every
# op of class QC_OTHER (norms, small elementwise kernels, the MoE router), takes the grid's
# weight_dtype / act_dtype. The KV-cache precision is one column for the whole recipe.
QUANT_CLASSES = ("other", "attention", "experts", "shared_experts", "dense_ffn", "lm_head",
                 "collectives")
QC_OTHER, QC_ATTENTION, QC_EXPERTS, QC_SHARED, QC_DENSE, QC_LM_HEAD, QC_COLLECTIVES = range(
    len(QUANT_CLASSES))
# columns: class c's weight precision at 2c, its activation (collectives: payload)
# precision at 2c + 1, then the KV cache's; DTYPE_INDEX codes, -1: the grid's
Q_KV = 2 * len(QUANT_CLASSES)
QUANT_FIELDS = Q_KV + 1

# GEMM split modes (parameter P2)
SPLIT_NONE = 0
SPLIT_COLUMNS = 1   # N / tp
SPLIT_ROWS = 2      # K / tp
SPLIT_KV = 3        # N / min(tp, kv_heads): KV heads are replicated once tp exceeds them
SPLIT_QKV = 4       # fused Q and K/V projection: P1 / tp + P5 / min(tp, kv_heads)
SPLIT_EXPERTS = 5   # ELEMENTWISE over the routed copies of the tokens: per ep group

# --- the grid the kernel walks -----------------------------------------------------------
# Below hardware and model, the axes the kernel decodes from a flat structure index, slowest
# first (``dse.axes`` registers them; ``dse.grid`` checks at import that the registry's
# kernel axes are exactly these). Values arrive as one float64 table [len(KERNEL_AXES),
# longest axis] (precisions as DTYPE_INDEX codes, -1 for "same"; presets such as the
# engine and the quant recipe as row indices into their tables) with each axis' length.
KERNEL_AXES = ("serving", "engine", "weight_dtype", "act_dtype", "kv_dtype", "quant", "tp",
               "pp", "ep", "attention_dp", "max_batched_tokens", "admission_interval",
               "batch", "input_tokens",
               "prefix_cached_fraction", "expert_imbalance", "spec_tokens", "acceptance_rate",
               "beams", "lora_rank", "lora_adapters", "offload", "cp", "draft_model",
               "memory_fraction")
(K_SERVING, K_ENGINE, K_WEIGHT, K_ACT, K_KV, K_QUANT, K_TP, K_PP, K_EP, K_ADP, K_BUDGET,
 K_ADMIT, K_BATCH, K_INPUT, K_PREFIX, K_IMBALANCE, K_GAMMA, K_ALPHA, K_BEAMS, K_LORA_RANK,
 K_LORA_ADAPTERS, K_OFFLOAD, K_CP, K_DRAFT, K_MEMORY_FRACTION) = range(len(KERNEL_AXES))
# (memory_fraction reaches the kernel only through the slots: dse.evaluate.serving_memory
# turns it into the requests the KV cache admits)
# The programs table holds one program per (model, draft_model) pair: index
# model * len(draft_model) + draft (dse.compile.compile_models).
SERVING_STATIC = 0      # ``serving`` codes: the index in dse.axes.SERVING
SERVING_CONTINUOUS = 1
# ``offload`` codes (the index in dse.axes.OFFLOAD): what a configuration that does not fit
# in device memory spills to the host tier. The kernel reads no code: the bytes each pass
# streams over the host link arrive per point (``host``, dse/offload.py).
OFFLOAD_NONE, OFFLOAD_KV, OFFLOAD_WEIGHTS = range(3)
# The hardware what-if scales, innermost in the outputs, as a second such table.
WHAT_IF_AXES = ("compute_scale", "memory_bandwidth_scale", "scaleup_bandwidth_scale",
                "scaleout_bandwidth_scale", "memory_capacity_scale")
W_COMPUTE, W_MEMORY, W_SCALEUP, W_SCALEOUT, W_CAPACITY = range(len(WHAT_IF_AXES))

# --- engine table [n_engine, ENGINE_FIELDS] (dse.engines.Engine) ----------------------------
EN_REQUEST_OVERHEAD_S = 0
EN_ITERATION_OVERHEAD_S = 1
EN_CHUNKED = 2          # 1: prompts split into chunks within the token budget
EN_MIXED = 3            # 1: prefill chunks share iterations with decode tokens
EN_MAX_BATCHED_TOKENS = 4  # default token budget per iteration (0: none)
EN_EAGER_OP_S = 5       # host seconds per operator launch of an eager (ungraphed) iteration
EN_ADMISSION_INTERVAL = 6  # default decode iterations between admissions of new requests
EN_EAGER_DECODE = 7     # 1: decode-only iterations run eagerly too (no CUDA graphs)
EN_PER_RANK = 8         # 1: the token budget and running cap hold per attention-DP rank
EN_OVERLAP = 9          # 1: overlap scheduling (the next batch is formed while one runs)
ENGINE_FIELDS = 10

# --- outputs ---------------------------------------------------------------------------
BOUND_NAMES = ("compute", "memory", "network", "host_link")
BOUND_HOST = 3  # offload: the host link's streaming outlasts the device's work

# --- objectives of the reduction kernel (dse.objectives: metric names and senses) --------
# codes of the per-configuration metrics kernels/objectives.py computes and optimizes
(OBJ_TOKENS_PER_DEVICE, OBJ_TOKENS_PER_USER, OBJ_THROUGHPUT, OBJ_REQUESTS, OBJ_COST,
 OBJ_TTFT, OBJ_TPOT, OBJ_E2E, OBJ_DEVICES, OBJ_ENERGY) = range(10)
