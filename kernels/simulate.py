"""Reference discrete-event simulation of continuous batching in a closed loop.

The closed-form continuous-batching model of the grid kernel is checked against this
simulator, as the kernel itself is checked against ``reference.py``. It steps one serving
engine (one replica) iteration by iteration through admission, chunked prefill and decode,
and is written for readability: plain Python for the scheduler, numpy arrays for the
running set's per-iteration bookkeeping. It imports only numpy and the standard library.

API::

    simulate(iteration_time, batch, input_tokens, output_tokens, max_batched_tokens,
             chunked=True, mixed=True, max_running=0, kv_slots=0,
             request_overhead_s=0.0, iteration_overhead_s=0.0,
             n_requests=None, warmup=None, seed=None, stagger=False,
             cached_tokens=0, tokens_per_step=1.0, admission_interval=1,
             jitter_s=0.0, length_ratio=1.0, max_requests=0, overlap=False) -> dict

``iteration_time(decode_contexts, prefill_chunks, sampled)`` returns the forward time in
seconds of one engine iteration (finite, >= 0):

- ``decode_contexts``: 1-D float array of whole numbers (fractional with ``tokens_per_step``
  > 1), one entry per request decoding in this iteration
  (in no particular order): the tokens it attends over, i.e. its KV-cache length once this
  step's input token is appended: ``input_tokens + k`` for the step that follows its k-th
  output token (k = 1 .. output_tokens - 1; with ``tokens_per_step`` E > 1 the counts
  advance by E, so k takes fractional values).
- ``prefill_chunks``: list of ``(start, n)``, one per prompt chunk in the iteration, in
  admission order: ``start`` prompt tokens of that request were processed by earlier
  iterations, this chunk processes the next ``n``.
- ``sampled``: sequences sampled this iteration: every decoding request plus every request
  whose prefill completes in this iteration.

Semantics
---------
Closed loop. ``batch`` clients each always have exactly one request outstanding. All
submit at t = 0; every request has ``input_tokens`` prompt and ``output_tokens`` output
tokens, or, with ``length_ratio`` r < 1, lengths drawn per request (seeded by ``seed``)
uniformly among the integers [max(floor(r L), 1), L] for L = ``input_tokens`` and L =
``output_tokens`` alike, as benchmark clients' random datasets do (SGLang's and vLLM's
``bench_serving --random-range-ratio r``); ``decode_contexts`` then count each request's own
prompt, and ``tpot_s`` is the mean over requests of more than one output token. The
engine sees a request at its submission (or at its next receive, below). With
``max_requests`` > 0 the clients stop once that many requests have been submitted in all
(a benchmark run of that many prompts: its last requests run with fewer clients left);
``warmup`` + ``n_requests`` must not exceed it (``warmup=0, n_requests=max_requests``:
the whole run).
``request_overhead_s`` models work outside the engine (HTTP, tokenization,
detokenization): it is added to every request's
measured TTFT and end-to-end latency, and a client submits its next request
``request_overhead_s`` after its previous one finished in the engine (it sees the
response that much later). Each client's cycle is therefore exactly its request's
measured end-to-end latency.

Admission. The scheduler receives submitted requests into its waiting queue at an
iteration boundary when it is idle, after an iteration that carried prefill, or after
``admission_interval`` decode-only iterations since it last received (SGLang's
``--scheduler-recv-interval``: a decode batch weighs 1, any other 1000; 1: every
boundary). With ``overlap`` (overlap scheduling: SGLang's overlap event loop,
TensorRT-LLM's overlap scheduler, vLLM's async scheduling) the scheduler forms each
iteration's batch while the previous one runs: at a boundary that ends an iteration it
receives only the submissions due by that iteration's start, so a request submitted
while the engine is busy runs one iteration later than without (an idle engine receives
at once; slots that the iteration just ended freed are usable at once, and its finished
requests are not decoded once more as the engines' one redundant step does). A FCFS
waiting queue; at each iteration boundary requests are admitted in submission order
while the running set holds fewer than ``R_max = min(batch, max_running or inf, kv_slots
or inf)`` requests (``kv_slots``: how many requests the KV cache holds at full context;
a request holds its slot from admission to its finish). Requests submitted at the same
instant queue in the order their previous requests were admitted (at t = 0: client
order).

Iterations. An iteration starts when the previous one ends, after admission; when nothing
is running or waiting the engine idles until the next submission. Its duration is
``iteration_time(...) + iteration_overhead_s``, which must be > 0.

- ``mixed=True``: every running request past its prefill decodes one token (d decode
  tokens). The prefill budget is ``max_batched_tokens - d`` (unlimited when
  ``max_batched_tokens == 0``; decodes are never capped, so the budget may be <= 0).
- ``mixed=False`` (separate prefill and decode iterations, prefill first): if any running
  request has prompt tokens left, the iteration is prefill-only with budget
  ``max_batched_tokens`` (unlimited when 0); otherwise it decodes every running request.

Prefix caching: a request's first ``cached_tokens`` prompt tokens are in the KV cache at
admission; its prefill processes the rest (its first chunk starts at ``cached_tokens``).

Speculative decoding (``tokens_per_step`` E >= 1): a decoding request emits E output
tokens per iteration on average; the simulator advances its count by exactly E
(deterministic, the expectation: the closed form's mean), so it finishes after
ceil((output_tokens - 1) / E) decode iterations. What a verifying iteration costs is the
``iteration_time`` callable's business.

Prefill tokens go FCFS (admission order) to running requests with prompt tokens left.
``chunked=True``: each takes ``min(remaining, budget left)`` (partial chunks allowed) until
the budget is spent. ``chunked=False``: a request's whole remaining prompt goes if it fits
in the budget left, else allocation stops (head-of-line: later prompts do not overtake);
but an iteration that would otherwise carry no prefill tokens at all (budget too small, or
<= 0 because of decodes) runs the first pending prompt whole anyway, so a prompt longer
than the budget runs as the iteration's only prefill and never blocks the engine.

At the iteration's end a request whose prompt is now fully processed emits its first
output token (its TTFT ends), every decoding request emits one token, and a request that
has emitted ``output_tokens`` tokens finishes (with ``output_tokens == 1``: at its
prefill's end), frees its slot, and its client resubmits ``request_overhead_s`` later.

Measurement window. T0 is the end of the iteration in which the ``warmup``-th request
(default ``2 * batch``) finishes (T0 = 0 when ``warmup == 0``); T1 is the first iteration
end at which at least ``n_requests`` (default ``max(20 * batch, 200)``) requests have
finished in (T0, T1], or the end of a finite run (``max_requests``) when fewer do (the
requests that finish in the iteration ending at T0 are outside the window). Every metric
is over that window: per-request means over the requests finishing in (T0, T1], time
averages over [T0, T1], iteration statistics over the iterations inside it. Returned
keys:

- ``ttft_s``: mean of first-token time - submission + ``request_overhead_s``.
- ``tpot_s``: mean of (finish - first token) / (its output tokens - 1) over the requests of
  more than one output token; NaN if there are none.
- ``e2e_s``: mean of finish - submission + ``request_overhead_s``.
- ``requests_per_s``: finished requests / (T1 - T0).
- ``running_requests``, ``waiting_requests``: time-averaged running-set size and queue
  length (a request waits from its submission to its admission, runs from its admission
  to its finish, including its last iteration).
- ``overhead_requests``: time-averaged number of clients inside their
  ``request_overhead_s`` delay (finished in the engine, next request not yet submitted).
- ``prefill_share``: share of iterations carrying any prefill tokens.
- ``mean_decode_tokens``, ``mean_prefill_tokens``: tokens per iteration.
- ``iteration_s``: mean iteration duration (``iteration_overhead_s`` included).
- ``admission_wait_s``: mean of admission - submission.

What holds exactly: every client is in exactly one of waiting, running or overhead at any
time, so ``running_requests + waiting_requests + overhead_requests == batch`` (to float
rounding). Approximately (window edges, at most one partial cycle per client):
``requests_per_s * e2e_s ~= batch`` (Little's law over clients, any overhead) and
``overhead_requests ~= requests_per_s * request_overhead_s``; both are exact when the
schedule is periodic and the window spans whole periods.

Think time (``jitter_s`` > 0): a client waits a further uniform [0, ``jitter_s``) seconds
(drawn from ``seed``) before it resubmits, outside TTFT and e2e: it dephases clients that
fixed lengths would keep in step (cohorts), as varying lengths do in real benchmarks; the
time is in none of running, waiting and overhead, so their sum falls short of ``batch`` by
the clients thinking. Without it the simulation is deterministic and ``seed`` is unused.
With fixed lengths, clients that start together stay in step: one cohort prefills together
and finishes together, as a static batch. ``stagger=True`` gives the clients' first
requests output lengths spread evenly over 1..output_tokens, so that afterwards requests
sit at every stage of their lives, the steady state of a real closed loop whose lengths
and timings vary (the closed form in ``kernels/serving.py`` assumes it).
"""
import bisect
import math
import operator
from collections import deque

import numpy as np


def _count(name, value, minimum):
    """``value`` as an int >= ``minimum``; ValueError naming the argument otherwise."""
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _seconds(name, value):
    """``value`` as a finite float >= 0; ValueError naming the argument otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return number


def _plan_prefill(remaining, budget, chunked):
    """Prefill tokens for the leading requests of ``remaining`` (prompt tokens left, in
    admission order) under ``budget`` (math.inf: unlimited). FCFS with no overtaking, so
    the scheduled requests are always a prefix of the list."""
    taken = []
    left = budget
    for rem in remaining:
        if chunked:
            n = min(rem, left)
            if n <= 0:
                break
        elif rem <= left or not taken:
            n = rem  # whole prompt; the first one runs even when over budget
        else:
            break
        taken.append(int(n))
        left -= n
    return taken


class _Engine:
    """One replica: running set (slot arrays), FCFS queue, pending resubmissions, and one
    record (submit, admit, first token, finish time) per request."""

    def __init__(self, capacity, input_tokens, output_tokens, request_overhead_s,
                 cached_tokens=0, tokens_per_step=1.0, jitter_s=0.0, rng=None,
                 length_ratio=1.0, max_requests=0):
        self.jitter_s = jitter_s
        self.rng = rng
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.length_ratio = length_ratio
        self.max_requests = max_requests  # submissions in all (0: no limit)
        self.lengths = []  # (prompt, output) tokens per request
        self.slot_input = np.full(capacity, input_tokens, np.int64)  # the slot's prompt
        self.request_overhead_s = request_overhead_s
        self.cached_tokens = cached_tokens
        self.tokens_per_step = tokens_per_step
        self.slot_request = np.full(capacity, -1, np.int64)
        self.emitted = np.zeros(capacity)  # output tokens emitted so far (E per step)
        self.target = np.full(capacity, output_tokens, np.int64)  # output tokens to emit
        self.first_lengths = deque()  # output lengths of the first requests (stagger)
        self.decoding = np.zeros(capacity, bool)      # prefill done, not finished
        self.n_decoding = 0                             # how many slots are decoding
        self.free = list(range(capacity - 1, -1, -1))  # pop() hands out the lowest slot
        self.prefilling = []     # [slot, prompt tokens done], admission order
        self.pending = deque()   # (submit time, request id), nondecreasing times
        self.waiting = deque()   # request ids, FCFS
        self.times = {key: [] for key in ("submit", "admit", "first", "finish")}

    def submit(self, t):
        """A new request from a client, visible to the engine from time ``t``."""
        request = len(self.times["submit"])
        for key, values in self.times.items():
            values.append(t if key == "submit" else math.inf)
        self.lengths.append((self._length(self.input_tokens), self._length(self.output_tokens)))
        if self.pending and t < self.pending[-1][0]:  # think time can reorder clients
            bisect.insort(self.pending, (t, request))
        else:
            self.pending.append((t, request))

    def _length(self, longest):
        """A request's length: ``longest``, or with ``length_ratio`` r < 1 an integer drawn
        uniformly from [max(floor(r * longest), 1), longest] (a benchmark client's random
        dataset)."""
        if self.length_ratio >= 1.0:
            return longest
        return int(self.rng.integers(max(int(self.length_ratio * longest), 1), longest + 1))

    def admit(self, t, receive=True, seen=None):
        """Queue the submissions due by ``seen`` (default ``t``; when the scheduler
        ``receive``s), then admit FCFS at ``t`` while slots are free."""
        seen = t if seen is None else seen
        while receive and self.pending and self.pending[0][0] <= seen:
            self.waiting.append(self.pending.popleft()[1])
        while self.waiting and self.free:
            request, slot = self.waiting.popleft(), self.free.pop()
            self.slot_request[slot] = request
            self.times["admit"][request] = t
            prompt, output = self.lengths[request]
            self.slot_input[slot] = prompt
            self.target[slot] = (self.first_lengths.popleft() if self.first_lengths
                                 else output)
            self.prefilling.append([slot, self.cached_tokens])

    def idle(self):
        """Nothing running and nothing waiting: the engine waits for a submission."""
        return not self.prefilling and not self.n_decoding and not self.waiting

    def compose(self, mixed, max_batched_tokens, chunked):
        """This iteration's decoding slots and prefill token counts (for the leading
        entries of ``self.prefilling``)."""
        if mixed or not self.prefilling:
            decode_slots = self.decoding.nonzero()[0]
        else:
            decode_slots = np.empty(0, np.int64)
        budget = math.inf if max_batched_tokens == 0 else max_batched_tokens
        if mixed:
            budget -= len(decode_slots)
        remaining = (self.slot_input[slot] - done for slot, done in self.prefilling)
        return decode_slots, _plan_prefill(remaining, budget, chunked)

    def advance(self, t_end, decode_slots, prefill):
        """Apply one iteration ending at ``t_end``: tokens emitted, prefills completed,
        requests finished and resubmitted. Returns how many finished."""
        self.emitted[decode_slots] += self.tokens_per_step
        prefilled = []  # slots whose prompt this iteration completed
        for entry, n in zip(self.prefilling, prefill):
            entry[1] += n
            slot = entry[0]
            if entry[1] == self.slot_input[slot]:
                prefilled.append(slot)
                self.emitted[slot] = 1
                self.decoding[slot] = True  # (a one-token request finishes at once below)
                self.times["first"][self.slot_request[slot]] = t_end
        if prefilled:  # only the entries this iteration served can have completed
            self.prefilling = ([e for e in self.prefilling[:len(prefill)]
                                if e[1] < self.slot_input[e[0]]]
                               + self.prefilling[len(prefill):])
            self.n_decoding += len(prefilled)
            emitting = np.concatenate([decode_slots, prefilled]).astype(np.int64)
        else:
            emitting = decode_slots
        # only slots that emitted this iteration can have reached their output length
        done = emitting[self.emitted[emitting] >= self.target[emitting]]
        self.n_decoding -= len(done)
        for request, slot in sorted(zip(self.slot_request[done].tolist(), done.tolist())):
            self.times["finish"][request] = t_end
            self.decoding[slot] = False
            self.free.append(slot)
            if self.max_requests and len(self.times["submit"]) >= self.max_requests:
                continue  # the run has sent all its prompts: this client stops
            think = self.rng.uniform(0.0, self.jitter_s) if self.jitter_s > 0 else 0.0
            self.submit(t_end + self.request_overhead_s + think)
        return len(done)

    def records(self):
        """Per-request times as float arrays (inf: not reached yet) and the output tokens
        each request emits (``output``)."""
        out = {key: np.asarray(values, float) for key, values in self.times.items()}
        out["output"] = np.array([o for _, o in self.lengths], float)
        return out


def _window_metrics(rec, t0, t1, stats, request_overhead_s):
    """Means over the requests finishing in (t0, t1] and time averages over [t0, t1]."""
    span = t1 - t0

    def occupancy(start, end):
        return float(np.sum(np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0, None)))

    done = (rec["finish"] > t0) & (rec["finish"] <= t1)
    submit, admit, first, finish, output = (rec[k][done] for k in (
        "submit", "admit", "first", "finish", "output"))
    finished = rec["finish"][np.isfinite(rec["finish"])]
    several = output > 1  # a one-token request has no time per output token
    tpot = (np.mean((finish - first)[several] / (output[several] - 1)) if several.any()
            else math.nan)
    iterations = max(stats["iterations"], 1)
    return {
        "ttft_s": float(np.mean(first - submit)) + request_overhead_s,
        "tpot_s": float(tpot),
        "e2e_s": float(np.mean(finish - submit)) + request_overhead_s,
        "requests_per_s": int(done.sum()) / span,
        "running_requests": occupancy(rec["admit"], rec["finish"]) / span,
        "waiting_requests": occupancy(rec["submit"], rec["admit"]) / span,
        "overhead_requests": occupancy(finished, finished + request_overhead_s) / span,
        "prefill_share": stats["prefill_iterations"] / iterations,
        "mean_decode_tokens": stats["decode_tokens"] / iterations,
        "mean_prefill_tokens": stats["prefill_tokens"] / iterations,
        "iteration_s": stats["busy_s"] / iterations,
        "admission_wait_s": float(np.mean(admit - submit)),
    }


def simulate(iteration_time, batch, input_tokens, output_tokens, max_batched_tokens,
             chunked=True, mixed=True, max_running=0, kv_slots=0,
             request_overhead_s=0.0, iteration_overhead_s=0.0,
             n_requests=None, warmup=None, seed=None, stagger=False, cached_tokens=0,
             tokens_per_step=1.0, admission_interval=1, jitter_s=0.0, length_ratio=1.0,
             max_requests=0, overlap=False):
    """Steady-state metrics of a closed-loop continuous-batching engine; see the module
    docstring for the exact semantics and the returned keys."""
    if not callable(iteration_time):
        raise ValueError("iteration_time must be callable")
    batch = _count("batch", batch, 1)
    input_tokens = _count("input_tokens", input_tokens, 1)
    output_tokens = _count("output_tokens", output_tokens, 1)
    max_batched_tokens = _count("max_batched_tokens", max_batched_tokens, 0)
    limits = [batch] + [_count(name, value, 0) or batch
                        for name, value in (("max_running", max_running), ("kv_slots", kv_slots))]
    request_overhead_s = _seconds("request_overhead_s", request_overhead_s)
    iteration_overhead_s = _seconds("iteration_overhead_s", iteration_overhead_s)
    n_requests = _count("n_requests", max(20 * batch, 200) if n_requests is None else n_requests, 1)
    warmup = _count("warmup", 2 * batch if warmup is None else warmup, 0)
    cached_tokens = _count("cached_tokens", cached_tokens, 0)
    if cached_tokens >= input_tokens:
        raise ValueError(f"cached_tokens must be below input_tokens ({input_tokens}), got "
                         f"{cached_tokens}: the last prompt token is always computed")
    admission_interval = _count("admission_interval", admission_interval, 1)
    tokens_per_step = float(tokens_per_step)
    if not math.isfinite(tokens_per_step) or tokens_per_step < 1.0:
        raise ValueError(f"tokens_per_step must be a number >= 1, got {tokens_per_step!r}")

    jitter_s = _seconds("jitter_s", jitter_s)
    length_ratio = float(length_ratio)
    if not 0.0 < length_ratio <= 1.0:
        raise ValueError(f"length_ratio must be in (0, 1], got {length_ratio!r}")
    if cached_tokens >= max(int(length_ratio * input_tokens), 1):
        raise ValueError(f"cached_tokens must be below the shortest prompt "
                         f"({max(int(length_ratio * input_tokens), 1)}), got {cached_tokens}")
    max_requests = _count("max_requests", max_requests, 0)
    if max_requests and warmup + n_requests > max_requests:
        raise ValueError(f"warmup + n_requests ({warmup} + {n_requests}) must not exceed "
                         f"max_requests ({max_requests}): the run ends after that many")
    engine = _Engine(min(limits), input_tokens, output_tokens, request_overhead_s,
                     cached_tokens, tokens_per_step, jitter_s, np.random.default_rng(seed),
                     length_ratio, max_requests)
    if stagger:  # first requests end at evenly spread times: clients out of step
        engine.first_lengths.extend(max(1, math.ceil(output_tokens * (i + 1) / batch))
                                    for i in range(batch))
    for _ in range(min(batch, max_requests) if max_requests else batch):
        engine.submit(0.0)
    stats = dict.fromkeys(("iterations", "prefill_iterations", "decode_tokens",
                           "prefill_tokens", "busy_s"), 0)
    t, t0 = 0.0, (0.0 if warmup == 0 else None)
    finished = measured = 0
    count = admission_interval  # iterations since the scheduler last received
    formed = None  # overlap: when this boundary's batch was formed (None: idle, now)
    while True:
        receive = count >= admission_interval or engine.idle()
        if receive:
            count = 0
        engine.admit(t, receive, formed)
        if engine.idle():
            formed = None
            if not engine.pending:
                # a finite run (max_requests) is over: requests finishing in the
                # warm-up's last iteration are outside the window, so fewer than
                # n_requests may finish inside it
                break
            # (overlapped: submissions due before now that the last batch missed are
            # received at once)
            t = max(t, engine.pending[0][0])
            continue
        decode_slots, prefill = engine.compose(bool(mixed), max_batched_tokens, bool(chunked))
        chunks = [(done, n) for (_, done), n in zip(engine.prefilling, prefill)]
        sampled = len(decode_slots) + sum(
            done + n == engine.slot_input[slot]
            for (slot, _), (done, n) in zip(engine.prefilling, chunks))
        forward = iteration_time(engine.slot_input[decode_slots] + engine.emitted[decode_slots],
                                 chunks, sampled)
        dt = _seconds("iteration_time(...)", forward) + iteration_overhead_s
        if dt <= 0:
            raise ValueError("iteration_time(...) + iteration_overhead_s must be > 0")
        if overlap:  # the next batch is formed as this iteration starts
            formed = t
        if t0 is not None:
            stats["iterations"] += 1
            stats["prefill_iterations"] += bool(prefill)
            stats["decode_tokens"] += len(decode_slots)
            stats["prefill_tokens"] += sum(prefill)
            stats["busy_s"] += dt
        t += dt
        # a decode-only iteration counts one towards the next receive; one that carried
        # prefill makes the scheduler receive at once (SGLang's SchedulerRecvSkipper)
        count += admission_interval if prefill else 1
        n_done = engine.advance(t, decode_slots, prefill)
        finished += n_done
        if t0 is None:
            if finished >= warmup:
                t0 = t
        else:
            measured += n_done
            if measured >= n_requests:
                break
    return _window_metrics(engine.records(), t0, t, stats, request_overhead_s)
