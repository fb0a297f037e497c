"""Continuous serving: the kernel's closed form (``kernels/serving.py``) against the
discrete-event simulator (``kernels/simulate.py``) on hypothesis-drawn cases (issue 11
item 5): TTFT within 10 % and TPOT within 5 %.

The simulator runs as ``tests/des_agreement.py`` runs it (the engine preset's scheduler
and overheads, the KV slots of the memory model, ``stagger=True``) over the same
per-iteration physics (``dse/simulation.py``), so the comparison checks the
scheduling steady state alone. Drawn: engine (vllm, sglang, trtllm, roofline), model
(dense and MoE; not sliding-window ones, whose attention ``dse/simulation.py``
prices unwindowed), hardware, tp, batch 1-160, input 16-8192 tokens, output 64-512
tokens, token budget (engine default, 256, 512, 2048).

Domain. The closed form describes a closed loop whose clients are out of step (README,
"Continuous serving"): requests at every stage of their lives, prompts arriving one at a
time. The claim is checked where that steady state is what the simulator settles in. Two
regions are left out entirely and two more for TTFT only, each for a reason the closed
form does not model:

- ``output_tokens < 64``. With few decode iterations per request, (i) the clients inside
  their request overhead (between a finish and the next submission) are a large share of
  the loop: the simulator runs fewer requests than ``min(batch, slots)``, which the closed
  form counts as running (at 2 output tokens and a 20-30 ms overhead, 30-60 % of the
  clients); (ii) a prefill-first engine (SGLang) with several chunks per prompt queues
  prompts behind each other's chunks; (iii) cohorts form (below) within a few cycles.
- Arrival bunching: ``X > 0.1``, X = the expected number of other arrivals during the
  iteration a request arrives in, rho * E[t^2] / E[t] with rho the closed form's
  completions per second and t its iteration times (decode-only and prefill-carrying, at
  their shares). Requests that arrive in the same iteration are admitted together and,
  with fixed lengths and a fixed request overhead, finish together and arrive together
  again: they stay one cohort for good. Merging is absorbing, so over the simulated ~20
  cycles per client the prompts come in bunches (2-6 per prefill iteration at X ~ 0.3-1.5
  where the closed form has one), prefill-carrying iterations are fewer and longer, and
  TTFT is off by 20-60 %. Random jitter in the submissions does not break this up (it
  bunches by the same mechanism), only varying lengths would; the closed form keeps the
  one-prompt-at-a-time steady state, so the claim is stated where X is small.
- TTFT only: with a request overhead, when half a decode-only iteration exceeds 8 % of
  TTFT. The simulator's overhead is exactly fixed and its decode-only iterations nearly
  equal, so every arrival lands at the same phase of the iteration grid and waits a fixed
  part of an iteration for admission; the closed form takes the mean wait, half an
  iteration (what varying overheads give: with 0-10 ms of jitter on the submissions the
  simulator comes within 1 % of it on such cases). The two differ by up to half an
  iteration, which is over 10 % of TTFT for short prompts.
- TTFT only: a prefill-first engine (separate prefill iterations, SGLang's default) with
  prompts longer than the token budget (several chunks). A prompt's chunks then run back
  to back, and a request arriving during such a run waits for the rest of it (half a run,
  length-biased, k chunk iterations long); the closed form's wait before a request's own
  prefill is half the mean prefill burst between decode iterations, which is shorter when
  the runs are sparse and long, so its TTFT is low by up to ~20 % (e.g. 8 chunks per
  prompt, prefill in ~55 % of iterations: -16 %). TPOT is checked there too.

Inside this domain, 70 random cases (of 400 drawn the same way) deviated by at most 5.6 %
on TTFT and 3.1 % on TPOT.
"""
import math

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import dse
from dse.engines import replica_limits
from dse.kernels.simulate import simulate

from dse.simulation import point

ENGINES = ("vllm", "sglang", "trtllm", "roofline")
MODELS = ("llama3_8b", "qwen3_8b", "qwen3_30b_a3b")
HARDWARE = ("h100_sxm", "h200", "b200")
MIN_OUTPUT = 64          # shorter outputs: outside the domain (module docstring)
MAX_BUNCHING = 0.1       # X, other arrivals expected in one's arrival iteration
MAX_PHASE = 0.08         # half a decode-only iteration over TTFT (engines with overhead)


def bunching(summary, mixed):
    """(X, phase share) of the closed form's steady state (module docstring)."""
    t_dec = summary["decode_iteration_s"]
    t_mix = summary["prefill_iteration_s"]
    f = summary["prefill_iteration_share"]
    if mixed:  # f: share of iterations carrying prefill
        busy = (1.0 - f) * t_dec + f * t_mix
        square = (1.0 - f) * t_dec ** 2 + f * t_mix ** 2
        rho = summary["completions_per_iteration"] / busy
    else:  # f: prefill iterations per decode iteration
        busy = t_dec + f * t_mix
        square = t_dec ** 2 + f * t_mix ** 2
        rho = summary["completions_per_s"]
    return rho * square / busy, 0.5 * t_dec / summary["ttft_s"]


CASES = st.fixed_dictionaries({
    "engine": st.sampled_from(ENGINES),
    "model": st.sampled_from(MODELS),
    "hardware": st.sampled_from(HARDWARE),
    "tp": st.sampled_from([1, 2]),
    "batch": st.integers(1, 160),
    "input_tokens": st.sampled_from([16, 64, 200, 512, 1000, 2048, 4096, 8192]),
    "output_tokens": st.sampled_from([MIN_OUTPUT, 100, 128, 200, 256, 512]),
    "max_batched_tokens": st.sampled_from([0, 256, 512, 2048]),
})


# no shrinking (each case simulates for up to ~2 s): a failure reports the drawn case
@settings(max_examples=16, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(CASES)
def test_closed_form_matches_simulator_on_random_cases(grid):
    summary, iteration_time, engine, slots = point(**grid)
    assume(slots >= 1)  # at least one request fits (else out of memory, no steady state)
    _, explained = dse.explain(serving="continuous", **grid)
    x, phase = bunching(explained, engine.mixed_prefill)
    assume(x <= MAX_BUNCHING)
    budget, _ = replica_limits(engine, grid["max_batched_tokens"],
                               grid.get("attention_dp", 1))
    sim = simulate(iteration_time, grid["batch"], grid["input_tokens"],
                   grid["output_tokens"], budget, engine.chunked_prefill,
                   engine.mixed_prefill, 0, int(slots), engine.request_overhead_s,
                   engine.iteration_overhead_s, stagger=True,
                   overlap=engine.overlap_scheduling)
    assert math.isfinite(sim["ttft_s"]) and math.isfinite(sim["tpot_s"])
    check_ttft = ((engine.request_overhead_s == 0.0 or phase <= MAX_PHASE)
                  and (engine.mixed_prefill or explained["chunks_per_prompt"] <= 1.0))
    if check_ttft:
        assert summary["ttft_s"] == pytest.approx(sim["ttft_s"], rel=0.10)
    assert summary["tpot_s"] == pytest.approx(sim["tpot_s"], rel=0.05)
