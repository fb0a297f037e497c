"""Collective communication time: the algorithm an engine would pick for the message size,
and hierarchical collectives for groups that span several scale-up domains.

``op_cost`` (``kernels/formulas.py``) gives a collective's message ``msg`` [bytes] per
device and its group of ``n`` devices spread over ``span`` consecutive devices; this module
turns them into seconds on one hardware. The numpy reference restates it
(``kernels/reference.py``, ``_collective``).

Within one scale-up domain (``span <= domain``; NVSwitch, a fully connected xGMI / ICI
mesh) every device reaches every other directly, so engines use *direct* algorithms whose
latency is one or two link steps however large the group (TensorRT-LLM's and vLLM's custom
all-reduce, NCCL NVLS): an all-reduce is the cheaper of

  one-shot  each device reads all peers' buffers:   (n-1) msg bytes,        1 step
  two-shot  reduce-scatter, then all-gather:         2 (n-1)/n msg bytes,   2 steps

(one-shot wins for small, latency-bound messages, two-shot for large, bandwidth-bound
ones); all-gather, reduce-scatter and all-to-all move (n-1)/n of the message in one step.
A ring's 2 (n-1) latency steps (the NCCL "bus bandwidth" convention) are never cheaper
than two-shot in such a domain, so it is not a candidate there.

A group spanning g = n / d domains of d of its devices each runs hierarchically: an
all-reduce as an intra-domain reduce-scatter, an inter-domain all-reduce of the 1/d shard
over the scale-out link (ring bytes 2 (g-1)/g, latency steps of the cheaper of ring and
tree, 2 min(g - 1, ceil(log2 g))), and an intra-domain all-gather; an all-gather /
reduce-scatter likewise with one intra- and one inter-domain (ring, g - 1 steps) phase; an
all-to-all sends
(d-1)/n of its message over the scale-up and (n-d)/n over the scale-out link. The phases
run one after the other (times add; overlap would make this an upper bound).

Returned as (scale-up seconds, scale-out seconds, latency seconds) so that the what-if
bandwidth scales apply to each link's part; the algorithm is chosen at the preset's
nominal bandwidths.
"""
import math

from numba import njit

from .layout import ALLREDUCE, ALLTOALL, P2P


@njit(cache=True)
def domain_split(n, span, domain):
    """(devices of the group per scale-up domain d, domains g) for ``n`` devices spread
    evenly over ``span`` consecutive devices."""
    if span <= domain:
        return n, 1.0
    d = min(max(math.floor(n * domain / span), 1.0), n)
    return d, n / d


@njit(cache=True)
def collective_seconds(kind, n, span, msg, domain, r_up, lat_up, r_out, lat_out):
    """(scale-up, scale-out, latency) seconds of one collective of ``kind`` over ``n``
    devices with a message of ``msg`` bytes per device. ``r_up``/``r_out``: seconds per
    byte of each link (1 / (bandwidth * network efficiency)); ``lat_*``: seconds per step.
    """
    if n <= 1.0 or msg <= 0.0:
        return 0.0, 0.0, 0.0
    if kind == P2P:
        if span <= domain:
            return msg * r_up, 0.0, lat_up
        return 0.0, msg * r_out, lat_out
    d, g = domain_split(n, span, domain)
    if g <= 1.0:
        if kind == ALLREDUCE:
            one_shot = (n - 1.0) * msg * r_up
            two_shot = 2.0 * (n - 1.0) / n * msg * r_up
            if one_shot + lat_up <= two_shot + 2.0 * lat_up:
                return one_shot, 0.0, lat_up
            return two_shot, 0.0, 2.0 * lat_up
        return (n - 1.0) / n * msg * r_up, 0.0, lat_up
    intra = 1.0 if d > 1.0 else 0.0  # intra-domain phases exist only with d > 1
    if kind == ALLREDUCE:
        steps = 2.0 * min(g - 1.0, math.ceil(math.log2(g)))
        return (2.0 * (d - 1.0) / d * msg * r_up, 2.0 * (g - 1.0) / g * msg / d * r_out,
                2.0 * intra * lat_up + steps * lat_out)
    if kind == ALLTOALL:
        return (d - 1.0) / n * msg * r_up, (n - d) / n * msg * r_out, intra * lat_up + lat_out
    # all-gather / reduce-scatter: a ring over the domains (no tree form)
    return ((d - 1.0) / d * msg * r_up, (g - 1.0) / g * msg / d * r_out,
            intra * lat_up + (g - 1.0) * lat_out)
