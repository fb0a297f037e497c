"""The continuous-batching reference simulator on hand-computed cases.

Most cases use a constant iteration time TAU so that every expected number is a count of
iterations worked out by hand in the comments; the linear-cost case checks the arguments
handed to ``iteration_time`` against a closed-form sum.
"""
import math
import time

import numpy as np
import pytest

from dse.kernels.simulate import simulate

TAU = 1e-3


def constant(decode_contexts, prefill_chunks, sampled):
    return TAU


def close(actual, expected, rel=1e-9):
    return actual == pytest.approx(expected, rel=rel, abs=1e-12)


class Recorder:
    """A constant-time iteration_time that keeps every call's arguments."""

    def __init__(self):
        self.calls = []

    def __call__(self, decode_contexts, prefill_chunks, sampled):
        self.calls.append((sorted(decode_contexts.tolist()), list(prefill_chunks), sampled))
        return TAU


def test_single_client_mixed():
    # one prefill iteration, then 10 decode iterations; the client resubmits at once
    r = simulate(constant, 1, 100, 11, 4096)
    assert close(r["ttft_s"], TAU) and close(r["tpot_s"], TAU)
    assert close(r["e2e_s"], 11 * TAU) and close(r["requests_per_s"], 1 / (11 * TAU))
    assert close(r["running_requests"], 1) and r["waiting_requests"] == 0
    assert close(r["prefill_share"], 1 / 11) and close(r["mean_prefill_tokens"], 100 / 11)
    assert close(r["mean_decode_tokens"], 10 / 11) and close(r["iteration_s"], TAU)
    assert r["admission_wait_s"] == 0


def test_overheads_single_client():
    o, h = 0.05, 2e-4
    r = simulate(constant, 1, 100, 11, 4096, request_overhead_s=o, iteration_overhead_s=h)
    step = TAU + h
    assert close(r["ttft_s"], step + o) and close(r["tpot_s"], step)
    assert close(r["e2e_s"], 11 * step + o)
    assert close(r["requests_per_s"], 1 / (11 * step + o))  # the client waits o as well
    assert close(r["running_requests"], 11 * step / (11 * step + o))
    assert close(r["overhead_requests"], o / (11 * step + o))
    assert close(r["iteration_s"], step)


def test_arguments_passed_to_iteration_time():
    # 1000-token prompt in 256-token chunks, then decodes over prompt + k tokens
    rec = Recorder()
    simulate(rec, 1, 1000, 4, 256, n_requests=1, warmup=0)
    assert rec.calls == [
        ([], [(0, 256)], 0), ([], [(256, 256)], 0), ([], [(512, 256)], 0),
        ([], [(768, 232)], 1), ([1001], [], 1), ([1002], [], 1), ([1003], [], 1),
    ]


def test_chunked_prefill_takes_ceil_iterations():
    r = simulate(constant, 1, 1000, 5, 256)
    assert close(r["ttft_s"], 4 * TAU)  # ceil(1000 / 256) prefill iterations
    assert close(r["e2e_s"], 8 * TAU) and close(r["prefill_share"], 0.5)
    assert close(r["mean_prefill_tokens"], 1000 / 8) and close(r["mean_decode_tokens"], 4 / 8)


def test_unchunked_long_prompt_runs_alone():
    r = simulate(constant, 1, 1000, 5, 256, chunked=False)
    assert close(r["ttft_s"], TAU) and close(r["e2e_s"], 5 * TAU)


def test_unchunked_prompt_waits_for_room():
    # budget 150: the first prompt (100) leaves 50, too few for the second; next
    # iteration the first decodes (1 token) and the second prompt fits in the 149 left
    rec = Recorder()
    simulate(rec, 2, 100, 3, 150, chunked=False, n_requests=2, warmup=0)
    assert rec.calls[:3] == [([], [(0, 100)], 1), ([101], [(0, 100)], 2), ([101, 102], [], 2)]


def test_output_of_one_token_finishes_at_prefill():
    r = simulate(constant, 1, 100, 1, 0)
    assert close(r["ttft_s"], TAU) and close(r["e2e_s"], TAU) and math.isnan(r["tpot_s"])
    assert close(r["requests_per_s"], 1 / TAU) and close(r["prefill_share"], 1)


def test_static_like_unlimited_budget():
    # all B prompts in one iteration, then B decodes together: a static batch every cycle
    a, b, B, P, N = 2e-3, 1e-6, 6, 300, 8

    def linear_tokens(decode_contexts, prefill_chunks, sampled):
        return a + b * (len(decode_contexts) + sum(n for _, n in prefill_chunks))

    r = simulate(linear_tokens, B, P, N, 0)
    assert close(r["ttft_s"], a + b * B * P) and close(r["tpot_s"], a + b * B)
    assert close(r["requests_per_s"], B / (a + b * B * P + (N - 1) * (a + b * B)))
    assert close(r["prefill_share"], 1 / N) and close(r["running_requests"], B)


def test_mixed_replacement_prefill_shares_iterations():
    # batch 2, budget = P = 100, N = 9. Warm-up: A prefills alone; B gets 99 tokens beside
    # A's decode, then 1. From then on the clients are offset by 2 iterations and every
    # new prompt takes 2 iterations (99 + 1 tokens beside the other's decode):
    # TTFT 2 tau, TPOT tau, cycle (N + 1) tau per client.
    r = simulate(constant, 2, 100, 9, 100)
    assert close(r["ttft_s"], 2 * TAU) and close(r["tpot_s"], TAU)
    assert close(r["requests_per_s"], 2 / (10 * TAU))
    assert close(r["prefill_share"], 4 / 10) and close(r["mean_prefill_tokens"], 200 / 10)
    assert close(r["mean_decode_tokens"], 16 / 10)


def test_separate_prefill_iterations_stall_decodes():
    # mixed=False, budget = one prompt: A prefills (tau), B prefills while A stalls (2 tau),
    # then N - 1 = 4 decode iterations of both; both finish at 6 tau and restart together.
    # A: TTFT tau, TPOT 5 tau / 4; B: TTFT 2 tau, TPOT tau.
    r = simulate(constant, 2, 100, 5, 100, mixed=False, chunked=False)
    assert close(r["ttft_s"], 1.5 * TAU) and close(r["tpot_s"], (5 / 4 + 1) / 2 * TAU)
    assert close(r["e2e_s"], 6 * TAU) and close(r["requests_per_s"], 2 / (6 * TAU))
    assert close(r["prefill_share"], 2 / 6)


def test_overlap_scheduling_admits_one_iteration_later_while_busy():
    # as test_mixed_replacement_prefill_shares_iterations, with the next batch formed while
    # one runs: a request submitted at the boundary where the other's previous one ended
    # misses the batch formed a tau earlier, waits that iteration, then prefills in 2:
    # TTFT 3 tau, e2e 11 tau, 4 prefill iterations in 11
    r = simulate(constant, 2, 100, 9, 100, overlap=True)
    assert close(r["ttft_s"], 3 * TAU) and close(r["tpot_s"], TAU)
    assert close(r["admission_wait_s"], TAU) and close(r["e2e_s"], 11 * TAU)
    assert close(r["prefill_share"], 4 / 11)
    # clients in step (an unlimited budget): they finish together and find the engine
    # idle, which receives at once: no wait, as without overlap
    assert simulate(constant, 2, 100, 9, 4096, overlap=True) == \
        simulate(constant, 2, 100, 9, 4096)


def test_decodes_use_up_budget_chunked():
    # budget 1, P = 3, N = 3: a decoding request leaves no budget, so prompts advance only
    # while nothing decodes. Each request: 3 prefill + 2 decode iterations, one at a time;
    # its prompt waits for the other's 5 iterations: TTFT 8 tau, e2e 10 tau.
    r = simulate(constant, 2, 3, 3, 1)
    assert close(r["ttft_s"], 8 * TAU) and close(r["tpot_s"], TAU)
    assert close(r["e2e_s"], 10 * TAU) and close(r["requests_per_s"], 1 / (5 * TAU))
    assert close(r["running_requests"], 2) and r["admission_wait_s"] == 0


def test_decodes_use_up_budget_unchunked():
    # same, chunked=False: a prompt runs whole when the iteration has no other prefill, so
    # each prompt runs beside the other's decode: TTFT tau, e2e 3 tau
    r = simulate(constant, 2, 3, 3, 1, chunked=False)
    assert close(r["ttft_s"], TAU) and close(r["e2e_s"], 3 * TAU)
    assert close(r["requests_per_s"], 2 / (3 * TAU))


@pytest.mark.parametrize("limit", [{"kv_slots": 1}, {"max_running": 1}])
def test_one_slot_serializes_two_clients(limit):
    # one request runs (1 prefill + 4 decode iterations), the other waits all of it
    r = simulate(constant, 2, 100, 5, 100, **limit)
    assert close(r["running_requests"], 1) and close(r["waiting_requests"], 1)
    assert close(r["admission_wait_s"], 5 * TAU) and close(r["ttft_s"], 6 * TAU)
    assert close(r["e2e_s"], 10 * TAU) and close(r["requests_per_s"], 1 / (5 * TAU))


def test_linear_cost_single_client_closed_form():
    # time = a + b*tokens + c*sum(decode contexts) + e*(attention pairs of the chunks)
    #        + s*sampled + iteration overhead h. Prefill chunk (start, n) attends over
    # n*start + n(n+1)/2 pairs; over the whole prompt they sum to P(P+1)/2 whatever the
    # chunking. Decode step k (k = 1..N-1) attends over P + k.
    a, b, c, e, s, h, o = 1e-3, 2e-6, 3e-9, 1e-10, 5e-5, 1e-4, 0.02
    P, N, K = 1000, 17, 256

    def linear(decode_contexts, prefill_chunks, sampled):
        tokens = len(decode_contexts) + sum(n for _, n in prefill_chunks)
        pairs = sum(n * start + n * (n + 1) / 2 for start, n in prefill_chunks)
        return a + b * tokens + c * decode_contexts.sum() + e * pairs + s * sampled

    r = simulate(linear, 1, P, N, K, request_overhead_s=o, iteration_overhead_s=h)
    chunks = math.ceil(P / K)
    ttft = chunks * (a + h) + b * P + e * P * (P + 1) / 2 + s + o
    tpot = a + h + b + c * (P + N / 2) + s
    assert close(r["ttft_s"], ttft) and close(r["tpot_s"], tpot)
    assert close(r["e2e_s"], ttft + (N - 1) * tpot)
    assert close(r["requests_per_s"], 1 / (ttft + (N - 1) * tpot))


def linear_engine(decode_contexts, prefill_chunks, sampled):
    tokens = len(decode_contexts) + sum(n for _, n in prefill_chunks)
    return 4e-3 + 3e-6 * tokens + 2e-9 * decode_contexts.sum()


@pytest.mark.parametrize("kwargs", [
    {},
    {"request_overhead_s": 0.03},
    {"max_running": 3, "request_overhead_s": 0.01, "iteration_overhead_s": 5e-4},
    {"mixed": False, "chunked": False, "kv_slots": 5, "request_overhead_s": 0.02},
])
def test_littles_law(kwargs):
    batch = 8
    r = simulate(linear_engine, batch, 200, 30, 64, n_requests=800, **kwargs)
    # every client is waiting, running or in its overhead delay at every instant
    assert close(r["running_requests"] + r["waiting_requests"] + r["overhead_requests"], batch)
    # each client's cycle is its request's e2e latency (overhead included)
    assert r["requests_per_s"] * r["e2e_s"] == pytest.approx(batch, rel=1e-2)
    o = kwargs.get("request_overhead_s", 0.0)
    assert r["overhead_requests"] == pytest.approx(r["requests_per_s"] * o, rel=2e-2, abs=1e-12)
    assert r["running_requests"] <= min(batch, kwargs.get("max_running", batch),
                                        kwargs.get("kv_slots", batch)) + 1e-9
    assert r["ttft_s"] >= r["admission_wait_s"] + o


def test_large_case_is_fast():
    start = time.perf_counter()
    r = simulate(linear_engine, 512, 1024, 1024, 2048, request_overhead_s=0.05)
    elapsed = time.perf_counter() - start
    assert close(r["running_requests"] + r["waiting_requests"] + r["overhead_requests"], 512)
    assert r["requests_per_s"] * r["e2e_s"] == pytest.approx(512, rel=1e-2)
    assert elapsed < 15, elapsed  # ~0.5 s on a development machine


@pytest.mark.parametrize("kwargs, message", [
    ({"batch": 0}, "batch"),
    ({"input_tokens": -1}, "input_tokens"),
    ({"output_tokens": 0}, "output_tokens"),
    ({"output_tokens": 2.5}, "output_tokens"),
    ({"max_batched_tokens": -1}, "max_batched_tokens"),
    ({"max_running": -2}, "max_running"),
    ({"kv_slots": True}, "kv_slots"),
    ({"request_overhead_s": -0.1}, "request_overhead_s"),
    ({"iteration_overhead_s": math.nan}, "iteration_overhead_s"),
    ({"n_requests": 0}, "n_requests"),
    ({"warmup": -1}, "warmup"),
    ({"iteration_time": None}, "iteration_time"),
    ({"iteration_time": lambda d, p, s: -1.0}, "iteration_time"),
    ({"iteration_time": lambda d, p, s: 0.0}, "> 0"),
])
def test_bad_arguments(kwargs, message):
    args = {"iteration_time": constant, "batch": 2, "input_tokens": 10, "output_tokens": 4,
            "max_batched_tokens": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate(**args)


def test_deterministic():
    args = (linear_engine, 5, 300, 20, 128)
    assert simulate(*args, seed=1) == simulate(*args, seed=2)
    assert np.isfinite(list(simulate(*args).values())).all()


def test_random_lengths_like_a_benchmark_client():
    # length_ratio 0.8: each request's prompt and output drawn from [0.8 L, L], as
    # bench_serving --random-range-ratio 0.8 does; one client, constant iterations, so each
    # request takes 1 prefill + (its output - 1) decode iterations and TPOT stays TAU
    rec = Recorder()
    r = simulate(rec, 1, 100, 50, 4096, n_requests=400, warmup=0, seed=7, length_ratio=0.8)
    prompts = [n for _, chunks, _ in rec.calls for _, n in chunks]
    assert min(prompts) >= 80 and max(prompts) <= 100 and len(set(prompts)) > 10
    assert abs(np.mean(prompts) - 90) < 1.5  # uniform over the 21 integers 80..100
    assert close(r["tpot_s"], TAU)
    # the mean request: 1 + (mean output - 1) iterations, mean output ~ 45 (40..50)
    assert r["e2e_s"] == pytest.approx(45 * TAU, rel=0.03)
    # a decode step attends its own prompt plus the outputs so far (not the nominal 100)
    contexts = [c for ctx, _, _ in rec.calls for c in ctx]
    assert min(contexts) >= 81 and max(contexts) <= 149
    # reproducible with the seed; ratio 1 is the fixed-length simulation exactly
    again = simulate(constant, 1, 100, 50, 4096, n_requests=400, warmup=0, seed=7,
                     length_ratio=0.8)
    assert again == r
    assert simulate(constant, 4, 100, 50, 64, length_ratio=1.0) == simulate(
        constant, 4, 100, 50, 64)
    with pytest.raises(ValueError, match="length_ratio"):
        simulate(constant, 1, 100, 50, 64, length_ratio=0.0)
    with pytest.raises(ValueError, match="shortest prompt"):
        simulate(constant, 1, 100, 50, 64, cached_tokens=85, length_ratio=0.8)


def test_a_run_of_max_requests_ends_with_fewer_clients():
    # 2 clients, 5 prompts in all, one iteration per token (prefill 1, then 9 decodes):
    # the clients alternate in step; the fifth request runs alone at the end
    rec = Recorder()
    r = simulate(rec, 2, 100, 10, 4096, n_requests=5, warmup=0, max_requests=5)
    assert sum(1 for _, chunks, _ in rec.calls for _ in chunks) == 5  # 5 prompts prefilled
    assert max(len(ctx) for ctx, _, _ in rec.calls) == 2
    assert len(rec.calls[-1][0]) == 1  # the last iterations decode the fifth request alone
    assert close(r["tpot_s"], TAU) and close(r["ttft_s"], TAU)
    with pytest.raises(ValueError, match="must not exceed max_requests"):
        simulate(constant, 2, 100, 10, 4096, n_requests=6, warmup=0, max_requests=5)


def test_a_finite_run_whose_warm_up_ends_in_a_crowded_iteration_ends_with_the_run():
    # 4 clients in step (fixed lengths, no stagger): the first 4 requests finish in one
    # iteration, so warm-up 2 ends there and the other 2 fall outside the window; the 8
    # prompts then leave 4 to measure, fewer than n_requests = 6: the window ends with the
    # run (it used to wait for a submission that never came)
    r = simulate(constant, 4, 100, 10, 4096, n_requests=6, warmup=2, max_requests=8)
    assert close(r["ttft_s"], TAU) and close(r["tpot_s"], TAU)
    assert close(r["requests_per_s"], 4 / (10 * TAU))
