"""One continuous-serving point's per-iteration physics as a Python callable for the
discrete-event simulator (``dse.kernels.simulate``): the same op costs the kernel's closed
form uses (``kernels/serving.iteration_seconds``), applied to the exact composition of one
simulated iteration. The tests compare the closed form's steady state with the simulator
stepping this physics; ``dse validate`` prices a measured benchmark's own run (a finite
run whose clients start together, :func:`dse.validate.protocol_run`) with it.

    summary, iteration_time, engine, slots = point(hardware="h100_sxm", model=..., ...)
    simulate(iteration_time, batch, input_tokens, output_tokens, budget, ...)
"""
import numpy as np

from .config import parse_sweep
from .evaluate import evaluate, kernel_inputs, memory_and_validity
from .grid import coords
from .kernels import layout as L
from .kernels import serving as S

# composition entries a context-parallel device computes 1/cp of (serving.composition)
CP_SPLIT = [S.C_CTX, S.C_CTXW, S.C_QCTX, S.C_QCTXW, S.C_PRE, S.C_PAIRS, S.C_PAIRSW, S.C_READ,
            S.C_READW]


def point(base_dir=None, source="<api>", **grid):
    """(summary of one continuous point from dse.evaluate, iteration_time callable, engine,
    slots) of the one-point ``grid`` (axis -> value); preset paths resolve against
    ``base_dir`` first, errors name ``source``."""
    spec = parse_sweep({"grid": {"serving": "continuous", **grid}}, source=source,
                       base_dir=base_dir)
    mem = memory_and_validity(spec, coords(spec))
    inp = kernel_inputs(spec, mem["slots"])
    ds = evaluate(spec)
    v = dict(zip(L.KERNEL_AXES, inp["axes"][:, 0]))
    w, a, k = (int(v[d]) for d in ("weight_dtype", "act_dtype", "kv_dtype"))
    a = w if a < 0 else a
    k = a if k < 0 else k
    quant = inp["quants"][int(v["quant"])]
    t, p, e, adp, cp = (float(v[d]) for d in ("tp", "pp", "ep", "attention_dp", "cp"))
    progs, n_ops = inp["programs"][0], inp["n_ops"][0]
    out = {}
    hw_row = inp["engine_hw"][0, 0]  # the hardware with the engine's own kernel curves
    for ph in (L.PREFILL, L.DECODE):
        u = np.empty((progs.shape[1], S.N_UNITS))
        S.unit_costs(progs[ph], n_ops[ph], t, p, e, adp, w, a, k, quant, L.DTYPE_BYTES,
                     L.DTYPE_BITS, v["expert_imbalance"], v["spec_tokens"], u)
        vt = np.empty((progs.shape[1], S.N_VTIMES))
        S.unit_times(u, n_ops[ph], inp["rates"][0], hw_row, vt)
        out[ph] = vt
    partner = np.empty(progs.shape[1], dtype=np.int64)
    shared = np.empty(progs.shape[1], dtype=np.bool_)
    S.match_ops(progs[L.DECODE], n_ops[L.DECODE], progs[L.PREFILL], n_ops[L.PREFILL],
                partner, shared)

    scratch = np.empty(2 * progs.shape[1])

    q = float(v["spec_tokens"]) + 1.0  # tokens a decoding request verifies (speculative)

    eager_s = spec.engines[0].eager_op_s
    eager_decode_s = eager_s * (not spec.engines[0].decode_cuda_graphs)

    def iteration_time(decode_contexts, prefill_chunks, sampled):
        d = float(len(decode_contexts))
        ctx = float(decode_contexts.sum())
        pre = read = 0
        pairs = 0.0
        for start, n in prefill_chunks:
            pre += n
            read += start
            # a chunk of n tokens after ``start`` attends its context and itself causally
            pairs += n * start + n * (n + 1) / 2
        comp = np.zeros(S.N_COMP)
        comp[S.C_DEC] = d
        comp[S.C_QDEC] = d * q
        comp[S.C_CTX] = comp[S.C_CTXW] = ctx
        # q queries per request: each attends the context, the later ones the earlier ones
        comp[S.C_QCTX] = comp[S.C_QCTXW] = q * ctx + d * q * (q - 1) / 2
        comp[S.C_PRE] = pre
        comp[S.C_PROMPTS] = sampled - d
        comp[S.C_PAIRS] = comp[S.C_PAIRSW] = pairs
        comp[S.C_READ] = comp[S.C_READW] = read
        comp[S.C_TOUCHED] = d + len(prefill_chunks)
        comp[S.C_SAMPLED] = float(sampled) + d * (q - 1)  # every verified token scored
        # as the closed form (serving.composition): the iteration's requests spread evenly
        # over its micro-batches (pipeline stages in flight) and attention-DP groups; a
        # context-parallel device computes 1/cp of the prompt work and contexts (a
        # division by 1 is skipped: it changes nothing)
        micro = max(min(p, d + len(prefill_chunks)), 1.0)
        if micro * adp != 1.0:
            comp /= micro * adp
        if cp != 1.0:
            comp[CP_SPLIT] /= cp
        return S.iteration_seconds(out[L.DECODE], n_ops[L.DECODE], progs[L.DECODE],
                                   out[L.PREFILL], n_ops[L.PREFILL], progs[L.PREFILL],
                                   partner, shared, comp, micro, 1.0, 1.0, 1.0, 1.0, t, p,
                                   e, adp, np.zeros(3), scratch, hw_row, eager_s,
                                   eager_decode_s)

    summary = {n: float(ds[n].values.ravel()[0]) for n in ("ttft_s", "tpot_s")}
    slots = float(mem["slots"][1].ravel()[0])
    return summary, iteration_time, spec.engines[0], slots
