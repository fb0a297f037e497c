"""Collective algorithms by message size and hierarchical collectives, by hand
(kernels/collectives.py), and the same figures through the kernel (dse explain)."""
import numpy as np
import pytest

from dse.kernels import layout as L
from dse.kernels.collectives import collective_seconds
from dse.kernels.reference import _collective

# H100 SXM preset: NVLink 450 GB/s per direction, InfiniBand 50 GB/s, network efficiency
# 0.8, 2 us / 5 us per step, 8 GPUs per NVLink domain
R_UP = 1 / (450e9 * 0.8)
R_OUT = 1 / (50e9 * 0.8)
UP, OUT = 2e-6, 5e-6


def both(kind, n, span, msg, domain=8):
    """kernel and numpy reference agree, then the kernel's triple"""
    k = collective_seconds(kind, n, span, msg, domain, R_UP, UP, R_OUT, OUT)
    r = _collective(kind, n, span, msg, domain, R_UP, UP, R_OUT, OUT)
    assert np.allclose(k, [float(x) for x in r], rtol=1e-12, atol=0)
    return k


def test_small_all_reduce_is_one_shot():
    # batch 1 of Llama-70B at tp 8: 8192 x 2 bytes; one-shot reads 7 peers' buffers in one
    # step: 7 * 16384 B / 360 GB/s + 2 us = 2.32 us (a ring's 14 steps were 28 us)
    up, out, lat = both(L.ALLREDUCE, 8, 8, 16384)
    assert (up, out, lat) == pytest.approx((7 * 16384 * R_UP, 0.0, 2e-6))
    assert up + lat == pytest.approx(2.3186e-6, rel=1e-4)


def test_large_all_reduce_is_two_shot():
    # 8 MiB: one-shot would move 7 x 8 MiB (163 us); two-shot moves 2 * 7/8 of it (40.8 us)
    # in two steps
    msg = 8 * 2 ** 20
    up, out, lat = both(L.ALLREDUCE, 8, 8, msg)
    assert (up, out, lat) == pytest.approx((2 * 7 / 8 * msg * R_UP, 0.0, 4e-6))
    # the switch point: (n - 1) m r + l = 2 (n - 1)/n m r + 2 l -> m = l / ((n-1)(1-2/n) r)
    switch = UP / (7 * (1 - 2 / 8) * R_UP)
    below = sum(both(L.ALLREDUCE, 8, 8, switch * 0.99))
    above = sum(both(L.ALLREDUCE, 8, 8, switch * 1.01))
    assert below == pytest.approx(7 * switch * 0.99 * R_UP + UP)
    assert above == pytest.approx(1.75 * switch * 1.01 * R_UP + 2 * UP)


def test_two_devices_one_step():
    # tp 2: one-shot sends the message once (1 step) and never loses to two-shot
    up, out, lat = both(L.ALLREDUCE, 2, 2, 10 ** 6)
    assert (up, out, lat) == pytest.approx((10 ** 6 * R_UP, 0.0, UP))


def test_all_reduce_across_two_domains_is_hierarchical():
    # tp 16 on two 8-GPU nodes, 1 MiB: reduce-scatter and all-gather inside each node
    # (2 * 7/8 of the message, 2 NVLink steps), the 1/8 shard all-reduced between the two
    # nodes (2 * 1/2 of it over InfiniBand, 2 steps)
    msg = 2 ** 20
    up, out, lat = both(L.ALLREDUCE, 16, 16, msg)
    assert up == pytest.approx(2 * 7 / 8 * msg * R_UP)
    assert out == pytest.approx(msg / 8 * R_OUT)
    assert lat == pytest.approx(2 * UP + 2 * OUT)
    # against a flat ring on the scale-out link: 2 * 15/16 of the message, 30 steps
    flat = 2 * 15 / 16 * msg * R_OUT + 30 * OUT
    assert up + out + lat < flat / 5


def test_all_reduce_latency_steps_take_the_tree_across_many_domains():
    # 8 domains of 8: inter-domain latency 2 * min(g - 1, ceil(log2 g)) = 6 steps
    up, out, lat = both(L.ALLREDUCE, 64, 64, 1024)
    assert lat == pytest.approx(2 * UP + 6 * OUT)
    assert out == pytest.approx(2 * 7 / 8 * 1024 / 8 * R_OUT)


def test_one_device_per_domain_is_a_plain_scale_out_collective():
    # domain of 1 (PCIe cards): no intra-domain phase
    up, out, lat = both(L.ALLGATHER, 4, 4, 4000, domain=1)
    assert up == 0.0
    assert out == pytest.approx(3 / 4 * 4000 * R_OUT)
    assert lat == pytest.approx(3 * OUT)


def test_all_gather_and_all_to_all():
    assert both(L.ALLGATHER, 4, 4, 4000) == pytest.approx((3 / 4 * 4000 * R_UP, 0.0, UP))
    assert both(L.REDUCESCATTER, 4, 4, 4000) == pytest.approx((3 / 4 * 4000 * R_UP, 0, UP))
    # ep 16 over two nodes: 7/16 of the dispatch stays on NVLink, 8/16 leaves the node
    up, out, lat = both(L.ALLTOALL, 16, 16, 16000)
    assert (up, out, lat) == pytest.approx((7 / 16 * 16000 * R_UP, 8 / 16 * 16000 * R_OUT,
                                            UP + OUT))


def test_no_group_no_time():
    assert both(L.ALLREDUCE, 1, 1, 10 ** 6) == (0.0, 0.0, 0.0)
    assert both(L.ALLREDUCE, 8, 8, 0.0) == (0.0, 0.0, 0.0)


def test_p2p_link_by_span():
    assert both(L.P2P, 2, 8, 1000) == pytest.approx((1000 * R_UP, 0.0, UP))
    assert both(L.P2P, 2, 16, 1000) == pytest.approx((0.0, 1000 * R_OUT, OUT))


def test_kernel_prices_tp16_decode_all_reduce_hierarchically(h100_scalar):
    # Llama-3-70B decode on 16 H100 at batch 8, bf16: each attention all-reduce carries
    # 8 x 8192 x 2 bytes; dse explain shows the hierarchical time on both links
    from dse.explain import explain
    table, _ = explain(hardware=h100_scalar, model="llama3_70b", serving="static", tp=16,
                       batch=8, input_tokens=128, output_tokens=16, weight_dtype="bf16")
    row = table[(table.phase == "decode") & (table.op == "attn_all_reduce")].iloc[0]
    msg = 8 * 8192 * 2
    up, out, lat = collective_seconds(L.ALLREDUCE, 16, 16, msg, 8, R_UP, UP, R_OUT, OUT)
    assert row["net_bytes"] == msg
    assert row["network_s"] == pytest.approx(up + out + lat, rel=1e-12)
    assert row["link"] == "scaleup+scaleout"


def test_domain_and_latency_what_ifs():
    # the same tp 16 decode on H100 priced with 8-GPU nodes, NVL16 (domain x 2) and link
    # steps 3x slower: one sweep, the what-if dims last in the outputs
    from dse.config import parse_sweep
    from dse.evaluate import evaluate
    from dse.explain import explain
    spec = parse_sweep({
        "grid": {"hardware": ["h100_sxm"], "model": ["llama3_70b"], "serving": ["static"],
                 "tp": [16], "batch": [8], "input_tokens": [128], "output_tokens": [16]},
        "what_if": {"scaleup_domain_scale": [1.0, 2.0], "link_latency_scale": [1.0, 3.0]}})
    ds = evaluate(spec)
    assert ds["tpot_s"].dims[-2:] == ("scaleup_domain_scale", "link_latency_scale")
    tpot = ds["tpot_s"].squeeze()
    for sd in (1.0, 2.0):
        for sl in (1.0, 3.0):
            _, point = explain(hardware="h100_sxm", model="llama3_70b", serving="static",
                               tp=16, batch=8, input_tokens=128, output_tokens=16,
                               scaleup_domain_scale=sd, link_latency_scale=sl)
            got = float(tpot.sel(scaleup_domain_scale=sd, link_latency_scale=sl))
            assert got == pytest.approx(point["tpot_s"], rel=1e-12)
    # one NVL16 domain: no InfiniBand phase, so the step is faster
    assert float(tpot.sel(scaleup_domain_scale=2.0, link_latency_scale=1.0)) < float(
        tpot.sel(scaleup_domain_scale=1.0, link_latency_scale=1.0))
    # 3x slower steps: each of the 161 all-reduces per step (80 layers x 2 + embedding)
    # adds 2 x (2 NVLink + 2 InfiniBand steps) of latency, the logits gather 2 x (1 + 1)
    extra = float(tpot.sel(scaleup_domain_scale=1.0, link_latency_scale=3.0)) - float(
        tpot.sel(scaleup_domain_scale=1.0, link_latency_scale=1.0))
    assert extra == pytest.approx(161 * 2 * (2 * UP + 2 * OUT) + 2 * (UP + OUT), rel=1e-9)
