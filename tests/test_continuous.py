"""Continuous serving: the kernel's closed form against the discrete-event simulator, KV
capacity as an admission limit, and the mode end to end from the CLI."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dse
from dse.cli import main
from dse.engines import replica_limits
from dse.kernels.simulate import simulate

from dse.simulation import point

# (grid, regime): cases spanning the engines' scheduling modes (mixed chunked, separate
# prefill iterations, whole prompts), idle and busy engines, KV-limited admission and a
# prefill-saturated budget. The simulator steps the same per-iteration physics
# (dse/simulation.py), so the comparison checks the steady state alone.
CASES = [
    dict(batch=1, input_tokens=1024, output_tokens=256, engine="vllm"),
    dict(batch=8, input_tokens=1024, output_tokens=256, engine="vllm"),
    dict(batch=64, input_tokens=8192, output_tokens=1024, engine="vllm"),      # KV-limited
    dict(batch=256, input_tokens=8192, output_tokens=1024, engine="vllm",
         max_batched_tokens=512),                                             # KV-limited
    dict(batch=8, input_tokens=8192, output_tokens=1024, engine="sglang"),
    dict(batch=64, input_tokens=8192, output_tokens=1024, engine="sglang"),
    dict(batch=8, input_tokens=1024, output_tokens=256, engine="trtllm"),
    dict(batch=64, input_tokens=1024, output_tokens=256, engine="trtllm",
         max_batched_tokens=512),
    dict(batch=256, input_tokens=1024, output_tokens=256, engine="trtllm",
         max_batched_tokens=512),                                             # saturated
    # the scheduler receives new requests every 10 / 30 decode iterations (SGLang's
    # --scheduler-recv-interval, as InferenceX runs it); clients given a second of random
    # think time, so that arrivals fall at random phases of the receive cycle (with fixed
    # lengths and none, arrivals lock to one phase: the wait is anywhere in 0 .. interval)
    dict(batch=8, input_tokens=1024, output_tokens=1024, engine="sglang",
         admission_interval=10),
    dict(batch=64, input_tokens=1024, output_tokens=1024, engine="sglang",
         admission_interval=30),
    dict(batch=16, input_tokens=1024, output_tokens=512, engine="vllm",
         admission_interval=10),
    # attention data parallelism (each rank its own budget: TensorRT-LLM), pipeline
    # micro-batches and context parallelism: the simulator spreads an iteration over the
    # groups, micro-batches and cp devices as the closed form does
    # (a fifth of a second of think time: with overlap scheduling a request also waits
    # for the iteration formed before its admission, which carries others' prefill at
    # its share with arrivals at random phases, as the closed form's mean iteration; the
    # stagger's evenly spaced arrivals always meet a decode-only one there, 11 % short)
    dict(batch=64, input_tokens=1024, output_tokens=256, engine="trtllm",
         model="mixtral_8x7b", hardware="h100_sxm", tp=1, attention_dp=4, ep=4,
         jitter_s=0.2),
    dict(batch=64, input_tokens=8192, output_tokens=1024, engine="sglang",
         model="mixtral_8x7b", hardware="h100_sxm", tp=1, attention_dp=4, ep=4),
    dict(batch=16, input_tokens=1024, output_tokens=256, engine="vllm", tp=1, pp=2),
    dict(batch=8, input_tokens=8192, output_tokens=256, engine="vllm", tp=1, cp=2),
]


@pytest.mark.parametrize("grid", CASES, ids=lambda g: "-".join(str(v) for v in g.values()))
def test_closed_form_matches_simulator(grid):
    grid = dict(grid)
    jitter_s = grid.pop("jitter_s", 1.0 if grid.get("admission_interval") else 0.0)
    summary, iteration_time, engine, slots = point(**grid)
    budget, _ = replica_limits(engine, grid.get("max_batched_tokens", 0),
                               grid.get("attention_dp", 1))
    sim = simulate(iteration_time, grid["batch"], grid["input_tokens"], grid["output_tokens"],
                   budget, engine.chunked_prefill, engine.mixed_prefill, 0, int(slots),
                   engine.request_overhead_s, engine.iteration_overhead_s, stagger=True,
                   admission_interval=grid.get("admission_interval") or 1,
                   jitter_s=jitter_s, seed=1, overlap=engine.overlap_scheduling)
    assert summary["ttft_s"] == pytest.approx(sim["ttft_s"], rel=0.10)
    assert summary["tpot_s"] == pytest.approx(sim["tpot_s"], rel=0.05)


def _one(**grid):
    ds = dse.evaluate(dse.parse_sweep({"grid": grid}))
    der = dse.derive(ds)
    return {k: np.asarray(v).ravel()[0] for k, v in
            {**{n: ds[n].values for n in ("ttft_s", "tpot_s", "slots")},
             **{n: der[n].values for n in ("running_requests", "feasible",
                                           "memory_bytes_per_device", "requests_per_s")}}.items()}


def test_kv_capacity_limits_admission_not_feasibility():
    grid = dict(hardware="h100_sxm", model="llama3_70b", tp=4, batch=512,
                input_tokens=8192, output_tokens=1024, weight_dtype="fp8")
    static = _one(serving="static", **grid)
    cont = _one(serving="continuous", **grid)
    assert not static["feasible"]             # 512 full contexts do not fit
    assert cont["feasible"] and 1 <= cont["running_requests"] < 512
    assert cont["running_requests"] == cont["slots"]
    fewer = _one(serving="continuous", **{**grid, "batch": int(cont["slots"])})
    # the same running set: the same iterations; the extra clients only wait
    assert cont["tpot_s"] == pytest.approx(fewer["tpot_s"], rel=1e-12)
    assert cont["ttft_s"] > fewer["ttft_s"] + 1.0
    # closed loop: batch clients complete one request per e2e each
    e2e = cont["ttft_s"] + 1023 * cont["tpot_s"]
    assert cont["requests_per_s"] == pytest.approx(512 / e2e, rel=1e-12)


def test_engine_overheads_enter_ttft_and_tpot():
    base = dict(serving="continuous", batch=1, input_tokens=512, output_tokens=64)
    ideal = _one(engine="roofline", **base)
    vllm = _one(engine="vllm", **base)
    # batch 1: an idle engine; vLLM adds its request overhead to TTFT and its iteration
    # overhead to every iteration (configs/engines/vllm.toml)
    assert vllm["tpot_s"] - ideal["tpot_s"] == pytest.approx(0.0015, rel=1e-6)
    assert vllm["ttft_s"] - ideal["ttft_s"] == pytest.approx(0.030 + 0.0015, rel=1e-3)
    # with async scheduling (configs/engines/vllm_async.toml) the step's CPU work overlaps
    # the previous step on the GPU: 0.2 ms left per iteration, the same request path
    overlap = _one(engine="vllm_async", **base)
    assert overlap["tpot_s"] - ideal["tpot_s"] == pytest.approx(0.0002, rel=1e-6)
    assert overlap["ttft_s"] - ideal["ttft_s"] == pytest.approx(0.030 + 0.0002, rel=1e-3)


def test_atom_prefills_whole_prompts_in_compiled_prefill_only_iterations():
    # AMD's ATOM (configs/engines/atom.toml): vLLM's request path and synchronous loop
    # (30 ms per request, 1.5 ms per iteration), but whole prompts in prefill-only steps
    # (no chunking, no mixing) and a compiled forward (no per-launch host term). An idle
    # engine: TTFT = 30 ms + one prefill iteration of the whole prompt + its 1.5 ms.
    base = dict(serving="continuous", batch=1, input_tokens=12000, output_tokens=64)
    ideal = _one(engine="roofline", **base)
    atom = _one(engine="atom", **base)
    assert atom["ttft_s"] - ideal["ttft_s"] == pytest.approx(0.030 + 0.0015, rel=1e-3)
    assert atom["tpot_s"] - ideal["tpot_s"] == pytest.approx(0.0015, rel=1e-6)
    table, summary = dse.explain(engine="atom", **base)
    prefill = table[table["phase"] == "prefill_iteration"]
    assert prefill[prefill["op"] == "eager_launch_wait"]["total_s"].sum() == 0.0
    # 12,000 prompt tokens in one 16,384-token step; the vLLM default (8,192) needs two
    assert summary["prefill_iteration_s"] == pytest.approx(atom["ttft_s"] - 0.030, rel=1e-9)
    assert _one(engine="vllm", **base)["ttft_s"] > atom["ttft_s"]
    # prefill-only steps: a decoding request waits the others' whole prompts out (no
    # mixing), so its step lasts longer than a decode iteration
    busy = dict(base, batch=32, input_tokens=4096, output_tokens=256)
    _, s = dse.explain(engine="atom", **busy)
    assert s["tpot_s"] > 1.2 * s["decode_iteration_s"]


def test_continuous_beats_static_ttft_at_high_concurrency():
    grid = dict(hardware="h100_sxm", model="llama3_70b", tp=4, batch=64,
                input_tokens=2048, output_tokens=256, weight_dtype="fp8")
    static, cont = _one(serving="static", **grid), _one(serving="continuous", **grid)
    assert cont["ttft_s"] < static["ttft_s"] / 5   # no waiting for 63 other prompts
    assert cont["tpot_s"] > static["tpot_s"]       # decodes share iterations with prefill


def test_continuous_sweep_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        '[grid]\nserving = ["static", "continuous"]\nengine = ["vllm", "sglang"]\n'
        'batch = [1, 16, 128]\nmax_batched_tokens = [0, 512]\n')
    assert main(["sweep", "s.toml", "--out", "results"]) == 0
    best = pd.read_parquet("results/best.parquet")
    assert set(best["serving"]) == {"static", "continuous"}
    assert set(best["engine"]) == {"vllm", "sglang"}
    pareto = pd.read_parquet("results/pareto.parquet")
    cont = pareto[pareto["serving"] == "continuous"]
    assert len(cont) and (cont["running_requests"] <= cont["batch"]).all()
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert manifest["complete"]


def test_chunked_sweep_over_engines_matches_one_chunk(tmp_path, monkeypatch):
    # chunks split the engine axis: each chunk's sub-spec must carry its own presets
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        '[grid]\nserving = "continuous"\nengine = ["vllm", "sglang", "trtllm"]\n'
        'batch = [1, 16, 128]\ninput_tokens = [512, 4096]\n')
    assert main(["sweep", "s.toml", "--out", "one"]) == 0
    assert main(["sweep", "s.toml", "--out", "many", "--chunk-rows", "2"]) == 0
    for name in ("pareto.parquet", "best.parquet"):
        one, many = (pd.read_parquet(f"{d}/{name}") for d in ("one", "many"))
        pd.testing.assert_frame_equal(one.astype(str), many.astype(str))
    assert json.loads((tmp_path / "many" / "manifest.json").read_text())["n_chunks"] > 1


def test_explain_shows_the_iteration_composition_and_adds_up(tmp_path, monkeypatch, capsys):
    axes = dict(serving="continuous", engine="vllm", model="llama3_70b", tp=4, batch=48,
                input_tokens=4096, output_tokens=512, weight_dtype="fp8")
    table, summary = dse.explain(**axes)
    for phase, key in (("decode_iteration", "decode_iteration_s"),
                       ("prefill_iteration", "prefill_iteration_s")):
        rows = table[table["phase"] == phase]
        assert len(rows) > 10
        assert rows["total_s"].sum() == pytest.approx(summary[key], rel=1e-9)
    f, r = summary["prefill_iteration_share"], summary["running_requests"]
    others = (r - 1) / r  # a decoding request sees the others' prefill (mixed engine)
    assert summary["tpot_s"] == pytest.approx(
        (1 - f * others) * summary["decode_iteration_s"]
        + f * others * summary["prefill_iteration_s"], rel=1e-12)
    assert summary["tpot_s"] == pytest.approx(_one(**axes)["tpot_s"], rel=1e-12)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--serving", "continuous", "--engine", "sglang", "--batch", "8",
                 "--csv", "e.csv"]) == 0
    out = capsys.readouterr().out
    assert "prefill_iteration" in out and "prefill_iteration_share" in out
    assert set(pd.read_csv("e.csv")["phase"]) == {"decode_iteration", "prefill_iteration"}


def test_prefill_iterations_run_eagerly_at_their_launch_cost(tmp_path):
    # an engine whose prefill-carrying iterations launch each operator from the host at
    # 1 ms (eager_op_s): llama3_8b at tp 1 launches 32 layers x 9 operators (attention
    # norm, QKV, RoPE, attention, output projection, FFN norm, gate/up, activation, down)
    # plus embedding, final norm, LM head and sampling = 292 per forward, so its one
    # prefill iteration (batch 1, whole prompt, ~30 ms of device work) lasts 0.292 s;
    # decode-only iterations are graphed and keep their device time
    engine = tmp_path / "eager.toml"
    text = (Path(__file__).parents[1] / "configs/engines/roofline.toml").read_text()
    engine.write_text(text.replace('name = "roofline"', 'name = "eager"')
                      + "eager_op_s = 0.001\n")
    base = dict(serving="continuous", batch=1, input_tokens=512, output_tokens=64)
    ideal = _one(engine="roofline", **base)
    eager = _one(engine=str(engine), **base)
    assert ideal["ttft_s"] < 0.05
    assert eager["ttft_s"] == pytest.approx(0.292, rel=1e-12)
    assert eager["tpot_s"] == ideal["tpot_s"]
    table, summary = dse.explain(engine=str(engine), **base)
    rows = table[table["phase"] == "prefill_iteration"]
    wait = rows[rows["op"] == "eager_launch_wait"]["total_s"].sum()
    assert wait == pytest.approx(0.292 - ideal["ttft_s"], rel=1e-9)
    assert rows["total_s"].sum() == pytest.approx(summary["prefill_iteration_s"], rel=1e-12)
    assert rows[rows["kind"] != "engine"]["count"].sum() == 292


def test_admission_interval_waits_half_an_interval_and_batches_prompts():
    # SGLang (separate prefill iterations, a request overhead): an arrival waits for an
    # iteration boundary (half a decode iteration) and, admitting only every N decode
    # iterations, (N - 1) / 2 more, then the iteration its overlap loop had formed
    # already (one more); the prompts of one interval are prefilled together
    base = dict(engine="sglang", batch=64, input_tokens=922, output_tokens=922)
    one = dse.explain(**base, admission_interval=1)[1]
    thirty = dse.explain(**base, admission_interval=30)[1]
    engine_default = dse.explain(**base)[1]
    assert engine_default["ttft_s"] == one["ttft_s"]  # 0: the engine's interval, 1
    assert one["admission_interval"] == 1 and thirty["admission_interval"] == 30
    for s, n in ((one, 1), (thirty, 30)):
        assert s["ttft_wait_s"] == pytest.approx((n / 2 + 1) * s["decode_iteration_s"],
                                                 rel=1e-12)
    # r / n arrivals per decode iteration (64 / 921): one prompt per prefill iteration,
    # or an interval's worth, 30 x 64 / 921
    assert one["prompts_per_prefill_iteration"] == pytest.approx(1.0)
    assert thirty["prompts_per_prefill_iteration"] == pytest.approx(30 * 64 / 921, rel=1e-9)
    assert thirty["tpot_s"] < one["tpot_s"]  # fewer prefill iterations stall the decodes
    assert dse.explain(**{**base, "batch": 1}, admission_interval=30)[1]["ttft_wait_s"] == 0
