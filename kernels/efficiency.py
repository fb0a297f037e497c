"""Size-dependent efficiency: the share of peak a kernel reaches as a function of its size.

Three scalars per chip (compute, memory and network efficiency) cannot fit both a skinny
decode GEMM and a large prefill GEMM: measured kernels reach a share of peak that grows
with their work (``configs/kernels/``: a DeepGEMM FP8 GEMM of 15 MB weights streams at
~50 % of HBM bandwidth, one of 117 MB at ~80 %; NCCL's bus bandwidth grows by orders of
magnitude from 1 KB to 1 GB messages). A hardware preset may therefore carry curves, per
operator class (``layout.CURVES``):

  gemm_compute / gemm_memory            GEMMs (and MoE expert GEMMs without moe_* curves)
  moe_compute / moe_memory              the routed experts' grouped GEMM computing in 8
                                        bits or fewer, where a preset carries them (else
                                        the GEMM curves)
  moe_wo_compute / moe_wo_memory        weight-only quantized routed experts (weights
                                        narrower than their activations: MXFP4 weights,
                                        bf16 compute), where a preset carries them: the
                                        fused kernel's whole time, its dequantization
                                        included (else the curves above)
  attention_compute / attention_memory  attention kernels
  collective_network                    all-reduce, all-gather, reduce-scatter, all-to-all,
                                        pipeline sends

Each curve gives the efficiency at a few knots of the kernel's *work* (FLOPs for a
compute curve, bytes moved for a memory curve, the message bytes per device for a
collective), linear in log10(work) between knots and constant beyond the first and last
knot. The op's roofline time then uses the curve's efficiency at its work instead of the
preset's scalar; the kernel latency stays on top (``dse calibrate --curves`` fits the
curves on top of the fitted latency, so the two do not count the same loss twice). Ops of
other kinds (norms, embeddings, elementwise kernels, the SSM scan) and presets without a
curve keep the scalar.

Work is the op's per-device work in one run: a decode attention op's work grows with the
context, and its efficiency is taken at the mean context it sees (the static decode's
mean over its steps, a continuous iteration's mean context), one approximation stated in
README "Semantics".
"""
import math

from numba import njit

from .layout import (ALLGATHER, ALLREDUCE, ALLTOALL, ATTENTION, CURVE_ATTENTION_COMPUTE,
                     CURVE_ATTENTION_MEMORY, CURVE_GEMM_COMPUTE, CURVE_GEMM_MEMORY,
                     CURVE_KNOTS, CURVE_MOE_COMPUTE, CURVE_MOE_MEMORY, CURVE_MOE_WO_COMPUTE,
                     CURVE_MOE_WO_MEMORY, CURVE_NETWORK, CURVE_WIDTH, DTYPE_BITS, GEMM,
                     HW_CURVES, MOE, P2P, REDUCESCATTER)


@njit(cache=True)
def op_curves(kind, hw_h, cdt, weight_only=False):
    """(compute, memory, network) curve codes of an op kind computing in precision ``cdt``
    (a ``layout.DTYPES`` index) on hardware row ``hw_h``; -1 where the scalar applies. The
    routed experts take the moe_* curves where the row carries them (each side on its own)
    and they compute in 8 bits or fewer: the curves describe the quantized grouped
    kernels (block-FP8 MoE reaches far less of its peak than a dense GEMM of the same
    work, a 16-bit MoE about the dense share: configs/kernels/README.md); otherwise, and
    without them, the GEMM curves. ``weight_only`` experts (weights narrower than the
    activations) take the moe_wo_* curves where the row carries both (see
    :func:`wo_curves`)."""
    if kind == MOE:
        if weight_only and wo_curves(hw_h):
            return CURVE_MOE_WO_COMPUTE, CURVE_MOE_WO_MEMORY, -1
        low = DTYPE_BITS[cdt] <= 8
        cc = (CURVE_MOE_COMPUTE if low and has_curve(hw_h, CURVE_MOE_COMPUTE)
              else CURVE_GEMM_COMPUTE)
        cm = (CURVE_MOE_MEMORY if low and has_curve(hw_h, CURVE_MOE_MEMORY)
              else CURVE_GEMM_MEMORY)
        return cc, cm, -1
    if kind == GEMM:
        return CURVE_GEMM_COMPUTE, CURVE_GEMM_MEMORY, -1
    if kind == ATTENTION:
        return CURVE_ATTENTION_COMPUTE, CURVE_ATTENTION_MEMORY, -1
    if (kind == ALLREDUCE or kind == ALLGATHER or kind == REDUCESCATTER or kind == ALLTOALL
            or kind == P2P):
        return -1, -1, CURVE_NETWORK
    return -1, -1, -1


@njit(cache=True)
def wo_curves(hw_h):
    """Whether hardware row ``hw_h`` prices weight-only quantized routed experts with
    curves of their own (moe_wo_compute and moe_wo_memory both): fitted to the fused
    kernels' whole times, so the op's dequantization is not added on top."""
    return has_curve(hw_h, CURVE_MOE_WO_COMPUTE) and has_curve(hw_h, CURVE_MOE_WO_MEMORY)


@njit(cache=True)
def curve_efficiency(hw_h, curve, work):
    """Efficiency of curve ``curve`` of hardware row ``hw_h`` at ``work`` (> 0); -1.0 when
    the row has no such curve."""
    if curve < 0:
        return -1.0
    col = HW_CURVES + curve * CURVE_WIDTH
    n = int(hw_h[col])
    if n == 0:
        return -1.0
    xs = col + 1
    ys = col + 1 + CURVE_KNOTS
    ws = col + 1 + 2 * CURVE_KNOTS
    # flat beyond the end knots, found without a logarithm
    if work <= hw_h[ws]:
        return hw_h[ys]
    if work >= hw_h[ws + n - 1]:
        return hw_h[ys + n - 1]
    j = 1
    while hw_h[ws + j] < work:
        j += 1
    x0 = hw_h[xs + j - 1]
    y0 = hw_h[ys + j - 1]
    return y0 + (hw_h[ys + j] - y0) * (math.log10(work) - x0) / (hw_h[xs + j] - x0)


@njit(cache=True)
def has_curve(hw_h, curve):
    """Whether hardware row ``hw_h`` carries curve ``curve`` (-1: never)."""
    return curve >= 0 and hw_h[HW_CURVES + curve * CURVE_WIDTH] > 0.0


@njit(cache=True)
def time_factor(hw_h, curve, work, scalar):
    """The multiplier that turns seconds priced at the ``scalar`` efficiency into seconds
    at the curve's efficiency for ``work``: scalar / curve(work); exactly 1.0 without a
    curve or without work."""
    if curve < 0 or work <= 0.0:
        return 1.0
    eff = curve_efficiency(hw_h, curve, work)
    if eff <= 0.0:
        return 1.0
    return scalar / eff
