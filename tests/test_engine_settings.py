"""Engine settings a server's launch command fixes: how each engine sizes its KV cache from
its share of device memory (engines.KV_MEMORY_RULES, the memory_fraction axis), and decode
iterations run without CUDA graphs (decode_cuda_graphs)."""
import json
import math
from pathlib import Path

import pytest

import dse
from dse import compile as comp
from dse.cli import main
from dse.config import ConfigError, load_hardware, load_model
from dse.engines import memory_fraction_at, parse_engine

M = load_hardware("h100_sxm").memory_bytes            # 85.52e9 B
KV = 3000 * 2 * 32 * 8 * 128 * 2                      # llama3_8b, 2000 + 1000 tokens, bf16
BUDGET = 8192                                          # the three engines' token budget


def running(engine, **grid):
    _, s = dse.explain(hardware="h100_sxm", model="llama3_8b", engine=engine, batch=1000,
                       input_tokens=2000, output_tokens=1000, tp=1, **grid)
    return s["running_requests"], s["weight_bytes_per_device"]


def working():
    """One 8192-token iteration's working set at bf16 (the term every rule uses)."""
    return float(comp.activation_bytes_per_device(load_model("llama3_8b"), 1, 1, 1, BUDGET,
                                                  2.0, 1))


def test_each_engine_sizes_its_kv_cache_by_its_own_rule_by_hand():
    a = working()
    # vLLM: gpu_memory_utilization 0.9 of the memory holds weights, activations and KV
    r, w = running("vllm")
    assert r == math.floor((0.9 * M - w - a) / KV)
    # SGLang: mem_fraction_static 0.88 (tp 1) holds weights and the KV pool only
    r, w = running("sglang")
    assert r == math.floor((0.88 * M - w) / KV)
    # TensorRT-LLM: free_gpu_memory_fraction 0.9 of what weights and activations leave
    r, w = running("trtllm")
    assert r == math.floor(0.9 * (M - w - a) / KV)
    # roofline names no share: the hardware preset's usable fraction (0.9), budget rule;
    # its working set is one whole prompt (no token budget)
    r, w = running("roofline")
    a_prompt = float(comp.activation_bytes_per_device(load_model("llama3_8b"), 1, 1, 1, 2000,
                                                      2.0, 1))
    assert r == math.floor((0.9 * M - w - a_prompt) / KV)
    # the three rules differ here (the test would not see a swapped rule otherwise)
    assert len({running(e)[0] for e in ("vllm", "sglang", "trtllm")}) == 3


def test_memory_fraction_axis_overrides_the_engines_default():
    r, w = running("sglang", memory_fraction=0.5)
    assert r == math.floor((0.5 * M - w) / KV)
    r, w = running("vllm", memory_fraction=0.95)
    assert r == math.floor((0.95 * M - w - working()) / KV)
    # a share that leaves the weights no room: not one request fits
    _, s = dse.explain(hardware="h100_sxm", model="llama3_8b", engine="sglang", batch=8,
                       input_tokens=2000, output_tokens=1000, tp=1, memory_fraction=0.1)
    assert s["infeasible_reason"] == "out_of_memory"


def test_sglang_default_share_follows_tensor_parallelism():
    from dse.engines import load_engine
    sglang = load_engine("sglang")
    assert list(memory_fraction_at(sglang, [1, 2, 3, 4, 8, 16, 32])) == [
        0.88, 0.87, 0.87, 0.85, 0.81, 0.79, 0.79]
    assert memory_fraction_at(load_engine("roofline"), 8) == 0.0


@pytest.mark.parametrize("key, value, words", [
    ("kv_memory", "pool", "valid: budget, static, free"),
    ("memory_fraction", 1.5, "fraction in (0, 1]"),
    ("memory_fraction", [[2, 0.8]], "ascending from 1"),
    ("memory_fraction", [[1, 0.9], [1, 0.8]], "ascending from 1"),
    ("memory_fraction", [[1, 0.9], [4, "x"]], "fraction in (0, 1]"),
    ("per_rank_limits", "yes", "must be true or false"),
    ("per_rank_limits", 1, "must be true or false"),
])
def test_bad_engine_memory_settings_name_file_key_and_value(key, value, words):
    data = {"name": "e", "request_overhead_s": 0.0, "iteration_overhead_s": 0.0,
            "chunked_prefill": True, "mixed_prefill": True, "max_batched_tokens": 0,
            "max_running_requests": 0, key: value}
    with pytest.raises(ConfigError) as err:
        parse_engine(data, "e.toml")
    msg = str(err.value)
    assert "e.toml" in msg and key in msg and words in msg and "\n" not in msg


def test_memory_fraction_from_the_cli_in_a_working_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["explain", "--hardware", "h100_sxm", "--model", "llama3_8b", "--engine", "sglang",
            "--batch", "1000", "--input-tokens", "2000", "--output-tokens", "1000", "--json"]
    assert main([*args, "--memory-fraction", "0.5"]) == 0
    half = capsys.readouterr().out
    assert main(args) == 0
    default = capsys.readouterr().out
    assert json.loads(half)["summary"]["running_requests"] < \
        json.loads(default)["summary"]["running_requests"]
    assert main([*args, "--memory-fraction", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--memory-fraction 1.5" in err and "[0, 1]" in err and err.count("\n") == 1


def test_an_engine_without_decode_graphs_launches_every_decode_op_from_the_host(
        tmp_path, monkeypatch):
    # decode-only iterations of an engine that captures no CUDA graphs last at least their
    # operator launches times eager_op_s (1 ms here: far above the device's work), as the
    # prefill-carrying ones always do; the breakdown names the wait
    monkeypatch.chdir(tmp_path)
    Path("e.toml").write_text(
        'name = "e"\nrequest_overhead_s = 0.0\niteration_overhead_s = 0.0005\n'
        'eager_op_s = 0.001\ndecode_cuda_graphs = false\nchunked_prefill = true\n'
        'mixed_prefill = true\nmax_batched_tokens = 0\nmax_running_requests = 0\n')
    grid = dict(hardware="h100_sxm", model="llama3_8b", batch=4, input_tokens=100,
                output_tokens=400, tp=1)
    table, s = dse.explain(engine="e.toml", **grid)
    dec = table[table["phase"] == "decode_iteration"]
    ops = dec[dec["kind"] != "engine"]
    launches = ops["count"].sum()
    wait = dec.loc[dec["op"] == "eager_launch_wait", "total_s"].item()
    assert s["decode_iteration_s"] == pytest.approx(launches * 0.001 + 0.0005, rel=1e-9)
    assert wait == pytest.approx(launches * 0.001 - ops["total_s"].sum(), rel=1e-9)
    # the same engine with graphs: the device's work plus the overhead
    Path("g.toml").write_text(Path("e.toml").read_text().replace("false", "true")
                              .replace('"e"', '"g"'))
    table, g = dse.explain(engine="g.toml", **grid)
    dec = table[table["phase"] == "decode_iteration"]
    assert g["decode_iteration_s"] == pytest.approx(
        dec.loc[dec["kind"] != "engine", "total_s"].sum() + 0.0005, rel=1e-9)
    assert "eager_launch_wait" not in set(dec["op"])
    assert s["tpot_s"] > 5 * g["tpot_s"]


def _engine_variant(tmp_path, engine, name, old, new):
    """A copy of a bundled engine preset named ``name`` with ``old`` replaced by ``new``."""
    text = Path(dse.engines.load_engine(engine).source).read_text()
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace(f'name = "{engine}"', f'name = "{name}"').replace(old, new))
    return path


def test_per_rank_limits_give_every_attention_dp_rank_its_own_budget_and_cap():
    trt, sgl = (dse.engines.load_engine(n) for n in ("trtllm", "sglang"))
    assert trt.per_rank_limits and not sgl.per_rank_limits
    assert dse.engines.replica_limits(trt, 0, 4) == (4 * 8192, 4 * 2048)
    assert dse.engines.replica_limits(trt, 4096, 1) == (4096, 2048)
    assert dse.engines.replica_limits(sgl, 4096, 8) == (4096, 2048)


def test_a_per_rank_budget_prefills_one_prompt_per_rank_by_hand(tmp_path):
    """Mixtral 8x7B, 4 attention-DP ranks, 64 clients, 3000-token prompts, 16 output tokens,
    a 4096-token budget, TensorRT-LLM (chunked prefill off, mixed iterations). With one
    budget for the replica the prompts saturate it: a prefill-carrying iteration holds
    budget / (S + n) = 4096 / (3000 + 15) prompts (the saturated closed form). With a
    budget per rank (16384 for the replica) it holds what the clients bring: R n / (n + 1)
    decoding requests complete 1/n of their lives per iteration, 64 / 16 = 4 prompts."""
    glob = _engine_variant(tmp_path, "trtllm", "trtllm_global", "per_rank_limits = true",
                           "per_rank_limits = false")
    grid = dict(serving="continuous", model="mixtral_8x7b", hardware="h100_sxm", tp=1,
                attention_dp=4, ep=4, batch=64, input_tokens=3000, output_tokens=16,
                max_batched_tokens=4096)
    _, rank = dse.explain(engine="trtllm", **grid)
    _, whole = dse.explain(engine=str(glob), **grid)
    assert whole["prompts_per_prefill_iteration"] == pytest.approx(4096 / 3015)
    assert rank["prompts_per_prefill_iteration"] == pytest.approx(64 / 16)
    assert rank["running_requests"] == whole["running_requests"] == 64
    assert (rank["token_budget"], whole["token_budget"]) == (4 * 4096, 4096)
    assert rank["ttft_s"] < whole["ttft_s"] / 3  # no queue for the replica's one budget


def test_overlap_scheduling_waits_one_more_iteration_by_hand(tmp_path):
    """SGLang's overlap loop forms the next batch while one runs: a request arriving while
    the engine is busy misses the batch already formed. The closed form adds that whole
    iteration (two arrival offsets: separate prefill iterations, so a decode-only one) to
    the wait; TPOT is unchanged; a lone client finds the engine idle and waits nothing."""
    sync = _engine_variant(tmp_path, "sglang", "sglang_sync", "overlap_scheduling = true",
                           "overlap_scheduling = false")
    assert dse.engines.load_engine("sglang").overlap_scheduling
    assert not dse.engines.load_engine(str(sync)).overlap_scheduling
    grid = dict(serving="continuous", model="llama3_8b", hardware="h100_sxm", tp=1,
                batch=16, input_tokens=1000, output_tokens=500)
    _, over = dse.explain(engine="sglang", **grid)
    _, plain = dse.explain(engine=str(sync), **grid)
    t_dec = plain["decode_iteration_s"]
    assert over["decode_iteration_s"] == t_dec and over["tpot_s"] == plain["tpot_s"]
    # with a request overhead: half an iteration of arrival phase, then the formed one
    assert plain["ttft_wait_s"] == pytest.approx(0.5 * t_dec, rel=1e-9)
    assert over["ttft_wait_s"] == pytest.approx(1.5 * t_dec, rel=1e-9)
    assert over["ttft_s"] - plain["ttft_s"] == pytest.approx(t_dec, rel=1e-9)
    alone = {**grid, "batch": 1}
    assert dse.explain(engine="sglang", **alone)[1]["ttft_s"] == \
        dse.explain(engine=str(sync), **alone)[1]["ttft_s"]


def test_overlap_scheduling_must_be_a_boolean(tmp_path):
    bad = _engine_variant(tmp_path, "sglang", "bad", "overlap_scheduling = true",
                          'overlap_scheduling = "yes"')
    with pytest.raises(ConfigError) as err:
        dse.engines.load_engine(str(bad))
    assert "overlap_scheduling" in str(err.value) and "bad.toml" in str(err.value)
